/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The flusher thread: at every flush tick it asks each worker to seal its
 * window table, merges the sealed tables in worker order into one batch (with
 * one worker, copies its table as it is) and hands it to the sink writer,
 * which numbers it (appliance, seq) and writes or spools it. Runs off the
 * worker cores.
 */
#ifndef TALLY_FLUSH_H
#define TALLY_FLUSH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "batch.h"
#include "counters.h"
#include "histogram.h"
#include "liveview.h"
#include "gauge.h"
#include "sink_writer.h"
#include "worker.h"

struct tally_flusher {
	struct tally_worker *workers;
	unsigned nworkers;
	struct tally_writer *writer;
	struct tally_liveview *view; /* folded every batch for tallyctl top/get; NULL = none */
	const char *appliance;
	int64_t window_ms;
	uint64_t interval_ms;
	struct tally_wtab *merge;  /* several workers: their tables merged here */
	struct tally_batch out;    /* the batch being written */
	struct tally_gauges gauges; /* every gauge key's value: see flush.c */
	uint32_t merge_sketch_rows; /* slabs of the merge table; 0: default x workers */
	unsigned seal_wait_ms;     /* a worker silent this long is stalled; 0 = 2000 */
	uint64_t tick; /* last seal request */
	struct tally_counters ctr; /* single writer: the flusher */
	int flush_now;             /* ck_pr: tallyctl flush */
	int stop;                  /* ck_pr: workers are done, drain and exit */
	pthread_t thread;
	bool joined;
	/* Watchdog and metrics, read by other threads with ck_pr loads. */
	struct tally_hist flush_hist; /* each flush tick, seal to hand-over */
	uint64_t heartbeat;           /* bumped every loop and wait step */
	uint64_t tick_done;           /* the last tick finished (ck_pr; tallyctl drain) */
	uint64_t submitted;           /* batches handed to the writer (ck_pr) */
};

/* merge_rows: capacity of the merge table (several workers only). 0 or a negative
 * errno (err filled). f->gauges may hold values restored from the sink before. */
int tally_flusher_start(struct tally_flusher *f, uint32_t merge_rows, char *err,
			size_t errlen);
/* Call after every worker returned: the flusher drains what they sealed. */
void tally_flusher_stop(struct tally_flusher *f);
/* True once the flusher has handed over everything and exited (then it is
 * joined); the writer was told to stop. */
bool tally_flusher_done(struct tally_flusher *f);

#endif
