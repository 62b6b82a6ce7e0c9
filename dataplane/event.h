/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The event as the parsers hand it to dedup and the window table. Parsers append
 * to a struct tally_evbuf owned by the worker; TLY1 keys point into the packet,
 * StatsD canonical keys into the buffer's arena, so both stay valid until the
 * worker has applied the batch and freed the burst's mbufs.
 */
#ifndef TALLY_EVENT_H
#define TALLY_EVENT_H

#include <stdint.h>

#include "dedup.h"

/*
 * What an event's row keeps besides count, sum, min, max and last: nothing
 * (TLY1, StatsD c), a quantile sketch (ms, h, d), a HyperLogLog (s), or gauge
 * state (g: an absolute value, or a change relative to the gauge's value).
 */
enum tally_ev_kind {
	TALLY_EV_PLAIN = 0,
	TALLY_EV_SKETCH = 1,
	TALLY_EV_SET = 2,
	TALLY_EV_GAUGE = 3,
	TALLY_EV_GAUGE_REL = 4,
};

/* The parsers fill key, key_len, event_id, time_ms and value; the worker's
 * prepare stage turns time_ms into the window start in
 * place and adds what the apply stage needs, so an event stays one cache line. */
struct tally_event {
	const uint8_t *key;
	uint64_t event_id; /* 0: never deduplicated (all StatsD lines) */
	union {
		double value;    /* v: TLY1 value, StatsD value/rate (c) or value */
		uint64_t member; /* TALLY_EV_SET: hash of the member (the row's v is 1) */
	};
	union {
		uint64_t time_ms;  /* event time; 0: arrival time */
		int64_t win_start; /* after prepare */
	};
	uint64_t hash;              /* after prepare: hash of (key, window) */
	struct tally_dedup_ref dd;  /* after prepare: where event_id lives in dedup */
	uint32_t cell;              /* after prepare: the table cell its row starts at */
	uint8_t key_len;            /* 1..255 */
	uint8_t statsd;             /* 1: a StatsD canonical key (rules match its name) */
	uint8_t kind;               /* enum tally_ev_kind: what the row keeps besides its sums */
} __attribute__((aligned(64)));
_Static_assert(sizeof(struct tally_event) == 64, "an event is one cache line");

struct tally_evbuf {
	struct tally_event *ev;
	uint32_t n, cap;
	uint8_t *arena; /* canonical StatsD keys */
	uint32_t arena_used, arena_cap;
};

static inline void tally_evbuf_clear(struct tally_evbuf *b)
{
	b->n = 0;
	b->arena_used = 0;
}

#endif
