/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Event-id dedup: one lock-free table shared by all workers.
 *
 * Layout: a bucket is two cache lines, one of tags, one of rests. Of an id's
 * hash h = tally_dedup_hash(event_id) (a bijection of the 64-bit id), the
 * fingerprint is the low 48 bits: its high 16 go into a 4-byte tag word with
 * a role bit and a 15-bit generation (tag << 16 | role << 15 | gen), its low
 * 32 into the rest word of the same slot. 15 slots a bucket; tag word 15 is
 * the bucket's overflow mark (a generation, or 0). A tag word of 0 is an
 * empty slot; generation 0 is never used (1..32767, then wraps).
 *
 * Each id has two buckets: A from all of h (128-bit multiply-shift), B = A
 * plus an offset of the fingerprint only; the role bit says which a slot is
 * in. A takes the id while it has a claimable slot; when it has none, A's mark
 * is raised to the id's generation and B takes it. A lookup reads B only while
 * A's mark is live, so a new id costs one random line read (A's tags, the
 * one prefetched) and one store to the rest line beside it; a duplicate reads
 * the rest of the one slot whose tag matched. With at least 2^16 buckets a
 * (bucket, role, tag, rest) name exactly one id: no false positives at all
 * (the proof is in dedup.c).
 *
 * Horizon: time (horizon_ms) and capacity. The control plane advances the
 * generation every horizon_ms / TALLY_DEDUP_GENS or after capacity /
 * TALLY_DEDUP_GENS inserts, whichever comes first; ids of the last
 * TALLY_DEDUP_GENS + 1 generations are live. Size: 16 bytes per id of
 * capacity (a 128-byte bucket per 8 ids). When both buckets are full of live
 * ids, a resident moves to its other bucket, else the oldest of the two is
 * evicted (counted).
 *
 * Writers: with one worker the table has one writer besides the sweeper, and
 * slots are written with plain stores, rest first; with several, a slot is
 * claimed by a CAS of its tag word to TALLY_DEDUP_PENDING, its rest stored,
 * then its tag published. The sweeper only clears expired words by CAS.
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
#define TALLY_DEDUP_WAYS 15 /* id slots a bucket */
#define TALLY_DEDUP_SLOTS ((1u << TALLY_DEDUP_WAYS) - 1) /* their bits in a scan's masks */
#define TALLY_DEDUP_MARK 15 /* the tag word that holds the overflow mark */
#define TALLY_DEDUP_MIN_BUCKETS 65536u
#define TALLY_DEDUP_IDS_PER_BUCKET 8 /* of capacity: 16 bytes an id */

#define TALLY_DEDUP_GEN_MAX 32767u /* generations 1..GEN_MAX */
#define TALLY_DEDUP_GEN_MASK 0x7fffu
#define TALLY_DEDUP_ROLE_B 0x8000u /* the slot is in its id's second bucket */
#define TALLY_DEDUP_TAG_MASK 0xffff8000u /* tag and role: the id's part of a tag word */
/* A slot claimed, its rest being written (several writers only). No published
 * word has generation 0, so none is equal to it. */
#define TALLY_DEDUP_PENDING 0xffff0000u
#define TALLY_DEDUP_GEN_AHEAD 16 /* see tally_dedup_age */

enum tally_dedup_result {
	TALLY_DEDUP_NEW = 0,       /* first sighting: remembered */
	TALLY_DEDUP_DUP = 1,       /* seen within the horizon: drop */
	TALLY_DEDUP_NEW_EVICT = 2, /* new; an older live id was evicted to make room */
	TALLY_DEDUP_NEW_GAVE_UP = 3, /* new, not remembered: 8 CAS lost in a row, or a
				      * slot stayed claimed by another writer */
};

struct tally_dedup_bucket {
	uint32_t tag[16];  /* slots 0..14, then the mark */
	uint32_t rest[16]; /* slots 0..14 */
} __attribute__((aligned(128)));

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

/* The id's part of its tag word in bucket A: fingerprint bits 32..47, role A. */
static inline uint32_t tally_dedup_tag(uint64_t h)
{
	return (uint32_t)(h >> 16) & 0xffff0000u;
}

static inline uint64_t tally_dedup_index_a(const struct tally_dedup *d, uint64_t h)
{
	return (uint64_t)(((unsigned __int128)h * d->nbuckets) >> 64);
}

/* B = A + 1 + an offset of the fingerprint (h's low 48 bits) only: two ids
 * with one fingerprint have different A (see dedup.c), hence different B. */
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

