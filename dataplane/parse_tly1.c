/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TLY1 parser. One pass: the header, then every event, written into the event
 * buffer's free slots as it is checked, then the trailer. The events count only
 * when the whole datagram passed (the fill count moves last), so a bad datagram
 * never adds an event or an event id anywhere.
 *
 * Check order (the first failure is the one counted): length >= 24 (short),
 * magic, reserved flags, count in 1..1024, sender_id != 0, key_id 0 unless MAC;
 * then per event in order: fixed part and key inside the datagram (truncated),
 * key_len != 0, key UTF-8 without NUL; then the tail: MAC flag needs >= 16 bytes
 * left (mac_missing), anything beyond events (+ trailer) is trailing; last the
 * MAC itself: key configured (mac_no_key), then SipHash-2-4-128 (mac_bad).
 */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "counters.h"
#include "parse_tly1.h"
#include "utf8.h"

/* Some byte of w has its high bit set or is zero. */
static inline bool word_not_plain(uint64_t w)
{
	return ((w | ((w - 0x0101010101010101ULL) & ~w)) & 0x8080808080808080ULL) != 0;
}

/* Keys of 4..16 bytes that are plain ASCII without NUL, the common case, in two
 * overlapping loads and no call; anything else is false and gets the full check. */
static inline bool key_plain(const uint8_t *k, uint32_t n)
{
	uint64_t a, b;

	if (n >= 8 && n <= 16) {
		memcpy(&a, k, 8);
		memcpy(&b, k + n - 8, 8);
		return !word_not_plain(a) && !word_not_plain(b);
	}
	if (n >= 4 && n < 8) {
		uint32_t x, y;

		memcpy(&x, k, 4);
		memcpy(&y, k + n - 4, 4);
		return !word_not_plain((uint64_t)x << 32 | y);
	}
	return false;
}

