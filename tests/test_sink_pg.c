/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * PostgreSQL sink against a real server that tests/integration/pg_unit.sh
 * starts (its conninfo in TALLY_PG_CONNINFO; without it the test skips, 77):
 * additive upserts by both methods, a replayed batch applied once, appliances
 * and window sizes apart, last_seq, clear errors that name the endpoint and
 * never the password, every call bounded (a server that never answers, a
 * SIGSTOPped server), and, when a standby is given (TALLY_PG_FAILOVER_*),
 * failover through a multi-host conninfo with exact totals; sketch rows merged
 * in tally_sketches (the stored blob is the sketch of every value of both
 * batches, percentiles and distinct estimate recomputed from it).
 */
#include <dirent.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "sink.h"
#include "sketch.h"

static const char *conninfo, *password;
static PGconn *ref; /* the test's own connection, to read what the sink wrote */
static char app[64];

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct tally_sink *open_sink(const char *ci, unsigned timeout_ms, const char *method)
{
	char err[256];
	struct tally_sink *s = tally_sink_pg_open(ci, timeout_ms, err, sizeof(err));

	if (s == NULL)
		fail_msg("open: %s", err);
	assert_int_equal(tally_sink_pg_set_method(s, method), 0);
	return s;
}

static void add(struct tally_batch *b, const char *key, int64_t win, uint64_t count,
		double sum, double min, double max, double last)
{
	assert_int_equal(tally_batch_add(b, (const uint8_t *)key, (uint8_t)strlen(key), win,
					 count, sum, min, max, last), 0);
}

static void batch(struct tally_batch *b, const char *appliance, uint64_t seq, int64_t wms)
{
	tally_batch_init(b, appliance, wms);
	b->seq = seq;
	b->now_ms = 1700000000000LL;
}

/* "count sum min max last" of one row, or "" if absent. */
static const char *row(const char *key, int64_t win, int64_t wms)
{
	static char out[160];
	char w[24], m[24];
	const char *v[3] = {key, w, m};
	PGresult *r;

	snprintf(w, sizeof(w), "%lld", (long long)win);
	snprintf(m, sizeof(m), "%lld", (long long)wms);
	r = PQexecParams(ref, "SELECT count || ' ' || sum || ' ' || min || ' ' || max || ' ' ||"
			 " last FROM tally_counts WHERE key = $1 AND window_start_ms = $2"
			 " AND window_ms = $3", 3, NULL, v, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	snprintf(out, sizeof(out), "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return out;
}

static void no_password(const struct tally_sink *s)
{
	if (password != NULL && password[0] != '\0' && strstr(s->err, password) != NULL)
		fail_msg("the error shows the password: %s", s->err);
}

static int setup(void **st)
{
	(void)st;
	snprintf(app, sizeof(app), "test-%d", getpid());
	ref = PQconnectdb(conninfo);
	if (PQstatus(ref) != CONNECTION_OK) {
		fprintf(stderr, "test connection failed: %s", PQerrorMessage(ref));
		return -1;
	}
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	PQfinish(ref);
	return 0;
}

/* Two batches on one key: count and sum add, min/max combine, last is the later
 * one; a (key, window) twice in one batch folds the same way. */
static void upsert_arithmetic(const char *method)
{
	struct tally_sink *s = open_sink(conninfo, 5000, method);
	struct tally_batch b;
	char a[80], k[40];

	snprintf(a, sizeof(a), "%s-%s", app, method);
	snprintf(k, sizeof(k), "arith-%s-%d", method, getpid());
	batch(&b, a, 1, 1000);
	add(&b, k, 0, 2, 5, 1, 4, 4);
	add(&b, "\xc3\xa9t\xc3\xa9\ttab\nnl", 0, 1, -1.5, -1.5, -1.5, -1.5);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_APPLIED);
	tally_batch_free(&b);
	batch(&b, a, 2, 1000);
	add(&b, k, 0, 3, 6, 0, 3, 2);
	add(&b, k, 0, 1, 0.25, 0.25, 9, 7);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_APPLIED);
	assert_string_equal(row(k, 0, 1000), "6 11.25 0 9 7");
	assert_int_equal(s->ops->last_seq(s, a), 2);
	tally_batch_free(&b);
	s->ops->close(s);
}

