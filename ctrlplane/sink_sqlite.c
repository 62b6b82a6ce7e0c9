/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The SQLite sink, the embedded default. One transaction per batch: insert the
 * (appliance, seq) row of tally_batches, then upsert every row additively. A
 * primary-key conflict on tally_batches means the batch was applied before: the
 * transaction is rolled back and the batch reported skipped, so retries and
 * replays apply exactly once. WAL mode with synchronous=FULL: a batch reported
 * committed survives power loss, which the exactly-once rule relies on.
 *
 * tally_counts is a WITHOUT ROWID table (same columns and key as DESIGN.md):
 * rows live in the primary-key B-tree itself, so an upsert walks one tree, not
 * an index and then the table; with a page cache the size of the working set,
 * 1M-row batches in arrival order went from ~120k to ~200-240k rows/s here.
 * (Sorting a batch by key first gained little more: the sort ate the savings.)
 *
 * Rows with a sketch (StatsD ms, h, d and s) also upsert tally_sketches in the
 * same transaction: the stored blob is read, the batch's blob merged into it
 * (bins add, registers take the max: never an average of percentiles), and the
 * merged blob written back with the configured percentiles, or the distinct
 * estimate, computed from it, so plain SQL reads them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "config.h"
#include "gauge.h"
#include "sink.h"
#include "sketch.h"

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS tally_counts("
	" key TEXT NOT NULL, window_start_ms BIGINT NOT NULL, window_ms INTEGER NOT NULL,"
	" count BIGINT NOT NULL, sum DOUBLE NOT NULL, min DOUBLE, max DOUBLE, last DOUBLE,"
	" PRIMARY KEY (key, window_start_ms, window_ms)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS tally_batches("
	" appliance TEXT, seq BIGINT, rows INTEGER, committed_ms BIGINT, dgrams BLOB,"
	" PRIMARY KEY (appliance, seq));";
/* Files made before tally_batches had dgrams get it (the error for a file that
 * has it already, "duplicate column", is the expected one). */
static const char add_dgrams[] = "ALTER TABLE tally_batches ADD COLUMN dgrams BLOB";

static const char sketch_schema[] =
	"CREATE TABLE IF NOT EXISTS tally_sketches("
	" key TEXT NOT NULL, window_start_ms BIGINT NOT NULL, window_ms INTEGER NOT NULL,"
	" kind TEXT NOT NULL, blob BLOB NOT NULL, distinct_estimate DOUBLE,"
	" PRIMARY KEY (key, window_start_ms, window_ms)) WITHOUT ROWID;";

static const char upsert_sql[] =
	"INSERT INTO tally_counts(key, window_start_ms, window_ms, count, sum, min, max, last)"
	" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
	" ON CONFLICT(key, window_start_ms, window_ms) DO UPDATE SET"
	" count = count + excluded.count, sum = sum + excluded.sum,"
	" min = min(min, excluded.min), max = max(max, excluded.max), last = excluded.last";

struct sink_sqlite {
	struct tally_sink base;
	sqlite3 *db;
	sqlite3_stmt *begin, *commit, *rollback, *batch, *upsert, *last, *dgrams, *del;
	sqlite3_stmt *sk_get, *sk_put;
	struct tally_pctl pct;
	struct tally_sketch *sk; /* the row's merged sketch */
	uint8_t *blob;           /* and its blob */
	char path[256];
	uint8_t *pack; /* the batch's datagram list, packed */
	size_t pack_cap;
};

static int fail(struct sink_sqlite *s, const char *what)
{
	int code = sqlite3_errcode(s->db);

	snprintf(s->base.err, sizeof(s->base.err), "%.120s: %s: %.100s", s->path, what,
		 sqlite3_errmsg(s->db));
	return code == SQLITE_BUSY || code == SQLITE_LOCKED ? -EBUSY : -EIO;
}

static int step(sqlite3_stmt *st)
{
	int r = sqlite3_step(st);

	sqlite3_reset(st);
	return r;
}

/* The sketch stored for row r merged with r's blob into s->sk; -EBADMSG names the key. */
static int merge_stored(struct sink_sqlite *s, const struct tally_batch *b,
			const struct tally_batch_row *r)
{
	sqlite3_stmt *g = s->sk_get;
	int rc = 0, st;

	s->sk->kind = TALLY_SK_NONE;
	sqlite3_bind_text(g, 1, (const char *)tally_batch_key(b, r), r->key_len, SQLITE_STATIC);
	sqlite3_bind_int64(g, 2, r->win_start);
	sqlite3_bind_int64(g, 3, b->window_ms);
	st = sqlite3_step(g);
	if (st == SQLITE_ROW)
		rc = tally_sketch_merge_blob(s->sk, sqlite3_column_blob(g, 0),
					     (size_t)sqlite3_column_bytes(g, 0));
	else if (st != SQLITE_DONE)
		rc = fail(s, "read sketch");
	sqlite3_reset(g);
	if (rc == 0)
		rc = tally_sketch_merge_blob(s->sk, tally_batch_blob(b, r), r->blob_len);
	if (rc == -EBADMSG || rc == -EINVAL)
		snprintf(s->base.err, sizeof(s->base.err), "%.100s: tally_sketches row of "
			 "\"%.*s\" at %lld: the stored or the new sketch is not one this "
			 "tallyd reads (%s)", s->path, r->key_len, tally_batch_key(b, r),
			 (long long)r->win_start, rc == -EINVAL ? "kinds differ" : "corrupt");
	return rc;
}

/* The merged sketch back, with its percentiles or distinct estimate. */
static int put_sketch(struct sink_sqlite *s, const struct tally_batch *b,
		      const struct tally_batch_row *r)
{
	sqlite3_stmt *u = s->sk_put;
	bool dds = s->sk->kind == TALLY_SK_DDS;
	size_t n = tally_sketch_encode(s->sk, s->blob);

	sqlite3_bind_text(u, 1, (const char *)tally_batch_key(b, r), r->key_len, SQLITE_STATIC);
	sqlite3_bind_int64(u, 2, r->win_start);
	sqlite3_bind_int64(u, 3, b->window_ms);
	sqlite3_bind_text(u, 4, dds ? "ddsketch" : "hll", -1, SQLITE_STATIC);
	sqlite3_bind_blob(u, 5, s->blob, (int)n, SQLITE_STATIC);
	if (dds)
		sqlite3_bind_null(u, 6);
	else
		sqlite3_bind_double(u, 6, tally_hll_estimate(s->sk));
	for (unsigned i = 0; i < s->pct.n; i++) {
		if (dds)
			sqlite3_bind_double(u, 7 + (int)i, tally_dds_quantile(s->sk, s->pct.q[i]));
		else
			sqlite3_bind_null(u, 7 + (int)i);
	}
	return step(u) == SQLITE_DONE ? 0 : fail(s, "upsert sketch");
}

static int upsert_rows(struct sink_sqlite *s, const struct tally_batch *b)
{
	for (uint32_t i = 0; i < b->nrows; i++) {
		const struct tally_batch_row *r = &b->rows[i];
		sqlite3_stmt *u = s->upsert;

		sqlite3_bind_text(u, 1, (const char *)tally_batch_key(b, r), r->key_len, SQLITE_STATIC);
		sqlite3_bind_int64(u, 2, r->win_start);
		sqlite3_bind_int64(u, 3, b->window_ms);
		sqlite3_bind_int64(u, 4, (sqlite3_int64)r->count);
		sqlite3_bind_double(u, 5, r->sum);
		sqlite3_bind_double(u, 6, r->min);
		sqlite3_bind_double(u, 7, r->max);
		sqlite3_bind_double(u, 8, r->last);
		if (step(u) != SQLITE_DONE)
			return fail(s, "upsert");
		if (r->blob_len != 0) {
			int rc = merge_stored(s, b, r);

			if (rc == 0)
				rc = put_sketch(s, b, r);
			if (rc != 0)
				return rc;
		}
	}
	return 0;
}

/* The batch's datagram list as tally_batches.dgrams (NULL when it has none). */
static int bind_dgrams(struct sink_sqlite *s, sqlite3_stmt *st, int col,
		       const struct tally_batch *b)
{
	size_t need = (size_t)b->ndgrams * 16;

	if (need == 0)
		return sqlite3_bind_null(st, col) == SQLITE_OK ? 0 : -ENOMEM;
	if (need > s->pack_cap) {
		void *p = realloc(s->pack, need);

		if (p == NULL) {
			snprintf(s->base.err, sizeof(s->base.err), "sqlite: out of memory");
			return -ENOMEM;
		}
		s->pack = p;
		s->pack_cap = need;
	}
	tally_batch_dgrams_pack(b, s->pack);
	return sqlite3_bind_blob(st, col, s->pack, (int)need, SQLITE_STATIC) == SQLITE_OK ? 0
											  : -ENOMEM;
}

/* Insert the batch row; SKIPPED if it exists. */
static int claim_batch(struct sink_sqlite *s, const struct tally_batch *b)
{
	sqlite3_bind_text(s->batch, 1, b->appliance, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s->batch, 2, (sqlite3_int64)b->seq);
	sqlite3_bind_int64(s->batch, 3, b->nrows);
	sqlite3_bind_int64(s->batch, 4, b->now_ms);
	if (bind_dgrams(s, s->batch, 5, b) != 0)
		return -ENOMEM;
	switch (step(s->batch)) {
	case SQLITE_DONE:
		return TALLY_SINK_APPLIED;
	case SQLITE_CONSTRAINT:
		return TALLY_SINK_SKIPPED;
	default:
		return fail(s, "insert batch");
	}
}

/* Every row of one window, for replace. */
static int delete_window(struct sink_sqlite *s, int64_t win_start, int64_t window_ms)
{
	sqlite3_bind_int64(s->del, 1, win_start);
	sqlite3_bind_int64(s->del, 2, window_ms);
	return step(s->del) == SQLITE_DONE ? 0 : fail(s, "delete window");
}

/* One transaction: the batch row, for replace the window's old rows out, then
 * the rows (after the delete an upsert is an insert). */
static int apply_batch(struct sink_sqlite *s, const struct tally_batch *b, bool replace,
		       int64_t win_start)
{
	int r;

	if (step(s->begin) != SQLITE_DONE)
		return fail(s, "begin");
	r = claim_batch(s, b);
	if (r == TALLY_SINK_APPLIED && replace)
		r = delete_window(s, win_start, b->window_ms);
	if (r == TALLY_SINK_APPLIED)
		r = upsert_rows(s, b);
	if (r == 0 && step(s->commit) == SQLITE_DONE)
		return TALLY_SINK_APPLIED;
	if (r == 0)
		r = fail(s, "commit");
	step(s->rollback);
	return r;
}

static int sqlite_write(struct tally_sink *base, const struct tally_batch *b)
{
	return apply_batch((struct sink_sqlite *)base, b, false, 0);
}

static int sqlite_replace(struct tally_sink *base, const struct tally_batch *b, int64_t win_start)
{
	return apply_batch((struct sink_sqlite *)base, b, true, win_start);
}

static int64_t sqlite_last_seq(struct tally_sink *base, const char *appliance)
{
	struct sink_sqlite *s = (struct sink_sqlite *)base;
	int64_t v = -EIO;

	sqlite3_bind_text(s->last, 1, appliance, -1, SQLITE_STATIC);
	if (sqlite3_step(s->last) == SQLITE_ROW)
		v = sqlite3_column_int64(s->last, 0);
	else
		fail(s, "read last batch");
	sqlite3_reset(s->last);
	return v;
}

static int sqlite_dgrams_since(struct tally_sink *base, const char *only, const char *except,
			       int64_t since_ms, tally_dgrams_fn fn, void *arg)
{
	struct sink_sqlite *s = (struct sink_sqlite *)base;
	sqlite3_stmt *q = s->dgrams;
	int r;

	sqlite3_bind_int64(q, 1, since_ms);
	sqlite3_bind_text(q, 2, only ? only : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, except ? except : "", -1, SQLITE_STATIC);
	while ((r = sqlite3_step(q)) == SQLITE_ROW)
		fn(arg, (const char *)sqlite3_column_text(q, 0),
		   (uint64_t)sqlite3_column_int64(q, 1), sqlite3_column_blob(q, 2),
		   (size_t)sqlite3_column_bytes(q, 2));
	sqlite3_reset(q);
	return r == SQLITE_DONE ? 0 : fail(s, "read datagram lists");
}

static void sqlite_close(struct tally_sink *base)
{
	struct sink_sqlite *s = (struct sink_sqlite *)base;
	sqlite3_stmt *st[] = {s->begin,  s->commit, s->rollback, s->batch,  s->upsert,
			      s->last,   s->dgrams, s->del,      s->sk_get, s->sk_put};

	for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++)
		sqlite3_finalize(st[i]);
	sqlite3_close(s->db);
	free(s->pack);
	free(s->sk);
	free(s->blob);
	free(s);
}

