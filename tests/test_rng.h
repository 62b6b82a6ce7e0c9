/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The tests' random numbers: splitmix64 from a fixed seed, so every run makes
 * the same cases. A test file defines TEST_SEED before including this.
 */
#ifndef TALLY_TEST_RNG_H
#define TALLY_TEST_RNG_H

#include <stdint.h>

static uint64_t rng = TEST_SEED;

static inline uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t below(uint64_t n) { return rnd() % n; }

#endif
