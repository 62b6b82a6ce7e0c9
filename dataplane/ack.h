/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TLA1 acks (shared/DESIGN.md): what the worker keeps about a datagram that
 * asked for one, and the reply frame built from it. Pure logic, no DPDK: the
 * frame builder is tested by parsing its output with tally_pkt_parse.
 *
 * The reply mirrors the request: the request's Ethernet header and VLAN tags
 * with the MACs swapped, the IP addresses and UDP ports swapped, IPv4 or IPv6
 * as it came, both checksums computed in software (an ack is 24 bytes; there
 * is nothing for TX offload to save).
 *
 * ack_mode=committed: an ack may only go out once the flush that holds the
 * datagram is durable, so the worker writes each accepted datagram's ack into
 * an ack list attached to its current window table. The list travels with the
 * sealed table to the flusher, with the batch to the sink writer, and, once the
 * writer made the batch durable (sink commit or spool sync), back to its
 * worker on an SPSC ring (writer -> worker); the worker sends the acks between
 * bursts (it alone owns its TX queue) and keeps the list for reuse. Lists are
 * allocated at start, TALLY_ACKLISTS per worker, so the hot path never
 * allocates: when none is free the datagram is answered "overloaded".
 */
#ifndef TALLY_ACK_H
#define TALLY_ACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TALLY_ACK_L2_MAX 22     /* Ethernet + two VLAN tags */
#define TALLY_ACKLIST_CAP 1024  /* acks per list */
#define TALLY_ACKLISTS 32       /* lists per worker (committed mode) */
#define TALLY_ACK_RING 64       /* power of two > TALLY_ACKLISTS */
#define TALLY_ACK_FRAME_MAX (TALLY_ACK_L2_MAX + 40 + 8 + 24)

enum tally_ack_mode {
	TALLY_ACKM_NONE = 0,
	TALLY_ACKM_ACCEPTED,
	TALLY_ACKM_COMMITTED,
};

/* One ack to send: where to (the request's source) and what about. */
struct tally_ack {
	uint64_t sender_id, batch_seq;
	uint8_t l2[TALLY_ACK_L2_MAX];
	uint8_t l2_len, ip_version;
	uint16_t peer_port, our_port;
	uint8_t peer[16], ours[16];
};

struct tally_acklist {
	struct tally_acklist *next; /* the other lists of the same batch */
	unsigned worker;            /* whose TX queue sends them */
	bool durable;               /* set by the writer: committed, send them */
	uint32_t n, sent;           /* sent: how far the worker got */
	struct tally_ack a[TALLY_ACKLIST_CAP];
};

struct tally_udp;

/* The reply address of the datagram u inside frame (as tally_pkt_parse gave
 * it); 0, or -EINVAL when the L2 header is longer than TALLY_ACK_L2_MAX. */
int tally_ack_from_udp(struct tally_ack *a, const uint8_t *frame, const struct tally_udp *u,
		       uint64_t sender_id, uint64_t batch_seq);

/* The reply frame for a with status into out (TALLY_ACK_FRAME_MAX bytes);
 * returns its length. */
uint32_t tally_ack_frame(const struct tally_ack *a, uint8_t status, uint8_t *out);

/* The TLA1 payload alone (24 bytes), for producers. */
void tally_ack_payload(uint8_t *out, uint8_t status, uint64_t sender_id, uint64_t batch_seq);

/* A TLY1 parse result (TALLY_C_TLY1_*) as the status a rejected datagram is
 * answered with, or -1 when its header was not readable (no sender to answer). */
int tally_ack_reject_status(int reason);

#endif
