/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Consistent hashing of keys onto sink shards (PostgreSQL endpoints): each
 * shard, by its name, owns TALLY_SHARD_VNODES points on a 64-bit ring (XXH3 of
 * "name#i"); a key belongs to the shard of the first point at or after the
 * key's hash (XXH3 of the key, the same hash the window tables use). So one
 * key lives on one shard, names (not list order or addresses) decide, and a
 * shard added to N moves about 1/(N+1) of the keys, all of them to the new
 * shard. A batch is split into one part per shard; each part carries the
 * batch's (appliance, seq) and is applied exactly once on its shard.
 */
#ifndef TALLY_SHARD_H
#define TALLY_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"

#define TALLY_SHARD_VNODES 160
#define TALLY_SHARD_MAX 64

struct tally_ring_point {
	uint64_t h;
	uint32_t shard;
};

struct tally_ring {
	unsigned nshards;
	size_t npoints;
	struct tally_ring_point *points; /* sorted by h */
};

/* 0, -EINVAL (no shards, too many, a repeated name) or -ENOMEM. */
int tally_ring_build(struct tally_ring *r, const char *const *names, unsigned n);
void tally_ring_free(struct tally_ring *r);
/* The shard of a key. */
unsigned tally_ring_shard(const struct tally_ring *r, const uint8_t *key, size_t len);
/* Clear parts[0..nshards) (set up with tally_batch_init) and fill each with
 * b's rows of that shard, under b's appliance, seq and window. 0 or -ENOMEM. */
int tally_ring_split(const struct tally_ring *r, const struct tally_batch *b,
		     struct tally_batch *parts);

#endif
