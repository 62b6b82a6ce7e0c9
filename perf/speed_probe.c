/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <rte_cycles.h>

#include "speed_probe.h"

#define LINE_WORDS (64 / sizeof(uint32_t))

int speed_probe_init(struct speed_probe *p, uint64_t bytes)
{
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	uint32_t *order;

	p->lines = bytes / 64;
	p->at = 0;
	p->chase = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	order = malloc(p->lines * sizeof(*order));
	if (p->chase == MAP_FAILED || order == NULL || p->lines < 2) {
		free(order);
		if (p->chase != MAP_FAILED)
			munmap(p->chase, bytes);
		p->chase = NULL;
		return -ENOMEM;
	}
	madvise(p->chase, bytes, MADV_HUGEPAGE); /* DRAM latency, not page walks */
	/* Sattolo's shuffle: one cycle through every line, in random order */
	for (uint64_t i = 0; i < p->lines; i++)
		order[i] = (uint32_t)i;
	for (uint64_t i = p->lines - 1; i > 0; i--) {
		uint64_t j, t;

		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		j = seed % i;
		t = order[i], order[i] = order[j], order[j] = (uint32_t)t;
	}
	for (uint64_t i = 0; i < p->lines; i++)
		p->chase[(uint64_t)order[i] * LINE_WORDS] = order[(i + 1) % p->lines];
	free(order);
	return 0;
}

void speed_probe_fini(struct speed_probe *p)
{
	if (p->chase != NULL)
		munmap(p->chase, p->lines * 64);
	p->chase = NULL;
}

uint64_t speed_probe_compute(void)
{
	uint64_t x = 1, t0 = rte_rdtsc();

	for (uint64_t i = 0; i < 1u << 20; i++) {
		x = x * 0x9e3779b97f4a7c15ULL + i;
		__asm__ volatile("" : "+r"(x)); /* a chain, not a closed form */
	}
	return rte_rdtsc() - t0;
}

double speed_probe_memory(struct speed_probe *p, unsigned hops)
{
	uint32_t at = p->at;
	uint64_t t0 = rte_rdtsc();

	for (unsigned i = 0; i < hops; i++)
		at = p->chase[(uint64_t)at * LINE_WORDS];
	p->at = at;
	return (double)(rte_rdtsc() - t0) / hops;
}
