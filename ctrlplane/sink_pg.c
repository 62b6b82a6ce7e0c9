/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The PostgreSQL sink (libpq). One transaction per batch: insert the batch's
 * (appliance, seq) row with ON CONFLICT DO NOTHING (no row inserted = applied
 * before: roll back, report SKIPPED), then upsert the rows additively, then
 * COMMIT. A commit whose answer is lost is retried by the flusher under the
 * same seq and skipped then, so a batch is applied exactly once.
 *
 * Rows travel one of two ways (pg_method): "copy" streams them in binary COPY
 * into a temporary table and upserts them with one INSERT ... SELECT ... ON
 * CONFLICT; "pipeline" sends one prepared upsert per row in libpq pipeline
 * mode. Measured with tally-sink-bench (PostgreSQL 15 on loopback, 2 shared
 * cores, fsync and synchronous_commit on, shared_buffers 512MB, rows/s, median [min-max] of 3 runs, 2 batches
 * per run over the same keys, so half inserts and half updates):
 *
 *   rows/batch   copy                     pipeline
 *   10k          71236 [50864-86442]      40169 [38239-43428]
 *   100k         75355 [65274-94636]      40812 [35336-41388]
 *   1M           69139 [55335-70070]      45365 [40205-58951]
 *
 * (SQLite on the same machine: 250k-390k.) Copy is 1.5-1.8x faster at every
 * size, so it is the default; pipeline is kept for servers where temporary
 * tables are not allowed.
 *
 * Everything is bounded by timeout_ms (sink_timeout_ms): the connection is made
 * with PQconnectStart/PQconnectPoll and poll(), and the socket is non-blocking,
 * so every wait is a poll() with a deadline: each call (a statement's round
 * trip, a chunk of COPY data) that is not done within timeout_ms fails with
 * -ETIMEDOUT, even if the server is frozen. There is no
 * PQcancel on timeout: it blocks on a frozen server; the connection is dropped
 * instead, and statement_timeout makes the server give up too. The bound is
 * per call, and the one upsert of a COPY batch is one call: sink_timeout_ms
 * must cover the upsert of the largest batch (about 15 s for 1M rows here).
 *
 * After a transient error (connection lost or refused, timeout, serialization
 * failure, shutdown, a read-only standby) the connection is dropped and the
 * next call reconnects: with a multi-host conninfo and
 * target_session_attrs=read-write, that is how a promoted standby takes over.
 * TLS, passwords and failover are all libpq conninfo parameters (sslmode,
 * sslrootcert, password, passfile, host=a,b port=p,q). The conninfo is never
 * printed: errors name the endpoint by host, port and database only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "config.h"
#include "gauge.h"
#include "sink.h"
#include "sketch.h"

enum pg_method { PG_COPY, PG_PIPELINE };

/* The advisory lock ("tall" as an int, held to the end of this implicit transaction) makes two
 * appliances starting at once on one server take turns: CREATE ... IF NOT
 * EXISTS alone races on the catalog ("duplicate key ... pg_type"). */
static const char schema_sql[] =
	"SELECT pg_advisory_xact_lock(1952541804);"
	"CREATE TABLE IF NOT EXISTS tally_counts("
	" key TEXT NOT NULL, window_start_ms BIGINT NOT NULL, window_ms INTEGER NOT NULL,"
	" count BIGINT NOT NULL, sum DOUBLE PRECISION NOT NULL, min DOUBLE PRECISION,"
	" max DOUBLE PRECISION, last DOUBLE PRECISION,"
	" PRIMARY KEY (key, window_start_ms, window_ms));"
	"CREATE TABLE IF NOT EXISTS tally_batches("
	" appliance TEXT, seq BIGINT, rows INTEGER, committed_ms BIGINT,"
	" PRIMARY KEY (appliance, seq));"
	"ALTER TABLE tally_batches ADD COLUMN IF NOT EXISTS dgrams BYTEA;";

/* ON COMMIT DELETE ROWS: a rolled-back or committed batch leaves it empty. */
static const char stage_sql[] =
	"CREATE TEMP TABLE IF NOT EXISTS tally_stage(key TEXT, window_start_ms BIGINT,"
	" window_ms INTEGER, count BIGINT, sum DOUBLE PRECISION, min DOUBLE PRECISION,"
	" max DOUBLE PRECISION, last DOUBLE PRECISION, ord INTEGER) ON COMMIT DELETE ROWS";

#define UPSERT_SET \
	" ON CONFLICT (key, window_start_ms, window_ms) DO UPDATE SET" \
	" count = t.count + excluded.count, sum = t.sum + excluded.sum," \
	" min = LEAST(t.min, excluded.min), max = GREATEST(t.max, excluded.max)," \
	" last = excluded.last"

/* A batch may hold a (key, window) twice (ON CONFLICT cannot touch a row twice
 * in one statement): fold such rows first, last taken from the later one. */
static const char merge_sql[] =
	"INSERT INTO tally_counts AS t(key, window_start_ms, window_ms, count, sum, min,"
	" max, last) SELECT key, window_start_ms, window_ms, sum(count), sum(sum), min(min),"
	" max(max), (array_agg(last ORDER BY ord DESC))[1] FROM tally_stage"
	" GROUP BY key, window_start_ms, window_ms" UPSERT_SET;

