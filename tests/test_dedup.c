/* SPDX-License-Identifier: BSD-3-Clause */
/* Dedup: within and beyond the horizon (time and capacity), a full bucket, forget,
 * generation wrap, and two threads racing on the same ids. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "dedup.h"

static int ins(struct tally_dedup *d, uint64_t id)
{
	return tally_dedup_insert(d, tally_dedup_ref(d, id), tally_dedup_view(d));
}

static void test_new_then_dup(void **st)
{
	struct tally_dedup *d = tally_dedup_create(1024, 60000);

	(void)st;
	assert_non_null(d);
	assert_int_equal(ins(d, 42), TALLY_DEDUP_NEW);
	assert_int_equal(ins(d, 42), TALLY_DEDUP_DUP);
	assert_int_equal(ins(d, 43), TALLY_DEDUP_NEW);
	assert_int_equal(tally_dedup_bytes(d), TALLY_DEDUP_MIN_BUCKETS * 64);
	tally_dedup_destroy(d);
}

/* Time horizon: an id stays a duplicate for the whole horizon, then is new again. */
static void test_time_horizon(void **st)
{
	uint64_t now = 1000000, step = 60000 / TALLY_DEDUP_GENS;
	struct tally_dedup *d = tally_dedup_create(1024, 60000);

	(void)st;
	tally_dedup_tick(d, now, 0, 0);
	assert_int_equal(ins(d, 7), TALLY_DEDUP_NEW);
	for (int g = 0; g < TALLY_DEDUP_GENS; g++) {
		now += step;
		tally_dedup_tick(d, now, 0, 1 << 20);
		assert_int_equal(ins(d, 7), TALLY_DEDUP_DUP); /* still within the horizon */
		tally_dedup_forget(d, tally_dedup_hash(7), tally_dedup_gen(d)); /* no-op: not ours */
	}
	now += step;
	tally_dedup_tick(d, now, 0, 1 << 20);
	assert_int_equal(ins(d, 7), TALLY_DEDUP_NEW);
	tally_dedup_destroy(d);
}

/* Capacity horizon: the most recent `capacity` ids are remembered; older go. */
static void test_capacity(void **st)
{
	const uint64_t cap = 1 << 19, total = 4 * cap; /* 16 bytes per id: full load */
	struct tally_dedup *d = tally_dedup_create(cap, 3600000);
	uint64_t inserted = 0, evicted = 0;

	(void)st;
	for (uint64_t id = 1; id <= total; id++) {
		int r = ins(d, id);

		assert_int_not_equal(r, TALLY_DEDUP_DUP);
		evicted += r == TALLY_DEDUP_NEW_EVICT;
		if (++inserted % 1000 == 0) /* tallyd's sweep budget, not a full pass a tick */
			tally_dedup_tick(d, 1, inserted, tally_dedup_sweep_rate(d));
	}
	assert_int_equal(d->held_back, 0);
	for (uint64_t id = total - cap + 1; id <= total; id++)
		assert_int_equal(ins(d, id), TALLY_DEDUP_DUP);
	assert_int_equal(ins(d, 1), TALLY_DEDUP_NEW); /* the oldest generation went */
	assert_int_equal(evicted, 0); /* two buckets per id: no early eviction */
	tally_dedup_destroy(d);
}

/* More ids than slots, all in one generation: the table fills, then every
 * insert evicts an old slot (counted), never a crash, and the newest id stays. */
static void test_table_full(void **st)
{
	struct tally_dedup *d = tally_dedup_create(1024, 3600000);
	uint64_t slots = TALLY_DEDUP_MIN_BUCKETS * TALLY_DEDUP_WAYS, evicted = 0;

	(void)st;
	for (uint64_t id = 1; id <= slots + 50000; id++) {
		int r = ins(d, id);

		assert_int_not_equal(r, TALLY_DEDUP_DUP);
		evicted += r == TALLY_DEDUP_NEW_EVICT;
	}
	assert_true(evicted >= 50000);
	assert_int_equal(ins(d, slots + 50000), TALLY_DEDUP_DUP);
	tally_dedup_destroy(d);
}

static void test_forget(void **st)
{
	struct tally_dedup *d = tally_dedup_create(1024, 60000);

	(void)st;
	assert_int_equal(ins(d, 5), TALLY_DEDUP_NEW);
	tally_dedup_forget(d, tally_dedup_hash(5), tally_dedup_gen(d));
	assert_int_equal(ins(d, 5), TALLY_DEDUP_NEW);
	tally_dedup_destroy(d);
}

/* Three times round the generation counter; the sweep keeps stale ones from looking live. */
static void test_generation_wrap(void **st)
{
	struct tally_dedup *d = tally_dedup_create(1024, 8000);
	uint64_t now = 1;

	(void)st;
	assert_int_equal(ins(d, 99), TALLY_DEDUP_NEW);
	for (int g = 0; g < 3 * (int)TALLY_DEDUP_GEN_MAX; g++) {
		now += 1000;
		/* 64 of 65536 buckets a tick: a pass every 1024 generations, well inside
		 * the guard's GEN_MAX / 2, at 1/64 of the cost of 4096 */
		tally_dedup_tick(d, now, 0, 64);
		if (g == (int)TALLY_DEDUP_GEN_MAX - 5)
			assert_int_equal(ins(d, 1234567), TALLY_DEDUP_NEW);
	}
	assert_int_equal(ins(d, 99), TALLY_DEDUP_NEW);
	assert_int_equal(d->held_back, 0); /* three full turns: the sweeper kept up */
	tally_dedup_destroy(d);
}

struct racer {
	struct tally_dedup *d;
	uint64_t n, news;
	pthread_barrier_t *bar;
};

static void *race(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(r->bar);
	for (uint64_t id = 1; id <= r->n; id++)
		r->news += ins(r->d, id) != TALLY_DEDUP_DUP;
	return NULL;
}

/* Two workers, the same ids at the same time: exactly one NEW per id. */
static void test_two_threads(void **st)
{
	pthread_barrier_t bar;
	struct tally_dedup *d = tally_dedup_create(1 << 20, 3600000);
	struct racer r[2] = {{d, 200000, 0, &bar}, {d, 200000, 0, &bar}};
	pthread_t t[2];

	(void)st;
	pthread_barrier_init(&bar, NULL, 2);
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, race, &r[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(r[0].news + r[1].news, 200000);
	pthread_barrier_destroy(&bar);
	tally_dedup_destroy(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_then_dup), cmocka_unit_test(test_time_horizon),
		cmocka_unit_test(test_capacity), cmocka_unit_test(test_table_full),
		cmocka_unit_test(test_forget), cmocka_unit_test(test_generation_wrap),
		cmocka_unit_test(test_two_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
