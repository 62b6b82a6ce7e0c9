/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-worker window table. An open-addressing index of 8-byte entries
 * (hash tag << 32 | row + 1; 0 = empty), linear probing, points into a dense
 * array of 64-byte rows whose keys live in an arena. The index is a power of two
 * at least twice the rows, so probes stay short (load <= 0.5). Rows are appended
 * in arrival order, which is also the order the flusher and sinks read them.
 * Memory is mapped and pre-faulted once (mem.c) and never grows: a full table says so
 * (-ENOSPC) and the caller counts it.
 */
#include <errno.h>
#include <string.h>

#include <xxhash.h>

#include "mem.h"
#include "window.h"

#define KEY_ARENA_PER_ROW 64

struct tally_wtab {
	uint64_t *index;
	struct tally_row *rows;
	uint8_t *arena;
	uint64_t mask;
	uint32_t nrows, max_rows;
	uint32_t arena_used, arena_cap;
	size_t bytes;
};

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

uint64_t tally_key_hash(const uint8_t *key, uint32_t len)
{
	return XXH3_64bits(key, len);
}

static void *map(size_t bytes) { return tally_mem_map(bytes); }

struct tally_wtab *tally_wtab_create(uint32_t max_rows)
{
	struct tally_wtab *t = map(sizeof(*t));
	uint64_t slots = 2;

	if (t == NULL || max_rows == 0 || max_rows > INT32_MAX) {
		errno = t == NULL ? ENOMEM : EINVAL;
		return NULL;
	}
	while (slots < 2 * (uint64_t)max_rows)
		slots <<= 1;
	t->mask = slots - 1;
	t->max_rows = max_rows;
	t->arena_cap = max_rows > UINT32_MAX / KEY_ARENA_PER_ROW ? UINT32_MAX
							       : max_rows * KEY_ARENA_PER_ROW;
	t->index = map(slots * 8);
	t->rows = map((size_t)max_rows * sizeof(struct tally_row));
	t->arena = map(t->arena_cap);
	t->bytes = slots * 8 + (size_t)max_rows * sizeof(struct tally_row) + t->arena_cap;
	if (t->index == NULL || t->rows == NULL || t->arena == NULL) {
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
	tally_mem_unmap(t->index, (t->mask + 1) * 8);
	tally_mem_unmap(t->rows, (size_t)t->max_rows * sizeof(struct tally_row));
	tally_mem_unmap(t->arena, t->arena_cap);
	tally_mem_unmap(t, sizeof(*t));
}

/*
 * Clearing only the index entries the rows used costs one random write per row,
 * against a memset of the whole index; the flusher does this off the hot path,
 * and for a table that was mostly empty the per-row way is far cheaper.
 */
void tally_wtab_reset(struct tally_wtab *t)
{
	if ((uint64_t)t->nrows * 8 < t->mask + 1) {
		for (uint32_t i = 0; i < t->nrows; i++) {
			uint64_t s = t->rows[i].hash & t->mask;

			while (t->index[s] != 0) {
				t->index[s] = 0;
				s = (s + 1) & t->mask;
			}
		}
	} else {
		memset(t->index, 0, (t->mask + 1) * 8);
	}
	t->nrows = 0;
	t->arena_used = 0;
}

size_t tally_wtab_bytes(const struct tally_wtab *t) { return t->bytes; }
uint32_t tally_wtab_rows(const struct tally_wtab *t) { return t->nrows; }
uint32_t tally_wtab_capacity(const struct tally_wtab *t) { return t->max_rows; }

const struct tally_row *tally_wtab_row(const struct tally_wtab *t, uint32_t i)
{
	return &t->rows[i];
}

const uint8_t *tally_wtab_key(const struct tally_wtab *t, const struct tally_row *r)
{
	return t->arena + r->key_off;
}

void tally_wtab_prefetch(const struct tally_wtab *t, uint64_t h)
{
	__builtin_prefetch(&t->index[h & t->mask], 0, 3);
}

/*
 * The row can only be prefetched once its index entry is known, so the worker
 * prefetches the index far ahead and calls this nearer: it reads the (now
 * cached) entry and prefetches the row and its key.
 */
void tally_wtab_prefetch_row(const struct tally_wtab *t, uint64_t h)
{
	uint64_t e = t->index[h & t->mask];

	if (e != 0 && (e >> 32) == (h >> 32)) {
		const struct tally_row *r = &t->rows[(uint32_t)e - 1];

		__builtin_prefetch(r, 1, 3);
		__builtin_prefetch(t->arena + r->key_off, 0, 3);
	}
}

/* Find the row of (h, key, win) or the empty index slot where it would go. */
static struct tally_row *lookup(struct tally_wtab *t, uint64_t h, const uint8_t *key,
				uint8_t key_len, int64_t win, uint64_t *slot)
{
	uint64_t s = h & t->mask, tag = h >> 32;

	for (;;) {
		uint64_t e = t->index[s];
		struct tally_row *r;

		if (e == 0) {
			*slot = s;
			return NULL;
		}
		r = &t->rows[(uint32_t)e - 1];
		if ((e >> 32) == tag && r->hash == h && r->win_start == win &&
		    r->key_len == key_len && memcmp(t->arena + r->key_off, key, key_len) == 0)
			return r;
		s = (s + 1) & t->mask;
	}
}

static struct tally_row *append(struct tally_wtab *t, uint64_t h, uint64_t slot,
				const uint8_t *key, uint8_t key_len, int64_t win)
{
	struct tally_row *r;

	if (t->nrows == t->max_rows || t->arena_cap - t->arena_used < key_len)
		return NULL;
	r = &t->rows[t->nrows];
	r->hash = h;
	r->win_start = win;
	r->key_off = t->arena_used;
	r->key_len = key_len;
	memcpy(t->arena + t->arena_used, key, key_len);
	t->arena_used += key_len;
	t->index[slot] = (h >> 32) << 32 | (uint64_t)(t->nrows + 1);
	t->nrows++;
	return r;
}

int tally_wtab_add(struct tally_wtab *t, uint64_t h, const uint8_t *key, uint8_t key_len,
		   int64_t win_start, double v)
{
	uint64_t slot;
	struct tally_row *r = lookup(t, h, key, key_len, win_start, &slot);

	if (r != NULL) {
		r->count++;
		r->sum += v;
		r->min = v < r->min ? v : r->min;
		r->max = v > r->max ? v : r->max;
		r->last = v;
		return 0;
	}
	r = append(t, h, slot, key, key_len, win_start);
	if (r == NULL)
		return -ENOSPC;
	r->count = 1;
	r->sum = r->min = r->max = r->last = v;
	return 1;
}

int tally_wtab_merge(struct tally_wtab *t, const struct tally_wtab *src,
		     const struct tally_row *in)
{
	const uint8_t *key = tally_wtab_key(src, in);
	uint64_t slot;
	struct tally_row *r = lookup(t, in->hash, key, in->key_len, in->win_start, &slot);

	if (r == NULL) {
		r = append(t, in->hash, slot, key, in->key_len, in->win_start);
		if (r == NULL)
			return -ENOSPC;
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