static const char upsert_sql[] =
	"INSERT INTO tally_counts AS t(key, window_start_ms, window_ms, count, sum, min,"
	" max, last) VALUES($1, $2, $3, $4, $5, $6, $7, $8)" UPSERT_SET;

static const char claim_sql[] =
	"INSERT INTO tally_batches(appliance, seq, rows, committed_ms, dgrams)"
	" VALUES($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";

static const char dgrams_sql[] =
	"SELECT appliance, seq, dgrams FROM tally_batches WHERE committed_ms >= $1"
	" AND dgrams IS NOT NULL AND ($2 = '' OR appliance = $2)"
	" AND ($3 = '' OR appliance <> $3)";

static const char delete_sql[] =
	"DELETE FROM tally_counts WHERE window_start_ms = $1 AND window_ms = $2";
static const char sketch_schema_sql[] =
	"CREATE TABLE IF NOT EXISTS tally_sketches("
	" key TEXT NOT NULL, window_start_ms BIGINT NOT NULL, window_ms INTEGER NOT NULL,"
	" kind TEXT NOT NULL, blob BYTEA NOT NULL, distinct_estimate DOUBLE PRECISION,"
	" PRIMARY KEY (key, window_start_ms, window_ms));";

/* The row's stored sketch, locked until the batch commits: a concurrent
 * appliance merging into the same row waits instead of losing its merge. */
static const char sketch_get_sql[] =
	"SELECT blob FROM tally_sketches WHERE key = $1 AND window_start_ms = $2"
	" AND window_ms = $3 FOR UPDATE";

static const char last_sql[] =
	"SELECT coalesce(max(seq), 0) FROM tally_batches WHERE appliance = $1";

/* Each gauge key's last of its newest window (the gauge state at a restart). */
static const char gauges_sql[] =
	"SELECT DISTINCT ON (key) key, last FROM tally_counts WHERE window_ms = $1"
	" AND (key LIKE '%|g' OR key LIKE '%|g|#%') ORDER BY key, window_start_ms DESC";

struct sink_pg {
	struct tally_sink base;
	PGconn *conn;
	char *conninfo;
	char *password; /* scrubbed from every message, in case one quotes it */
	char where[160]; /* host:port/db from the conninfo, for errors before a connection */
	unsigned timeout_ms;
	enum pg_method method;
	int64_t deadline_ms;
	struct tally_pctl pct;
	struct tally_sketch *sk; /* a row's merged sketch */
	uint8_t *blob;
	char sketch_put_sql[1024];
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Start the bound of one call: its waits all end by this deadline. */
static void arm(struct sink_pg *s)
{
	s->deadline_ms = now_ms() + s->timeout_ms;
}

/* The endpoint of the live connection (or the conninfo's), never the conninfo. */
static void endpoint(const struct sink_pg *s, char *buf, size_t len)
{
	if (s->conn != NULL && PQhost(s->conn) != NULL && PQhost(s->conn)[0] != '\0')
		snprintf(buf, len, "postgres %.60s:%.8s/%.60s", PQhost(s->conn), PQport(s->conn),
			 PQdb(s->conn));
	else
		snprintf(buf, len, "postgres %.150s", s->where);
}

static void scrub(struct sink_pg *s)
{
	char *p;

	/* a password of a few letters would star out ordinary words: libpq never
	 * quotes it anyway, this is a second line of defence */
	if (s->password == NULL || strlen(s->password) < 4)
		return;
	while ((p = strstr(s->base.err, s->password)) != NULL)
		memset(p, '*', strlen(s->password));
}

/* Fill err with "<endpoint>: <what>: <libpq's message>" and return e. */
static int fail(struct sink_pg *s, int e, const char *what, const char *msg)
{
	char ep[176];
	size_t n;

	endpoint(s, ep, sizeof(ep));
	snprintf(s->base.err, sizeof(s->base.err), "%s: %s: %s", ep, what,
		 msg != NULL && msg[0] != '\0' ? msg : strerror(-e));
	n = strlen(s->base.err);
	while (n > 0 && (s->base.err[n - 1] == '\n' || s->base.err[n - 1] == ' '))
		s->base.err[--n] = '\0';
	for (char *p = s->base.err; *p; p++)
		if (*p == '\n')
			*p = ' ';
	scrub(s);
	return e;
}

static void drop(struct sink_pg *s)
{
	if (s->conn != NULL)
		PQfinish(s->conn);
	s->conn = NULL;
}

/* Wait until the socket is ready for events, or the deadline. */
static int wait_sock(struct sink_pg *s, short events)
{
	struct pollfd p = {.fd = PQsocket(s->conn), .events = events};
	int64_t left = s->deadline_ms - now_ms();
	int r;

	if (p.fd < 0)
		return -ENOTCONN;
	do {
		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)left);
		left = s->deadline_ms - now_ms();
	} while (r < 0 && errno == EINTR);
	if (r == 0)
		return -ETIMEDOUT;
	return r < 0 ? -errno : 0;
}

/* Errors the server reports, by SQLSTATE: what a retry (on this or, after a
 * reconnect, another host) may cure is transient. */
