/* SPDX-License-Identifier: BSD-3-Clause */
/* Consistent hashing with virtual nodes (ring.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "ring.h"

static int cmp_point(const void *a, const void *b)
{
	const struct tally_cl_ring_point *x = a, *y = b;

	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return x->node < y->node ? -1 : x->node > y->node; /* a tie: the same order everywhere */
}

int tally_cl_ring_build(struct tally_cl_ring *r, const char *const *names, unsigned n,
			unsigned vnodes)
{
	memset(r, 0, sizeof(*r));
	if (n == 0 || vnodes == 0 || vnodes > 65536)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < i; j++)
			if (strcmp(names[i], names[j]) == 0)
				return -EINVAL;
	r->pts = calloc((size_t)n * vnodes, sizeof(*r->pts));
	if (r->pts == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++)
		for (unsigned v = 0; v < vnodes; v++) {
			char p[320];
			int len = snprintf(p, sizeof(p), "%s#%u", names[i], v);

			r->pts[r->npts++] = (struct tally_cl_ring_point){XXH3_64bits(p, (size_t)len), i};
		}
	qsort(r->pts, r->npts, sizeof(*r->pts), cmp_point);
	r->nnodes = n;
	return 0;
}

void tally_cl_ring_free(struct tally_cl_ring *r)
{
	free(r->pts);
	memset(r, 0, sizeof(*r));
}

uint64_t tally_cl_key_hash(const void *key, size_t len)
{
	return XXH3_64bits(key, len);
}

/* Index of the first point with h >= hash, wrapping to 0. */
static uint32_t first_point(const struct tally_cl_ring *r, uint64_t h)
{
	uint32_t lo = 0, hi = r->npts;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (r->pts[mid].h < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == r->npts ? 0 : lo;
}

unsigned tally_cl_ring_pick(const struct tally_cl_ring *r, uint64_t h,
			    bool (*usable)(unsigned node, void *arg), void *arg)
{
	uint32_t start = first_point(r, h);
	unsigned own = r->pts[start].node;
	uint64_t seen = 0; /* nodes already judged: at most 64 (TALLY_CLIENT_MAX_APPLIANCES) */

	if (usable == NULL)
		return own;
	for (uint32_t k = 0; k < r->npts; k++) {
		unsigned node = r->pts[(start + k) % r->npts].node;

		if (node < 64 && (seen >> node & 1))
			continue;
		if (usable(node, arg))
			return node;
		if (node < 64)
			seen |= 1ULL << node;
		if (__builtin_popcountll(seen) == (int)r->nnodes)
			break;
	}
	return own;
}
