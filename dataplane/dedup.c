/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The shared, lock-free event-id dedup table (layout and horizon in dedup.h).
 *
 * Two buckets per id: A from h's high bits, B = A + an offset of the fingerprint.
 * An insert goes to the emptier of the two ("two choices"): at load 0.56 a lone
 * 8-way bucket overflows for a few percent of buckets, first-fit A-then-B still
 * evicted 0.9% of ids early, two choices none (tests/test_dedup.c). Bit 15 of a slot's generation field says A or B, so a match needs
 * the same fingerprint in the same role.
 *
 * No false positives. h = fmix64(id) is a bijection. Two distinct h with the same
 * fingerprint (low 48 bits) differ only in their top 16 bits, by k >= 1, so their
 * (h >> 32) differ by k * 2^16 and, times nbuckets >= 2^16, by at least 2^32: the
 * multiply-shift puts them in different buckets. A (bucket, fingerprint) pair
 * therefore names exactly one id; and equal fingerprints give equal B offsets,
 * so a (B bucket, fingerprint, role B) triple names one id too.
 *
 * Concurrency. Slots change only by CAS (ck_pr). An insert scans its whole
 * bucket: a live slot with its fingerprint means duplicate; otherwise it claims
 * the first claimable slot (empty or expired), and rescans when the CAS loses.
 * Two workers inserting the same id scan the same slots in the same order, so
 * they meet on the same lowest claimable slot: one CAS wins, the loser rescans,
 * sees the fingerprint and reports a duplicate. The residual race: if a
 * slot below the winner's turns claimable between the two scans (a generation
 * expires, or an eviction), both may claim. That needs the same id on two workers
 * within nanoseconds at a generation boundary; duplicates of one flow hash to one
 * RSS queue, hence one worker, where there is no race.
 *
 * Expiry. The control thread advances the generation and sweeps expired slots to
 * empty, TALLY_DEDUP_SWEEP buckets per tick, so a generation number is never
 * reused while a slot still carries it (see tally_dedup_tick).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <ck_pr.h>

#include "dedup.h"
#include "mem.h"

#define FP_BITS 48
#define FP_MASK ((1ULL << FP_BITS) - 1)
#define GEN_MAX 32767u
#define ROLE_B 0x8000u /* slot lives in its id's second bucket */

struct bucket {
	uint64_t slot[TALLY_DEDUP_WAYS];
} __attribute__((aligned(64)));

struct tally_dedup {
	struct bucket *b;
	uint64_t nbuckets;
	uint64_t capacity, horizon_ms;
	uint16_t gen;            /* written by the control thread only */
	uint64_t gen_start_ms;   /* control thread only */
	uint64_t gen_start_ins;  /* control thread only */
	uint64_t sweep_cursor;   /* control thread only */
	size_t bytes;
};

struct tally_dedup *tally_dedup_create(uint64_t capacity, uint64_t horizon_ms)
{
	struct tally_dedup *d = calloc(1, sizeof(*d));
	uint64_t nb = (2 * capacity + TALLY_DEDUP_WAYS - 1) / TALLY_DEDUP_WAYS;

	if (d == NULL)
		return NULL;
	d->nbuckets = nb < TALLY_DEDUP_MIN_BUCKETS ? TALLY_DEDUP_MIN_BUCKETS : nb;
	d->bytes = d->nbuckets * sizeof(struct bucket);
	d->b = tally_mem_map(d->bytes);
	if (d->b == NULL) {
		free(d);
		errno = ENOMEM;
		return NULL;
	}
	d->capacity = capacity;
	d->horizon_ms = horizon_ms;
	d->gen = 1;
	return d;
}

void tally_dedup_destroy(struct tally_dedup *d)
{
	if (d == NULL)
		return;
	tally_mem_unmap(d->b, d->bytes);
	free(d);
}

size_t tally_dedup_bytes(const struct tally_dedup *d) { return d->bytes; }

uint16_t tally_dedup_gen(const struct tally_dedup *d)
{
	return ck_pr_load_16(&d->gen);
}

static inline uint64_t index_a(const struct tally_dedup *d, uint64_t h)
{
	return ((h >> 32) * d->nbuckets) >> 32;
}

