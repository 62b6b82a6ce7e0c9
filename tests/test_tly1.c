/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TLY1 parser: every accept and reject case of DESIGN.md, each rejection under its
 * own reason and with nothing appended. Keys byte by byte: for every length 1..40
 * and every position, plain ASCII, NUL and stray bytes, valid 2/3/4-byte UTF-8
 * (at the end, across 8-byte words), overlongs, surrogates and cut sequences,
 * and random keys against a reference decoder; each datagram in a buffer that
 * ends exactly where it does, so ASan sees any read past it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "counters.h"
#include "parse_tly1.h"

#define TEST_SEED 0x746c7931
#include "test_rng.h"

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

/* Rotation: a key replaced under its id (or removed) stays in old[] for its
 * grace period; datagrams under it still verify, and say so (mac_old). */
static void test_mac_rotation(void **st)
{
	static struct tally_mac_keys m;
	struct tally_tly1_hdr h;
	uint32_t l;

	(void)st;
	out = (struct tally_evbuf){evs, 0, 2048, NULL, 0, 0};
	memset(&keys, 0, sizeof(keys));
	memset(keys.key[7], 0x42, 16);
	l = build_mac(7); /* signed with the old key 0x42.. */
	memset(&m, 0, sizeof(m));
	memset(m.key[7], 0x43, 16);
	m.present[7] = true;
	assert_int_equal(tally_tly1_parse(dg, l, &m, &out, &h), TALLY_C_TLY1_MAC_BAD);
	memset(m.old[7], 0x42, 16);
	m.old_present[7] = true;
	out.n = 0;
	assert_int_equal(tally_tly1_parse(dg, l, &m, &out, &h), TALLY_OK);
	assert_true(h.mac_old);
	assert_int_equal(out.n, 2);
	memset(keys.key[7], 0x43, 16); /* the new key: current, not old */
	l = build_mac(7);
	out.n = 0;
	assert_int_equal(tally_tly1_parse(dg, l, &m, &out, &h), TALLY_OK);
	assert_false(h.mac_old);
	m.present[7] = false; /* removed: only the grace key is left */
	memset(keys.key[7], 0x42, 16);
	l = build_mac(7);
	out.n = 0;
	assert_int_equal(tally_tly1_parse(dg, l, &m, &out, &h), TALLY_OK);
	m.old_present[7] = false; /* grace over */
	assert_int_equal(tally_tly1_parse(dg, l, &m, &out, &h), TALLY_C_TLY1_MAC_NO_KEY);
}

/* require_mac: a datagram without a MAC is dropped under its own reason. */
static void test_mac_required(void **st)
{
	static struct tally_mac_keys m;
	uint32_t l = build(1, 0);

	(void)st;
	memset(&m, 0, sizeof(m));
	assert_int_equal(parse(l, &m), TALLY_OK);
	m.require = true;
	build(1, 0);
	assert_int_equal(parse(l, &m), TALLY_C_TLY1_MAC_REQUIRED);
	assert_int_equal(out.n, 0);
}

/* ---- Keys, byte by byte ---- */

enum { KEY_MAX_TESTED = 40 };


/* RFC 3629 by bit patterns (not the parser's ranges): no NUL, no overlong, no
 * surrogate, nothing above U+10FFFF, no cut sequence. */
