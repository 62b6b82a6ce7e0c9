/* SPDX-License-Identifier: BSD-3-Clause */
/* Window arithmetic (negative, huge, boundaries) and the window table. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "window.h"

static int64_t ws(int64_t t, int64_t w)
{
	int64_t s = 0;

	assert_int_equal(tally_window_start(t, w, &s), 0);
	return s;
}

static void test_window_start(void **st)
{
	int64_t s;

	(void)st;
	assert_int_equal(ws(0, 10000), 0);
	assert_int_equal(ws(9999, 10000), 0);
	assert_int_equal(ws(10000, 10000), 10000);
	assert_int_equal(ws(1700000012345, 10000), 1700000010000);
	assert_int_equal(ws(-1, 10000), -10000);
	assert_int_equal(ws(-10000, 10000), -10000);
	assert_int_equal(ws(-10001, 10000), -20000);
	assert_int_equal(ws(12345, 1), 12345);
	assert_int_equal(ws(INT64_MAX, 10000), INT64_MAX - INT64_MAX % 10000);
	assert_int_equal(ws(INT64_MIN, 1), INT64_MIN);
	assert_int_equal(ws(INT64_MIN, 2), INT64_MIN);             /* even: exact */
	assert_int_equal(tally_window_start(INT64_MIN, 3, &s), -ERANGE); /* below INT64_MIN */
	assert_int_equal(tally_window_start(INT64_MIN + 1, 10000, &s), -ERANGE);
	assert_int_equal(tally_window_start(5, 0, &s), -EINVAL);
	assert_int_equal(tally_window_start(5, -10, &s), -EINVAL);
	for (int64_t t = -30; t <= 30; t++) { /* against the definition */
		int64_t w = 7, start = ws(t, w);

		assert_true(start <= t && t < start + w && start % w == 0);
	}
}

static int add(struct tally_wtab *t, const char *key, int64_t win, double v)
{
	uint64_t h = tally_row_hash(tally_key_hash((const uint8_t *)key, (uint32_t)strlen(key)), win);

	return tally_wtab_add(t, h, (const uint8_t *)key, (uint8_t)strlen(key), win, v);
}

static const struct tally_row *find(const struct tally_wtab *t, const char *key, int64_t win)
{
	for (uint32_t i = 0; i < tally_wtab_rows(t); i++) {
		const struct tally_row *r = tally_wtab_row(t, i);

		if (r->win_start == win && r->key_len == strlen(key) &&
		    memcmp(tally_wtab_key(t, r), key, r->key_len) == 0)
			return r;
	}
	return NULL;
}

static void test_add(void **st)
{
	struct tally_wtab *t = tally_wtab_create(1024);
	const struct tally_row *r;

	(void)st;
	assert_int_equal(add(t, "a", 0, 5), 1);
	assert_int_equal(add(t, "a", 0, -2), 0);
	assert_int_equal(add(t, "a", 0, 9), 0);
	assert_int_equal(add(t, "a", 10000, 1), 1); /* another window: another row */
	assert_int_equal(add(t, "b", 0, 1), 1);
	assert_int_equal(add(t, "ab", 0, 1), 1);
	assert_int_equal(tally_wtab_rows(t), 4);
	r = find(t, "a", 0);
	assert_non_null(r);
	assert_int_equal(r->count, 3);
	assert_true(r->sum == 12 && r->min == -2 && r->max == 9 && r->last == 9);
	tally_wtab_destroy(t);
}

static void test_full(void **st)
{
	struct tally_wtab *t = tally_wtab_create(1024);
	char k[32];

	(void)st;
	for (int i = 0; i < 1024; i++) {
		snprintf(k, sizeof(k), "key%d", i);
		assert_int_equal(add(t, k, 0, i), 1);
	}
	assert_int_equal(add(t, "one.more", 0, 1), -ENOSPC);
	assert_int_equal(add(t, "key7", 0, 1), 0); /* existing rows still update */
	assert_int_equal(find(t, "key7", 0)->count, 2);
	assert_int_equal(tally_wtab_rows(t), 1024);
	tally_wtab_reset(t);
	assert_int_equal(tally_wtab_rows(t), 0);
	assert_null(find(t, "key7", 0));
	assert_int_equal(add(t, "key7", 0, 1), 1);
	tally_wtab_destroy(t);
}

/* Many keys, reset (both ways of clearing the index), refill: nothing stale. */
static void test_reset_many(void **st)
{
	struct tally_wtab *t = tally_wtab_create(100000);
	char k[32];

	(void)st;
	for (int round = 0; round < 3; round++) {
		int n = round == 1 ? 100 : 100000;

		for (int i = 0; i < n; i++) {
			snprintf(k, sizeof(k), "r%d.%d", round, i);
			assert_int_equal(add(t, k, 0, 1), 1);
			assert_int_equal(add(t, k, 0, 1), 0);
		}
		assert_int_equal(tally_wtab_rows(t), n);
		tally_wtab_reset(t);
	}
	tally_wtab_destroy(t);
}

static void test_merge(void **st)
{
	struct tally_wtab *a = tally_wtab_create(1024), *b = tally_wtab_create(1024);
	struct tally_wtab *m = tally_wtab_create(1024);
	const struct tally_row *r;

	(void)st;
	add(a, "x", 0, 1);
	add(a, "x", 0, 7);
	add(a, "y", 0, 3);
	add(b, "x", 0, -4);
	add(b, "z", 0, 2);
	for (uint32_t i = 0; i < tally_wtab_rows(a); i++)
		tally_wtab_merge(m, a, tally_wtab_row(a, i));
	for (uint32_t i = 0; i < tally_wtab_rows(b); i++)
		tally_wtab_merge(m, b, tally_wtab_row(b, i));
	assert_int_equal(tally_wtab_rows(m), 3);
	r = find(m, "x", 0);
	assert_int_equal(r->count, 3);
	assert_true(r->sum == 4 && r->min == -4 && r->max == 7 && r->last == -4);
	tally_wtab_destroy(a);
	tally_wtab_destroy(b);
	tally_wtab_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_start), cmocka_unit_test(test_add),
		cmocka_unit_test(test_full), cmocka_unit_test(test_reset_many),
		cmocka_unit_test(test_merge),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
