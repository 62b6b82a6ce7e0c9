/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target for the StatsD parser: every line is either one event or one
 * count under a bad-line reason, keys stay within 255 bytes and the arena, and
 * the canonical key of a good line parses again to itself; each event's row
 * kind fits its key's type (s: a set, ms h d: a sketch, g: a gauge).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "parse_statsd.h"
#include "parse_tly1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The kind a canonical key's type calls for (a g may also be relative). */
static uint8_t kind_of_key(const uint8_t *k, uint32_t n)
{
	const uint8_t *bar = memchr(k, '|', n), *t = bar + 1;
	uint32_t tn = 0;

	while (t + tn < k + n && t[tn] != '|')
		tn++;
	if (tn == 1 && t[0] == 's')
		return TALLY_EV_SET;
	if (tn == 1 && t[0] == 'g')
		return TALLY_EV_GAUGE; /* relative is folded in by the caller */
	if (tn == 1 && t[0] == 'c')
		return TALLY_EV_PLAIN;
	return TALLY_EV_SKETCH;
}

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
		    !tally_utf8_valid(ev[i].key, ev[i].key_len) || ev[i].event_id != 0 ||
		    (ev[i].kind == TALLY_EV_GAUGE_REL ? TALLY_EV_GAUGE : ev[i].kind) !=
			    kind_of_key(ev[i].key, ev[i].key_len))
			abort();
	return 0;
}
