/* SPDX-License-Identifier: BSD-3-Clause */
/* Test-only: the reference StatsD parser (statsd_ref.c), same contract as tally_statsd_parse. */
#ifndef TALLY_STATSD_REF_H
#define TALLY_STATSD_REF_H

#include <stdint.h>

#include "event.h"

int ref_statsd_parse(const uint8_t *p, uint32_t len, struct tally_evbuf *out,
		     uint64_t *counters);

#endif
