/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * StatsD timers, sets and gauges from text to SQLite, through the real parser,
 * window tables, flusher (two workers, ten flushes, merged) and sink writer:
 * - tally_counts holds the exact count, sum, min and max of each timer and set;
 * - tally_sketches holds, for the timer, exactly the blob of one sketch of all
 *   its values (merges across workers and flushes lose nothing), percentiles
 *   within 1% of the exact ones computed here; for the set, the HyperLogLog of
 *   all members and a distinct estimate within 3 x 0.81%;
 * - gauges carry across flushes and windows: absolute lines set, relative
 *   lines move, on either worker; the state reads back from the sink as a
 *   restarted tallyd would load it;
 * - a batch with sketches survives its serialized (spool) form, and a
 *   version 1 record (before sketches) still decodes.
 */
#include <math.h>
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
#include <sqlite3.h>

#include "flush.h"
#include "gauge.h"
#include "parse_statsd.h"
#include "sink.h"
#include "sketch.h"
#include "window.h"

#define TEST_SEED 99
#include "test_rng.h"

#define FLUSHES 10
#define TIMERS_PER_FLUSH 5000 /* per worker */
#define MEMBERS_PER_FLUSH 3000

static char dir[64], db[96];
static struct tally_writer wr;

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct tally_worker *workers_make(unsigned n)
{
	struct tally_worker *ws = aligned_alloc(64, sizeof(*ws) * n);

	memset(ws, 0, sizeof(*ws) * n);
	for (unsigned k = 0; k < n; k++) {
		struct tally_worker *w = &ws[k];

		w->id = k;
		ck_ring_init(&w->sealed, TALLY_RING_SIZE);
		ck_ring_init(&w->spare, TALLY_RING_SIZE);
		for (unsigned i = 0; i < TALLY_TABLES_PER_WORKER; i++) {
			w->tables[i] = tally_wtab_create_ext(4096, 16, TALLY_NODE_ANY);
			assert_non_null(w->tables[i]);
			/* worker 0 defers its sketch values as tallyd's do, to a list
			 * shorter than a flush's 8,000, so the flusher settles a table
			 * whose later values went straight to the slabs; worker 1
			 * folds them itself (sketch_values = 0) */
			if (k == 0)
				assert_int_equal(tally_wtab_defer_sketches(w->tables[i], 4096,
									   TALLY_NODE_ANY), 0);
			if (i > 0)
				ck_ring_enqueue_spsc(&w->spare, w->spare_buf, w->tables[i]);
		}
		w->cur = w->tables[0];
	}
	return ws;
}

/* Text through the parser into the worker's table, as the worker's apply stage does. */
static void feed(struct tally_worker *w, const char *text, int64_t win)
{
	static struct tally_event ev[TALLY_STATSD_MAX_EVENTS(65536)];
	static uint8_t arena[65536];
	uint64_t ctr[TALLY_C_MAX] = {0};
	struct tally_evbuf b = {ev, 0, TALLY_STATSD_MAX_EVENTS(65536), arena, 0, sizeof(arena)};
	int n = tally_statsd_parse((const uint8_t *)text, (uint32_t)strlen(text), &b, ctr);

	assert_true(n > 0);
	assert_int_equal(ctr[TALLY_C_STATSD_LINES], (uint64_t)n);
	for (int i = 0; i < n; i++) {
		struct tally_event *e = &ev[i];
		uint64_t h = tally_row_hash(tally_key_hash(e->key, e->key_len), win);
		uint64_t c = tally_wtab_slot(w->cur, h);
		bool missed = false;

		if (e->kind == TALLY_EV_PLAIN)
			assert_true(tally_wtab_add_at(w->cur, h, c, e->key, e->key_len, win,
						      e->value) >= 0);
		else
			assert_true(tally_wtab_add_kind(w->cur, h, c, e->key, e->key_len, win, e,
							&missed) >= 0);
		assert_false(missed);
	}
}

static struct tally_sink *open_sqlite(void *arg, char *err, size_t errlen)
{
	(void)arg;
	return tally_sink_sqlite_open(db, 16, err, errlen);
}

