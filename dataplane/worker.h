/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A worker lcore: polls its RX queues in bursts, parses, deduplicates and adds
 * events to its own window table, and hands sealed tables to the flusher.
 *
 * Hand-off protocol (no locks): each worker owns TALLY_TABLES_PER_WORKER tables.
 * The flusher bumps seal_req; the worker, between bursts, swaps its current table
 * for a spare (spare ring: flusher -> worker), pushes the full one on the sealed
 * ring (worker -> flusher) and publishes seal_seen = seal_req. Both rings are
 * single-producer single-consumer: exactly one thread on each end.
 */
#ifndef TALLY_WORKER_H
#define TALLY_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include <ck_epoch.h>
#include <ck_ring.h>

#include "clock.h"
#include "counters.h"
#include "dedup.h"
#include "event.h"
#include "parse_tly1.h"
#include "rules.h"
#include "window.h"

#define TALLY_BURST 32
#define TALLY_MAX_QUEUES 64
#define TALLY_TABLES_PER_WORKER 3
#define TALLY_RING_SIZE 4 /* power of two > tables per worker */
#define TALLY_EVBUF_EVENTS 16384
#define TALLY_EVBUF_ARENA (512 * 1024)

/* What workers read per burst. Swapped as a whole under ck_epoch, never edited. */
struct tally_params {
	uint16_t ports[2]; /* TLY1, StatsD; 0 = off */
	int64_t window_ms;
	uint64_t lateness_ms; /* 0 = off */
	uint64_t future_ms;   /* 0 = off */
	struct tally_mac_keys mac;
	const struct tally_rules *rules; /* NULL: no rules file, every key kept */
};

/* State every worker shares: read-mostly. */
struct tally_shared {
	struct tally_params *params; /* epoch-protected */
	ck_epoch_t epoch;
	struct tally_dedup *dedup;
	struct tally_clock clock; /* arrival time; re-anchored by the control loop */
	int stop;                   /* ck_pr: workers finish their burst and seal */
	uint32_t sketch_rows;       /* sketch slabs a table: 0 = TALLY_SKETCH_ROWS_DEFAULT */
};

/* Rows a table can give a sketch (16 KiB each): tallyd's sketch_rows default. */
#define TALLY_SKETCH_ROWS_DEFAULT 256

struct tally_worker {
	struct tally_counters ctr; /* single writer: this worker */
	struct tally_wtab *cur;
	uint64_t seal_seen;  /* written by the worker */
	bool seal_deferred;  /* a deferred seal was counted for this request */
	bool done;           /* final table sealed; worker returned */
	uint64_t clock_last; /* the largest arrival ms this worker used */
	uint16_t port;
	uint16_t nqueues;
	uint16_t queues[TALLY_MAX_QUEUES];
	unsigned id, lcore;
	struct tally_shared *sh;
	ck_epoch_record_t epoch_rec;
	struct tally_evbuf evb;
	struct tally_rcache rc; /* rule decisions per (key, window) */

	uint64_t seal_req __attribute__((aligned(64))); /* written by the flusher */
	ck_ring_t sealed __attribute__((aligned(64)));  /* worker -> flusher */
	ck_ring_buffer_t sealed_buf[TALLY_RING_SIZE];
	ck_ring_t spare __attribute__((aligned(64))); /* flusher -> worker */
	ck_ring_buffer_t spare_buf[TALLY_RING_SIZE];
	struct tally_wtab *tables[TALLY_TABLES_PER_WORKER];
};

/* Allocate tables and buffers; 0 or a negative errno. */
int tally_worker_init(struct tally_worker *w, unsigned id, struct tally_shared *sh,
		      uint32_t table_rows);
/* The same, buffers and tables on NUMA node `node` (the worker lcore's socket). */
int tally_worker_init_node(struct tally_worker *w, unsigned id, struct tally_shared *sh,
			   uint32_t table_rows, int node);
void tally_worker_fini(struct tally_worker *w);
/* rte_eal_remote_launch entry point; arg is the struct tally_worker. */
int tally_worker_main(void *arg);

/* Between bursts: answer the flusher's seal request, or seal early when the
 * table is 7/8 full, if a spare table is free (handoff.c). */
void tally_worker_maybe_seal(struct tally_worker *w);
/* At exit: hand over the last table and mark the worker done. */
void tally_worker_seal_last(struct tally_worker *w);

/* Process one burst of frames (already received); exposed for tests. */
struct rte_mbuf;
void tally_worker_burst(struct tally_worker *w, const struct tally_params *p,
			struct rte_mbuf **pkts, uint16_t n, uint64_t now_ms);

#endif
