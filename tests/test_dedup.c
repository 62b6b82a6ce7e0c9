/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Dedup: within and beyond the horizon (time and capacity), a full bucket, forget,
 * generation wrap, two threads racing on the same ids, and a slot another writer
 * has claimed and not yet published. The SSE4.2 fast path is
 * held to the exact slow path (and to a reference model of the slot rules) on
 * random bucket states; the generation counter is taken across its wrap, the
 * sweeper guard is made to hold generations back, and the capacity horizon is
 * filled to the load tallyd keeps. Every random choice comes from a fixed seed.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dedup.h"

#define TEST_SEED 0x5eed0001
#include "test_rng.h"

#define GENS TALLY_DEDUP_GENS
#define GEN_MAX TALLY_DEDUP_GEN_MAX
#define GEN_MASK TALLY_DEDUP_GEN_MASK
#define ROLE_B TALLY_DEDUP_ROLE_B
#define WAYS TALLY_DEDUP_WAYS
#define MARK TALLY_DEDUP_MARK

static int ins(struct tally_dedup *d, uint64_t id)
{
	return tally_dedup_insert(d, tally_dedup_ref(d, id), tally_dedup_view(d));
}


/* The generation `off` steps from g on the 1..GEN_MAX circle. */
static uint16_t gen_add(uint16_t g, int off)
{
	int v = ((int)g - 1 + off) % (int)GEN_MAX;

	return (uint16_t)((v < 0 ? v + (int)GEN_MAX : v) + 1);
}

/* Generations from slot generation s back to cur, on the circle (0..GEN_MAX-1). */
static unsigned gen_back(uint16_t cur, uint16_t s)
{
	return ((unsigned)cur + GEN_MAX - s) % GEN_MAX;
}

/* The slot rule of dedup.h, written independently: a slot is live when its
 * generation is one of the last GENS + 1, or up to GEN_AHEAD ahead (a worker's
 * snapshot may lag). An empty slot never is. */
static bool ref_live(uint64_t s, uint16_t cur)
{
	unsigned back = gen_back(cur, (uint16_t)(s & GEN_MASK));

	return s != 0 && (back <= GENS || back >= GEN_MAX - TALLY_DEDUP_GEN_AHEAD);
}

/* How old a live slot is for eviction: slots ahead count as the newest. */
static unsigned ref_age(uint64_t s, uint16_t cur)
{
	unsigned back = gen_back(cur, (uint16_t)(s & GEN_MASK));

	return back >= GEN_MAX - TALLY_DEDUP_GEN_AHEAD ? 0 : back;
}

/* Tick once per generation (horizon 8000 ms: 1000 ms a generation) until the
 * counter reads `target`, sweeping `budget` buckets a tick; never held back. */
static void walk_to(struct tally_dedup *d, uint64_t *now, uint16_t target, size_t budget)
{
	for (unsigned n = 0; tally_dedup_gen(d) != target; n++) {
		assert_true(n < 2 * GEN_MAX);
		*now += 1000;
		tally_dedup_tick(d, *now, 0, budget);
	}
	assert_int_equal(d->ctl.held_back, 0);
}

