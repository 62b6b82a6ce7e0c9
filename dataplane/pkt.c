/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Frame parsing down to the UDP payload: Ethernet II, up to two VLAN tags,
 * IPv4 (options allowed) or IPv6 (no extension headers), UDP to a Tally port.
 * Every other frame is dropped under its own reason; none reaches a parser.
 * Lengths come from the headers: bytes after the IP total length are padding.
 */
#include <stdbool.h>
#include <string.h>

#include "counters.h"
#include "pkt.h"

#define ETH_HLEN 14
#define VLAN_HLEN 4
#define ET_IPV4 0x0800
#define ET_IPV6 0x86dd
#define ET_VLAN 0x8100
#define ET_QINQ 0x88a8
#define IPV6_HLEN 40
#define UDP_HLEN 8
#define PROTO_UDP 17

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/*
 * One's-complement sum of p[0..len), 8 bytes at a time, in the host's byte
 * order (RFC 1071: the sum of byte-swapped words is the byte-swapped sum, and a
 * packet verifies when the folded sum of everything, checksum included, is
 * 0xffff, which reads the same either way). len must be even except for the
 * last buffer summed.
 */
/* sum + v with the end-around carry of one's-complement arithmetic. */
static inline uint64_t add_carry(uint64_t sum, uint64_t v)
{
	sum += v;
	return sum + (sum < v);
}

static inline uint64_t csum_add(uint64_t sum, const uint8_t *p, uint32_t len)
{
	uint64_t w = 0;
	uint32_t v = 0;
	uint16_t h = 0;

	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&w, p, 8);
		sum = add_carry(sum, w);
	}
	if (len >= 4) {
		memcpy(&v, p, 4);
		sum = add_carry(sum, v);
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		memcpy(&h, p, 2);
		sum = add_carry(sum, h);
		p += 2;
		len -= 2;
	}
	/* a last odd byte is the high half of a big-endian word */
	return len ? add_carry(sum, p[0]) : sum;
}