static void start(struct tally_flusher *f, struct tally_worker *ws)
{
	struct tally_writer_opts o = {dir, 1 << 24, 0, 3, 1, 5, 20};
	char err[256];

	snprintf(dir, sizeof(dir), "/tmp/tally-test-sflow-%d", getpid());
	snprintf(db, sizeof(db), "%s/t.db", dir);
	snprintf(err, sizeof(err), "rm -rf %s && mkdir -p %s", dir, dir);
	assert_int_equal(system(err), 0);
	tally_writer_init(&wr, &o);
	assert_int_equal(tally_writer_add_lane(&wr, "sqlite", open_sqlite, NULL, err, sizeof(err)),
			 0);
	assert_int_equal(tally_writer_start(&wr, "test", err, sizeof(err)), 0);
	memset(f, 0, sizeof(*f));
	f->workers = ws;
	f->nworkers = 2;
	f->writer = &wr;
	f->appliance = "test";
	f->window_ms = 10000;
	f->interval_ms = 3600000; /* flushes only when told */
	f->merge_sketch_rows = 32;
	assert_int_equal(tally_flusher_start(f, 8192, err, sizeof(err)), 0);
}

/* One flush: both workers answer the seal request, as between bursts. */
static void flush(struct tally_flusher *f, struct tally_worker *ws)
{
	uint64_t t0 = mono_ms(), req = ck_pr_load_64(&ws[0].seal_req);

	ck_pr_store_int(&f->flush_now, 1);
	while (ck_pr_load_64(&ws[0].seal_req) == req)
		usleep(100);
	for (;;) {
		bool all = true;

		for (unsigned k = 0; k < 2; k++) {
			tally_worker_maybe_seal(&ws[k]);
			all &= ck_pr_load_64(&ws[k].seal_seen) == ck_pr_load_64(&ws[k].seal_req);
		}
		if (all)
			break;
		assert_true(mono_ms() - t0 < 10000);
		usleep(100);
	}
	/* the flusher has taken both tables: they are spares again */
	while (ck_ring_size(&ws[0].spare) != TALLY_TABLES_PER_WORKER - 1 ||
	       ck_ring_size(&ws[1].spare) != TALLY_TABLES_PER_WORKER - 1) {
		assert_true(mono_ms() - t0 < 10000);
		usleep(100);
	}
}

static void stop(struct tally_flusher *f, struct tally_worker *ws)
{
	uint64_t t0 = mono_ms();

	for (unsigned k = 0; k < 2; k++)
		tally_worker_seal_last(&ws[k]);
	tally_flusher_stop(f);
	while (!tally_flusher_done(f) || !tally_writer_done(&wr)) {
		assert_true(mono_ms() - t0 < 20000);
		usleep(1000);
	}
	tally_writer_fini(&wr);
	for (unsigned k = 0; k < 2; k++)
		for (unsigned i = 0; i < TALLY_TABLES_PER_WORKER; i++)
			tally_wtab_destroy(ws[k].tables[i]);
	free(ws);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Everything the test sent, to compare with. */
struct truth {
	double *t;
	size_t nt;
	double sum, min, max;
	struct tally_sketch dds, hll;
	uint64_t set_lines;
};

/* This flush's timer lines for one worker: integer microseconds as ms, log-normal. */
static void timers(struct truth *tr, struct tally_worker *w, char *buf)
{
	size_t n = 0;

	for (int i = 0; i < TIMERS_PER_FLUSH; i++) {
		double u1 = ((double)(rnd() >> 11) + 0.5) / 9007199254740992.0;
		double u2 = ((double)(rnd() >> 11) + 0.5) / 9007199254740992.0;
		double v = round(1000 * exp(3 + sqrt(-2 * log(u1)) * cos(2 * M_PI * u2))) / 1000;

		n += (size_t)sprintf(buf + n, "api.lat:%.3f|ms|@0.5|#b:2,a:1\n", v);
		tr->t[tr->nt++] = v;
		tr->sum += v;
		tr->min = v < tr->min ? v : tr->min;
		tr->max = v > tr->max ? v : tr->max;
		tally_dds_add(&tr->dds, v);
		if (n > 60000) {
			feed(w, buf, 0);
			n = 0;
		}
	}
	if (n > 0)
		feed(w, buf, 0);
}

static void members(struct truth *tr, struct tally_worker *w, char *buf, int flush)
{
	size_t n = 0;

	for (int i = 0; i < MEMBERS_PER_FLUSH; i++) {
		/* half the members are ids 0..1499 again: distinct = FLUSHES * 1500 */
		unsigned id = i % 2 ? (unsigned)(flush * 1500 + i / 2) : (unsigned)(i / 2);
		char m[32];
		int len = snprintf(m, sizeof(m), "user-%u", id);

		n += (size_t)sprintf(buf + n, "users:%s|s|#env:prod\n", m);
		tally_hll_add(&tr->hll, XXH3_64bits(m, (size_t)len));
		tr->set_lines++;
		if (n > 60000) {
			feed(w, buf, 0);
			n = 0;
		}
	}
	if (n > 0)
		feed(w, buf, 0);
}

static sqlite3_stmt *query(sqlite3 *h, const char *sql)
{
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	return st;
}

static void check_timer(sqlite3 *h, struct truth *tr)
{
	static uint8_t blob[TALLY_SKETCH_BLOB_MAX];
	const double qs[] = {0.5, 0.9, 0.95, 0.99, 0.999};
	sqlite3_stmt *st = query(h, "SELECT count, sum, min, max FROM tally_counts "
				    "WHERE key = 'api.lat|ms|#a:1,b:2'");
	size_t n;

	assert_int_equal(sqlite3_column_int64(st, 0), tr->nt);
	assert_true(fabs(sqlite3_column_double(st, 1) - tr->sum) <= 1e-9 * tr->sum);
	assert_true(sqlite3_column_double(st, 2) == tr->min);
	assert_true(sqlite3_column_double(st, 3) == tr->max);
	sqlite3_finalize(st);
	st = query(h, "SELECT kind, blob, p50, p90, p95, p99, p999 FROM tally_sketches "
		      "WHERE key = 'api.lat|ms|#a:1,b:2'");
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "ddsketch");
	n = tally_sketch_encode(&tr->dds, blob);
	assert_int_equal((size_t)sqlite3_column_bytes(st, 1), n);
	assert_memory_equal(sqlite3_column_blob(st, 1), blob, n);
	qsort(tr->t, tr->nt, sizeof(double), cmp_d);
	for (int i = 0; i < 5; i++) {
		double exact = tr->t[(size_t)floor(qs[i] * (double)(tr->nt - 1))];
		double got = sqlite3_column_double(st, 2 + i);

		printf("# p%g: exact %.3f, stored %.3f\n", qs[i] * 100, exact, got);
		assert_true(fabs(got - exact) <= TALLY_DDS_ALPHA * 1.000001 * exact);
	}
	sqlite3_finalize(st);
}

