/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The flusher (ctrlplane/flush.c) against plain-thread workers and an
 * in-memory sink behind the sink writer: a worker whose spares are all sealed
 * is answered at once, not after the 2 s stall timeout; a merge table that
 * fills mid-flush sends what it holds as a batch of its own and loses nothing;
 * a sink that is down costs nothing (spool, then replay, exactly once); a
 * batch neither the sink nor the spool takes is given up only when told, with
 * the loss counted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <ck_pr.h>

#include "flush.h"
#include "window.h"

/* In-memory sink: totals of count and sum, batches seen, failures on demand. */
struct mem_sink {
	struct tally_sink base;
	uint64_t events, rows, batches;
	double sum;
	int fail_always;
	int lose_answers; /* writes that commit but time out, like a frozen server */
	uint64_t seen[64]; /* seqs applied, to catch a double apply */
	unsigned nseen;
};

static int mem_write(struct tally_sink *s, const struct tally_batch *b)
{
	struct mem_sink *m = (struct mem_sink *)s;

	if (m->fail_always) {
		snprintf(s->err, sizeof(s->err), "mem sink: down");
		return -ECONNREFUSED;
	}
	for (unsigned i = 0; i < m->nseen; i++)
		if (m->seen[i] == b->seq)
			return TALLY_SINK_SKIPPED;
	if (m->nseen < 64)
		m->seen[m->nseen++] = b->seq;
	m->batches++;
	m->rows += b->nrows;
	m->events += tally_batch_events(b);
	for (uint32_t i = 0; i < b->nrows; i++)
		m->sum += b->rows[i].sum;
	if (m->lose_answers > 0) {
		m->lose_answers--;
		snprintf(s->err, sizeof(s->err), "mem sink: no answer");
		return -ETIMEDOUT;
	}
	return TALLY_SINK_APPLIED;
}

static int64_t mem_last_seq(struct tally_sink *s, const char *app)
{
	(void)s, (void)app;
	return 0;
}

static void mem_close(struct tally_sink *s) { (void)s; }

static const struct tally_sink_ops mem_ops = {mem_write, mem_last_seq, mem_close};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A worker as tally_worker_init makes one, without DPDK or event buffers. */
static struct tally_worker *workers_make(unsigned n, uint32_t rows)
{
	struct tally_worker *ws = aligned_alloc(64, sizeof(*ws) * n);

	memset(ws, 0, sizeof(*ws) * n);
	for (unsigned k = 0; k < n; k++) {
		struct tally_worker *w = &ws[k];

		w->id = k;
		ck_ring_init(&w->sealed, TALLY_RING_SIZE);
		ck_ring_init(&w->spare, TALLY_RING_SIZE);
		for (unsigned i = 0; i < TALLY_TABLES_PER_WORKER; i++) {
			w->tables[i] = tally_wtab_create(rows);
			assert_non_null(w->tables[i]);
			if (i > 0)
				ck_ring_enqueue_spsc(&w->spare, w->spare_buf, w->tables[i]);
		}
		w->cur = w->tables[0];
	}
	return ws;
}

static void workers_free(struct tally_worker *ws, unsigned n)
{
	for (unsigned k = 0; k < n; k++)
		for (unsigned i = 0; i < TALLY_TABLES_PER_WORKER; i++)
			tally_wtab_destroy(ws[k].tables[i]);
	free(ws);
}

/* Add n rows of distinct keys (tag names the worker) to the worker's table. */
static void fill(struct tally_worker *w, unsigned tag, unsigned from, unsigned n)
{
	for (unsigned i = from; i < from + n; i++) {
		char key[256];
		int len = snprintf(key, sizeof(key), "w%u.k%u", tag, i);
		uint64_t h = tally_row_hash(tally_key_hash((const uint8_t *)key, (uint32_t)len), 0);

		assert_true(tally_wtab_add(w->cur, h, (const uint8_t *)key, (uint8_t)len, 0, 1) >= 0);
	}
}

static struct tally_sink *open_mem(void *arg, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	return arg;
}

static struct tally_writer wr;
static char spool_dir[64];

/* The sink writer in front of the in-memory sink, spooling in a fresh dir. */
static void writer_run(struct mem_sink *m, uint64_t spool_bytes)
{
	struct tally_writer_opts o = {spool_dir, spool_bytes, 0, 3, 1, 5, 20};
	char err[256];

	snprintf(spool_dir, sizeof(spool_dir), "/tmp/tally-test-flush-%d", getpid());
	assert_int_equal(system("rm -rf /tmp/tally-test-flush-*"), 0);
	m->base.ops = &mem_ops;
	m->base.name = "mem";
	tally_writer_init(&wr, &o);
	assert_int_equal(tally_writer_add_lane(&wr, "mem", open_mem, &m->base, err, sizeof(err)), 0);
	assert_int_equal(tally_writer_start(&wr, "test", err, sizeof(err)), 0);
}

