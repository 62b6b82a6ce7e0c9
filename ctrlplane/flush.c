/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Flusher: seal, collect, merge, hand over. Every sealed table is copied into a
 * batch (batch.h) or merged, then given back to its worker at once, before any
 * sink call: a worker's spare tables never wait on the sink, nor on the seal
 * request they would answer (while the flusher waits for answers it keeps
 * collecting, so a worker whose spares are all sealed gets one back).
 *
 * The merge visits workers in id order, so "last" of a key seen by several
 * workers within one flush is the highest-numbered worker's value (documented
 * in the README).
 *
 * Gauges carry their value across windows: before a table is copied or
 * merged, its gauge rows are resolved against the appliance's gauge state in
 * the table's row order. A row that saw only relative lines holds offsets: the
 * key's current value is added to its last, min and max (and count times to
 * its sum); every gauge row then sets the current value to its last. Tables
 * come in worker order within a flush, so relative lines of one key on several
 * workers add up exactly; only an absolute and a relative line of one key on
 * different workers in one flush interval depend on that order. Finished batches go to the sink writer (sink_writer.h),
 * which numbers, writes, spools and replays them: the flusher never waits on
 * a sink.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#include <ck_pr.h>

#include "flush.h"
#include "log.h"
#include "window.h"
#include "timeutil.h"

#define SEAL_WAIT_MS 2000 /* a worker that does not answer by then is stalled */
#define FLUSH_NICE 10

/* Alive: the watchdog (control thread) checks this advances. */
static void beat(struct tally_flusher *f)
{
	ck_pr_store_64(&f->heartbeat, f->heartbeat + 1);
}

/* Hand the finished batch to the sink writer, which owns it from now on
 * (seq, sink, spool). f->out starts afresh. */
static void write_batch(struct tally_flusher *f, struct tally_batch *b)
{
	struct tally_batch *out;

	if (b->nrows == 0 && b->acks == NULL)
		return;
	out = malloc(sizeof(*out));
	if (out == NULL || tally_batch_dgrams_from_acks(b) != 0) {
		/* keep it: the next tick tries again with more rows */
		free(out);
		tally_log(LOG_ERR, "tallyd: flusher: out of memory handing over %u rows", b->nrows);
		return;
	}
	if (f->view != NULL)
		tally_liveview_add(f->view, b);
	*out = *b;
	tally_batch_init(b, out->appliance, out->window_ms);
	tally_writer_submit(f->writer, out);
	ck_pr_store_64(&f->submitted, f->submitted + 1);
}

/* The merge table's rows as one batch, and the merge table emptied. */
static void write_merged(struct tally_flusher *f)
{
	if (tally_wtab_rows(f->merge) == 0) {
		write_batch(f, &f->out); /* acks of tables that had no rows */
		return;
	}
	if (tally_batch_add_wtab(&f->out, f->merge) != 0)
		tally_log(LOG_ERR, "tallyd: flusher: out of memory copying %u merged rows",
			tally_wtab_rows(f->merge));
	tally_wtab_reset(f->merge);
	write_batch(f, &f->out);
}

/* The gauge rows of t against the gauge state (gauge.h). */
static void resolve_gauges(struct tally_flusher *f, struct tally_wtab *t)
{
	unsigned lost = tally_gauges_resolve(&f->gauges, t);

	if (lost != 0)
		fprintf(stderr, "tallyd: flusher: out of memory keeping %u gauges\n", lost);
}

static void merge_table(struct tally_flusher *f, const struct tally_wtab *t)
{
	for (uint32_t i = 0; i < tally_wtab_rows(t); i++) {
		const struct tally_row *r = tally_wtab_row(t, i);

		if (tally_wtab_merge(f->merge, t, r) == -ENOSPC) {
			/* Merge table full: what is merged goes out as its own batch. */
			f->ctr.v[TALLY_C_FLUSH_MERGE_FULL]++;
			write_merged(f);
			tally_wtab_merge(f->merge, t, r);
		}
	}
}

/* The table's ack lists join the batch that holds (the last of) its rows:
 * they go out once that batch, and so every batch before it, is durable. */
static void take_acks(struct tally_batch *b, struct tally_wtab *t)
{
	struct tally_acklist *l = t->acks;

	if (l == NULL)
		return;
	while (l->next != NULL)
		l = l->next;
	l->next = b->acks;
	b->acks = t->acks;
	t->acks = NULL;
}

/*
 * One sealed table. One worker: its rows are a batch of their own (a worker
 * that sealed twice in one tick gives two batches, each with unique rows).
 * Several: merged, so a key seen by many workers is one upsert. Either way the
 * table goes back to its worker before anything is written.
 */
static void take_table(struct tally_flusher *f, struct tally_worker *w, struct tally_wtab *t)
{
	bool alone = f->merge == NULL;
	int r = 0;

	f->ctr.v[TALLY_C_STATSD_SKETCH_FULL] += tally_wtab_settle(t);
	resolve_gauges(f, t);
	if (alone)
		r = tally_batch_add_wtab(&f->out, t);
	else
		merge_table(f, t);
	if (r != 0)
		tally_log(LOG_ERR, "tallyd: flusher: out of memory copying %u rows",
			tally_wtab_rows(t));
	take_acks(&f->out, t);
	tally_wtab_reset(t);
	ck_ring_enqueue_spsc(&w->spare, w->spare_buf, t);
	if (alone)
		write_batch(f, &f->out);
}

