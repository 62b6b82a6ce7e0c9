/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A fixed-bucket latency histogram for the flusher's timings (each whole flush,
 * each sink write), read by the metrics as a Prometheus histogram. One writer
 * (the flusher) stores with ck_pr; readers on other threads load with ck_pr and
 * may see a count a moment ahead of the sum, which Prometheus tolerates: the
 * next scrape agrees. Counts are per bucket (not cumulative) so an observation
 * is one store; the exposition makes them cumulative.
 */
#ifndef TALLY_HISTOGRAM_H
#define TALLY_HISTOGRAM_H

#include <stdint.h>

#include <ck_pr.h>

/* Upper bounds in ms; one more bucket (+Inf) follows. From a local SQLite
 * commit (about 1 ms) to a sink call near sink_timeout_ms's default (5 s). */
#define TALLY_HIST_BOUNDS_MS {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}
#define TALLY_HIST_NBOUNDS 13

struct tally_hist {
	uint64_t count[TALLY_HIST_NBOUNDS + 1]; /* last: above every bound */
	uint64_t sum_us;
};

static const uint32_t tally_hist_bounds_ms[TALLY_HIST_NBOUNDS] = TALLY_HIST_BOUNDS_MS;

/* Single writer: a plain read-modify-store is enough, readers only load. */
static inline void tally_hist_observe(struct tally_hist *h, uint64_t us)
{
	unsigned b = 0;

	while (b < TALLY_HIST_NBOUNDS && us > (uint64_t)tally_hist_bounds_ms[b] * 1000)
		b++;
	ck_pr_store_64(&h->sum_us, h->sum_us + us);
	ck_pr_store_64(&h->count[b], h->count[b] + 1);
}

/* A copy made with loads only: safe from any thread. */
static inline void tally_hist_load(const struct tally_hist *h, struct tally_hist *out)
{
	for (unsigned b = 0; b <= TALLY_HIST_NBOUNDS; b++)
		out->count[b] = ck_pr_load_64((uint64_t *)&h->count[b]);
	out->sum_us = ck_pr_load_64((uint64_t *)&h->sum_us);
}

#endif
