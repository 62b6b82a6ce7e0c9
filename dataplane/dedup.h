/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Event-id dedup: one lock-free table shared by all workers.
 *
 * Layout: buckets of 8 slots of 8 bytes, one cache line each. A slot holds
 * (fingerprint << 16 | role << 15 | generation); 0 is an empty slot and
 * generation 0 is never used (15 bits: 1..32767, then wraps). h =
 * tally_dedup_hash(event_id) is a bijection of the 64-bit id. Each id has two
 * buckets: A from all of h (128-bit multiply-shift), B = A plus an offset that
 * depends on the fingerprint only; the fingerprint is h's low 48 bits and the
 * role bit says which of its buckets a slot is in. With at least 2^16 buckets a
 * (bucket, role, fingerprint) triple names exactly one id: the table has no
 * false positives at all (the proof is in dedup.c).
 *
 * Horizon: time (horizon_ms) and capacity. The control plane advances the
 * generation every horizon_ms / TALLY_DEDUP_GENS or after capacity /
 * TALLY_DEDUP_GENS inserts, whichever comes first; ids of the last
 * TALLY_DEDUP_GENS + 1 generations are live. Size: 16 bytes per id of capacity
 * (two slots). When both buckets are full of live ids, the oldest slot of the
 * two is evicted (counted).
 *
 * Writers: with one worker the table has one writer besides the sweeper, and
 * slots are written with plain stores; with several, every change is a CAS.
 * Either way the sweeper only clears expired slots by CAS (see dedup.c).
 */
#ifndef TALLY_DEDUP_H
#define TALLY_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ck_pr.h>
#if defined(__SSE4_2__)
#include <smmintrin.h>
#endif

#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

#include "mem.h"

#define TALLY_DEDUP_GENS 8
#define TALLY_DEDUP_WAYS 8
#define TALLY_DEDUP_MIN_BUCKETS 65536u

#define TALLY_DEDUP_GEN_MAX 32767u /* generations 1..GEN_MAX */
#define TALLY_DEDUP_GEN_MASK 0x7fffu
#define TALLY_DEDUP_ROLE_B 0x8000u /* the slot is in its id's second bucket */
#define TALLY_DEDUP_GEN_AHEAD 16   /* see tally_dedup_age */

enum tally_dedup_result {
	TALLY_DEDUP_NEW = 0,       /* first sighting: remembered */
	TALLY_DEDUP_DUP = 1,       /* seen within the horizon: drop */
	TALLY_DEDUP_NEW_EVICT = 2, /* new; an older live id was evicted to make room */
	TALLY_DEDUP_NEW_GAVE_UP = 3, /* new, not remembered: 8 CAS lost in a row */
};

struct tally_dedup_bucket {
	uint64_t slot[TALLY_DEDUP_WAYS];
} __attribute__((aligned(64)));

/* What the control thread alone writes, every tick: a cache line of its own,
 * so its stores never evict the line every event reads. */
struct tally_dedup_ctl {
	uint64_t gen_start_ms, gen_start_ins;
	uint64_t sweep_cursor;
	uint16_t sweep_pass_gen;  /* generation when the current sweep pass began */
	uint16_t swept_gen;       /* generation when the last complete pass began */
	uint64_t held_back;       /* generation advances held back for the sweeper */
	uint64_t tick_ins;        /* ids inserted at the last tick */
	uint64_t tick_delta[TALLY_DEDUP_GENS]; /* ids a tick, at the last advances */
	unsigned tick_at;
} __attribute__((aligned(64)));

struct tally_dedup {
	/* read by every insert; gen changes once a generation */
	struct tally_dedup_bucket *b;
	uint64_t nbuckets;
	bool single_writer;       /* one worker: plain stores instead of CAS */
	uint16_t gen;             /* written by the control thread only */
	uint64_t capacity, horizon_ms;
	size_t bytes;
	struct tally_dedup_ctl ctl;
} __attribute__((aligned(64)));
_Static_assert(offsetof(struct tally_dedup, ctl) == 64, "control fields on their own line");

