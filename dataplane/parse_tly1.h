/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TLY1 datagram parser (shared/DESIGN.md). Validates the whole datagram before it
 * emits a single event, so a bad datagram is never partly applied.
 */
#ifndef TALLY_PARSE_TLY1_H
#define TALLY_PARSE_TLY1_H

#include <stdbool.h>
#include <stdint.h>

#include "event.h"
#include "wire.h"

/*
 * SipHash-2-4-128 keys by key_id; present[i] says key i is configured. A key
 * being rotated out (removed or replaced by a config change) stays in old[] for
 * its grace period, tried when the current key does not verify. require: a
 * datagram without a MAC is dropped (tly1_mac_required).
 */
struct tally_mac_keys {
	bool present[256];
	bool old_present[256];
	bool require;
	uint8_t key[256][16];
	uint8_t old[256][16];
};

struct tally_tly1_hdr {
	uint8_t flags, key_id;
	bool mac_old; /* verified under a key in its grace period */
	uint16_t count;
	uint64_t sender_id, batch_seq;
};

/*
 * Parse datagram p[0..len). On success append hdr->count events to out (keys
 * point into p) and return TALLY_OK. On failure append nothing and return the
 * drop reason's counter id (TALLY_C_TLY1_*). Returns -ENOSPC, appending nothing,
 * when out has no room for count events (judged once the header is valid; the
 * rest is judged on the retry). keys may be NULL (no MAC keys). hdr may be NULL.
 */
int tally_tly1_parse(const uint8_t *p, uint32_t len, const struct tally_mac_keys *keys,
		     struct tally_evbuf *out, struct tally_tly1_hdr *hdr);

/* UTF-8 validity (RFC 3629: no overlongs, no surrogates, <= U+10FFFF) and no NUL. */
bool tally_utf8_valid(const uint8_t *s, uint32_t len);

#endif
