/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The archive writer (format in archive.h). One thread, the archiver, owns it:
 * records are copied into a raw block; a block goes to disk, compressed with
 * zstd level 1 (about 400 MB/s a core, 3-5x on event payloads) when it is full
 * or a second old, so a crash loses at most a second. A new segment starts per
 * time slice (archive_segment_ms) or when one holds a quarter of
 * archive_max_bytes, so retention can always free room by whole files.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "archive.h"
#include "spool.h"
#include "spool_file.h"

#define ZSTD_LEVEL 1

static void put16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

void tally_archive_seg_path(char *buf, size_t len, const char *dir, uint64_t start)
{
	snprintf(buf, len, "%s/seg-%013" PRIu64 ".tza", dir, start);
}

int tally_archive_open(struct tally_archive *a, const char *dir, uint64_t retention_ms,
		       uint64_t max_bytes, uint64_t slice_ms, char *err, size_t errlen)
{
	int r;

	memset(a, 0, sizeof(*a));
	a->fd = -1;
	a->retention_ms = retention_ms;
	a->max_bytes = max_bytes;
	a->slice_ms = slice_ms ? slice_ms : 1;
	if (snprintf(a->dir, sizeof(a->dir), "%s", dir) >= (int)sizeof(a->dir)) {
		snprintf(err, errlen, "archive_dir: %s: path too long", dir);
		return -ENAMETOOLONG;
	}
	r = tally_mkdir_p(dir);
	if (r < 0) {
		snprintf(err, errlen, "archive_dir: cannot create %s: %s", dir, strerror(-r));
		return r;
	}
	a->comp_cap = ZSTD_compressBound(TALLY_ARCHIVE_BLOCK);
	a->raw = malloc(TALLY_ARCHIVE_BLOCK);
	a->comp = malloc(TALLY_ARCHIVE_HDR + a->comp_cap);
	a->zctx = ZSTD_createCCtx();
	if (a->raw == NULL || a->comp == NULL || a->zctx == NULL) {
		tally_archive_close(a);
		snprintf(err, errlen, "archive_dir: %s: out of memory for the block buffers", dir);
		return -ENOMEM;
	}
	return 0;
}

/* The block failed to reach the disk: cut the segment back to its last whole
 * block (a half-written block would read as torn) and pause. */
static void pause_on_error(struct tally_archive *a, int e, uint64_t now_ms)
{
	snprintf(a->last_err, sizeof(a->last_err), "archive: segment %" PRIu64 " in %s: %s: "
		 "archive paused, counting goes on", a->seg_start, a->dir, strerror(e));
	if (a->fd >= 0 && ftruncate(a->fd, (off_t)a->seg_bytes) != 0) {
		close(a->fd); /* cannot even cut it: a reader will report a torn tail */
		a->fd = -1;
	}
	a->st.disk_full++;
	a->st.dropped_disk += a->nrec;
	a->paused = true;
	a->paused_at_ms = now_ms;
}

static int open_segment(struct tally_archive *a, uint64_t start)
{
	char path[1200];
	struct stat s;

	tally_archive_seg_path(path, sizeof(path), a->dir, start);
	a->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (a->fd < 0)
		return -errno;
	a->seg_start = start;
	a->seg_bytes = fstat(a->fd, &s) == 0 ? (uint64_t)s.st_size : 0;
	return 0;
}

