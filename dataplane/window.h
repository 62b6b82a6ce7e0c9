/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-worker window table: (key, window_start) -> count, sum, min, max, last.
 * Single writer (its worker) until sealed, then single reader (the flusher).
 *
 * Open addressing, linear probing, directly on 64-byte rows, one cache line
 * each: the window, the aggregates and the key (up to TALLY_ROW_KEY_INLINE
 * bytes; longer keys keep a prefix and an offset into an arena) sit in the row
 * itself, so an update with a short key touches one line and nothing else: no
 * index to read first, no key to fetch from elsewhere. A row is found by its
 * window, key length and key, compared a word at a time; a row with a long key
 * (in the arena) keeps its row hash instead, so only the row that is almost
 * surely the one has its key compared (long keys share long prefixes: StatsD
 * names). At most half the cells are used, so probes
 * stay short. A list of used cells, in creation order, is what the flusher and
 * sinks walk. Memory is mapped and pre-faulted once (mem.c) and never grows: a
 * full table says so (-ENOSPC) and the caller counts it.
 *
 * Rows that keep more than sums (event.h's kinds: a quantile sketch for ms, h
 * and d, a HyperLogLog for s, gauge state for g) keep it beside the row, not in
 * it, so the 64-byte rows of counters stay as they are: a per-cell aux word
 * (flags and a slab number) and a pool of fixed-size sketch slabs, allocated
 * with the table and zeroed by reset, off the hot path. A row takes a slab on
 * its first sketch value; when the pool is used up the row still counts every
 * value exactly (count, sum, min, max, last) and the caller counts the value
 * its sketch missed; the table asks to be sealed at 7/8 of the pool.
 *
 * A worker's table defers its sketch values (tally_wtab_defer_sketches): the
 * worker appends each as 8 bytes (cell, bin or register) to a list, and the
 * table's reader folds the list into the slabs (tally_wtab_settle) after the
 * seal, on the flusher's core. A timer line then costs the worker its row and
 * one sequential store, as a counter's does, instead of the aux word, the slab
 * header and a bin: at 10,000 timer names the slabs' bins are tens of MB, far
 * beyond the caches, and those three misses made a timer cost 2.5 counters.
 * The list asks for a seal at 7/8 full; a value that finds it full (the seal
 * is in flight) goes straight to its slab, as without the list.
 */
#ifndef TALLY_WINDOW_H
#define TALLY_WINDOW_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "event.h"
#include "mem.h"
#include "sketch.h"

#define TALLY_ROW_KEY_INLINE 15 /* longer keys live in the arena */

struct tally_row {
	int64_t win_start;
	uint64_t count;
	double sum, min, max, last;
	uint8_t key_len; /* 0: empty cell */
	/* the key; or, longer, the row hash (8 bytes) and the uint32 arena offset */
	uint8_t key[TALLY_ROW_KEY_INLINE];
} __attribute__((aligned(64)));
_Static_assert(sizeof(struct tally_row) == 64, "a row is one cache line");

/* A cell's aux word: gauge flags and its slab's number + 1 (0: none). */
#define TALLY_AUX_SLAB 0x3fffffffu
#define TALLY_AUX_GAUGE 0x40000000u /* a StatsD gauge row: its last is the gauge's value */
#define TALLY_AUX_REL 0x80000000u   /* only relative lines so far: values are offsets */

/*
 * A sketch value waiting for its slab: the row's cell, and op = for a
 * HyperLogLog TALLY_SKOP_HLL | rho << 14 | register; for a quantile sketch the
 * store (TALLY_SKOP_ZERO, _POS or _NEG) | bin index + TALLY_SKOP_BIAS.
 */
struct tally_skval {
	uint32_t cell, op;
};
#define TALLY_SKOP_HLL 0x80000000u
#define TALLY_SKOP_POS 0x20000000u
#define TALLY_SKOP_NEG 0x40000000u
#define TALLY_SKOP_ZERO 0x00000000u
#define TALLY_SKOP_STORE 0x60000000u
#define TALLY_SKOP_BIAS 0x10000000 /* |bin index| < 2^16 for every finite double */