/* B = A + an offset that depends on the fingerprint only: two ids with one
 * fingerprint have different A (see above), hence different B. */
static inline uint64_t index_b(const struct tally_dedup *d, uint64_t h, uint64_t a)
{
	uint64_t mix = (h & FP_MASK) * 0x9e3779b97f4a7c15ULL >> 32; /* no division: hot path */
	uint64_t b = a + 1 + ((mix * (d->nbuckets - 1)) >> 32);

	return b >= d->nbuckets ? b - d->nbuckets : b;
}

void tally_dedup_prefetch(const struct tally_dedup *d, uint64_t h)
{
	uint64_t a = index_a(d, h);

	__builtin_prefetch(&d->b[a], 1, 3);
	__builtin_prefetch(&d->b[index_b(d, h, a)], 1, 3);
}

/*
 * Generations run 1..GEN_MAX and wrap; age of g seen from cur. A worker's
 * snapshot of cur can be a generation or two behind another worker's, so a g
 * slightly ahead of cur is age 0, not ancient.
 */
#define GEN_AHEAD 16
static inline unsigned gen_age(uint16_t cur, uint16_t g)
{
	unsigned a = cur >= g ? (unsigned)(cur - g) : (unsigned)(cur + GEN_MAX - g);

	return a >= GEN_MAX - GEN_AHEAD ? 0 : a;
}

static inline int live(uint64_t s, uint16_t cur)
{
	return s != 0 && gen_age(cur, (uint16_t)(s & GEN_MAX)) <= TALLY_DEDUP_GENS;
}

/* The live slot with the oldest generation: what a full bucket gives up. */
static unsigned oldest(const struct bucket *b, uint16_t cur)
{
	unsigned best = 0, age = 0;

	for (unsigned i = 0; i < TALLY_DEDUP_WAYS; i++) {
		uint64_t s = ck_pr_load_64(&b->slot[i]);
		unsigned a = gen_age(cur, (uint16_t)(s & GEN_MAX));

		if (a >= age) {
			age = a;
			best = i;
		}
	}
	return best;
}

/* One pass over a bucket: is `mine` (fingerprint and role) live in it; how many
 * slots are live; which is the first claimable one (TALLY_DEDUP_WAYS: none). */
struct look {
	unsigned live, free_i;
	uint64_t free_s;
};

static int scan(struct bucket *b, uint64_t mine, uint16_t gen, struct look *l)
{
	l->live = 0;
	l->free_i = TALLY_DEDUP_WAYS;
	for (unsigned i = 0; i < TALLY_DEDUP_WAYS; i++) {
		uint64_t s = ck_pr_load_64(&b->slot[i]);

		if (live(s, gen)) {
			if ((s & ~(uint64_t)GEN_MAX) == mine)
				return 1;
			l->live++;
		} else if (l->free_i == TALLY_DEDUP_WAYS) {
			l->free_i = i;
			l->free_s = s;
		}
	}
	return 0;
}

/* Every slot of both buckets live: the oldest generation goes. */
static bool evict(struct bucket *a, struct bucket *b, uint64_t ma, uint64_t mb, uint16_t gen)
{
	unsigned ia = oldest(a, gen), ib = oldest(b, gen);
	uint64_t sa = ck_pr_load_64(&a->slot[ia]), sb = ck_pr_load_64(&b->slot[ib]);

	if (gen_age(gen, (uint16_t)(sa & GEN_MAX)) >= gen_age(gen, (uint16_t)(sb & GEN_MAX)))
		return ck_pr_cas_64(&a->slot[ia], sa, ma | gen);
	return ck_pr_cas_64(&b->slot[ib], sb, mb | gen);
}

enum tally_dedup_result tally_dedup_insert(struct tally_dedup *d, uint64_t h, uint16_t gen)
{
	uint64_t ia = index_a(d, h), fp = (h & FP_MASK) << 16;
	struct bucket *a = &d->b[ia], *b = &d->b[index_b(d, h, ia)];
	uint64_t ma = fp, mb = fp | ROLE_B;