static void check_set(sqlite3 *h, struct truth *tr)
{
	static uint8_t blob[TALLY_SKETCH_BLOB_MAX];
	const double distinct = FLUSHES * 1500; /* flush f adds ids f*1500.., 0.. repeat */
	sqlite3_stmt *st = query(h, "SELECT count, sum FROM tally_counts "
				    "WHERE key = 'users|s|#env:prod'");
	size_t n;
	double est;

	assert_int_equal(sqlite3_column_int64(st, 0), tr->set_lines);
	assert_true(sqlite3_column_double(st, 1) == (double)tr->set_lines);
	sqlite3_finalize(st);
	st = query(h, "SELECT kind, blob, distinct_estimate, p50 FROM tally_sketches "
		      "WHERE key = 'users|s|#env:prod'");
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "hll");
	n = tally_sketch_encode(&tr->hll, blob);
	assert_int_equal((size_t)sqlite3_column_bytes(st, 1), n);
	assert_memory_equal(sqlite3_column_blob(st, 1), blob, n);
	est = sqlite3_column_double(st, 2);
	printf("# set: %.0f distinct, estimate %.1f\n", distinct, est);
	assert_true(fabs(est - distinct) <= 3 * 0.0081 * distinct);
	assert_int_equal(sqlite3_column_type(st, 3), SQLITE_NULL);
	sqlite3_finalize(st);
}

/* Gauge lines per flush (worker 0, worker 1) and the value after each flush. */
static const struct {
	const char *w0, *w1;
	double after;
	int64_t win;
} gauge_steps[] = {
	{"q:10|g", NULL, 10, 0},
	{NULL, "q:+5|g", 15, 0},
	{"q:-3|g", "q:+1|g\nq:+1|g", 14, 10000}, /* windows start from the carried value */
	{NULL, "q:+2|g", 16, 20000},
	{"q:+1|g\nq:7|g\nq:-2|g", NULL, 5, 30000},
};

static void check_gauge(sqlite3 *h, double want, int64_t win)
{
	char sql[160];
	sqlite3_stmt *st;

	snprintf(sql, sizeof(sql), "SELECT last FROM tally_counts WHERE key = 'q|g' AND "
		 "window_start_ms = %lld", (long long)win);
	st = query(h, sql);
	assert_true(sqlite3_column_double(st, 0) == want);
	sqlite3_finalize(st);
}

