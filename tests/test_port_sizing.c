/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The RX pool sizing formula (dataplane/port_sizing.h): what it counts, that
 * the derived size is 2^k - 1 and never below the need, and the case that broke
 * the old fixed default (16 queues x 1024 descriptors > 16383 mbufs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "port_sizing.h"

static struct tally_pool_need need(uint64_t rxq, uint64_t rxd, uint64_t workers)
{
	struct tally_pool_need n = {.rx_queues = rxq, .rx_desc = rxd, .tx_queues = 1,
				    .tx_desc = TALLY_TX_DESC, .lcores = workers, .burst = 32,
				    .cache = TALLY_MEMPOOL_CACHE};
	return n;
}

static void test_counts_every_holder(void **st)
{
	struct tally_pool_need n = need(4, 1024, 2);

	(void)st;
	/* 4 x 1024 RX + 1 x 512 TX + 2 x (32 + 256 + 128) */
	assert_int_equal(tally_mbufs_needed(&n), 4096 + 512 + 2 * 416);
	n.tx_queues = 0;
	assert_int_equal(tally_mbufs_needed(&n), 4096 + 2 * 416);
}

static void test_derived_is_pow2_minus_1(void **st)
{
	(void)st;
	for (uint64_t q = 1; q <= 64; q++) {
		for (uint64_t d = 64; d <= 16384; d *= 2) {
			struct tally_pool_need n = need(q, d, q);
			uint64_t got = tally_mbufs_derived(&n);

			assert_true(got >= tally_mbufs_needed(&n));
			assert_true(got <= TALLY_MBUFS_MAX);
			assert_int_equal((got + 1) & got, 0); /* 2^k - 1 */
			assert_true((got + 1) / 2 - 1 < tally_mbufs_needed(&n)); /* the smallest */
		}
	}
}

/* The old default could not even fill the RX rings of a 16-queue port. */
static void test_16_queues_exceed_old_default(void **st)
{
	struct tally_pool_need n = need(16, 1024, 1);

	(void)st;
	assert_true(tally_mbufs_needed(&n) > 16383);
	assert_int_equal(tally_mbufs_needed(&n), 16384 + 512 + 416);
	assert_int_equal(tally_mbufs_derived(&n), 32767);
}

/* An exact power of two minus one is not rounded up further. */
static void test_exact_fit(void **st)
{
	struct tally_pool_need n = {.rx_queues = 1, .rx_desc = 1023};

	(void)st;
	assert_int_equal(tally_mbufs_derived(&n), 1023);
	n.rx_desc = 1024;
	assert_int_equal(tally_mbufs_derived(&n), 2047);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts_every_holder),
		cmocka_unit_test(test_derived_is_pow2_minus_1),
		cmocka_unit_test(test_16_queues_exceed_old_default),
		cmocka_unit_test(test_exact_fit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
