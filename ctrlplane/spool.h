/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The spool: Tally's dead-letter queue. Flush batches the sink cannot take are
 * appended to append-only segment files in one directory and replayed, oldest
 * first, once the sink is back. It is a library with no thread of its own: one
 * thread (the flusher's sink writer) owns the object and makes every call but
 * tally_spool_stats(), which any thread may call.
 *
 * Format. A segment is `seg-<20-digit id>.tsp`, a run of records:
 *   u32 magic "TSR1" | u32 len | i64 appended_ms | u32 crc32c(payload)
 *   | u32 crc32c(the 20 header bytes before it) | payload (len bytes)
 * little-endian; the payload is tally_batch_encode(). The magic and the header
 * CRC let a reader that met a corrupt record search forward for the next
 * record it can trust (magic, header CRC, length in range, payload CRC, payload
 * decodes), since no length can be trusted after corruption. `cursor` holds
 * (segment, offset) just past the last record replayed; `seq` holds the batch
 * seq high-water mark; `lock` is flock()ed by the one process using the spool.
 *
 * Durability (group commit). tally_spool_append() writes a record but does not
 * make it durable: the caller calls tally_spool_sync() once for every record
 * appended since the last sync (one fdatasync of the segment, plus one of the
 * directory after a segment was created), and must not ack, forget or count as
 * stored any batch before that sync returned 0. Every process start appends to
 * a new segment, so nothing is ever written after a tail a crash may have torn.
 *
 * Replay. tally_spool_peek() decodes the oldest record not yet replayed;
 * tally_spool_consume() moves the durable cursor past it (a small file written
 * to a temporary name, fsync'd and renamed) and deletes a segment once every
 * record in it is replayed. The spool gives at-least-once, in order: after a
 * crash between "the sink committed" and consume, that one record is replayed
 * again. Exactly once comes from the sink: it records (appliance, seq) in the
 * same transaction as the rows and skips a batch it already holds.
 *
 * Damage. On open every record after the cursor is verified. A torn tail (the
 * last segment ends inside a record, or in bytes no valid record follows) is
 * counted in `torn`, reported in last_err and truncated away. A corrupt record
 * with valid records after it is counted in `corrupt`, reported with its
 * segment and offset, and skipped: it is never replayed, nor anything decoded
 * from a guessed length. Peek checks the CRC again (the disk may rot later).
 *
 * Policy when full or old. max_bytes bounds the bytes of records not yet
 * replayed (headers included); disk use can exceed it by at most one segment
 * of replayed records awaiting deletion. An append that would pass it is
 * refused with -ENOSPC (as is one the file system has no room for), counted in
 * full_refusals, and sets full_alarm until an append succeeds again or replay
 * brings the spool under 90% of max_bytes.
 * The spool never drops an old record to make room: the caller keeps the batch
 * in memory, applies back-pressure, and says so. max_age_ms (0 = off) raises
 * age_alarm while the oldest record is older than that; old records are never
 * deleted for age, only reported.
 *
 * Batch seqs. tally_spool_seq_reserve() hands out seqs that are unique across
 * restarts, crashes and an unreachable sink: a durable high-water mark is
 * raised in blocks of TALLY_SPOOL_SEQ_BLOCK, and after a restart seqs continue
 * above every block ever reserved and every seq in the spool. Gaps are fine.
 *
 * Errors are negative errnos; the message (naming the spool directory and what
 * failed) is in tally_spool_errmsg() and in the stats' last_err.
 */
#ifndef TALLY_SPOOL_H
#define TALLY_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"

#define TALLY_SPOOL_SEGMENT_BYTES (64ULL << 20) /* roll past this */
#define TALLY_SPOOL_RECORD_MAX (256U << 20)     /* largest payload */
#define TALLY_SPOOL_HDR 24                      /* record header bytes */
#define TALLY_SPOOL_SEQ_BLOCK 1024              /* seqs reserved per fsync */

struct tally_spool;

struct tally_spool_stats {
	uint64_t records;       /* not yet replayed */
	uint64_t bytes;         /* of those records, headers included */
	uint64_t appended;      /* since open */
	uint64_t replayed;      /* consumed since open */
	uint64_t corrupt;       /* records skipped as corrupt (open and peek) */
	uint64_t torn;          /* torn tails truncated at open */
	uint64_t full_refusals; /* appends refused with -ENOSPC */
	int64_t oldest_ms;      /* when the oldest record was appended, ms since epoch; 0 if empty */
	int64_t oldest_age_ms;  /* now - oldest_ms; 0 if empty */
	bool full_alarm, age_alarm;
	char last_err[256];     /* last error or damage report, "" if none */
};

/* Open (creating dir and its parents if missing), lock, verify and index the
 * records not yet replayed. max_bytes > 0; max_age_ms 0 disables the age
 * alarm. NULL with err filled and errno set on failure; a spool another
 * process holds gives EBUSY and names its pid. */
struct tally_spool *tally_spool_open(const char *dir, uint64_t max_bytes, uint64_t max_age_ms,
				     char *err, size_t errlen);
/* Sync, unlock and free. NULL is fine. */
void tally_spool_close(struct tally_spool *s);

/* Write one record (not durable until tally_spool_sync). 0, -ENOSPC (full, or
 * the file system is), -EMSGSIZE (batch over TALLY_SPOOL_RECORD_MAX) or another
 * negative errno from the write; the spool is unchanged on failure. */
int tally_spool_append(struct tally_spool *s, const struct tally_batch *b);
/* Make every record appended so far durable. 0 or a negative errno: then the
 * records since the last good sync may or may not survive a crash, and the
 * caller must keep them (appending again later is fine: the sink skips a
 * batch it holds). Appends after a failed sync go to a new segment. */
int tally_spool_sync(struct tally_spool *s);

/* Decode the oldest record not yet replayed into out (set up with
 * tally_batch_init). 0, -ENOENT when empty, or a negative errno. A record
 * that fails its CRC now is counted as corrupt and skipped. */
int tally_spool_peek(struct tally_spool *s, struct tally_batch *out);
/* Call fn on every record not yet replayed, oldest first, without consuming
 * (tally-spool, tests); records that fail their check are passed over. Stops at
 * fn's first non-zero return, which it returns. */
typedef int (*tally_spool_walk_fn)(const struct tally_batch *b, int64_t appended_ms, void *arg);
int tally_spool_walk(struct tally_spool *s, tally_spool_walk_fn fn, void *arg);
/* Durably mark the record peek returned as replayed. 0, -ENOENT or -errno. */
int tally_spool_consume(struct tally_spool *s);

/* A seq for the next batch: at least *next (pass the sink's last_seq + 1, or
 * 0 if unknown) and above every seq this spool ever handed out or holds. The
 * high-water mark is fsync'd before a new block is used. 0 or -errno (then
 * no seq is handed out). */
int tally_spool_seq_reserve(struct tally_spool *s, uint64_t *next);

/* Counters and alarms; the alarms are judged against the wall clock now. */
void tally_spool_stats(struct tally_spool *s, struct tally_spool_stats *out);
/* The last error message (owner thread). */
const char *tally_spool_errmsg(const struct tally_spool *s);

/* Segment size for the next roll (tests, tuning); default
 * TALLY_SPOOL_SEGMENT_BYTES. */
void tally_spool_set_segment_bytes(struct tally_spool *s, uint64_t bytes);

/* CRC32C (Castagnoli), as iSCSI, ext4 and SCTP use it: "123456789" -> 0xE3069283. */
uint32_t tally_crc32c(const void *p, size_t n);

#endif
