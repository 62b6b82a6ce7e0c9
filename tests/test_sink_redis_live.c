/* SPDX-License-Identifier: BSD-3-Clause */
/* Redis sinks against live servers started by tests/integration/sink_redis.sh
 * (exit 77, skipped, without them): upsert arithmetic, a batch applied once,
 * appliances and window sizes apart, last_seq, a stopped server failing
 * transiently within the timeout, a wrong password failing clearly; and a
 * cluster kept written while a master is SIGKILLed mid-batch (no batch
 * reported APPLIED may ever be applied again: its replays are SKIPPED) and
 * then while another master is SIGSTOPped (each write returns within about the
 * timeout). The wrapper then checks the cluster's totals exactly with
 * tally-check: every batch counted once, lost parts of failed attempts
 * included. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <hiredis/hiredis.h>

#include "sink.h"
#include "sketch.h"

static const char *env(const char *n)
{
	const char *v = getenv(n);

	return v != NULL ? v : "";
}

static struct tally_sink *open_plain(void)
{
	char err[256];
	struct tally_sink *s = tally_sink_redis_open(env("TALLY_REDIS_ADDR"), "", "t:", 1000, err,
						     sizeof(err));

	if (s == NULL)
		fail_msg("%s", err);
	return s;
}

static void batch(struct tally_batch *b, const char *app, uint64_t seq, int64_t wms)
{
	tally_batch_free(b);
	tally_batch_init(b, app, wms);
	b->seq = seq;
	b->now_ms = 1;
}

static void add(struct tally_batch *b, const char *key, int64_t win, uint64_t n, double sum,
		double mn, double mx, double last)
{
	assert_int_equal(tally_batch_add(b, (const uint8_t *)key, (uint8_t)strlen(key), win, n, sum,
					 mn, mx, last), 0);
}

/* "count,sum,min,max,last" of a stored hash, or "none". */
static void row(const char *key, char *out, size_t len)
{
	char host[64];
	int port;
	redisContext *c;
	redisReply *r;

	sscanf(env("TALLY_REDIS_ADDR"), "%63[^:]:%d", host, &port);
	c = redisConnect(host, port);
	r = redisCommand(c, "HMGET %s count sum min max last", key);
	if (r->element[0]->type == REDIS_REPLY_NIL)
		snprintf(out, len, "none");
	else
		snprintf(out, len, "%s,%s,%s,%s,%s", r->element[0]->str, r->element[1]->str,
			 r->element[2]->str, r->element[3]->str, r->element[4]->str);
	freeReplyObject(r);
	redisFree(c);
}

static void test_upsert_once(void **st)
{
	struct tally_sink *s = open_plain();
	struct tally_batch b = {0};
	char got[128];

	(void)st;
	assert_int_equal(s->ops->last_seq(s, "a"), 0);
	batch(&b, "a", 1, 1000);
	add(&b, "k", 5000, 2, 7, 3, 4, 4);
	add(&b, "j", 5000, 1, -1, -1, -1, -1);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_APPLIED);
	batch(&b, "a", 2, 1000);
	add(&b, "k", 5000, 3, 3.5, 0.5, 9, 2);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_APPLIED);
	/* the same batch again: skipped whole */
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_SKIPPED);
	row("t:c:1000:5000:k", got, sizeof(got));
	assert_string_equal(got, "5,10.5,0.5,9,2");
	/* another appliance with the same seq is another batch */
	batch(&b, "b", 2, 1000);
	add(&b, "k", 5000, 1, 1, 1, 1, 1);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_APPLIED);
	row("t:c:1000:5000:k", got, sizeof(got));
	assert_string_equal(got, "6,11.5,0.5,9,1");
	/* another window size stays apart */
	batch(&b, "a", 3, 2000);
	add(&b, "k", 4000, 1, 1, 1, 1, 1);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_APPLIED);
	row("t:c:2000:4000:k", got, sizeof(got));
	assert_string_equal(got, "1,1,1,1,1");
	assert_int_equal(s->ops->last_seq(s, "a"), 3);
	assert_int_equal(s->ops->last_seq(s, "b"), 2);
	tally_batch_free(&b);
	s->ops->close(s);
}

