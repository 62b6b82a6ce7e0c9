/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-worker window table (layout in window.h): creation, the cold half of an
 * insert, rows of the kinds that keep a sketch or gauge state, merging for the
 * flusher, and reset. Rows are listed in creation order, which is also the
 * order the flusher and sinks read them.
 */
#include <errno.h>
#include <string.h>

#include "mem.h"
#include "window.h"

#define KEY_ARENA_PER_ROW 64 /* room for long keys: 64 bytes a row on average */

int tally_window_start(int64_t t, int64_t w, int64_t *start)
{
	int64_t r;

	if (w <= 0)
		return -EINVAL;
	r = t % w;
	if (r < 0) {
		/* floor, not truncation: the start is below t, and may not exist */
		if (t < INT64_MIN + (w + r))
			return -ERANGE;
		r += w;
	}
	*start = t - r;
	return 0;
}

struct tally_wtab *tally_wtab_create(uint32_t max_rows)
{
	return tally_wtab_create_node(max_rows, TALLY_NODE_ANY);
}

struct tally_wtab *tally_wtab_create_node(uint32_t max_rows, int node)
{
	return tally_wtab_create_ext(max_rows, 0, node);
}

struct tally_wtab *tally_wtab_create_ext(uint32_t max_rows, uint32_t nslabs, int node)
{
	struct tally_wtab *t;

	if (max_rows == 0 || max_rows > INT32_MAX || nslabs > TALLY_AUX_SLAB - 1) {
		errno = EINVAL;
		return NULL;
	}
	t = tally_mem_map_node(sizeof(*t), node);
	if (t == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	t->ncells = 2 * (uint64_t)max_rows;
	t->max_rows = max_rows;
	t->arena_cap = max_rows > UINT32_MAX / KEY_ARENA_PER_ROW ? UINT32_MAX
							       : max_rows * KEY_ARENA_PER_ROW;
	t->cell = tally_mem_map_node(t->ncells * sizeof(struct tally_row), node);
	t->used = tally_mem_map_node((size_t)max_rows * sizeof(uint32_t), node);
	t->arena = tally_mem_map_node(t->arena_cap, node);
	t->aux = tally_mem_map_node(t->ncells * sizeof(uint32_t), node);
	t->nslabs = nslabs;
	t->slab = nslabs ? tally_mem_map_node((size_t)nslabs * sizeof(struct tally_sketch), node)
			 : NULL;
	t->bytes = t->ncells * sizeof(struct tally_row) + (size_t)max_rows * sizeof(uint32_t) +
		   t->arena_cap + t->ncells * sizeof(uint32_t) +
		   (size_t)nslabs * sizeof(struct tally_sketch);
	if (t->cell == NULL || t->used == NULL || t->arena == NULL || t->aux == NULL ||
	    (nslabs != 0 && t->slab == NULL)) {
		tally_wtab_destroy(t);
		errno = ENOMEM;
		return NULL;
	}
	return t;
}

void tally_wtab_destroy(struct tally_wtab *t)
{
	if (t == NULL)
		return;
	tally_mem_unmap(t->cell, t->ncells * sizeof(struct tally_row));
	tally_mem_unmap(t->used, (size_t)t->max_rows * sizeof(uint32_t));
	tally_mem_unmap(t->arena, t->arena_cap);
	tally_mem_unmap(t->aux, t->ncells * sizeof(uint32_t));
	if (t->slab != NULL)
		tally_mem_unmap(t->slab, (size_t)t->nslabs * sizeof(struct tally_sketch));
	if (t->pend != NULL)
		tally_mem_unmap(t->pend, (size_t)t->pend_cap * sizeof(*t->pend));
	tally_mem_unmap(t, sizeof(*t));
}

/* One write per used cell: far cheaper than clearing the whole table when it
 * was mostly empty, and done by the flusher, off the hot path; so is zeroing
 * the used slabs, which then need no clearing when a row takes one. */
void tally_wtab_reset(struct tally_wtab *t)
{
	for (uint32_t i = 0; i < t->nrows; i++) {
		t->cell[t->used[i]].key_len = 0;
		t->aux[t->used[i]] = 0;
	}
	if (t->slabs_used != 0)
		memset(t->slab, 0, (size_t)t->slabs_used * sizeof(struct tally_sketch));
	t->slabs_used = 0;
	t->sk_rows = 0;
	t->npend = 0;
	t->nrows = 0;
	t->arena_used = 0;
}

size_t tally_wtab_bytes(const struct tally_wtab *t) { return t->bytes; }

struct tally_row *tally_wtab_insert(struct tally_wtab *t, uint64_t c, uint64_t h,
				    const uint8_t *key, uint8_t key_len, int64_t win)
{
	struct tally_row *r = &t->cell[c];

	if (t->nrows == t->max_rows)
		return NULL;
	if (key_len > TALLY_ROW_KEY_INLINE) {
		if (t->arena_cap - t->arena_used < key_len)
			return NULL;
		memcpy(t->arena + t->arena_used, key, key_len);
		memcpy(r->key, &h, sizeof(h));
		memcpy(r->key + 8, &t->arena_used, sizeof(t->arena_used));
		t->arena_used += key_len;
	} else {
		memcpy(r->key, key, key_len);
	}
	r->win_start = win;
	r->key_len = key_len;
	t->used[t->nrows++] = (uint32_t)c;
	return r;
}

/* Count, sum, min, max and last of a row, by one value v. */
static inline void row_add(struct tally_row *r, bool created, double v)
{
	if (created) {
		r->count = 1;
		r->sum = r->min = r->max = r->last = v;
		return;
	}
	r->count++;
	r->sum += v;
	r->min = v < r->min ? v : r->min;
	r->max = v > r->max ? v : r->max;
	r->last = v;
}

/*
 * The sketch of the row in cell c, of the given kind; a zeroed slab from the
 * pool if it has none; NULL when the pool is used up.
 */
static struct tally_sketch *slab_for(struct tally_wtab *t, uint64_t c, uint8_t kind)
{
	struct tally_sketch *s;
	uint32_t n = t->aux[c] & TALLY_AUX_SLAB;

