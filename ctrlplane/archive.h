/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The raw-event archive: every datagram a worker accepted (its UDP payload, the
 * arrival time the worker used and the source address and port), kept for days
 * in compressed, checksummed segment files so totals can be recomputed later
 * (tally-recount) at another window size or under corrected rules.
 *
 * Layout: one directory, one segment per time slice, named seg-<first arrival
 * ms, 13 digits>.tza, so the sorted directory listing is the index by time (a
 * segment holds arrivals from its name up to the next segment's name, give or
 * take TALLY_ARCHIVE_SLACK_MS: the archiver interleaves workers whose clocks
 * differ by a little). A
 * segment is a sequence of blocks; each block is zstd-compressed records:
 *
 *   block header, 40 bytes, little-endian
 *     0 magic "TZA1" | 4 raw_len u32 | 8 comp_len u32 | 12 nrec u32
 *     16 t_first u64 | 24 t_last u64 (smallest and largest arrival ms in it)
 *     32 crc32c(compressed bytes) u32 | 36 crc32c(the 36 header bytes) u32
 *   record (inside the compressed bytes), 32 bytes + payload
 *     0 arrival_ms u64 | 8 len u16 | 10 sport u16 | 12 dport u16
 *     14 ip_version u8 (4 or 6) | 15 0 | 16 saddr[16] (IPv4: first 4) | payload
 *
 * Two checksums let a reader tell a damaged block (data CRC: skip it, go on)
 * from a damaged header (its length cannot be trusted: the rest of the segment
 * is skipped) and a torn tail (a header or block cut short by a crash). Every
 * skip is reported. A write that fails (disk full) is cut back to the last whole
 * block, and the archive pauses: its records are counted as dropped, never a
 * crash, and counting goes on; it retries after retention freed room.
 */
#ifndef TALLY_ARCHIVE_H
#define TALLY_ARCHIVE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define TALLY_ARCHIVE_HDR 40
#define TALLY_ARCHIVE_REC 32
#define TALLY_ARCHIVE_BLOCK (256 * 1024) /* raw bytes per block, at most */
#define TALLY_ARCHIVE_BLOCK_MS 1000      /* a partial block is written after this */
#define TALLY_ARCHIVE_RETRY_MS 5000      /* a paused archive tries again after this */
#define TALLY_ARCHIVE_SLACK_MS 60000     /* how far a record may precede its segment's name */

/* One archived datagram. */
struct tally_arec {
	uint64_t arrival_ms;
	uint16_t len, sport, dport;
	uint8_t ip_version;
	uint8_t saddr[16];
	const uint8_t *payload;
};

struct tally_archive_stats {
	uint64_t datagrams;        /* records written (in whole blocks) */
	uint64_t bytes;            /* compressed bytes written, headers included */
	uint64_t dropped_disk;     /* records lost to a failed write or while paused */
	uint64_t disk_full;        /* writes that failed: the archive paused */
	uint64_t segments_deleted; /* by retention or size */
};

struct tally_archive {
	char dir[1024];
	uint64_t retention_ms, max_bytes, slice_ms;
	int fd;                 /* current segment, -1 = none open */
	uint64_t seg_start;     /* its name */
	uint64_t seg_bytes;     /* its size */
	uint8_t *raw, *comp;    /* the block being filled, and its compressed form */
	size_t raw_used, comp_cap;
	uint32_t nrec;
	uint64_t t_first, t_last;
	uint64_t block_opened_ms; /* arrival ms of the block's first record */
	bool paused;
	uint64_t paused_at_ms;
	uint64_t retained_ms; /* last retention pass */
	void *zctx;
	struct tally_archive_stats st;
	char last_err[1400];
};

/* Directory state, from the listing (tallyctl archive, tally-recount). */
struct tally_archive_info {
	uint64_t segments, bytes;
	uint64_t oldest_ms, newest_ms; /* segment names: first arrival of the oldest/newest */
};

/* Create dir if missing and get ready; 0 or a negative errno with err filled. */
int tally_archive_open(struct tally_archive *a, const char *dir, uint64_t retention_ms,
		       uint64_t max_bytes, uint64_t slice_ms, char *err, size_t errlen);
/* Add one record (copied into the block). 0, or -EAGAIN when paused (counted). */
int tally_archive_add(struct tally_archive *a, const struct tally_arec *r);
/* Periodic: write a block older than TALLY_ARCHIVE_BLOCK_MS, apply retention,
 * retry a paused archive. now_ms is arrival-clock time. */
void tally_archive_tick(struct tally_archive *a, uint64_t now_ms);
/* Write the partial block and close the segment. */
void tally_archive_close(struct tally_archive *a);
/* Delete segments past retention and size; returns how many. */
unsigned tally_archive_retain(struct tally_archive *a, uint64_t now_ms);

/* Segments of dir, sorted by time: *starts (malloc'd) and *n. 0 or -errno. */
int tally_archive_segments(const char *dir, uint64_t **starts, size_t *n);
int tally_archive_info(const char *dir, struct tally_archive_info *out);
void tally_archive_seg_path(char *buf, size_t len, const char *dir, uint64_t start);

/* What a scan skipped. */
struct tally_archive_scan_report {
	uint64_t segments, blocks, records;
	uint64_t corrupt_blocks, corrupt_headers, torn_tails;
};

/* Calls fn for every record with from <= arrival_ms < to, in file order; fn
 * returns 0 to go on. Damage is reported on log (may be NULL) and in rep.
 * progress (may be NULL) is called after each segment with (done, total). */
typedef int (*tally_archive_fn)(const struct tally_arec *r, void *arg);
int tally_archive_scan(const char *dir, uint64_t from, uint64_t to, tally_archive_fn fn,
		       void *arg, struct tally_archive_scan_report *rep, FILE *log,
		       void (*progress)(size_t done, size_t total, void *arg));

#endif
