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

#define VLAN_HLEN 4
#define ET_IPV6 0x86dd
#define ET_VLAN 0x8100
#define ET_QINQ 0x88a8
#define IPV6_HLEN 40

/*
 * Write at p (a header's checksum field, zero while summed) the checksum of what
 * sum covered. The sum is in the host's order, so is its complement: stored as
 * it is, it reads right on the wire. 0 goes out as 0xffff, the same number in
 * one's complement: for UDP 0 would mean "no checksum".
 */
static void put_csum(uint8_t *p, uint64_t sum)
{
	uint16_t c = (uint16_t)~tally_csum_fold(sum);

	c = c ? c : 0xffff;
	memcpy(p, &c, 2);
}

uint32_t tally_put_ip_udp(uint8_t *ip, unsigned ip_version, const uint8_t *src,
			  const uint8_t *dst, uint16_t l4_len)
{
	if (ip_version == 6) {
		memset(ip, 0, IPV6_HLEN);
		ip[0] = 0x60;
		tally_put_be16(ip + 4, l4_len);
		ip[6] = TALLY_PROTO_UDP;
		ip[7] = 64;
		memcpy(ip + 8, src, 16);
		memcpy(ip + 24, dst, 16);
		return IPV6_HLEN;
	}
	memset(ip, 0, 20);
	ip[0] = 0x45;
	tally_put_be16(ip + 2, (uint16_t)(20 + l4_len));
	ip[6] = 0x40; /* DF */
	ip[8] = 64;
	ip[9] = TALLY_PROTO_UDP;
	memcpy(ip + 12, src, 4);
	memcpy(ip + 16, dst, 4);
	put_csum(ip + 10, tally_csum_add(0, ip, 20));
	return 20;
}

void tally_put_udp(uint8_t *udp, const uint8_t *src, const uint8_t *dst, unsigned alen,
		   uint16_t sport, uint16_t dport, uint16_t len)
{
	uint64_t sum = tally_udp_pseudo_sum(len);

	tally_put_be16(udp, sport);
	tally_put_be16(udp + 2, dport);
	tally_put_be16(udp + 4, len);
	tally_put_be16(udp + 6, 0);
	sum = tally_csum_add(sum, src, alen);
	sum = tally_csum_add(sum, dst, alen);
	put_csum(udp + 6, tally_csum_add(sum, udp, len));
}

bool tally_udp_csum_ok(const uint8_t *saddr, const uint8_t *daddr, unsigned alen,
			const uint8_t *udp, uint16_t ulen)
{
	uint64_t sum = tally_udp_pseudo_sum(ulen);

	sum = tally_csum_add(sum, saddr, alen);
	sum = tally_csum_add(sum, daddr, alen);
	sum = tally_csum_add(sum, udp, ulen);
	return tally_csum_fold(sum) == 0xffff;
}

/* Skip up to two VLAN tags; returns the L3 offset or 0 with *drop set. */
#define HOT static inline __attribute__((always_inline))

HOT uint32_t l2(const uint8_t *f, uint32_t len, uint16_t *et, int *drop)
{
	uint32_t off = TALLY_ETH_HLEN;

	if (len < TALLY_ETH_HLEN) {
		*drop = TALLY_C_DROP_RUNT;
		return 0;
	}
	*et = tally_be16(f + 12);
	for (int tags = 0; *et == ET_VLAN || *et == ET_QINQ; tags++) {
		if (tags == 2) {
			*drop = TALLY_C_DROP_VLAN_DEPTH;
			return 0;
		}
		if (len < off + VLAN_HLEN) {
			*drop = TALLY_C_DROP_RUNT;
			return 0;
		}
		*et = tally_be16(f + off + 2);
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

	if (avail < TALLY_UDP_HLEN || (ulen = tally_be16(l4 + 4)) < TALLY_UDP_HLEN || ulen > avail)
		return TALLY_C_DROP_UDP_LEN;
	ck = tally_be16(l4 + 6);
	if (l4_csum == TALLY_CSUM_BAD || (ck == 0 && alen == 16))
		return TALLY_C_DROP_UDP_CSUM;
	if (l4_csum == TALLY_CSUM_UNKNOWN && ck != 0 && !tally_udp_csum_ok(saddr, daddr, alen, l4, ulen))
		return TALLY_C_DROP_UDP_CSUM;
	out->dport = tally_be16(l4 + 2);
	for (i = 0; i < nports; i++)
		if (ports[i] != 0 && ports[i] == out->dport)
			break;
	if (i == nports)
		return TALLY_C_DROP_UDP_PORT;
	out->sport = tally_be16(l4);
	out->payload = l4 + TALLY_UDP_HLEN;
	out->len = (uint16_t)(ulen - TALLY_UDP_HLEN);
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
	tot = tally_be16(ip + 2);
	if (tot < ihl || tot > avail)
		return TALLY_C_DROP_IP_LEN;
	if (ip_csum == TALLY_CSUM_BAD ||
	    (ip_csum == TALLY_CSUM_UNKNOWN && !tally_ip4_csum_ok(ip, ihl)))
		return TALLY_C_DROP_IP_CSUM;
	if ((tally_be16(ip + 6) & 0x3fff) != 0) /* MF flag or a fragment offset */
		return TALLY_C_DROP_IP_FRAG;
	if (ip[9] != TALLY_PROTO_UDP)
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
	plen = tally_be16(ip + 4);
	if (plen > avail - IPV6_HLEN)
		return TALLY_C_DROP_IP_LEN;
	if (ipv6_ext(ip[6]))
		return ip[6] == 44 ? TALLY_C_DROP_IP_FRAG : TALLY_C_DROP_IPV6_EXT;
	if (ip[6] != TALLY_PROTO_UDP)
		return TALLY_C_DROP_IP_PROTO;
	out->ip_version = 6;
	return udp(ip + IPV6_HLEN, plen, ip + 8, ip + 24, 16, l4_csum, ports, nports, out);
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
	if (et == TALLY_ET_IPV4)
		return ipv4(frame + off, len - off, ip_csum, l4_csum, ports, nports, out);
	if (et == ET_IPV6)
		return ipv6(frame + off, len - off, l4_csum, ports, nports, out);
	return TALLY_C_DROP_ETHERTYPE;
}
