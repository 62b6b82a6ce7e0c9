/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * StatsD lines: good, bad (each reason), mixed in one datagram, tags, rates;
 * and the places where the parser's fast paths have edges: 64-byte blocks,
 * short datagrams, tags that share 8-byte heads, numbers at the exact fast
 * path's limits, UTF-8 next to plain lines, the tag limit, field order.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "counters.h"
#include "parse_statsd.h"

static struct tally_event evs[4096];
static uint8_t arena[65536];
static struct tally_evbuf out;
static uint64_t ctr[TALLY_C_MAX];

static int parse(const char *s)
{
	out = (struct tally_evbuf){evs, 0, 4096, arena, 0, sizeof(arena)};
	memset(ctr, 0, sizeof(ctr));
	return tally_statsd_parse((const uint8_t *)s, (uint32_t)strlen(s), &out, ctr);
}

static void expect_key(unsigned i, const char *key, double v)
{
	assert_true(i < out.n);
	assert_int_equal(evs[i].key_len, strlen(key));
	assert_memory_equal(evs[i].key, key, strlen(key));
	assert_true(evs[i].value == v);
	assert_int_equal(evs[i].event_id, 0);
}

static void expect_bad(const char *line, int reason)
{
	assert_int_equal(parse(line), 0);
	assert_int_equal(ctr[reason], 1);
	assert_int_equal(ctr[TALLY_C_STATSD_LINES], 0);
}

static void test_types(void **st)
{
	(void)st;
	assert_int_equal(parse("a:1|c\nb:2.5|g\nc:3|ms\nd:-4|h\ne:1e3|d"), 5);
	expect_key(0, "a|c", 1);
	expect_key(1, "b|g", 2.5);
	expect_key(2, "c|ms", 3);
	expect_key(3, "d|h", -4);
	expect_key(4, "e|d", 1000);
	assert_int_equal(ctr[TALLY_C_STATSD_LINES], 5);
}

static void test_design_example(void **st)
{
	(void)st;
	assert_int_equal(parse("api.hits:1|c|#b:2,a:1\napi.hits:3|c|@0.5|#a:1,b:2"), 2);
	expect_key(0, "api.hits|c|#a:1,b:2", 1);
	expect_key(1, "api.hits|c|#a:1,b:2", 6);
}

static void test_rates(void **st)
{
	(void)st;
	assert_int_equal(parse("x:3|c|@0.25\ny:3|ms|@0.5\nz:7|g|@1"), 3);
	expect_key(0, "x|c", 12);   /* counters are scaled */
	expect_key(1, "y|ms", 3);   /* others: validated, ignored */
	expect_key(2, "z|g", 7);
	expect_bad("x:1|c|@0", TALLY_C_STATSD_BAD_RATE);
	expect_bad("x:1|c|@1.5", TALLY_C_STATSD_BAD_RATE);
	expect_bad("x:1|c|@-0.5", TALLY_C_STATSD_BAD_RATE);
	expect_bad("x:1|c|@abc", TALLY_C_STATSD_BAD_RATE);
}

static void test_tags(void **st)
{
	(void)st;
	assert_int_equal(parse("m:1|g|#z,b:1,a:2,b:1,,a:10"), 1);
	expect_key(0, "m|g|#a:10,a:2,b:1,z", 1); /* bytewise, repeats and empties gone */
	assert_int_equal(parse("m:1|c|#ab,a"), 1);
	expect_key(0, "m|c|#a,ab", 1);          /* a prefix sorts first */
	assert_int_equal(parse("m:1|c|#"), 1);
	expect_key(0, "m|c", 1);
	assert_int_equal(parse("m:1|c\nm:1|g"), 2); /* same name, two types: two keys */
	expect_key(1, "m|g", 1);
}