struct tally_wtab {
	struct tally_row *cell;
	uint32_t *aux;             /* per cell: TALLY_AUX_* */
	struct tally_sketch *slab; /* the sketch pool */
	uint32_t nslabs, slabs_used;
	uint32_t sk_rows;            /* rows of a sketch kind created: slabs they will take */
	struct tally_skval *pend;    /* deferred sketch values; NULL: none deferred */
	uint32_t npend, pend_cap;
	uint32_t *used; /* cell numbers of the rows, in creation order */
	uint64_t ncells;
	uint32_t nrows, max_rows;
	uint8_t *arena; /* keys longer than TALLY_ROW_KEY_INLINE */
	uint32_t arena_used, arena_cap;
	size_t bytes;
	struct tally_acklist *acks; /* committed-mode acks of the rows (ack.h); moved by the flusher */
};

/*
 * Window containing t: floor(t / w) * w, correct for negative t. Returns 0, or
 * -ERANGE when that start is not representable (t near INT64_MIN), -EINVAL when
 * w <= 0.
 */
int tally_window_start(int64_t t, int64_t w, int64_t *start);

static inline uint64_t tally_key_hash(const uint8_t *key, uint32_t len)
{
	return XXH3_64bits(key, len);
}

/* Hash of a (key, window) pair from the key's hash. */
static inline uint64_t tally_row_hash(uint64_t key_hash, int64_t win_start)
{
	uint64_t h = key_hash ^ ((uint64_t)win_start * 0x9e3779b97f4a7c15ULL);

	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	h ^= h >> 32;
	return h;
}

/* max_rows rows (cells: twice that). NULL with errno on failure. */
struct tally_wtab *tally_wtab_create(uint32_t max_rows);
/* The same, its pages on NUMA node `node` (the owning worker's; TALLY_NODE_ANY = any). */
struct tally_wtab *tally_wtab_create_node(uint32_t max_rows, int node);
/* The same with a pool of nslabs sketch slabs (the others have none). */
struct tally_wtab *tally_wtab_create_ext(uint32_t max_rows, uint32_t nslabs, int node);
void tally_wtab_destroy(struct tally_wtab *t);
void tally_wtab_reset(struct tally_wtab *t);
size_t tally_wtab_bytes(const struct tally_wtab *t);

static inline uint64_t tally_wtab_slot(const struct tally_wtab *t, uint64_t h)
{
	return (uint64_t)(((unsigned __int128)h * t->ncells) >> 64);
}

/* h's first cell: where the row is, almost always. */
static inline void tally_wtab_prefetch(const struct tally_wtab *t, uint64_t h)
{
	tally_prefetch(&t->cell[tally_wtab_slot(t, h)]);
}

static inline uint32_t tally_row_arena_off(const struct tally_row *r)
{
	uint32_t off;

	memcpy(&off, r->key + 8, sizeof(off));
	return off;
}

static inline uint64_t tally_row_long_hash(const struct tally_row *r)
{
	uint64_t h;

	memcpy(&h, r->key, sizeof(h));
	return h;
}

static inline const uint8_t *tally_wtab_key(const struct tally_wtab *t,
					    const struct tally_row *r)
{
	return r->key_len <= TALLY_ROW_KEY_INLINE ? r->key : t->arena + tally_row_arena_off(r);
}

/* a[0..n) == b[0..n) for n <= 15, with overlapping word loads inside both. */
static inline bool tally_short_eq(const uint8_t *a, const uint8_t *b, uint32_t n)
{
	uint64_t x, y, u, v;

	if (n >= 8) {
		memcpy(&x, a, 8), memcpy(&y, b, 8);
		memcpy(&u, a + n - 8, 8), memcpy(&v, b + n - 8, 8);
		return ((x ^ y) | (u ^ v)) == 0;
	}
	if (n >= 4) {
		uint32_t p, q, r, t;

		memcpy(&p, a, 4), memcpy(&q, b, 4);
		memcpy(&r, a + n - 4, 4), memcpy(&t, b + n - 4, 4);
		return ((p ^ q) | (r ^ t)) == 0;
	}
	return n == 0 || (a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1]);
}