static void write_new(struct tally_sink *s, const struct tally_batch *b);
static void write_replay(struct tally_sink *s, const struct tally_batch *b);

/* HMGET of key's fields on the server at addr, following a cluster's MOVED. */
static redisReply *hmget(const char *addr, const char *key, const char *const *fields, int n)
{
	const char *argv[16] = {"HMGET", key};
	char host[64];
	int port;

	for (int i = 0; i < n; i++)
		argv[2 + i] = fields[i];
	sscanf(addr, "%63[^:]:%d", host, &port);
	for (int hop = 0; hop < 3; hop++) {
		redisContext *c = redisConnect(host, port);
		redisReply *r = redisCommandArgv(c, 2 + n, argv, NULL);

		redisFree(c);
		assert_non_null(r);
		if (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "MOVED", 5) != 0)
			return r;
		sscanf(strrchr(r->str, ' ') + 1, "%63[^:]:%d", host, &port);
		freeReplyObject(r);
	}
	fail_msg("%s: too many redirects", key);
	return NULL;
}

/*
 * Sketch rows merged in the server: 10 flushes of a timer (values over 9
 * decades, negatives and zeros: both stores collapse) and of a set (100,000
 * members) must leave in the row's hash the percentiles tally_dds_quantile
 * reads from the C merge of every flush's sketch, to the last digit, and the
 * distinct count Redis's PFCOUNT gives, which must be the C estimate (rounded)
 * and within 3 standard errors of the truth. Replays change nothing.
 */
static void sketch_rounds(struct tally_sink *s, const char *addr, const char *prefix)
{
	static uint8_t blob[TALLY_SKETCH_BLOB_MAX];
	static const char *const pf[] = {"p50", "p90", "p95", "p99", "p999", "count"};
	static const double q[] = {0.5, 0.9, 0.95, 0.99, 0.999};
	struct tally_sketch *all = malloc(sizeof(*all)), *one = malloc(sizeof(*one));
	struct tally_sketch *set = malloc(sizeof(*set)), *sone = malloc(sizeof(*sone));
	struct tally_batch b = {0};
	char key[128], want[64];
	uint64_t x = 88172645463325252ULL;
	redisReply *r;

	tally_sketch_init(all, TALLY_SK_DDS);
	tally_sketch_init(set, TALLY_SK_HLL);
	for (uint64_t seq = 1; seq <= 10; seq++) {
		tally_sketch_init(one, TALLY_SK_DDS);
		tally_sketch_init(sone, TALLY_SK_HLL);
		for (int i = 0; i < 2000; i++) {
			double v = (double)(i % 7 == 0 ? 0 : i % 5 == 0 ? -1 : 1) *
				   pow(10, (double)((seq * 2000 + (uint64_t)i) % 900) / 100 - 3);

			tally_dds_add(one, v), tally_dds_add(all, v);
		}
		for (int i = 0; i < 10000; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64: the member hashes */
			tally_hll_add(sone, x), tally_hll_add(set, x);
		}
		batch(&b, "sk", seq, 1000);
		add(&b, "lat|ms", 0, 2000, 1, 1, 1, 1);
		assert_int_equal(tally_batch_set_blob(&b, blob, (uint32_t)tally_sketch_encode(one, blob)), 0);
		add(&b, "users|s", 0, 10000, 10000, 1, 1, 1);
		assert_int_equal(tally_batch_set_blob(&b, blob, (uint32_t)tally_sketch_encode(sone, blob)), 0);
		write_new(s, &b);
		write_replay(s, &b);
	}
	snprintf(key, sizeof(key), "%sc:1000:0:lat|ms", prefix);
	r = hmget(addr, key, pf, 6);
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_string_equal(r->element[5]->str, "20000");
	for (int i = 0; i < 5; i++) {
		snprintf(want, sizeof(want), "%.17g", tally_dds_quantile(all, q[i]));
		assert_non_null(r->element[i]->str);
		assert_string_equal(r->element[i]->str, want);
	}
	freeReplyObject(r);
	snprintf(key, sizeof(key), "%sc:1000:0:users|s", prefix);
	r = hmget(addr, key, (const char *const[]){"distinct", "count"}, 2);
	assert_non_null(r->element[0]->str);
	print_message("distinct: redis %s, C %.1f, true 100000\n", r->element[0]->str,
		      tally_hll_estimate(set));
	assert_true(fabs(atof(r->element[0]->str) - tally_hll_estimate(set)) <= 1);
	assert_true(fabs(atof(r->element[0]->str) - 100000) <= 3 * 0.0081 * 100000);
	assert_string_equal(r->element[1]->str, "100000");
	freeReplyObject(r);
	free(all), free(one), free(set), free(sone);
	tally_batch_free(&b);
}

