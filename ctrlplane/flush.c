/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Flusher: seal, merge, write. The merge visits workers in id order, so "last"
 * of a key seen by several workers within one flush is the highest-numbered
 * worker's value (documented in the README). A batch that fails to write is kept
 * and retried with backoff under the same seq, so a retry of a batch the sink
 * did commit is skipped by the sink, never applied twice.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#include <ck_pr.h>

#include "flush.h"
#include "window.h"

#define SEAL_WAIT_MS 2000 /* a worker that does not answer by then is stalled */
#define FLUSH_NICE 10

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void account(struct tally_flusher *f, const struct tally_wtab *t, int r)
{
	uint64_t events = 0;

	if (r == TALLY_SINK_SKIPPED) {
		f->ctr.v[TALLY_C_SINK_SKIPPED]++;
		return;
	}
	for (uint32_t i = 0; i < tally_wtab_rows(t); i++)
		events += tally_wtab_row(t, i)->count;
	f->ctr.v[TALLY_C_FLUSH_BATCHES]++;
	f->ctr.v[TALLY_C_FLUSH_ROWS] += tally_wtab_rows(t);
	f->ctr.v[TALLY_C_FLUSH_EVENTS] += events;
}

/* Write t as one batch; retry until it lands or give_up is set. */
static void write_batch(struct tally_flusher *f, const struct tally_wtab *t)
{
	struct tally_batch b = {f->appliance, f->seq, f->window_ms, t, 0};
	unsigned backoff_ms = 100;

	if (tally_wtab_rows(t) == 0)
		return;
	ck_pr_store_64(&f->ctr.v[TALLY_C_FLUSH_PENDING], 1);
	for (;;) {
		b.now_ms = wall_ms();
		int r = f->sink->ops->write(f->sink, &b);

		if (r >= 0) {
			account(f, t, r);
			break;
		}
		f->ctr.v[TALLY_C_SINK_ERRORS]++;
		snprintf(f->last_err, sizeof(f->last_err), "%s", f->sink->err);
		fprintf(stderr, "tallyd: flush batch %llu (%u rows) failed: %s; retrying in %u ms\n",
			(unsigned long long)f->seq, tally_wtab_rows(t), f->sink->err, backoff_ms);
		if (ck_pr_load_int(&f->give_up)) {
			f->rows_lost += tally_wtab_rows(t);
			break;
		}
		usleep(backoff_ms * 1000);
		backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
	}
	f->seq++;
	ck_pr_store_64(&f->ctr.v[TALLY_C_FLUSH_PENDING], 0);
}

static void merge_table(struct tally_flusher *f, struct tally_wtab *t)
{
	for (uint32_t i = 0; i < tally_wtab_rows(t); i++) {
		const struct tally_row *r = tally_wtab_row(t, i);

		if (tally_wtab_merge(f->merge, t, r) == -ENOSPC) {
			/* Merge table full: what is merged goes out as its own batch. */
			write_batch(f, f->merge);
			tally_wtab_reset(f->merge);
			tally_wtab_merge(f->merge, t, r);
		}
	}
}

static void give_back(struct tally_worker *w, struct tally_wtab *t)
{
	tally_wtab_reset(t);
	ck_ring_enqueue_spsc(&w->spare, w->spare_buf, t);
}

/* Ask every live worker to seal; wait until each answered, is done, or stalls. */
static void request_seal(struct tally_flusher *f)
{
	uint64_t deadline;
	unsigned answered;

	f->tick++;
	for (unsigned i = 0; i < f->nworkers; i++)
		ck_pr_store_64(&f->workers[i].seal_req, f->tick);
	deadline = mono_ms() + SEAL_WAIT_MS;
	do {
		answered = 0;
		for (unsigned i = 0; i < f->nworkers; i++) {
			struct tally_worker *w = &f->workers[i];

			answered += ck_pr_load_64(&w->seal_seen) == f->tick ||
				    ck_pr_load_8((uint8_t *)&w->done);
		}
		if (answered == f->nworkers)
			return;
		usleep(100);
	} while (mono_ms() < deadline);
	f->ctr.v[TALLY_C_SEAL_TIMEOUTS] += f->nworkers - answered;
}

/*
 * Collect every sealed table in worker order. One worker: each table is a batch
 * of its own, written straight from the worker's table (no merge pass, no
 * merge table) and given back after. Several: merged into one batch, so a key
 * seen by many workers is one upsert, and the tables go back at once.
 */
static void collect(struct tally_flusher *f)
{
	bool any = false;

	for (unsigned i = 0; i < f->nworkers; i++) {
		struct tally_worker *w = &f->workers[i];
		struct tally_wtab *t;

		while (ck_ring_dequeue_spsc(&w->sealed, w->sealed_buf, &t)) {
			any |= tally_wtab_rows(t) > 0;
			if (f->merge == NULL)
				write_batch(f, t);
			else
				merge_table(f, t);
			give_back(w, t);
		}
	}
	if (!any)
		f->ctr.v[TALLY_C_FLUSH_EMPTY]++;
	if (f->merge != NULL) {
		write_batch(f, f->merge);
		tally_wtab_reset(f->merge);
	}
}

/* Sleep until the next tick, an explicit flush or stop. */
static void wait_tick(struct tally_flusher *f, uint64_t next)
{
	while (mono_ms() < next && !ck_pr_load_int(&f->flush_now) && !ck_pr_load_int(&f->stop))
		usleep(1000);
	ck_pr_store_int(&f->flush_now, 0);
}

static void *flusher_main(void *arg)
{
	struct tally_flusher *f = arg;
	uint64_t next = mono_ms() + f->interval_ms;

	/* Batches can wait; packets cannot. On a CPU it shares (the main lcore's,
	 * and on small machines a generator's), the flusher gives way: it catches
	 * up when the CPU is free, and worker tables hold the rows meanwhile. */
	setpriority(PRIO_PROCESS, (id_t)gettid(), FLUSH_NICE);

	while (!ck_pr_load_int(&f->stop)) {
		wait_tick(f, next);
		next = mono_ms() + f->interval_ms;
		if (ck_pr_load_int(&f->stop))
			break;
		request_seal(f);
		collect(f);
	}
	/* Workers are done: their final tables are on the sealed rings. */
	collect(f);
	return NULL;
}

int tally_flusher_start(struct tally_flusher *f, uint32_t merge_rows, char *err,
			size_t errlen)
{
	int64_t last = f->sink->ops->last_seq(f->sink, f->appliance);
	int r;

	if (last < 0) {
		snprintf(err, errlen, "sink %s: cannot read the last batch of \"%s\": %s",
			 f->sink->ops->name, f->appliance, f->sink->err);
		return (int)last;
	}
	f->seq = (uint64_t)last + 1;
	f->merge = f->nworkers > 1 ? tally_wtab_create(merge_rows) : NULL;
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
	if (pthread_tryjoin_np(f->thread, NULL) != 0)
		return false;
	tally_wtab_destroy(f->merge);
	f->merge = NULL;
	return true;
}
