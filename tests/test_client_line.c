/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-send's line parser: good CSV and JSON lines give their fields; every
 * kind of bad line gives its own reason and never crashes (each case also runs
 * from a heap buffer of its exact length, so ASan sees a read past the line).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "line.h"

static enum tally_line_reason run(const char *s, size_t len, enum tally_line_fmt fmt,
				  struct tally_line_ev *ev)
{
	char *copy = malloc(len ? len : 1);
	enum tally_line_reason r;

	memcpy(copy, s, len);
	r = tally_line_parse(copy, len, fmt, ev);
	free(copy);
	return r;
}

static enum tally_line_reason p(const char *s, struct tally_line_ev *ev)
{
	return run(s, strlen(s), TALLY_FMT_AUTO, ev);
}

static void test_csv_good(void **state)
{
	(void)state;
	struct tally_line_ev ev;

	assert_int_equal(p("api.hits,1", &ev), TALLY_LINE_OK);
	assert_string_equal(ev.key, "api.hits");
	assert_int_equal(ev.value, 1);
	assert_int_equal(ev.time_ms, 0);
	assert_int_equal(ev.id, 0);
	assert_int_equal(p("k,-9223372036854775808,1700000000000,18446744073709551615\r", &ev),
			 TALLY_LINE_OK);
	assert_true(ev.value == INT64_MIN);
	assert_int_equal(ev.time_ms, 1700000000000ULL);
	assert_true(ev.id == UINT64_MAX);
	assert_int_equal(p("\"a,\"\"b\"\"\",5,,7", &ev), TALLY_LINE_OK); /* "a,""b""" */
	assert_string_equal(ev.key, "a,\"b\"");
	assert_int_equal(ev.value, 5);
	assert_int_equal(ev.time_ms, 0);
	assert_int_equal(ev.id, 7);
	assert_int_equal(p("ü.straße,3,", &ev), TALLY_LINE_OK);
	assert_string_equal(ev.key, "ü.straße");
	assert_int_equal(p("{\"x\",1", &ev), TALLY_LINE_JSON); /* auto: { means JSON */
	assert_int_equal(run("{\"x\",1", 6, TALLY_FMT_CSV, &ev), TALLY_LINE_QUOTE);
	assert_int_equal(run("{x,1", 4, TALLY_FMT_CSV, &ev), TALLY_LINE_OK);
	assert_string_equal(ev.key, "{x");
}

static void test_csv_bad(void **state)
{
	(void)state;
	struct tally_line_ev ev;
	static const struct { const char *line; enum tally_line_reason r; } cases[] = {
		{"", TALLY_LINE_EMPTY}, {"  \t", TALLY_LINE_EMPTY}, {"\r", TALLY_LINE_EMPTY},
		{"nocomma", TALLY_LINE_FIELDS}, {"k,1,2,3,4", TALLY_LINE_FIELDS},
		{",1", TALLY_LINE_KEY}, {"k,", TALLY_LINE_VALUE}, {"k,x", TALLY_LINE_VALUE},
		{"k,1.5", TALLY_LINE_VALUE}, {"k,+1", TALLY_LINE_VALUE}, {"k, 1", TALLY_LINE_VALUE},
		{"k,-", TALLY_LINE_VALUE}, {"k,9223372036854775808", TALLY_LINE_VALUE},
		{"k,1,-5", TALLY_LINE_TIME}, {"k,1,18446744073709551616", TALLY_LINE_TIME},
		{"k,1,2,x", TALLY_LINE_ID}, {"\"open,1", TALLY_LINE_QUOTE},
		{"\"k\"x,1", TALLY_LINE_QUOTE}, {"a\"b,1", TALLY_LINE_QUOTE}, {"\"k\"", TALLY_LINE_FIELDS},
		{"\xff,1", TALLY_LINE_KEY}, {"\xc3\x28,1", TALLY_LINE_KEY},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum tally_line_reason r = p(cases[i].line, &ev);

		if (r != cases[i].r)
			fail_msg("line \"%s\": %s, want %s", cases[i].line, tally_line_reason_name(r),
				 tally_line_reason_name(cases[i].r));
	}
	char nul[] = "a\0b,1";
	assert_int_equal(run(nul, sizeof(nul) - 1, TALLY_FMT_AUTO, &ev), TALLY_LINE_KEY);
	char long_key[300];
	memset(long_key, 'k', 256);
	strcpy(long_key + 256, ",1");
	assert_int_equal(p(long_key, &ev), TALLY_LINE_KEY);
	strcpy(long_key + 255, ",1");
	assert_int_equal(p(long_key, &ev), TALLY_LINE_OK);
	assert_int_equal(ev.key_len, 255);
}