static void test_fields(void **st)
{
	(void)st;
	assert_int_equal(parse("m:2|c|T1700000000|#a:1|@0.5|c:abc123"), 1);
	expect_key(0, "m|c|#a:1", 4);
	assert_int_equal(evs[0].time_ms, 1700000000000ULL);
	assert_int_equal(parse("m:2|c|#a:1|T1700000000"), 1);
	assert_int_equal(evs[0].time_ms, 1700000000000ULL);
	assert_int_equal(parse("m:2|c"), 1);
	assert_int_equal(evs[0].time_ms, 0);
	expect_bad("m:1|c|T12x", TALLY_C_STATSD_BAD_TS);
	expect_bad("m:1|c|T-5", TALLY_C_STATSD_BAD_TS);
	expect_bad("m:1|c|x:1", TALLY_C_STATSD_BAD_FIELD);
	expect_bad("m:1|c|#a|#b", TALLY_C_STATSD_BAD_FIELD);
	expect_bad("m:1|c|@0.5|@0.5", TALLY_C_STATSD_BAD_FIELD);
	expect_bad("m:1|c|", TALLY_C_STATSD_BAD_FIELD);
}

/* Each line's row kind; a set keeps its member's hash, a relative gauge its signed change. */
static void test_kinds(void **st)
{
	(void)st;
	assert_int_equal(parse("c:1|c\ng:2|g\nt:3|ms\nh:4|h\nd:5|d\ns:user-42|s|@0.5|#a:1\n"
			       "s:user-42|s\nr:+1.5|g\nr:-2|g|@0.1\nr:-0|g"), 10);
	assert_int_equal(evs[0].kind, TALLY_EV_PLAIN);
	assert_int_equal(evs[1].kind, TALLY_EV_GAUGE);
	for (int i = 2; i <= 4; i++)
		assert_int_equal(evs[i].kind, TALLY_EV_SKETCH);
	assert_int_equal(evs[5].kind, TALLY_EV_SET);
	assert_int_equal(evs[6].kind, TALLY_EV_SET);
	assert_true(evs[5].member == evs[6].member && evs[5].member != 0);
	assert_memory_equal(evs[5].key, "s|s|#a:1", 8);
	expect_key(7, "r|g", 1.5);
	expect_key(8, "r|g", -2);
	for (int i = 7; i <= 9; i++)
		assert_int_equal(evs[i].kind, TALLY_EV_GAUGE_REL);
	assert_int_equal(parse("s:a|s\ns:b|s"), 2);
	assert_true(evs[0].member != evs[1].member);
}

static void test_bad_lines(void **st)
{
	(void)st;
	expect_bad("nocolon", TALLY_C_STATSD_BAD_NAME);
	expect_bad(":1|c", TALLY_C_STATSD_BAD_NAME);
	expect_bad("a|b:1|c", TALLY_C_STATSD_BAD_NAME);
	expect_bad("m:1", TALLY_C_STATSD_BAD_TYPE);
	expect_bad("m:1|x", TALLY_C_STATSD_BAD_TYPE);
	expect_bad("m:1|", TALLY_C_STATSD_BAD_TYPE);
	expect_bad("m:|s", TALLY_C_STATSD_BAD_SET);
	expect_bad("m:+|g", TALLY_C_STATSD_BAD_REL_GAUGE);
	expect_bad("m:-x|g", TALLY_C_STATSD_BAD_REL_GAUGE);
	expect_bad("m:+-1|g", TALLY_C_STATSD_BAD_REL_GAUGE);
	expect_bad("m:++1|g", TALLY_C_STATSD_BAD_REL_GAUGE);
	expect_bad("m:+1|c", TALLY_C_STATSD_BAD_VALUE);
	expect_bad("m:0x10|c", TALLY_C_STATSD_BAD_VALUE);
	expect_bad("m:inf|c", TALLY_C_STATSD_BAD_VALUE);
	expect_bad("m:nan|c", TALLY_C_STATSD_BAD_VALUE);
	expect_bad("m: 1|c", TALLY_C_STATSD_BAD_VALUE);
	expect_bad("m:1.|c", TALLY_C_STATSD_BAD_VALUE);
	expect_bad("m:1e999|c", TALLY_C_STATSD_BAD_VALUE);
	expect_bad("m:|c", TALLY_C_STATSD_BAD_VALUE);
	expect_bad("m\xff:1|c", TALLY_C_STATSD_BAD_UTF8);
}

