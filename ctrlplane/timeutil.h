/* SPDX-License-Identifier: BSD-3-Clause */
/* Clock reads of the control plane (never the workers: they use clock.h). */
#ifndef TALLY_TIMEUTIL_H
#define TALLY_TIMEUTIL_H

#include <stdint.h>
#include <time.h>

static inline uint64_t tally_clock_ns_of(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Monotonic ms and us: intervals, deadlines, heartbeats. */
static inline uint64_t tally_mono_ms(void) { return tally_clock_ns_of(CLOCK_MONOTONIC) / 1000000; }
static inline uint64_t tally_mono_us(void) { return tally_clock_ns_of(CLOCK_MONOTONIC) / 1000; }
/* Wall-clock ms since the epoch: what is recorded (committed_ms). */
static inline int64_t tally_wall_ms(void) { return (int64_t)(tally_clock_ns_of(CLOCK_REALTIME) / 1000000); }

#endif
