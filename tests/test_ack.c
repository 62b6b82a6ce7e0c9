/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TLA1 ack frames: a request (IPv4, IPv4 behind two VLAN tags, IPv6 behind one)
 * is parsed, turned into an ack, and the ack is parsed back with software
 * checksum verification: it must be a valid frame to the request's source MAC,
 * address and port, from the address and port the request went to, with the
 * VLAN tags kept and the 24-byte TLA1 payload. And the status a rejected
 * datagram gets, for every TLY1 drop reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ack.h"
#include "counters.h"
#include "pkt.h"
#include "wire.h"

static const uint8_t mac_a[6] = {2, 0, 0, 0, 0, 0xaa}, mac_b[6] = {2, 0, 0, 0, 0, 0xbb};

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

/* A request from mac_b / addr 0x0a.. port 40000 to mac_a / 0x0b.. port 7000
 * with nvlan tags; the parse is told checksums are good, so the request's
 * need not be right. */
static uint32_t request(uint8_t *f, int v6, int nvlan)
{
	uint32_t o = 12, ip;

	memcpy(f, mac_a, 6);
	memcpy(f + 6, mac_b, 6);
	for (int i = 0; i < nvlan; i++, o += 4) {
		put16(f + o, i == 0 && nvlan == 2 ? 0x88a8 : 0x8100);
		put16(f + o + 2, (uint16_t)(100 + i));
	}
	put16(f + o, v6 ? 0x86dd : 0x0800);
	ip = o + 2;
	memset(f + ip, 0, 40);
	if (v6) {
		f[ip] = 0x60;
		put16(f + ip + 4, 8 + 24);
		f[ip + 6] = 17;
		f[ip + 7] = 64;
		memset(f + ip + 8, 0x0a, 16);
		memset(f + ip + 24, 0x0b, 16);
		o = ip + 40;
	} else {
		f[ip] = 0x45;
		put16(f + ip + 2, 20 + 8 + 24);
		f[ip + 8] = 64;
		f[ip + 9] = 17;
		memset(f + ip + 12, 0x0a, 4);
		memset(f + ip + 16, 0x0b, 4);
		o = ip + 20;
	}
	put16(f + o, 40000);
	put16(f + o + 2, 7000);
	put16(f + o + 4, 8 + 24);
	put16(f + o + 6, 0x1234); /* not 0: invalid over IPv6 even when "good" */
	memset(f + o + 8, 'x', 24);
	return o + 8 + 24;
}

static void round_trip(int v6, int nvlan)
{
	uint8_t req[128], ack[TALLY_ACK_FRAME_MAX];
	const uint16_t ours[1] = {7000}, peer[1] = {40000};
	struct tally_udp u, r;
	struct tally_ack a;
	uint32_t len = request(req, v6, nvlan), alen;
	unsigned al = v6 ? 16 : 4;

	assert_int_equal(tally_pkt_parse(req, len, TALLY_CSUM_GOOD, TALLY_CSUM_GOOD, ours, 1, &u),
			 TALLY_OK);
	assert_int_equal(tally_ack_from_udp(&a, req, &u, 0x1122, 77), 0);
	alen = tally_ack_frame(&a, TALLY_ACK_COMMITTED, ack);
	assert_int_equal(alen, 14 + 4 * nvlan + (v6 ? 40 : 20) + 8 + 24);
	/* software checksum verification (UNKNOWN) of both headers */
	assert_int_equal(tally_pkt_parse(ack, alen, TALLY_CSUM_UNKNOWN, TALLY_CSUM_UNKNOWN, peer, 1,
					 &r), TALLY_OK);
	assert_memory_equal(ack, mac_b, 6);
	assert_memory_equal(ack + 6, mac_a, 6);
	assert_memory_equal(ack + 12, req + 12, 4 * nvlan + 2); /* tags and ethertype kept */
	assert_int_equal(r.ip_version, v6 ? 6 : 4);
	assert_int_equal(r.sport, 7000);
	assert_int_equal(r.dport, 40000);
	assert_memory_equal(r.saddr, u.saddr + al, al); /* from the request's destination */
	assert_memory_equal(r.saddr + al, u.saddr, al); /* to its source */
	assert_int_equal(r.len, TALLY_TLA1_LEN);
	assert_memory_equal(r.payload, "TLA1", 4);
	assert_int_equal(r.payload[4], TALLY_ACK_COMMITTED);
	assert_int_equal(tally_le64(r.payload + 8), 0x1122);
	assert_int_equal(tally_le64(r.payload + 16), 77);
}

static void test_ipv4(void **s) { (void)s; round_trip(0, 0); }
static void test_ipv4_qinq(void **s) { (void)s; round_trip(0, 2); }
static void test_ipv6_vlan(void **s) { (void)s; round_trip(1, 1); }

/* A flipped payload bit must break the UDP checksum: the ack really carries one. */
static void test_checksum_covers_payload(void **s)
{
	uint8_t req[128], ack[TALLY_ACK_FRAME_MAX];
	const uint16_t ours[1] = {7000}, peer[1] = {40000};
	struct tally_udp u, r;
	struct tally_ack a;
	uint32_t alen;

	(void)s;
	assert_int_equal(tally_pkt_parse(req, request(req, 0, 0), TALLY_CSUM_GOOD, TALLY_CSUM_GOOD,
					 ours, 1, &u), TALLY_OK);
	tally_ack_from_udp(&a, req, &u, 1, 2);
	alen = tally_ack_frame(&a, TALLY_ACK_ACCEPTED, ack);
	ack[alen - 1] ^= 1;
	assert_int_equal(tally_pkt_parse(ack, alen, TALLY_CSUM_UNKNOWN, TALLY_CSUM_UNKNOWN, peer, 1,
					 &r), TALLY_C_DROP_UDP_CSUM);
}

static void test_reject_status(void **s)
{
	(void)s;
	assert_int_equal(tally_ack_reject_status(TALLY_C_TLY1_SHORT), -1);
	assert_int_equal(tally_ack_reject_status(TALLY_C_TLY1_BAD_MAGIC), -1);
	assert_int_equal(tally_ack_reject_status(TALLY_C_TLY1_ZERO_SENDER), -1);
	for (int c = TALLY_C_TLY1_SHORT; c <= TALLY_C_TLY1_MAC_REQUIRED; c++) {
		int st = tally_ack_reject_status(c);

		if (c == TALLY_C_TLY1_MAC_MISSING || c == TALLY_C_TLY1_MAC_NO_KEY ||
		    c == TALLY_C_TLY1_MAC_BAD || c == TALLY_C_TLY1_MAC_REQUIRED)
			assert_int_equal(st, TALLY_ACK_UNAUTHENTICATED);
		else if (st >= 0)
			assert_int_equal(st, TALLY_ACK_MALFORMED);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4),
		cmocka_unit_test(test_ipv4_qinq),
		cmocka_unit_test(test_ipv6_vlan),
		cmocka_unit_test(test_checksum_covers_payload),
		cmocka_unit_test(test_reject_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