static inline uint16_t csum_fold(uint64_t sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static inline uint16_t bswap16(uint16_t v) { return (uint16_t)(v << 8 | v >> 8); }

/* The IPv4 header checksum; the usual 20-byte header is three loads. */
static inline bool ip4_csum_ok(const uint8_t *ip, uint32_t ihl)
{
	uint64_t a, b, sum;
	uint32_t c;

	if (ihl != 20)
		return csum_fold(csum_add(0, ip, ihl)) == 0xffff;
	memcpy(&a, ip, 8);
	memcpy(&b, ip + 8, 8);
	memcpy(&c, ip + 16, 4);
	sum = add_carry(add_carry(a, b), c);
	return csum_fold(sum) == 0xffff;
}

/* True if the UDP checksum (pseudo-header included) verifies. */
static bool udp_csum_ok(const uint8_t *saddr, const uint8_t *daddr, unsigned alen,
			const uint8_t *udp, uint16_t ulen)
{
	/* protocol and length are big-endian words of the pseudo-header */
	uint64_t sum = (uint64_t)bswap16(PROTO_UDP) + bswap16(ulen);

	sum = csum_add(sum, saddr, alen);
	sum = csum_add(sum, daddr, alen);
	sum = csum_add(sum, udp, ulen);
	return csum_fold(sum) == 0xffff;
}

/* Skip up to two VLAN tags; returns the L3 offset or 0 with *drop set. */
#define HOT static inline __attribute__((always_inline))

HOT uint32_t l2(const uint8_t *f, uint32_t len, uint16_t *et, int *drop)
{
	uint32_t off = ETH_HLEN;

	if (len < ETH_HLEN) {
		*drop = TALLY_C_DROP_RUNT;
		return 0;
	}
	*et = be16(f + 12);
	for (int tags = 0; *et == ET_VLAN || *et == ET_QINQ; tags++) {
		if (tags == 2) {
			*drop = TALLY_C_DROP_VLAN_DEPTH;
			return 0;
		}
		if (len < off + VLAN_HLEN) {
			*drop = TALLY_C_DROP_RUNT;
			return 0;
		}
		*et = be16(f + off + 2);
		off += VLAN_HLEN;
	}
	return off;
}

HOT int udp(const uint8_t *l4, uint32_t avail, const uint8_t *saddr, const uint8_t *daddr,
	       unsigned alen, enum tally_csum_state l4_csum, const uint16_t *ports,
	       unsigned nports, struct tally_udp *out)
{
	uint16_t ulen, ck;
	unsigned i;

	if (avail < UDP_HLEN || (ulen = be16(l4 + 4)) < UDP_HLEN || ulen > avail)
		return TALLY_C_DROP_UDP_LEN;
	ck = be16(l4 + 6);
	if (l4_csum == TALLY_CSUM_BAD || (ck == 0 && alen == 16))
		return TALLY_C_DROP_UDP_CSUM;
	if (l4_csum == TALLY_CSUM_UNKNOWN && ck != 0 && !udp_csum_ok(saddr, daddr, alen, l4, ulen))
		return TALLY_C_DROP_UDP_CSUM;
	out->dport = be16(l4 + 2);
	for (i = 0; i < nports; i++)
		if (ports[i] != 0 && ports[i] == out->dport)
			break;
	if (i == nports)
		return TALLY_C_DROP_UDP_PORT;
	out->sport = be16(l4);
	out->payload = l4 + UDP_HLEN;
	out->len = (uint16_t)(ulen - UDP_HLEN);
	out->saddr = saddr;
	return TALLY_OK;
}

HOT int ipv4(const uint8_t *ip, uint32_t avail, enum tally_csum_state ip_csum,
		enum tally_csum_state l4_csum, const uint16_t *ports, unsigned nports,
		struct tally_udp *out)
{
	uint32_t ihl, tot;

	if (avail < 20 || (ip[0] >> 4) != 4 || (ihl = (ip[0] & 0xfu) * 4u) < 20 || ihl > avail)
		return TALLY_C_DROP_IP_HDR;
	tot = be16(ip + 2);
	if (tot < ihl || tot > avail)
		return TALLY_C_DROP_IP_LEN;
	if (ip_csum == TALLY_CSUM_BAD ||
	    (ip_csum == TALLY_CSUM_UNKNOWN && !ip4_csum_ok(ip, ihl)))
		return TALLY_C_DROP_IP_CSUM;
	if ((be16(ip + 6) & 0x3fff) != 0) /* MF flag or a fragment offset */
		return TALLY_C_DROP_IP_FRAG;
	if (ip[9] != PROTO_UDP)
		return TALLY_C_DROP_IP_PROTO;
	out->ip_version = 4;
	return udp(ip + ihl, tot - ihl, ip + 12, ip + 16, 4, l4_csum, ports, nports, out);
}

static bool ipv6_ext(uint8_t nh)
{
	switch (nh) {
	case 0: case 43: case 44: case 50: case 51: case 60:
	case 135: case 139: case 140: case 253: case 254:
		return true;
	}
	return false;
}

static int ipv6(const uint8_t *ip, uint32_t avail, enum tally_csum_state l4_csum,
		const uint16_t *ports, unsigned nports, struct tally_udp *out)
{
	uint32_t plen;

	if (avail < IPV6_HLEN || (ip[0] >> 4) != 6)
		return TALLY_C_DROP_IP_HDR;
	plen = be16(ip + 4);
	if (plen > avail - IPV6_HLEN)
		return TALLY_C_DROP_IP_LEN;
	if (ipv6_ext(ip[6]))
		return ip[6] == 44 ? TALLY_C_DROP_IP_FRAG : TALLY_C_DROP_IPV6_EXT;
	if (ip[6] != PROTO_UDP)
		return TALLY_C_DROP_IP_PROTO;
	out->ip_version = 6;
	return udp(ip + IPV6_HLEN, plen, ip + 8, ip + 24, 16, l4_csum, ports, nports, out);
}

/*
 * The frame nearly every producer sends: Ethernet, IPv4 without options, UDP,
 * no fragment. This only ever accepts, with the same rules as the general path
 * below; a frame it does not accept goes there, which names the reason.
 * (tests/test_pkt.c checks the two agree.) ~40 instructions against ~140.
 */
HOT bool fast_ipv4_udp(const uint8_t *f, uint32_t len, enum tally_csum_state ip_csum,
		       enum tally_csum_state l4_csum, const uint16_t *ports, unsigned nports,
		       struct tally_udp *out)
{
	const uint8_t *ip = f + ETH_HLEN, *l4 = ip + 20;
	uint32_t tot, ulen;
	uint16_t dport;

	if (len < ETH_HLEN + 28 || be16(f + 12) != ET_IPV4 || ip[0] != 0x45 ||
	    ip[9] != PROTO_UDP || (be16(ip + 6) & 0x3fff) != 0)
		return false;
	tot = be16(ip + 2);
	ulen = be16(l4 + 4);
	if (tot < 28 || tot > len - ETH_HLEN || ulen < UDP_HLEN || ulen > tot - 20)
		return false;
	if (ip_csum != TALLY_CSUM_GOOD && (ip_csum == TALLY_CSUM_BAD || !ip4_csum_ok(ip, 20)))
		return false;
	/* the port's verdict first: BAD drops even a zero ("none") checksum, as below */
	if (l4_csum == TALLY_CSUM_BAD || (l4_csum == TALLY_CSUM_UNKNOWN && be16(l4 + 6) != 0 &&
					  !udp_csum_ok(ip + 12, ip + 16, 4, l4, (uint16_t)ulen)))
		return false;
	dport = be16(l4 + 2);
	if (!((nports > 0 && ports[0] != 0 && ports[0] == dport) ||
	      (nports > 1 && ports[1] != 0 && ports[1] == dport)))
		return false;
	*out = (struct tally_udp){l4 + UDP_HLEN, (uint16_t)(ulen - UDP_HLEN), be16(l4), dport,
				  4, ip + 12};
	return true;
}

int tally_pkt_parse_general(const uint8_t *frame, uint32_t len, enum tally_csum_state ip_csum,
			    enum tally_csum_state l4_csum, const uint16_t *ports, unsigned nports,
			    struct tally_udp *out)
{
	uint16_t et = 0;
	int drop = TALLY_OK;
	uint32_t off = l2(frame, len, &et, &drop);

	if (off == 0)
		return drop;
	if (et == ET_IPV4)
		return ipv4(frame + off, len - off, ip_csum, l4_csum, ports, nports, out);
	if (et == ET_IPV6)
		return ipv6(frame + off, len - off, l4_csum, ports, nports, out);
	return TALLY_C_DROP_ETHERTYPE;
}

int tally_pkt_parse(const uint8_t *frame, uint32_t len, enum tally_csum_state ip_csum,
		    enum tally_csum_state l4_csum, const uint16_t *ports, unsigned nports,
		    struct tally_udp *out)
{
	if (fast_ipv4_udp(frame, len, ip_csum, l4_csum, ports, nports, out))
		return TALLY_OK;
	return tally_pkt_parse_general(frame, len, ip_csum, l4_csum, ports, nports, out);
}