/* A tag word (or the mark) is live: published, of a live generation. */
static inline bool tally_dedup_live(uint32_t w, uint16_t cur)
{
	return (w & TALLY_DEDUP_GEN_MASK) != 0 &&
	       tally_dedup_age(cur, (uint16_t)(w & TALLY_DEDUP_GEN_MASK)) <= TALLY_DEDUP_GENS;
}

/* Mark m keeps an id of generation g findable in B: live, and not older than g. */
static inline bool tally_dedup_covers(uint32_t m, uint16_t g, uint16_t cur)
{
	return tally_dedup_live(m, cur) &&
	       tally_dedup_age(cur, (uint16_t)(m & TALLY_DEDUP_GEN_MASK)) <= tally_dedup_age(cur, g);
}

/* An id's hash and its first bucket, worked out once per event (nbuckets <=
 * 2^32); the second is worked out only when it is read. */
struct tally_dedup_ref {
	uint64_t h;
	uint32_t a;
};

static inline struct tally_dedup_ref tally_dedup_ref(const struct tally_dedup *d, uint64_t id)
{
	uint64_t h = tally_dedup_hash(id);

	return (struct tally_dedup_ref){h, (uint32_t)tally_dedup_index_a(d, h)};
}

/* Only A's tag line: B is read for few ids, the rest line only stored to. */
static inline void tally_dedup_prefetch(const struct tally_dedup *d, struct tally_dedup_ref r)
{
	tally_prefetch(d->b[r.a].tag);
}

/*
 * How a worker judges slots during one burst. Live generations are
 * [gen - GENS, gen + GEN_AHEAD]; while that window does not wrap (all but 24 of
 * the 32767 generations) a word is live iff (its generation - lo) <= span, one
 * subtraction and compare, and an empty or pending word (generation 0) never is.
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

static inline bool tally_dedup_live_in(uint32_t w, uint16_t lo)
{
	return (uint16_t)((w & TALLY_DEDUP_GEN_MASK) - lo) <= TALLY_DEDUP_SPAN;
}

/*
 * A few events later, when A's tag line has arrived: B's tags too if A's mark
 * is live (the id may be there). lo: tally_dedup_view's; a hint only.
 */
static inline void tally_dedup_prefetch_b(const struct tally_dedup *d, struct tally_dedup_ref r,
					  uint16_t lo)
{
	uint32_t m = ck_pr_load_32(&d->b[r.a].tag[TALLY_DEDUP_MARK]);

	if (unlikely(tally_dedup_live_in(m, lo)))
		tally_prefetch(d->b[tally_dedup_index_b(d, r.h, r.a)].tag);
}

/*
 * One pass over a bucket's tag line for the fast path: which words are live
 * (bit 15: the mark), and which slots hold mine's tag and role (live or not)
 * or are pending, the only ones that may be mine; the exact test of those few
 * (tally_dedup_hit) reads their rests. With SSE4.1 the four 16-byte loads give
 * the sixteen generations packed to 16 bits (packusdw) and judged eight at a
 * time, and the tags compared four at a time: ~40 instructions for the line.
 * Each 4-byte word of a 16-byte load is read atomically, and each word once.
 */
struct tally_dedup_scan {
	uint32_t live;  /* bit i: word i is live */
	uint32_t maybe; /* bit i < 15: slot i holds mine's tag and role, or is pending */
};

#if defined(__SSE4_2__)
static inline __m128i tally_dedup_eq4(__m128i w, __m128i mine)
{
	return _mm_or_si128(
		_mm_cmpeq_epi32(_mm_and_si128(w, _mm_set1_epi32((int)TALLY_DEDUP_TAG_MASK)), mine),
		_mm_cmpeq_epi32(w, _mm_set1_epi32((int)TALLY_DEDUP_PENDING)));
}

static inline __m128i tally_dedup_live8(__m128i w0, __m128i w1, uint16_t lo)
{
	const __m128i gm = _mm_set1_epi32(TALLY_DEDUP_GEN_MASK);
	/* generations 0..32767 fit packusdw's unsigned saturation unchanged */
	__m128i g = _mm_packus_epi32(_mm_and_si128(w0, gm), _mm_and_si128(w1, gm));
	__m128i d = _mm_sub_epi16(g, _mm_set1_epi16((short)lo));

	return _mm_cmpeq_epi16(_mm_min_epu16(d, _mm_set1_epi16(TALLY_DEDUP_SPAN)), d);
}