/* capacity: ids the horizon holds at least, at most 2^34. NULL with errno set. */
struct tally_dedup *tally_dedup_create(uint64_t capacity, uint64_t horizon_ms);
void tally_dedup_destroy(struct tally_dedup *d);
/* writers: how many workers insert. One allows plain stores. */
void tally_dedup_set_writers(struct tally_dedup *d, unsigned writers);
size_t tally_dedup_bytes(const struct tally_dedup *d);
/* Buckets the sweeper should visit per control tick of tick_ms for a full pass
 * every few seconds. */
size_t tally_dedup_sweep_rate(const struct tally_dedup *d, unsigned tick_ms);

/* murmur3 fmix64: a bijection, so distinct ids never share a hash. */
static inline uint64_t tally_dedup_hash(uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdULL;
	id ^= id >> 33;
	id *= 0xc4ceb9fe1a85ec53ULL;
	id ^= id >> 33;
	return id;
}

static inline uint64_t tally_dedup_index_a(const struct tally_dedup *d, uint64_t h)
{
	return (uint64_t)(((unsigned __int128)h * d->nbuckets) >> 64);
}

/* B = A + 1 + an offset of the fingerprint only: two ids with one fingerprint
 * have different A (see dedup.c), hence different B. No division: hot path. */
static inline uint64_t tally_dedup_index_b(const struct tally_dedup *d, uint64_t h, uint64_t a)
{
	uint64_t mix = ((h & 0xffffffffffffULL) * 0x9e3779b97f4a7c15ULL) >> 32;
	uint64_t b = a + 1 + ((mix * (d->nbuckets - 1)) >> 32);

	return b >= d->nbuckets ? b - d->nbuckets : b;
}

static inline uint16_t tally_dedup_gen(const struct tally_dedup *d)
{
	return ck_pr_load_16(&d->gen);
}

/*
 * Age of generation g seen from cur (1..GEN_MAX, wrapping). A worker's snapshot
 * of cur can lag another worker's by a generation or two, so a g slightly ahead
 * of cur is age 0, not ancient.
 */
static inline unsigned tally_dedup_age(uint16_t cur, uint16_t g)
{
	unsigned a = cur >= g ? (unsigned)(cur - g) : (unsigned)(cur + TALLY_DEDUP_GEN_MAX - g);

	return a >= TALLY_DEDUP_GEN_MAX - TALLY_DEDUP_GEN_AHEAD ? 0 : a;
}

static inline bool tally_dedup_live(uint64_t s, uint16_t cur)
{
	return s != 0 &&
	       tally_dedup_age(cur, (uint16_t)(s & TALLY_DEDUP_GEN_MASK)) <= TALLY_DEDUP_GENS;
}

/* An id's hash and its two buckets, worked out once per event (nbuckets <= 2^32). */
struct tally_dedup_ref {
	uint64_t h;
	uint32_t a, b;
};

static inline struct tally_dedup_ref tally_dedup_ref(const struct tally_dedup *d, uint64_t id)
{
	uint64_t h = tally_dedup_hash(id), a = tally_dedup_index_a(d, h);

	return (struct tally_dedup_ref){h, (uint32_t)a, (uint32_t)tally_dedup_index_b(d, h, a)};
}

static inline void tally_dedup_prefetch(const struct tally_dedup *d, struct tally_dedup_ref r)
{
	tally_prefetch(&d->b[r.a]);
	tally_prefetch(&d->b[r.b]);
}

/*
 * How a worker judges slots during one burst. Live generations are
 * [gen - GENS, gen + GEN_AHEAD]; while that window does not wrap (all but 24 of
 * the 32767 generations) a slot is live iff (slot generation - lo) <= span, one
 * subtraction and compare, and an empty slot (generation 0) is never live.
 */
struct tally_dedup_view {
	uint16_t gen; /* what new slots get */
	uint16_t lo;  /* oldest live generation */
	bool simple;  /* the window does not wrap */
};

#define TALLY_DEDUP_SPAN (TALLY_DEDUP_GENS + TALLY_DEDUP_GEN_AHEAD)