static void test_nul(void **st)
{
	(void)st;
	out = (struct tally_evbuf){evs, 0, 4096, arena, 0, sizeof(arena)};
	memset(ctr, 0, sizeof(ctr));
	assert_int_equal(tally_statsd_parse((const uint8_t *)"m\0:1|c\nok:1|c", 13, &out, ctr), 1);
	assert_int_equal(ctr[TALLY_C_STATSD_BAD_UTF8], 1);
}

static void test_key_too_long(void **st)
{
	char line[400];

	(void)st;
	memset(line, 'n', 252);
	strcpy(line + 252, ":1|c");         /* "nnn...|c": 254 bytes, fine */
	assert_int_equal(parse(line), 1);
	memset(line, 'n', 254);
	strcpy(line + 254, ":1|ms");        /* 257 bytes */
	expect_bad(line, TALLY_C_STATSD_KEY_TOO_LONG);
}

static void test_mixed_datagram(void **st)
{
	(void)st;
	assert_int_equal(parse("good:1|c\r\nbad:x|c\n\n\r\nalso.good:2|ms|#t:1\nm:|s\nlast:3|g"), 3);
	expect_key(0, "good|c", 1);
	expect_key(1, "also.good|ms|#t:1", 2);
	expect_key(2, "last|g", 3);
	assert_int_equal(ctr[TALLY_C_STATSD_BAD_VALUE], 1);
	assert_int_equal(ctr[TALLY_C_STATSD_BAD_SET], 1);
	assert_int_equal(parse("\n\n\r\n"), 0); /* empty lines count as nothing */
	for (unsigned i = 0; i < TALLY_C_MAX; i++)
		assert_int_equal(ctr[i], 0);
}

static void test_enospc(void **st)
{
	(void)st;
	out = (struct tally_evbuf){evs, 4095, 4096, arena, 0, sizeof(arena)};
	assert_int_equal(tally_statsd_parse((const uint8_t *)"a:1|c\nb:1|c\n", 12, &out, ctr), -ENOSPC);
	assert_int_equal(out.n, 4095);
}

/* Lines whose separators fall on both sides of 64-byte block edges. */
static void test_block_edges(void **st)
{
	static char d[4096];
	char name[128], key[160];
	uint32_t len = 0;

	(void)st;
	for (unsigned i = 0; i < 80; i++) {
		memset(name, 'a' + i % 26, 1 + i % 70);
		name[1 + i % 70] = '\0';
		len += (uint32_t)sprintf(d + len, "%s:%u|c|#t%u,s\n", name, i, i % 7);
	}
	assert_int_equal(parse(d), 80);
	for (unsigned i = 0; i < 80; i++) {
		memset(name, 'a' + i % 26, 1 + i % 70);
		name[1 + i % 70] = '\0';
		sprintf(key, "%s|c|#s,t%u", name, i % 7);
		expect_key(i, key, i);
	}
}

/* Datagrams shorter than a 16-byte load and than a block, and just longer. */
static void test_short_datagrams(void **st)
{
	char line[80];

	(void)st;
	assert_int_equal(parse("a:1|c"), 1);
	expect_key(0, "a|c", 1);
	assert_int_equal(parse("a"), 0);
	assert_int_equal(ctr[TALLY_C_STATSD_BAD_NAME], 1);
	for (unsigned n = 14; n < 70; n++) {
		memset(line, 'n', n);
		strcpy(line + n - 5, ":7|ms");
		assert_int_equal(parse(line), 1);
		assert_int_equal(evs[0].key_len, n - 2);
		assert_true(evs[0].value == 7);
	}
}