static inline void tally_dedup_scan(const struct tally_dedup_bucket *b, uint32_t mine,
				    uint16_t lo, struct tally_dedup_scan *r)
{
	/* volatile: each word is read exactly once, so every test judges one value */
	const volatile __m128i *q = (const volatile __m128i *)b->tag;
	__m128i w0 = q[0], w1 = q[1], w2 = q[2], w3 = q[3];
	const __m128i me = _mm_set1_epi32((int)mine);
	__m128i m = _mm_packs_epi16(_mm_packs_epi32(tally_dedup_eq4(w0, me), tally_dedup_eq4(w1, me)),
				    _mm_packs_epi32(tally_dedup_eq4(w2, me), tally_dedup_eq4(w3, me)));

	r->live = (uint32_t)_mm_movemask_epi8(
		_mm_packs_epi16(tally_dedup_live8(w0, w1, lo), tally_dedup_live8(w2, w3, lo)));
	r->maybe = (uint32_t)_mm_movemask_epi8(m) & TALLY_DEDUP_SLOTS;
}
#else
static inline void tally_dedup_scan(const struct tally_dedup_bucket *b, uint32_t mine,
				    uint16_t lo, struct tally_dedup_scan *r)
{
	r->live = r->maybe = 0;
	for (unsigned i = 0; i < 16; i++) {
		uint32_t w = ck_pr_load_32(&b->tag[i]);

		r->live |= (uint32_t)tally_dedup_live_in(w, lo) << i;
		if (i < TALLY_DEDUP_WAYS)
			r->maybe |= (uint32_t)((w & TALLY_DEDUP_TAG_MASK) == mine ||
					       w == TALLY_DEDUP_PENDING) << i;
	}
}
#endif

/* The rest of slot i, whose tag word was read as w; false if the word changed
 * meanwhile (the rest may be another id's). */
static inline bool tally_dedup_rest_of(const struct tally_dedup_bucket *b, unsigned i, uint32_t w,
				       uint32_t *r)
{
	ck_pr_fence_load();
	*r = ck_pr_load_32(&b->rest[i]);
	ck_pr_fence_load();
	return ck_pr_load_32(&b->tag[i]) == w;
}

enum { TALLY_DEDUP_MISS, TALLY_DEDUP_HIT, TALLY_DEDUP_BUSY };

/*
 * Does one of the `maybe` slots hold mine (tag word part, rest), live? The tag
 * word is read before and after its rest: a slot rewritten in between (busy,
 * like a pending one) is left to the slow path, which waits it out.
 */
static inline int tally_dedup_hit(const struct tally_dedup_bucket *b, uint32_t mine,
				  uint32_t rest, uint16_t lo, uint32_t maybe)
{
	for (; maybe != 0; maybe &= maybe - 1) {
		unsigned i = (unsigned)__builtin_ctz(maybe);
		uint32_t w = ck_pr_load_32(&b->tag[i]), r;

		if (w == TALLY_DEDUP_PENDING)
			return TALLY_DEDUP_BUSY;
		if ((w & TALLY_DEDUP_TAG_MASK) != mine || !tally_dedup_live_in(w, lo))
			continue;
		if (!tally_dedup_rest_of(b, i, w, &r))
			return TALLY_DEDUP_BUSY;
		if (r == rest)
			return TALLY_DEDUP_HIT;
	}
	return TALLY_DEDUP_MISS;
}

/* Scan b for mine (tag word part and rest): HIT, MISS, or BUSY (a slot being
 * written); the scan itself in *s. */
static inline int tally_dedup_find(const struct tally_dedup_bucket *b, uint32_t mine,
				   uint32_t rest, uint16_t lo, struct tally_dedup_scan *s)
{
	tally_dedup_scan(b, mine, lo, s);
	if (likely(s->maybe == 0))
		return TALLY_DEDUP_MISS;
	return tally_dedup_hit(b, mine, rest, lo, s->maybe);
}

/* The cold half: the window wraps, A and B full, a slot busy or a CAS lost,
 * A full with several writers. Exact, slow. */
enum tally_dedup_result tally_dedup_insert_slow(struct tally_dedup *d, uint64_t h,
						uint16_t gen);

/* Slot i of b gets (w, rest), the slot ours (one writer, or claimed): the rest
 * is there before its tag says so. */
static inline void tally_dedup_store(struct tally_dedup_bucket *b, unsigned i, uint32_t w,
				     uint32_t rest)
{
	ck_pr_store_32(&b->rest[i], rest);
	ck_pr_fence_store();
	ck_pr_store_32(&b->tag[i], w);
}