static int class_sqlstate(const char *st)
{
	if (st == NULL || strncmp(st, "08", 2) == 0 || strncmp(st, "57P", 3) == 0)
		return -ECONNRESET; /* connection exception, admin or crash shutdown */
	if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "55P03") == 0)
		return -EAGAIN; /* serialization failure, deadlock, lock not available */
	if (strcmp(st, "25006") == 0)
		return -EAGAIN; /* read-only transaction: a standby; reconnect finds the primary */
	if (strcmp(st, "57014") == 0)
		return -ETIMEDOUT; /* statement_timeout */
	if (strcmp(st, "53100") == 0)
		return -ENOSPC;
	if (strncmp(st, "53", 2) == 0)
		return -EAGAIN; /* out of memory, too many connections */
	if (strncmp(st, "28", 2) == 0 || strcmp(st, "42501") == 0)
		return -EACCES;
	if (strncmp(st, "22", 2) == 0 || strncmp(st, "23", 2) == 0)
		return -EINVAL; /* data the server refused */
	return -EPROTO;   /* schema or anything else: a person must look */
}

static int result_fail(struct sink_pg *s, const char *what, const PGresult *res)
{
	const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	int e = st == NULL && PQstatus(s->conn) == CONNECTION_BAD ? -ECONNRESET
								 : class_sqlstate(st);

	return fail(s, e, what, PQresultErrorMessage(res));
}

/* The connection failed (e is -ETIMEDOUT or -ECONNRESET): say so and drop it. */
static int conn_fail(struct sink_pg *s, int e, const char *what)
{
	char msg[64];

	if (e == -ETIMEDOUT) {
		snprintf(msg, sizeof(msg), "no answer within %u ms", s->timeout_ms);
		fail(s, e, what, msg);
	} else {
		fail(s, e, what, PQerrorMessage(s->conn));
	}
	drop(s);
	return e;
}

/* Send what libpq holds; read meanwhile, so a server that is writing to us
 * (notices, pipeline results) never deadlocks against us. */
static int flush_out(struct sink_pg *s)
{
	int r, e;

	while ((r = PQflush(s->conn)) == 1) {
		e = wait_sock(s, POLLOUT | POLLIN);
		if (e != 0)
			return e;
		if (!PQconsumeInput(s->conn))
			return -ECONNRESET;
	}
	return r == 0 ? 0 : -ECONNRESET;
}

static int next_result(struct sink_pg *s, PGresult **res)
{
	int e;

	while (PQisBusy(s->conn)) {
		e = wait_sock(s, POLLIN);
		if (e != 0)
			return e;
		if (!PQconsumeInput(s->conn))
			return -ECONNRESET;
	}
	*res = PQgetResult(s->conn);
	return 0;
}

/* Read the results of the command just sent. The first error decides, but every
 * result is read, so the connection stays usable. *out (if given) keeps the last
 * result; a COPY IN result returns at once, for the caller to stream. */