static void test_sketch_merged(void **st)
{
	struct tally_sink *s = open_plain();

	(void)st;
	sketch_rounds(s, env("TALLY_REDIS_ADDR"), "t:");
	s->ops->close(s);
}

static void test_cluster_sketch(void **st)
{
	char err[256], seed[80];
	struct tally_sink *s = tally_sink_redis_cluster_open(env("TALLY_REDIS_CLUSTER_SEEDS"), "",
							     "sk:", 1000, err, sizeof(err));

	(void)st;
	if (s == NULL)
		fail_msg("%s", err);
	snprintf(seed, sizeof(seed), "%.*s", (int)strcspn(env("TALLY_REDIS_CLUSTER_SEEDS"), ","),
		 env("TALLY_REDIS_CLUSTER_SEEDS"));
	sketch_rounds(s, seed, "sk:");
	s->ops->close(s);
}

/* 2500 rows = 3 chunks; a retry after the whole batch counts once. */
static void test_chunks(void **st)
{
	struct tally_sink *s = open_plain();
	struct tally_batch b = {0};
	char key[32], got[128];

	(void)st;
	batch(&b, "c", 1, 1000);
	for (int i = 0; i < 2500; i++) {
		snprintf(key, sizeof(key), "row%d", i);
		add(&b, key, 0, 1, i, i, i, i);
	}
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_APPLIED);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_SKIPPED);
	row("t:c:1000:0:row2499", got, sizeof(got));
	assert_string_equal(got, "1,2499,2499,2499,2499");
	tally_batch_free(&b);
	s->ops->close(s);
}

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void test_stopped_server(void **st)
{
	struct tally_sink *s = open_plain();
	struct tally_batch b = {0};
	pid_t pid = (pid_t)atoi(env("TALLY_REDIS_PID"));
	char got[128];
	int64_t t0;
	int r;

	(void)st;
	batch(&b, "stop", 1, 1000);
	add(&b, "k", 0, 1, 1, 1, 1, 1);
	kill(pid, SIGSTOP);
	t0 = now_ms();
	r = s->ops->write(s, &b);
	kill(pid, SIGCONT);
	print_message("stopped server: %d (%s) after %lld ms\n", r, s->err,
		      (long long)(now_ms() - t0));
	assert_true(r < 0 && tally_sink_transient(r));
	assert_true(now_ms() - t0 < 2500);
	/* back: the server may have run the script it had read before it stopped;
	 * either way the retry leaves the row counted once */
	r = s->ops->write(s, &b);
	assert_true(r == TALLY_SINK_APPLIED || r == TALLY_SINK_SKIPPED);
	assert_int_equal(s->ops->write(s, &b), TALLY_SINK_SKIPPED);
	row("t:c:1000:0:k", got, sizeof(got));
	assert_string_equal(got, "1,1,1,1,1");
	tally_batch_free(&b);
	s->ops->close(s);
}