/* Give slot i of b (its tag word read as old) the tag word w and rest r: false
 * if another writer changed the word first. */
static inline bool tally_dedup_put(struct tally_dedup *d, struct tally_dedup_bucket *b, unsigned i,
				   uint32_t old, uint32_t w, uint32_t r)
{
	if (!d->single_writer && !ck_pr_cas_32(&b->tag[i], old, TALLY_DEDUP_PENDING))
		return false;
	tally_dedup_store(b, i, w, r);
	return true;
}

/*
 * A is full and the id is in neither bucket (b: B, if already scanned into
 * *sb): one writer puts it in B's first claimable slot, A's mark raised first
 * to cover it (kept if it is this generation or ahead); several writers, and a
 * full B, take the exact path.
 */
static inline enum tally_dedup_result tally_dedup_to_b(struct tally_dedup *d,
						       struct tally_dedup_ref r,
						       struct tally_dedup_view v,
						       struct tally_dedup_bucket *b,
						       struct tally_dedup_scan *sb)
{
	struct tally_dedup_bucket *a = &d->b[r.a];
	uint32_t mine = tally_dedup_tag(r.h) | TALLY_DEDUP_ROLE_B, m;

	if (!d->single_writer)
		return tally_dedup_insert_slow(d, r.h, v.gen);
	if (b == NULL) {
		b = &d->b[tally_dedup_index_b(d, r.h, r.a)];
		tally_dedup_scan(b, mine, v.lo, sb);
	}
	if ((sb->live & TALLY_DEDUP_SLOTS) == TALLY_DEDUP_SLOTS)
		return tally_dedup_insert_slow(d, r.h, v.gen);
	m = ck_pr_load_32(&a->tag[TALLY_DEDUP_MARK]);
	if (!tally_dedup_covers(m, v.gen, v.gen))
		ck_pr_store_32(&a->tag[TALLY_DEDUP_MARK], v.gen);
	tally_dedup_store(b, (unsigned)__builtin_ctz(~sb->live), mine | v.gen, (uint32_t)r.h);
	return TALLY_DEDUP_NEW;
}

/*
 * Hot path: is h's id new within the horizon? If so remember it. The id is in
 * A, or in B while A's mark is live (B's line then prefetched by
 * tally_dedup_prefetch_b); a new one takes A's first claimable slot: two
 * inserters of one id that see the same bucket make the same choice and meet
 * on one slot.
 */
static inline enum tally_dedup_result tally_dedup_insert(struct tally_dedup *d,
							 struct tally_dedup_ref r,
							 struct tally_dedup_view v)
{
	struct tally_dedup_bucket *a = &d->b[r.a], *b = NULL;
	uint32_t mine = tally_dedup_tag(r.h), rest = (uint32_t)r.h, w = mine | v.gen, old;
	struct tally_dedup_scan s, sb = {0, 0};
	unsigned i;
	int found;

	if (unlikely(!v.simple))
		return tally_dedup_insert_slow(d, r.h, v.gen);
	found = tally_dedup_find(a, mine, rest, v.lo, &s);
	if (unlikely(found == TALLY_DEDUP_MISS && (s.live & 1u << TALLY_DEDUP_MARK))) {
		b = &d->b[tally_dedup_index_b(d, r.h, r.a)]; /* the id may be in B */
		found = tally_dedup_find(b, mine | TALLY_DEDUP_ROLE_B, rest, v.lo, &sb);
		s.live &= ~(1u << TALLY_DEDUP_MARK);
	}
	if (unlikely(found != TALLY_DEDUP_MISS))
		return found == TALLY_DEDUP_HIT ? TALLY_DEDUP_DUP
						: tally_dedup_insert_slow(d, r.h, v.gen);
	if (unlikely(s.live == TALLY_DEDUP_SLOTS))
		return tally_dedup_to_b(d, r, v, b, &sb);
	i = (unsigned)__builtin_ctz(~s.live);
	if (d->single_writer) {
		tally_dedup_store(a, i, w, rest);
		return TALLY_DEDUP_NEW;
	}
	/* The slot must still be claimable when the CAS claims it. */
	old = ck_pr_load_32(&a->tag[i]);
	if (!tally_dedup_live_in(old, v.lo) && old != TALLY_DEDUP_PENDING &&
	    tally_dedup_put(d, a, i, old, w, rest))
		return TALLY_DEDUP_NEW;
	return tally_dedup_insert_slow(d, r.h, v.gen); /* a slot changed under us: look again */
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
