/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The sink writer's parts: the circuit breaker's states and full-jitter
 * backoff; the consistent-hash ring (one key, one shard; a shard added to
 * three moves about a quarter of the keys, all to the new shard); and the
 * writer with three shard lanes, one down: the others take their parts at
 * once, the down one spools and replays in order when back, each part once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <ck_pr.h>

#include "sink_writer.h"

static void test_breaker(void **st)
{
	struct tally_breaker b;
	uint64_t now = 1000;

	(void)st;
	tally_breaker_init(&b, 3, 100, 1000, 5000, 42);
	assert_true(tally_breaker_allow(&b, now));
	for (unsigned i = 1; i <= 2; i++) { /* closed: jittered waits below base * 2^i */
		tally_breaker_failure(&b, now, false);
		assert_int_equal(b.state, TALLY_BREAKER_CLOSED);
		assert_true(b.next_ms >= now && b.next_ms < now + (100u << i));
	}
	tally_breaker_failure(&b, now, false); /* third in a row: open */
	assert_int_equal(b.state, TALLY_BREAKER_OPEN);
	assert_int_equal(b.opens, 1);
	assert_false(tally_breaker_allow(&b, now + 4999));
	assert_true(tally_breaker_allow(&b, now + 5000)); /* one probe */
	assert_int_equal(b.state, TALLY_BREAKER_HALF_OPEN);
	tally_breaker_failure(&b, now + 5000, false); /* probe failed: open again */
	assert_int_equal(b.state, TALLY_BREAKER_OPEN);
	assert_int_equal(b.opens, 2);
	assert_true(tally_breaker_allow(&b, now + 10000));
	tally_breaker_success(&b);
	assert_int_equal(b.state, TALLY_BREAKER_CLOSED);
	assert_int_equal(b.failures, 0);
	/* permanent: held, never retried by itself, until forced */
	tally_breaker_failure(&b, now, true);
	assert_int_equal(b.state, TALLY_BREAKER_HELD);
	assert_false(tally_breaker_allow(&b, UINT64_MAX / 2));
	tally_breaker_force(&b);
	assert_true(tally_breaker_allow(&b, now));
}

/* Jitter: waits spread over the whole range, not in step. */
static void test_full_jitter(void **st)
{
	unsigned low = 0, high = 0;

	(void)st;
	for (unsigned i = 0; i < 1000; i++) {
		struct tally_breaker b;

		tally_breaker_init(&b, 100, 1000, 100000, 1, i * 7919 + 1);
		for (unsigned k = 0; k < 5; k++)
			tally_breaker_failure(&b, 0, false);
		assert_true(b.next_ms < 1000u << 4);
		low += b.next_ms < (1000u << 4) / 4;
		high += b.next_ms >= (1000u << 4) * 3 / 4;
	}
	assert_true(low > 150 && high > 150);
}

static void key_of(unsigned i, char *k, size_t n)
{
	snprintf(k, n, "api.k%u|c|#env:prod", i);
}

static void test_ring(void **st)
{
	const char *three[] = {"a", "b", "c"}, *four[] = {"a", "b", "c", "d"};
	const char *dup[] = {"a", "a"};
	struct tally_ring r3, r4, rd;
	unsigned per[4] = {0}, moved = 0, n = 100000;

	(void)st;
	assert_int_equal(tally_ring_build(&rd, dup, 2), -EINVAL);
	assert_int_equal(tally_ring_build(&r3, three, 3), 0);
	assert_int_equal(tally_ring_build(&r4, four, 4), 0);
	for (unsigned i = 0; i < n; i++) {
		char k[64];
		unsigned s3, s4;

		key_of(i, k, sizeof(k));
		s3 = tally_ring_shard(&r3, (const uint8_t *)k, strlen(k));
		s4 = tally_ring_shard(&r4, (const uint8_t *)k, strlen(k));
		per[s3]++;
		if (s3 != s4) {
			moved++;
			assert_int_equal(s4, 3); /* a moved key goes to the new shard only */
		}
	}
	for (unsigned s = 0; s < 3; s++) /* 160 virtual nodes: within 20% of even */
		assert_true(per[s] > n / 3 * 8 / 10 && per[s] < n / 3 * 12 / 10);
	print_message("3 shards: %u %u %u keys; adding a 4th moved %.1f%%\n", per[0], per[1],
		      per[2], 100.0 * moved / n);
	assert_true(moved > n / 4 * 7 / 10 && moved < n / 4 * 13 / 10);
	tally_ring_free(&r3);
	tally_ring_free(&r4);
}

