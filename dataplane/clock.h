/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The workers' arrival clock: wall-clock time from the TSC, read once per
 * burst without a syscall.
 *
 * now = base_ns + (tsc - base_tsc) * mult / 2^40, the product taken in 128
 * bits, so it is right for any uptime (a 64-bit `ticks * 1000 / hz` wraps after
 * 2^64 / 1000 ticks: 71 days at 3 GHz). The control loop re-anchors the line
 * to CLOCK_REALTIME every TALLY_CLOCK_SYNC_MS (tally_clock_sync): each new line
 * starts where the old one stands at that instant, so the clock never jumps
 * back, and its slope is set to absorb the offset to wall time within the next
 * period (slew, at most +-TALLY_CLOCK_MAX_SLEW_PCT percent). Only a wall clock
 * more than TALLY_CLOCK_STEP_MS ahead is followed at once (a step forward);
 * one that stepped back is caught up by running slower, never by going back.
 *
 * Readers take a ck_sequence snapshot (retry if it changed mid-read) and a
 * worker also keeps the largest value it returned, so a reader on a core that
 * read its TSC just before a re-anchor still never sees time go back.
 */
#ifndef TALLY_CLOCK_H
#define TALLY_CLOCK_H

#include <stdint.h>

#include <ck_sequence.h>

#define TALLY_CLOCK_SYNC_MS 100
#define TALLY_CLOCK_STEP_MS 1000
#define TALLY_CLOCK_MAX_SLEW_PCT 50
#define TALLY_CLOCK_SHIFT 40

struct tally_clock {
	ck_sequence_t seq;
	uint64_t base_tsc;
	uint64_t base_ns;  /* wall time at base_tsc, as readers see it */
	uint64_t mult;     /* ns per tick, 24.40 fixed point: 0.3 ms in 3 years at 3 GHz */
	/* control thread only */
	uint64_t hz;
	uint64_t nominal;  /* mult at exactly hz */
	uint64_t steps;    /* forward steps taken */
	int64_t offset_ns; /* wall - clock at the last sync */
} __attribute__((aligned(64)));

/* Start the line at (tsc, wall_ns) with the nominal slope of hz ticks/s. */
void tally_clock_init(struct tally_clock *c, uint64_t hz, uint64_t tsc, uint64_t wall_ns);
/* Control loop: re-anchor to wall_ns at tsc (see above). period_ns: until the next sync. */
void tally_clock_sync(struct tally_clock *c, uint64_t tsc, uint64_t wall_ns, uint64_t period_ns);

static inline uint64_t tally_clock_line(uint64_t base_tsc, uint64_t base_ns, uint64_t mult,
					uint64_t tsc)
{
	/* a TSC read just before a re-anchor is at the new base */
	uint64_t d = tsc > base_tsc ? tsc - base_tsc : 0;

	return base_ns + (uint64_t)(((unsigned __int128)d * mult) >> TALLY_CLOCK_SHIFT);
}

/* Wall-clock ns at tsc. */
static inline uint64_t tally_clock_ns(const struct tally_clock *c, uint64_t tsc)
{
	uint64_t bt, bn, m;
	unsigned v;

	do {
		v = ck_sequence_read_begin(&c->seq);
		bt = ck_pr_load_64(&c->base_tsc);
		bn = ck_pr_load_64(&c->base_ns);
		m = ck_pr_load_64(&c->mult);
	} while (ck_sequence_read_retry(&c->seq, v));
	return tally_clock_line(bt, bn, m, tsc);
}

/* Wall-clock ms at tsc, never below *last (a reader's own high-water mark). */
static inline uint64_t tally_clock_ms(const struct tally_clock *c, uint64_t tsc, uint64_t *last)
{
	uint64_t ms = tally_clock_ns(c, tsc) / 1000000;

	if (ms < *last)
		return *last;
	*last = ms;
	return ms;
}

#endif