	if (n != 0)
		return &t->slab[n - 1];
	if (t->slabs_used == t->nslabs)
		return NULL;
	s = &t->slab[t->slabs_used++];
	t->aux[c] |= t->slabs_used;
	s->kind = kind;
	if (kind == TALLY_SK_DDS) /* the rest is zero already: empty stores need lo > hi */
		s->dds.pos.lo = s->dds.neg.lo = 1;
	return s;
}

/*
 * A gauge: an absolute line sets it; a relative line moves it. A row that has
 * seen only relative lines holds offsets from the gauge's value before them,
 * which the flusher knows (TALLY_AUX_REL); once an absolute line came, the row
 * holds values.
 */
static void gauge_add(struct tally_wtab *t, struct tally_row *r, uint64_t c, bool created,
		      const struct tally_event *e)
{
	if (e->kind == TALLY_EV_GAUGE) {
		row_add(r, created, e->value);
		t->aux[c] = (t->aux[c] & ~TALLY_AUX_REL) | TALLY_AUX_GAUGE;
		return;
	}
	row_add(r, created, created ? e->value : r->last + e->value);
	if (created)
		t->aux[c] = TALLY_AUX_GAUGE | TALLY_AUX_REL;
}

/* A timer value as a deferred op: its store and bin. */
static inline uint32_t dds_op(double v)
{
	int32_t i;
	enum tally_dds_side w = tally_dds_where(v, &i);

	if (w == TALLY_DDS_ZERO)
		return TALLY_SKOP_ZERO;
	return (w == TALLY_DDS_POS ? TALLY_SKOP_POS : TALLY_SKOP_NEG) | (uint32_t)(i + TALLY_SKOP_BIAS);
}

/* A set member's hash as a deferred op: its register and rank. */
static inline uint32_t hll_op(uint64_t h)
{
	return TALLY_SKOP_HLL | (uint32_t)tally_hll_rho(h) << TALLY_HLL_P | tally_hll_reg(h);
}

/* A quantile op's bin index. */
static inline int32_t op_index(uint32_t op)
{
	return (int32_t)(op & ~(TALLY_SKOP_STORE | TALLY_SKOP_HLL)) - TALLY_SKOP_BIAS;
}

/* op into the sketch of the row in cell c; false when no slab is left. */
static bool apply_op(struct tally_wtab *t, uint32_t c, uint32_t op)
{
	struct tally_sketch *s = slab_for(t, c, op & TALLY_SKOP_HLL ? TALLY_SK_HLL : TALLY_SK_DDS);

	if (s == NULL)
		return false;
	if (op & TALLY_SKOP_HLL)
		tally_hll_raise(s, op & (TALLY_HLL_M - 1), (uint8_t)(op >> TALLY_HLL_P & 0x7f));
	else if ((op & TALLY_SKOP_STORE) == TALLY_SKOP_ZERO)
		s->dds.zero++;
	else
		tally_dds_store_add(op & TALLY_SKOP_POS ? &s->dds.pos : &s->dds.neg, op_index(op), 1);
	return true;
}

/* A sketch value of the row in cell c: deferred while the list has room.
 * False when it went to the slabs and none was left. */
static inline bool sketch_value(struct tally_wtab *t, uint64_t c, bool created, uint32_t op)
{
	t->sk_rows += created;
	if (t->npend < t->pend_cap) {
		t->pend[t->npend++] = (struct tally_skval){(uint32_t)c, op};
		return true;
	}
	return apply_op(t, (uint32_t)c, op);
}

int tally_wtab_add_kind(struct tally_wtab *t, uint64_t h, uint64_t c, const uint8_t *key,
			uint8_t key_len, int64_t win_start, const struct tally_event *e,
			bool *missed)
{
	bool created;
	struct tally_row *r = tally_wtab_find(t, h, c, key, key_len, win_start, &created);

	if (r == NULL)
		return -ENOSPC;
	c = tally_wtab_cell(t, r);
	switch (e->kind) {
	case TALLY_EV_SKETCH:
		row_add(r, created, e->value);
		*missed = !sketch_value(t, c, created, dds_op(e->value));
		break;
	case TALLY_EV_SET:
		row_add(r, created, 1);
		*missed = !sketch_value(t, c, created, hll_op(e->member));
		break;
	case TALLY_EV_GAUGE:
	case TALLY_EV_GAUGE_REL:
		gauge_add(t, r, c, created, e);
		break;
	default:
		row_add(r, created, e->value);
	}
	return created;
}

int tally_wtab_defer_sketches(struct tally_wtab *t, uint32_t cap, int node)
{
	if (cap == 0)
		return 0;
	t->pend = tally_mem_map_node((size_t)cap * sizeof(*t->pend), node);
	if (t->pend == NULL)
		return -ENOMEM;
	t->pend_cap = cap;
	t->bytes += (size_t)cap * sizeof(*t->pend);
	return 0;
}

/* Values ahead whose aux word, then slab line, are prefetched while settling. */
#define SETTLE_AHEAD_AUX 16
#define SETTLE_AHEAD_SLAB 8

static void settle_prefetch_slab(struct tally_wtab *t, struct tally_skval v)
{
	uint32_t n = t->aux[v.cell] & TALLY_AUX_SLAB;
	struct tally_sketch *s;

	if (n == 0 || (v.op & (TALLY_SKOP_HLL | TALLY_SKOP_STORE)) == 0)
		return;
	s = &t->slab[n - 1];
	if (v.op & TALLY_SKOP_HLL)
		tally_prefetch(&s->reg[v.op & (TALLY_HLL_M - 1)]);
	else
		tally_prefetch(tally_dds_slot(v.op & TALLY_SKOP_POS ? &s->dds.pos : &s->dds.neg,
					      op_index(v.op)));
}

uint64_t tally_wtab_settle(struct tally_wtab *t)
{
	uint64_t missed = 0;
	uint32_t n = t->npend;

	for (uint32_t i = 0; i < n; i++) {
		if (i + SETTLE_AHEAD_AUX < n)
			tally_prefetch(&t->aux[t->pend[i + SETTLE_AHEAD_AUX].cell]);
		if (i + SETTLE_AHEAD_SLAB < n)
			settle_prefetch_slab(t, t->pend[i + SETTLE_AHEAD_SLAB]);
		missed += !apply_op(t, t->pend[i].cell, t->pend[i].op);
	}
	t->npend = 0;
	return missed;
}

/* src's sketch into the row in cell c (a slab was checked to be free). */
static void merge_sketch(struct tally_wtab *t, uint64_t c, const struct tally_sketch *in)
{
	struct tally_sketch *s = slab_for(t, c, in->kind);

	if (s != NULL)
		tally_sketch_merge(s, in);
}

/* The row of (key, in->win_start) in t with in's sums folded in; NULL when full. */
static struct tally_row *fold_row(struct tally_wtab *t, const uint8_t *key, uint8_t key_len,
				  const struct tally_row *in, bool *created)
{
	uint64_t h = tally_row_hash(tally_key_hash(key, key_len), in->win_start);
	struct tally_row *r = tally_wtab_find(t, h, tally_wtab_slot(t, h), key, key_len,
					      in->win_start, created);

	if (r == NULL)
		return NULL;
	if (*created) {
		r->count = in->count;
		r->sum = in->sum;
		r->min = in->min;
		r->max = in->max;
		r->last = in->last;
		return r;
	}
	r->count += in->count;
	r->sum += in->sum;
	r->min = in->min < r->min ? in->min : r->min;
	r->max = in->max > r->max ? in->max : r->max;
	r->last = in->last;
	return r;
}

int tally_wtab_merge_row(struct tally_wtab *t, const uint8_t *key, uint8_t key_len,
			 const struct tally_row *in)
{
	bool created;

	return fold_row(t, key, key_len, in, &created) == NULL ? -ENOSPC : created;
}

/*
 * A table without a slab pool (the live view's) keeps no sketches: the row's
 * sums still fold in. One with a pool refuses the row before anything changes
 * when a slab is needed and none is left, so the caller can retry it.
 */
int tally_wtab_merge(struct tally_wtab *t, const struct tally_wtab *src,
		     const struct tally_row *in)
{
	const struct tally_sketch *sk = tally_wtab_sketch(src, tally_wtab_cell(src, in));
	bool created;
	struct tally_row *r;

	if (sk != NULL && t->nslabs != 0 && t->slabs_used == t->nslabs)
		return -ENOSPC;
	r = fold_row(t, tally_wtab_key(src, in), in->key_len, in, &created);
	if (r == NULL)
		return -ENOSPC;
	t->aux[tally_wtab_cell(t, r)] |= src->aux[tally_wtab_cell(src, in)] & TALLY_AUX_GAUGE;
	if (sk != NULL && t->nslabs != 0)
		merge_sketch(t, tally_wtab_cell(t, r), sk);
	return created;
}