/* A member's hash: splitmix64's finalizer, so the bits are uniform. */
static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A blob for a row: a sketch of values lo..hi (timer) or members lo..hi (set). */
static void add_sketch(struct tally_batch *b, struct tally_sketch *all, bool set, int lo, int hi)
{
	static uint8_t blob[TALLY_SKETCH_BLOB_MAX];
	struct tally_sketch *s = malloc(sizeof(*s));

	tally_sketch_init(s, set ? TALLY_SK_HLL : TALLY_SK_DDS);
	for (int i = lo; i <= hi; i++) {
		if (set) {
			tally_hll_add(s, mix((uint64_t)i));
			tally_hll_add(all, mix((uint64_t)i));
		} else {
			tally_dds_add(s, i);
			tally_dds_add(all, i);
		}
	}
	assert_int_equal(tally_batch_set_blob(b, blob, (uint32_t)tally_sketch_encode(s, blob)), 0);
	free(s);
}

static void sketches(void **st)
{
	static uint8_t want[TALLY_SKETCH_BLOB_MAX];
	struct tally_sink *s = open_sink(conninfo, 5000, "copy");
	struct tally_sketch *t = malloc(sizeof(*t)), *u = malloc(sizeof(*u));
	struct tally_batch b;
	char a[80], kt[40], ks[40];
	const char *v[1] = {kt};
	PGresult *r;
	size_t n;

	(void)st;
	tally_sketch_init(t, TALLY_SK_DDS);
	tally_sketch_init(u, TALLY_SK_HLL);
	snprintf(a, sizeof(a), "%s-sketch", app);
	snprintf(kt, sizeof(kt), "lat-%d|ms", getpid());
	snprintf(ks, sizeof(ks), "users-%d|s", getpid());
	for (uint64_t seq = 1; seq <= 2; seq++) {
		batch(&b, a, seq, 1000);
		add(&b, kt, 0, 500, 1, 1, 1, 1);
		add_sketch(&b, t, false, (int)seq * 500 - 499, (int)seq * 500);
		add(&b, ks, 0, 3000, 3000, 1, 1, 1);
		add_sketch(&b, u, true, (int)seq * 1000, (int)seq * 1000 + 2999);
		assert_int_equal(s->ops->write(s, &b), TALLY_SINK_APPLIED);
		tally_batch_free(&b);
	}
	r = PQexecParams(ref, "SELECT blob FROM tally_sketches WHERE key = $1", 1, NULL,
			 v, NULL, NULL, 1);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	assert_int_equal(PQntuples(r), 1);
	n = tally_sketch_encode(t, want);
	assert_int_equal(PQgetlength(r, 0, 0), n);
	assert_memory_equal(PQgetvalue(r, 0, 0), want, n);
	PQclear(r);
	r = PQexecParams(ref, "SELECT p50::text, p99::text FROM tally_sketches WHERE key = $1",
			 1, NULL, v, NULL, NULL, 0);
	assert_true(fabs(atof(PQgetvalue(r, 0, 0)) - 500) <= 0.01 * 500);
	assert_true(fabs(atof(PQgetvalue(r, 0, 1)) - 990) <= 0.01 * 990);
	PQclear(r);
	v[0] = ks;
	r = PQexecParams(ref, "SELECT distinct_estimate::text, p50 IS NULL FROM tally_sketches "
			 "WHERE key = $1", 1, NULL, v, NULL, NULL, 0);
	assert_int_equal(PQntuples(r), 1);
	/* members 1000..3999 and 2000..4999: 4000 distinct */
	assert_true(fabs(atof(PQgetvalue(r, 0, 0)) - 4000) <= 3 * 0.0081 * 4000);
	assert_string_equal(PQgetvalue(r, 0, 1), "t");
	PQclear(r);
	free(t), free(u);
	s->ops->close(s);
}

static void upsert_copy(void **st)
{
	(void)st;
	upsert_arithmetic("copy");
}

static void upsert_pipeline(void **st)
{
	(void)st;
	upsert_arithmetic("pipeline");
}

/* The same (appliance, seq) twice counts once; another appliance's seq is its own;
 * another window size is another row. */
static void replay_once(void **st)
{
	struct tally_sink *s = open_sink(conninfo, 5000, "copy");
	struct tally_batch b;
	char k[40], other[80];

	(void)st;
	snprintf(k, sizeof(k), "replay-%d", getpid());
	snprintf(other, sizeof(other), "%s-other", app);
	assert_int_equal(s->ops->last_seq(s, app), 0);
	batch(&b, app, 7, 1000);
	add(&b, k, 5000, 1, 10, 10, 10, 10);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_APPLIED);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_SKIPPED);
	assert_string_equal(row(k, 5000, 1000), "1 10 10 10 10");
	snprintf(b.appliance, sizeof(b.appliance), "%s", other);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_APPLIED);
	assert_string_equal(row(k, 5000, 1000), "2 20 10 10 10");
	b.window_ms = 10000;
	b.seq = 8;
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_APPLIED);
	assert_string_equal(row(k, 5000, 1000), "2 20 10 10 10");
	assert_string_equal(row(k, 5000, 10000), "1 10 10 10 10");
	assert_int_equal(s->ops->last_seq(s, app), 7);
	assert_int_equal(s->ops->last_seq(s, other), 8);
	tally_batch_free(&b);
	s->ops->close(s);
}

