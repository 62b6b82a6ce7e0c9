/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TLY1 encoder (tly1_enc.h). The header's count is written at seal time, so a
 * datagram grows without rewriting; the MAC covers every byte before it, so it
 * is computed last. Keys are validated before they are added: one bad key
 * would make the appliance reject the whole datagram and every event in it.
 */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "tly1_enc.h"
#include "utf8.h"

void tally_cl_dgram_init(struct tally_cl_dgram *d, uint8_t *buf, uint32_t cap,
			 uint8_t key_id, uint64_t sender_id, uint64_t batch_seq)
{
	d->buf = buf;
	d->cap = cap;
	d->count = 0;
	d->mac = key_id != 0;
	memcpy(buf, TALLY_TLY1_MAGIC, 4);
	buf[TALLY_TLY1_OFF_FLAGS] = TALLY_TLY1_F_ACK_REQ | (d->mac ? TALLY_TLY1_F_MAC : 0);
	buf[TALLY_TLY1_OFF_KEY_ID] = key_id;
	tally_put_le16(buf + TALLY_TLY1_OFF_COUNT, 0);
	tally_put_le64(buf + TALLY_TLY1_OFF_SENDER, sender_id);
	tally_put_le64(buf + TALLY_TLY1_OFF_SEQ, batch_seq);
	d->len = TALLY_TLY1_HDR_LEN;
}

int tally_cl_dgram_add(struct tally_cl_dgram *d, const uint8_t *key, uint8_t key_len,
		       uint64_t id, uint64_t time_ms, int64_t value)
{
	uint32_t need = tally_cl_event_size(key_len) + (d->mac ? TALLY_TLY1_MAC_LEN : 0);
	uint8_t *e = d->buf + d->len;

	if (d->count >= TALLY_TLY1_MAX_COUNT || d->len + need > d->cap)
		return -ENOSPC;
	tally_put_le64(e + TALLY_TLY1_EOFF_ID, id);
	tally_put_le64(e + TALLY_TLY1_EOFF_TIME, time_ms);
	tally_put_le64(e + TALLY_TLY1_EOFF_VALUE, (uint64_t)value);
	e[TALLY_TLY1_EOFF_KEYLEN] = key_len;
	memcpy(e + TALLY_TLY1_EOFF_KEY, key, key_len);
	d->len += tally_cl_event_size(key_len);
	d->count++;
	return 0;
}

uint32_t tally_cl_dgram_seal(struct tally_cl_dgram *d, const uint8_t key[16])
{
	tally_put_le16(d->buf + TALLY_TLY1_OFF_COUNT, d->count);
	if (d->mac) {
		crypto_shorthash_siphashx24(d->buf + d->len, d->buf, d->len, key);
		d->len += TALLY_TLY1_MAC_LEN;
	}
	return d->len;
}

bool tally_cl_key_valid(const uint8_t *k, size_t len)
{
	if (len == 0 || len > TALLY_KEY_MAX)
		return false;
	for (size_t i = 0; i < len;) {
		if (k[i] == 0)
			return false;
		if (k[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = tally_utf8_seq(k + i, (uint32_t)(len - i));
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

int tally_cl_ack_decode(const uint8_t *p, size_t len, struct tally_cl_ack *a)
{
	if (len != TALLY_TLA1_LEN || memcmp(p, TALLY_TLA1_MAGIC, 4) != 0)
		return -EBADMSG;
	a->status = p[4];
	a->sender_id = tally_le64(p + 8);
	a->batch_seq = tally_le64(p + 16);
	return 0;
}