static int collect(struct sink_pg *s, const char *what, PGresult **out)
{
	PGresult *res, *keep = NULL;
	int e = flush_out(s), first = 0;

	while (e == 0 && (e = next_result(s, &res)) == 0 && res != NULL) {
		ExecStatusType st = PQresultStatus(res);

		if (st == PGRES_COPY_IN) {
			PQclear(keep);
			keep = res;
			break;
		}
		if (first == 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
			first = result_fail(s, what, res);
		PQclear(keep);
		keep = res;
	}
	if (e == 0)
		e = first;
	else
		conn_fail(s, e, what);
	if (e != 0 || out == NULL)
		PQclear(keep);
	else
		*out = keep;
	return e;
}

/* One command, its parameters as text (NULL-terminated strings). */
static int run(struct sink_pg *s, const char *what, const char *sql, int n,
	       const char *const *vals, PGresult **out)
{
	int ok;

	if (out != NULL)
		*out = NULL;
	arm(s);
	ok = n == 0 ? PQsendQuery(s->conn, sql)
		    : PQsendQueryParams(s->conn, sql, n, NULL, vals, NULL, NULL, 0);
	if (!ok)
		return conn_fail(s, -ECONNRESET, what);
	return collect(s, what, out);
}

/* Refused credentials or a missing role or database will not cure themselves;
 * anything else at connect (refused, reset, starting up, no read-write host
 * yet) may. */
static int connect_fail(struct sink_pg *s, int e)
{
	char msg[200];

	snprintf(msg, sizeof(msg), "%s", e == -ETIMEDOUT ? "" : PQerrorMessage(s->conn));
	if (e == 0)
		e = PQconnectionNeedsPassword(s->conn) || strstr(msg, "authentication failed") ||
			    strstr(msg, "does not exist") ? -EACCES : -ECONNREFUSED;
	if (e == -ETIMEDOUT)
		snprintf(msg, sizeof(msg), "no answer within %u ms", s->timeout_ms);
	drop(s); /* name the conninfo's endpoints (every host), not the last one tried */
	return fail(s, e, "connect", msg);
}

/* tally_sketches with a column for each configured percentile, and its upsert. */
static int sketch_schema(struct sink_pg *s)
{
	char sql[2048];
	size_t n = (size_t)snprintf(sql, sizeof(sql), "%s", sketch_schema_sql), m;

	for (unsigned i = 0; i < s->pct.n; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "ALTER TABLE tally_sketches ADD "
				      "COLUMN IF NOT EXISTS %s DOUBLE PRECISION;", s->pct.col[i]);
	m = (size_t)snprintf(s->sketch_put_sql, sizeof(s->sketch_put_sql),
			     "INSERT INTO tally_sketches(key, window_start_ms, window_ms, kind, "
			     "blob, distinct_estimate");
	for (unsigned i = 0; i < s->pct.n; i++)
		m += (size_t)snprintf(s->sketch_put_sql + m, sizeof(s->sketch_put_sql) - m, ", %s",
				      s->pct.col[i]);
	m += (size_t)snprintf(s->sketch_put_sql + m, sizeof(s->sketch_put_sql) - m,
			      ") VALUES($1, $2, $3, $4, $5, $6");
	for (unsigned i = 0; i < s->pct.n; i++)
		m += (size_t)snprintf(s->sketch_put_sql + m, sizeof(s->sketch_put_sql) - m, ", $%u",
				      7 + i);
	m += (size_t)snprintf(s->sketch_put_sql + m, sizeof(s->sketch_put_sql) - m,
			      ") ON CONFLICT (key, window_start_ms, window_ms) DO UPDATE SET "
			      "kind = excluded.kind, blob = excluded.blob, distinct_estimate = "
			      "excluded.distinct_estimate");
	for (unsigned i = 0; i < s->pct.n; i++)
		m += (size_t)snprintf(s->sketch_put_sql + m, sizeof(s->sketch_put_sql) - m,
				      ", %s = excluded.%s", s->pct.col[i], s->pct.col[i]);
	return run(s, "create tally_sketches", sql, 0, NULL, NULL);
}

/* Settings, schema and (for COPY) the staging table of a new connection. A
 * concurrent first CREATE TABLE from another sink may collide (23505): retry. */
static int session_setup(struct sink_pg *s)
{
	char sql[sizeof(schema_sql) + sizeof(stage_sql) + 200];
	int e;

	snprintf(sql, sizeof(sql), "SET client_encoding = 'UTF8'; SET client_min_messages = warning;"
		 " SET statement_timeout = %u;"
		 " SET idle_in_transaction_session_timeout = %u; %s %s",
		 s->timeout_ms, 2 * s->timeout_ms, schema_sql,
		 s->method == PG_COPY ? stage_sql : "");
	e = run(s, "create schema", sql, 0, NULL, NULL);
	if (e == 0)
		e = sketch_schema(s);
	if (e == -EINVAL)
		e = -EAGAIN;
	if (e == 0 && s->method == PG_PIPELINE) {
		arm(s);
		if (!PQsendPrepare(s->conn, "tally_upsert", upsert_sql, 0, NULL))
			return conn_fail(s, -ECONNRESET, "prepare upsert");
		e = collect(s, "prepare upsert", NULL);
	}
	if (e != 0)
		drop(s);
	return e;
}

static int pg_connect(struct sink_pg *s)
{
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	int e;

	if (s->conn != NULL)
		return 0;
	arm(s);
	s->conn = PQconnectStart(s->conninfo);
	if (s->conn == NULL)
		return fail(s, -ENOMEM, "connect", "out of memory");
	if (PQstatus(s->conn) == CONNECTION_BAD)
		return connect_fail(s, 0);
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED)
			return connect_fail(s, 0);
		e = wait_sock(s, st == PGRES_POLLING_READING ? POLLIN : POLLOUT);
		if (e != 0)
			return connect_fail(s, e);
		st = PQconnectPoll(s->conn);
	}
	if (PQsetnonblocking(s->conn, 1) != 0)
		return conn_fail(s, -ECONNRESET, "set non-blocking");
	return session_setup(s);
}

/* Binary COPY and binary parameters: network order, doubles as their bits. */
static uint8_t *put16(uint8_t *p, uint16_t v)
{
	v = htons(v);
	memcpy(p, &v, 2);
	return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
	v = htonl(v);
	memcpy(p, &v, 4);
	return p + 4;
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
	p = put32(p, (uint32_t)(v >> 32));
	return put32(p, (uint32_t)v);
}

static uint8_t *putf64(uint8_t *p, double d)
{
	uint64_t v;

	memcpy(&v, &d, 8);
	return put64(p, v);
}

/* One COPY tuple: length-prefixed fields in tally_stage's column order. */
static uint8_t *copy_tuple(uint8_t *p, const struct tally_batch *b, uint32_t i)
{
	const struct tally_batch_row *r = &b->rows[i];

	p = put16(p, 9);
	p = put32(p, r->key_len);
	memcpy(p, tally_batch_key(b, r), r->key_len);
	p += r->key_len;
	p = put64(put32(p, 8), (uint64_t)r->win_start);
	p = put32(put32(p, 4), (uint32_t)b->window_ms);
	p = put64(put32(p, 8), r->count);
	p = putf64(put32(p, 8), r->sum);
	p = putf64(put32(p, 8), r->min);
	p = putf64(put32(p, 8), r->max);
	p = putf64(put32(p, 8), r->last);
	return put32(put32(p, 4), i);
}

#define COPY_CHUNK (256 * 1024)
#define TUPLE_MAX (2 + 9 * 4 + 255 + 6 * 8 + 2 * 4)