static void test_flow(void **state)
{
	struct tally_worker *ws = workers_make(2);
	struct tally_flusher f;
	struct truth *tr = calloc(1, sizeof(*tr));
	char *buf = malloc(70000);
	struct tally_gauges g;
	char err[256];
	sqlite3 *h;
	double v;

	(void)state;
	tr->t = malloc(sizeof(double) * FLUSHES * 2 * TIMERS_PER_FLUSH);
	tr->min = INFINITY, tr->max = -INFINITY;
	tally_sketch_init(&tr->dds, TALLY_SK_DDS);
	tally_sketch_init(&tr->hll, TALLY_SK_HLL);
	start(&f, ws);
	for (int fl = 0; fl < FLUSHES; fl++) {
		for (unsigned k = 0; k < 2; k++) {
			timers(tr, &ws[k], buf);
			members(tr, &ws[k], buf, fl);
		}
		if (fl < (int)(sizeof(gauge_steps) / sizeof(gauge_steps[0]))) {
			if (gauge_steps[fl].w0)
				feed(&ws[0], gauge_steps[fl].w0, gauge_steps[fl].win);
			if (gauge_steps[fl].w1)
				feed(&ws[1], gauge_steps[fl].w1, gauge_steps[fl].win);
		}
		flush(&f, ws);
		if (fl < (int)(sizeof(gauge_steps) / sizeof(gauge_steps[0]))) {
			assert_true(tally_gauges_get(&f.gauges, (const uint8_t *)"q|g", 3, &v));
			assert_true(v == gauge_steps[fl].after);
		}
	}
	stop(&f, ws);
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	check_timer(h, tr);
	check_set(h, tr);
	check_gauge(h, 15, 0);
	check_gauge(h, 14, 10000);
	check_gauge(h, 16, 20000);
	check_gauge(h, 5, 30000);
	sqlite3_close(h);
	/* a restarted tallyd: the state from the sink */
	{
		struct tally_sink *s = tally_sink_sqlite_open(db, 16, err, sizeof(err));

		assert_non_null(s);
		tally_gauges_init(&g);
		assert_int_equal(s->ops->load_gauges(s, 10000, &g), 0);
		assert_int_equal(g.n, 1);
		assert_true(tally_gauges_get(&g, (const uint8_t *)"q|g", 3, &v) && v == 5);
		tally_gauges_free(&g);
		s->ops->close(s);
	}
	snprintf(err, sizeof(err), "rm -rf %s", dir);
	assert_int_equal(system(err), 0);
	free(tr->t), free(tr), free(buf);
}

/* A batch with sketch blobs through its serialized form; and a version 1 record. */
static void test_batch_blobs(void **state)
{
	static const uint8_t v1[] = {
		'T', 'L', 'B', '1', 1, 0, 1, 0, 'a', 7, 0, 0, 0, 0, 0, 0, 0,
		16, 39, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 'k', 0, 0, 0, 0, 0, 0, 0, 0,
		2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 64, 0, 0, 0, 0, 0, 0, 240, 63,
		0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 64};
	struct tally_batch b, d;
	struct tally_sketch *s = malloc(sizeof(*s));
	uint8_t blob[64], *enc;
	size_t n;

	(void)state;
	tally_batch_init(&b, "a", 10000);
	tally_batch_init(&d, "x", 0);
	tally_sketch_init(s, TALLY_SK_DDS);
	tally_dds_add(s, 12.5);
	n = tally_sketch_encode(s, blob);
	assert_int_equal(tally_batch_add(&b, (const uint8_t *)"t|ms", 4, 0, 1, 12.5, 12.5, 12.5,
					 12.5), 0);
	assert_int_equal(tally_batch_set_blob(&b, blob, (uint32_t)n), 0);
	assert_int_equal(tally_batch_add(&b, (const uint8_t *)"c|c", 3, 0, 2, 2, 1, 1, 1), 0);
	enc = malloc(tally_batch_encoded_size(&b));
	assert_int_equal(tally_batch_encode(&b, enc), tally_batch_encoded_size(&b));
	assert_int_equal(tally_batch_decode(&d, enc, tally_batch_encoded_size(&b)), 0);
	assert_int_equal(d.nrows, 2);
	assert_int_equal(d.rows[0].blob_len, n);
	assert_memory_equal(tally_batch_blob(&d, &d.rows[0]), blob, n);
	assert_int_equal(d.rows[1].blob_len, 0);
	for (size_t cut = 0; cut < tally_batch_encoded_size(&b); cut++)
		assert_int_equal(tally_batch_decode(&d, enc, cut), -EBADMSG);
	assert_int_equal(tally_batch_decode(&d, v1, sizeof(v1)), 0);
	assert_int_equal(d.nrows, 1);
	assert_int_equal(d.rows[0].count, 2);
	assert_true(d.rows[0].sum == 3 && d.rows[0].last == 2);
	assert_int_equal(d.rows[0].blob_len, 0);
	free(enc), free(s);
	tally_batch_free(&b), tally_batch_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flow),
		cmocka_unit_test(test_batch_blobs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
