/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The Redis sink (one server; sink_redis_cluster.c is the cluster). Each
 * (key, window) is a hash `P c:<window_ms>:<window_start_ms>:<key>` with the
 * fields count, sum, min, max and last (redis_common.h has the whole layout).
 *
 * A batch is cut into chunks of TALLY_REDIS_CHUNK rows, in batch order, and
 * each chunk is one call of the chunk script (EVALSHA; EVAL when the server
 * lost its script cache), pipelined. The script checks the chunk's marker
 * `P b:<appliance>:<seq>:<chunk>`, and if absent applies the rows, sets the
 * marker and raises `P seq:<appliance>`, atomically. A retry after a failure
 * half way through finds the markers of the chunks that made it and applies
 * only the others: nothing twice, nothing lost. The batch is SKIPPED when every
 * chunk was, APPLIED when any was. last_seq is the highest seq with any chunk
 * applied, so a restarted tallyd never reuses a seq whose markers exist.
 *
 * Markers are kept (no TTL): a spool replayed a month later must still find
 * them. Connect and every call are bounded by sink_timeout_ms; after an I/O
 * error the connection is dropped and the next call reconnects.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "gauge.h"
#include "redis_common.h"
#include "sink.h"

struct sink_redis {
	struct tally_sink base;
	struct tally_redis_node node;
	char password[TALLY_CFG_STR_MAX];
	char prefix[64];
	char sha[41];
	uint64_t timeout_ms;
	struct tally_redis_job job;
	uint32_t *idx;
	size_t idx_cap;
	struct tally_redis_call *calls;
	struct tally_redis_call **todo;
	size_t calls_cap;
};

static int ensure_connected(struct sink_redis *s)
{
	if (s->node.c != NULL)
		return 0;
	return tally_redis_connect(&s->node, s->password, s->timeout_ms, s->sha, s->base.err,
				   sizeof(s->base.err));
}

/* Room for the batch's row order and calls. */
static int reserve(struct sink_redis *s, uint32_t nrows)
{
	size_t ncalls = nrows / TALLY_REDIS_CHUNK + 1;

	if (nrows > s->idx_cap) {
		uint32_t *p = realloc(s->idx, nrows * sizeof(*p));

		if (p == NULL)
			return -ENOMEM;
		s->idx = p;
		s->idx_cap = nrows;
	}
	if (ncalls > s->calls_cap) {
		struct tally_redis_call *c = realloc(s->calls, ncalls * sizeof(*c));
		struct tally_redis_call **t = c != NULL ? realloc(s->todo, ncalls * sizeof(*t)) : NULL;

		if (c != NULL)
			s->calls = c;
		if (t == NULL)
			return -ENOMEM;
		s->todo = t;
		s->calls_cap = ncalls;
	}
	for (uint32_t i = 0; i < nrows; i++)
		s->idx[i] = i;
	return 0;
}

/* Send the calls not done yet (the first round: all). */
static int send_round(struct sink_redis *s, size_t ncalls)
{
	size_t k = 0;
	int e;

	for (size_t i = 0; i < ncalls; i++)
		if (s->calls[i].state == TALLY_REDIS_PENDING || s->calls[i].state == TALLY_REDIS_NOSCRIPT)
			s->todo[k++] = &s->calls[i];
	if (k == 0)
		return 0;
	if ((e = ensure_connected(s)) < 0)
		return e;
	return tally_redis_pipeline(&s->job, &s->node, s->todo, k, s->base.err, sizeof(s->base.err));
}

static int redis_write(struct tally_sink *base, const struct tally_batch *b)
{
	struct sink_redis *s = (struct sink_redis *)base;
	long ncalls;
	int e;

	if (reserve(s, b->nrows) < 0) {
		snprintf(s->base.err, sizeof(s->base.err), "redis: out of memory for %u rows", b->nrows);
		return -ENOMEM;
	}
	ncalls = tally_redis_cut(NULL, b->nrows, TALLY_REDIS_CHUNK, s->calls, s->calls_cap);
	if (ncalls < 0)
		return (int)ncalls;
	s->job.b = b;
	s->job.idx = s->idx;
	/* A second round only for calls that met a server without the script. */
	for (int round = 0; round < 2; round++) {
		if ((e = send_round(s, (size_t)ncalls)) < 0)
			return e;
	}
	return tally_redis_result(s->calls, (size_t)ncalls);
}

