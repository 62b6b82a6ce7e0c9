/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The shared, lock-free event-id dedup table (layout and horizon in dedup.h).
 *
 * Two buckets per id, the emptier takes it ("two choices"): at the load the
 * horizon keeps (9/16 of the slots live) a lone 8-way bucket overflows for a few
 * percent of buckets, first-fit A-then-B still evicted 0.9% of ids early,
 * linear probing over neighbour lines 0.3% and a neighbour as the second choice
 * 0.15%; two independent choices evict almost none (2 in 570M inserts at the
 * horizon), and when both are full one resident moves to its other bucket
 * first (make_room), so none (tests/test_dedup.c). The price is two cache
 * lines per new id, both prefetched together.
 *
 * No false positives. h = fmix64(id) is a bijection. Two distinct h with the same
 * fingerprint (low 48 bits) differ by k * 2^48, 0 < |k| < 2^16; their A indices
 * floor(h * n / 2^64) then differ by at least floor(|k| * n / 2^16) >= 1 with
 * n >= 2^16 buckets. A (bucket, fingerprint) pair therefore names exactly one
 * id; and equal fingerprints give equal B offsets, so a (B bucket, fingerprint,
 * role B) triple names one id too.
 *
 * Concurrency. With several workers every slot changes by CAS. An insert scans
 * both buckets before it claims; two workers inserting the same id scan the same
 * slots in the same order and pick the same slot, so one CAS wins and the loser
 * rescans and sees the id. The residual race: a slot ahead of the chosen one
 * turns claimable between the two scans (a generation ends, an eviction), and
 * each worker claims a different slot. That needs the same id on two workers
 * within nanoseconds at a generation boundary; duplicates of one flow hash to
 * one RSS queue, hence one worker, where there is no race. With one worker,
 * slots are plain stores: the only other writer is the sweeper, whose CAS from
 * an expired value fails if the worker stored first, and whose cleared slot the
 * worker may overwrite.
 *
 * Expiry. Inserts reuse expired slots in place; the sweeper (control thread)
 * clears them anyway so that no stale generation number survives until the
 * 15-bit counter comes round again: the generation only advances while the last
 * complete sweep pass began fewer than GEN_MAX / 2 generations ago.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dedup.h"
#include "mem.h"

#define GEN_MASK TALLY_DEDUP_GEN_MASK
#define GEN_MAX TALLY_DEDUP_GEN_MAX
#define WAYS TALLY_DEDUP_WAYS
#define SWEEP_PASS_MS 5000 /* a full sweep pass every ~5 s */
#define SWEEP_MIN 1024

struct tally_dedup *tally_dedup_create(uint64_t capacity, uint64_t horizon_ms)
{
	struct tally_dedup *d = aligned_alloc(64, sizeof(*d));
	uint64_t nb = (2 * capacity + WAYS - 1) / WAYS; /* two slots an id */

	if (d == NULL || capacity == 0 || capacity > 1ULL << 34 || horizon_ms == 0) {
		free(d);
		errno = d == NULL ? ENOMEM : EINVAL;
		return NULL;
	}
	memset(d, 0, sizeof(*d));
	d->nbuckets = nb < TALLY_DEDUP_MIN_BUCKETS ? TALLY_DEDUP_MIN_BUCKETS : nb;
	d->bytes = d->nbuckets * sizeof(struct tally_dedup_bucket);
	d->b = tally_mem_map(d->bytes);
	if (d->b == NULL) {
		free(d);
		errno = ENOMEM;
		return NULL;
	}
	d->capacity = capacity;
	d->horizon_ms = horizon_ms;
	/* The first generation whose live window does not wrap: fast from the start. */
	d->gen = d->ctl.sweep_pass_gen = d->ctl.swept_gen = TALLY_DEDUP_GENS + 1;
	return d;
}