static void test_wrong_password(void **st)
{
	char err[256];
	struct tally_sink *s;

	(void)st;
	s = tally_sink_redis_open(env("TALLY_REDIS_AUTH_ADDR"), "wrong-secret", "t:", 1000, err,
				  sizeof(err));
	assert_null(s);
	print_message("wrong password: %s\n", err);
	assert_non_null(strstr(err, "AUTH"));
	assert_null(strstr(err, "wrong-secret"));
	s = tally_sink_redis_open(env("TALLY_REDIS_AUTH_ADDR"), "s3cret", "t:", 1000, err,
				  sizeof(err));
	assert_non_null(s);
	s->ops->close(s);
}

#define FO_KEYS 3000
#define FO_BATCHES 30

struct fo_expect {
	uint64_t count[FO_KEYS];
	uint64_t seq; /* the last batch written */
	double sum[FO_KEYS], min[FO_KEYS], max[FO_KEYS];
};

/* Write b, retrying transient errors under the same seq as tallyd's flusher
 * does; *failed tells whether some attempt failed first. */
static int write_retrying(struct tally_sink *s, const struct tally_batch *b, bool *failed)
{
	int64_t until = now_ms() + 60000;
	int r;

	*failed = false;
	while ((r = s->ops->write(s, b)) < 0 && tally_sink_transient(r) && now_ms() < until) {
		print_message("batch %llu: %s (retrying)\n", (unsigned long long)b->seq, s->err);
		*failed = true;
		usleep(300 * 1000);
	}
	return r;
}

/* A new batch is APPLIED; only a retry after a failed attempt may find every
 * chunk there already (SKIPPED): an attempt that timed out may still commit
 * later, when its server reads what was sent. A batch a failover partly lost
 * after a failed attempt is re-applied in its lost part: the final totals
 * tell. failed_before says the caller already saw an attempt fail. */
static void write_after(struct tally_sink *s, const struct tally_batch *b, bool failed_before)
{
	bool failed;
	int r = write_retrying(s, b, &failed);

	failed = failed || failed_before;
	if (r != TALLY_SINK_APPLIED && !(failed && r == TALLY_SINK_SKIPPED))
		fail_msg("batch %llu: %d (%s) after %s", (unsigned long long)b->seq, r, s->err,
			 failed ? "a failed attempt" : "no failed attempt");
}

static void write_new(struct tally_sink *s, const struct tally_batch *b)
{
	write_after(s, b, false);
}

/* A batch once reported APPLIED or SKIPPED is SKIPPED for ever. */
static void write_replay(struct tally_sink *s, const struct tally_batch *b)
{
	bool failed;

	assert_int_equal(write_retrying(s, b, &failed), TALLY_SINK_SKIPPED);
}

static void fo_batch(struct tally_batch *b, uint64_t seq, struct fo_expect *e)
{
	char key[32];

	batch(b, "fo", seq, 10000);
	for (int i = 0; i < 1500; i++) {
		int k = (int)((seq * 7919 + (uint64_t)i * 104729) % FO_KEYS);
		double v = (double)(seq % 13) + i % 5;

		snprintf(key, sizeof(key), "fo.key.%d", k);
		add(b, key, 10000, 1, v, v, v, v);
		if (e->count[k] == 0 || v < e->min[k])
			e->min[k] = v;
		if (e->count[k] == 0 || v > e->max[k])
			e->max[k] = v;
		e->count[k]++;
		e->sum[k] += v;
	}
}

static void fo_write_expected(const struct fo_expect *e)
{
	FILE *f = fopen(env("TALLY_REDIS_EXPECTED"), "w");

	assert_non_null(f);
	fprintf(f, "key\twindow_start_ms\twindow_ms\tcount\tsum\tmin\tmax\n");
	for (int k = 0; k < FO_KEYS; k++)
		if (e->count[k])
			fprintf(f, "fo.key.%d\t10000\t10000\t%llu\t%.17g\t%.17g\t%.17g\n", k,
				(unsigned long long)e->count[k], e->sum[k], e->min[k], e->max[k]);
	fclose(f);
}