/* A row the server refuses (not UTF-8) is a permanent error; the batch is rolled
 * back whole and the sink goes on. */
static void bad_data_permanent(void **st)
{
	struct tally_sink *s = open_sink(conninfo, 5000, "copy");
	struct tally_batch b;
	char k[40];
	int r;

	(void)st;
	snprintf(k, sizeof(k), "bad-%d", getpid());
	batch(&b, app, 100, 1000);
	add(&b, k, 0, 1, 1, 1, 1, 1);
	add(&b, "\xff\xfe", 0, 1, 1, 1, 1, 1);
	r = s->ops->write(s, &b);
	assert_true(r < 0 && !tally_sink_transient(r));
	assert_non_null(strstr(s->err, "127.0.0.1"));
	no_password(s);
	assert_string_equal(row(k, 0, 1000), "");
	tally_batch_clear(&b);
	add(&b, k, 0, 1, 1, 1, 1, 1);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_APPLIED);
	assert_string_equal(row(k, 0, 1000), "1 1 1 1 1");
	tally_batch_free(&b);
	s->ops->close(s);
}

static void open_errors(void **st)
{
	char err[256];

	(void)st;
	assert_null(tally_sink_pg_open("", 1000, err, sizeof(err)));
	assert_string_equal(err, "pg_conninfo: empty: set a libpq connection string");
	assert_null(tally_sink_pg_open("host=127.0.0.1 bogus=1 password=zz9", 1000, err,
				       sizeof(err)));
	assert_non_null(strstr(err, "pg_conninfo"));
	assert_null(strstr(err, "zz9"));
}

/* Nothing listens: refused at once, transient, naming host and port. */
static void refused(void **st)
{
	char ci[200];
	struct tally_sink *s;
	struct tally_batch b;
	int r;

	(void)st;
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=1 dbname=tallydb user=u password=%s",
		 password);
	s = open_sink(ci, 1000, "copy");
	batch(&b, app, 1, 1000);
	add(&b, "k", 0, 1, 1, 1, 1, 1);
	r = s->ops->write(s, &b);
	assert_true(tally_sink_transient(r));
	assert_non_null(strstr(s->err, "127.0.0.1:1/tallydb"));
	no_password(s);
	assert_true(tally_sink_transient((int)s->ops->last_seq(s, app)));
	tally_batch_free(&b);
	s->ops->close(s);
}

/* A listener that accepts (the kernel does) and never answers: -ETIMEDOUT
 * within the timeout and a margin. */
static void silent_server(void **st)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char ci[160];
	struct tally_sink *s;
	struct tally_batch b;
	int64_t t0;
	int r;

	(void)st;
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%u user=u sslmode=disable", ntohs(sa.sin_port));
	s = open_sink(ci, 500, "copy");
	batch(&b, app, 1, 1000);
	add(&b, "k", 0, 1, 1, 1, 1, 1);
	t0 = mono_ms();
	r = s->ops->write(s, &b);
	assert_int_equal(r, -ETIMEDOUT);
	assert_true(mono_ms() - t0 < 500 + 400);
	assert_non_null(strstr(s->err, "no answer within 500 ms"));
	tally_batch_free(&b);
	s->ops->close(s);
	close(fd);
}

/* SIGSTOP or SIGCONT the postmaster and every child of it. */
static void signal_server(pid_t pm, int sig)
{
	DIR *d = opendir("/proc");
	struct dirent *e;

	assert_non_null(d);
	kill(pm, sig);
	while ((e = readdir(d)) != NULL) {
		char path[300], buf[512], *p;
		FILE *f;
		int ppid;

		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fgets(buf, sizeof(buf), f) != NULL && (p = strrchr(buf, ')')) != NULL &&
		    sscanf(p + 2, "%*c %d", &ppid) == 1 && ppid == pm)
			kill(atoi(e->d_name), sig);
		fclose(f);
	}
	closedir(d);
}

/* A frozen server: write returns a transient error within the timeout; after
 * SIGCONT the retry under the same seq applies the batch exactly once. */
