/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TLY1 wire format: the one home of the datagram layout shared by the dataplane
 * parser, tally-gen and (later) the client library. All integers little-endian.
 * The layout is a contract with producers: see shared/DESIGN.md before changing it.
 */
#ifndef TALLY_WIRE_H
#define TALLY_WIRE_H

#include <stdint.h>
#include <string.h>

#define TALLY_TLY1_MAGIC "TLY1"
#define TALLY_TLA1_MAGIC "TLA1"

#define TALLY_TLY1_HDR_LEN 24
#define TALLY_TLY1_EVT_FIXED 25 /* event bytes before the key */
#define TALLY_TLY1_MAC_LEN 16
#define TALLY_TLY1_MAX_COUNT 1024
#define TALLY_KEY_MAX 255

#define TALLY_TLY1_F_ACK_REQ 0x01
#define TALLY_TLY1_F_MAC 0x02
#define TALLY_TLY1_F_RESERVED 0xfc

/* Header field offsets. */
#define TALLY_TLY1_OFF_FLAGS 4
#define TALLY_TLY1_OFF_KEY_ID 5
#define TALLY_TLY1_OFF_COUNT 6
#define TALLY_TLY1_OFF_SENDER 8
#define TALLY_TLY1_OFF_SEQ 16

/* Event field offsets, relative to the event start. */
#define TALLY_TLY1_EOFF_ID 0
#define TALLY_TLY1_EOFF_TIME 8
#define TALLY_TLY1_EOFF_VALUE 16
#define TALLY_TLY1_EOFF_KEYLEN 24
#define TALLY_TLY1_EOFF_KEY 25

/* Ack statuses (TLA1). */
enum tally_ack_status {
	TALLY_ACK_COMMITTED = 0,
	TALLY_ACK_ACCEPTED = 1,
	TALLY_ACK_MALFORMED = 2,
	TALLY_ACK_UNAUTHENTICATED = 3,
	TALLY_ACK_OVERLOADED = 4,
};
#define TALLY_TLA1_LEN 24

/* The dataplane targets little-endian hosts (x86-64, arm64); memcpy keeps the
 * unaligned loads legal and compiles to one mov. */
static inline uint64_t tally_le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline uint16_t tally_le16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

static inline void tally_put_le64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline void tally_put_le16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

#endif
