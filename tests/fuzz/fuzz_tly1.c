/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target for the TLY1 parser: any input either appends exactly `count`
 * events whose keys are valid UTF-8 inside the input, or appends nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "parse_tly1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tally_event ev[TALLY_TLY1_MAX_COUNT];
	static struct tally_mac_keys keys = {.present = {[1] = true}};
	struct tally_evbuf out = {ev, 0, TALLY_TLY1_MAX_COUNT, NULL, 0, 0};
	struct tally_tly1_hdr h;
	int r;

	if (size > 65535)
		return 0;
	r = tally_tly1_parse(data, (uint32_t)size, &keys, &out, &h);
	if (r != TALLY_OK) {
		if (out.n != 0 || r <= 0 || r >= TALLY_C_MAX)
			abort();
		return 0;
	}
	if (out.n != h.count || h.count == 0 || h.sender_id == 0)
		abort();
	for (uint32_t i = 0; i < out.n; i++)
		if (ev[i].key < data || ev[i].key + ev[i].key_len > data + size ||
		    ev[i].key_len == 0 || !tally_utf8_valid(ev[i].key, ev[i].key_len))
			abort();
	return 0;
}