	/* The emptier of the two buckets takes the id (ties: A), at its first
	 * claimable slot. Two inserters of one id that see the same buckets make the
	 * same choice and meet on one slot; a lost CAS means a bucket changed under
	 * us, so look again and the id that won the slot is seen if it is ours. */
	for (int attempt = 0; attempt < 8; attempt++) {
		struct look la, lb;
		bool to_b;

		if (scan(a, ma, gen, &la) || scan(b, mb, gen, &lb))
			return TALLY_DEDUP_DUP;
		if (la.free_i == TALLY_DEDUP_WAYS && lb.free_i == TALLY_DEDUP_WAYS) {
			if (evict(a, b, ma, mb, gen))
				return TALLY_DEDUP_NEW_EVICT;
			continue;
		}
		to_b = la.free_i == TALLY_DEDUP_WAYS ||
		       (lb.free_i != TALLY_DEDUP_WAYS && lb.live < la.live);
		if (to_b ? ck_pr_cas_64(&b->slot[lb.free_i], lb.free_s, mb | gen)
			 : ck_pr_cas_64(&a->slot[la.free_i], la.free_s, ma | gen))
			return TALLY_DEDUP_NEW;
	}
	/* Contended beyond reason: count it rather than stall the worker. */
	return TALLY_DEDUP_NEW_EVICT;
}

void tally_dedup_forget(struct tally_dedup *d, uint64_t h, uint16_t gen)
{
	uint64_t ia = index_a(d, h), fp = (h & FP_MASK) << 16;
	struct bucket *bk[2] = {&d->b[ia], &d->b[index_b(d, h, ia)]};

	for (unsigned k = 0; k < 2; k++) {
		uint64_t mine = fp | (k ? ROLE_B : 0) | gen;

		for (unsigned i = 0; i < TALLY_DEDUP_WAYS; i++)
			if (ck_pr_load_64(&bk[k]->slot[i]) == mine &&
			    ck_pr_cas_64(&bk[k]->slot[i], mine, 0))
				return;
	}
}

static void advance(struct tally_dedup *d, uint64_t now_ms, uint64_t inserted)
{
	uint16_t next = d->gen == GEN_MAX ? 1 : d->gen + 1;

	ck_pr_store_16(&d->gen, next);
	d->gen_start_ms = now_ms;
	d->gen_start_ins = inserted;
}

/* Clear expired slots; the CAS leaves a slot alone if a worker just reclaimed it. */
static size_t sweep(struct tally_dedup *d, size_t max_buckets)
{
	uint16_t cur = ck_pr_load_16(&d->gen);
	size_t cleared = 0;

	for (size_t n = 0; n < max_buckets && n < d->nbuckets; n++) {
		struct bucket *b = &d->b[d->sweep_cursor];

		for (unsigned i = 0; i < TALLY_DEDUP_WAYS; i++) {
			uint64_t s = ck_pr_load_64(&b->slot[i]);

			if (s != 0 && !live(s, cur) && ck_pr_cas_64(&b->slot[i], s, 0))
				cleared++;
		}
		d->sweep_cursor = d->sweep_cursor + 1 == d->nbuckets ? 0 : d->sweep_cursor + 1;
	}
	return cleared;
}

/*
 * Sweep rate: a generation lasts at least horizon_ms / GENS or capacity / GENS
 * inserts. With ticks every ~10 ms and 65536 buckets per tick, a full pass over
 * a 1G-id table (2^28 buckets) takes ~41 s, far inside the 65535 - GENS - 1
 * generations after which a stale generation number could look live again.
 */
size_t tally_dedup_tick(struct tally_dedup *d, uint64_t now_ms, uint64_t inserted,
			size_t max_buckets)
{
	uint64_t per_gen_ms = d->horizon_ms / TALLY_DEDUP_GENS;
	uint64_t per_gen_ids = d->capacity / TALLY_DEDUP_GENS;

	if (d->gen_start_ms == 0)
		d->gen_start_ms = now_ms;
	if (now_ms - d->gen_start_ms >= per_gen_ms || inserted - d->gen_start_ins >= per_gen_ids)
		advance(d, now_ms, inserted);
	return sweep(d, max_buckets);
}
