/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libtally's TLY1 encoder and TLA1 ack decoder (dataplane/wire.h is the layout):
 * a datagram is built in place, event by event, and sealed once (count, MAC
 * trailer). Pure functions on buffers, unit-tested against the dataplane's parser.
 */
#ifndef TALLY_CL_TLY1_ENC_H
#define TALLY_CL_TLY1_ENC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct tally_cl_dgram {
	uint8_t *buf;
	uint32_t len, cap; /* cap includes room for the MAC trailer when signed */
	uint16_t count;
	bool mac;
};

/* Start a datagram in buf[0..cap): header with ACK_REQ (and MAC when key_id != 0). */
void tally_cl_dgram_init(struct tally_cl_dgram *d, uint8_t *buf, uint32_t cap,
			 uint8_t key_id, uint64_t sender_id, uint64_t batch_seq);

/* Append one event: 0, or -ENOSPC when it does not fit (or count is at 1024). */
int tally_cl_dgram_add(struct tally_cl_dgram *d, const uint8_t *key, uint8_t key_len,
		       uint64_t id, uint64_t time_ms, int64_t value);

/* Write the count and, when signed, the SipHash-2-4-128 trailer under key.
 * Returns the datagram's length. */
uint32_t tally_cl_dgram_seal(struct tally_cl_dgram *d, const uint8_t key[16]);

/* Bytes one event with a key of key_len takes. */
static inline uint32_t tally_cl_event_size(uint32_t key_len)
{
	return TALLY_TLY1_EVT_FIXED + key_len;
}

/* A key TLY1 accepts: 1..255 bytes, strict UTF-8, no NUL. */
bool tally_cl_key_valid(const uint8_t *k, size_t len);

struct tally_cl_ack {
	uint8_t status;
	uint64_t sender_id, batch_seq;
};

/* Decode a TLA1 ack: 0, or -EBADMSG for anything else. */
int tally_cl_ack_decode(const uint8_t *p, size_t len, struct tally_cl_ack *a);

#endif