static void flusher_run(struct tally_flusher *f, struct mem_sink *m, struct tally_worker *ws,
			unsigned n, uint32_t merge_rows, uint64_t interval_ms)
{
	char err[256];

	memset(f, 0, sizeof(*f));
	writer_run(m, 1 << 20);
	f->workers = ws;
	f->nworkers = n;
	f->writer = &wr;
	f->appliance = "test";
	f->window_ms = 10000;
	f->interval_ms = interval_ms;
	assert_int_equal(tally_flusher_start(f, merge_rows, err, sizeof(err)), 0);
}

static void flusher_end(struct tally_flusher *f, struct tally_worker *ws, unsigned n)
{
	uint64_t t0 = mono_ms();

	for (unsigned k = 0; k < n; k++)
		tally_worker_seal_last(&ws[k]);
	tally_flusher_stop(f);
	while (!tally_flusher_done(f) || !tally_writer_done(&wr)) {
		assert_true(mono_ms() - t0 < 10000);
		usleep(1000);
	}
	tally_writer_fini(&wr);
}

/*
 * The stall: two early seals (7/8 full) leave the worker no spare, so it
 * cannot answer the next seal request until the flusher collects the two
 * sealed tables. The flusher collects while it waits: the request is answered
 * within a few ticks, never after the 2 s stall timeout.
 */
static void test_seal_never_waits_on_itself(void **st)
{
	const uint32_t rows = 1024, near = rows / 8 * 7;
	struct tally_worker *w = workers_make(1, rows);
	struct tally_flusher f;
	struct mem_sink m = {0};
	uint64_t t0, waited;

	(void)st;
	for (unsigned s = 0; s < 2; s++) { /* two early seals: both spares used */
		fill(w, 0, s * near, near);
		tally_worker_maybe_seal(w);
	}
	fill(w, 0, 2 * near, near);
	tally_worker_maybe_seal(w); /* near full, no spare: kept */
	assert_int_equal(w->ctr.v[TALLY_C_TABLES_SEALED], 2);
	flusher_run(&f, &m, w, 1, 0, 20);
	while (ck_pr_load_64(&w->seal_req) == 0)
		usleep(100);
	t0 = mono_ms();
	while (ck_pr_load_64(&w->seal_seen) != ck_pr_load_64(&w->seal_req)) {
		tally_worker_maybe_seal(w); /* the worker between bursts */
		assert_true(mono_ms() - t0 < 1500);
		usleep(100);
	}
	waited = mono_ms() - t0;
	print_message("seal answered %llu ms after the request\n", (unsigned long long)waited);
	assert_true(waited < 500);
	flusher_end(&f, w, 1);
	assert_int_equal(f.ctr.v[TALLY_C_SEAL_TIMEOUTS], 0);
	assert_int_equal(m.events, 3 * near); /* every row, once */
	assert_int_equal(m.rows, 3 * near);
	workers_free(w, 1);
}

/* Two workers of 1000 distinct rows each into a merge table of 1024: it fills
 * mid-flush, the merged part goes out as its own batch, and nothing is lost. */
static void test_merge_overflow(void **st)
{
	struct tally_worker *ws = workers_make(2, 2048);
	struct tally_flusher f;
	struct mem_sink m = {0};

	(void)st;
	fill(&ws[0], 0, 0, 1000);
	fill(&ws[1], 1, 0, 1000);
	fill(&ws[1], 0, 0, 10); /* ten keys both workers saw: merged into one row each */
	flusher_run(&f, &m, ws, 2, 1024, 3600000);
	flusher_end(&f, ws, 2);
	assert_true(f.ctr.v[TALLY_C_FLUSH_MERGE_FULL] >= 1);
	assert_true(m.batches >= 2);
	assert_int_equal(m.events, 2010);
	assert_int_equal(wr.ctr.v[TALLY_C_FLUSH_EVENTS], 2010);
	assert_int_equal(wr.ctr.v[TALLY_C_FLUSH_ROWS_LOST], 0);
	workers_free(ws, 2);
}

/* A sink that is down: batches go to the spool, nothing is lost; once it is
 * back the spool replays into it, each batch exactly once. */