void tally_dedup_destroy(struct tally_dedup *d)
{
	if (d == NULL)
		return;
	tally_mem_unmap(d->b, d->bytes);
	free(d);
}

void tally_dedup_set_writers(struct tally_dedup *d, unsigned writers)
{
	d->single_writer = writers <= 1;
}

size_t tally_dedup_bytes(const struct tally_dedup *d) { return d->bytes; }

size_t tally_dedup_sweep_rate(const struct tally_dedup *d, unsigned tick_ms)
{
	size_t n = d->nbuckets * tick_ms / SWEEP_PASS_MS + 1;

	return n < SWEEP_MIN ? SWEEP_MIN : n;
}

/* Replace the slot at p (read as old) with v: a store for one writer, else CAS. */
static bool put(struct tally_dedup *d, uint64_t *p, uint64_t old, uint64_t v)
{
	if (d->single_writer) {
		ck_pr_store_64(p, v);
		return true;
	}
	return ck_pr_cas_64(p, old, v);
}

/*
 * One bucket as read once, judged with the exact age rule (any generation
 * window): is `mine` live in it, how many slots are live, the first claimable
 * slot (WAYS: none) and the oldest slot. Every decision and every CAS of an
 * insert uses these values, never a second read: a CAS from a value read later
 * could replace the slot another worker just gave this very id.
 */
struct look {
	bool hit;
	unsigned live, free_i, old_i, old_age;
	uint64_t s[WAYS];
};

static void look_at(const struct tally_dedup_bucket *b, uint64_t mine, uint16_t gen,
		    struct look *l)
{
	*l = (struct look){.free_i = WAYS};
	for (unsigned i = 0; i < WAYS; i++) {
		uint64_t s = l->s[i] = ck_pr_load_64(&b->slot[i]);
		unsigned age = tally_dedup_age(gen, (uint16_t)(s & GEN_MASK));

		if (!tally_dedup_live(s, gen)) {
			l->free_i = l->free_i == WAYS ? i : l->free_i;
			continue;
		}
		l->hit |= (s & ~(uint64_t)GEN_MASK) == mine;
		l->live++;
		if (age >= l->old_age) {
			l->old_age = age;
			l->old_i = i;
		}
	}
}

/* The bucket a slot in bucket x would be in under its other role: its fingerprint
 * (the slot's high 48 bits, h's low 48) gives the offset B = A + 1 + offset. */
static uint64_t other_bucket(const struct tally_dedup *d, uint64_t x, uint64_t s)
{
	uint64_t fp48 = s >> 16, b;

	if (!(s & TALLY_DEDUP_ROLE_B))
		return tally_dedup_index_b(d, fp48, x);
	b = tally_dedup_index_b(d, fp48, 0); /* 1 + offset, < nbuckets */
	return x >= b ? x - b : x + d->nbuckets - b;
}

/*
 * Both of the id's buckets are full of live ids. Before evicting one, move one
 * to its other bucket if that has a claimable slot (a cuckoo step): the live
 * ids then stay remembered until the table itself is full. At the load the
 * horizon keeps, two full buckets are rare (a 60 s run of 570M inserts met
 * two), and the sixteen residents' other buckets all full rarer still.
 *
 * The copy is written first, with the resident's generation and its other
 * role, then the resident's slot is given to the new id: a lookup of the
 * resident finds it at every moment (twice, for a moment, which is harmless),
 * and (bucket, role, fingerprint) still names one id. Each write is from the
 * value a scan judged (a CAS with several writers): if the second loses, the
 * copy stays, the id is not in yet, and the caller looks again.
 * Returns 1 when the id is in, 0 when no resident could move, -1 when a slot
 * changed under us.
 */