static int sqlite_load_gauges(struct tally_sink *base, int64_t window_ms,
			      struct tally_gauges *g)
{
	static const char sql[] =
		"SELECT key, last FROM tally_counts c WHERE window_ms = ?1 AND"
		" (key GLOB '*|g' OR key GLOB '*|g|#*') AND window_start_ms ="
		" (SELECT max(window_start_ms) FROM tally_counts d"
		"  WHERE d.key = c.key AND d.window_ms = ?1)";
	struct sink_sqlite *s = (struct sink_sqlite *)base;
	sqlite3_stmt *st;
	int r, rc = 0;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return fail(s, "read gauges");
	sqlite3_bind_int64(st, 1, window_ms);
	while (rc == 0 && (r = sqlite3_step(st)) == SQLITE_ROW) {
		const uint8_t *k = sqlite3_column_text(st, 0);
		int n = sqlite3_column_bytes(st, 0);

		if (n > 0 && n <= 255 && tally_gauge_key(k, (uint8_t)n))
			rc = tally_gauges_set(g, k, (uint8_t)n, sqlite3_column_double(st, 1));
	}
	if (rc == 0 && r != SQLITE_DONE)
		rc = fail(s, "read gauges");
	sqlite3_finalize(st);
	return rc;
}

static const struct tally_sink_ops sqlite_ops = {
	.write = sqlite_write,
	.replace = sqlite_replace,
	.last_seq = sqlite_last_seq,
	.close = sqlite_close,
	.dgrams_since = sqlite_dgrams_since,
	.load_gauges = sqlite_load_gauges,
};

