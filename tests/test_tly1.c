/* SPDX-License-Identifier: BSD-3-Clause */
/* TLY1 parser: every accept and reject case of DESIGN.md, each rejection under its
 * own reason and with nothing appended. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "counters.h"
#include "parse_tly1.h"

static uint8_t dg[70000];
static struct tally_event evs[2048];
static struct tally_evbuf out;

/* A datagram of n events with keys "k0", "k1", ...; returns its length. */
static uint32_t build(uint16_t n, uint8_t flags)
{
	uint32_t o = 24;

	memcpy(dg, "TLY1", 4);
	dg[4] = flags;
	dg[5] = 0;
	tally_put_le16(dg + 6, n);
	tally_put_le64(dg + 8, 0x1234);
	tally_put_le64(dg + 16, 7);
	for (uint16_t i = 0; i < n; i++) {
		int kl = snprintf((char *)dg + o + 25, 8, "k%u", i);

		tally_put_le64(dg + o, 1000 + i);
		tally_put_le64(dg + o + 8, 1700000000000ULL + i);
		tally_put_le64(dg + o + 16, (uint64_t)(int64_t)(i - 5));
		dg[o + 24] = (uint8_t)kl;
		o += 25 + (uint32_t)kl;
	}
	return o;
}

static int parse(uint32_t len, const struct tally_mac_keys *keys)
{
	out = (struct tally_evbuf){evs, 0, 2048, NULL, 0, 0};
	return tally_tly1_parse(dg, len, keys, &out, NULL);
}

static void expect_reject(uint32_t len, int reason)
{
	assert_int_equal(parse(len, NULL), reason);
	assert_int_equal(out.n, 0);
}

static void test_accept(void **st)
{
	struct tally_tly1_hdr h;
	uint32_t len = build(3, TALLY_TLY1_F_ACK_REQ);

	(void)st;
	out = (struct tally_evbuf){evs, 0, 2048, NULL, 0, 0};
	assert_int_equal(tally_tly1_parse(dg, len, NULL, &out, &h), TALLY_OK);
	assert_int_equal(out.n, 3);
	assert_int_equal(h.count, 3);
	assert_int_equal(h.sender_id, 0x1234);
	assert_int_equal(h.batch_seq, 7);
	assert_int_equal(evs[2].event_id, 1002);
	assert_int_equal(evs[2].time_ms, 1700000000002ULL);
	assert_true(evs[0].value == -5.0);
	assert_int_equal(evs[1].key_len, 2);
	assert_memory_equal(evs[1].key, "k1", 2);
}

static void test_max_count(void **st)
{
	(void)st;
	assert_int_equal(parse(build(1024, 0), NULL), TALLY_OK);
	assert_int_equal(out.n, 1024);
	uint32_t l = build(1024, 0);
	tally_put_le16(dg + 6, 1025);
	expect_reject(l, TALLY_C_TLY1_BAD_COUNT);
}

static void test_enospc(void **st)
{
	uint32_t len = build(10, 0);

	(void)st;
	out = (struct tally_evbuf){evs, 2040, 2048, NULL, 0, 0};
	assert_int_equal(tally_tly1_parse(dg, len, NULL, &out, NULL), -ENOSPC);
	assert_int_equal(out.n, 2040);
}

