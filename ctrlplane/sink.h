/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Sinks write flush batches (batch.h). Every sink applies a batch exactly once:
 * it records (appliance, seq) in the same transaction as the rows, and skips a
 * batch whose (appliance, seq) it already holds.
 *
 * Sinks are plug-ins: each file declares a struct tally_sink_type and registers
 * it with TALLY_SINK_REGISTER (a constructor, as grout's modules do); tallyd
 * opens the one named by the `sink` config key, so a new sink touches no switch
 * anywhere. The control library is linked whole so the constructors are kept.
 *
 * Errors are negative errnos, classed by tally_sink_transient(): a transient
 * error (connection lost or refused, timeout, busy) is worth a retry soon; any
 * other (bad schema, refused data, no space, bad credentials) is permanent and
 * the batch goes to the spool at once.
 */
#ifndef TALLY_SINK_H
#define TALLY_SINK_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"

struct tally_config;
struct tally_gauges;

enum tally_sink_result {
	TALLY_SINK_APPLIED = 0,
	TALLY_SINK_SKIPPED = 1, /* (appliance, seq) was applied before */
};

struct tally_sink;

typedef void (*tally_dgrams_fn)(void *arg, const char *appliance, uint64_t seq,
			       const uint8_t *blob, size_t len);

struct tally_sink_ops {
	/* TALLY_SINK_APPLIED, TALLY_SINK_SKIPPED or a negative errno (err filled).
	 * b->now_ms is the committed_ms to record. */
	int (*write)(struct tally_sink *s, const struct tally_batch *b);
	/* Highest seq committed for appliance (0 if none), or a negative errno. */
	int64_t (*last_seq)(struct tally_sink *s, const char *appliance);
	void (*close)(struct tally_sink *s);
	/* The datagram lists (batch.h: tally_batch_dgrams_pack) of the batches
	 * committed at or after since_ms, of every appliance but `except`, or of
	 * `only` (either may be NULL), each to fn with its batch's appliance and
	 * seq. 0 or a negative errno. NULL: the sink keeps no datagram lists. */
	int (*dgrams_since)(struct tally_sink *s, const char *only, const char *except,
			    int64_t since_ms, tally_dgrams_fn fn, void *arg);
	/* tally-recount --replace; NULL when the sink cannot. In one transaction:
	 * record (appliance, seq) as write does (SKIPPED if there), delete every row
	 * of the window (win_start, b->window_ms), of any key, whoever wrote it, and
	 * insert b's rows, which all belong to that window. Same results as write. */
	int (*replace)(struct tally_sink *s, const struct tally_batch *b, int64_t win_start);
	/* Optional: the `last` of every gauge key's newest window of window_ms into
	 * g (the gauge state after a restart). 0 or a negative errno (err filled). */
	int (*load_gauges)(struct tally_sink *s, int64_t window_ms, struct tally_gauges *g);
};

struct tally_sink {
	const struct tally_sink_ops *ops;
	const char *name; /* the type's name */
	char err[256];    /* last error, for logs and tallyctl */
};

struct tally_sink_type {
	const char *name;
	/* One line for `tallyd --help-config` and errors. */
	const char *help;
	/* Open from the config (its own prefixed keys). NULL with err naming the key. */
	struct tally_sink *(*open)(const struct tally_config *c, char *err, size_t errlen);
	struct tally_sink_type *next;
};

void tally_sink_register(struct tally_sink_type *t);
const struct tally_sink_type *tally_sink_find(const char *name);
/* "a, b, c": the registered names, for errors. */
void tally_sink_names(char *buf, size_t len);
/* Open the sink the config names. NULL with err. */
struct tally_sink *tally_sink_open(const struct tally_config *c, char *err, size_t errlen);

/*
 * The percentiles sinks store for each sketch row (statsd_percentiles), and
 * the column each goes in: "p" and the number without its point, so
 * "50,90,95,99,99.9" gives p50 p90 p95 p99 p999.
 */
#define TALLY_PCTL_MAX 16
#define TALLY_PCTL_DEFAULT "50,90,95,99,99.9"
struct tally_pctl {
	unsigned n;
	double q[TALLY_PCTL_MAX]; /* 0..1 */
	char col[TALLY_PCTL_MAX][16];
};
/* Parse a list such as "50,90,99.9" (each 0 < x < 100 or 100, distinct, up to
 * 16, at most 4 decimals). 0, or -EINVAL with err naming the bad item. */
int tally_pctl_parse(const char *list, struct tally_pctl *out, char *err, size_t errlen);

/* The SQLite sink opened directly (tests, benchmarks), with the default
 * percentiles. NULL with err. */
struct tally_sink *tally_sink_sqlite_open(const char *path, unsigned cache_mb, char *err,
					  size_t errlen);
/* The same, storing the percentiles pct of each sketch row. */
struct tally_sink *tally_sink_sqlite_open_ext(const char *path, unsigned cache_mb,
					      const struct tally_pctl *pct, char *err,
					      size_t errlen);

/*
 * The PostgreSQL sink opened directly (tests, benchmarks, shards: one per
 * conninfo, each with its own connection). conninfo is a libpq connection
 * string or URI: TLS (sslmode, sslrootcert), password or passfile go in it, and
 * a multi-host string (host=a,b port=p,q) with target_session_attrs=read-write
 * fails over to whichever host takes writes. Every connect and call is bounded
 * by timeout_ms. Connects lazily, on the first call. NULL with err.
 */
struct tally_sink *tally_sink_pg_open(const char *conninfo, unsigned timeout_ms, char *err,
				      size_t errlen);
/* How a PostgreSQL sink sends rows: "copy" or "pipeline". 0 or -EINVAL. */
/* The percentiles it stores for sketch rows (statsd_percentiles). 0 or -EINVAL. */
int tally_sink_pg_set_percentiles(struct tally_sink *s, const char *list, char *err,
				  size_t errlen);
int tally_sink_pg_set_method(struct tally_sink *s, const char *method);
/* The Redis sinks opened directly (tests, benchmarks). NULL with err. nodes is
 * the cluster's seed list "host:port,host:port". */
struct tally_sink *tally_sink_redis_open(const char *addr, const char *password,
					 const char *prefix, uint64_t timeout_ms, char *err,
					 size_t errlen);
struct tally_sink *tally_sink_redis_cluster_open(const char *nodes, const char *password,
						 const char *prefix, uint64_t timeout_ms,
						 char *err, size_t errlen);

#define TALLY_SINK_REGISTER(t) \
	__attribute__((constructor)) static void tally_sink_register_##t(void) \
	{ \
		tally_sink_register(&(t)); \
	}

static inline bool tally_sink_transient(int err)
{
	switch (-err) {
	case EAGAIN: case EBUSY: case ETIMEDOUT: case ECONNREFUSED: case ECONNRESET:
	case ECONNABORTED: case ENOTCONN: case EHOSTUNREACH: case ENETUNREACH: case EPIPE:
	case EIO: case EINTR:
		return true;
	default:
		return false;
	}
}

#endif
