/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The sink writer: the thread between the flusher and the sinks, so that a
 * slow or dead database never stalls the flusher, and through it the workers.
 *
 * The flusher submits finished batches to a bounded queue (SPSC ck_ring). The
 * writer gives each a seq (durable and unique: the first lane's spool keeps
 * the high-water mark), splits it into one part per lane (a lane is one sink
 * endpoint: the sink, or one PostgreSQL shard by consistent hashing, shard.h)
 * and, per lane: writes the part, or, if that fails or the lane's spool is not
 * empty or its breaker (breaker.h) is open, appends it to the lane's spool
 * (spool.h; group commit: one sync per lane per batch). Each lane replays its
 * spool oldest first, one record at a time whenever its breaker allows, so a
 * lane's parts reach its sink in seq order; other lanes are not held up by a
 * lane that is down. Exactly once holds because each part carries the batch's
 * (appliance, seq), which its sink records with the rows and skips if seen.
 *
 * Back-pressure: a full spool (spool_max_bytes) keeps the batch in the writer
 * and retries; the queue fills (sink_queue_full counts each wait), the flusher
 * waits, and workers count drop_table_full when their tables fill: nothing
 * accepted is dropped silently. A second stop signal (give_up) sends every part
 * to the spool without trying the sinks; only a part neither a sink nor the
 * spool took is lost, and counted (flush_rows_lost).
 */
#ifndef TALLY_SINK_WRITER_H
#define TALLY_SINK_WRITER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <ck_ring.h>

#include "batch.h"
#include "breaker.h"
#include "histogram.h"
#include "counters.h"
#include "shard.h"
#include "sink.h"
#include "spool.h"

#define TALLY_WRITER_QUEUE 16 /* batches between flusher and writer; power of 2 */

struct tally_writer;
/* (Re)open lane i's sink. NULL with err: a transient failure, retried later. */
typedef struct tally_sink *(*tally_lane_open_fn)(void *arg, char *err, size_t errlen);

struct tally_lane {
	char name[64];
	tally_lane_open_fn open;
	void *open_arg;
	bool own_arg;              /* free open_arg at fini */
	struct tally_sink *sink;   /* NULL until opened */
	struct tally_spool *spool;
	struct tally_breaker br;
	bool dirty;                /* appended since the last spool sync */
	/* what tallyctl sink shows; under the writer's lock */
	uint64_t written, skipped, errors, spooled, replayed, last_ok_ms;
	char last_err[320];
};

struct tally_writer_opts {
	const char *spool_dir;     /* lanes spool in spool_dir/<lane name> */
	uint64_t spool_max_bytes, spool_max_age_ms;
	unsigned breaker_failures;
	uint64_t retry_base_ms, retry_max_ms, breaker_open_ms;
	/* >0: at start, read the datagram lists of this appliance's batches
	 * committed since then into committed (committed.h) */
	int64_t committed_since_ms;
};

struct tally_writer {
	struct tally_writer_opts o;
	unsigned nlanes;
	struct tally_lane lanes[TALLY_SHARD_MAX];
	struct tally_ring ring;    /* several lanes: which lane a key goes to */
	struct tally_batch parts[TALLY_SHARD_MAX];
	struct tally_batch replay; /* a record peeked from a spool */
	struct tally_batch *cur;   /* the batch being placed */
	bool placed[TALLY_SHARD_MAX];
	uint64_t seq_floor;        /* no seq below this */
	struct tally_dgset *committed; /* read at start; the caller takes it */
	ck_ring_t q __attribute__((aligned(64)));
	ck_ring_buffer_t qbuf[TALLY_WRITER_QUEUE];
	struct tally_counters ctr; /* single writer: the writer thread */
	/* Watchdog and metrics, read by other threads with ck_pr loads. */
	struct tally_hist sink_hist; /* each sink write call */
	uint64_t heartbeat;          /* bumped every loop and after every sink call */
	int in_sink;                 /* a sink call is running: a stall is the sink's */
	int sink_down;               /* the last sink write failed */
	/* A batch's ack lists, once it is durable (or lost: durable false). */
	void (*acks_done)(void *arg, struct tally_acklist *l, bool durable);
	void *acks_arg;
	pthread_mutex_t lock;      /* lane stats, read by the control thread */
	pthread_t thread;
	bool running;
	int stop, give_up, force;  /* ck_pr */
};

/* Set up (no lanes yet). */
void tally_writer_init(struct tally_writer *w, const struct tally_writer_opts *o);
/* A lane named name (spool_dir/name); 0 or -errno with err. */
int tally_writer_add_lane(struct tally_writer *w, const char *name, tally_lane_open_fn open,
			  void *open_arg, char *err, size_t errlen);
/* Open the spools, choose the first seq (above every lane's last_seq and the
 * spool's high-water mark), start the thread. 0 or -errno with err. */
int tally_writer_start(struct tally_writer *w, const char *appliance, char *err, size_t errlen);
/* The flusher's hand-off: the writer owns b from now on (and frees it). Waits
 * while the queue is full. */
void tally_writer_submit(struct tally_writer *w, struct tally_batch *b);
/* No more batches: place the queued ones, sync, exit. */
void tally_writer_stop(struct tally_writer *w);
bool tally_writer_done(struct tally_writer *w);
/* Free everything (after done). */
void tally_writer_fini(struct tally_writer *w);
/* The lane a key's rows go to. */
const char *tally_writer_where(const struct tally_writer *w, const uint8_t *key, size_t len);
/* Batches waiting in the queue (gauge). */
unsigned tally_writer_queued(const struct tally_writer *w);

#endif
