/* SPDX-License-Identifier: BSD-3-Clause */
/* Consistent hashing with virtual nodes (shard.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "shard.h"

static int cmp_point(const void *a, const void *b)
{
	const struct tally_ring_point *x = a, *y = b;

	return x->h < y->h ? -1 : x->h > y->h;
}

int tally_ring_build(struct tally_ring *r, const char *const *names, unsigned n)
{
	memset(r, 0, sizeof(*r));
	if (n == 0 || n > TALLY_SHARD_MAX)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < i; j++)
			if (strcmp(names[i], names[j]) == 0)
				return -EINVAL;
	r->points = calloc((size_t)n * TALLY_SHARD_VNODES, sizeof(*r->points));
	if (r->points == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++)
		for (unsigned v = 0; v < TALLY_SHARD_VNODES; v++) {
			char p[300];
			int len = snprintf(p, sizeof(p), "%s#%u", names[i], v);

			r->points[r->npoints++] = (struct tally_ring_point){XXH3_64bits(p, (size_t)len), i};
		}
	qsort(r->points, r->npoints, sizeof(*r->points), cmp_point);
	r->nshards = n;
	return 0;
}

void tally_ring_free(struct tally_ring *r)
{
	free(r->points);
	memset(r, 0, sizeof(*r));
}

unsigned tally_ring_shard(const struct tally_ring *r, const uint8_t *key, size_t len)
{
	uint64_t h = XXH3_64bits(key, len);
	size_t lo = 0, hi = r->npoints;

	while (lo < hi) { /* first point with point.h >= h */
		size_t mid = lo + (hi - lo) / 2;

		if (r->points[mid].h < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return r->points[lo == r->npoints ? 0 : lo].shard;
}

int tally_ring_split(const struct tally_ring *r, const struct tally_batch *b,
		     struct tally_batch *parts)
{
	for (unsigned s = 0; s < r->nshards; s++) {
		tally_batch_clear(&parts[s]);
		memcpy(parts[s].appliance, b->appliance, sizeof(b->appliance));
		parts[s].seq = b->seq;
		parts[s].window_ms = b->window_ms;
	}
	for (uint32_t i = 0; i < b->nrows; i++) {
		const struct tally_batch_row *row = &b->rows[i];
		const uint8_t *key = tally_batch_key(b, row);
		struct tally_batch *p = &parts[tally_ring_shard(r, key, row->key_len)];

		if (tally_batch_add(p, key, row->key_len, row->win_start, row->count, row->sum,
				    row->min, row->max, row->last) != 0)
			return -ENOMEM;
		if (row->blob_len != 0 &&
		    tally_batch_set_blob(p, tally_batch_blob(b, row), row->blob_len) != 0)
			return -ENOMEM;
	}
	return 0;
}
