/* SPDX-License-Identifier: BSD-3-Clause */
/* SQLite sink: schema and WAL, additive upserts, a replayed batch applied once,
 * window sizes kept apart, clear errors, rollback on failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "sink.h"
#include "window.h"

/* A batch of t's rows under (app, seq, window_ms). */
static struct tally_batch *mkbatch(struct tally_batch *b, const char *app, uint64_t seq,
				   int64_t window_ms, const struct tally_wtab *t)
{
	tally_batch_free(b);
	tally_batch_init(b, app, window_ms);
	b->seq = seq;
	b->now_ms = 1;
	assert_int_equal(tally_batch_add_wtab(b, t), 0);
	return b;
}

static char path[64];

static int setup(void **st)
{
	(void)st;
	snprintf(path, sizeof(path), "/tmp/tally-test-%d.db", getpid());
	unlink(path);
	return 0;
}

static int teardown(void **st)
{
	char p[80];

	(void)st;
	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
	return 0;
}

static void add(struct tally_wtab *t, const char *key, int64_t win, double v)
{
	uint64_t h = tally_row_hash(tally_key_hash((const uint8_t *)key, (uint32_t)strlen(key)), win);

	tally_wtab_add(t, h, (const uint8_t *)key, (uint8_t)strlen(key), win, v);
}

/* One value of the stored row as text ("count,sum,min,max,last"). */
static void row(const char *key, int64_t win, int64_t wms, char *out, size_t len)
{
	sqlite3 *db;
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count, sum, min, max, last FROM tally_counts "
					    "WHERE key = ? AND window_start_ms = ? AND window_ms = ?",
					    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, win);
	sqlite3_bind_int64(st, 3, wms);
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(out, len, "%lld,%g,%g,%g,%g", sqlite3_column_int64(st, 0),
			 sqlite3_column_double(st, 1), sqlite3_column_double(st, 2),
			 sqlite3_column_double(st, 3), sqlite3_column_double(st, 4));
	else
		snprintf(out, len, "none");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_upsert_idempotent(void **st)
{
	char err[256], r[128];
	struct tally_sink *s = tally_sink_sqlite_open(path, 16, err, sizeof(err));
	struct tally_wtab *t = tally_wtab_create(1024);
	struct tally_batch b = {0};

	(void)st;
	assert_non_null(s);
	assert_int_equal(s->ops->last_seq(s, "app1"), 0);
	add(t, "k", 0, 5);
	add(t, "k", 0, 1);
	add(t, "j", 10000, 2);
	mkbatch(&b, "app1", 1, 10000, t);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_APPLIED);
	row("k", 0, 10000, r, sizeof(r));
	assert_string_equal(r, "2,6,1,5,1");
	/* the same batch again (a retry after a lost commit reply): skipped whole */
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_SKIPPED);
	row("k", 0, 10000, r, sizeof(r));
	assert_string_equal(r, "2,6,1,5,1");
	/* the next batch adds; min/max combine; last is taken */
	tally_wtab_reset(t);
	add(t, "k", 0, 9);
	mkbatch(&b, "app1", 2, 10000, t);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_APPLIED);
	row("k", 0, 10000, r, sizeof(r));
	assert_string_equal(r, "3,15,1,9,9");
	/* another appliance's seq 2 is its own batch */
	mkbatch(&b, "app2", 2, 10000, t);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_APPLIED);
	row("k", 0, 10000, r, sizeof(r));
	assert_string_equal(r, "4,24,1,9,9");
	/* another window size stays apart */
	mkbatch(&b, "app2", 3, 60000, t);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_APPLIED);
	row("k", 0, 60000, r, sizeof(r));
	assert_string_equal(r, "1,9,9,9,9");
	assert_int_equal(s->ops->last_seq(s, "app1"), 2);
	assert_int_equal(s->ops->last_seq(s, "app2"), 3);
	s->ops->close(s);
	tally_wtab_destroy(t);
	tally_batch_free(&b);
}

static void test_wal(void **st)
{
	char err[256];
	struct tally_sink *s = tally_sink_sqlite_open(path, 16, err, sizeof(err));
	sqlite3 *db;
	sqlite3_stmt *q;

	(void)st;
	assert_non_null(s);
	sqlite3_open(path, &db);
	sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
	sqlite3_finalize(q);
	sqlite3_close(db);
	s->ops->close(s);
}

static void test_bad_path(void **st)
{
	char err[256] = "";

	(void)st;
	assert_null(tally_sink_sqlite_open("/nonexistent/dir/x.db", 16, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/dir/x.db"));
}

/* Another writer holds the lock: the batch fails whole, then applies once. */
static void test_locked_rollback(void **st)
{
	char err[256], r[128];
	struct tally_sink *s = tally_sink_sqlite_open(path, 16, err, sizeof(err));
	struct tally_wtab *t = tally_wtab_create(1024);
	struct tally_batch b = {0};
	sqlite3 *other;

	(void)st;
	sqlite3_open(path, &other);
	sqlite3_exec(other, "PRAGMA busy_timeout=0; BEGIN IMMEDIATE", NULL, NULL, NULL);
	sqlite3_busy_timeout(other, 0);
	add(t, "k", 0, 1);
	mkbatch(&b, "app", 1, 10000, t);
	/* 5 s busy timeout in the sink: shorten the wait by releasing after it fails */
	assert_true(s->ops->write(s, &b) < 0);
	assert_non_null(strstr(s->err, path));
	sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(other);
	row("k", 0, 10000, r, sizeof(r));
	assert_string_equal(r, "none");
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_APPLIED);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_SKIPPED);
	row("k", 0, 10000, r, sizeof(r));
	assert_string_equal(r, "1,1,1,1,1");
	s->ops->close(s);
	tally_wtab_destroy(t);
	tally_batch_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_upsert_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal, setup, teardown),
		cmocka_unit_test(test_bad_path),
		cmocka_unit_test_setup_teardown(test_locked_rollback, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
