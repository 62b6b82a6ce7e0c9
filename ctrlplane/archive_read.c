/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Reading the archive (format in archive.h): the segment listing that is its
 * index by time, retention by age and size, and the scan that tally-recount and
 * tally-archive2pcap replay. A scan never trusts a length it has not checked:
 * the header CRC guards comp_len before a block is read, the data CRC guards
 * the bytes before zstd sees them, and record lengths are checked against the
 * block. Damage is skipped and reported, never fatal.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "archive.h"
#include "spool.h"

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return le16toh(v);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

/* seg-<13 digits>.tza, nothing else: other files in the directory are not ours. */
static bool seg_name(const char *name, uint64_t *start)
{
	char *end;

	if (strncmp(name, "seg-", 4) != 0 || strlen(name) != 4 + 13 + 4)
		return false;
	*start = strtoull(name + 4, &end, 10);
	return end == name + 17 && strcmp(end, ".tza") == 0;
}

int tally_archive_segments(const char *dir, uint64_t **starts, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t cap = 0;
	uint64_t s;

	*starts = NULL;
	*n = 0;
	if (d == NULL)
		return -errno;
	while ((e = readdir(d)) != NULL) {
		if (!seg_name(e->d_name, &s))
			continue;
		if (*n == cap) {
			uint64_t *g = realloc(*starts, (cap = cap ? cap * 2 : 64) * sizeof(*g));

			if (g == NULL) {
				closedir(d);
				free(*starts);
				*starts = NULL;
				return -ENOMEM;
			}
			*starts = g;
		}
		(*starts)[(*n)++] = s;
	}
	closedir(d);
	if (*n > 1) /* qsort must not see the NULL of an empty listing */
		qsort(*starts, *n, sizeof(**starts), cmp_u64);
	return 0;
}