/* Bytewise order when the first 8 bytes tie, repeats, prefixes, many tags. */
static void test_tag_heads(void **st)
{
	(void)st;
	assert_int_equal(parse("m:1|c|#environment:prod,environment:production,"
			       "environment:dev,environment:prod"), 1);
	expect_key(0, "m|c|#environment:dev,environment:prod,environment:production", 1);
	assert_int_equal(parse("m:1|c|#abcdefghi,abcdefgh,abcdefg"), 1);
	expect_key(0, "m|c|#abcdefg,abcdefgh,abcdefghi", 1);
	assert_int_equal(parse("m:1|c|#region:r3,region:r3"), 1);
	expect_key(0, "m|c|#region:r3", 1);
	assert_int_equal(parse("m:1|c|#e,d,c,b,a,c,e,f"), 1); /* more than four */
	expect_key(0, "m|c|#a,b,c,d,e,f", 1);
	assert_int_equal(parse("m:1|c|#service:apix,service:api,service:apiy,service:api"), 1);
	expect_key(0, "m|c|#service:api,service:apix,service:apiy", 1);
}

/* 64 tags as written are allowed, repeats and all; the 65th is a bad field. */
static void test_tag_limit(void **st)
{
	static char line[1024];
	uint32_t n = (uint32_t)sprintf(line, "m:1|c|#");

	(void)st;
	for (unsigned i = 0; i < 64; i++)
		n += (uint32_t)sprintf(line + n, "%sx%u", i ? ",," : "", i % 3);
	assert_int_equal(parse(line), 1);
	expect_key(0, "m|c|#x0,x1,x2", 1);
	strcpy(line + n, ",x0");
	expect_bad(line, TALLY_C_STATSD_BAD_FIELD);
	strcpy(line + n, ",|@2"); /* an empty 65th is no tag; then the rate */
	expect_bad(line, TALLY_C_STATSD_BAD_RATE);
}

/* Values bit for bit as strtod gives them, on both sides of the fast path's limits. */
static void test_number_exactness(void **st)
{
	static const char *const v[] = {
		"0", "-0", "-0.0", "0.1", "0.3", "2.5", "123.456", "1e22", "1e23", "1e-22",
		"9007199254740992", "9007199254740993", "123456789012345", "1234567890123456",
		"12345678901234567890", "0.000000000000000000000001", "4.9e-324", "1e-400",
		"1.7976931348623157e308", "-9007199254740993.5", "1E+5", "7e-0",
	};
	char line[64];

	(void)st;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		double want = strtod(v[i], NULL);

		snprintf(line, sizeof(line), "m:%s|d", v[i]); /* |g with '-' is relative */
		assert_int_equal(parse(line), 1);
		assert_memory_equal(&evs[0].value, &want, sizeof(want));
	}
	expect_bad("m:1e309|d", TALLY_C_STATSD_BAD_VALUE);
	expect_bad("m:1.e5|d", TALLY_C_STATSD_BAD_VALUE);
	expect_bad("m:1|c|@1e-400", TALLY_C_STATSD_BAD_RATE); /* rounds to 0 */
}

/* Only the '\r' right before the line's end is dropped. */
static void test_crlf(void **st)
{
	(void)st;
	assert_int_equal(parse("a:1|c|#t\r\nb:2|g\r"), 2);
	expect_key(0, "a|c|#t", 1);
	expect_key(1, "b|g", 2);
	expect_bad("a:1|c\r\r\n", TALLY_C_STATSD_BAD_TYPE);
	expect_bad("a:1|c|\r\n", TALLY_C_STATSD_BAD_FIELD);
	expect_bad("a:1\r|c\n", TALLY_C_STATSD_BAD_VALUE);
	assert_int_equal(parse("a:1|c|#t,\r\n"), 1);
	expect_key(0, "a|c|#t", 1);
}