static bool ref_utf8(const uint8_t *s, uint32_t n)
{
	static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};

	for (uint32_t i = 0; i < n;) {
		uint32_t c = s[i], need, cp;

		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			need = 1, cp = c & 0x1f;
		else if ((c & 0xf0) == 0xe0)
			need = 2, cp = c & 0x0f;
		else if ((c & 0xf8) == 0xf0)
			need = 3, cp = c & 0x07;
		else
			return false;
		if (n - i - 1 < need)
			return false;
		for (uint32_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3fu);
		}
		if (cp < min[need] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

/*
 * A datagram whose last event's key is key[0..n), in a malloc'd buffer of
 * exactly its length: the key's last byte is the buffer's last. shift > 0 puts
 * an event with a shift-byte key first, moving the key's address mod 8.
 */
static uint8_t *key_dgram(const uint8_t *key, uint32_t n, unsigned shift, uint32_t *len)
{
	uint32_t o = 24, l = 24 + (shift ? 25 + shift : 0) + 25 + n;
	uint8_t *p = malloc(l);

	assert_non_null(p);
	memcpy(p, "TLY1", 4);
	p[4] = p[5] = 0;
	tally_put_le16(p + 6, (uint16_t)(shift ? 2 : 1));
	tally_put_le64(p + 8, 0x1234);
	tally_put_le64(p + 16, 1);
	if (shift) {
		memset(p + o, 0, 24);
		p[o + 24] = (uint8_t)shift;
		memset(p + o + 25, 's', shift);
		o += 25 + shift;
	}
	tally_put_le64(p + o, 77);
	tally_put_le64(p + o + 8, 1700000000000ULL);
	tally_put_le64(p + o + 16, 1);
	p[o + 24] = (uint8_t)n;
	memcpy(p + o + 25, key, n);
	*len = l;
	return p;
}

/* Parse key[0..n) as the last key of a datagram; the verdict must be the
 * reference's, the event must point at the key, and tally_utf8_valid on an
 * exact copy must agree. Returns the parser's result. */
static int parse_key(const uint8_t *key, uint32_t n, unsigned shift)
{
	uint32_t len;
	uint8_t *p = key_dgram(key, n, shift, &len), *k = malloc(n);
	struct tally_evbuf ob = {evs, 0, 2048, NULL, 0, 0};
	int rc = tally_tly1_parse(p, len, NULL, &ob, NULL);
	bool want = ref_utf8(key, n);

	assert_non_null(k);
	memcpy(k, key, n);
	assert_int_equal(tally_utf8_valid(k, n), want);
	assert_int_equal(rc, want ? TALLY_OK : TALLY_C_TLY1_BAD_UTF8);
	assert_int_equal(ob.n, want ? (shift ? 2 : 1) : 0);
	if (want) {
		assert_ptr_equal(evs[ob.n - 1].key, p + len - n);
		assert_int_equal(evs[ob.n - 1].key_len, n);
	}
	free(k);
	free(p);
	return rc;
}

/* Printable and control ASCII, never NUL. */
static void ascii_key(uint8_t *k, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		k[i] = (uint8_t)(1 + below(0x7f));
}

static void test_key_ascii(void **st)
{
	uint8_t k[KEY_MAX_TESTED];

	(void)st;
	for (uint32_t n = 1; n <= KEY_MAX_TESTED; n++)
		for (unsigned shift = 0; shift < 8; shift++) {
			ascii_key(k, n);
			assert_int_equal(parse_key(k, n, shift), TALLY_OK);
			memset(k, 0x7f, n);
			assert_int_equal(parse_key(k, n, shift), TALLY_OK);
			memset(k, 0x01, n);
			assert_int_equal(parse_key(k, n, shift), TALLY_OK);
		}
}

/* One byte that cannot stand where it is, at every position of every length:
 * NUL, continuation bytes, bytes that never start a sequence, and lead bytes
 * followed by ASCII or by the end of the key. */
static void test_key_bad_byte_each_position(void **st)
{
	static const uint8_t bad[] = {0x00, 0x80, 0x9f, 0xbf, 0xc0, 0xc1, 0xf5,
				      0xf8, 0xfe, 0xff, 0xc3, 0xe2, 0xf0, 0xf4};
	uint8_t k[KEY_MAX_TESTED];

	(void)st;
	for (uint32_t n = 1; n <= KEY_MAX_TESTED; n++)
		for (uint32_t pos = 0; pos < n; pos++)
			for (size_t b = 0; b < sizeof(bad); b++) {
				ascii_key(k, n);
				k[pos] = bad[b];
				assert_int_equal(parse_key(k, n, (unsigned)(n + pos + b) % 8),
						 TALLY_C_TLY1_BAD_UTF8);
			}
}

struct seq {
	uint8_t n, b[4];
};

/* Put s at pos of an ASCII key of length n. */
static void key_with(uint8_t *k, uint32_t n, uint32_t pos, const struct seq *s)
{
	ascii_key(k, n);
	memcpy(k + pos, s->b, s->n);
}

/* Valid 2, 3 and 4-byte sequences (the smallest and largest of each length, and
 * either side of the surrogates) at every position, so also at the very end and
 * across every 8-byte word boundary; and one more at the end. */
static void test_key_utf8_each_position(void **st)
{
	static const struct seq ok[] = {
		{2, {0xc2, 0x80}},	     {2, {0xc3, 0xa9}},		  {2, {0xdf, 0xbf}},
		{3, {0xe0, 0xa0, 0x80}},     {3, {0xe2, 0x82, 0xac}},	  {3, {0xed, 0x9f, 0xbf}},
		{3, {0xee, 0x80, 0x80}},     {3, {0xef, 0xbf, 0xbf}},	  {4, {0xf0, 0x90, 0x80, 0x80}},
		{4, {0xf0, 0x9f, 0x98, 0x80}}, {4, {0xf3, 0xbf, 0xbf, 0xbf}}, {4, {0xf4, 0x8f, 0xbf, 0xbf}},
	};
	uint8_t k[KEY_MAX_TESTED];

	(void)st;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		for (uint32_t n = ok[i].n; n <= KEY_MAX_TESTED; n++)
			for (uint32_t pos = 0; pos + ok[i].n <= n; pos++) {
				const struct seq *end = &ok[(i + pos) % (sizeof(ok) / sizeof(ok[0]))];

				key_with(k, n, pos, &ok[i]);
				assert_int_equal(parse_key(k, n, (unsigned)(pos % 8)), TALLY_OK);
				if (pos + ok[i].n + end->n <= n) {
					memcpy(k + n - end->n, end->b, end->n);
					assert_int_equal(parse_key(k, n, (unsigned)(n % 8)), TALLY_OK);
				}
			}
}

/* Sequences that look like UTF-8 but are not, at every position: overlongs,
 * surrogates, above U+10FFFF, a continuation byte missing, and sequences cut
 * by the end of the key. */
static void test_key_bad_utf8_each_position(void **st)
{
	static const struct seq bad[] = {
		{2, {0xc0, 0x80}},	     {2, {0xc1, 0xbf}},		  {3, {0xe0, 0x80, 0x80}},
		{3, {0xe0, 0x9f, 0xbf}},     {4, {0xf0, 0x80, 0x80, 0x80}}, {4, {0xf0, 0x8f, 0xbf, 0xbf}},
		{3, {0xed, 0xa0, 0x80}},     {3, {0xed, 0xb0, 0x80}},	  {3, {0xed, 0xbf, 0xbf}},
		{4, {0xf4, 0x90, 0x80, 0x80}}, {4, {0xf7, 0xbf, 0xbf, 0xbf}}, {2, {0xc3, 0x28}},
		{3, {0xe2, 0x28, 0xa1}},     {3, {0xe2, 0x82, 0x28}},	  {4, {0xf0, 0x28, 0x8c, 0xbc}},
		{4, {0xf0, 0x90, 0x28, 0xbc}}, {4, {0xf0, 0x90, 0x80, 0x28}}, {3, {0xc3, 0xa9, 0xa9}},
	};
	static const struct seq cut[] = {
		{1, {0xc3}}, {1, {0xe2}}, {2, {0xe2, 0x82}}, {2, {0xf0, 0x9f}}, {3, {0xf0, 0x9f, 0x98}},
	};
	uint8_t k[KEY_MAX_TESTED];

	(void)st;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		for (uint32_t n = bad[i].n; n <= KEY_MAX_TESTED; n++)
			for (uint32_t pos = 0; pos + bad[i].n <= n; pos++) {
				key_with(k, n, pos, &bad[i]);
				assert_int_equal(parse_key(k, n, (unsigned)((pos + i) % 8)),
						 TALLY_C_TLY1_BAD_UTF8);
			}
	for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++)
		for (uint32_t n = cut[i].n; n <= KEY_MAX_TESTED; n++)
			for (unsigned shift = 0; shift < 8; shift++) {
				key_with(k, n, n - cut[i].n, &cut[i]);
				assert_int_equal(parse_key(k, n, shift), TALLY_C_TLY1_BAD_UTF8);
			}
}