static int put_copy(struct sink_pg *s, const uint8_t *buf, size_t n)
{
	int r, e;

	arm(s);
	while ((r = PQputCopyData(s->conn, (const char *)buf, (int)n)) == 0)
		if ((e = flush_out(s)) != 0)
			return conn_fail(s, e, "copy rows");
	if (r < 0 || (e = flush_out(s)) != 0)
		return conn_fail(s, r < 0 ? -ECONNRESET : e, "copy rows");
	return 0;
}

static int copy_rows(struct sink_pg *s, const struct tally_batch *b, uint8_t *buf)
{
	static const uint8_t head[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
	uint8_t *p = buf;
	int e, r;

	memcpy(p, head, sizeof(head));
	p += sizeof(head);
	for (uint32_t i = 0; i < b->nrows; i++) {
		if (p - buf > COPY_CHUNK - TUPLE_MAX - 2) {
			if ((e = put_copy(s, buf, (size_t)(p - buf))) != 0)
				return e;
			p = buf;
		}
		p = copy_tuple(p, b, i);
	}
	p = put16(p, 0xffff);
	if ((e = put_copy(s, buf, (size_t)(p - buf))) != 0)
		return e;
	arm(s);
	while ((r = PQputCopyEnd(s->conn, NULL)) == 0)
		if ((e = flush_out(s)) != 0)
			return conn_fail(s, e, "copy rows");
	if (r < 0)
		return conn_fail(s, -ECONNRESET, "copy rows");
	return collect(s, "copy rows", NULL);
}

/* Stream the rows into tally_stage, then one upsert from it. */
static int write_copy(struct sink_pg *s, const struct tally_batch *b)
{
	PGresult *res;
	uint8_t *buf = malloc(COPY_CHUNK);
	int e;

	if (buf == NULL)
		return fail(s, -ENOMEM, "copy rows", "out of memory");
	e = run(s, "copy rows", "COPY tally_stage FROM STDIN (FORMAT binary)", 0, NULL, &res);
	PQclear(res);
	if (e == 0)
		e = copy_rows(s, b, buf);
	free(buf);
	if (e == 0)
		e = run(s, "upsert rows", merge_sql, 0, NULL, NULL);
	return e;
}

#define PIPE_CHUNK 1024

/* Queue one row's prepared upsert, parameters in binary. */
static int send_row(struct sink_pg *s, const struct tally_batch *b, uint32_t i, uint8_t *buf)
{
	const struct tally_batch_row *r = &b->rows[i];
	static const int fmt[8] = {1, 1, 1, 1, 1, 1, 1, 1};
	static const int len[8] = {0, 8, 4, 8, 8, 8, 8, 8};
	const char *v[8] = {(const char *)tally_batch_key(b, r)};
	int lens[8];

	memcpy(lens, len, sizeof(lens));
	lens[0] = r->key_len;
	put64(buf, (uint64_t)r->win_start);
	put32(buf + 8, (uint32_t)b->window_ms);
	put64(buf + 12, r->count);
	putf64(buf + 20, r->sum);
	putf64(buf + 28, r->min);
	putf64(buf + 36, r->max);
	putf64(buf + 44, r->last);
	for (int k = 1, off = 0; k < 8; off += len[k], k++)
		v[k] = (const char *)buf + off;
	return PQsendQueryPrepared(s->conn, "tally_upsert", 8, v, lens, fmt, 0) ? 0 : -ECONNRESET;
}

/* Read n commands' results (each a result and a NULL), then optionally the sync. */
static int pipe_results(struct sink_pg *s, uint32_t n, bool sync)
{
	PGresult *res;
	int e;

	arm(s);
	if ((e = flush_out(s)) != 0)
		return conn_fail(s, e, "upsert rows");
	for (uint32_t i = 0; i < 2 * n + sync; i++) {
		if ((e = next_result(s, &res)) != 0)
			return conn_fail(s, e, "upsert rows");
		if (res == NULL && i % 2 == 1)
			continue;
		if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK &&
				    PQresultStatus(res) != PGRES_PIPELINE_SYNC))
			e = res == NULL ? fail(s, -EPROTO, "upsert rows", "result missing")
					: result_fail(s, "upsert rows", res);
		PQclear(res);
		if (e != 0)
			return e;
	}
	return 0;
}

/* One prepared upsert per row in pipeline mode, PIPE_CHUNK rows in flight: the
 * results of a chunk are read before the next is sent, so neither side's buffers
 * fill. After an error the pipeline is aborted: the connection is dropped, which
 * rolls the transaction back. */
static int write_pipeline(struct sink_pg *s, const struct tally_batch *b)
{
	uint8_t buf[52];
	uint32_t i = 0, n;
	int e = PQenterPipelineMode(s->conn) ? 0 : -ECONNRESET;

	while (e == 0 && i < b->nrows) {
		for (n = 0; e == 0 && n < PIPE_CHUNK && i < b->nrows; n++, i++)
			e = send_row(s, b, i, buf);
		if (e == 0)
			e = PQsendFlushRequest(s->conn) ? 0 : -ECONNRESET;
		e = e != 0 ? conn_fail(s, e, "upsert rows") : pipe_results(s, n, false);
	}
	if (e == 0)
		e = PQpipelineSync(s->conn) ? pipe_results(s, 0, true)
					    : conn_fail(s, -ECONNRESET, "upsert rows");
	if (e == 0 && !PQexitPipelineMode(s->conn))
		e = conn_fail(s, -EPROTO, "leave pipeline mode");
	if (e != 0)
		drop(s);
	return e;
}

