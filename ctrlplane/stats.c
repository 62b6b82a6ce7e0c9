/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Counter tables for people: every counter from the one list, in list order,
 * zeroes included, so a drop reason that stays at zero is visibly zero.
 */
#include "stats.h"

void tally_stats_print(FILE *out, const uint64_t v[TALLY_C_MAX], const uint64_t *prev,
		       double seconds)
{
	for (unsigned c = 0; c < TALLY_C_MAX; c++) {
		if (prev != NULL && seconds > 0)
			fprintf(out, "%-22s %16llu %14.0f/s  %s\n", tally_counter_names[c],
				(unsigned long long)v[c], (double)(v[c] - prev[c]) / seconds,
				tally_counter_help[c]);
		else
			fprintf(out, "%-22s %16llu  %s\n", tally_counter_names[c],
				(unsigned long long)v[c], tally_counter_help[c]);
	}
}