/* The general case, from byte i on. */
static bool utf8_valid_from(const uint8_t *s, uint32_t i, uint32_t len)
{
	while (i < len) {
		if (s[i] == 0)
			return false;
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		uint32_t n = tally_utf8_seq(s + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

/*
 * Keys are nearly always plain ASCII: check 8 bytes at a time, the last 8
 * overlapping, and fall back to the byte walk at the first word that is not.
 * Loads stay inside s[0..len).
 */
bool tally_utf8_valid(const uint8_t *s, uint32_t len)
{
	uint64_t w;
	uint32_t i = 0;

	if (len < 8)
		return utf8_valid_from(s, 0, len);
	for (; i + 8 <= len; i += 8) {
		memcpy(&w, s + i, 8);
		if (word_not_plain(w))
			return utf8_valid_from(s, i, len);
	}
	if (i == len)
		return true;
	memcpy(&w, s + len - 8, 8);
	return !word_not_plain(w) || utf8_valid_from(s, i, len);
}

static int check_header(const uint8_t *p, uint32_t len, struct tally_tly1_hdr *h)
{
	if (len < TALLY_TLY1_HDR_LEN)
		return TALLY_C_TLY1_SHORT;
	if (memcmp(p, TALLY_TLY1_MAGIC, 4) != 0)
		return TALLY_C_TLY1_BAD_MAGIC;
	h->flags = p[TALLY_TLY1_OFF_FLAGS];
	h->key_id = p[TALLY_TLY1_OFF_KEY_ID];
	h->count = tally_le16(p + TALLY_TLY1_OFF_COUNT);
	h->sender_id = tally_le64(p + TALLY_TLY1_OFF_SENDER);
	h->batch_seq = tally_le64(p + TALLY_TLY1_OFF_SEQ);
	h->mac_old = false;
	if (h->flags & TALLY_TLY1_F_RESERVED)
		return TALLY_C_TLY1_RESERVED_FLAGS;
	if (h->count == 0 || h->count > TALLY_TLY1_MAX_COUNT)
		return TALLY_C_TLY1_BAD_COUNT;
	if (h->sender_id == 0)
		return TALLY_C_TLY1_ZERO_SENDER;
	if (h->key_id != 0 && !(h->flags & TALLY_TLY1_F_MAC))
		return TALLY_C_TLY1_KEYID_NO_MAC;
	return TALLY_OK;
}

/*
 * Walk the events, writing each into ev[] as it is checked: the slots past the
 * buffer's fill count are scratch until the caller commits them, so one pass
 * both validates and emits. *end is the offset after the last event.
 */
static int walk_events(const uint8_t *p, uint32_t len, uint16_t count,
		       struct tally_event *ev, uint32_t *end)
{
	uint32_t off = TALLY_TLY1_HDR_LEN;

	for (uint16_t i = 0; i < count; i++) {
		const uint8_t *q = p + off;
		uint8_t klen;

		if (len - off < TALLY_TLY1_EVT_FIXED)
			return TALLY_C_TLY1_TRUNCATED;
		klen = q[TALLY_TLY1_EOFF_KEYLEN];
		if (len - off - TALLY_TLY1_EVT_FIXED < klen)
			return TALLY_C_TLY1_TRUNCATED;
		if (klen == 0)
			return TALLY_C_TLY1_ZERO_KEY;
		if (!key_plain(q + TALLY_TLY1_EOFF_KEY, klen) &&
		    !tally_utf8_valid(q + TALLY_TLY1_EOFF_KEY, klen))
			return TALLY_C_TLY1_BAD_UTF8;
		ev[i].event_id = tally_le64(q + TALLY_TLY1_EOFF_ID);
		ev[i].time_ms = tally_le64(q + TALLY_TLY1_EOFF_TIME);
		ev[i].value = (double)(int64_t)tally_le64(q + TALLY_TLY1_EOFF_VALUE);
		ev[i].key_len = klen;
		ev[i].statsd = 0;
		ev[i].kind = TALLY_EV_PLAIN;
		ev[i].key = q + TALLY_TLY1_EOFF_KEY;
		off += TALLY_TLY1_EVT_FIXED + klen;
	}
	*end = off;
	return TALLY_OK;
}

static bool mac_verifies(const uint8_t *p, uint32_t end, const uint8_t key[16])
{
	uint8_t mac[TALLY_TLY1_MAC_LEN];

	crypto_shorthash_siphashx24(mac, p, end, key);
	return sodium_memcmp(mac, p + end, TALLY_TLY1_MAC_LEN) == 0;
}

/* The current key first; a retired key only while its grace period lasts. */
static int check_mac(const uint8_t *p, uint32_t end, struct tally_tly1_hdr *h,
		     const struct tally_mac_keys *keys)
{
	uint8_t id = h->key_id;

	if (keys == NULL || !(keys->present[id] || keys->old_present[id]))
		return TALLY_C_TLY1_MAC_NO_KEY;
	if (keys->present[id] && mac_verifies(p, end, keys->key[id]))
		return TALLY_OK;
	if (keys->old_present[id] && mac_verifies(p, end, keys->old[id])) {
		h->mac_old = true;
		return TALLY_OK;
	}
	return TALLY_C_TLY1_MAC_BAD;
}

/* The tail after the events: the trailer, then the MAC itself. */
static int check_tail(const uint8_t *p, uint32_t len, uint32_t end,
		      const struct tally_mac_keys *keys, struct tally_tly1_hdr *h)
{
	bool mac = h->flags & TALLY_TLY1_F_MAC;
	uint32_t tail = mac ? TALLY_TLY1_MAC_LEN : 0;

	if (len - end < tail)
		return TALLY_C_TLY1_MAC_MISSING;
	if (len - end > tail)
		return TALLY_C_TLY1_TRAILING;
	if (!mac)
		return keys != NULL && keys->require ? TALLY_C_TLY1_MAC_REQUIRED : TALLY_OK;
	return check_mac(p, end, h, keys);
}

int tally_tly1_parse(const uint8_t *p, uint32_t len, const struct tally_mac_keys *keys,
		     struct tally_evbuf *out, struct tally_tly1_hdr *hdr)
{
	struct tally_tly1_hdr local;
	struct tally_tly1_hdr *h = hdr != NULL ? hdr : &local;
	uint32_t end = 0;
	int r = check_header(p, len, h);

	if (r != TALLY_OK)
		return r;
	if (out->cap - out->n < h->count)
		return -ENOSPC;
	r = walk_events(p, len, h->count, out->ev + out->n, &end);
	if (r == TALLY_OK)
		r = check_tail(p, len, end, keys, h);
	if (r == TALLY_OK)
		out->n += h->count; /* commit: only a whole, valid datagram */
	return r;
}