/* UTF-8 and NUL judged per line, next to plain lines in the same 64 bytes. */
static void test_utf8_neighbours(void **st)
{
	static const char d[] = "na\xc3\xafve:1|c\nok:2|c\nbad\xc3:3|c\nok:4|c\nn\0ul:5|c\nok:6|c";

	(void)st;
	out = (struct tally_evbuf){evs, 0, 4096, arena, 0, sizeof(arena)};
	memset(ctr, 0, sizeof(ctr));
	assert_int_equal(tally_statsd_parse((const uint8_t *)d, sizeof(d) - 1, &out, ctr), 4);
	expect_key(0, "na\xc3\xafve|c", 1);
	expect_key(1, "ok|c", 2);
	expect_key(2, "ok|c", 4);
	expect_key(3, "ok|c", 6);
	assert_int_equal(ctr[TALLY_C_STATSD_BAD_UTF8], 2);
}

/* The first bad field decides; a relative gauge only counts when the fields are good. */
/* A counter's value / rate that overflows is as bad as a value that does. */
static void test_scaled_value_finite(void **st)
{
	(void)st;
	expect_bad("m:1|c|@4.9e-324", TALLY_C_STATSD_BAD_VALUE);
	expect_bad("m:1e300|c|@1e-300", TALLY_C_STATSD_BAD_VALUE);
	assert_int_equal(parse("m:1e300|g|@1e-300"), 1); /* the rate only scales counters */
	expect_key(0, "m|g", 1e300);
	assert_int_equal(parse("m:1|c|@1e-300"), 1);
	expect_key(0, "m|c", 1.0 / 1e-300); /* huge, still finite */
}

/* |T0 would read as "arrival time": it is no timestamp. */
static void test_ts_zero(void **st)
{
	(void)st;
	expect_bad("m:1|c|T0", TALLY_C_STATSD_BAD_TS);
	expect_bad("m:1|c|T000", TALLY_C_STATSD_BAD_TS);
	assert_int_equal(parse("m:1|c|T1"), 1);
	assert_int_equal(evs[0].time_ms, 1000);
}

static void test_field_order(void **st)
{
	(void)st;
	expect_bad("m:1|c|@2|x", TALLY_C_STATSD_BAD_RATE);
	expect_bad("m:1|c|x|@2", TALLY_C_STATSD_BAD_FIELD);
	expect_bad("m:+1|g|x", TALLY_C_STATSD_BAD_FIELD);
	expect_bad("m:+x|g|y", TALLY_C_STATSD_BAD_REL_GAUGE); /* the value is judged first */
	expect_bad("m:+1|g|@5", TALLY_C_STATSD_BAD_RATE);
	expect_bad("m:1|c|T1|#a|T2", TALLY_C_STATSD_BAD_FIELD);
	expect_bad("m:1|c|c:x|c:y", TALLY_C_STATSD_BAD_FIELD);
	expect_bad("a,b|c:1|c", TALLY_C_STATSD_BAD_NAME);
	assert_int_equal(parse("a,b:1|c|c:x,y"), 1); /* commas outside #tags are text */
	expect_key(0, "a,b|c", 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_types), cmocka_unit_test(test_design_example),
		cmocka_unit_test(test_scaled_value_finite), cmocka_unit_test(test_ts_zero),
		cmocka_unit_test(test_rates), cmocka_unit_test(test_tags),
		cmocka_unit_test(test_fields), cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_nul), cmocka_unit_test(test_key_too_long),
		cmocka_unit_test(test_mixed_datagram), cmocka_unit_test(test_enospc),
		cmocka_unit_test(test_block_edges), cmocka_unit_test(test_short_datagrams),
		cmocka_unit_test(test_tag_heads), cmocka_unit_test(test_tag_limit),
		cmocka_unit_test(test_number_exactness), cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_utf8_neighbours), cmocka_unit_test(test_field_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
