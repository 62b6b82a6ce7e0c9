/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Retransmit timing: exponential backoff with full jitter (the wait is uniform
 * in [0, min(max, base * 2^attempt)]), so producers that lost the same
 * appliance do not retransmit in lockstep. A small PRNG per client feeds it.
 */
#ifndef TALLY_CL_BACKOFF_H
#define TALLY_CL_BACKOFF_H

#include <stdint.h>

/* The bound the jittered wait of retry `attempt` (0 = first) stays within. */
uint64_t tally_cl_backoff_cap(uint32_t base_ms, uint32_t max_ms, unsigned attempt);

/* A wait in [0, tally_cl_backoff_cap(...)], from the random word rnd. */
uint64_t tally_cl_backoff_ms(uint32_t base_ms, uint32_t max_ms, unsigned attempt, uint64_t rnd);

/* splitmix64: a fast PRNG step; jitter needs spread, not secrecy. */
uint64_t tally_cl_rand(uint64_t *state);

#endif