static void test_short(void **st) { (void)st; build(1, 0); expect_reject(23, TALLY_C_TLY1_SHORT); expect_reject(0, TALLY_C_TLY1_SHORT); }
static void test_magic(void **st) { (void)st; uint32_t l = build(1, 0); dg[3] = '2'; expect_reject(l, TALLY_C_TLY1_BAD_MAGIC); }
static void test_reserved(void **st)
{
	(void)st;
	for (int bit = 2; bit < 8; bit++) {
		uint32_t l = build(1, (uint8_t)(1 << bit));
		expect_reject(l, TALLY_C_TLY1_RESERVED_FLAGS);
	}
}
static void test_count_zero(void **st) { (void)st; uint32_t l = build(1, 0); tally_put_le16(dg + 6, 0); expect_reject(l, TALLY_C_TLY1_BAD_COUNT); }
static void test_truncated(void **st)
{
	(void)st;
	uint32_t l = build(3, 0);
	tally_put_le16(dg + 6, 4); /* count larger than the events present */
	expect_reject(l, TALLY_C_TLY1_TRUNCATED);
	l = build(3, 0);
	expect_reject(l - 1, TALLY_C_TLY1_TRUNCATED); /* last key cut */
	expect_reject(24 + 10, TALLY_C_TLY1_TRUNCATED); /* fixed part cut */
}
static void test_trailing(void **st) { (void)st; uint32_t l = build(2, 0); dg[l] = 0; expect_reject(l + 1, TALLY_C_TLY1_TRAILING); }
static void test_zero_key(void **st) { (void)st; uint32_t l = build(2, 0); dg[24 + 24] = 0; expect_reject(l, TALLY_C_TLY1_ZERO_KEY); }
static void test_bad_utf8(void **st)
{
	static const uint8_t bad[][3] = {{0xff, 'a', 'b'}, {0xc0, 0x80, 'a'}, {'a', 0, 'b'},
					 {0xed, 0xa0, 0x80}, {0xe2, 0x82, 'x'}};
	(void)st;
	for (size_t i = 0; i < sizeof(bad) / 3; i++) {
		build(1, 0);
		dg[24 + 24] = 3;
		memcpy(dg + 24 + 25, bad[i], 3);
		expect_reject(24 + 25 + 3, TALLY_C_TLY1_BAD_UTF8);
	}
}
static void test_good_utf8(void **st)
{
	(void)st;
	const char *k = "vid\xc3\xa9o\xe2\x82\xac\xf0\x9f\x98\x80"; /* é € 😀 */
	build(1, 0);
	dg[24 + 24] = (uint8_t)strlen(k);
	memcpy(dg + 24 + 25, k, strlen(k));
	assert_int_equal(parse(24 + 25 + (uint32_t)strlen(k), NULL), TALLY_OK);
	assert_true(tally_utf8_valid((const uint8_t *)"0123456789abcdefghij", 20));
	assert_false(tally_utf8_valid((const uint8_t *)"0123456789\0bcdefghij", 20));
}
static void test_zero_sender(void **st) { (void)st; uint32_t l = build(1, 0); tally_put_le64(dg + 8, 0); expect_reject(l, TALLY_C_TLY1_ZERO_SENDER); }
static void test_keyid_no_mac(void **st) { (void)st; uint32_t l = build(1, 0); dg[5] = 3; expect_reject(l, TALLY_C_TLY1_KEYID_NO_MAC); }
static void test_mac_missing(void **st) { (void)st; uint32_t l = build(1, TALLY_TLY1_F_MAC); expect_reject(l + 15, TALLY_C_TLY1_MAC_MISSING); }

static struct tally_mac_keys keys;

static uint32_t build_mac(uint8_t key_id)
{
	uint32_t l = build(2, TALLY_TLY1_F_MAC);

	dg[5] = key_id;
	crypto_shorthash_siphashx24(dg + l, dg, l, keys.key[7]);
	return l + 16;
}

static void test_mac(void **st)
{
	uint32_t l;

	(void)st;
	memset(keys.key[7], 0x42, 16);
	keys.present[7] = true;
	l = build_mac(7);
	assert_int_equal(parse(l, &keys), TALLY_OK);
	assert_int_equal(out.n, 2);
	l = build_mac(7);
	dg[30] ^= 1; /* any byte before the trailer */
	assert_int_equal(parse(l, &keys), TALLY_C_TLY1_MAC_BAD);
	assert_int_equal(out.n, 0);
	l = build_mac(8);
	assert_int_equal(parse(l, &keys), TALLY_C_TLY1_MAC_NO_KEY);
	l = build_mac(7);
	assert_int_equal(parse(l, NULL), TALLY_C_TLY1_MAC_NO_KEY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accept), cmocka_unit_test(test_max_count),
		cmocka_unit_test(test_enospc), cmocka_unit_test(test_short),
		cmocka_unit_test(test_magic), cmocka_unit_test(test_reserved),
		cmocka_unit_test(test_count_zero), cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_trailing), cmocka_unit_test(test_zero_key),
		cmocka_unit_test(test_bad_utf8), cmocka_unit_test(test_good_utf8),
		cmocka_unit_test(test_zero_sender), cmocka_unit_test(test_keyid_no_mac),
		cmocka_unit_test(test_mac_missing), cmocka_unit_test(test_mac),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