static void close_segment(struct tally_archive *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -ENOSPC;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static size_t encode_block(struct tally_archive *a)
{
	uint8_t *h = a->comp;
	size_t c = ZSTD_compressCCtx(a->zctx, h + TALLY_ARCHIVE_HDR, a->comp_cap, a->raw,
				     a->raw_used, ZSTD_LEVEL);

	if (ZSTD_isError(c))
		return 0;
	memcpy(h, "TZA1", 4);
	put32(h + 4, (uint32_t)a->raw_used);
	put32(h + 8, (uint32_t)c);
	put32(h + 12, a->nrec);
	put64(h + 16, a->t_first);
	put64(h + 24, a->t_last);
	put32(h + 32, tally_crc32c(h + TALLY_ARCHIVE_HDR, c));
	put32(h + 36, tally_crc32c(h, 36));
	return TALLY_ARCHIVE_HDR + c;
}

/* Write the block being filled; it is empty afterwards whatever happened. */
static void write_block(struct tally_archive *a, uint64_t now_ms)
{
	size_t n;
	int r = 0;

	if (a->nrec == 0)
		return;
	if (a->fd < 0)
		r = open_segment(a, a->t_first);
	n = r == 0 ? encode_block(a) : 0;
	if (r == 0 && n == 0)
		r = -EIO; /* zstd cannot fail on a bounded buffer: a bug, not a crash */
	if (r == 0)
		r = write_all(a->fd, a->comp, n);
	if (r < 0) {
		pause_on_error(a, -r, now_ms);
	} else {
		a->seg_bytes += n;
		a->st.bytes += n;
		a->st.datagrams += a->nrec;
	}
	a->raw_used = 0;
	a->nrec = 0;
}

/* A record past the slice, or a segment grown to a quarter of the bound,
 * starts a new segment (after the block in hand is written). */
static void maybe_roll(struct tally_archive *a, uint64_t t)
{
	bool big = a->max_bytes && a->seg_bytes + a->raw_used > a->max_bytes / 4;
	uint64_t base = a->fd >= 0 ? a->seg_start : a->t_first;

	if (a->fd < 0 && a->nrec == 0)
		return;
	if (t < base + a->slice_ms && !big)
		return;
	write_block(a, t);
	close_segment(a);
	tally_archive_retain(a, t);
}

int tally_archive_add(struct tally_archive *a, const struct tally_arec *r)
{
	uint8_t *p;

	if (a->paused) {
		a->st.dropped_disk++;
		return -EAGAIN;
	}
	maybe_roll(a, r->arrival_ms);
	if (a->raw_used + TALLY_ARCHIVE_REC + r->len > TALLY_ARCHIVE_BLOCK)
		write_block(a, r->arrival_ms);
	if (a->paused) {
		a->st.dropped_disk++;
		return -EAGAIN;
	}
	p = a->raw + a->raw_used;
	put64(p, r->arrival_ms);
	put16(p + 8, r->len);
	put16(p + 10, r->sport);
	put16(p + 12, r->dport);
	p[14] = r->ip_version;
	p[15] = 0;
	memcpy(p + 16, r->saddr, 16);
	memcpy(p + TALLY_ARCHIVE_REC, r->payload, r->len);
	a->raw_used += TALLY_ARCHIVE_REC + (size_t)r->len;
	if (a->nrec++ == 0) {
		a->t_first = a->t_last = r->arrival_ms;
		a->block_opened_ms = r->arrival_ms;
	}
	/* Workers' clocks interleave: the header holds the block's min and max. */
	a->t_first = r->arrival_ms < a->t_first ? r->arrival_ms : a->t_first;
	a->t_last = r->arrival_ms > a->t_last ? r->arrival_ms : a->t_last;
	return 0;
}

void tally_archive_tick(struct tally_archive *a, uint64_t now_ms)
{
	if (a->paused) {
		if (now_ms - a->paused_at_ms < TALLY_ARCHIVE_RETRY_MS)
			return;
		/* Retention may have freed room; the next write tells. */
		close_segment(a);
		tally_archive_retain(a, now_ms);
		a->paused = false;
		return;
	}
	if (a->nrec && now_ms >= a->block_opened_ms + TALLY_ARCHIVE_BLOCK_MS)
		write_block(a, now_ms);
	if (a->fd >= 0 && now_ms >= a->seg_start + a->slice_ms) {
		close_segment(a);
		tally_archive_retain(a, now_ms);
		a->retained_ms = now_ms;
	}
	/* Age moves on without traffic too: retention every 10 s. */
	if (now_ms >= a->retained_ms + 10000) {
		tally_archive_retain(a, now_ms);
		a->retained_ms = now_ms;
	}
}

void tally_archive_close(struct tally_archive *a)
{
	if (a->raw != NULL && !a->paused)
		write_block(a, a->t_last);
	close_segment(a);
	free(a->raw);
	free(a->comp);
	ZSTD_freeCCtx(a->zctx);
	a->raw = a->comp = NULL;
	a->zctx = NULL;
}
