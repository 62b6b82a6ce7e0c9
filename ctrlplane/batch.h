/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A flush batch: (appliance, seq, window_ms) and a self-contained list of rows
 * whose keys live in the batch's own arena. It is the one form every sink,
 * the shard splitter, the spool and replay use: worker tables are copied into
 * it once, at collect time, and go straight back to their workers, so nothing
 * downstream (a slow sink, a spool write) ever holds a worker's table.
 *
 * A row of a StatsD timer, histogram, distribution or set also carries a
 * blob: its sketch (sketch.h) in the compact blob form, in the same arena.
 *
 * Serialized form (the spool's record payload), little-endian, no padding:
 *   magic "TLB1" | u16 version 2 | u16 appliance_len | appliance bytes
 *   | u64 seq | i64 window_ms | u32 nrows
 *   | nrows x (u8 key_len | key | i64 win_start | u64 count | f64 sum min max last
 *              | u32 blob_len | blob)
 *   [ | "DGS1" | u32 n | n x (u64 sender_id | u64 batch_seq) ]
 * The optional last part lists the TLY1 datagrams with ACK_REQ whose events
 * are in the batch (dgset.h: dedup across restarts and appliances).
 * Version 1 (spools written before sketches) is the same without blob_len and
 * blob, and is still decoded. Decoding checks every length against the
 * buffer: a corrupt record is an error (-EBADMSG), never a read past the end.
 */
#ifndef TALLY_BATCH_H
#define TALLY_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "dgset.h"

#define TALLY_APPLIANCE_MAX 256

struct tally_wtab;
struct tally_row;
struct tally_acklist;

struct tally_batch_row {
	int64_t win_start;
	uint64_t count;
	double sum, min, max, last;
	uint32_t key_off; /* into the batch's key arena */
	uint8_t key_len;
	uint32_t blob_off, blob_len; /* the sketch, in the same arena; blob_len 0: none */
};

struct tally_batch {
	char appliance[TALLY_APPLIANCE_MAX];
	uint64_t seq;
	int64_t window_ms;
	int64_t now_ms; /* committed_ms: set by whoever writes it */
	uint32_t nrows, cap;
	struct tally_batch_row *rows;
	uint8_t *keys;
	size_t keys_used, keys_cap;
	/* committed-mode acks of the datagrams in it (dataplane/ack.h), sent once
	 * the batch is durable; never encoded, never freed with the batch */
	struct tally_acklist *acks;
	/* the ACK_REQ datagrams whose events are in it: stored with it, so a
	 * retransmit after a crash or a failover is known as committed */
	struct tally_dgid *dgrams;
	uint32_t ndgrams, dgrams_cap;
};

/* An empty batch; storage grows as rows are added. */
void tally_batch_init(struct tally_batch *b, const char *appliance, int64_t window_ms);
void tally_batch_free(struct tally_batch *b);
/* Drop the rows, keep the storage and the header. */
void tally_batch_clear(struct tally_batch *b);

/* Append a row. 0 or -ENOMEM. */
int tally_batch_add(struct tally_batch *b, const uint8_t *key, uint8_t key_len,
		    int64_t win_start, uint64_t count, double sum, double min, double max,
		    double last);
/* Give the last row added a blob (a copy). 0, -EINVAL (no row) or -ENOMEM. */
int tally_batch_set_blob(struct tally_batch *b, const uint8_t *blob, uint32_t len);
static inline const uint8_t *tally_batch_blob(const struct tally_batch *b,
					      const struct tally_batch_row *r)
{
	return r->blob_len ? b->keys + r->blob_off : NULL;
}
/* Append every row of a worker (or merge) table, in its creation order, with
 * its sketch if it has one. */
int tally_batch_add_wtab(struct tally_batch *b, const struct tally_wtab *t);

static inline const uint8_t *tally_batch_key(const struct tally_batch *b,
					     const struct tally_batch_row *r)
{
	return b->keys + r->key_off;
}

/* Note the datagrams of the batch's acks in b->dgrams. 0 or -ENOMEM. */
int tally_batch_dgrams_from_acks(struct tally_batch *b);
/* Copy src's datagram list into b (a shard's part). 0 or -ENOMEM. */
int tally_batch_copy_dgrams(struct tally_batch *b, const struct tally_batch *src);

/* The datagram list as a sink stores it (tally_batches.dgrams): n x (u64
 * sender_id, u64 batch_seq), little-endian. Returns the bytes (16 x ndgrams). */
size_t tally_batch_dgrams_pack(const struct tally_batch *b, uint8_t *out);
/* Each (sender, seq) of a stored list to fn; -EBADMSG if len is not n x 16. */
int tally_dgrams_unpack(const uint8_t *blob, size_t len,
			void (*fn)(void *arg, uint64_t sender, uint64_t seq), void *arg);

/* Events in the batch: the sum of its rows' counts. */
uint64_t tally_batch_events(const struct tally_batch *b);

/* Bytes tally_batch_encode writes. */
size_t tally_batch_encoded_size(const struct tally_batch *b);
/* Serialize into out (tally_batch_encoded_size bytes); returns the bytes written. */
size_t tally_batch_encode(const struct tally_batch *b, uint8_t *out);
/* Replace b's header and rows with the serialized batch in. 0, -EBADMSG or -ENOMEM. */
int tally_batch_decode(struct tally_batch *b, const uint8_t *in, size_t len);

#endif
