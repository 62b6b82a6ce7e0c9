/* SPDX-License-Identifier: BSD-3-Clause */
/* Exponential backoff with full jitter (backoff.h). */
#include "backoff.h"

uint64_t tally_cl_backoff_cap(uint32_t base_ms, uint32_t max_ms, unsigned attempt)
{
	uint64_t cap = base_ms;

	/* Doubling stops at max: no shift past 63, no overflow. */
	for (unsigned i = 0; i < attempt && cap < max_ms; i++)
		cap <<= 1;
	return cap < max_ms ? cap : max_ms;
}

uint64_t tally_cl_backoff_ms(uint32_t base_ms, uint32_t max_ms, unsigned attempt, uint64_t rnd)
{
	return rnd % (tally_cl_backoff_cap(base_ms, max_ms, attempt) + 1);
}

uint64_t tally_cl_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}
