/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libtally's retransmit timing: the cap doubles from base to max and never
 * overflows; the jittered wait stays within [0, cap] and covers it (full
 * jitter: uniform, so a crowd of producers spreads out).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backoff.h"

static void test_cap(void **state)
{
	(void)state;
	const uint64_t want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000};

	for (unsigned a = 0; a < 8; a++)
		assert_int_equal(tally_cl_backoff_cap(100, 5000, a), want[a]);
	assert_int_equal(tally_cl_backoff_cap(100, 5000, 1000), 5000);
	assert_int_equal(tally_cl_backoff_cap(1, UINT32_MAX, 200), UINT32_MAX);
	assert_int_equal(tally_cl_backoff_cap(300, 200, 0), 200); /* base above max: max */
}

static void test_jitter_bounds(void **state)
{
	(void)state;
	uint64_t rng = 42;

	for (unsigned a = 0; a < 12; a++) {
		uint64_t cap = tally_cl_backoff_cap(100, 5000, a), lo = UINT64_MAX, hi = 0, sum = 0;
		const unsigned n = 20000;

		for (unsigned i = 0; i < n; i++) {
			uint64_t w = tally_cl_backoff_ms(100, 5000, a, tally_cl_rand(&rng));

			assert_true(w <= cap);
			lo = w < lo ? w : lo;
			hi = w > hi ? w : hi;
			sum += w;
		}
		/* Uniform over [0, cap]: both ends reached, the mean in the middle. */
		assert_true(lo <= cap / 100);
		assert_true(hi >= cap - cap / 100);
		assert_true(sum / n > cap / 2 - cap / 20 && sum / n < cap / 2 + cap / 20);
	}
	assert_int_equal(tally_cl_backoff_ms(0, 5000, 3, 12345), 0);
	assert_int_equal(tally_cl_backoff_ms(100, 5000, 0, 101), 0);
	assert_int_equal(tally_cl_backoff_ms(100, 5000, 0, UINT64_MAX), UINT64_MAX % 101);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_jitter_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
