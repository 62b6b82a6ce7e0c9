/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A snapshot of everything tallyd reports: counters (total and per worker),
 * watchdog states, flusher histograms, dedup and table gauges, sink, breaker
 * and spool state. The control thread fills one (ctl.c) for `tallyctl stats`
 * and, every 100 ms, publishes one for the metrics thread (metrics.c), which
 * therefore never reads daemon state itself. Plain data, no DPDK: the
 * Prometheus exposition (prom.c) is unit-tested on hand-made snapshots.
 */
#ifndef TALLY_SNAPSHOT_H
#define TALLY_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "counters.h"
#include "histogram.h"
#include "spool.h"

enum tally_health { TALLY_RUNNING, TALLY_STALLED, TALLY_DONE };

extern const char *const tally_health_names[]; /* "running", "stalled", "done" */

struct tally_snap_worker {
	unsigned id, lcore, socket, nqueues;
	enum tally_health health;
	uint64_t v[TALLY_C_MAX];
};

/*
 * Sink, breaker and spool state, from the sink writer (up, down: the last write
 * failed, stalled: a sink call ran past the watchdog's limit), the worst
 * breaker of its endpoints and their spools summed.
 */
struct tally_sink_state {
	char name[32];     /* sink key: sqlite, postgres... */
	char state[16];    /* "up", "down", "stalled" */
	char breaker[16];  /* "closed", "open", "half-open"; "" = no breaker */
	bool has_spool;    /* spool below is filled */
	struct tally_spool_stats spool;
	char last_err[256];
};

struct tally_snap {
	uint64_t v[TALLY_C_MAX]; /* totals: workers + flusher + control + port */
	unsigned nworkers;
	struct tally_snap_worker *w; /* nworkers of them, owned by the snapshot */
	enum tally_health flusher;
	struct tally_hist flush_hist, sink_hist;
	uint64_t uptime_ms;
	uint64_t dedup_capacity, dedup_bytes, dedup_gen;
	uint64_t table_rows, table_bytes;
	struct tally_sink_state sink;
	const char *version;
};

/* Allocate the worker array; 0 or -ENOMEM. */
int tally_snap_init(struct tally_snap *s, unsigned nworkers);
void tally_snap_fini(struct tally_snap *s);
/* Copy between snapshots of the same worker count (the worker array too). */
void tally_snap_copy(struct tally_snap *dst, const struct tally_snap *src);

#endif
