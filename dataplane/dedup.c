/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The shared, lock-free event-id dedup table (layout and horizon in dedup.h).
 *
 * Placement: A first, B only when A is full, and a lookup reads B only while
 * A's overflow mark is live. Before, both buckets were read for every id and
 * the emptier took it ("two choices", 8-byte slots, 8 a line): two random
 * lines a new id. Tags of 4 bytes put 15 slots in A's line, so at the load the
 * horizon keeps (9 live ids a bucket) A overflows rarely: simulated at 16
 * bytes an id, 1.08 lines read a new id (tally-dedup-sim, "tags-15"), and the
 * rest stored beside it, which the worker does not wait for the way it waits
 * for a line it reads (tally-line-probe). When both buckets are full one
 * resident moves to its other bucket first (make_room), so a live id is
 * evicted only when the table itself is full (tests/test_dedup.c).
 *
 * Invariant: an id with role B in its bucket B is live only while the mark of
 * its bucket A is live. The mark is raised to (at least) the id's generation
 * before the id is published in B, and only the sweeper lowers it, to 0, once
 * it has expired, and then every id it covered has expired too. So a lookup
 * that finds A's mark not live need not read B.
 *
 * No false positives. h = fmix64(id) is a bijection. Two distinct h with the same
 * fingerprint (low 48 bits) differ by k * 2^48, 0 < |k| < 2^16; their A indices
 * floor(h * n / 2^64) then differ by at least floor(|k| * n / 2^16) >= 1 with
 * n >= 2^16 buckets. A (bucket, fingerprint) pair therefore names exactly one
 * id; and equal fingerprints give equal B offsets, so a (B bucket, fingerprint,
 * role B) triple names one id too. A slot holds the whole fingerprint: tag
 * (bits 32..47) in its tag word, rest (bits 0..31) in its rest word, and a hit
 * needs both, read as one slot's (the tag word reread after the rest).
 *
 * Concurrency. With one worker, rest then tag are plain stores: the only other
 * writer is the sweeper, whose CAS from an expired value fails if the worker
 * stored first, and whose cleared word the worker may overwrite. With several,
 * a slot is claimed by a CAS of its tag word to PENDING (from the claimable
 * value a scan judged), its rest stored, its tag word published; a reader that
 * meets a pending slot or a tag word that changed under it waits for the
 * writer (look_wait), up to WAIT_NS, then gives up and counts the id as new
 * (TALLY_DEDUP_NEW_GAVE_UP). Two workers inserting the same id scan the
 * same bucket and pick the same slot, so one claim wins and the loser, looking
 * again, waits for the winner's tag and sees the id. The residual race: a slot
 * ahead of the chosen one turns claimable between the two scans (a generation
 * ends, an eviction), and each worker claims a different slot. That needs the
 * same id on two workers within nanoseconds at a generation boundary;
 * duplicates of one flow hash to one RSS queue, hence one worker.
 *
 * Expiry. Inserts reuse expired slots in place; the sweeper (control thread)
 * clears them and expired marks anyway so that no stale generation number
 * survives until the 15-bit counter comes round again: the generation only
 * advances while the last complete sweep pass began fewer than GEN_MAX / 2
 * generations ago.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dedup.h"
#include "mem.h"

#define GEN_MASK TALLY_DEDUP_GEN_MASK
#define GEN_MAX TALLY_DEDUP_GEN_MAX
#define WAYS TALLY_DEDUP_WAYS
#define MARK TALLY_DEDUP_MARK
#define ROLE_B TALLY_DEDUP_ROLE_B
#define PENDING TALLY_DEDUP_PENDING
#define SWEEP_PASS_MS 5000 /* a full sweep pass every ~5 s */
/* Buckets a tick at least: ~8k slots, what 1024 buckets of 8 were before the
 * 15-slot buckets (a tick visiting 1024 of those took 34 us of the control
 * loop's 2 ms period, against 8.5 before). */
#define SWEEP_MIN 512
/* How long a reader waits for another writer's pending slot. That writer
 * stores one word between claim and publish, so only a descheduled writer takes
 * longer than a few hundred cycles; a pinned worker is not descheduled for
 * long, and a reader that gave up would count a duplicate as new. */
#define WAIT_NS 50000000ull
#define WAIT_CHECK 256 /* pauses between two looks at the clock */