/*
 * tally_sketches and a column for each configured percentile: a column the
 * table lacks (the list changed) is added; an existing one keeps its values.
 */
static int sketch_table(struct sink_sqlite *s)
{
	char sql[1024];
	size_t n;

	if (sqlite3_exec(s->db, sketch_schema, NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	for (unsigned i = 0; i < s->pct.n; i++) {
		snprintf(sql, sizeof(sql), "ALTER TABLE tally_sketches ADD COLUMN %s DOUBLE",
			 s->pct.col[i]);
		sqlite3_exec(s->db, sql, NULL, NULL, NULL); /* "duplicate column": it is there */
	}
	n = (size_t)snprintf(sql, sizeof(sql), "INSERT OR REPLACE INTO tally_sketches(key, "
			     "window_start_ms, window_ms, kind, blob, distinct_estimate");
	for (unsigned i = 0; i < s->pct.n; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, ", %s", s->pct.col[i]);
	n += (size_t)snprintf(sql + n, sizeof(sql) - n, ") VALUES(?1, ?2, ?3, ?4, ?5, ?6");
	for (unsigned i = 0; i < s->pct.n; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, ", ?%u", 7 + i);
	snprintf(sql + n, sizeof(sql) - n, ")");
	return sqlite3_prepare_v2(s->db, sql, -1, &s->sk_put, NULL) ||
	       sqlite3_prepare_v2(s->db, "SELECT blob FROM tally_sketches WHERE key = ?1 AND "
				  "window_start_ms = ?2 AND window_ms = ?3", -1, &s->sk_get, NULL);
}

static int prepare(struct sink_sqlite *s)
{
	return sketch_table(s) || sqlite3_prepare_v2(s->db, "BEGIN IMMEDIATE", -1, &s->begin, NULL) ||
	       sqlite3_prepare_v2(s->db, "COMMIT", -1, &s->commit, NULL) ||
	       sqlite3_prepare_v2(s->db, "ROLLBACK", -1, &s->rollback, NULL) ||
	       sqlite3_prepare_v2(s->db, "INSERT INTO tally_batches(appliance, seq, rows, "
				  "committed_ms, dgrams) VALUES(?1, ?2, ?3, ?4, ?5)", -1, &s->batch,
				  NULL) ||
	       sqlite3_prepare_v2(s->db, "SELECT appliance, seq, dgrams FROM tally_batches "
				  "WHERE committed_ms >= ?1 AND dgrams IS NOT NULL "
				  "AND (?2 = '' OR appliance = ?2) AND (?3 = '' OR appliance <> ?3)",
				  -1, &s->dgrams, NULL) ||
	       sqlite3_prepare_v2(s->db, upsert_sql, -1, &s->upsert, NULL) ||
	       sqlite3_prepare_v2(s->db, "SELECT coalesce(max(seq), 0) FROM tally_batches "
				  "WHERE appliance = ?1", -1, &s->last, NULL) ||
	       /* no index leads with the window: a scan of tally_counts per window */
	       sqlite3_prepare_v2(s->db, "DELETE FROM tally_counts WHERE window_start_ms = ?1 "
				  "AND window_ms = ?2", -1, &s->del, NULL);
}

struct tally_sink *tally_sink_sqlite_open(const char *path, unsigned cache_mb, char *err,
					  size_t errlen)
{
	struct tally_pctl pct;

	tally_pctl_parse(TALLY_PCTL_DEFAULT, &pct, err, errlen);
	return tally_sink_sqlite_open_ext(path, cache_mb, &pct, err, errlen);
}

struct tally_sink *tally_sink_sqlite_open_ext(const char *path, unsigned cache_mb,
					      const struct tally_pctl *pct, char *err,
					      size_t errlen)
{
	struct sink_sqlite *s = calloc(1, sizeof(*s));
	char pragmas[160];

	if (s == NULL || (s->sk = malloc(sizeof(*s->sk))) == NULL ||
	    (s->blob = malloc(TALLY_SKETCH_BLOB_MAX)) == NULL) {
		snprintf(err, errlen, "sqlite: out of memory");
		if (s != NULL)
			free(s->sk), free(s);
		return NULL;
	}
	s->pct = *pct;
	s->base.ops = &sqlite_ops;
	snprintf(s->path, sizeof(s->path), "%s", path);
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) ||
	    sqlite3_busy_timeout(s->db, 5000) ||
	    snprintf(pragmas, sizeof(pragmas), "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
		     "PRAGMA cache_size=-%u;", cache_mb * 1024) < 0 ||
	    sqlite3_exec(s->db, pragmas, NULL, NULL, NULL) ||
	    sqlite3_exec(s->db, schema, NULL, NULL, NULL) ||
	    (sqlite3_exec(s->db, add_dgrams, NULL, NULL, NULL) &&
	     strstr(sqlite3_errmsg(s->db), "duplicate column") == NULL) ||
	    prepare(s)) {
		snprintf(err, errlen, "sqlite_path: cannot open \"%s\": %s", path,
			 s->db ? sqlite3_errmsg(s->db) : "out of memory");
		sqlite_close(&s->base);
		return NULL;
	}
	return &s->base;
}

static struct tally_sink *sqlite_open_cfg(const struct tally_config *c, char *err, size_t errlen)
{
	struct tally_pctl pct;

	if (tally_pctl_parse(c->statsd_percentiles, &pct, err, errlen) != 0)
		return NULL;
	return tally_sink_sqlite_open_ext(c->sqlite_path, (unsigned)c->sqlite_cache_mb, &pct, err,
					  errlen);
}

static struct tally_sink_type sqlite_type = {
	.name = "sqlite",
	.help = "an embedded SQLite file (sqlite_path)",
	.open = sqlite_open_cfg,
};
TALLY_SINK_REGISTER(sqlite_type)