/* Insert the batch's row; SKIPPED if (appliance, seq) is there already. */
/* The batch's datagram list as bytea text input ("\\x" and hex); NULL if none. */
static char *dgrams_hex(const struct tally_batch *b)
{
	size_t n = (size_t)b->ndgrams * 16;
	uint8_t *bin = n ? malloc(n) : NULL;
	char *hex = n ? malloc(2 * n + 3) : NULL;

	if (bin == NULL || hex == NULL) {
		free(bin);
		free(hex);
		return NULL;
	}
	tally_batch_dgrams_pack(b, bin);
	memcpy(hex, "\\x", 2);
	for (size_t i = 0; i < n; i++)
		snprintf(hex + 2 + 2 * i, 3, "%02x", bin[i]);
	free(bin);
	return hex;
}

static int claim_batch(struct sink_pg *s, const struct tally_batch *b)
{
	char seq[24], rows[16], ms[24];
	char *dg = dgrams_hex(b);
	const char *v[5] = {b->appliance, seq, rows, ms, dg};
	PGresult *res;
	int e;

	if (b->ndgrams && dg == NULL)
		return fail(s, -ENOMEM, "insert batch", "out of memory");
	snprintf(seq, sizeof(seq), "%lld", (long long)b->seq);
	snprintf(rows, sizeof(rows), "%u", b->nrows);
	snprintf(ms, sizeof(ms), "%lld", (long long)b->now_ms);
	e = run(s, "insert batch", claim_sql, 5, v, &res);
	free(dg);
	if (e == 0)
		e = strcmp(PQcmdTuples(res), "0") == 0 ? TALLY_SINK_SKIPPED : TALLY_SINK_APPLIED;
	PQclear(res);
	return e;
}

/* One command with text parameters, the ones marked in bin[] binary (a blob). */
static int run_bin(struct sink_pg *s, const char *what, const char *sql, int n,
		   const char *const *vals, const int *lens, const int *bin, int binary_result,
		   PGresult **out)
{
	arm(s);
	if (!PQsendQueryParams(s->conn, sql, n, NULL, vals, lens, bin, binary_result))
		return conn_fail(s, -ECONNRESET, what);
	return collect(s, what, out);
}

/* Row i's stored sketch, locked, merged with the batch's blob into s->sk. */
static int merge_stored(struct sink_pg *s, const struct tally_batch *b, uint32_t i,
			const char *const *v)
{
	const struct tally_batch_row *r = &b->rows[i];
	PGresult *res;
	int e = run_bin(s, "read sketch", sketch_get_sql, 3, v, NULL, NULL, 1, &res);

	s->sk->kind = TALLY_SK_NONE;
	if (e == 0 && PQntuples(res) == 1)
		e = tally_sketch_merge_blob(s->sk, (const uint8_t *)PQgetvalue(res, 0, 0),
					    (size_t)PQgetlength(res, 0, 0));
	PQclear(res);
	if (e == 0)
		e = tally_sketch_merge_blob(s->sk, tally_batch_blob(b, r), r->blob_len);
	if (e == -EBADMSG || e == -EINVAL) {
		snprintf(s->base.err, sizeof(s->base.err), "postgres %.60s: tally_sketches row "
			 "of \"%.*s\" at %.20s: the stored or the new sketch is not one this "
			 "tallyd reads (%s)", s->where, r->key_len < 60 ? r->key_len : 60,
			 tally_batch_key(b, r), v[1],
			 e == -EINVAL ? "kinds differ" : "corrupt");
		e = -EPROTO;
	}
	return e;
}

/* The merged sketch back, with its percentiles or distinct estimate. */
static int put_sketch(struct sink_pg *s, const char *const *t)
{
	bool dds = s->sk->kind == TALLY_SK_DDS;
	const char *v[6 + TALLY_PCTL_MAX] = {t[0], t[1], t[2], dds ? "ddsketch" : "hll",
					      (const char *)s->blob, NULL};
	int lens[6 + TALLY_PCTL_MAX] = {0}, bin[6 + TALLY_PCTL_MAX] = {0};
	char num[1 + TALLY_PCTL_MAX][32];

	lens[4] = (int)tally_sketch_encode(s->sk, s->blob);
	bin[4] = 1;
	if (!dds) {
		snprintf(num[0], sizeof(num[0]), "%.17g", tally_hll_estimate(s->sk));
		v[5] = num[0];
	}
	for (unsigned i = 0; i < s->pct.n; i++) {
		snprintf(num[1 + i], sizeof(num[1 + i]), "%.17g",
			 dds ? tally_dds_quantile(s->sk, s->pct.q[i]) : 0.0);
		v[6 + i] = dds ? num[1 + i] : NULL;
	}
	return run_bin(s, "upsert sketch", s->sketch_put_sql, 6 + (int)s->pct.n, v, lens, bin, 0,
		       NULL);
}

