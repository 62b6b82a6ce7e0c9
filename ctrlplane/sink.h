/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Sinks write flush batches. Every sink applies a batch exactly once: it records
 * (appliance, seq) in the same transaction as the rows, and skips a batch whose
 * (appliance, seq) it already holds. SQLite now; PostgreSQL and Redis plug in
 * behind the same ops.
 */
#ifndef TALLY_SINK_H
#define TALLY_SINK_H

#include <stddef.h>
#include <stdint.h>

struct tally_wtab;

struct tally_batch {
	const char *appliance;
	uint64_t seq;
	int64_t window_ms;
	const struct tally_wtab *rows;
	int64_t now_ms; /* committed_ms */
};

enum tally_sink_result {
	TALLY_SINK_APPLIED = 0,
	TALLY_SINK_SKIPPED = 1, /* (appliance, seq) was applied before */
};

struct tally_sink;

struct tally_sink_ops {
	const char *name;
	/* TALLY_SINK_APPLIED, TALLY_SINK_SKIPPED or a negative errno (err filled). */
	int (*write)(struct tally_sink *s, const struct tally_batch *b);
	/* Highest seq committed for appliance (0 if none), or a negative errno. */
	int64_t (*last_seq)(struct tally_sink *s, const char *appliance);
	void (*close)(struct tally_sink *s);
};

struct tally_sink {
	const struct tally_sink_ops *ops;
	char err[256]; /* last error, for logs and tallyctl */
};

/* cache_mb: SQLite's page cache. NULL on failure with err filled (path and SQLite's message). */
struct tally_sink *tally_sink_sqlite_open(const char *path, unsigned cache_mb, char *err,
					  size_t errlen);

#endif
