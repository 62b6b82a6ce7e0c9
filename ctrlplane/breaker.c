/* SPDX-License-Identifier: BSD-3-Clause */
/* Circuit breaker and full-jitter backoff (breaker.h). */
#include "breaker.h"

void tally_breaker_init(struct tally_breaker *b, unsigned threshold, uint64_t base_ms,
			uint64_t max_ms, uint64_t open_ms, uint64_t seed)
{
	*b = (struct tally_breaker){.state = TALLY_BREAKER_CLOSED, .rng = seed | 1,
				    .threshold = threshold ? threshold : 1, .base_ms = base_ms,
				    .max_ms = max_ms, .open_ms = open_ms};
}

static uint64_t jitter(struct tally_breaker *b, uint64_t below)
{
	b->rng ^= b->rng << 13;
	b->rng ^= b->rng >> 7;
	b->rng ^= b->rng << 17;
	return below ? b->rng % below : 0;
}

bool tally_breaker_allow(struct tally_breaker *b, uint64_t now_ms)
{
	switch (b->state) {
	case TALLY_BREAKER_HELD:
		return false;
	case TALLY_BREAKER_OPEN:
		if (now_ms < b->next_ms)
			return false;
		b->state = TALLY_BREAKER_HALF_OPEN;
		return true;
	default:
		return now_ms >= b->next_ms;
	}
}

void tally_breaker_success(struct tally_breaker *b)
{
	b->state = TALLY_BREAKER_CLOSED;
	b->failures = 0;
	b->next_ms = 0;
}

void tally_breaker_failure(struct tally_breaker *b, uint64_t now_ms, bool permanent)
{
	unsigned k = b->failures < 20 ? b->failures : 20;
	uint64_t cap = b->base_ms << k;

	b->failures++;
	if (permanent) {
		b->state = TALLY_BREAKER_HELD;
		b->opens++;
		return;
	}
	if (b->state == TALLY_BREAKER_HALF_OPEN || b->failures >= b->threshold) {
		if (b->state != TALLY_BREAKER_OPEN)
			b->opens++;
		b->state = TALLY_BREAKER_OPEN;
		b->next_ms = now_ms + b->open_ms;
		return;
	}
	b->next_ms = now_ms + jitter(b, cap < b->max_ms ? cap : b->max_ms);
}

void tally_breaker_force(struct tally_breaker *b)
{
	if (b->state != TALLY_BREAKER_CLOSED)
		b->state = TALLY_BREAKER_HALF_OPEN;
	b->next_ms = 0;
}

const char *tally_breaker_state_name(enum tally_breaker_state s)
{
	static const char *const names[] = {"closed", "open", "half-open", "held"};

	return (unsigned)s < 4 ? names[s] : "?";
}