static int make_room(struct tally_dedup *d, struct tally_dedup_bucket *bk[2],
		     const struct look l[2], uint64_t fp, uint16_t gen)
{
	for (unsigned k = 0; k < 2; k++) {
		uint64_t x = (uint64_t)(bk[k] - d->b);

		for (unsigned i = 0; i < WAYS; i++) {
			uint64_t s = l[k].s[i];
			struct tally_dedup_bucket *o = &d->b[other_bucket(d, x, s)];
			struct look lo;

			look_at(o, 0, gen, &lo);
			if (lo.free_i == WAYS)
				continue;
			if (!put(d, &o->slot[lo.free_i], lo.s[lo.free_i], s ^ TALLY_DEDUP_ROLE_B))
				return -1;
			return put(d, &bk[k]->slot[i], s, fp | (k ? TALLY_DEDUP_ROLE_B : 0) | gen)
				       ? 1
				       : -1;
		}
	}
	return 0;
}

enum tally_dedup_result tally_dedup_insert_slow(struct tally_dedup *d, uint64_t h,
						uint16_t gen)
{
	uint64_t ia = tally_dedup_index_a(d, h), fp = h << 16;
	struct tally_dedup_bucket *bk[2] = {&d->b[ia], &d->b[tally_dedup_index_b(d, h, ia)]};

	for (int attempt = 0; attempt < 8; attempt++) {
		struct look l[2];
		unsigned k;

		look_at(bk[0], fp, gen, &l[0]);
		look_at(bk[1], fp | TALLY_DEDUP_ROLE_B, gen, &l[1]);
		if (l[0].hit || l[1].hit)
			return TALLY_DEDUP_DUP;
		if (l[0].free_i == WAYS && l[1].free_i == WAYS) {
			int moved = make_room(d, bk, l, fp, gen);

			if (moved > 0)
				return TALLY_DEDUP_NEW;
			if (moved < 0)
				continue; /* a slot changed under us: look again */
			/* both full of live ids: the oldest generation of the two goes */
			k = l[0].old_age >= l[1].old_age ? 0 : 1;
			if (put(d, &bk[k]->slot[l[k].old_i], l[k].s[l[k].old_i],
				fp | (k ? TALLY_DEDUP_ROLE_B : 0) | gen))
				return TALLY_DEDUP_NEW_EVICT;
			continue;
		}
		/* the emptier takes it (ties: A), at its first claimable slot */
		k = l[0].free_i == WAYS || (l[1].free_i != WAYS && l[1].live < l[0].live);
		if (put(d, &bk[k]->slot[l[k].free_i], l[k].s[l[k].free_i],
			fp | (k ? TALLY_DEDUP_ROLE_B : 0) | gen))
			return TALLY_DEDUP_NEW;
		/* a slot changed under us: look again, the id may be there now */
	}
	/* Contended beyond reason: count it rather than stall the worker. */
	return TALLY_DEDUP_NEW_GAVE_UP;
}

void tally_dedup_forget(struct tally_dedup *d, uint64_t h, uint16_t gen)
{
	uint64_t ia = tally_dedup_index_a(d, h), fp = h << 16;
	struct tally_dedup_bucket *bk[2] = {&d->b[ia], &d->b[tally_dedup_index_b(d, h, ia)]};

	for (unsigned k = 0; k < 2; k++) {
		uint64_t mine = fp | (k ? TALLY_DEDUP_ROLE_B : 0) | gen;

		for (unsigned i = 0; i < WAYS; i++)
			if (ck_pr_load_64(&bk[k]->slot[i]) == mine && put(d, &bk[k]->slot[i], mine, 0))
				return;
	}
}

/* Generations the counter moved from a to b, modulo its range. */
static unsigned gen_dist(uint16_t a, uint16_t b)
{
	return b >= a ? (unsigned)(b - a) : (unsigned)(b + GEN_MAX - a);
}

static bool advance(struct tally_dedup *d, uint64_t now_ms)
{
	uint16_t next = d->gen == GEN_MAX ? 1 : d->gen + 1;

	if (gen_dist(d->ctl.swept_gen, next) >= GEN_MAX / 2) {
		d->ctl.held_back++; /* the sweeper is behind: a reused number could look live */
		return false;
	}
	ck_pr_store_16(&d->gen, next);
	d->ctl.gen_start_ms = now_ms;
	return true;
}

