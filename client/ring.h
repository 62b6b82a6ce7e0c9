/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libtally's consistent-hash ring of appliances: each appliance name owns
 * `vnodes` points (XXH3 of "name#i"), a key (XXH3 of its bytes) belongs to the
 * first point at or after its hash. Removing an appliance moves only its own
 * keys, each to the appliance that follows it on the ring, which is where
 * failover sends them.
 */
#ifndef TALLY_CL_RING_H
#define TALLY_CL_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tally_cl_ring_point {
	uint64_t h;
	uint32_t node;
};

struct tally_cl_ring {
	struct tally_cl_ring_point *pts;
	uint32_t npts, nnodes;
};

/* -EINVAL (no names, a repeated name, vnodes 0), -ENOMEM. */
int tally_cl_ring_build(struct tally_cl_ring *r, const char *const *names, unsigned n,
			unsigned vnodes);
void tally_cl_ring_free(struct tally_cl_ring *r);

uint64_t tally_cl_key_hash(const void *key, size_t len);

/* The first node on the ring from hash h for which usable(node, arg) is true
 * (usable NULL: any); if none is, the first node from h (the key's own). */
unsigned tally_cl_ring_pick(const struct tally_cl_ring *r, uint64_t h,
			    bool (*usable)(unsigned node, void *arg), void *arg);

#endif