struct tally_dedup *tally_dedup_create(uint64_t capacity, uint64_t horizon_ms)
{
	struct tally_dedup *d = aligned_alloc(64, sizeof(*d));
	uint64_t nb = (capacity + TALLY_DEDUP_IDS_PER_BUCKET - 1) / TALLY_DEDUP_IDS_PER_BUCKET;

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

/* Replace the tag word at p (read as old) with v: a store for one writer, else CAS. */
static bool put_word(struct tally_dedup *d, uint32_t *p, uint32_t old, uint32_t v)
{
	if (d->single_writer) {
		ck_pr_store_32(p, v);
		return true;
	}
	return ck_pr_cas_32(p, old, v);
}

/*
 * One bucket as read once, judged with the exact age rule (any generation
 * window): is `mine` (tag word part and *rest, or no id when rest is NULL) live
 * in it, how many slots are live, the first claimable slot (WAYS: none), the
 * oldest slot, and whether a slot was busy (pending, or rewritten while its
 * rest was read). Every decision and every CAS of an insert uses these values,
 * never a second read: a CAS from a value read later could replace the slot
 * another worker just gave this very id.
 */
struct look {
	bool hit, busy;
	unsigned live, free_i, old_i, old_age;
	uint32_t w[16];
};

static void look_at(const struct tally_dedup_bucket *b, uint32_t mine, const uint32_t *rest,
		    uint16_t gen, struct look *l)
{
	*l = (struct look){.free_i = WAYS};
	for (unsigned i = 0; i < 16; i++)
		l->w[i] = ck_pr_load_32(&b->tag[i]);
	for (unsigned i = 0; i < WAYS; i++) {
		uint32_t w = l->w[i], r;
		unsigned age;

		if (w == PENDING) {
			l->busy = true;
			continue;
		}
		if (!tally_dedup_live(w, gen)) {
			l->free_i = l->free_i == WAYS ? i : l->free_i;
			continue;
		}
		if (rest != NULL && (w & TALLY_DEDUP_TAG_MASK) == mine) {
			if (!tally_dedup_rest_of(b, i, w, &r))
				l->busy = true;
			l->hit |= r == *rest;
		}
		l->live++;
		age = tally_dedup_age(gen, (uint16_t)(w & GEN_MASK));
		if (age >= l->old_age) {
			l->old_age = age;
			l->old_i = i;
		}
	}
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* look_at until no slot is busy; false when one stays busy for WAIT_NS. */
static bool look_wait(const struct tally_dedup_bucket *b, uint32_t mine, const uint32_t *rest,
		      uint16_t gen, struct look *l)
{
	uint64_t until = 0;

	for (unsigned n = 1;; n++) {
		look_at(b, mine, rest, gen, l);
		if (!l->busy)
			return true;
		if (n % WAIT_CHECK == 0) {
			uint64_t t = now_ns();

			if (until == 0)
				until = t + WAIT_NS;
			else if (t > until)
				return false;
		}
		ck_pr_stall();
	}
}

/* Make b's mark live for at least as long as generation g: 0 if a CAS was lost. */
static bool raise_mark(struct tally_dedup *d, struct tally_dedup_bucket *b, uint16_t g,
		       uint16_t gen)
{
	uint32_t m = ck_pr_load_32(&b->tag[MARK]);

	return tally_dedup_covers(m, g, gen) || put_word(d, &b->tag[MARK], m, g);
}

/* The bucket a slot with fingerprint fp (and role B or not) in bucket x would
 * be in under its other role: the fingerprint gives the offset B = A + 1 + offset. */
static uint64_t other_bucket(const struct tally_dedup *d, uint64_t x, uint64_t fp, bool role_b)
{
	uint64_t b;

	if (!role_b)
		return tally_dedup_index_b(d, fp, x);
	b = tally_dedup_index_b(d, fp, 0); /* 1 + offset, < nbuckets */
	return x >= b ? x - b : x + d->nbuckets - b;
}

/*
 * Both of the id's buckets are full of live ids. Before evicting one, move one
 * to its other bucket if that has a claimable slot (a cuckoo step): the live
 * ids then stay remembered until the table itself is full.
 *
 * The copy is written first, with the resident's generation and its other
 * role (a resident going to its B raises its A's mark, this bucket's, first),
 * then the resident's slot is given to the new id: a lookup of the resident
 * finds it at every moment (twice, for a moment, which is harmless), and
 * (bucket, role, fingerprint) still names one id. Each write is from the value
 * a scan judged (a CAS with several writers): if one loses, the caller looks
 * again. Returns 1 when the id is in, 0 when no resident could move, -1 when a
 * slot changed under us.
 */
static int make_room(struct tally_dedup *d, struct tally_dedup_bucket *bk[2],
		     const struct look l[2], uint32_t w_new[2], uint32_t rest, uint16_t gen)
{
	for (unsigned k = 0; k < 2; k++) {
		uint64_t x = (uint64_t)(bk[k] - d->b);

		for (unsigned i = 0; i < WAYS; i++) {
			uint32_t w = l[k].w[i], r;
			bool role_b = (w & ROLE_B) != 0;
			struct tally_dedup_bucket *o;
			struct look lo;

			if (!tally_dedup_rest_of(bk[k], i, w, &r))
				return -1;
			o = &d->b[other_bucket(d, x, (uint64_t)(w >> 16) << 32 | r, role_b)];
			if (!look_wait(o, 0, NULL, gen, &lo))
				return -1;
			if (lo.free_i == WAYS)
				continue;
			if (!role_b && !raise_mark(d, bk[k], (uint16_t)(w & GEN_MASK), gen))
				return -1;
			if (!tally_dedup_put(d, o, lo.free_i, lo.w[lo.free_i], w ^ ROLE_B, r))
				return -1;
			return tally_dedup_put(d, bk[k], i, w, w_new[k], rest) ? 1 : -1;
		}
	}
	return 0;
}

/* Both full and no resident could move: the oldest generation of the two goes. */
static bool evict(struct tally_dedup *d, struct tally_dedup_bucket *bk[2], const struct look l[2],
		  uint32_t w_new[2], uint32_t rest)
{
	unsigned k = l[0].old_age >= l[1].old_age ? 0 : 1;

	return tally_dedup_put(d, bk[k], l[k].old_i, l[k].w[l[k].old_i], w_new[k], rest);
}

enum tally_dedup_result tally_dedup_insert_slow(struct tally_dedup *d, uint64_t h,
						uint16_t gen)
{
	uint64_t ia = tally_dedup_index_a(d, h);
	struct tally_dedup_bucket *bk[2] = {&d->b[ia], &d->b[tally_dedup_index_b(d, h, ia)]};
	uint32_t tag = tally_dedup_tag(h), rest = (uint32_t)h;
	uint32_t w_new[2] = {tag | gen, tag | ROLE_B | gen};

	for (int attempt = 0; attempt < 8; attempt++) {
		struct look l[2];
		bool in_b;
		int moved;

		if (!look_wait(bk[0], tag, &rest, gen, &l[0]))
			return TALLY_DEDUP_NEW_GAVE_UP;
		in_b = tally_dedup_live(l[0].w[MARK], gen); /* else the id is not in B */
		if (!l[0].hit && in_b && !look_wait(bk[1], tag | ROLE_B, &rest, gen, &l[1]))
			return TALLY_DEDUP_NEW_GAVE_UP;
		if (l[0].hit || (in_b && l[1].hit))
			return TALLY_DEDUP_DUP;
		if (l[0].free_i != WAYS) {
			if (tally_dedup_put(d, bk[0], l[0].free_i, l[0].w[l[0].free_i], w_new[0], rest))
				return TALLY_DEDUP_NEW;
			continue; /* a slot changed under us: look again */
		}
		/* A is full: B takes the id, once A's mark covers it */
		if (!raise_mark(d, bk[0], gen, gen))
			continue;
		if (!in_b && !look_wait(bk[1], tag | ROLE_B, &rest, gen, &l[1]))
			return TALLY_DEDUP_NEW_GAVE_UP;
		if (l[1].free_i != WAYS) {
			if (tally_dedup_put(d, bk[1], l[1].free_i, l[1].w[l[1].free_i], w_new[1], rest))
				return TALLY_DEDUP_NEW;
			continue;
		}
		moved = make_room(d, bk, l, w_new, rest, gen);
		if (moved > 0)
			return TALLY_DEDUP_NEW;
		if (moved == 0 && evict(d, bk, l, w_new, rest))
			return TALLY_DEDUP_NEW_EVICT;
	}
	/* Contended beyond reason: count it rather than stall the worker. */
	return TALLY_DEDUP_NEW_GAVE_UP;
}

void tally_dedup_forget(struct tally_dedup *d, uint64_t h, uint16_t gen)
{
	uint64_t ia = tally_dedup_index_a(d, h);
	struct tally_dedup_bucket *bk[2] = {&d->b[ia], &d->b[tally_dedup_index_b(d, h, ia)]};

	for (unsigned k = 0; k < 2; k++) {
		uint32_t mine = tally_dedup_tag(h) | (k ? ROLE_B : 0) | gen, r;

		for (unsigned i = 0; i < WAYS; i++)
			if (ck_pr_load_32(&bk[k]->tag[i]) == mine &&
			    tally_dedup_rest_of(bk[k], i, mine, &r) && r == (uint32_t)h &&
			    put_word(d, &bk[k]->tag[i], mine, 0))
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

/* Clear expired slots and marks; the CAS leaves a word alone if a worker just
 * rewrote it, and a pending one is a worker's. */
static size_t sweep(struct tally_dedup *d, size_t max_buckets)
{
	uint16_t cur = ck_pr_load_16(&d->gen);
	size_t cleared = 0;

	for (size_t n = 0; n < max_buckets && n < d->nbuckets; n++) {
		struct tally_dedup_bucket *b = &d->b[d->ctl.sweep_cursor];

		for (unsigned i = 0; i < 16; i++) {
			uint32_t w = ck_pr_load_32(&b->tag[i]);

			if ((w & GEN_MASK) != 0 && !tally_dedup_live(w, cur) &&
			    ck_pr_cas_32(&b->tag[i], w, 0))
				cleared += i < WAYS;
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
