/* SPDX-License-Identifier: BSD-3-Clause */
/* Re-anchoring the workers' TSC clock to the wall clock (clock.h). */
#include <ck_pr.h>

#include "clock.h"

static void publish(struct tally_clock *c, uint64_t tsc, uint64_t ns, uint64_t mult)
{
	ck_sequence_write_begin(&c->seq);
	ck_pr_store_64(&c->base_tsc, tsc);
	ck_pr_store_64(&c->base_ns, ns);
	ck_pr_store_64(&c->mult, mult);
	ck_sequence_write_end(&c->seq);
}

void tally_clock_init(struct tally_clock *c, uint64_t hz, uint64_t tsc, uint64_t wall_ns)
{
	ck_sequence_init(&c->seq);
	c->hz = hz;
	c->nominal = (uint64_t)(((unsigned __int128)1000000000u << TALLY_CLOCK_SHIFT) / hz);
	c->steps = 0;
	c->offset_ns = 0;
	publish(c, tsc, wall_ns, c->nominal);
}

void tally_clock_sync(struct tally_clock *c, uint64_t tsc, uint64_t wall_ns, uint64_t period_ns)
{
	uint64_t now = tally_clock_line(c->base_tsc, c->base_ns, c->mult, tsc);
	int64_t off = (int64_t)(wall_ns - now);
	int64_t lim = (int64_t)period_ns * TALLY_CLOCK_MAX_SLEW_PCT / 100;
	__int128 m;

	c->offset_ns = off;
	if (off > (int64_t)TALLY_CLOCK_STEP_MS * 1000000) {
		c->steps++;
		publish(c, tsc, wall_ns, c->nominal);
		return;
	}
	/* Cover period + off of wall time in the next period of ticks. */
	off = off > lim ? lim : off < -lim ? -lim : off;
	m = (__int128)c->nominal * ((int64_t)period_ns + off) / (int64_t)period_ns;
	publish(c, tsc, now, (uint64_t)m);
}