/* Kill pid in about ms milliseconds, from a child, while the parent writes. */
static void kill_later(pid_t pid, int ms)
{
	pid_t c = fork();

	assert_true(c >= 0);
	if (c == 0) {
		usleep((useconds_t)ms * 1000);
		kill(pid, SIGKILL);
		_exit(0);
	}
}

/* SIGSTOP a master (it takes connections, answers nothing): each write must
 * fail transiently within about sink_timeout_ms (1000 here), not a timeout per
 * call, refresh and dead node; after SIGCONT the same seq goes through. */
static void stopped_master(struct tally_sink *s, struct fo_expect *e, struct tally_batch *b)
{
	pid_t pid = (pid_t)atoi(env("TALLY_REDIS_STOP_PID"));
	int64_t took[3];
	int r[3];
	bool failed = false, applied = false;

	fo_batch(b, ++e->seq, e);
	kill(pid, SIGSTOP);
	for (int i = 0; i < 3; i++) {
		int64_t t0 = now_ms();

		r[i] = s->ops->write(s, b);
		took[i] = now_ms() - t0;
		print_message("stopped master: write %d: %d after %lld ms (%s)\n", i, r[i],
			      (long long)took[i], s->err);
	}
	kill(pid, SIGCONT); /* before any assert: a stopped server outlives SIGTERM */
	for (int i = 0; i < 3; i++) {
		assert_true(r[i] >= 0 || tally_sink_transient(r[i]));
		assert_true(took[i] < 1000 + 400);
		failed = failed || r[i] < 0;
		applied = applied || r[i] == TALLY_SINK_APPLIED;
	}
	/* The stopped master still holds what the timed-out attempts sent: after
	 * SIGCONT it may apply them before the next attempt arrives. */
	if (applied)
		write_replay(s, b);
	else
		write_after(s, b, failed);
}

static void test_cluster_failover(void **st)
{
	struct fo_expect *e = calloc(1, sizeof(*e));
	struct tally_batch b = {0};
	static struct fo_expect scratch;
	char err[256];
	struct tally_sink *s = tally_sink_redis_cluster_open(env("TALLY_REDIS_CLUSTER_SEEDS"), "",
							     "tally:", 1000, err, sizeof(err));

	(void)st;
	if (s == NULL)
		fail_msg("%s", err);
	assert_int_equal(s->ops->last_seq(s, "fo"), 0);
	for (uint64_t seq = 1; seq <= FO_BATCHES; seq++) {
		fo_batch(&b, seq, e);
		e->seq = seq;
		if (seq == 10) {
			/* mid-batch: a part may be on the master only, reported failed */
			print_message("SIGKILL master pid %s\n", env("TALLY_REDIS_KILL_PID"));
			kill_later((pid_t)atoi(env("TALLY_REDIS_KILL_PID")), 3);
		}
		write_new(s, &b);
	}
	/* replays of batches written before and after the failover count nothing */
	for (uint64_t seq = 8; seq <= 12; seq++) {
		fo_batch(&b, seq, &scratch);
		write_replay(s, &b);
	}
	stopped_master(s, e, &b);
	assert_int_equal(s->ops->last_seq(s, "fo"), (int64_t)e->seq);
	fo_write_expected(e);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	tally_batch_free(&b);
	s->ops->close(s);
	free(e);
}

int main(void)
{
	const struct CMUnitTest plain[] = {
		cmocka_unit_test(test_upsert_once),    cmocka_unit_test(test_chunks),
		cmocka_unit_test(test_sketch_merged),
		cmocka_unit_test(test_stopped_server), cmocka_unit_test(test_wrong_password),
	};
	const struct CMUnitTest cluster[] = {
		cmocka_unit_test(test_cluster_sketch), cmocka_unit_test(test_cluster_failover),
	};

	if (getenv("TALLY_REDIS_CLUSTER_SEEDS") != NULL)
		return cmocka_run_group_tests(cluster, NULL, NULL);
	if (getenv("TALLY_REDIS_ADDR") == NULL)
		return 77; /* no server: run through tests/integration/sink_redis.sh */
	return cmocka_run_group_tests(plain, NULL, NULL);
}
