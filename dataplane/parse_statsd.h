/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * StatsD / DogStatsD line protocol parser (shared/DESIGN.md): one event per good
 * line, with the canonical key <name>|<type>[|#sorted,unique,tags].
 */
#ifndef TALLY_PARSE_STATSD_H
#define TALLY_PARSE_STATSD_H

#include <stdint.h>

#include "event.h"

/*
 * Parse every line of p[0..len). Each good line appends one event (event_id 0,
 * time_ms from |T or 0, key in out->arena); each bad line adds 1 to
 * counters[reason] (a TALLY_C_STATSD_* id) and is skipped. Empty lines count as
 * nothing. Returns the number of good lines, or -ENOSPC (appending nothing) if out
 * lacks room for TALLY_STATSD_MAX_EVENTS(len) events or len arena bytes.
 */
int tally_statsd_parse(const uint8_t *p, uint32_t len, struct tally_evbuf *out,
		       uint64_t *counters);

/* The most lines a datagram of len bytes can hold ("a:1|c" is the shortest). */
#define TALLY_STATSD_MAX_EVENTS(len) ((len) / 6 + 1)

#endif
