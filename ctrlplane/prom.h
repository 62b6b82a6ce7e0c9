/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The Prometheus text exposition (format 0.0.4) of a snapshot (snapshot.h).
 * The names come from the one counter list by fixed rules, documented in the
 * README's Metrics section:
 *   - a counter is tally_<name>_total; one whose help says "(gauge)" is a gauge
 *     tally_<name>;
 *   - a drop reason (drop_*, and tly1_* and statsd_* other than the accepted
 *     counts) is a sample of tally_drops_total{reason="<name without drop_>"};
 *   - a counter workers keep (every one listed before the flusher's) has one
 *     sample per worker, labelled worker="<id>"; sum() gives the total.
 * Pure formatting, no I/O: unit-tested with cmocka (tests/test_prom.c).
 */
#ifndef TALLY_PROM_H
#define TALLY_PROM_H

#include <stdbool.h>
#include <stddef.h>

#include "snapshot.h"

/* A growing text buffer; oom is set (and text stops growing) if malloc fails. */
struct tally_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

void tally_buf_printf(struct tally_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* v as a label value: \ " and newline escaped. */
void tally_buf_label(struct tally_buf *b, const char *v);
void tally_buf_free(struct tally_buf *b);

bool tally_counter_is_drop(unsigned c);
bool tally_counter_per_worker(unsigned c);
bool tally_counter_is_gauge(unsigned c);

/* Append the exposition of s to b. 0, or -ENOMEM (b->oom). */
int tally_prom_format(const struct tally_snap *s, struct tally_buf *b);

#endif
