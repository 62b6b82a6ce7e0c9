/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The one UTF-8 rule (RFC 3629: no overlongs, no surrogates, nothing above
 * U+10FFFF), header-only so that the TLY1 parser and libtally's encoder
 * (client/, which does not link the dataplane) judge keys alike.
 */
#ifndef TALLY_UTF8_H
#define TALLY_UTF8_H

#include <stdint.h>

/* Length of the multi-byte sequence at s (lead byte >= 0x80), 0 if it is not one. */
static inline uint32_t tally_utf8_seq(const uint8_t *s, uint32_t left)
{
	uint8_t c = s[0];
	uint32_t n, min, cp;

	if (c >= 0xc2 && c <= 0xdf) { n = 2; min = 0x80; cp = c & 0x1f; }
	else if (c >= 0xe0 && c <= 0xef) { n = 3; min = 0x800; cp = c & 0x0f; }
	else if (c >= 0xf0 && c <= 0xf4) { n = 4; min = 0x10000; cp = c & 0x07; }
	else return 0;
	if (left < n)
		return 0;
	for (uint32_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

#endif