static int64_t redis_last_seq(struct tally_sink *base, const char *appliance)
{
	struct sink_redis *s = (struct sink_redis *)base;
	char key[400];
	size_t n = tally_redis_seq_key(key, sizeof(key), s->prefix, appliance);
	int e = ensure_connected(s);

	if (e < 0)
		return e;
	return tally_redis_get_seq(&s->node, key, n, s->base.err, sizeof(s->base.err));
}

static int redis_load_gauges(struct tally_sink *base, int64_t window_ms, struct tally_gauges *g)
{
	struct sink_redis *s = (struct sink_redis *)base;
	struct tally_gauges newest;
	int e = ensure_connected(s);

	if (e < 0)
		return e;
	tally_gauges_init(&newest);
	e = tally_redis_load_gauges(&s->node, s->prefix, window_ms, g, &newest, s->base.err,
				    sizeof(s->base.err));
	tally_gauges_free(&newest);
	return e;
}

static void redis_close(struct tally_sink *base)
{
	struct sink_redis *s = (struct sink_redis *)base;

	tally_redis_close(&s->node);
	tally_redis_job_free(&s->job);
	free(s->idx);
	free(s->calls);
	free(s->todo);
	explicit_bzero(s->password, sizeof(s->password));
	free(s);
}

static const struct tally_sink_ops redis_ops = {
	.write = redis_write,
	.last_seq = redis_last_seq,
	.close = redis_close,
	.load_gauges = redis_load_gauges,
};

struct tally_sink *tally_sink_redis_open(const char *addr, const char *password,
					 const char *prefix, uint64_t timeout_ms, char *err,
					 size_t errlen)
{
	struct sink_redis *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		snprintf(err, errlen, "redis: out of memory");
		return NULL;
	}
	s->base.ops = &redis_ops;
	s->base.name = "redis";
	if (tally_redis_parse_addr(addr, s->node.host, sizeof(s->node.host), &s->node.port) < 0) {
		snprintf(err, errlen, "redis_addr: \"%s\" is not host:port", addr);
		free(s);
		return NULL;
	}
	snprintf(s->password, sizeof(s->password), "%s", password != NULL ? password : "");
	snprintf(s->prefix, sizeof(s->prefix), "%s", prefix);
	s->timeout_ms = timeout_ms;
	s->job = (struct tally_redis_job){.prefix = s->prefix, .sha = s->sha, .with_seq = true};
	tally_pctl_parse(TALLY_PCTL_DEFAULT, &s->job.pct, err, errlen);
	/* Connect now: a wrong address or password should stop tallyd at start. */
	if (ensure_connected(s) < 0) {
		snprintf(err, errlen, "%s", s->base.err);
		redis_close(&s->base);
		return NULL;
	}
	return &s->base;
}

static struct tally_sink *redis_open_cfg(const struct tally_config *c, char *err, size_t errlen)
{
	struct tally_sink *s = tally_sink_redis_open(c->redis_addr, c->redis_password, c->redis_prefix,
				     c->sink_timeout_ms, err, errlen);

	if (s != NULL &&
	    tally_pctl_parse(c->statsd_percentiles, &((struct sink_redis *)s)->job.pct, err, errlen) != 0) {
		s->ops->close(s);
		return NULL;
	}
	return s;
}

static struct tally_sink_type redis_type = {
	.name = "redis",
	.help = "one Redis server (redis_addr, redis_password, redis_prefix)",
	.open = redis_open_cfg,
};
TALLY_SINK_REGISTER(redis_type)