static void test_json(void **state)
{
	(void)state;
	struct tally_line_ev ev;

	assert_int_equal(p("{\"key\":\"a\",\"value\":-3,\"time\":1700000000000,\"id\":9}", &ev),
			 TALLY_LINE_OK);
	assert_string_equal(ev.key, "a");
	assert_int_equal(ev.value, -3);
	assert_int_equal(ev.time_ms, 1700000000000ULL);
	assert_int_equal(ev.id, 9);
	assert_int_equal(p("  {\"value\":1,\"key\":\"b\",\"time\":null}", &ev), TALLY_LINE_OK);
	assert_int_equal(ev.time_ms, 0);
	static const struct { const char *line; enum tally_line_reason r; } cases[] = {
		{"{", TALLY_LINE_JSON}, {"{}x", TALLY_LINE_JSON},
		{"{\"key\":\"a\",\"key\":\"b\",\"value\":1}", TALLY_LINE_JSON},
		{"{\"key\":\"a\",\"value\":99999999999999999999}", TALLY_LINE_JSON},
		{"{}", TALLY_LINE_JSON_FIELD}, {"{\"key\":\"a\"}", TALLY_LINE_JSON_FIELD},
		{"{\"key\":1,\"value\":1}", TALLY_LINE_JSON_FIELD},
		{"{\"key\":\"a\",\"value\":1.5}", TALLY_LINE_JSON_FIELD},
		{"{\"key\":\"a\",\"value\":\"1\"}", TALLY_LINE_JSON_FIELD},
		{"{\"key\":\"a\",\"value\":1,\"extra\":0}", TALLY_LINE_JSON_FIELD},
		{"{\"key\":\"a\",\"value\":1,\"time\":-1}", TALLY_LINE_TIME},
		{"{\"key\":\"a\",\"value\":1,\"time\":\"now\"}", TALLY_LINE_TIME},
		{"{\"key\":\"a\",\"value\":1,\"id\":-2}", TALLY_LINE_ID},
		{"{\"key\":\"\",\"value\":1}", TALLY_LINE_KEY},
		{"{\"key\":\"a\\u0000b\",\"value\":1}", TALLY_LINE_KEY},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum tally_line_reason r = p(cases[i].line, &ev);

		if (r != cases[i].r)
			fail_msg("line %s: %s, want %s", cases[i].line, tally_line_reason_name(r),
				 tally_line_reason_name(cases[i].r));
	}
	assert_int_equal(run("[1,2]", 5, TALLY_FMT_JSON, &ev), TALLY_LINE_JSON);
	assert_int_equal(run("a,1", 3, TALLY_FMT_JSON, &ev), TALLY_LINE_JSON);
}

/* Random bytes: any reason is fine, a crash or a read past the line is not. */
static void test_garbage(void **state)
{
	(void)state;
	struct tally_line_ev ev;
	uint64_t x = 88172645463325252ULL;
	char line[64];

	for (int i = 0; i < 200000; i++) {
		size_t n = (size_t)(i % 64);

		for (size_t j = 0; j < n; j++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			line[j] = "k,1{}\"\\:0-9a \xc3\xff"[x % 16];
		}
		enum tally_line_reason r = run(line, n, (enum tally_line_fmt)(i % 3), &ev);
		assert_true(r < TALLY_LINE_NREASONS);
		if (r == TALLY_LINE_OK)
			assert_true(ev.key_len >= 1 && ev.key_len <= 255);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csv_good),
		cmocka_unit_test(test_csv_bad),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
