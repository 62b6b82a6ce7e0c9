/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-sink-bench: rows/s a sink commits, for batches of several sizes. Each
 * run writes K batches over the same fresh keys (the first inserts, the others
 * update, as a flusher does window after window), timed end to end including
 * the commit; three runs per size give the median and the range. Used to pick
 * the PostgreSQL sink's pg_method (figures in sink_pg.c) and to size the Redis
 * sinks (the cluster figures include a WAIT per master and batch);
 * perf/sink_bench.sh drives it for perf/RESULTS.md.
 *
 * Shards (--shard CONNINFO, two or more times, instead of --conninfo): each
 * batch is split with the hash ring (shard.h) and the parts written one after
 * the other, as the sink writer's single thread writes its lanes; the time
 * includes the split.
 *
 *   tally-sink-bench --sink sqlite|postgres|redis|redis-cluster
 *                    [--conninfo STR | --shard STR... | --path FILE | --addr HOST:PORT[,...]]
 *                    [--method copy|pipeline] [--rows N[,N...]] [--batches K]
 *                    [--runs R] [--timeout-ms MS]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shard.h"
#include "sink.h"

struct opts {
	const char *sink, *conninfo, *path, *method, *rows, *addr;
	unsigned batches, runs, timeout_ms;
	const char *shard[TALLY_SHARD_MAX];
	unsigned nshards;
};

/* The sinks written: one, or one per shard with the ring that splits. */
struct target {
	struct tally_sink *s[TALLY_SHARD_MAX];
	unsigned n;
	struct tally_ring ring;
	struct tally_batch parts[TALLY_SHARD_MAX];
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct tally_sink *open_sink(const struct opts *o, const char *conninfo)
{
	char err[256];
	struct tally_sink *s;

	if (strcmp(o->sink, "postgres") == 0) {
		s = tally_sink_pg_open(conninfo, o->timeout_ms, err, sizeof(err));
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

static void close_target(struct target *t)
{
	for (unsigned i = 0; i < t->n; i++) {
		if (t->s[i] != NULL)
			t->s[i]->ops->close(t->s[i]);
		if (t->ring.nshards)
			tally_batch_free(&t->parts[i]);
	}
	tally_ring_free(&t->ring);
}

/* The sink, or one sink per shard and the ring over names s0, s1...; 0 or -1. */
static int open_target(struct target *t, const struct opts *o)
{
	char names[TALLY_SHARD_MAX][16];
	const char *np[TALLY_SHARD_MAX];

	memset(t, 0, sizeof(*t));
	if (o->nshards == 0) {
		t->n = 1;
		return (t->s[0] = open_sink(o, o->conninfo)) ? 0 : -1;
	}
	for (unsigned i = 0; i < o->nshards; i++) {
		snprintf(names[i], sizeof(names[i]), "s%u", i);
		np[i] = names[i];
		tally_batch_init(&t->parts[i], "", 0);
	}
	if (tally_ring_build(&t->ring, np, o->nshards) != 0) {
		fprintf(stderr, "tally-sink-bench: cannot build the hash ring\n");
		return -1;
	}
	for (t->n = 0; t->n < o->nshards; t->n++)
		if ((t->s[t->n] = open_sink(o, o->shard[t->n])) == NULL) {
			t->n++;
			close_target(t);
			return -1;
		}
	return 0;
}

/* One batch into the target: split per shard, parts one after the other. */
static int write_target(struct target *t, const struct tally_batch *b)
{
	int r;

	if (t->ring.nshards == 0)
		return t->s[0]->ops->write(t->s[0], (struct tally_batch *)b);
	if ((r = tally_ring_split(&t->ring, b, t->parts)) < 0)
		return r;
	for (unsigned i = 0; i < t->n; i++)
		if ((r = t->s[i]->ops->write(t->s[i], &t->parts[i])) < 0) {
			fprintf(stderr, "tally-sink-bench: shard %u: %s\n", i, t->s[i]->err);
			return r;
		}
	return 0;
}

/* One run: K batches of n rows over fresh keys; rows/s, or a negative errno. */
static double one_run(struct target *t, const struct opts *o, uint32_t n, unsigned run)
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
		r = write_target(t, &b);
	}
	t0 = now_s() - t0;
	tally_batch_free(&b);
	if (r < 0) {
		fprintf(stderr, "tally-sink-bench: write: %s\n", t->s[0]->err);
		return r;
	}
	return (double)n * o->batches / t0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int bench_size(struct target *t, const struct opts *o, uint32_t n)
{
	double v[16];

	for (unsigned i = 0; i < o->runs; i++)
		if ((v[i] = one_run(t, o, n, i)) < 0)
			return -1;
	qsort(v, o->runs, sizeof(v[0]), cmp);
	printf("%-13s %-8s shards %u rows/batch %8u batches %u: median %.0f rows/s [%.0f-%.0f] "
	       "(%u runs)\n", o->sink, strcmp(o->sink, "postgres") == 0 ? o->method : "-",
	       t->n, n, o->batches,
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
		else if (strcmp(k, "--shard") == 0 && o->nshards < TALLY_SHARD_MAX)
			o->shard[o->nshards++] = v;
		else if (strcmp(k, "--path") == 0) o->path = v;
		else if (strcmp(k, "--addr") == 0) o->addr = v;
		else if (strcmp(k, "--method") == 0) o->method = v;
		else if (strcmp(k, "--rows") == 0) o->rows = v;
		else if (strcmp(k, "--batches") == 0) o->batches = (unsigned)atoi(v);
		else if (strcmp(k, "--runs") == 0) o->runs = (unsigned)atoi(v);
		else if (strcmp(k, "--timeout-ms") == 0) o->timeout_ms = (unsigned)atoi(v);
		else return -1;
	}
	if (argc % 2 == 0 || o->batches < 1 || o->runs < 1 || o->runs > 16 || o->nshards == 1 ||
	    (o->nshards > 0 && strcmp(o->sink, "postgres") != 0) ||
	    (strcmp(o->sink, "sqlite") != 0 && strcmp(o->sink, "postgres") != 0 &&
	     strcmp(o->sink, "redis") != 0 && strcmp(o->sink, "redis-cluster") != 0))
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {"sqlite", "", "tally-bench.db", "copy", "10000,100000,1000000",
			 "127.0.0.1:6379", 2, 3, 600000, {NULL}, 0};
	struct target t;
	char *list, *tok, *save = NULL;
	int rc = 0;

	if (parse(&o, argc, argv) != 0) {
		fprintf(stderr, "usage: tally-sink-bench --sink sqlite|postgres|redis|redis-cluster "
			"[--conninfo STR | --shard STR --shard STR... | --path FILE | --addr "
			"HOST:PORT[,...]] [--method copy|pipeline] [--rows N[,N...]] [--batches K] "
			"[--runs R<=16] [--timeout-ms MS]\n");
		return 2;
	}
	if (open_target(&t, &o) != 0)
		return 1;
	list = strdup(o.rows);
	for (tok = strtok_r(list, ",", &save); tok != NULL && rc == 0;
	     tok = strtok_r(NULL, ",", &save))
		rc = bench_size(&t, &o, (uint32_t)strtoul(tok, NULL, 10)) ? 1 : 0;
	free(list);
	close_target(&t);
	return rc;
}