static inline struct tally_dedup_view tally_dedup_view(const struct tally_dedup *d)
{
	uint16_t g = tally_dedup_gen(d);

	return (struct tally_dedup_view){
		g, (uint16_t)(g - TALLY_DEDUP_GENS),
		g > TALLY_DEDUP_GENS && g <= TALLY_DEDUP_GEN_MAX - TALLY_DEDUP_GEN_AHEAD};
}

/*
 * One pass over a bucket for the fast path: which slots are live, and which
 * hold the high 32 bits of `mine`'s fingerprint (live or not), a near-certain
 * sign of `mine` itself (2^-32 a slot otherwise); the exact test of those few
 * is scalar (tally_dedup_hit), since duplicates are the rare case. With SSE4.1
 * the bucket's four 16-byte loads are split into the slots' low and high
 * dwords (two shufps each), so the eight generations pack into one register
 * with one packusdw and the fingerprints compare four at a time: ~25
 * instructions a bucket, against ~50 for gathering 16-bit generation fields
 * with pshufb and comparing whole 64-bit slots. Each 8-byte half of a 16-byte
 * load is atomic, which is all a slot needs, and each slot is read once.
 */
struct tally_dedup_scan {
	uint32_t live;  /* bit i: slot i is live */
	uint32_t maybe; /* bit i: slot i holds mine's fingerprint's high 32 bits */
};

#if defined(__SSE4_2__)
static inline void tally_dedup_scan(const struct tally_dedup_bucket *b, uint64_t mine,
				    uint16_t lo, struct tally_dedup_scan *r)
{
	const __m128i hi = _mm_set1_epi32((int)(uint32_t)(mine >> 32));
	/* volatile: each slot is read exactly once, so the fingerprint test and
	 * the live test judge the same value */
	const volatile __m128i *q = (const volatile __m128i *)b->slot;
	__m128 v0 = _mm_castsi128_ps(q[0]), v1 = _mm_castsi128_ps(q[1]);
	__m128 v2 = _mm_castsi128_ps(q[2]), v3 = _mm_castsi128_ps(q[3]);
	/* slots 0-3 and 4-7: low dwords (role, generation) and high dwords */
	__m128i l0 = _mm_castps_si128(_mm_shuffle_ps(v0, v1, _MM_SHUFFLE(2, 0, 2, 0)));
	__m128i h0 = _mm_castps_si128(_mm_shuffle_ps(v0, v1, _MM_SHUFFLE(3, 1, 3, 1)));
	__m128i l1 = _mm_castps_si128(_mm_shuffle_ps(v2, v3, _MM_SHUFFLE(2, 0, 2, 0)));
	__m128i h1 = _mm_castps_si128(_mm_shuffle_ps(v2, v3, _MM_SHUFFLE(3, 1, 3, 1)));
	const __m128i gm = _mm_set1_epi32(TALLY_DEDUP_GEN_MASK);
	/* generations 0..32767 fit packusdw's unsigned saturation unchanged */
	__m128i g = _mm_packus_epi32(_mm_and_si128(l0, gm), _mm_and_si128(l1, gm));
	/* live: (generation - lo) <= span, unsigned 16-bit; generation 0 (empty) never is */
	__m128i d = _mm_sub_epi16(g, _mm_set1_epi16((short)lo));
	__m128i live = _mm_cmpeq_epi16(_mm_min_epu16(d, _mm_set1_epi16(TALLY_DEDUP_SPAN)), d);

	r->maybe = (uint32_t)(_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(h0, hi))) |
			      _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(h1, hi))) << 4);
	r->live = (uint32_t)_mm_movemask_epi8(_mm_packs_epi16(live, live)) & 0xff;
}
#else
static inline void tally_dedup_scan(const struct tally_dedup_bucket *b, uint64_t mine,
				    uint16_t lo, struct tally_dedup_scan *r)
{
	r->live = r->maybe = 0;
	for (unsigned i = 0; i < TALLY_DEDUP_WAYS; i++) {
		uint64_t s = ck_pr_load_64(&b->slot[i]);

		r->live |= (uint32_t)((uint16_t)((s & TALLY_DEDUP_GEN_MASK) - lo) <=
				      TALLY_DEDUP_SPAN) << i;
		r->maybe |= (uint32_t)((s >> 32) == (mine >> 32)) << i;
	}
}
#endif

