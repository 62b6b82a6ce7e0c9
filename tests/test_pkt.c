/* SPDX-License-Identifier: BSD-3-Clause */
/* Frames: what reaches the parsers and every reason the rest is dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "counters.h"
#include "pkt.h"

static uint8_t f[2048];
static const uint16_t ports[2] = {7000, 8125};
static struct tally_udp u;

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

static uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static uint32_t sum16(const uint8_t *p, uint32_t n, uint32_t s)
{
	for (uint32_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	return s;
}

/* Ethernet (+tags) + IPv4/IPv6 + UDP with payload "hello"; returns the length. */
static uint32_t frame(int v6, int tags, int udp_csum, uint16_t dport)
{
	uint32_t o = 12, ip, l4, plen = 5;

	memset(f, 0, sizeof(f));
	for (int t = 0; t < tags; t++, o += 4) {
		put16(f + o, t == 0 && tags > 1 ? 0x88a8 : 0x8100);
		put16(f + o + 2, 10);
	}
	put16(f + o, v6 ? 0x86dd : 0x0800);
	ip = o + 2;
	if (v6) {
		f[ip] = 0x60;
		put16(f + ip + 4, (uint16_t)(8 + plen));
		f[ip + 6] = 17;
		f[ip + 8 + 15] = 2;
		f[ip + 24 + 15] = 1;
		l4 = ip + 40;
	} else {
		f[ip] = 0x45;
		put16(f + ip + 2, (uint16_t)(20 + 8 + plen));
		f[ip + 8] = 64;
		f[ip + 9] = 17;
		f[ip + 12] = 10; f[ip + 15] = 2; f[ip + 16] = 10; f[ip + 19] = 1;
		put16(f + ip + 10, (uint16_t)~fold(sum16(f + ip, 20, 0)));
		l4 = ip + 20;
	}
	put16(f + l4, 5555);
	put16(f + l4 + 2, dport);
	put16(f + l4 + 4, (uint16_t)(8 + plen));
	memcpy(f + l4 + 8, "hello", plen);
	if (udp_csum) {
		uint32_t s = v6 ? sum16(f + ip + 8, 32, 0) : sum16(f + ip + 12, 8, 0);

		s = sum16(f + l4, 8 + plen, s + 17 + 8 + plen);
		uint16_t c = (uint16_t)~fold(s);

		put16(f + l4 + 6, c ? c : 0xffff);
	}
	return l4 + 8 + plen;
}

static int parse(uint32_t len)
{
	return tally_pkt_parse(f, len, TALLY_CSUM_UNKNOWN, TALLY_CSUM_UNKNOWN, ports, 2, &u);
}

static void test_ipv4(void **st)
{
	(void)st;
	assert_int_equal(parse(frame(0, 0, 0, 7000)), TALLY_OK); /* checksum 0: none */
	assert_int_equal(u.len, 5);
	assert_memory_equal(u.payload, "hello", 5);
	assert_int_equal(u.dport, 7000);
	assert_int_equal(u.sport, 5555);
	assert_int_equal(u.ip_version, 4);
	assert_int_equal(parse(frame(0, 0, 1, 8125)), TALLY_OK);
	assert_int_equal(parse(frame(0, 1, 1, 7000)), TALLY_OK);  /* 802.1Q */
	assert_int_equal(parse(frame(0, 2, 1, 7000)), TALLY_OK);  /* QinQ */
	assert_int_equal(parse(frame(0, 3, 1, 7000)), TALLY_C_DROP_VLAN_DEPTH);
	/* padding after the IP total length is ignored */
	uint32_t n = frame(0, 0, 1, 7000);
	assert_int_equal(parse(n + 20), TALLY_OK);
	assert_int_equal(u.len, 5);
}

static void test_ipv4_options(void **st)
{
	uint8_t opt[2048];
	uint32_t n = frame(0, 0, 0, 7000);

	(void)st;
	/* rebuild with IHL 6: insert 4 option bytes (NOPs) and fix lengths/checksum */
	memcpy(opt, f, 34);
	memset(opt + 34, 1, 4);
	memcpy(opt + 38, f + 34, n - 34);
	memcpy(f, opt, n + 4);
	f[14] = 0x46;
	put16(f + 16, (uint16_t)(24 + 8 + 5));
	put16(f + 24, 0);
	put16(f + 24, (uint16_t)~fold(sum16(f + 14, 24, 0)));
	assert_int_equal(parse(n + 4), TALLY_OK);
	assert_memory_equal(u.payload, "hello", 5);
}

