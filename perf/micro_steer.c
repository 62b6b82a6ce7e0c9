/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The dedup design choice, measured (tally-micro's two-worker cases). Two
 * workers on the two CPUs each take a stream of events (random ids, 5% of them
 * repeats of recent ones) and must drop the duplicates:
 *
 *   shared:  one table for both, every slot claimed by CAS (what tallyd does);
 *   steered: each worker owns half the ids (by a hash bit) in a table of its own
 *            with plain stores, and hands every event whose id it does not own
 *            to the owner through an SPSC ring (ck_ring), 64 bytes an event,
 *            because dedup and the window update must happen on the same core
 *            for a duplicate to be dropped before it is counted.
 *
 * Reported per event per worker core, so the two compare directly with each
 * other and with the one-worker figure. Both answer every id right (checked).
 */
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x86intrin.h>

#include <ck_pr.h>
#include <ck_ring.h>

#include "dedup.h"
#include "micro.h"

#define RING 4096
#define BATCH 32
#define RECENT 256

struct evrec { /* what a worker would hand over: an event as the parser made it */
	uint64_t id;
	uint8_t rest[56];
};
CK_RING_PROTOTYPE(evrec, evrec)

struct worker {
	struct tally_dedup *own;  /* the table this worker inserts into */
	ck_ring_t *out, *in;      /* steered: to and from the other worker */
	struct evrec *out_buf, *in_buf;
	int cpu, self;
	uint64_t seed, ops, dups, news, repeats, handed, cycles;
	int *others_done, *done;
	pthread_barrier_t *bar;
} __attribute__((aligned(64)));

static uint64_t next_id(struct worker *w, uint64_t i, uint64_t *recent)
{
	uint64_t x = (w->seed + i) * 0x9e3779b97f4a7c15ULL;

	x ^= x >> 29;
	/* 5% of events repeat one of the last RECENT ids of this stream */
	if (i > RECENT && x % 100 < 5) {
		w->repeats++;
		return recent[(x >> 8) % RECENT];
	}
	recent[i % RECENT] = x | 1;
	return x | 1;
}

/* A batch of ids through dedup with the worker's prefetch-ahead. */
static void insert_batch(struct worker *w, const uint64_t *id, unsigned n)
{
	struct tally_dedup *d = w->own;
	struct tally_dedup_view v = tally_dedup_view(d);
	struct tally_dedup_ref r[BATCH];

	for (unsigned k = 0; k < n; k++) {
		r[k] = tally_dedup_ref(d, id[k]);
		if (k < 8)
			tally_dedup_prefetch(d, r[k]);
	}
	for (unsigned k = 0; k < n; k++) {
		if (k + 8 < n)
			tally_dedup_prefetch(d, r[k + 8]);
		int res = tally_dedup_insert(d, r[k], v);

		w->dups += res == TALLY_DEDUP_DUP;
		w->news += res != TALLY_DEDUP_DUP;
	}
}

/* Events the other worker handed over: ours to decide (up to a batch);
 * returns how many. */
static unsigned drain(struct worker *w)
{
	uint64_t id[BATCH];
	struct evrec e;
	unsigned n = 0;

	while (w->in != NULL && n < BATCH && ck_ring_dequeue_spsc_evrec(w->in, w->in_buf, &e))
		id[n++] = e.id;
	insert_batch(w, id, n);
	return n;
}

static void pin(int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

static void hand_over(struct worker *w, const struct evrec *e)
{
	while (!ck_ring_enqueue_spsc_evrec(w->out, w->out_buf, (struct evrec *)e))
		drain(w); /* the other side is busy: do its work for ours meanwhile */
	w->handed++;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	static __thread uint64_t recent[RECENT];
	struct evrec e = {0};
	uint64_t t0, mine[BATCH];

	pin(w->cpu);
	pthread_barrier_wait(w->bar);
	t0 = __rdtsc();
	for (uint64_t i = 0; i < w->ops; i += BATCH) {
		unsigned n = 0;

		for (unsigned j = 0; j < BATCH && i + j < w->ops; j++) {
			e.id = next_id(w, i + j, recent);
			/* steered: the owner is the id hash's top bit */
			if (w->out == NULL || (int)(tally_dedup_hash(e.id) >> 63) == w->self)
				mine[n++] = e.id;
			else
				hand_over(w, &e);
		}
		insert_batch(w, mine, n);
		drain(w);
	}
	ck_pr_store_int(w->done, 1);
	while (!ck_pr_load_int(w->others_done))
		drain(w);
	/* the other is done handing over: all that is left in the ring, not just
	 * one batch (a loaded machine can leave thousands: a false alarm before) */
	while (drain(w) > 0)
		;
	w->cycles = __rdtsc() - t0;
	return NULL;
}

/* Run n workers to the end; report cycles per event per worker core. */
static void run_workers(struct worker *w, int n, const char *cas, size_t bytes)
{
	pthread_t t[2];
	pthread_barrier_t bar;
	int done[2] = {0, n == 1}; /* alone, a worker has no other to wait for */
	uint64_t ops = 0, cyc = 0, news = 0, dups = 0, repeats = 0;

	pthread_barrier_init(&bar, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		w[i].bar = &bar;
		w[i].done = &done[i];
		w[i].others_done = &done[n == 2 ? 1 - i : 1];
		pthread_create(&t[i], NULL, run, &w[i]);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		ops += w[i].ops;
		news += w[i].news;
		dups += w[i].dups;
		repeats += w[i].repeats;
		cyc = w[i].cycles > cyc ? w[i].cycles : cyc;
	}
	pthread_barrier_destroy(&bar);
	/* every event decided once, and exactly the repeats dropped */
	if (news + dups != ops || dups != repeats)
		micro_fail("two-worker dedup gave a wrong answer");
	micro_report("dedup2", cas, ops, cyc * (uint64_t)n, bytes);
}

void micro_dedup_two_workers(uint64_t cap, uint64_t ops)
{
	struct tally_dedup *shared = tally_dedup_create(cap, 3600000);
	struct tally_dedup *half[2] = {tally_dedup_create(cap / 2, 3600000),
				       tally_dedup_create(cap / 2, 3600000)};
	ck_ring_t ring[2];
	struct evrec *buf[2] = {aligned_alloc(64, RING * sizeof(struct evrec)),
				aligned_alloc(64, RING * sizeof(struct evrec))};
	struct worker w[2];
	char cas[96];

	if (shared == NULL || half[0] == NULL || half[1] == NULL || !buf[0] || !buf[1])
		micro_fail("two-worker dedup: out of memory");
	tally_dedup_set_writers(shared, 1);
	w[0] = (struct worker){.own = shared, .cpu = 1, .seed = 7, .ops = ops};
	snprintf(cas, sizeof(cas), "1 worker, the same loop (plain stores), %lluM ids",
		 (unsigned long long)(cap / 1000000));
	run_workers(w, 1, cas, tally_dedup_bytes(shared));
	tally_dedup_set_writers(shared, 2);
	for (int i = 0; i < 2; i++) {
		w[i] = (struct worker){.own = shared, .cpu = i, .self = i, .seed = 1000003ULL * (i + 1),
				       .ops = ops};
	}
	snprintf(cas, sizeof(cas), "2 workers, one shared table (CAS), %lluM ids",
		 (unsigned long long)(cap / 1000000));
	run_workers(w, 2, cas, tally_dedup_bytes(shared));
	for (int i = 0; i < 2; i++) {
		ck_ring_init(&ring[i], RING);
		tally_dedup_set_writers(half[i], 1);
	}
	for (int i = 0; i < 2; i++)
		w[i] = (struct worker){.own = half[i], .out = &ring[i], .in = &ring[1 - i],
				       .out_buf = buf[i], .in_buf = buf[1 - i], .cpu = i, .self = i,
				       .seed = 1000003ULL * (i + 1), .ops = ops};
	snprintf(cas, sizeof(cas), "2 workers, ids steered to the owner, %lluM ids",
		 (unsigned long long)(cap / 1000000));
	run_workers(w, 2, cas, 2 * tally_dedup_bytes(half[0]));
	tally_dedup_destroy(shared);
	tally_dedup_destroy(half[0]);
	tally_dedup_destroy(half[1]);
	free(buf[0]);
	free(buf[1]);
}
