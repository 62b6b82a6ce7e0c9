/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TLA1 ack frames: the request's addresses turned around (ack.h). Checksums in
 * software, RFC 1071 one's complement over 16-bit words.
 */
#include <errno.h>
#include <string.h>

#include "ack.h"
#include "counters.h"
#include "pkt.h"
#include "wire.h"

#define ETH_ALEN 6

int tally_ack_from_udp(struct tally_ack *a, const uint8_t *frame, const struct tally_udp *u,
		       uint64_t sender_id, uint64_t batch_seq)
{
	/* saddr sits 12 bytes into an IPv4 header, 8 into an IPv6 one. */
	unsigned alen = u->ip_version == 4 ? 4 : 16;
	size_t ip_off = (size_t)(u->saddr - frame) - (u->ip_version == 4 ? 12 : 8);

	if (ip_off > TALLY_ACK_L2_MAX || ip_off < 14)
		return -EINVAL;
	memcpy(a->l2, frame, ip_off);
	a->l2_len = (uint8_t)ip_off;
	a->ip_version = u->ip_version;
	memcpy(a->peer, u->saddr, alen);
	memcpy(a->ours, u->saddr + alen, alen);
	a->peer_port = u->sport;
	a->our_port = u->dport;
	a->sender_id = sender_id;
	a->batch_seq = batch_seq;
	return 0;
}

void tally_ack_payload(uint8_t *out, uint8_t status, uint64_t sender_id, uint64_t batch_seq)
{
	memcpy(out, TALLY_TLA1_MAGIC, 4);
	out[4] = status;
	out[5] = 0;
	tally_put_le16(out + 6, 0);
	tally_put_le64(out + 8, sender_id);
	tally_put_le64(out + 16, batch_seq);
}

uint32_t tally_ack_frame(const struct tally_ack *a, uint8_t status, uint8_t *out)
{
	const uint16_t l4_len = 8 + TALLY_TLA1_LEN;
	uint8_t *udp;
	uint32_t off = a->l2_len;

	memcpy(out, a->l2, a->l2_len);
	memcpy(out, a->l2 + ETH_ALEN, ETH_ALEN); /* to the request's source */
	memcpy(out + ETH_ALEN, a->l2, ETH_ALEN);
	off += tally_put_ip_udp(out + off, a->ip_version, a->ours, a->peer, l4_len);
	udp = out + off;
	tally_ack_payload(udp + 8, status, a->sender_id, a->batch_seq);
	tally_put_udp(udp, a->ours, a->peer, a->ip_version == 4 ? 4 : 16, a->our_port,
		      a->peer_port, l4_len);
	return off + l4_len;
}

int tally_ack_reject_status(int reason)
{
	switch (reason) {
	case TALLY_C_TLY1_SHORT:
	case TALLY_C_TLY1_BAD_MAGIC:
	case TALLY_C_TLY1_ZERO_SENDER:
		return -1; /* no header, or no one to answer */
	case TALLY_C_TLY1_MAC_MISSING:
	case TALLY_C_TLY1_MAC_NO_KEY:
	case TALLY_C_TLY1_MAC_BAD:
	case TALLY_C_TLY1_MAC_REQUIRED:
		return TALLY_ACK_UNAUTHENTICATED;
	default:
		return TALLY_ACK_MALFORMED;
	}
}
