/* SPDX-License-Identifier: BSD-3-Clause */
/* The arrival clock (dataplane/clock.h): right after years of uptime, never
 * back under a wall-clock step back, caught up by slew, steps only forward,
 * and tracks a TSC whose rate was misjudged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "clock.h"

#define HZ 3000000000ull
#define MS 1000000ull
#define SYNC_NS (TALLY_CLOCK_SYNC_MS * MS)
#define SYNC_TICKS (HZ / 1000 * TALLY_CLOCK_SYNC_MS)
#define WALL0 1767225600000000000ull /* 2026-01-01 in ns */

/* A TSC base set years in the past: the old 64-bit `ticks * 1000 / hz`
 * wrapped after 2^64 / 1000 ticks (71 days at 3 GHz). */
static void test_years_of_uptime(void **st)
{
	struct tally_clock c;
	uint64_t years3 = 3ull * 365 * 86400;
	uint64_t tsc = HZ * years3, last = 0;
	uint64_t old = tsc * 1000 / HZ; /* what the old worker computed, in ms */

	(void)st;
	tally_clock_init(&c, HZ, 0, WALL0);
	assert_true(old < years3 * 1000); /* it wrapped: the bug this test pins */
	/* within a millisecond after three years without a single sync */
	assert_in_range(tally_clock_ns(&c, tsc), WALL0 + years3 * 1000000000ull - MS,
			WALL0 + years3 * 1000000000ull + MS);
	assert_in_range(tally_clock_ms(&c, tsc, &last), (WALL0 + years3 * 1000000000ull) / MS - 1,
			(WALL0 + years3 * 1000000000ull) / MS + 1);
	/* and a sync after years keeps the line continuous and exact */
	tally_clock_sync(&c, tsc, WALL0 + years3 * 1000000000ull, SYNC_NS);
	assert_in_range(tally_clock_ns(&c, tsc + SYNC_TICKS), WALL0 + years3 * 1000000000ull + SYNC_NS - MS,
			WALL0 + years3 * 1000000000ull + SYNC_NS + MS);
}

/* Run n syncs, one per period of real ticks, with the wall clock at
 * wall(tsc) = WALL0 + shift + tsc / rate; check monotonic readings every
 * tenth of a period. Returns the last offset (wall - clock) in ns. */
static int64_t run(struct tally_clock *c, uint64_t *tsc, int64_t shift, double rate, unsigned n)
{
	uint64_t prev = tally_clock_ns(c, *tsc);

	for (unsigned i = 0; i < n; i++) {
		for (unsigned k = 1; k <= 10; k++) {
			uint64_t now = tally_clock_ns(c, *tsc + SYNC_TICKS * k / 10);

			assert_true(now >= prev);
			prev = now;
		}
		*tsc += SYNC_TICKS;
		tally_clock_sync(c, *tsc, (uint64_t)((int64_t)WALL0 + shift +
						     (int64_t)((double)*tsc / rate * 1e9 / HZ)),
				 SYNC_NS);
	}
	return c->offset_ns;
}

/* The wall clock steps back an hour: the clock never goes back, runs slower
 * (never below half speed) and meets the wall clock within 2 hours. */
static void test_step_back_is_slewed(void **st)
{
	struct tally_clock c;
	uint64_t tsc = HZ * 100;
	int64_t off;

	(void)st;
	tally_clock_init(&c, HZ, tsc, WALL0 + 100 * 1000000000ull);
	off = run(&c, &tsc, 0, 1.0, 10);
	assert_true(off > -(int64_t)MS && off < (int64_t)MS);
	off = run(&c, &tsc, -3600 * 1000000000ll, 1.0, 1);
	assert_true(off < -3599 * 1000000000ll);
	off = run(&c, &tsc, -3600 * 1000000000ll, 1.0, 36000); /* one hour of ticks */
	assert_true(off < -1700 * 1000000000ll && off > -1900 * 1000000000ll);
	off = run(&c, &tsc, -3600 * 1000000000ll, 1.0, 37000);
	assert_true(off > -(int64_t)MS && off < (int64_t)MS);
	assert_int_equal(c.steps, 0);
}

/* A small step back (200 ms) is absorbed within a few periods. */
static void test_small_step_back(void **st)
{
	struct tally_clock c;
	uint64_t tsc = HZ;
	int64_t off;

	(void)st;
	tally_clock_init(&c, HZ, tsc, WALL0 + 1000000000ull);
	off = run(&c, &tsc, -200 * (int64_t)MS, 1.0, 10);
	assert_true(off > -(int64_t)MS && off < (int64_t)MS);
}

/* Ahead by more than TALLY_CLOCK_STEP_MS: followed at once (a step forward). */
static void test_step_forward(void **st)
{
	struct tally_clock c;
	uint64_t tsc = HZ, last = 0, before;

	(void)st;
	tally_clock_init(&c, HZ, tsc, WALL0 + 1000000000ull);
	run(&c, &tsc, 0, 1.0, 5);
	before = tally_clock_ms(&c, tsc, &last);
	run(&c, &tsc, 10 * 1000000000ll, 1.0, 1);
	assert_int_equal(c.steps, 1);
	assert_true(tally_clock_ms(&c, tsc, &last) >= before + 10000);
	assert_true(c.offset_ns > 9 * 1000000000ll);
	run(&c, &tsc, 10 * 1000000000ll, 1.0, 3);
	assert_true(c.offset_ns > -(int64_t)MS && c.offset_ns < (int64_t)MS);
}

/* rte_get_tsc_hz() off by 0.1%: the syncs keep the clock within a millisecond. */
static void test_misjudged_rate(void **st)
{
	struct tally_clock c;
	uint64_t tsc = HZ;
	int64_t off;

	(void)st;
	tally_clock_init(&c, HZ, tsc, WALL0 + 1000000000ull);
	off = run(&c, &tsc, 0, 1.001, 3000);
	assert_true(off > -(int64_t)MS && off < (int64_t)MS);
}

/* A worker that read its TSC just before a re-anchor, or whose TSC lags another
 * core's: never earlier than what it already returned. */
static void test_reader_never_back(void **st)
{
	struct tally_clock c;
	uint64_t last = 0, a, b;

	(void)st;
	tally_clock_init(&c, HZ, HZ, WALL0);
	a = tally_clock_ms(&c, 2 * HZ, &last);
	tally_clock_sync(&c, 2 * HZ, WALL0 - 3600 * 1000000000ull, SYNC_NS); /* wall went back */
	b = tally_clock_ms(&c, 2 * HZ - 1000, &last); /* TSC read before the new base */
	assert_true(b >= a);
	assert_int_equal(tally_clock_ns(&c, 2 * HZ - 1000), tally_clock_ns(&c, 2 * HZ));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_years_of_uptime),
		cmocka_unit_test(test_step_back_is_slewed),
		cmocka_unit_test(test_small_step_back),
		cmocka_unit_test(test_step_forward),
		cmocka_unit_test(test_misjudged_rate),
		cmocka_unit_test(test_reader_never_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