/* a[0..n) == b[0..n) for n >= 8, a word at a time, the last word overlapping. */
static inline bool tally_long_eq(const uint8_t *a, const uint8_t *b, uint32_t n)
{
	uint64_t x, y;
	uint32_t i = 0;

	for (; i + 8 < n; i += 8) {
		memcpy(&x, a + i, 8), memcpy(&y, b + i, 8);
		if (x != y)
			return false;
	}
	memcpy(&x, a + n - 8, 8), memcpy(&y, b + n - 8, 8);
	return x == y;
}

static inline bool tally_row_is(const struct tally_wtab *t, const struct tally_row *r,
				uint64_t h, const uint8_t *key, uint8_t key_len, int64_t win)
{
	if (r->win_start != win || r->key_len != key_len)
		return false;
	if (key_len <= TALLY_ROW_KEY_INLINE)
		return tally_short_eq(r->key, key, key_len);
	return tally_row_long_hash(r) == h &&
	       tally_long_eq(t->arena + tally_row_arena_off(r), key, key_len);
}

/*
 * A long key's arena bytes, once the row's cell c is cached: the apply stage
 * calls this a few events ahead. The first cell is nearly always the row.
 */
static inline void tally_wtab_prefetch_key(const struct tally_wtab *t, uint64_t c,
					   uint8_t key_len)
{
	const struct tally_row *r = &t->cell[c];

	if (key_len > TALLY_ROW_KEY_INLINE && r->key_len == key_len)
		tally_prefetch(t->arena + tally_row_arena_off(r));
}

/* Claim the empty cell c for a new row; NULL if the table is full. */
struct tally_row *tally_wtab_insert(struct tally_wtab *t, uint64_t c, uint64_t h,
				    const uint8_t *key, uint8_t key_len, int64_t win);

/*
 * Find the row of (key, win), whose row hash is h, from its first cell c
 * (tally_wtab_slot of h), or create it; NULL when it is new and the table is
 * full. *created says which.
 */
static inline struct tally_row *tally_wtab_find(struct tally_wtab *t, uint64_t h, uint64_t c,
						const uint8_t *key, uint8_t key_len,
						int64_t win, bool *created)
{
	for (;;) {
		struct tally_row *r = &t->cell[c];

		if (r->key_len == 0) {
			*created = true;
			return tally_wtab_insert(t, c, h, key, key_len, win);
		}
		if (tally_row_is(t, r, h, key, key_len, win)) {
			*created = false;
			return r;
		}
		c = c + 1 == t->ncells ? 0 : c + 1;
	}
}

/*
 * Add one value to the row of row hash h, whose first cell is c. Returns 1 if a
 * row was created, 0 if updated, -ENOSPC if full.
 */
static inline int tally_wtab_add_at(struct tally_wtab *t, uint64_t h, uint64_t c,
				    const uint8_t *key, uint8_t key_len, int64_t win_start,
				    double v)
{
	bool created;
	struct tally_row *r = tally_wtab_find(t, h, c, key, key_len, win_start, &created);

	if (r == NULL)
		return -ENOSPC;
	if (created) {
		r->count = 1;
		r->sum = r->min = r->max = r->last = v;
		return 1;
	}
	r->count++;
	r->sum += v;
	r->min = v < r->min ? v : r->min;
	r->max = v > r->max ? v : r->max;
	r->last = v;
	return 0;
}

/* The same, from the row hash h. */
static inline int tally_wtab_add(struct tally_wtab *t, uint64_t h, const uint8_t *key,
				 uint8_t key_len, int64_t win_start, double v)
{
	return tally_wtab_add_at(t, h, tally_wtab_slot(t, h), key, key_len, win_start, v);
}

/*
 * Add an event of a kind other than TALLY_EV_PLAIN (event.h) to the row of row
 * hash h, first cell c: the row's sums as tally_wtab_add_at (a set adds v = 1,
 * a relative gauge the gauge's offset after it), and the sketch or gauge state
 * beside it. Returns as tally_wtab_add_at; *missed is set when the value is
 * counted but its sketch could not take it (the slab pool is used up).
 */