/* Row i's tally_sketches row: read (locked), merge, write back. */
static int sketch_row(struct sink_pg *s, const struct tally_batch *b, uint32_t i)
{
	const struct tally_batch_row *r = &b->rows[i];
	char key[256], win[24], wms[24];
	const char *v[3] = {key, win, wms};
	int e;

	memcpy(key, tally_batch_key(b, r), r->key_len);
	key[r->key_len] = '\0';
	snprintf(win, sizeof(win), "%lld", (long long)r->win_start);
	snprintf(wms, sizeof(wms), "%lld", (long long)b->window_ms);
	e = merge_stored(s, b, i, v);
	return e == 0 ? put_sketch(s, v) : e;
}

/* Every row with a blob, in the batch's transaction: one round trip each way
 * per sketch row (the merge needs the stored sketch). */
static int write_sketches(struct sink_pg *s, const struct tally_batch *b)
{
	int e = 0;

	for (uint32_t i = 0; e == 0 && i < b->nrows; i++)
		if (b->rows[i].blob_len != 0)
			e = sketch_row(s, b, i);
	return e;
}

/* End the transaction without losing the error that made us end it. */
static void rollback(struct sink_pg *s)
{
	char err[sizeof(s->base.err)];

	if (s->conn == NULL)
		return;
	memcpy(err, s->base.err, sizeof(err));
	if (run(s, "rollback", "ROLLBACK", 0, NULL, NULL) != 0)
		drop(s);
	memcpy(s->base.err, err, sizeof(err));
}

/* Every row of one window, for replace. No index leads with the window, so
 * this is a scan of tally_counts per window. */
static int delete_window(struct sink_pg *s, int64_t win_start, int64_t window_ms)
{
	char ws[24], wm[24];
	const char *v[2] = {ws, wm};

	snprintf(ws, sizeof(ws), "%lld", (long long)win_start);
	snprintf(wm, sizeof(wm), "%lld", (long long)window_ms);
	return run(s, "delete window", delete_sql, 2, v, NULL);
}

/* One transaction: the batch row, for replace the window's old rows out, then
 * the rows (after the delete an upsert is an insert). */
static int apply_batch(struct sink_pg *s, const struct tally_batch *b, bool replace,
		       int64_t win_start)
{
	int r = pg_connect(s);

	if (r == 0)
		r = run(s, "begin", "BEGIN", 0, NULL, NULL);
	if (r == 0)
		r = claim_batch(s, b);
	if (r == TALLY_SINK_APPLIED && replace)
		r = delete_window(s, win_start, b->window_ms);
	if (r == TALLY_SINK_APPLIED)
		r = s->method == PG_COPY ? write_copy(s, b) : write_pipeline(s, b);
	if (r == 0)
		r = write_sketches(s, b);
	if (r == 0)
		r = run(s, "commit", "COMMIT", 0, NULL, NULL);
	if (r == 0)
		return TALLY_SINK_APPLIED;
	if (r < 0 && tally_sink_transient(r))
		drop(s);
	rollback(s);
	return r;
}

static int pg_write(struct tally_sink *base, const struct tally_batch *b)
{
	return apply_batch((struct sink_pg *)base, b, false, 0);
}

static int pg_replace(struct tally_sink *base, const struct tally_batch *b, int64_t win_start)
{
	return apply_batch((struct sink_pg *)base, b, true, win_start);
}

static int64_t pg_last_seq(struct tally_sink *base, const char *appliance)
{
	struct sink_pg *s = (struct sink_pg *)base;
	PGresult *res;
	int64_t v;
	int e = pg_connect(s);

	if (e == 0)
		e = run(s, "read last batch", last_sql, 1, &appliance, &res);
	if (e != 0) {
		if (tally_sink_transient(e))
			drop(s);
		return e;
	}
	v = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	return v;
}

static int pg_dgrams_since(struct tally_sink *base, const char *only, const char *except,
			   int64_t since_ms, tally_dgrams_fn fn, void *arg)
{
	struct sink_pg *s = (struct sink_pg *)base;
	char since[24];
	const char *v[3] = {since, only ? only : "", except ? except : ""};
	PGresult *res;
	int e = pg_connect(s);

	snprintf(since, sizeof(since), "%lld", (long long)since_ms);
	if (e == 0)
		e = run(s, "read datagram lists", dgrams_sql, 3, v, &res);
	if (e != 0) {
		if (tally_sink_transient(e))
			drop(s);
		return e;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		size_t len = 0;
		uint8_t *blob = PQunescapeBytea((const uint8_t *)PQgetvalue(res, i, 2), &len);

		if (blob == NULL)
			continue;
		fn(arg, PQgetvalue(res, i, 0), strtoull(PQgetvalue(res, i, 1), NULL, 10), blob, len);
		PQfreemem(blob);
	}
	PQclear(res);
	return 0;
}

static int pg_load_gauges(struct tally_sink *base, int64_t window_ms, struct tally_gauges *g)
{
	struct sink_pg *s = (struct sink_pg *)base;
	char w[24];
	const char *v = w;
	PGresult *res;
	int e = pg_connect(s), rc = 0;

	snprintf(w, sizeof(w), "%lld", (long long)window_ms);
	if (e == 0)
		e = run(s, "read gauges", gauges_sql, 1, &v, &res);
	if (e != 0) {
		if (tally_sink_transient(e))
			drop(s);
		return e;
	}
	for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
		const uint8_t *k = (const uint8_t *)PQgetvalue(res, i, 0);
		int n = PQgetlength(res, i, 0);

		if (!PQgetisnull(res, i, 1) && n > 0 && n <= 255 && tally_gauge_key(k, (uint8_t)n))
			rc = tally_gauges_set(g, k, (uint8_t)n, strtod(PQgetvalue(res, i, 1), NULL));
	}
	PQclear(res);
	return rc;
}

