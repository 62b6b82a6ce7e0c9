/* SPDX-License-Identifier: BSD-3-Clause */
/* Names and help of the counters, expanded from the one list in counters.h. */
#include "counters.h"

const char *const tally_counter_names[TALLY_C_MAX] = {
#define TALLY_C_NAME(e, n, h) [TALLY_C_##e] = n,
	TALLY_COUNTERS(TALLY_C_NAME)
#undef TALLY_C_NAME
};

const char *const tally_counter_help[TALLY_C_MAX] = {
#define TALLY_C_HELP(e, n, h) [TALLY_C_##e] = h,
	TALLY_COUNTERS(TALLY_C_HELP)
#undef TALLY_C_HELP
};
