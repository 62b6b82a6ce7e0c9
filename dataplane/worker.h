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

#include "ack.h"
#include "apply.h"
#include "archive_ring.h"
#include "clock.h"
#include "counters.h"
#include "dedup.h"
#include "event.h"
#include "parse_tly1.h"
#include "rules.h"
#include "window.h"

struct rte_mbuf;
struct rte_mempool;

#define TALLY_BURST 32
#define TALLY_MAX_QUEUES 64
#define TALLY_TABLES_PER_WORKER 3
#define TALLY_RING_SIZE 4 /* power of two > tables per worker */
#define TALLY_EVBUF_EVENTS 16384
#define TALLY_EVBUF_ARENA (512 * 1024)
#define TALLY_EXC_RING 1024 /* frames for the kernel in flight per worker */

/* State every worker shares: read-mostly. */
struct tally_shared {
	struct tally_params *params; /* epoch-protected */
	ck_epoch_t epoch;
	struct tally_dedup *dedup;
	struct tally_clock clock; /* arrival time; re-anchored by the control loop */
	int stop;                   /* ck_pr: workers finish their burst and seal */
	/* ck_pr: id of the drain in force (tallyctl drain); 0 = none. Next to
	 * stop: the loop's one extra load is of a line it reads anyway. */
	uint32_t drain;
	uint32_t sketch_rows;       /* sketch slabs a table: 0 = TALLY_SKETCH_ROWS_DEFAULT */
	uint32_t sketch_values;     /* deferred sketch values a table (window.h); 0: none */
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
	uint64_t poll_last;  /* TSC of the last RX poll */
	uint64_t gap_tsc[3]; /* 100 us, 1 ms, 10 ms in TSC cycles */
	uint64_t tsc_per_us;
	uint16_t nqueues;
	/* The (port, queue) pairs this worker polls, as l3fwd's lcore_conf: one
	 * tallyd may take several ports (two NICs, a NIC and an AF_XDP device). */
	struct tally_rxq {
		uint16_t port, queue;
	} queues[TALLY_MAX_QUEUES];
	unsigned id, lcore;
	struct tally_shared *sh;
	ck_epoch_record_t epoch_rec;
	struct tally_evbuf evb;
	struct tally_rcache rc; /* rule decisions per (key, window) */
	struct rte_ring *arch;  /* worker -> archiver (archive_ring.h); NULL = off */
	uint16_t narch;         /* notes of this burst not yet enqueued */
	uint16_t arch_room;     /* notes this burst may take: the ring's room at its start */
	struct tally_arch_note archq[TALLY_BURST];

	/* Watchdog: the worker bumps heartbeat once per loop (its own line, so the
	 * control thread reading it every 100 ms costs one miss per read). park_ms
	 * is the test hook `debug park-worker`: the worker sleeps that long. */
	uint64_t heartbeat __attribute__((aligned(64)));
	uint32_t park_ms;
	int tid; /* ck_pr: the worker thread's id, for its /proc schedstat; 0 until it runs */
	/* The kernel's view of that thread, as last read (tally_daemon_counters):
	 * kept so a count never goes back when /proc cannot be read. */
	uint64_t sched_preempted, sched_wait_ns;
	uint32_t drain_seen; /* the drain id this worker stopped polling for */
	/* Acks (ack.h). pend: accepted datagrams of the events not yet applied,
	 * answered once apply tells whether the table took them. tx: frames built
	 * this burst, sent at its end. */
	struct rte_mempool *txpool;
	uint16_t txport;                /* the port acks leave through */
	int txq;                        /* TX queue, -1: none (acks counted unsent) */
	uint32_t npend, ntx;
	struct tally_ack pend[TALLY_BURST];
	struct rte_mbuf *tx[2 * TALLY_BURST];
	uint8_t txst[2 * TALLY_BURST];  /* each frame's status, counted once sent */
	struct tally_acklist *ackcur;   /* committed mode: the list being sent */
	uint32_t nfree;
	struct tally_acklist *ackfree[TALLY_ACKLISTS];
	struct tally_acklist *acklists; /* the TALLY_ACKLISTS lists, one block */
	ck_ring_t acks_back __attribute__((aligned(64))); /* writer -> worker */
	ck_ring_buffer_t acks_back_buf[TALLY_ACK_RING];

	uint64_t seal_req __attribute__((aligned(64))); /* written by the flusher */
	ck_ring_t sealed __attribute__((aligned(64)));  /* worker -> flusher */
	ck_ring_buffer_t sealed_buf[TALLY_RING_SIZE];
	ck_ring_t spare __attribute__((aligned(64))); /* flusher -> worker */
	ck_ring_buffer_t spare_buf[TALLY_RING_SIZE];
	struct tally_wtab *tables[TALLY_TABLES_PER_WORKER];

	/* Exception path: frames for the kernel, at most exc_cap per burst (0 =
	 * off), handed to the control thread, which alone does the TAP's I/O (its
	 * syscalls stay off the worker). Single producer, single consumer.
	 * exc_ports: bit (port id % 64) set for the ports that have a TAP; a frame
	 * from another port is dropped under its reason, as with the path off. */
	uint16_t exc_cap, exc_left;
	uint64_t exc_ports;
	ck_ring_t exc __attribute__((aligned(64))); /* worker -> control */
	ck_ring_buffer_t exc_buf[TALLY_EXC_RING];
};

/* Allocate tables and buffers; 0 or a negative errno. */
int tally_worker_init(struct tally_worker *w, unsigned id, struct tally_shared *sh,
		      uint32_t table_rows);
/* The same, buffers and tables on NUMA node `node` (the worker lcore's socket). */
int tally_worker_init_node(struct tally_worker *w, unsigned id, struct tally_shared *sh,
			   uint32_t table_rows, int node);
void tally_worker_fini(struct tally_worker *w);
/* Committed mode: allocate the worker's ack lists. 0 or -ENOMEM. */
int tally_worker_acks_init(struct tally_worker *w, int node);
/* The writer's side: the lists of a batch that is durable (or lost, durable
 * false), each back to its worker. ws: every worker, by id. */
void tally_worker_acks_back(struct tally_worker *ws, struct tally_acklist *l, bool durable);
/* rte_eal_remote_launch entry point; arg is the struct tally_worker. */
int tally_worker_main(void *arg);

/* At exit, after the writer is done: send the committed acks of the last
 * flushes (rte_eal_remote_launch on the worker's own lcore, which owns its TX
 * queue). */
int tally_worker_ack_drain(void *arg);

/* Between bursts: answer the flusher's seal request, or seal early when the
 * table is 7/8 full, if a spare table is free (handoff.c). */
void tally_worker_maybe_seal(struct tally_worker *w);
/* At exit: hand over the last table and mark the worker done. */
void tally_worker_seal_last(struct tally_worker *w);

/* Process one burst of frames (already received); exposed for tests. */
void tally_worker_burst(struct tally_worker *w, const struct tally_params *p,
			struct rte_mbuf **pkts, uint16_t n, uint64_t now_ms);

#endif
