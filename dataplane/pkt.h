/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Frame parsing: Ethernet II, up to two VLAN tags (802.1Q/802.1ad), IPv4 (options
 * allowed) or IPv6 (no extension headers), UDP to one of Tally's ports. Takes a
 * plain buffer so it is tested without EAL.
 */
#ifndef TALLY_PKT_H
#define TALLY_PKT_H

#include <stdint.h>

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

/*
 * Parse one frame. ports[0..nports-1] are the UDP destination ports Tally listens
 * on (host order, 0 entries ignored). Returns TALLY_OK and fills *out, or the
 * counter id (enum tally_counter) of the reason the frame is dropped.
 */
int tally_pkt_parse(const uint8_t *frame, uint32_t len, enum tally_csum_state ip_csum,
		    enum tally_csum_state l4_csum, const uint16_t *ports, unsigned nports,
		    struct tally_udp *out);
/* The same without the fast path for plain IPv4/UDP frames; for tests, which
 * check that the two agree. */
int tally_pkt_parse_general(const uint8_t *frame, uint32_t len, enum tally_csum_state ip_csum,
			    enum tally_csum_state l4_csum, const uint16_t *ports, unsigned nports,
			    struct tally_udp *out);

#endif
