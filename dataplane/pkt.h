/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Frame parsing: Ethernet II, up to two VLAN tags (802.1Q/802.1ad), IPv4 (options
 * allowed) or IPv6 (no extension headers), UDP to one of Tally's ports. Takes a
 * plain buffer so it is tested without EAL.
 */
#ifndef TALLY_PKT_H
#define TALLY_PKT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "counters.h"

/* What the port's checksum offload already decided (from mbuf ol_flags). */
enum tally_csum_state {
	TALLY_CSUM_UNKNOWN = 0, /* verify in software */
	TALLY_CSUM_GOOD = 1,
	TALLY_CSUM_BAD = 2,
};

struct tally_udp {
	const uint8_t *payload; /* UDP payload, trimmed to the UDP length */
	uint16_t len;
	uint16_t sport, dport; /* host order */
	uint8_t ip_version;    /* 4 or 6 */
	const uint8_t *saddr;  /* 4 or 16 bytes inside the frame, for acks */
};

/* Every frame the fast path (tally_pkt_parse, below) does not take; for tests
 * too, which check that the two agree. Returns as tally_pkt_parse. */
int tally_pkt_parse_general(const uint8_t *frame, uint32_t len, enum tally_csum_state ip_csum,
			    enum tally_csum_state l4_csum, const uint16_t *ports, unsigned nports,
			    struct tally_udp *out);

#define TALLY_ETH_HLEN 14
#define TALLY_UDP_HLEN 8
#define TALLY_PROTO_UDP 17
#define TALLY_ET_IPV4 0x0800

static inline uint16_t tally_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* sum + v with the end-around carry of one's-complement arithmetic. */
static inline uint64_t tally_add_carry(uint64_t sum, uint64_t v)
{
	sum += v;
	return sum + (sum < v);
}

/*
 * One's-complement sum of p[0..len), 8 bytes at a time, in the host's byte
 * order (RFC 1071: the sum of byte-swapped words is the byte-swapped sum, and a
 * packet verifies when the folded sum of everything, checksum included, is
 * 0xffff, which reads the same either way). len must be even except for the
 * last buffer summed.
 */
static inline uint64_t tally_csum_add(uint64_t sum, const uint8_t *p, uint32_t len)
{
	uint64_t w = 0;
	uint32_t v = 0;
	uint16_t h = 0;

	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&w, p, 8);
		sum = tally_add_carry(sum, w);
	}
	if (len >= 4) {
		memcpy(&v, p, 4);
		sum = tally_add_carry(sum, v);
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		memcpy(&h, p, 2);
		sum = tally_add_carry(sum, h);
		p += 2;
		len -= 2;
	}
	/* a last odd byte is the high half of a big-endian word */
	return len ? tally_add_carry(sum, p[0]) : sum;
}

