/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-sink-bench: rows/s a sink commits, for batches of several sizes. Each
 * run writes K batches over the same fresh keys (the first inserts, the others
 * update, as a flusher does window after window), timed end to end including
 * the commit; three runs per size give the median and the range. Used to pick
 * the PostgreSQL sink's pg_method (figures in sink_pg.c) and to size the Redis
 * sinks (the cluster figures include a WAIT per master and batch).
 *
 *   tally-sink-bench --sink sqlite|postgres|redis|redis-cluster
 *                    [--conninfo STR | --path FILE | --addr HOST:PORT[,...]]
 *                    [--method copy|pipeline] [--rows N[,N...]] [--batches K]
 *                    [--runs R] [--timeout-ms MS]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sink.h"

struct opts {
	const char *sink, *conninfo, *path, *method, *rows, *addr;
	unsigned batches, runs, timeout_ms;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct tally_sink *open_sink(const struct opts *o)
{
	char err[256];
	struct tally_sink *s;

	if (strcmp(o->sink, "postgres") == 0) {
		s = tally_sink_pg_open(o->conninfo, o->timeout_ms, err, sizeof(err));
		if (s != NULL && tally_sink_pg_set_method(s, o->method) != 0) {
			snprintf(err, sizeof(err), "--method: \"%s\" is not copy or pipeline", o->method);
			s->ops->close(s);
			s = NULL;
		}
	} else if (strcmp(o->sink, "redis") == 0) {
		s = tally_sink_redis_open(o->addr, "", "bench:", o->timeout_ms, err, sizeof(err));
	} else if (strcmp(o->sink, "redis-cluster") == 0) {
		s = tally_sink_redis_cluster_open(o->addr, "", "bench:", o->timeout_ms, err,
						  sizeof(err));
	} else {
		s = tally_sink_sqlite_open(o->path, 1024, err, sizeof(err));
	}
	if (s == NULL)
		fprintf(stderr, "tally-sink-bench: %s\n", err);
	return s;
}

/* One run: K batches of n rows over fresh keys; rows/s, or a negative errno. */
static double one_run(struct tally_sink *s, const struct opts *o, uint32_t n, unsigned run)
{
	struct tally_batch b;
	char app[64], key[48];
	double t0;
	int r = 0;

	snprintf(app, sizeof(app), "bench-%d-%u-%u", getpid(), n, run);
	tally_batch_init(&b, app, 10000);
	for (uint32_t i = 0; i < n; i++) {
		int len = snprintf(key, sizeof(key), "bench.%d.%u.%u.key%u|c", getpid(), n, run, i);

		if (tally_batch_add(&b, (const uint8_t *)key, (uint8_t)len, 1700000000000LL, 3,
				    7.5, 1, 4, 2) != 0)
			return -ENOMEM;
	}
	t0 = now_s();
	for (unsigned k = 1; k <= o->batches && r >= 0; k++) {
		b.seq = k;
		b.now_ms = k;
		r = s->ops->write(s, &b);
	}
	t0 = now_s() - t0;
	tally_batch_free(&b);
	if (r < 0) {
		fprintf(stderr, "tally-sink-bench: write: %s\n", s->err);
		return r;
	}
	return (double)n * o->batches / t0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int bench_size(struct tally_sink *s, const struct opts *o, uint32_t n)
{
	double v[16];

	for (unsigned i = 0; i < o->runs; i++)
		if ((v[i] = one_run(s, o, n, i)) < 0)
			return -1;
	qsort(v, o->runs, sizeof(v[0]), cmp);
	printf("%-13s %-8s rows/batch %8u batches %u: median %.0f rows/s [%.0f-%.0f] (%u runs)\n",
	       o->sink, strcmp(o->sink, "postgres") == 0 ? o->method : "-", n, o->batches,
	       v[o->runs / 2], v[0], v[o->runs - 1], o->runs);
	fflush(stdout);
	return 0;
}

static int parse(struct opts *o, int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];

		if (strcmp(k, "--sink") == 0) o->sink = v;
		else if (strcmp(k, "--conninfo") == 0) o->conninfo = v;
		else if (strcmp(k, "--path") == 0) o->path = v;
		else if (strcmp(k, "--addr") == 0) o->addr = v;
		else if (strcmp(k, "--method") == 0) o->method = v;
		else if (strcmp(k, "--rows") == 0) o->rows = v;
		else if (strcmp(k, "--batches") == 0) o->batches = (unsigned)atoi(v);
		else if (strcmp(k, "--runs") == 0) o->runs = (unsigned)atoi(v);
		else if (strcmp(k, "--timeout-ms") == 0) o->timeout_ms = (unsigned)atoi(v);
		else return -1;
	}
	if (argc % 2 == 0 || o->batches < 1 || o->runs < 1 || o->runs > 16 ||
	    (strcmp(o->sink, "sqlite") != 0 && strcmp(o->sink, "postgres") != 0 &&
	     strcmp(o->sink, "redis") != 0 && strcmp(o->sink, "redis-cluster") != 0))
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {"sqlite", "", "tally-bench.db", "copy", "10000,100000,1000000",
			 "127.0.0.1:6379", 2, 3, 600000};
	struct tally_sink *s;
	char *list, *tok, *save = NULL;
	int rc = 0;

	if (parse(&o, argc, argv) != 0) {
		fprintf(stderr, "usage: tally-sink-bench --sink sqlite|postgres|redis|redis-cluster "
			"[--conninfo STR | --path FILE | --addr HOST:PORT[,...]] [--method "
			"copy|pipeline] [--rows N[,N...]] [--batches K] [--runs R<=16] "
			"[--timeout-ms MS]\n");
		return 2;
	}
	if ((s = open_sink(&o)) == NULL)
		return 1;
	list = strdup(o.rows);
	for (tok = strtok_r(list, ",", &save); tok != NULL && rc == 0;
	     tok = strtok_r(NULL, ",", &save))
		rc = bench_size(s, &o, (uint32_t)strtoul(tok, NULL, 10)) ? 1 : 0;
	free(list);
	s->ops->close(s);
	return rc;
}