static void test_ipv6(void **st)
{
	(void)st;
	assert_int_equal(parse(frame(1, 0, 1, 7000)), TALLY_OK);
	assert_int_equal(u.ip_version, 6);
	assert_memory_equal(u.payload, "hello", 5);
	assert_int_equal(parse(frame(1, 0, 0, 7000)), TALLY_C_DROP_UDP_CSUM); /* 0 invalid on v6 */
	uint32_t n = frame(1, 0, 1, 7000);
	f[14 + 6] = 0; /* hop-by-hop extension header */
	assert_int_equal(parse(n), TALLY_C_DROP_IPV6_EXT);
	n = frame(1, 0, 1, 7000);
	f[14 + 6] = 44;
	assert_int_equal(parse(n), TALLY_C_DROP_IP_FRAG);
	n = frame(1, 0, 1, 7000);
	f[14 + 6] = 6;
	assert_int_equal(parse(n), TALLY_C_DROP_IP_PROTO);
}

static void test_drops(void **st)
{
	uint32_t n;

	(void)st;
	assert_int_equal(parse(10), TALLY_C_DROP_RUNT);
	n = frame(0, 0, 1, 7000);
	put16(f + 12, 0x0806);
	assert_int_equal(parse(n), TALLY_C_DROP_ETHERTYPE);
	n = frame(0, 0, 1, 7000);
	assert_int_equal(parse(20), TALLY_C_DROP_IP_HDR);
	f[14] = 0x44; /* IHL 4 */
	assert_int_equal(parse(n), TALLY_C_DROP_IP_HDR);
	n = frame(0, 0, 1, 7000);
	assert_int_equal(parse(n - 1), TALLY_C_DROP_IP_LEN); /* total length past the frame */
	n = frame(0, 0, 1, 7000);
	f[14 + 10] ^= 0xff;
	assert_int_equal(parse(n), TALLY_C_DROP_IP_CSUM);
	assert_int_equal(tally_pkt_parse(f, n, TALLY_CSUM_GOOD, TALLY_CSUM_UNKNOWN, ports, 2, &u),
			 TALLY_OK); /* the NIC said good: trusted */
	n = frame(0, 0, 1, 7000);
	assert_int_equal(tally_pkt_parse(f, n, TALLY_CSUM_BAD, TALLY_CSUM_UNKNOWN, ports, 2, &u),
			 TALLY_C_DROP_IP_CSUM);
	n = frame(0, 0, 1, 7000);
	f[14 + 6] = 0x20; /* MF */
	f[14 + 10] = f[14 + 11] = 0;
	put16(f + 24, (uint16_t)~fold(sum16(f + 14, 20, 0)));
	assert_int_equal(parse(n), TALLY_C_DROP_IP_FRAG);
	n = frame(0, 0, 1, 7000);
	f[14 + 9] = 6;
	f[14 + 10] = f[14 + 11] = 0;
	put16(f + 24, (uint16_t)~fold(sum16(f + 14, 20, 0)));
	assert_int_equal(parse(n), TALLY_C_DROP_IP_PROTO);
	n = frame(0, 0, 1, 7000);
	f[n - 1] ^= 1; /* payload changed: checksum fails */
	assert_int_equal(parse(n), TALLY_C_DROP_UDP_CSUM);
	n = frame(0, 0, 1, 7000);
	put16(f + 34 + 4, 100); /* UDP length past the IP payload */
	assert_int_equal(parse(n), TALLY_C_DROP_UDP_LEN);
	put16(f + 34 + 4, 4);   /* below the UDP header */
	assert_int_equal(parse(n), TALLY_C_DROP_UDP_LEN);
	assert_int_equal(parse(frame(0, 0, 1, 53)), TALLY_C_DROP_UDP_PORT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4), cmocka_unit_test(test_ipv4_options),
		cmocka_unit_test(test_ipv6), cmocka_unit_test(test_drops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
