/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-worker window table (layout in window.h): creation, the cold half of an
 * insert, merging for the flusher, and reset. Rows are listed in creation order,
 * which is also the order the flusher and sinks read them.
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
	struct tally_wtab *t;

	if (max_rows == 0 || max_rows > INT32_MAX) {
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
	t->bytes = t->ncells * sizeof(struct tally_row) + (size_t)max_rows * sizeof(uint32_t) +
		   t->arena_cap;
	if (t->cell == NULL || t->used == NULL || t->arena == NULL) {
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
	tally_mem_unmap(t, sizeof(*t));
}

/* One write per used cell: far cheaper than clearing the whole table when it
 * was mostly empty, and done by the flusher, off the hot path. */
void tally_wtab_reset(struct tally_wtab *t)
{
	for (uint32_t i = 0; i < t->nrows; i++)
		t->cell[t->used[i]].key_len = 0;
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

int tally_wtab_merge_row(struct tally_wtab *t, const uint8_t *key, uint8_t key_len,
			 const struct tally_row *in)
{
	uint64_t h = tally_row_hash(tally_key_hash(key, key_len), in->win_start);
	bool created;
	struct tally_row *r = tally_wtab_find(t, h, tally_wtab_slot(t, h), key, key_len,
					      in->win_start, &created);

	if (r == NULL)
		return -ENOSPC;
	if (created) {
		r->count = in->count;
		r->sum = in->sum;
		r->min = in->min;
		r->max = in->max;
		r->last = in->last;
		return 1;
	}
	r->count += in->count;
	r->sum += in->sum;
	r->min = in->min < r->min ? in->min : r->min;
	r->max = in->max > r->max ? in->max : r->max;
	r->last = in->last;
	return 0;
}

int tally_wtab_merge(struct tally_wtab *t, const struct tally_wtab *src,
		     const struct tally_row *in)
{
	return tally_wtab_merge_row(t, tally_wtab_key(src, in), in->key_len, in);
}
