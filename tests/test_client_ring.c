/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libtally's consistent hashing: keys spread evenly over appliances, removing
 * one moves only its own keys, and failover (skipping an appliance on the
 * ring) sends each key exactly where a ring without that appliance would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ring.h"

#define NKEYS 100000

static const char *const names[] = {"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000",
				    "10.0.0.4:7000", "[fd00::5]:7000"};
#define NNODES 5

static uint64_t key_hash(unsigned i)
{
	char k[32];
	int n = snprintf(k, sizeof(k), "key.%u", i);

	return tally_cl_key_hash(k, (size_t)n);
}

static void test_spread(void **state)
{
	(void)state;
	struct tally_cl_ring r;
	unsigned per[NNODES] = {0};

	assert_int_equal(tally_cl_ring_build(&r, names, NNODES, 160), 0);
	for (unsigned i = 0; i < NKEYS; i++)
		per[tally_cl_ring_pick(&r, key_hash(i), NULL, NULL)]++;
	/* 160 points each: a share within 25% of fair (measured: within ~10%). */
	for (unsigned n = 0; n < NNODES; n++) {
		assert_true(per[n] > NKEYS / NNODES * 3 / 4);
		assert_true(per[n] < NKEYS / NNODES * 5 / 4);
	}
	tally_cl_ring_free(&r);
}

static unsigned dead = 2;

static bool not_dead(unsigned node, void *arg)
{
	(void)arg;
	return node != dead;
}

static void test_remove_moves_only_its_keys(void **state)
{
	(void)state;
	struct tally_cl_ring all, less;
	const char *rest[NNODES - 1];
	unsigned moved = 0, owned = 0;

	for (unsigned i = 0, j = 0; i < NNODES; i++)
		if (i != dead)
			rest[j++] = names[i];
	assert_int_equal(tally_cl_ring_build(&all, names, NNODES, 160), 0);
	assert_int_equal(tally_cl_ring_build(&less, rest, NNODES - 1, 160), 0);
	for (unsigned i = 0; i < NKEYS; i++) {
		uint64_t h = key_hash(i);
		const char *before = names[tally_cl_ring_pick(&all, h, NULL, NULL)];
		const char *after = rest[tally_cl_ring_pick(&less, h, NULL, NULL)];
		const char *failover = names[tally_cl_ring_pick(&all, h, not_dead, NULL)];

		if (before == names[dead])
			owned++;
		if (strcmp(before, after) != 0) {
			moved++;
			assert_ptr_equal(before, names[dead]); /* only the removed node's keys move */
		}
		assert_string_equal(failover, after); /* failover = the ring without it */
	}
	assert_int_equal(moved, owned);
	assert_true(owned > NKEYS / NNODES * 3 / 4 && owned < NKEYS / NNODES * 5 / 4);
	tally_cl_ring_free(&all);
	tally_cl_ring_free(&less);
}

static bool none(unsigned node, void *arg)
{
	(void)node;
	(void)arg;
	return false;
}

static void test_edges(void **state)
{
	(void)state;
	struct tally_cl_ring r;
	const char *dup[] = {"a:1", "a:1"};

	assert_int_equal(tally_cl_ring_build(&r, dup, 2, 160), -22);
	assert_int_equal(tally_cl_ring_build(&r, names, 0, 160), -22);
	assert_int_equal(tally_cl_ring_build(&r, names, 1, 1), 0);
	assert_int_equal(tally_cl_ring_pick(&r, 0, NULL, NULL), 0);
	assert_int_equal(tally_cl_ring_pick(&r, UINT64_MAX, NULL, NULL), 0); /* wraps */
	tally_cl_ring_free(&r);
	/* Nothing usable: the key's own node, so its datagrams wait there. */
	assert_int_equal(tally_cl_ring_build(&r, names, NNODES, 160), 0);
	for (unsigned i = 0; i < 1000; i++)
		assert_int_equal(tally_cl_ring_pick(&r, key_hash(i), none, NULL),
				 tally_cl_ring_pick(&r, key_hash(i), NULL, NULL));
	tally_cl_ring_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spread),
		cmocka_unit_test(test_remove_moves_only_its_keys),
		cmocka_unit_test(test_edges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