static void pg_close(struct tally_sink *base)
{
	struct sink_pg *s = (struct sink_pg *)base;

	drop(s);
	if (s->password != NULL)
		memset(s->password, 0, strlen(s->password));
	if (s->conninfo != NULL)
		memset(s->conninfo, 0, strlen(s->conninfo));
	free(s->password);
	free(s->conninfo);
	free(s->sk);
	free(s->blob);
	free(s);
}

static const struct tally_sink_ops pg_ops = {
	.write = pg_write,
	.replace = pg_replace,
	.last_seq = pg_last_seq,
	.close = pg_close,
	.dgrams_since = pg_dgrams_since,
	.load_gauges = pg_load_gauges,
};

static const char *opt(const PQconninfoOption *o, const char *name, const char *def)
{
	for (; o->keyword != NULL; o++)
		if (strcmp(o->keyword, name) == 0 && o->val != NULL && o->val[0] != '\0')
			return o->val;
	return def;
}

/* Keep what errors may name (hosts, ports, database) and the password to scrub. */
static int parse_conninfo(struct sink_pg *s, const char *conninfo, char *err, size_t errlen)
{
	char *msg = NULL;
	PQconninfoOption *o = PQconninfoParse(conninfo, &msg);

	if (o == NULL) {
		snprintf(err, errlen, "pg_conninfo: not a libpq connection string: %s",
			 msg != NULL ? msg : "out of memory");
		err[strcspn(err, "\n")] = '\0';
		PQfreemem(msg);
		return -EINVAL;
	}
	snprintf(s->where, sizeof(s->where), "%.70s:%.30s/%.50s",
		 opt(o, "host", opt(o, "hostaddr", "localhost")), opt(o, "port", "5432"),
		 opt(o, "dbname", opt(o, "user", "(default)")));
	s->password = strdup(opt(o, "password", ""));
	PQconninfoFree(o);
	return 0;
}

struct tally_sink *tally_sink_pg_open(const char *conninfo, unsigned timeout_ms, char *err,
				      size_t errlen)
{
	struct sink_pg *s;

	if (errlen > 0)
		err[0] = '\0';
	if (conninfo == NULL || conninfo[0] == '\0') {
		snprintf(err, errlen, "pg_conninfo: empty: set a libpq connection string");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL || (s->conninfo = strdup(conninfo)) == NULL ||
	    (s->sk = malloc(sizeof(*s->sk))) == NULL ||
	    (s->blob = malloc(TALLY_SKETCH_BLOB_MAX)) == NULL) {
		snprintf(err, errlen, "postgres: out of memory");
		if (s != NULL)
			free(s->conninfo), free(s->sk);
		free(s);
		return NULL;
	}
	tally_pctl_parse(TALLY_PCTL_DEFAULT, &s->pct, err, errlen);
	s->base.ops = &pg_ops;
	s->base.name = "postgres";
	s->timeout_ms = timeout_ms;
	s->method = PG_COPY;
	if (parse_conninfo(s, conninfo, err, errlen) != 0 || s->password == NULL) {
		if (s->password == NULL && err[0] == '\0')
			snprintf(err, errlen, "postgres: out of memory");
		pg_close(&s->base);
		return NULL;
	}
	return &s->base;
}

int tally_sink_pg_set_method(struct tally_sink *base, const char *method)
{
	struct sink_pg *s = (struct sink_pg *)base;

	if (strcmp(method, "copy") != 0 && strcmp(method, "pipeline") != 0)
		return -EINVAL;
	if (s->conn != NULL && s->method != (method[0] == 'c' ? PG_COPY : PG_PIPELINE))
		drop(s); /* the session set-up differs: staging table or prepared upsert */
	s->method = method[0] == 'c' ? PG_COPY : PG_PIPELINE;
	return 0;
}

int tally_sink_pg_set_percentiles(struct tally_sink *base, const char *list, char *err,
				  size_t errlen)
{
	return tally_pctl_parse(list, &((struct sink_pg *)base)->pct, err, errlen);
}

static struct tally_sink *pg_open_cfg(const struct tally_config *c, char *err, size_t errlen)
{
	struct tally_sink *s = tally_sink_pg_open(c->pg_conninfo, (unsigned)c->sink_timeout_ms,
						  err, errlen);

	if (s != NULL && tally_sink_pg_set_method(s, c->pg_method) != 0) {
		snprintf(err, errlen, "pg_method: \"%s\" is not copy or pipeline", c->pg_method);
		s->ops->close(s);
		return NULL;
	}
	if (s != NULL && tally_sink_pg_set_percentiles(s, c->statsd_percentiles, err, errlen) != 0) {
		s->ops->close(s);
		return NULL;
	}
	return s;
}

static struct tally_sink_type pg_type = {
	.name = "postgres",
	.help = "a PostgreSQL server through libpq (pg_conninfo)",
	.open = pg_open_cfg,
};
TALLY_SINK_REGISTER(pg_type)
