/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The live view, the appliance's read path for `tallyctl top` and `get`: the
 * totals of the open windows (the newest window seen and the one before it),
 * as of the last flush. The flusher folds every batch it hands over into it;
 * the control thread reads it under a mutex that neither the workers nor the
 * packet path ever take, so a read costs the workers nothing at all; its
 * price is that it is up to flush_interval_ms behind (`tallyctl flush` first
 * for now). When a newer window opens the view keeps the two newest windows
 * and drops older rows; if it ever fills (TALLY_LIVEVIEW_ROWS rows: 2 x 50 MB),
 * it starts again from the next row (resets; never a worker drop).
 */
#ifndef TALLY_LIVEVIEW_H
#define TALLY_LIVEVIEW_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "batch.h"
#include "window.h"

#define TALLY_LIVEVIEW_ROWS 262144

struct tally_liveview {
	pthread_mutex_t mu;
	struct tally_wtab *t, *spare; /* spare: where prune copies the newest rows */
	int64_t window_ms;
	int64_t newest;     /* newest window start folded in */
	uint64_t resets;    /* the view filled and started again */
};

struct tally_live_row {
	const char *key; /* points into the caller's copy */
	int64_t win_start;
	uint64_t count;
	double sum, min, max, last;
};

/* rows: capacity, at most TALLY_LIVEVIEW_ROWS. 0 or -ENOMEM. */
int tally_liveview_init(struct tally_liveview *v, uint32_t rows, int64_t window_ms);
void tally_liveview_fini(struct tally_liveview *v);
/* The flusher: fold a batch in. */
void tally_liveview_add(struct tally_liveview *v, const struct tally_batch *b);

struct tally_live_top {
	char key[256];
	uint64_t count;
	double sum;
};

/* The n heaviest keys (summed over the open windows) whose key starts with
 * prefix, by count (or by sum); returns how many were written to out. */
unsigned tally_liveview_top(struct tally_liveview *v, unsigned n, bool by_sum,
			    const char *prefix, struct tally_live_top *out);
/* The open windows of one key, oldest first (at most max); returns how many. */
unsigned tally_liveview_get(struct tally_liveview *v, const char *key,
			    struct tally_row *out, unsigned max);

#endif