static void test_sink_down_spools_then_replays(void **st)
{
	struct tally_worker *w = workers_make(1, 1024);
	struct tally_flusher f;
	struct mem_sink m = {.fail_always = 1};
	uint64_t t0;

	(void)st;
	flusher_run(&f, &m, w, 1, 0, 10);
	for (unsigned round = 0; round < 5; round++) {
		fill(w, round, 0, 100);
		t0 = mono_ms();
		while (tally_wtab_rows(w->cur) > 0) { /* until the flusher took it */
			tally_worker_maybe_seal(w);
			assert_true(mono_ms() - t0 < 5000);
			usleep(1000);
		}
	}
	t0 = mono_ms();
	while (ck_pr_load_64(&wr.ctr.v[TALLY_C_SPOOL_APPENDED]) < 5) {
		assert_true(mono_ms() - t0 < 5000);
		usleep(1000);
	}
	assert_int_equal(m.events, 0);
	ck_pr_store_int(&m.fail_always, 0); /* the sink is back */
	t0 = mono_ms();
	while (ck_pr_load_64(&wr.ctr.v[TALLY_C_SPOOL_REPLAYED]) < 5) {
		assert_true(mono_ms() - t0 < 10000);
		usleep(1000);
	}
	flusher_end(&f, w, 1);
	assert_int_equal(m.events, 500); /* every event, once */
	assert_int_equal(m.batches, 5);
	assert_int_equal(wr.ctr.v[TALLY_C_FLUSH_ROWS_LOST], 0);
	workers_free(w, 1);
}

/* The sink commits but its answer is lost (a server frozen past the call's
 * timeout): the batch is spooled, its replay is skipped by seq, and the events
 * still count as committed, once: flush_events == events, as tallyctl shows. */
static void test_lost_answer_counts_once(void **st)
{
	struct tally_worker *w = workers_make(1, 1024);
	struct tally_flusher f;
	struct mem_sink m = {.lose_answers = 2};
	uint64_t t0;

	(void)st;
	flusher_run(&f, &m, w, 1, 0, 10);
	for (unsigned round = 0; round < 4; round++) {
		fill(w, round, 0, 100);
		t0 = mono_ms();
		while (tally_wtab_rows(w->cur) > 0) {
			tally_worker_maybe_seal(w);
			assert_true(mono_ms() - t0 < 5000);
			usleep(1000);
		}
	}
	flusher_end(&f, w, 1);
	assert_int_equal(m.events, 400);
	assert_int_equal(m.batches, 4);
	assert_true(wr.ctr.v[TALLY_C_SPOOL_APPENDED] >= 1);
	assert_true(wr.ctr.v[TALLY_C_SINK_SKIPPED] >= 1);
	assert_int_equal(wr.ctr.v[TALLY_C_FLUSH_EVENTS], 400);
	assert_int_equal(wr.ctr.v[TALLY_C_FLUSH_BATCHES], 4);
	workers_free(w, 1);
}

/* Neither the sink nor the spool (too small for one batch) takes it: the
 * writer keeps the batch and retries; only when told to give up at exit is
 * the loss counted, rows and events. */
static void test_give_up_counts_the_loss(void **st)
{
	struct tally_worker *w = workers_make(1, 1024);
	struct tally_flusher f;
	struct mem_sink m = {.fail_always = 1};
	uint64_t t0;

	(void)st;
	memset(&f, 0, sizeof(f));
	writer_run(&m, 64); /* 64 bytes: no batch fits */
	f.workers = w;
	f.nworkers = 1;
	f.writer = &wr;
	f.appliance = "test";
	f.window_ms = 10000;
	f.interval_ms = 10;
	{
		char err[256];

		assert_int_equal(tally_flusher_start(&f, 0, err, sizeof(err)), 0);
	}
	fill(w, 0, 0, 100);
	t0 = mono_ms();
	while (ck_pr_load_64(&wr.ctr.v[TALLY_C_SPOOL_ERRORS]) < 2) {
		tally_worker_maybe_seal(w);
		assert_true(mono_ms() - t0 < 5000);
		usleep(1000);
	}
	assert_int_equal(wr.ctr.v[TALLY_C_FLUSH_ROWS_LOST], 0); /* still held and retried */
	ck_pr_store_int(&wr.give_up, 1);
	flusher_end(&f, w, 1);
	assert_int_equal(wr.ctr.v[TALLY_C_FLUSH_ROWS_LOST], 100);
	assert_int_equal(wr.ctr.v[TALLY_C_FLUSH_EVENTS_LOST], 100);
	assert_int_equal(wr.ctr.v[TALLY_C_FLUSH_EVENTS], 0);
	workers_free(w, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seal_never_waits_on_itself),
		cmocka_unit_test(test_merge_overflow),
		cmocka_unit_test(test_sink_down_spools_then_replays),
		cmocka_unit_test(test_give_up_counts_the_loss),
		cmocka_unit_test(test_lost_answer_counts_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