static uint64_t seg_size(const char *dir, uint64_t start)
{
	char path[1200];
	struct stat st;

	tally_archive_seg_path(path, sizeof(path), dir, start);
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

int tally_archive_info(const char *dir, struct tally_archive_info *out)
{
	uint64_t *s;
	size_t n;
	int r = tally_archive_segments(dir, &s, &n);

	memset(out, 0, sizeof(*out));
	if (r < 0)
		return r;
	out->segments = n;
	for (size_t i = 0; i < n; i++)
		out->bytes += seg_size(dir, s[i]);
	if (n > 0) {
		out->oldest_ms = s[0];
		out->newest_ms = s[n - 1];
	}
	free(s);
	return 0;
}

static void delete_seg(struct tally_archive *a, uint64_t start)
{
	char path[1200];

	tally_archive_seg_path(path, sizeof(path), a->dir, start);
	if (unlink(path) == 0)
		a->st.segments_deleted++;
}

/* When segment i's records end: where the next one starts (or a slice on). */
static uint64_t seg_end(const struct tally_archive *a, const uint64_t *s, size_t n, size_t i)
{
	return i + 1 < n ? s[i + 1] : s[i] + a->slice_ms;
}

/* Oldest first: by age, then by size. The segment being written is never
 * deleted (it is counted in the size). Size keeps a quarter of the bound free:
 * the segment being written grows up to that before it rolls. */
unsigned tally_archive_retain(struct tally_archive *a, uint64_t now_ms)
{
	uint64_t *s, total = 0, before = a->st.segments_deleted;
	size_t n, old, i = 0;

	if (tally_archive_segments(a->dir, &s, &n) < 0)
		return 0;
	old = n > 0 && a->fd >= 0 && s[n - 1] == a->seg_start ? n - 1 : n;
	for (; i < old && a->retention_ms && seg_end(a, s, n, i) + a->retention_ms < now_ms; i++)
		delete_seg(a, s[i]);
	for (size_t j = i; j < old; j++)
		total += seg_size(a->dir, s[j]);
	total += old < n ? a->seg_bytes : 0;
	for (; i < old && a->max_bytes && total > a->max_bytes - a->max_bytes / 4; i++) {
		total -= seg_size(a->dir, s[i]);
		delete_seg(a, s[i]);
	}
	free(s);
	return (unsigned)(a->st.segments_deleted - before);
}

/* The reader's state for one segment. */
struct seg_reader {
	FILE *f;
	uint64_t start, off;
	uint8_t *comp, *raw;
	size_t comp_cap;
	struct tally_archive_scan_report *rep;
	FILE *log;
};

static void report(struct seg_reader *s, const char *what)
{
	if (s->log != NULL)
		fprintf(s->log, "archive: segment %013" PRIu64 " at byte %" PRIu64 ": %s\n",
			s->start, s->off, what);
}

/* Records of one decompressed block within [from, to). */
static int emit_records(const uint8_t *raw, size_t len, uint32_t nrec, uint64_t from,
			uint64_t to, tally_archive_fn fn, void *arg, struct seg_reader *s)
{
	size_t o = 0;

	for (uint32_t i = 0; i < nrec; i++) {
		struct tally_arec r;

		if (len - o < TALLY_ARCHIVE_REC || len - o - TALLY_ARCHIVE_REC < get16(raw + o + 8)) {
			s->rep->corrupt_blocks++;
			report(s, "record runs past its block (skipped the rest of the block)");
			return 0;
		}
		r.arrival_ms = get64(raw + o);
		r.len = get16(raw + o + 8);
		r.sport = get16(raw + o + 10);
		r.dport = get16(raw + o + 12);
		r.ip_version = raw[o + 14];
		memcpy(r.saddr, raw + o + 16, 16);
		r.payload = raw + o + TALLY_ARCHIVE_REC;
		o += TALLY_ARCHIVE_REC + r.len;
		if (r.arrival_ms < from || r.arrival_ms >= to)
			continue;
		s->rep->records++;
		if (fn(&r, arg) != 0)
			return 1;
	}
	return 0;
}

/* One block: 1 = the segment ends here (end, torn or bad header), 0 = next,
 * 2 = the callback asked to stop. */
static int read_block(struct seg_reader *s, uint64_t from, uint64_t to, tally_archive_fn fn,
		      void *arg)
{
	uint8_t h[TALLY_ARCHIVE_HDR];
	size_t got = fread(h, 1, sizeof(h), s->f);
	uint32_t raw_len, comp_len, nrec;
	size_t d;

	if (got == 0)
		return 1;
	if (got < sizeof(h)) {
		s->rep->torn_tails++;
		report(s, "torn tail: block header cut short (crash while writing?)");
		return 1;
	}
	if (memcmp(h, "TZA1", 4) != 0 || get32(h + 36) != tally_crc32c(h, 36)) {
		s->rep->corrupt_headers++;
		report(s, "corrupt block header: the rest of the segment is skipped");
		return 1;
	}
	raw_len = get32(h + 4);
	comp_len = get32(h + 8);
	nrec = get32(h + 12);
	if (raw_len > TALLY_ARCHIVE_BLOCK || comp_len > s->comp_cap) {
		s->rep->corrupt_headers++;
		report(s, "block header with impossible lengths: the rest of the segment is skipped");
		return 1;
	}
	if (fread(s->comp, 1, comp_len, s->f) != comp_len) {
		s->rep->torn_tails++;
		report(s, "torn tail: block cut short (crash while writing?)");
		return 1;
	}
	s->rep->blocks++;
	s->off += TALLY_ARCHIVE_HDR + comp_len;
	if (get64(h + 24) < from || get64(h + 16) >= to)
		return 0; /* the header's time range: no need to decompress */
	if (get32(h + 32) != tally_crc32c(s->comp, comp_len)) {
		s->rep->corrupt_blocks++;
		report(s, "corrupt block (data checksum): skipped");
		return 0;
	}
	d = ZSTD_decompress(s->raw, TALLY_ARCHIVE_BLOCK, s->comp, comp_len);
	if (ZSTD_isError(d) || d != raw_len) {
		s->rep->corrupt_blocks++;
		report(s, "block does not decompress to its length: skipped");
		return 0;
	}
	return emit_records(s->raw, d, nrec, from, to, fn, arg, s) ? 2 : 0;
}

static int scan_segment(struct seg_reader *s, const char *dir, uint64_t from, uint64_t to,
			tally_archive_fn fn, void *arg)
{
	char path[1200];
	int r = 0;

	tally_archive_seg_path(path, sizeof(path), dir, s->start);
	s->f = fopen(path, "rb");
	if (s->f == NULL) {
		if (s->log != NULL)
			fprintf(s->log, "archive: %s: %s (skipped)\n", path, strerror(errno));
		return 0;
	}
	s->off = 0;
	s->rep->segments++;
	while ((r = read_block(s, from, to, fn, arg)) == 0)
		;
	fclose(s->f);
	return r == 2;
}

int tally_archive_scan(const char *dir, uint64_t from, uint64_t to, tally_archive_fn fn,
		       void *arg, struct tally_archive_scan_report *rep, FILE *log,
		       void (*progress)(size_t done, size_t total, void *arg))
{
	struct seg_reader s = {.rep = rep, .log = log};
	uint64_t *st;
	size_t n;
	int r = tally_archive_segments(dir, &st, &n);

	memset(rep, 0, sizeof(*rep));
	if (r < 0)
		return r;
	s.comp_cap = ZSTD_compressBound(TALLY_ARCHIVE_BLOCK);
	s.comp = malloc(s.comp_cap);
	s.raw = malloc(TALLY_ARCHIVE_BLOCK);
	if (s.comp == NULL || s.raw == NULL)
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++) {
		/* A segment ends where the next starts, give or take the slack. */
		bool before = i + 1 < n && st[i + 1] + TALLY_ARCHIVE_SLACK_MS <= from;
		bool after = st[i] >= to && st[i] - to >= TALLY_ARCHIVE_SLACK_MS;

		if (!before && !after) {
			s.start = st[i];
			if (scan_segment(&s, dir, from, to, fn, arg))
				break;
		}
		if (progress != NULL)
			progress(i + 1, n, arg);
	}
	free(s.comp);
	free(s.raw);
	free(st);
	return r;
}