static void test_new_then_dup(void **st)
{
	struct tally_dedup *d = tally_dedup_create(1024, 60000);

	(void)st;
	assert_non_null(d);
	assert_int_equal(ins(d, 42), TALLY_DEDUP_NEW);
	assert_int_equal(ins(d, 42), TALLY_DEDUP_DUP);
	assert_int_equal(ins(d, 43), TALLY_DEDUP_NEW);
	assert_int_equal(tally_dedup_bytes(d), TALLY_DEDUP_MIN_BUCKETS * sizeof(struct tally_dedup_bucket));
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

/* Capacity horizon: the most recent `capacity` ids are remembered, older go,
 * none is evicted early; with a tick every `step` inserts. */
static void capacity_run(uint64_t cap, uint64_t step)
{
	const uint64_t total = 4 * cap; /* 16 bytes per id: full load */
	struct tally_dedup *d = tally_dedup_create(cap, 3600000);
	uint64_t inserted = 0, evicted = 0;

	for (uint64_t id = 1; id <= total; id++) {
		int r = ins(d, id);

		assert_int_not_equal(r, TALLY_DEDUP_DUP);
		evicted += r == TALLY_DEDUP_NEW_EVICT;
		if (++inserted % step == 0) /* tallyd's sweep budget, not a full pass a tick */
			tally_dedup_tick(d, 1, inserted, tally_dedup_sweep_rate(d, 2));
	}
	assert_int_equal(d->ctl.held_back, 0);
	for (uint64_t id = total - cap + 1; id <= total; id++)
		assert_int_equal(ins(d, id), TALLY_DEDUP_DUP);
	assert_int_equal(ins(d, 1), TALLY_DEDUP_NEW); /* the oldest generation went */
	assert_int_equal(evicted, 0); /* two buckets per id: no early eviction */
	tally_dedup_destroy(d);
}

static void test_capacity(void **st)
{
	(void)st;
	capacity_run(1 << 19, 1000);
}

/* Ticks far apart against the insert rate (tallyd's 2 ms tick at millions of
 * ids a second): a quarter of a generation's ids between two. When each
 * generation began at its tick, each held that overshoot too and ids were
 * evicted early (112 in 1.3M); and the last `capacity` ids are all remembered. */
static void test_capacity_coarse_ticks(void **st)
{
	(void)st;
	capacity_run(1 << 18, (1 << 18) / TALLY_DEDUP_GENS / 4 - 192);
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

/*
 * Ids up to 90% of the slots, one generation: both of an id's buckets are full
 * thousands of times on the way; each time a resident moves to its other
 * bucket (a cuckoo step) instead of being evicted. None is evicted, and every
 * id, moved or not, is still found. (Without the move: 18,043 evicted.)
 */
static void test_full_buckets_move(void **st)
{
	struct tally_dedup *d = tally_dedup_create(1024, 3600000);
	uint64_t n = TALLY_DEDUP_MIN_BUCKETS * TALLY_DEDUP_WAYS / 10 * 9, evicted = 0;

	(void)st;
	for (uint64_t id = 1; id <= n; id++) {
		int r = ins(d, id * 0x9e3779b97f4a7c15ULL);

		assert_int_not_equal(r, TALLY_DEDUP_DUP);
		evicted += r == TALLY_DEDUP_NEW_EVICT;
	}
	print_message("%llu evicted of %llu\n", (unsigned long long)evicted, (unsigned long long)n);
	assert_int_equal(evicted, 0);
	for (uint64_t id = 1; id <= n; id++)
		assert_int_equal(ins(d, id * 0x9e3779b97f4a7c15ULL), TALLY_DEDUP_DUP);
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
	assert_int_equal(d->ctl.held_back, 0); /* three full turns: the sweeper kept up */
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

struct publisher {
	struct tally_dedup_bucket *b;
	uint32_t w, r;
};

/* Another writer's claim: it publishes slot 0 a while after claiming it. */
static void *publish_late(void *arg)
{
	struct publisher *p = arg;

	usleep(20000);
	ck_pr_store_32(&p->b->rest[0], p->r);
	ck_pr_fence_store();
	ck_pr_store_32(&p->b->tag[0], p->w);
	return NULL;
}

/*
 * A pending slot (another writer between its claim and its publish): an insert
 * of the id that writer is writing waits for it and is a duplicate, not a
 * second NEW in a slot of its own; a claim that is never published makes the
 * insert give up (counted), not hang.
 */
static void test_pending_waits(void **st)
{
	struct tally_dedup *d = tally_dedup_create(1024, 60000);
	struct tally_dedup_ref r = tally_dedup_ref(d, 77);
	struct tally_dedup_bucket *a = &d->b[r.a];
	struct publisher p = {a, tally_dedup_tag(r.h) | tally_dedup_gen(d), (uint32_t)r.h};
	pthread_t t;

	(void)st;
	tally_dedup_set_writers(d, 2);
	ck_pr_store_32(&a->tag[0], TALLY_DEDUP_PENDING);
	pthread_create(&t, NULL, publish_late, &p);
	assert_int_equal(ins(d, 77), TALLY_DEDUP_DUP);
	pthread_join(t, NULL);
	for (unsigned i = 1; i < 16; i++)
		assert_int_equal(a->tag[i], 0);
	memset(a, 0, sizeof(*a));
	ck_pr_store_32(&a->tag[3], TALLY_DEDUP_PENDING); /* a writer that never returns */
	assert_int_equal(ins(d, 77), TALLY_DEDUP_NEW_GAVE_UP);
	assert_int_equal(a->tag[3], TALLY_DEDUP_PENDING);
	tally_dedup_destroy(d);
}

/* ---- The fast path against the exact path, on random bucket states ---- */

/* A generation around cur: live behind, live ahead, just out of the window on
 * either side, or anywhere on the circle. */
static uint16_t pick_gen(uint16_t cur)
{
	switch (below(5)) {
	case 0:
		return gen_add(cur, -(int)below(GENS + 1));
	case 1:
		return gen_add(cur, 1 + (int)below(TALLY_DEDUP_GEN_AHEAD));
	case 2:
		return gen_add(cur, -(int)(GENS + 1 + below(3)));
	case 3:
		return gen_add(cur, (int)(TALLY_DEDUP_GEN_AHEAD + 1 + below(3)));
	default:
		return (uint16_t)(1 + below(GEN_MAX));
	}
}

static uint16_t pick_live_gen(uint16_t cur)
{
	return below(2) ? gen_add(cur, -(int)below(GENS + 1))
			: gen_add(cur, 1 + (int)below(TALLY_DEDUP_GEN_AHEAD));
}

/* The current generation: anywhere, often at the edges of the fast path's range. */
static uint16_t pick_cur(void)
{
	static const uint16_t edge[] = {1,  2,  8,  9,  10, 24, 25, 26, GEN_MAX - 17, GEN_MAX - 16,
					GEN_MAX - 15, GEN_MAX - 1, GEN_MAX};

	if (below(3) == 0)
		return edge[below(sizeof(edge) / sizeof(edge[0]))];
	return (uint16_t)(1 + below(GEN_MAX));
}

/* One slot of a bucket as the test builds it: tag word and rest. */
struct slot {
	uint32_t w, r;
};

/*
 * A slot for the bucket where this id's entry would be (mine, rest) (tag word
 * part and rest, no generation): empty, the id itself, its tag with the other
 * role, its tag and role with another rest, its rest with a tag one bit away,
 * or another id. `full`: every slot live and none of them the id, so the
 * insert must go to B, move a resident or evict.
 */
static struct slot pick_slot(uint32_t mine, uint32_t rest, uint16_t cur, bool full)
{
	uint32_t other = (uint32_t)rnd() & TALLY_DEDUP_TAG_MASK, orest = (uint32_t)rnd();
	uint32_t near = mine ^ 1u << (16 + below(16)), nrest = rest ^ 1u << below(32);
	struct slot kin[4] = {{other, orest}, {mine ^ ROLE_B, rest}, {near, rest}, {mine, nrest}};
	struct slot s;

	if (full) {
		s = kin[below(4)];
		s.w |= pick_live_gen(cur);
		return s;
	}
	switch (below(10)) {
	case 0:
	case 1:
		return (struct slot){0, (uint32_t)rnd()};
	case 2:
		return (struct slot){mine | pick_gen(cur), rest};
	default:
		s = kin[below(4)];
		s.w |= pick_gen(cur);
		return s;
	}
}

/* An overflow mark: none, live, or any generation. */
static uint32_t pick_mark(uint16_t cur)
{
	switch (below(3)) {
	case 0:
		return 0;
	case 1:
		return pick_live_gen(cur);
	default:
		return pick_gen(cur);
	}
}

/* The other bucket of a slot (w, r) found in bucket x of n, written from
 * dedup.h's rule (B = A + 1 + the fingerprint's offset, mod n) independently. */
static uint64_t ref_other(uint64_t n, uint64_t x, uint32_t w, uint32_t r)
{
	uint64_t fp = (uint64_t)(w >> 16) << 32 | r;
	uint64_t mix = (fp * 0x9e3779b97f4a7c15ULL) >> 32;
	uint64_t step = 1 + ((mix * (n - 1)) >> 32);

	return w & ROLE_B ? (x + n - step) % n : (x + step) % n;
}

static bool bucket_full(const struct tally_dedup_bucket *b, uint16_t cur)
{
	for (unsigned j = 0; j < WAYS; j++)
		if (!ref_live(b->tag[j], cur))
			return false;
	return true;
}

/* A mark that covers generation g: live, and not older than g. */
static bool covers(uint32_t m, uint16_t g, uint16_t cur)
{
	return ref_live(m, cur) && ref_age(m, cur) <= ref_age(g, cur);
}

/* Is (mine, rest) live in bucket b, as it was before? */
static bool holds(const struct tally_dedup_bucket *b, uint32_t mine, uint32_t rest, uint16_t cur)
{
	for (unsigned i = 0; i < WAYS; i++)
		if (ref_live(b->tag[i], cur) && (b->tag[i] & TALLY_DEDUP_TAG_MASK) == mine &&
		    b->rest[i] == rest)
			return true;
	return false;
}

static unsigned first_free(const struct tally_dedup_bucket *b, uint16_t cur)
{
	for (unsigned i = 0; i < WAYS; i++)
		if (!ref_live(b->tag[i], cur))
			return i;
	return WAYS;
}

/* The slots that differ between before and after, as (bucket, slot) pairs;
 * the marks are compared by the caller. */
static unsigned changed(const struct tally_dedup_bucket before[2],
			struct tally_dedup_bucket *const after[2], unsigned *ck, unsigned *ci)
{
	unsigned n = 0;

	for (unsigned k = 0; k < 2; k++)
		for (unsigned i = 0; i < WAYS; i++)
			if (after[k]->tag[i] != before[k].tag[i] ||
			    (after[k]->tag[i] != 0 && after[k]->rest[i] != before[k].rest[i])) {
				n++;
				*ck = k;
				*ci = i;
			}
	return n;
}

/*
 * Both buckets full: the first resident (A's slots, then B's) whose other
 * bucket is neither of the two nor full (in this test those are empty or full)
 * moves there, to that bucket's first slot with its role flipped (one going to
 * its B raises the mark of the bucket it leaves to cover it), and the id takes
 * its slot. Returns that bucket, or -1 when no resident can move.
 */
static int64_t check_move(const struct tally_dedup *d, const uint64_t at[2],
			  const struct tally_dedup_bucket before[2],
			  struct tally_dedup_bucket *const after[2], const uint32_t w_new[2],
			  uint32_t rest, uint16_t cur, int res)
{
	for (unsigned k = 0; k < 2; k++)
		for (unsigned i = 0; i < WAYS; i++) {
			uint32_t w = before[k].tag[i], r = before[k].rest[i];
			uint64_t o = ref_other(d->nbuckets, at[k], w, r);

			if (o == at[0] || o == at[1] || bucket_full(&d->b[o], cur))
				continue;
			assert_int_equal(res, TALLY_DEDUP_NEW);
			assert_int_equal(after[k]->tag[i], w_new[k]);
			assert_int_equal(after[k]->rest[i], rest);
			assert_int_equal(d->b[o].tag[0], w ^ ROLE_B);
			assert_int_equal(d->b[o].rest[0], r);
			for (unsigned j = 1; j < 16; j++)
				assert_int_equal(d->b[o].tag[j], 0);
			if (!(w & ROLE_B))
				assert_true(covers(after[k]->tag[MARK], (uint16_t)(w & GEN_MASK), cur));
			return (int64_t)o;
		}
	return -1;
}

/*
 * What dedup.h promises for one insert, from the buckets before and after: the
 * id live in A, or in B while A's mark is live, means DUP and nothing changes;
 * else exactly one slot now holds the id at generation cur: A's first free
 * slot; with none, B's first free slot, A's mark raised to cover cur; with no
 * free slot at all, a resident's slot once the resident moved to its other
 * bucket (check_move), else an oldest one. Returns the bucket a resident moved
 * to, or -1.
 */
static int64_t check_model(const struct tally_dedup *d, const uint64_t at[2],
			   const struct tally_dedup_bucket before[2],
			   struct tally_dedup_bucket *const after[2], uint32_t tag, uint32_t rest,
			   uint16_t cur, int res)
{
	const uint32_t w_new[2] = {tag | cur, tag | ROLE_B | cur};
	bool mark = ref_live(before[0].tag[MARK], cur);
	unsigned fa = first_free(&before[0], cur), fb = first_free(&before[1], cur), ck = 0, ci = 0;
	unsigned n = changed(before, after, &ck, &ci);
	int64_t moved;

	if (holds(&before[0], tag, rest, cur) || (mark && holds(&before[1], tag | ROLE_B, rest, cur))) {
		assert_int_equal(res, TALLY_DEDUP_DUP);
		assert_int_equal(n, 0);
		assert_int_equal(after[0]->tag[MARK], before[0].tag[MARK]);
		return -1;
	}
	assert_int_equal(n, 1);
	assert_int_equal(after[ck]->tag[ci], w_new[ck]);
	assert_int_equal(after[ck]->rest[ci], rest);
	assert_int_equal(after[1]->tag[MARK], before[1].tag[MARK]);
	if (fa != WAYS) {
		assert_int_equal(res, TALLY_DEDUP_NEW);
		assert_int_equal(ck, 0);
		assert_int_equal(ci, fa);
		assert_int_equal(after[0]->tag[MARK], before[0].tag[MARK]);
		return -1;
	}
	assert_true(covers(after[0]->tag[MARK], cur, cur));
	if (covers(before[0].tag[MARK], cur, cur))
		assert_int_equal(after[0]->tag[MARK], before[0].tag[MARK]);
	if (fb != WAYS) {
		assert_int_equal(res, TALLY_DEDUP_NEW);
		assert_int_equal(ck, 1);
		assert_int_equal(ci, fb);
		return -1;
	}
	moved = check_move(d, at, before, after, w_new, rest, cur, res);
	if (moved >= 0)
		return moved;
	assert_int_equal(res, TALLY_DEDUP_NEW_EVICT);
	for (unsigned k = 0; k < 2; k++)
		for (unsigned i = 0; i < WAYS; i++)
			assert_true(ref_age(before[ck].tag[ci], cur) >= ref_age(before[k].tag[i], cur));
	return -1;
}

static unsigned states_moved, states_evicted, states_in_b; /* what the random states exercised */

/* The residents' other buckets (but the two), in both tables: full of live
 * ids (fill), or empty again. */
static void fill_others(struct tally_dedup *f, struct tally_dedup *x, const uint64_t at[2],
			const struct tally_dedup_bucket before[2], uint16_t cur, bool fill)
{
	for (unsigned k = 0; k < 2; k++)
		for (unsigned i = 0; i < WAYS; i++) {
			uint64_t o = ref_other(f->nbuckets, at[k], before[k].tag[i], before[k].rest[i]);

			if (o == at[0] || o == at[1])
				continue;
			memset(&f->b[o], 0, sizeof(f->b[o]));
			for (unsigned j = 0; fill && j < WAYS; j++) {
				f->b[o].tag[j] = ((uint32_t)rnd() & TALLY_DEDUP_TAG_MASK) |
						 pick_live_gen(cur);
				f->b[o].rest[j] = (uint32_t)rnd();
			}
			x->b[o] = f->b[o];
		}
}

/* One random state of an id's two buckets, identical in both tables; the fast
 * insert on one and the exact insert on the other must agree in every bit. */
static void one_state(struct tally_dedup *f, struct tally_dedup *x)
{
	struct tally_dedup_ref r = tally_dedup_ref(f, rnd());
	const uint64_t at[2] = {r.a, tally_dedup_index_b(f, r.h, r.a)};
	struct tally_dedup_bucket *bf[2] = {&f->b[at[0]], &f->b[at[1]]};
	struct tally_dedup_bucket *bx[2] = {&x->b[at[0]], &x->b[at[1]]};
	struct tally_dedup_bucket before[2];
	uint32_t tag = tally_dedup_tag(r.h), rest = (uint32_t)r.h;
	uint16_t cur = pick_cur();
	/* 0, 1: random; 2: both full; 3: both full, the id live in one; 4: both
	 * full, and so is every resident's other bucket (no move: an eviction);
	 * 5: A full, B random */
	unsigned mode = (unsigned)below(6);
	int64_t moved;
	int rf, rx;

	memset(before, 0, sizeof(before));
	for (unsigned k = 0; k < 2; k++) {
		for (unsigned i = 0; i < WAYS; i++) {
			struct slot s = pick_slot(tag | (k ? ROLE_B : 0), rest, cur,
						  (mode >= 2 && mode <= 4) || (mode == 5 && k == 0));

			before[k].tag[i] = s.w;
			before[k].rest[i] = s.r;
		}
		before[k].tag[MARK] = pick_mark(cur);
	}
	if (mode == 3) {
		unsigned k = (unsigned)below(2), i = (unsigned)below(WAYS);

		before[k].tag[i] = tag | (k ? ROLE_B : 0) | pick_live_gen(cur);
		before[k].rest[i] = rest;
	}
	for (unsigned k = 0; k < 2; k++)
		*bf[k] = *bx[k] = before[k];
	if (mode == 4)
		fill_others(f, x, at, before, cur, true);
	f->gen = x->gen = cur;
	rf = tally_dedup_insert(f, r, tally_dedup_view(f));
	rx = tally_dedup_insert_slow(x, r.h, cur);
	assert_int_equal(rf, rx);
	assert_memory_equal(bf[0], bx[0], sizeof(*bf[0]));
	assert_memory_equal(bf[1], bx[1], sizeof(*bf[1]));
	moved = check_model(f, at, before, bf, tag, rest, cur, rf);
	states_moved += moved >= 0;
	states_evicted += rf == TALLY_DEDUP_NEW_EVICT;
	states_in_b += rf != TALLY_DEDUP_DUP && bf[1]->tag[MARK] == before[1].tag[MARK] &&
		       memcmp(bf[1]->tag, before[1].tag, sizeof(before[1].tag)) != 0;
	for (unsigned k = 0; k < 2; k++) {
		memset(bf[k], 0, sizeof(*bf[k]));
		memset(bx[k], 0, sizeof(*bx[k]));
	}
	if (mode == 4)
		fill_others(f, x, at, before, cur, false);
	if (moved >= 0) { /* the same move in both tables, checked at the end */
		assert_memory_equal(&f->b[moved], &x->b[moved], sizeof(f->b[0]));
		memset(&f->b[moved], 0, sizeof(f->b[0]));
		memset(&x->b[moved], 0, sizeof(x->b[0]));
	}
}

static void test_fast_matches_exact(void **st)
{
	struct tally_dedup *f = tally_dedup_create(1024, 60000), *x = tally_dedup_create(1024, 60000);

	(void)st;
	assert_int_equal(f->nbuckets, x->nbuckets);
	for (unsigned writers = 1; writers <= 2; writers++) { /* plain stores, then CAS */
		tally_dedup_set_writers(f, writers);
		tally_dedup_set_writers(x, writers);
		for (int n = 0; n < 100000; n++)
			one_state(f, x);
	}
	assert_memory_equal(f->b, x->b, tally_dedup_bytes(f)); /* nothing written elsewhere */
	print_message("%u moved, %u evicted, %u into B\n", states_moved, states_evicted, states_in_b);
	assert_true(states_moved > 10000 && states_evicted > 10000 && states_in_b > 10000);
	tally_dedup_destroy(f);
	tally_dedup_destroy(x);
}

/*
 * The same on states the table makes itself: a run of inserts of ids from a
 * pool (so duplicates and expired slots are common) across the generation wrap,
 * generations and sweeps moving alike in both tables. Each answer is checked
 * against when the id was last new; at the end both tables hold the same bits.
 */
static void test_fast_matches_exact_run(void **st)
{
	enum { POOL = 100000, OPS = 200000, OPS_PER_GEN = 4000 }; /* 50 generations */
	static uint16_t last[POOL + 1]; /* generation the id was last new at, 0: never */

	(void)st;
	for (unsigned writers = 1; writers <= 2; writers++) {
		struct tally_dedup *f = tally_dedup_create(1024, 8000);
		struct tally_dedup *x = tally_dedup_create(1024, 8000);
		uint64_t nf = 1, nx = 1;

		tally_dedup_set_writers(f, writers);
		tally_dedup_set_writers(x, writers);
		walk_to(f, &nf, GEN_MAX - 40, 16); /* a pass every 4096 generations */
		walk_to(x, &nx, GEN_MAX - 40, 16);
		memset(last, 0, sizeof(last));
		for (int op = 0; op < OPS; op++) {
			uint64_t id = 1 + below(POOL);
			uint16_t cur = tally_dedup_gen(f);
			struct tally_dedup_ref r = tally_dedup_ref(f, id);
			int rf = tally_dedup_insert(f, r, tally_dedup_view(f));
			bool dup = last[id] != 0 && gen_back(cur, last[id]) <= GENS;

			assert_int_equal(rf, tally_dedup_insert_slow(x, r.h, tally_dedup_gen(x)));
			assert_int_equal(rf, dup ? TALLY_DEDUP_DUP : TALLY_DEDUP_NEW);
			last[id] = dup ? last[id] : cur;
			if (op % OPS_PER_GEN == OPS_PER_GEN - 1) {
				tally_dedup_tick(f, nf += 1000, 0, 512);
				tally_dedup_tick(x, nx += 1000, 0, 512);
			}
		}
		assert_int_equal(tally_dedup_gen(f), gen_add(GEN_MAX - 40, OPS / OPS_PER_GEN));
		assert_memory_equal(f->b, x->b, tally_dedup_bytes(f));
		tally_dedup_destroy(f);
		tally_dedup_destroy(x);
	}
}

/* ---- Generations: the wrap and the sweeper guard ---- */

/*
 * Ids inserted a few generations before the counter wraps are duplicates for
 * GENS generations, across the wrap, and new after that. A group of ids is
 * inserted every generation from GEN_MAX - 30 to 50 (the exact path's wrapping
 * windows and the fast path's on both sides); every group is probed every
 * generation against when it was last new.
 */
static void test_wrap_horizon(void **st)
{
	enum { PER = 64, STEPS = 81 };
	struct tally_dedup *d = tally_dedup_create(1024, 8000);
	uint16_t last[STEPS] = {0};
	uint64_t now = 1;

	(void)st;
	walk_to(d, &now, GEN_MAX - 30, 16); /* 16 buckets a tick: a pass every 4096 generations */
	for (unsigned step = 0; step < STEPS; step++) {
		uint16_t cur = tally_dedup_gen(d);

		assert_int_equal(cur, gen_add(GEN_MAX - 30, (int)step));
		for (unsigned g = 0; g <= step; g++) {
			bool live = g < step && gen_back(cur, last[g]) <= GENS;

			for (uint64_t i = 0; i < PER; i++)
				assert_int_equal(ins(d, (uint64_t)g << 32 | i),
						 live ? TALLY_DEDUP_DUP : TALLY_DEDUP_NEW);
			last[g] = live ? last[g] : cur;
		}
		now += 1000;
		tally_dedup_tick(d, now, 0, 16);
	}
	assert_int_equal(tally_dedup_gen(d), 51);
	assert_int_equal(d->ctl.held_back, 0);
	tally_dedup_destroy(d);
}

/*
 * With no sweeping at all, the generation stops about GEN_MAX / 2 generations
 * after the last complete pass began (a stale slot could otherwise come round
 * and look live); while it is held, every tick counts a held-back advance and
 * ids of the last GENS + 1 generations stay duplicates. Given a sweep budget it
 * moves again within two passes, one generation a tick.
 */
static void test_sweeper_guard(void **st)
{
	struct tally_dedup *d = tally_dedup_create(1024, 8000);
	uint16_t start = tally_dedup_gen(d), stuck;
	size_t rate = tally_dedup_sweep_rate(d, 2);
	uint64_t now = 1, passes;
	unsigned n;

	(void)st;
	tally_dedup_tick(d, now, 0, 0); /* sets the generation's start time */
	for (n = 0; d->ctl.held_back == 0; n++) {
		uint16_t g = tally_dedup_gen(d);

		assert_true(n <= GEN_MAX);
		assert_int_equal(ins(d, g), TALLY_DEDUP_NEW); /* one id per generation: the id is g */
		tally_dedup_tick(d, now += 1000, 0, 0);
		assert_int_equal(tally_dedup_gen(d), d->ctl.held_back ? g : gen_add(g, 1));
	}
	stuck = tally_dedup_gen(d);
	assert_true(gen_back(stuck, start) <= GEN_MAX / 2);
	assert_true(gen_back(stuck, start) >= GEN_MAX / 2 - 2 * GENS);
	assert_int_equal(ins(d, 1000000), TALLY_DEDUP_NEW);
	for (unsigned k = 2; k < 5000; k++) { /* time passes, the generation does not */
		tally_dedup_tick(d, now += 1000, 0, 0);
		assert_int_equal(tally_dedup_gen(d), stuck);
		assert_int_equal(d->ctl.held_back, k);
	}
	assert_int_equal(ins(d, 1000000), TALLY_DEDUP_DUP);
	for (int back = 0; back <= GENS; back++)
		assert_int_equal(ins(d, gen_add(stuck, -back)), TALLY_DEDUP_DUP);
	assert_int_equal(ins(d, gen_add(stuck, -(GENS + 1))), TALLY_DEDUP_NEW);
	/* a sweep budget: moving again once two passes are done, then every tick */
	passes = d->nbuckets / rate + 1;
	for (n = 0; tally_dedup_gen(d) == stuck; n++) {
		assert_true(n <= 2 * passes + 1);
		tally_dedup_tick(d, now += 1000, 0, rate);
	}
	uint64_t held = d->ctl.held_back;

	for (int k = 1; k <= 200; k++) {
		assert_int_equal(tally_dedup_gen(d), gen_add(stuck, k));
		if (k == GENS + 1) /* the horizon is counted in generations again */
			assert_int_equal(ins(d, 1000000), TALLY_DEDUP_NEW);
		tally_dedup_tick(d, now += 1000, 0, rate);
	}
	assert_int_equal(d->ctl.held_back, held);
	tally_dedup_destroy(d);
}

/* ---- Two writers at once ---- */

enum { RACE_IDS = 50000, RACE_CHUNK = 500 };

struct lane {
	struct tally_dedup *d;
	uint64_t base;
	uint32_t n;
	pthread_barrier_t *bar;
	uint8_t res[RACE_IDS];
};

/* Both lanes insert the same ids in the same order and meet at a barrier every
 * chunk, so they are on the same ids at the same time. */
static void *lane_run(void *arg)
{
	struct lane *l = arg;

	for (uint32_t i = 0; i < l->n; i++) {
		if (i % RACE_CHUNK == 0)
			pthread_barrier_wait(l->bar);
		l->res[i] = (uint8_t)ins(l->d, tally_dedup_hash(l->base + i));
	}
	return NULL;
}

struct sweeper {
	struct tally_dedup *d;
	uint64_t now;
	int stop;
};

/* The control thread sweeping while the lanes insert; `now` is the current
 * generation's start, so the generation itself does not move. */
static void *sweep_run(void *arg)
{
	struct sweeper *s = arg;

	while (!ck_pr_load_int(&s->stop))
		tally_dedup_tick(s->d, s->now, 0, 256);
	return NULL;
}

/* One race of n ids; `full`: the table was full of live ids, so new ids evict. */
static void race_round(struct tally_dedup *d, uint64_t now, uint64_t base, uint32_t n, bool full)
{
	static struct lane l[2];
	struct sweeper sw = {d, now, 0};
	pthread_barrier_t bar;
	pthread_t t[3];
	uint32_t twice = 0, evicts = 0;

	pthread_barrier_init(&bar, NULL, 2);
	for (int i = 0; i < 2; i++) {
		l[i].d = d;
		l[i].base = base;
		l[i].n = n;
		l[i].bar = &bar;
		pthread_create(&t[i], NULL, lane_run, &l[i]);
	}
	pthread_create(&t[2], NULL, sweep_run, &sw);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ck_pr_store_int(&sw.stop, 1);
	pthread_join(t[2], NULL);
	pthread_barrier_destroy(&bar);
	for (uint32_t i = 0; i < n; i++) {
		int news = (l[0].res[i] != TALLY_DEDUP_DUP) + (l[1].res[i] != TALLY_DEDUP_DUP);

		assert_true(news >= 1);
		twice += news == 2;
		for (int k = 0; k < 2; k++) {
			evicts += l[k].res[i] == TALLY_DEDUP_NEW_EVICT;
			if (!full)
				assert_int_not_equal(l[k].res[i], TALLY_DEDUP_NEW_EVICT);
		}
	}
	if (twice)
		print_message("base %llx: %u of %u ids new to both writers\n",
			      (unsigned long long)base, twice, n);
	assert_int_equal(twice, 0);
	if (full) /* the race was on the eviction path (a few buckets kept a free slot) */
		assert_true(evicts >= n * 9 / 10);
}

/*
 * Two CAS writers and the sweeper, the same ids at the same time: exactly one
 * NEW per id, on the fast path (generations whose window does not wrap; three
 * generations between rounds, so earlier rounds' slots expire and are reused
 * under the race) and on the exact path (every generation whose window wraps).
 */
static void test_two_threads_paths(void **st)
{
	struct tally_dedup *d = tally_dedup_create(1 << 16, 8000);
	uint64_t now = 1, round = 1;

	(void)st;
	tally_dedup_tick(d, now, 0, 0);
	for (; round <= 6; round++) {
		assert_true(tally_dedup_view(d).simple);
		race_round(d, now, round << 32, 25000, false);
		walk_to(d, &now, gen_add(tally_dedup_gen(d), 3), 4096);
	}
	walk_to(d, &now, GEN_MAX - 15, 16);
	for (; !tally_dedup_view(d).simple; round++) {
		race_round(d, now, round << 32, 25000, false);
		walk_to(d, &now, gen_add(tally_dedup_gen(d), 2), 4096);
	}
	assert_int_equal(tally_dedup_gen(d), 9); /* GEN_MAX - 15 .. GEN_MAX, 1 .. 8 done */
	tally_dedup_destroy(d);
}

/*
 * Both buckets full of live ids, two CAS writers inserting the same id: exactly
 * one gets NEW_EVICT and the id takes one slot. evict() must CAS from the value
 * its scan judged, and a writer that loses must look for the id again before it
 * evicts. The table is filled, then aged 4 generations, so the ids of the race
 * are never each other's victims: exactly one new per id is exact here.
 */
static void test_two_threads_full(void **st)
{
	struct tally_dedup *d = tally_dedup_create(1024, 8000);
	uint64_t slots = d->nbuckets * WAYS, now = 1;

	(void)st;
	tally_dedup_tick(d, now, 0, 0);
	for (uint64_t id = 1; id <= slots + slots / 4; id++)
		assert_int_not_equal(ins(d, id), TALLY_DEDUP_DUP);
	walk_to(d, &now, gen_add(tally_dedup_gen(d), 4), 4096);
	race_round(d, now, 1ULL << 40, RACE_IDS, true);
	tally_dedup_destroy(d);
}

/* ---- The capacity horizon at its load ---- */

/*
 * capacity + capacity/8 ids, the generation moving every capacity/8 inserts (a
 * tick after every insert, given the total inserted, as tallyd passes it): none
 * evicted early, every id of the last `capacity` a duplicate, the first
 * generation's ids beyond the horizon. Capacities with a power-of-two, an odd
 * and the minimum bucket count.
 */
static void horizon_load(uint64_t cap)
{
	struct tally_dedup *d = tally_dedup_create(cap, 3600000);
	uint64_t per = cap / GENS, total = cap + per;
	uint16_t g0 = tally_dedup_gen(d);

	for (uint64_t id = 1; id <= total; id++) {
		assert_int_equal(ins(d, id), TALLY_DEDUP_NEW);
		tally_dedup_tick(d, 1, id, 1); /* a bucket a tick: a pass every 1-2 generations */
	}
	assert_int_equal(tally_dedup_gen(d), gen_add(g0, GENS + 1));
	for (uint64_t id = total - cap + 1; id <= total; id++)
		assert_int_equal(ins(d, id), TALLY_DEDUP_DUP);
	for (uint64_t id = 1; id <= per; id++)
		assert_int_equal(ins(d, id), TALLY_DEDUP_NEW);
	assert_int_equal(d->ctl.held_back, 0);
	tally_dedup_destroy(d);
}

static void test_capacity_horizon_load(void **st)
{
	(void)st;
	horizon_load(1 << 19);       /* 2^17 buckets */
	horizon_load((1 << 18) + 3); /* 65537 buckets */
	horizon_load(1024);          /* the minimum table, lightly loaded */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_then_dup), cmocka_unit_test(test_time_horizon),
		cmocka_unit_test(test_capacity), cmocka_unit_test(test_capacity_coarse_ticks),
		cmocka_unit_test(test_table_full), cmocka_unit_test(test_full_buckets_move),
		cmocka_unit_test(test_forget), cmocka_unit_test(test_generation_wrap),
		cmocka_unit_test(test_two_threads), cmocka_unit_test(test_pending_waits),
		cmocka_unit_test(test_fast_matches_exact),
		cmocka_unit_test(test_fast_matches_exact_run), cmocka_unit_test(test_wrap_horizon),
		cmocka_unit_test(test_sweeper_guard), cmocka_unit_test(test_two_threads_paths),
		cmocka_unit_test(test_two_threads_full),
		cmocka_unit_test(test_capacity_horizon_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