/* In-memory sinks: totals and applied seqs; a lane can be down. */
struct mem_sink {
	struct tally_sink base;
	int down;
	uint64_t events, applied, dup_applies, last_seq_seen, out_of_order;
	uint64_t seqs[4096];
	unsigned nseqs;
};

static int mem_write(struct tally_sink *s, const struct tally_batch *b)
{
	struct mem_sink *m = (struct mem_sink *)s;

	if (ck_pr_load_int(&m->down)) {
		snprintf(s->err, sizeof(s->err), "down");
		return -ECONNREFUSED;
	}
	for (unsigned i = 0; i < m->nseqs; i++)
		if (m->seqs[i] == b->seq)
			return TALLY_SINK_SKIPPED;
	m->out_of_order += b->seq < m->last_seq_seen;
	m->last_seq_seen = b->seq;
	m->seqs[m->nseqs++] = b->seq;
	m->applied++;
	m->events += tally_batch_events(b);
	return TALLY_SINK_APPLIED;
}

static int64_t mem_last(struct tally_sink *s, const char *a)
{
	(void)s, (void)a;
	return 0;
}

static void mem_close(struct tally_sink *s) { (void)s; }

static const struct tally_sink_ops mem_ops = {mem_write, mem_last, mem_close};

static struct tally_sink *open_mem(void *arg, char *err, size_t len)
{
	(void)err, (void)len;
	return arg;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct tally_batch *make_batch(unsigned round)
{
	struct tally_batch *b = malloc(sizeof(*b));

	tally_batch_init(b, "app", 10000);
	for (unsigned i = 0; i < 300; i++) {
		char k[64];

		key_of(i, k, sizeof(k));
		assert_int_equal(tally_batch_add(b, (const uint8_t *)k, (uint8_t)strlen(k), 0,
						 round + 1, 1, 1, 1, 1), 0);
	}
	return b;
}

static void test_writer_shard_down(void **st)
{
	struct tally_writer_opts o = {"/tmp/tally-test-writer", 64 << 20, 0, 2, 1, 5, 20};
	static struct tally_writer w;
	static struct mem_sink m[3];
	const char *names[] = {"s0", "s1", "s2"};
	uint64_t t0, total = 0;
	char err[256];

	(void)st;
	assert_int_equal(system("rm -rf /tmp/tally-test-writer"), 0);
	tally_writer_init(&w, &o);
	for (unsigned i = 0; i < 3; i++) {
		memset(&m[i], 0, sizeof(m[i]));
		m[i].base.ops = &mem_ops;
		assert_int_equal(tally_writer_add_lane(&w, names[i], open_mem, &m[i], err, sizeof(err)), 0);
	}
	m[1].down = 1;
	assert_int_equal(tally_writer_start(&w, "app", err, sizeof(err)), 0);
	for (unsigned r = 0; r < 20; r++) {
		tally_writer_submit(&w, make_batch(r));
		total += 300ull * (r + 1);
	}
	t0 = mono_ms(); /* the healthy shards get everything while s1 is down */
	while (m[0].applied < 20 || m[2].applied < 20) {
		assert_true(mono_ms() - t0 < 5000);
		usleep(1000);
	}
	assert_int_equal(m[1].applied, 0);
	assert_true(ck_pr_load_64(&w.ctr.v[TALLY_C_SPOOL_APPENDED]) >= 20);
	ck_pr_store_int(&m[1].down, 0);
	t0 = mono_ms();
	while (ck_pr_load_64(&m[1].applied) < 20) {
		assert_true(mono_ms() - t0 < 10000);
		usleep(1000);
	}
	tally_writer_stop(&w);
	while (!tally_writer_done(&w))
		usleep(1000);
	assert_int_equal(m[0].events + m[1].events + m[2].events, total);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(m[i].applied, 20);
		assert_int_equal(m[i].out_of_order, 0); /* each lane in seq order */
		assert_true(m[i].events > 0);
	}
	/* where() names the shard that got the key's rows */
	{
		char k[64];

		key_of(7, k, sizeof(k));
		print_message("key %s -> %s\n", k, tally_writer_where(&w, (const uint8_t *)k, strlen(k)));
	}
	tally_writer_fini(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_breaker),
		cmocka_unit_test(test_full_jitter),
		cmocka_unit_test(test_ring),
		cmocka_unit_test(test_writer_shard_down),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
