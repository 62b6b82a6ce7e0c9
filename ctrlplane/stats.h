/* SPDX-License-Identifier: BSD-3-Clause */
/* Human-readable counter tables, shared by tallyctl and tallyd's exit report. */
#ifndef TALLY_STATS_H
#define TALLY_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "counters.h"

/* One line per counter: name, value, [rate/s,] help. prev may be NULL (no rates). */
void tally_stats_print(FILE *out, const uint64_t v[TALLY_C_MAX],
		       const uint64_t *prev, double seconds);

#endif