static void frozen_server(void **st)
{
	const char *pid = getenv("TALLY_PG_PID");
	struct tally_sink *s = open_sink(conninfo, 700, "copy");
	struct tally_batch b;
	char k[40];
	int64_t t0;
	int r;

	(void)st;
	if (pid == NULL)
		skip();
	snprintf(k, sizeof(k), "frozen-%d", getpid());
	batch(&b, app, 200, 1000);
	add(&b, k, 0, 1, 1, 1, 1, 1);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_APPLIED);
	b.seq = 201;
	signal_server((pid_t)atoi(pid), SIGSTOP);
	t0 = mono_ms();
	r = s->ops->write(s, &b);
	signal_server((pid_t)atoi(pid), SIGCONT);
	assert_true(tally_sink_transient(r));
	assert_true(mono_ms() - t0 < 700 + 500);
	no_password(s);
	r = s->ops->write(s, &b);
	assert_true(r == TALLY_SINK_APPLIED || r == TALLY_SINK_SKIPPED);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_SKIPPED);
	assert_string_equal(row(k, 0, 1000), "2 2 1 1 1");
	tally_batch_free(&b);
	s->ops->close(s);
}

/* A wrong password: permanent (-EACCES), the endpoint named, the password not. */
static void wrong_password(void **st)
{
	char ci[600];
	struct tally_sink *s;

	(void)st;
	snprintf(ci, sizeof(ci), "%s password=not-%s", conninfo, password);
	s = open_sink(ci, 2000, "copy");
	assert_int_equal(s->ops->last_seq(s, app), -EACCES);
	assert_non_null(strstr(s->err, "127.0.0.1"));
	assert_non_null(strstr(s->err, "authentication failed"));
	no_password(s);
	assert_null(strstr(s->err, "not-"));
	s->ops->close(s);
}

/* Write like the flusher: retry transient errors under the same seq. Returns
 * how many attempts failed. */
static int write_retry(struct tally_sink *s, const struct tally_batch *b)
{
	int fails = 0, r;

	while ((r = s->ops->write(s, b)) < 0) {
		if (!tally_sink_transient(r) || ++fails > 100)
			fail_msg("write seq %llu: %s", (unsigned long long)b->seq, s->err);
		usleep(100 * 1000);
	}
	return fails;
}

/* Primary and synchronous standby behind one multi-host conninfo with
 * target_session_attrs=read-write: after the primary dies (immediate stop) and
 * the standby is promoted, the next writes land on it; totals are exact. */
static void failover(void **st)
{
	const char *ci = getenv("TALLY_PG_FAILOVER_CONNINFO"), *cmd = getenv("TALLY_PG_FAILOVER_CMD");
	struct tally_sink *s;
	struct tally_batch b;
	char a[80], k[48], q[300];
	uint64_t want = 0;
	int fails = 0;
	PGconn *c;
	PGresult *r;

	(void)st;
	if (ci == NULL || cmd == NULL)
		skip();
	s = open_sink(ci, 2000, "copy");
	snprintf(a, sizeof(a), "%s-failover", app);
	for (uint64_t seq = 1; seq <= 40; seq++) {
		batch(&b, a, seq, 1000);
		for (int i = 0; i < 50; i++) {
			snprintf(k, sizeof(k), "fo-%d-%d", getpid(), i);
			add(&b, k, 0, seq, (double)seq, 1, (double)seq, (double)seq);
		}
		if (seq == 20)
			assert_int_equal(system(cmd), 0);
		fails += write_retry(s, &b);
		want += 50 * seq;
		tally_batch_free(&b);
	}
	assert_true(fails > 0); /* the primary's death was seen, and survived */
	c = PQconnectdb(ci);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	snprintf(q, sizeof(q), "SELECT (SELECT sum(count) FROM tally_counts WHERE key LIKE"
		 " 'fo-%d-%%') || ' ' || (SELECT count(*) FROM tally_batches WHERE appliance ="
		 " '%s')", getpid(), a);
	r = PQexec(c, q);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	snprintf(q, sizeof(q), "%llu 40", (unsigned long long)want);
	assert_string_equal(PQgetvalue(r, 0, 0), q);
	assert_int_equal(s->ops->last_seq(s, a), 40);
	PQclear(r);
	PQfinish(c);
	s->ops->close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(open_errors),
		cmocka_unit_test(upsert_copy),
		cmocka_unit_test(upsert_pipeline),
		cmocka_unit_test(replay_once),
		cmocka_unit_test(sketches),
		cmocka_unit_test(bad_data_permanent),
		cmocka_unit_test(refused),
		cmocka_unit_test(silent_server),
		cmocka_unit_test(wrong_password),
		cmocka_unit_test(frozen_server),
		cmocka_unit_test(failover), /* last: it kills the primary */
	};

	conninfo = getenv("TALLY_PG_CONNINFO");
	password = getenv("TALLY_PG_PASSWORD");
	if (conninfo == NULL || conninfo[0] == '\0') {
		fprintf(stderr, "test_sink_pg: TALLY_PG_CONNINFO not set (no server): skipped\n");
		return 77;
	}
	if (password == NULL)
		password = "";
	return cmocka_run_group_tests(tests, setup, teardown);
}