/* Does one of the `maybe` slots hold `mine`, live? Each read once and judged
 * whole: a duplicate is decided from one value of its slot, as the scan's. */
static inline bool tally_dedup_hit(const struct tally_dedup_bucket *b, uint64_t mine,
				   uint16_t lo, uint32_t maybe)
{
	for (; maybe != 0; maybe &= maybe - 1) {
		uint64_t s = ck_pr_load_64(&b->slot[__builtin_ctz(maybe)]);

		if ((s & ~(uint64_t)TALLY_DEDUP_GEN_MASK) == mine &&
		    (uint16_t)((s & TALLY_DEDUP_GEN_MASK) - lo) <= TALLY_DEDUP_SPAN)
			return true;
	}
	return false;
}

/* The cold half: the window wraps, both buckets full, a CAS lost. Exact, slow. */
enum tally_dedup_result tally_dedup_insert_slow(struct tally_dedup *d, uint64_t h,
						uint16_t gen);

/*
 * Hot path: is h's id new within the horizon? If so remember it. The emptier of
 * the two buckets takes the id (ties: A), at its first claimable slot: two
 * inserters of one id that see the same buckets make the same choice and meet
 * on one slot.
 */
static inline enum tally_dedup_result tally_dedup_insert(struct tally_dedup *d,
							 struct tally_dedup_ref r,
							 struct tally_dedup_view v)
{
	uint64_t h = r.h, fp = h << 16;
	struct tally_dedup_bucket *a = &d->b[r.a], *b = &d->b[r.b];
	struct tally_dedup_scan sa, sb;
	uint32_t la, lb, fa, fb;
	bool to_b;

	_Static_assert(TALLY_DEDUP_ROLE_B == 1u << 15, "role bit");
	if (unlikely(!v.simple))
		return tally_dedup_insert_slow(d, h, v.gen);
	tally_dedup_scan(a, fp, v.lo, &sa);
	tally_dedup_scan(b, fp | TALLY_DEDUP_ROLE_B, v.lo, &sb);
	la = sa.live;
	lb = sb.live;
	if (unlikely(sa.maybe | sb.maybe)) {
		if (tally_dedup_hit(a, fp, v.lo, sa.maybe) ||
		    tally_dedup_hit(b, fp | TALLY_DEDUP_ROLE_B, v.lo, sb.maybe))
			return TALLY_DEDUP_DUP;
		/* its expired slot, or another id's high bits: the exact path */
		return tally_dedup_insert_slow(d, h, v.gen);
	}
	fa = ~la & 0xff;
	fb = ~lb & 0xff;
	if (unlikely((fa | fb) == 0))
		return tally_dedup_insert_slow(d, h, v.gen); /* both full: evict */
	/* more free slots in B (a full A has none): B, else A */
	to_b = __builtin_popcount(fb) > __builtin_popcount(fa);
	uint64_t *p = (to_b ? b : a)->slot + __builtin_ctz(to_b ? fb : fa);
	uint64_t nv = fp | (uint64_t)to_b << 15 | v.gen;

	if (d->single_writer) {
		ck_pr_store_64(p, nv);
		return TALLY_DEDUP_NEW;
	}
	/* The slot must still be claimable when the CAS replaces it. */
	uint64_t old = ck_pr_load_64(p);

	if ((uint32_t)(old & TALLY_DEDUP_GEN_MASK) - v.lo > TALLY_DEDUP_SPAN &&
	    ck_pr_cas_64(p, old, nv))
		return TALLY_DEDUP_NEW;
	return tally_dedup_insert_slow(d, h, v.gen); /* a slot changed under us: look again */
}

/* Undo an insert whose event could not be applied (window table full). */
void tally_dedup_forget(struct tally_dedup *d, uint64_t h, uint16_t gen);

/*
 * Control plane, one caller: advance the generation when the time or the insert
 * budget of the current one is used up (inserted = total inserts so far, summed
 * over workers), and clear up to max_buckets buckets of expired slots.
 * Returns the number of slots cleared.
 */
size_t tally_dedup_tick(struct tally_dedup *d, uint64_t now_ms, uint64_t inserted,
			size_t max_buckets);

#endif