/* Clear expired slots; the CAS leaves a slot alone if a worker just rewrote it. */
static size_t sweep(struct tally_dedup *d, size_t max_buckets)
{
	uint16_t cur = ck_pr_load_16(&d->gen);
	size_t cleared = 0;

	for (size_t n = 0; n < max_buckets && n < d->nbuckets; n++) {
		struct tally_dedup_bucket *b = &d->b[d->ctl.sweep_cursor];

		for (unsigned i = 0; i < WAYS; i++) {
			uint64_t s = ck_pr_load_64(&b->slot[i]);

			if (s != 0 && !tally_dedup_live(s, cur) && ck_pr_cas_64(&b->slot[i], s, 0))
				cleared++;
		}
		if (++d->ctl.sweep_cursor == d->nbuckets) {
			d->ctl.sweep_cursor = 0;
			d->ctl.swept_gen = d->ctl.sweep_pass_gen;
			d->ctl.sweep_pass_gen = cur;
		}
	}
	return cleared;
}

/* 1/8 of the most ids a tick brought at the last 8 advances, less one: a
 * generation overshoots its quota by at most that tick's ids - 1 (see below). */
static uint64_t margin(const struct tally_dedup *d)
{
	uint64_t m = 1;

	for (unsigned i = 0; i < TALLY_DEDUP_GENS; i++)
		m = d->ctl.tick_delta[i] > m ? d->ctl.tick_delta[i] : m;
	return (m - 1 + TALLY_DEDUP_GENS - 1) / TALLY_DEDUP_GENS;
}

size_t tally_dedup_tick(struct tally_dedup *d, uint64_t now_ms, uint64_t inserted,
			size_t max_buckets)
{
	uint64_t per_gen_ms = d->horizon_ms / TALLY_DEDUP_GENS;
	uint64_t per_gen_ids = d->capacity / TALLY_DEDUP_GENS;
	uint64_t delta = inserted - d->ctl.tick_ins;

	d->ctl.tick_ins = inserted;
	if (d->ctl.gen_start_ms == 0)
		d->ctl.gen_start_ms = now_ms;
	/* By count. A tick comes every 2 ms and a fast worker inserts thousands of
	 * ids between two, so a generation ends up to one tick's ids past its
	 * quota. Had the next one begun there, every generation would hold that
	 * overshoot too, and the live ids outgrow their buckets (at 16k ids a tick,
	 * 32k a generation, 1.5% were evicted early). So the quota carries over:
	 * the next generation begins where this one's quota ended. The 8 complete
	 * live generations then hold 8 quotas less the overshoot of the one before
	 * them (at most the ids of the tick that ended it, less one); each of those
	 * 8 quotas is capacity / 8 plus margin(), which saw that tick, so they hold
	 * capacity ids at least. (Unless a tick brings more than a quota: a backlog,
	 * worked off one generation a tick, never by expiring several at once.) */
	uint64_t quota = per_gen_ids + margin(d);
	bool by_count = inserted - d->ctl.gen_start_ins >= quota;

	if ((by_count || now_ms - d->ctl.gen_start_ms >= per_gen_ms) && advance(d, now_ms)) {
		d->ctl.tick_delta[d->ctl.tick_at++ % TALLY_DEDUP_GENS] = delta;
		/* by time, the next generation begins now */
		d->ctl.gen_start_ins = by_count ? d->ctl.gen_start_ins + quota : inserted;
		if (inserted - d->ctl.gen_start_ins > per_gen_ids * TALLY_DEDUP_GENS)
			d->ctl.gen_start_ins = inserted; /* a stall of a whole horizon: start over */
	}
	return sweep(d, max_buckets);
}