/* A byte chosen to make near-valid UTF-8 likely: ASCII, NUL, continuation
 * bytes, and every kind of lead byte. */
static uint8_t near_utf8_byte(void)
{
	static const uint8_t lead[] = {0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xef,
				       0xf0, 0xf1, 0xf4, 0xf5, 0xff};

	switch (below(8)) {
	case 0:
		return 0;
	case 1:
	case 2:
	case 3:
		return (uint8_t)(0x80 + below(0x40));
	case 4:
	case 5:
		return lead[below(sizeof(lead))];
	default:
		return (uint8_t)(1 + below(0x7f));
	}
}

/* Random keys of 1..40 bytes, mostly ASCII with some near-UTF-8 bytes: the
 * parser's verdict is the reference decoder's. Both verdicts must occur. */
static void test_key_random_vs_reference(void **st)
{
	uint8_t k[KEY_MAX_TESTED];
	unsigned good = 0;

	(void)st;
	for (int round = 0; round < 60000; round++) {
		uint32_t n = (uint32_t)(1 + below(KEY_MAX_TESTED));
		unsigned odd = (unsigned)below(4); /* 1 in 2^odd bytes not ASCII */

		for (uint32_t i = 0; i < n; i++)
			k[i] = below(1u << odd) == 0 ? near_utf8_byte() : (uint8_t)(1 + below(0x7f));
		good += parse_key(k, n, (unsigned)below(8)) == TALLY_OK;
	}
	assert_true(good > 6000 && good < 54000);
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
		cmocka_unit_test(test_mac_rotation), cmocka_unit_test(test_mac_required),
		cmocka_unit_test(test_key_ascii), cmocka_unit_test(test_key_bad_byte_each_position),
		cmocka_unit_test(test_key_utf8_each_position),
		cmocka_unit_test(test_key_bad_utf8_each_position),
		cmocka_unit_test(test_key_random_vs_reference),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