static inline uint16_t tally_csum_fold(uint64_t sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static inline uint16_t tally_bswap16(uint16_t v) { return (uint16_t)(v << 8 | v >> 8); }

static inline void tally_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* The UDP pseudo-header's protocol and length, big-endian words, for tally_csum_add's sums. */
static inline uint64_t tally_udp_pseudo_sum(uint16_t ulen)
{
	return (uint64_t)tally_bswap16(TALLY_PROTO_UDP) + tally_bswap16(ulen);
}

/* The IPv4 header checksum; the usual 20-byte header is three loads. */
static inline bool tally_ip4_csum_ok(const uint8_t *ip, uint32_t ihl)
{
	uint64_t a, b, sum;
	uint32_t c;

	if (ihl != 20)
		return tally_csum_fold(tally_csum_add(0, ip, ihl)) == 0xffff;
	memcpy(&a, ip, 8);
	memcpy(&b, ip + 8, 8);
	memcpy(&c, ip + 16, 4);
	sum = tally_add_carry(tally_add_carry(a, b), c);
	return tally_csum_fold(sum) == 0xffff;
}

/* At ip, the IPv4 (20 bytes: DF, its checksum) or IPv6 (40) header of a UDP
 * datagram of l4_len bytes from src to dst (4 or 16 bytes each), TTL 64;
 * returns its length. For the frames Tally sends or rebuilds (acks, pcaps). */
uint32_t tally_put_ip_udp(uint8_t *ip, unsigned ip_version, const uint8_t *src,
			  const uint8_t *dst, uint16_t l4_len);

/* The UDP header at udp and its checksum, the pseudo-header's addresses
 * (alen bytes each) included; the payload must already be at udp + 8. */
void tally_put_udp(uint8_t *udp, const uint8_t *src, const uint8_t *dst, unsigned alen,
		   uint16_t sport, uint16_t dport, uint16_t len);

/* True if the UDP checksum (pseudo-header included) verifies. */
bool tally_udp_csum_ok(const uint8_t *saddr, const uint8_t *daddr, unsigned alen,
		       const uint8_t *udp, uint16_t ulen);

/*
 * The frame nearly every producer sends: Ethernet, IPv4 without options, UDP,
 * no fragment. This only ever accepts, with the same rules as the general path
 * below; a frame it does not accept goes there, which names the reason.
 * (tests/test_pkt.c checks the two agree.) ~40 instructions against ~140;
 * inline here, so the worker spends no call, no saved registers on it.
 */
static inline bool tally_pkt_fast_ipv4_udp(const uint8_t *f, uint32_t len, enum tally_csum_state ip_csum,
		       enum tally_csum_state l4_csum, const uint16_t *ports, unsigned nports,
		       struct tally_udp *out)
{
	const uint8_t *ip = f + TALLY_ETH_HLEN, *l4 = ip + 20;
	uint32_t tot, ulen;
	uint16_t dport;

	if (len < TALLY_ETH_HLEN + 28 || tally_be16(f + 12) != TALLY_ET_IPV4 || ip[0] != 0x45 ||
	    ip[9] != TALLY_PROTO_UDP || (tally_be16(ip + 6) & 0x3fff) != 0)
		return false;
	tot = tally_be16(ip + 2);
	ulen = tally_be16(l4 + 4);
	if (tot < 28 || tot > len - TALLY_ETH_HLEN || ulen < TALLY_UDP_HLEN || ulen > tot - 20)
		return false;
	if (ip_csum != TALLY_CSUM_GOOD && (ip_csum == TALLY_CSUM_BAD || !tally_ip4_csum_ok(ip, 20)))
		return false;
	/* the port's verdict first: BAD drops even a zero ("none") checksum, as below */
	if (l4_csum == TALLY_CSUM_BAD || (l4_csum == TALLY_CSUM_UNKNOWN && tally_be16(l4 + 6) != 0 &&
					  !tally_udp_csum_ok(ip + 12, ip + 16, 4, l4, (uint16_t)ulen)))
		return false;
	dport = tally_be16(l4 + 2);
	if (!((nports > 0 && ports[0] != 0 && ports[0] == dport) ||
	      (nports > 1 && ports[1] != 0 && ports[1] == dport)))
		return false;
	*out = (struct tally_udp){l4 + TALLY_UDP_HLEN, (uint16_t)(ulen - TALLY_UDP_HLEN), tally_be16(l4), dport,
				  4, ip + 12};
	return true;
}

/*
 * Parse one frame. ports[0..nports-1] are the UDP destination ports Tally listens
 * on (host order, 0 entries ignored). Returns TALLY_OK and fills *out, or the
 * counter id (enum tally_counter) of the reason the frame is dropped. Inline:
 * the usual frame costs the worker no call; anything else is named by the
 * general path.
 */
static inline int tally_pkt_parse(const uint8_t *frame, uint32_t len,
				  enum tally_csum_state ip_csum, enum tally_csum_state l4_csum,
				  const uint16_t *ports, unsigned nports, struct tally_udp *out)
{
	if (tally_pkt_fast_ipv4_udp(frame, len, ip_csum, l4_csum, ports, nports, out))
		return TALLY_OK;
	return tally_pkt_parse_general(frame, len, ip_csum, l4_csum, ports, nports, out);
}

#endif