/* Take every table the workers have sealed so far; true if any had rows. */
static bool drain(struct tally_flusher *f)
{
	bool any = false;

	for (unsigned i = 0; i < f->nworkers; i++) {
		struct tally_worker *w = &f->workers[i];
		struct tally_wtab *t;

		while (ck_ring_dequeue_spsc(&w->sealed, w->sealed_buf, &t)) {
			any |= tally_wtab_rows(t) > 0;
			take_table(f, w, t);
		}
	}
	return any;
}

static unsigned answered(const struct tally_flusher *f)
{
	unsigned n = 0;

	for (unsigned i = 0; i < f->nworkers; i++) {
		struct tally_worker *w = &f->workers[i];

		n += ck_pr_load_64(&w->seal_seen) == f->tick || ck_pr_load_8((uint8_t *)&w->done);
	}
	return n;
}

/* Ask every live worker to seal and wait until each answered, is done, or
 * stalls, collecting meanwhile (that is what frees a worker without spares). */
static bool request_seal(struct tally_flusher *f)
{
	uint64_t deadline = tally_mono_ms() + (f->seal_wait_ms ? f->seal_wait_ms : SEAL_WAIT_MS);
	bool any = false;
	unsigned n;

	f->tick++;
	for (unsigned i = 0; i < f->nworkers; i++)
		ck_pr_store_64(&f->workers[i].seal_req, f->tick);
	for (;;) {
		any |= drain(f);
		n = answered(f);
		if (n == f->nworkers || tally_mono_ms() >= deadline)
			break;
		beat(f);
		usleep(100);
	}
	any |= drain(f);
	f->ctr.v[TALLY_C_SEAL_TIMEOUTS] += f->nworkers - n;
	return any;
}

static void flush_tick(struct tally_flusher *f)
{
	uint64_t t0 = tally_mono_us();

	if (!request_seal(f) && (f->merge == NULL || tally_wtab_rows(f->merge) == 0))
		f->ctr.v[TALLY_C_FLUSH_EMPTY]++;
	if (f->merge != NULL)
		write_merged(f);
	tally_hist_observe(&f->flush_hist, tally_mono_us() - t0);
}

/* Sleep until the next tick, an explicit flush or stop; tables sealed early
 * (7/8 full) are taken meanwhile so their workers get their spares back. */
static void wait_tick(struct tally_flusher *f, uint64_t next)
{
	while (tally_mono_ms() < next && !ck_pr_load_int(&f->flush_now) && !ck_pr_load_int(&f->stop)) {
		drain(f);
		beat(f);
		usleep(1000);
	}
	ck_pr_store_int(&f->flush_now, 0);
}

static void *flusher_main(void *arg)
{
	struct tally_flusher *f = arg;
	/* interval_ms: tallyctl config set changes it from the control thread */
	uint64_t next = tally_mono_ms() + ck_pr_load_64(&f->interval_ms);

	/* Batches can wait; packets cannot. On a CPU it shares (the main lcore's,
	 * and on small machines a generator's), the flusher gives way: it catches
	 * up when the CPU is free, and worker tables hold the rows meanwhile. */
	setpriority(PRIO_PROCESS, (id_t)gettid(), FLUSH_NICE);

	while (!ck_pr_load_int(&f->stop)) {
		wait_tick(f, next);
		next = tally_mono_ms() + ck_pr_load_64(&f->interval_ms);
		if (ck_pr_load_int(&f->stop))
			break;
		flush_tick(f);
		ck_pr_store_64(&f->tick_done, f->tick);
	}
	/* Workers are done: their final tables are on the sealed rings. */
	drain(f);
	if (f->merge != NULL)
		write_merged(f);
	tally_writer_stop(f->writer);
	return NULL;
}

int tally_flusher_start(struct tally_flusher *f, uint32_t merge_rows, char *err,
			size_t errlen)
{
	int r;

	tally_batch_init(&f->out, f->appliance, f->window_ms);
	uint32_t slabs = f->merge_sketch_rows ? f->merge_sketch_rows
					      : TALLY_SKETCH_ROWS_DEFAULT * f->nworkers;

	f->merge = f->nworkers > 1 ? tally_wtab_create_ext(merge_rows, slabs, TALLY_NODE_ANY)
				   : NULL;
	if (f->nworkers > 1 && f->merge == NULL) {
		snprintf(err, errlen, "flusher: cannot allocate a merge table of %u rows: %s",
			 merge_rows, strerror(errno));
		return -errno;
	}
	r = pthread_create(&f->thread, NULL, flusher_main, f);
	if (r != 0) {
		snprintf(err, errlen, "flusher: cannot start thread: %s", strerror(r));
		return -r;
	}
	pthread_setname_np(f->thread, "tally-flush");
	return 0;
}

void tally_flusher_stop(struct tally_flusher *f)
{
	ck_pr_store_int(&f->stop, 1);
}

bool tally_flusher_done(struct tally_flusher *f)
{
	if (f->joined)
		return true;
	if (pthread_tryjoin_np(f->thread, NULL) != 0)
		return false;
	f->joined = true;
	tally_wtab_destroy(f->merge);
	f->merge = NULL;
	tally_batch_free(&f->out);
	tally_gauges_free(&f->gauges);
	return true;
}
