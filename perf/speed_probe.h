/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * How fast the machine is right now, apart from Tally: a benchmark that runs
 * for a minute on a shared VM cannot tell "Tally slowed down" from "the host
 * gave this vCPU less" without a fixed piece of work timed next to it.
 */
#ifndef TALLY_SPEED_PROBE_H
#define TALLY_SPEED_PROBE_H

#include <stdint.h>

struct speed_probe {
	uint32_t *chase; /* a single random cycle through the buffer's lines */
	uint64_t lines;
	uint32_t at;
};

/* bytes: the pointer chase's buffer (well above the LLC: each hop a DRAM
 * access). 0 on success, -ENOMEM. */
int speed_probe_init(struct speed_probe *p, uint64_t bytes);
void speed_probe_fini(struct speed_probe *p);
/* TSC cycles of 2^20 dependent multiply-adds: the core's clock. */
uint64_t speed_probe_compute(void);
/* TSC cycles a hop over `hops` dependent loads: the memory's latency. */
double speed_probe_memory(struct speed_probe *p, unsigned hops);

#endif