int tally_wtab_add_kind(struct tally_wtab *t, uint64_t h, uint64_t c, const uint8_t *key,
			uint8_t key_len, int64_t win_start, const struct tally_event *e,
			bool *missed);

/*
 * The lines a sketch event's add will touch, from its row's first cell c: the
 * aux word (call a few events ahead), then, once that has arrived, the slab's
 * header and the bin or register the value goes to (bins are circular, so the
 * bin's address needs no header read first).
 */
static inline void tally_wtab_prefetch_aux(const struct tally_wtab *t, uint64_t c)
{
	tally_prefetch(&t->aux[c]);
}

static inline void tally_wtab_prefetch_sketch(const struct tally_wtab *t, uint64_t c,
					      const struct tally_event *e)
{
	uint32_t n = t->aux[c] & TALLY_AUX_SLAB;
	const struct tally_sketch *s;
	const struct tally_dds_store *st;
	double a;

	if (n == 0)
		return;
	s = &t->slab[n - 1];
	if (e->kind == TALLY_EV_SET) {
		tally_prefetch(&s->reg[tally_hll_reg(e->member)]);
		return;
	}
	st = e->value > 0 ? &s->dds.pos : &s->dds.neg;
	a = e->value > 0 ? e->value : -e->value;
	tally_prefetch(st);
	if (a >= TALLY_DDS_MIN_VALUE)
		tally_prefetch(&st->bins[(uint32_t)tally_dds_index(a) % TALLY_DDS_BINS]);
}

/*
 * Defer t's sketch values to a list of cap entries (8 bytes each), folded in
 * by tally_wtab_settle. 0 or -ENOMEM. A table that defers must be settled
 * before its sketches are read or merged.
 */
int tally_wtab_defer_sketches(struct tally_wtab *t, uint32_t cap, int node);
/* Fold the deferred values into the slabs (the table's reader, after the
 * seal). Returns the values no slab could take (the pool was used up). */
uint64_t tally_wtab_settle(struct tally_wtab *t);

/* The sketch of the row in cell c, or NULL (a settled table's). */
static inline const struct tally_sketch *tally_wtab_sketch(const struct tally_wtab *t, uint64_t c)
{
	uint32_t s = t->aux[c] & TALLY_AUX_SLAB;

	return s != 0 ? &t->slab[s - 1] : NULL;
}

/* The cell of a row of t. */
static inline uint64_t tally_wtab_cell(const struct tally_wtab *t, const struct tally_row *r)
{
	return (uint64_t)(r - t->cell);
}

/* Fold in the aggregates of `in` (its key fields unused) as the row of
 * (key, in->win_start): counts and sums add, min/max combine, last from in.
 * 1 created, 0 updated, -ENOSPC full. */
int tally_wtab_merge_row(struct tally_wtab *t, const uint8_t *key, uint8_t key_len,
			 const struct tally_row *in);

/*
 * Fold a row of another table in: counts and sums add, min/max combine, last
 * from r, sketches merge. -ENOSPC (nothing changed) when the row or, for a row
 * with a sketch, a slab is not to be had; t without a slab pool keeps the
 * sums only.
 */
int tally_wtab_merge(struct tally_wtab *t, const struct tally_wtab *src,
		     const struct tally_row *r);

static inline uint32_t tally_wtab_rows(const struct tally_wtab *t) { return t->nrows; }
static inline uint32_t tally_wtab_capacity(const struct tally_wtab *t) { return t->max_rows; }
/* Rows in creation order. */
static inline const struct tally_row *tally_wtab_row(const struct tally_wtab *t, uint32_t i)
{
	return &t->cell[t->used[i]];
}
/* At least 7/8 of the rows or of the long-key arena used: time to seal. */
static inline bool tally_wtab_near_full(const struct tally_wtab *t)
{
	return t->nrows >= t->max_rows / 8 * 7 || t->arena_used >= t->arena_cap / 8 * 7 ||
	       (t->nslabs != 0 && t->sk_rows >= t->nslabs - t->nslabs / 8) ||
	       (t->pend_cap != 0 && t->npend >= t->pend_cap - t->pend_cap / 8);
}

#endif
