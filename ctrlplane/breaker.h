/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A circuit breaker with exponential backoff and full jitter, one per sink
 * endpoint. Closed: writes go through; after each failure the next attempt
 * waits a random time in [0, min(max, base * 2^failures)) ("full jitter": many
 * appliances retrying one database do not retry in step). After `threshold`
 * failures in a row it opens: no attempt for open_ms; then half-open: one
 * probe, whose success closes it and whose failure opens it again. A
 * permanent error (bad data, schema, credentials) holds it open until an
 * operator forces a retry (`tallyctl spool replay`): retrying cannot help, so
 * it never loops. Pure logic with the time passed in, so tests drive it.
 */
#ifndef TALLY_BREAKER_H
#define TALLY_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

enum tally_breaker_state {
	TALLY_BREAKER_CLOSED,
	TALLY_BREAKER_OPEN,
	TALLY_BREAKER_HALF_OPEN,
	TALLY_BREAKER_HELD, /* a permanent error: open until forced */
};

struct tally_breaker {
	enum tally_breaker_state state;
	unsigned failures;   /* in a row */
	uint64_t next_ms;    /* no attempt before this (monotonic ms) */
	uint64_t opens;      /* times it opened */
	uint64_t rng;        /* xorshift state for the jitter */
	/* settings */
	unsigned threshold;
	uint64_t base_ms, max_ms, open_ms;
};

void tally_breaker_init(struct tally_breaker *b, unsigned threshold, uint64_t base_ms,
			uint64_t max_ms, uint64_t open_ms, uint64_t seed);
/* May an attempt start now? (Open turns half-open once its time is up.) */
bool tally_breaker_allow(struct tally_breaker *b, uint64_t now_ms);
void tally_breaker_success(struct tally_breaker *b);
void tally_breaker_failure(struct tally_breaker *b, uint64_t now_ms, bool permanent);
/* Operator override: the next attempt may start now. */
void tally_breaker_force(struct tally_breaker *b);
const char *tally_breaker_state_name(enum tally_breaker_state s);

#endif
