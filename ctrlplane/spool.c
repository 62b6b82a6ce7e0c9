/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The spool (spool.h): segments of checksummed records, an in-memory index of
 * the records not yet replayed, a durable cursor and a seq high-water mark.
 *
 * The main idea: everything on disk is either verified before it is trusted
 * or replaced atomically. Open scans every record after the cursor (header
 * CRC, payload CRC, the payload decodes) and builds the index; from then on
 * appends and consumes keep the index in step with the files, so peek is one
 * pread at a known offset, checked once more. Each open appends to a fresh
 * segment, so no record ever follows bytes a crash may have torn, and a cursor
 * that outran a lost unsynced tail can never hide a record written later.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "spool.h"
#include "spool_file.h"

#define REC_MAGIC "TSR1"
#define CURSOR_MAGIC "TSC1"
#define SEQ_MAGIC "TSQ1"
#define SEG_FMT "seg-%020" PRIu64 ".tsp"
#define SEG_NAME_LEN 28
#define SEG_MIN_BYTES (1ULL << 20)

enum { REC_OK, REC_SHORT, REC_BAD };

/* A record not yet replayed. */
struct rec {
	uint64_t seg, off;
	int64_t time_ms;
	uint32_t len; /* payload bytes */
};

/* A segment file on disk and how many of its records are not yet replayed. */
struct seg {
	uint64_t id;
	uint64_t live;
};

struct tally_spool {
	char dir[PATH_MAX];
	int dirfd, lockfd;
	int wfd;              /* active segment, -1 until the first append */
	uint64_t wseg, wsize; /* its id (0 = none) and size */
	uint64_t next_seg;    /* id of the next segment to create */
	bool wdirty, dirdirty, broken;
	int sync_err;         /* a failed fdatasync at roll, for the next sync */
	int rfd;              /* cached read fd of segment rseg */
	uint64_t rseg;
	uint64_t max_bytes, seg_bytes;
	int64_t max_age_ms;
	struct rec *q; /* the index: q[qhead .. qhead + qlen) */
	size_t qhead, qlen, qcap;
	struct seg *segs; /* oldest first */
	size_t nsegs, segcap;
	uint64_t cur_seg, cur_off; /* durable cursor */
	uint64_t live_bytes;
	uint64_t seq_next, seq_limit;
	uint8_t *buf;
	size_t bufcap;
	struct tally_batch scratch; /* decode check while scanning */
	struct tally_spool_stats st; /* the owner's counters */
	pthread_mutex_t mu;          /* guards pub */
	struct tally_spool_stats pub;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void report(struct tally_spool *s, const char *fmt, ...)
{
	size_t k = (size_t)snprintf(s->st.last_err, sizeof(s->st.last_err), "spool %.64s: ", s->dir);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->st.last_err + k, sizeof(s->st.last_err) - k, fmt, ap);
	va_end(ap);
}

/* Copy the owner's view where tally_spool_stats() can read it. */
static void publish(struct tally_spool *s)
{
	s->st.records = s->qlen;
	s->st.bytes = s->live_bytes;
	s->st.oldest_ms = s->qlen ? s->q[s->qhead].time_ms : 0;
	pthread_mutex_lock(&s->mu);
	s->pub = s->st;
	pthread_mutex_unlock(&s->mu);
}

static int grow_buf(struct tally_spool *s, size_t n)
{
	uint8_t *p;

	if (n <= s->bufcap)
		return 0;
	p = realloc(s->buf, n);
	if (p == NULL)
		return -ENOMEM;
	s->buf = p;
	s->bufcap = n;
	return 0;
}

/* ---- the index ---- */

static int q_push(struct tally_spool *s, uint64_t seg, uint64_t off, int64_t t, uint32_t len)
{
	if (s->qhead + s->qlen == s->qcap && s->qhead > 0) {
		memmove(s->q, s->q + s->qhead, s->qlen * sizeof(*s->q));
		s->qhead = 0;
	}
	if (s->qlen == s->qcap) {
		size_t cap = s->qcap ? s->qcap * 2 : 256;
		struct rec *q = realloc(s->q, cap * sizeof(*q));

		if (q == NULL)
			return -ENOMEM;
		s->q = q;
		s->qcap = cap;
	}
	s->q[s->qhead + s->qlen++] = (struct rec){seg, off, t, len};
	s->live_bytes += TALLY_SPOOL_HDR + (uint64_t)len;
	for (size_t i = s->nsegs; i-- > 0;)
		if (s->segs[i].id == seg) {
			s->segs[i].live++;
			break;
		}
	return 0;
}

static void q_pop(struct tally_spool *s)
{
	const struct rec *e = &s->q[s->qhead];

	s->live_bytes -= TALLY_SPOOL_HDR + (uint64_t)e->len;
	for (size_t i = 0; i < s->nsegs; i++)
		if (s->segs[i].id == e->seg) {
			s->segs[i].live--;
			break;
		}
	s->qhead++;
	if (--s->qlen == 0)
		s->qhead = 0;
}

static int seg_push(struct tally_spool *s, uint64_t id)
{
	if (s->nsegs == s->segcap) {
		size_t cap = s->segcap ? s->segcap * 2 : 16;
		struct seg *p = realloc(s->segs, cap * sizeof(*p));

		if (p == NULL)
			return -ENOMEM;
		s->segs = p;
		s->segcap = cap;
	}
	s->segs[s->nsegs++] = (struct seg){id, 0};
	return 0;
}

/* ---- records ---- */

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static void hdr_encode(uint8_t *p, uint32_t len, int64_t t, uint32_t pcrc)
{
	uint64_t t64 = htole64((uint64_t)t);

	memcpy(p, REC_MAGIC, 4);
	put32(p + 4, len);
	memcpy(p + 8, &t64, 8);
	put32(p + 16, pcrc);
	put32(p + 20, tally_crc32c(p, 20));
}

/* Check the record at p (avail bytes there). REC_SHORT: it would end past
 * avail; REC_BAD: not a record (why says which check failed). Lengths are
 * checked against avail before any payload byte is read. */
static int rec_check(const uint8_t *p, size_t avail, uint32_t *len, int64_t *t, const char **why)
{
	uint64_t t64;

	if (avail < TALLY_SPOOL_HDR) {
		*why = "header cut short";
		return REC_SHORT;
	}
	if (memcmp(p, REC_MAGIC, 4) != 0 || get32(p + 20) != tally_crc32c(p, 20)) {
		*why = memcmp(p, REC_MAGIC, 4) ? "bad magic" : "bad header CRC";
		return REC_BAD;
	}
	*len = get32(p + 4);
	memcpy(&t64, p + 8, 8);
	*t = (int64_t)le64toh(t64);
	if (*len == 0 || *len > TALLY_SPOOL_RECORD_MAX) {
		*why = "length out of range";
		return REC_BAD;
	}
	if (*len > avail - TALLY_SPOOL_HDR) {
		*why = "payload cut short";
		return REC_SHORT;
	}
	if (get32(p + 16) != tally_crc32c(p + TALLY_SPOOL_HDR, *len)) {
		*why = "bad payload CRC";
		return REC_BAD;
	}
	return REC_OK;
}

/* rec_check, and the payload must decode as a batch. */
static int rec_valid(struct tally_spool *s, const uint8_t *p, size_t avail, uint32_t *len,
		     int64_t *t, const char **why)
{
	int r = rec_check(p, avail, len, t, why);

	if (r != REC_OK)
		return r;
	if (tally_batch_decode(&s->scratch, p + TALLY_SPOOL_HDR, *len) != 0) {
		*why = "payload does not decode";
		return REC_BAD;
	}
	return REC_OK;
}

/* The offset of the next valid record at or after from, or n if none. */
static size_t resync(struct tally_spool *s, const uint8_t *buf, size_t n, size_t from)
{
	uint32_t len;
	int64_t t;
	const char *why;

	while (from + TALLY_SPOOL_HDR <= n) {
		const uint8_t *m = memmem(buf + from, n - from, REC_MAGIC, 4);

		if (m == NULL)
			break;
		from = (size_t)(m - buf);
		if (rec_valid(s, m, n - from, &len, &t, &why) == REC_OK)
			return from;
		from++;
	}
	return n;
}

/* ---- open: scan the segments ---- */

static void seg_name(char *out, size_t len, uint64_t id)
{
	snprintf(out, len, SEG_FMT, id);
}

static int read_segment(struct tally_spool *s, int fd, uint64_t start, size_t *n)
{
	struct stat sb;
	ssize_t got;

	if (fstat(fd, &sb) != 0)
		return -errno;
	*n = (uint64_t)sb.st_size > start ? (size_t)((uint64_t)sb.st_size - start) : 0;
	if (grow_buf(s, *n + 1) != 0)
		return -ENOMEM;
	got = tally_pread_all(fd, s->buf, *n, (off_t)start);
	if (got < 0)
		return (int)got;
	*n = (size_t)got;
	return 0;
}

/* Index the valid records of s->buf (segment id, file offset base + i); skip
 * and report damage. *clean is the length of the clean prefix when the last
 * segment ends in bytes no valid record follows (a torn tail), else n. */
static int scan_buf(struct tally_spool *s, uint64_t id, uint64_t base, size_t n, bool last,
		    size_t *clean)
{
	size_t off = 0;

	*clean = n;

	while (off < n) {
		uint32_t len = 0;
		int64_t t = 0;
		const char *why = "";
		size_t next;

		if (rec_valid(s, s->buf + off, n - off, &len, &t, &why) == REC_OK) {
			if (s->scratch.seq >= s->seq_next)
				s->seq_next = s->scratch.seq + 1;
			if (q_push(s, id, base + off, t, len) != 0) {
				report(s, "out of memory indexing segment %" PRIu64, id);
				return -ENOMEM;
			}
			off += TALLY_SPOOL_HDR + (size_t)len;
			continue;
		}
		next = resync(s, s->buf, n, off + 1);
		if (next == n && last) {
			*clean = off;
			return 0;
		}
		s->st.corrupt++;
		report(s, "corrupt record in segment %" PRIu64 " at offset %" PRIu64
			  " (%s): %zu bytes skipped", id, base + off, why, next - off);
		off = next;
	}
	return 0;
}

static int scan_segment(struct tally_spool *s, uint64_t id, uint64_t start, bool last)
{
	char name[64];
	size_t n = 0, clean = 0;
	int fd, rc;

	seg_name(name, sizeof(name), id);
	fd = openat(s->dirfd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		report(s, "cannot open %s: %s", name, strerror(errno));
		return -errno;
	}
	rc = read_segment(s, fd, start, &n);
	if (rc != 0) {
		report(s, "cannot read %s: %s", name, strerror(-rc));
		close(fd);
		return rc;
	}
	rc = scan_buf(s, id, start, n, last, &clean);
	if (rc == 0 && clean < n) {
		s->st.torn++;
		report(s, "torn tail in segment %" PRIu64 " at offset %" PRIu64
			  ": %zu bytes truncated", id, start + clean, n - clean);
		if (ftruncate(fd, (off_t)(start + clean)) != 0 || fsync(fd) != 0)
			report(s, "cannot truncate the torn tail of %s: %s", name, strerror(errno));
	}
	close(fd);
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The ids of the segment files, sorted. */
static int list_segments(struct tally_spool *s, uint64_t **ids, size_t *n)
{
	int fd = dup(s->dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	size_t cap = 0;

	*ids = NULL;
	*n = 0;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		uint64_t id;
		char check[64];

		if (strlen(de->d_name) != SEG_NAME_LEN || sscanf(de->d_name, "seg-%" SCNu64, &id) != 1)
			continue;
		seg_name(check, sizeof(check), id);
		if (strcmp(check, de->d_name) != 0 || id == 0)
			continue;
		if (*n == cap) {
			uint64_t *p = realloc(*ids, (cap = cap ? cap * 2 : 16) * sizeof(*p));

			if (p == NULL) {
				closedir(d);
				return -ENOMEM;
			}
			*ids = p;
		}
		(*ids)[(*n)++] = id;
	}
	closedir(d);
	if (*n > 1)
		qsort(*ids, *n, sizeof(**ids), cmp_u64);
	return 0;
}

static int scan_all(struct tally_spool *s)
{
	uint64_t *ids;
	size_t n;
	int rc = list_segments(s, &ids, &n);

	if (rc != 0) {
		report(s, "cannot list the directory: %s", strerror(-rc));
		return rc;
	}
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char name[64];

		if (ids[i] < s->cur_seg) { /* replayed: a crash came before its unlink */
			seg_name(name, sizeof(name), ids[i]);
			unlinkat(s->dirfd, name, 0);
			continue;
		}
		rc = seg_push(s, ids[i]);
		if (rc == 0)
			rc = scan_segment(s, ids[i], ids[i] == s->cur_seg ? s->cur_off : 0, i + 1 == n);
	}
	s->next_seg = (n > 0 && ids[n - 1] > s->cur_seg ? ids[n - 1] : s->cur_seg) + 1;
	free(ids);
	return rc;
}

/* ---- open ---- */

static int take_lock(struct tally_spool *s)
{
	char pid[32] = "";
	ssize_t got;
	int len;

	s->lockfd = openat(s->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (s->lockfd < 0) {
		report(s, "cannot open the lock file: %s", strerror(errno));
		return -errno;
	}
	if (flock(s->lockfd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;

		got = tally_pread_all(s->lockfd, pid, sizeof(pid) - 1, 0);
		pid[got > 0 ? got : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		if (e == EWOULDBLOCK) {
			report(s, "in use by another process (pid %s): one tallyd per spool directory",
			       pid[0] ? pid : "?");
			return -EBUSY;
		}
		report(s, "cannot lock: %s", strerror(e));
		return -e;
	}
	/* The pid is only for the message above: failing to write it is harmless. */
	len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(s->lockfd, 0) == 0)
		(void)tally_pwrite_all(s->lockfd, pid, (size_t)len, 0);
	return 0;
}

static int load_cursor(struct tally_spool *s)
{
	uint64_t v[2];
	int rc = tally_small_read(s->dirfd, "cursor", CURSOR_MAGIC, v, 2);

	if (rc == 0) {
		s->cur_seg = v[0];
		s->cur_off = v[1];
	} else if (rc == -EBADMSG) {
		/* Replaying too much is safe (the sink skips what it holds). */
		report(s, "cursor file damaged: replaying from the oldest segment");
	} else if (rc != -ENOENT) {
		report(s, "cannot read the cursor file: %s", strerror(-rc));
		return rc;
	}
	return 0;
}

static int load_seq(struct tally_spool *s)
{
	uint64_t v = 1;
	int rc = tally_small_read(s->dirfd, "seq", SEQ_MAGIC, &v, 1);

	if (rc == -EBADMSG) {
		/* Guessing could reuse a seq, and the sink would skip that batch. */
		report(s, "seq file damaged: tallyd cannot know which batch seqs were used; "
			  "remove it only while the sink is reachable");
		return rc;
	}
	if (rc != 0 && rc != -ENOENT) {
		report(s, "cannot read the seq file: %s", strerror(-rc));
		return rc;
	}
	s->seq_limit = v;
	if (s->seq_next < v)
		s->seq_next = v;
	return 0;
}

static int reclaim(struct tally_spool *s);

static int open_steps(struct tally_spool *s, const char *dir)
{
	int rc = tally_mkdir_p(dir);

	if (rc != 0) {
		report(s, "cannot create the directory: %s", strerror(-rc));
		return rc;
	}
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		report(s, "cannot open the directory: %s", strerror(errno));
		return -errno;
	}
	rc = take_lock(s);
	if (rc == 0)
		rc = load_cursor(s);
	if (rc == 0)
		rc = load_seq(s);
	if (rc == 0)
		rc = scan_all(s);
	if (rc == 0)
		rc = reclaim(s);
	return rc;
}

static uint64_t default_segment_bytes(uint64_t max_bytes)
{
	uint64_t b = max_bytes / 8;

	return b < SEG_MIN_BYTES ? SEG_MIN_BYTES
				 : b > TALLY_SPOOL_SEGMENT_BYTES ? TALLY_SPOOL_SEGMENT_BYTES : b;
}

struct tally_spool *tally_spool_open(const char *dir, uint64_t max_bytes, uint64_t max_age_ms,
				     char *err, size_t errlen)
{
	struct tally_spool *s = calloc(1, sizeof(*s));
	int rc;

	if (s == NULL) {
		snprintf(err, errlen, "spool %s: out of memory", dir);
		errno = ENOMEM;
		return NULL;
	}
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	s->dirfd = s->lockfd = s->wfd = s->rfd = -1;
	s->max_bytes = max_bytes;
	s->max_age_ms = max_age_ms > INT64_MAX ? INT64_MAX : (int64_t)max_age_ms;
	s->seg_bytes = default_segment_bytes(max_bytes);
	s->seq_next = 1;
	pthread_mutex_init(&s->mu, NULL);
	tally_batch_init(&s->scratch, "", 0);
	if (max_bytes == 0) {
		report(s, "max_bytes must be above 0");
		rc = -EINVAL;
	} else {
		rc = open_steps(s, dir);
	}
	if (rc != 0) {
		snprintf(err, errlen, "%s", s->st.last_err);
		tally_spool_close(s);
		errno = -rc;
		return NULL;
	}
	publish(s);
	return s;
}

void tally_spool_close(struct tally_spool *s)
{
	if (s == NULL)
		return;
	if (s->wfd >= 0)
		tally_spool_sync(s);
	if (s->wfd >= 0)
		close(s->wfd);
	if (s->rfd >= 0)
		close(s->rfd);
	if (s->lockfd >= 0)
		close(s->lockfd); /* releases the flock */
	if (s->dirfd >= 0)
		close(s->dirfd);
	tally_batch_free(&s->scratch);
	pthread_mutex_destroy(&s->mu);
	free(s->q);
	free(s->segs);
	free(s->buf);
	free(s);
}

/* ---- append and sync ---- */

/* Start a new segment: after a roll, at the first append after open, or after
 * a failed write or sync left the active one in doubt. */
static int roll(struct tally_spool *s)
{
	char name[64];
	uint64_t id = s->next_seg;
	int fd;

	if (s->wfd >= 0) {
		if (s->wdirty && fdatasync(s->wfd) != 0)
			s->sync_err = -errno;
		s->wdirty = false;
		close(s->wfd);
		s->wfd = -1;
		s->wseg = 0;
	}
	seg_name(name, sizeof(name), id);
	fd = openat(s->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd < 0) {
		report(s, "cannot create %s: %s", name, strerror(errno));
		return -errno;
	}
	if (seg_push(s, id) != 0) {
		close(fd);
		unlinkat(s->dirfd, name, 0);
		return -ENOMEM;
	}
	s->next_seg = id + 1;
	s->wfd = fd;
	s->wseg = id;
	s->wsize = 0;
	s->broken = false;
	s->dirdirty = true;
	return reclaim(s);
}

static int refuse_full(struct tally_spool *s, const struct tally_batch *b, bool fs)
{
	s->st.full_refusals++;
	s->st.full_alarm = true;
	if (fs)
		report(s, "file system full: batch seq %" PRIu64 " not spooled", b->seq);
	else
		report(s, "full (%" PRIu64 " of %" PRIu64 " bytes not yet replayed): "
			  "batch seq %" PRIu64 " refused", s->live_bytes, s->max_bytes, b->seq);
	publish(s);
	return -ENOSPC;
}

/* Write the record in s->buf (rlen bytes) at the end of the active segment;
 * on failure cut the file back so no partial record stays behind. */
static int write_record(struct tally_spool *s, size_t rlen)
{
	int rc;

	if (s->wfd < 0 || s->broken || s->wsize >= s->seg_bytes) {
		rc = roll(s);
		if (rc != 0)
			return rc;
	}
	rc = tally_pwrite_all(s->wfd, s->buf, rlen, (off_t)s->wsize);
	if (rc != 0) {
		if (ftruncate(s->wfd, (off_t)s->wsize) != 0)
			s->broken = true;
		report(s, "cannot write to segment %" PRIu64 ": %s", s->wseg, strerror(-rc));
	}
	return rc;
}

int tally_spool_append(struct tally_spool *s, const struct tally_batch *b)
{
	size_t plen = tally_batch_encoded_size(b), rlen = TALLY_SPOOL_HDR + plen;
	int64_t t = now_ms();
	int rc;

	if (plen > TALLY_SPOOL_RECORD_MAX) {
		report(s, "batch seq %" PRIu64 " is %zu bytes, over the %u-byte record limit",
		       b->seq, plen, TALLY_SPOOL_RECORD_MAX);
		publish(s);
		return -EMSGSIZE;
	}
	if (s->live_bytes + rlen > s->max_bytes)
		return refuse_full(s, b, false);
	if (grow_buf(s, rlen) != 0)
		return -ENOMEM;
	tally_batch_encode(b, s->buf + TALLY_SPOOL_HDR);
	hdr_encode(s->buf, (uint32_t)plen, t, tally_crc32c(s->buf + TALLY_SPOOL_HDR, plen));
	rc = write_record(s, rlen);
	if (rc == -ENOSPC || rc == -EDQUOT)
		return refuse_full(s, b, true);
	if (rc == 0) {
		rc = q_push(s, s->wseg, s->wsize, t, (uint32_t)plen);
		if (rc != 0 && ftruncate(s->wfd, (off_t)s->wsize) != 0)
			s->broken = true;
	}
	if (rc != 0) {
		publish(s);
		return rc;
	}
	s->wsize += rlen;
	s->wdirty = true;
	s->st.appended++;
	s->st.full_alarm = false;
	publish(s);
	return 0;
}

int tally_spool_sync(struct tally_spool *s)
{
	int rc = s->sync_err;

	s->sync_err = 0;
	if (s->wfd >= 0 && s->wdirty && fdatasync(s->wfd) != 0) {
		/* After a failed fsync the kernel may have dropped the pages: trust
		 * nothing more in this segment, continue in a new one. */
		rc = -errno;
		s->broken = true;
	}
	s->wdirty = false;
	if (s->dirdirty) {
		if (fsync(s->dirfd) != 0 && rc == 0)
			rc = -errno;
		s->dirdirty = rc != 0; /* a directory fsync is worth retrying */
	}
	if (rc != 0) {
		report(s, "fsync failed: %s; the records since the last sync may be lost",
		       strerror(-rc));
		publish(s);
	}
	return rc;
}

/* ---- replay ---- */

static int write_cursor(struct tally_spool *s, uint64_t seg, uint64_t off)
{
	uint64_t v[2] = {seg, off};
	int rc = tally_small_write(s->dirfd, "cursor", CURSOR_MAGIC, v, 2);

	if (rc != 0) {
		report(s, "cannot write the cursor: %s", strerror(-rc));
		return rc;
	}
	s->cur_seg = seg;
	s->cur_off = off;
	return 0;
}

/* Delete the oldest segments whose records are all replayed (never the one
 * being appended to), moving the cursor past each one first: a crash between
 * the two leaves a segment that the next open deletes. */
static int reclaim(struct tally_spool *s)
{
	while (s->nsegs > 0 && s->segs[0].live == 0 && s->segs[0].id != s->wseg) {
		uint64_t next = s->nsegs > 1 ? s->segs[1].id : s->next_seg;
		char name[64];
		int rc = s->cur_seg < next ? write_cursor(s, next, 0) : 0;

		if (rc != 0)
			return rc;
		if (s->rfd >= 0 && s->rseg == s->segs[0].id) {
			close(s->rfd);
			s->rfd = -1;
		}
		seg_name(name, sizeof(name), s->segs[0].id);
		if (unlinkat(s->dirfd, name, 0) != 0 && errno != ENOENT)
			report(s, "cannot delete %s: %s", name, strerror(errno));
		memmove(s->segs, s->segs + 1, --s->nsegs * sizeof(*s->segs));
	}
	return 0;
}

/* Read the record e into s->buf and check it again. 0, -EBADMSG or -errno. */
static int read_record(struct tally_spool *s, const struct rec *e, const char **why)
{
	size_t rlen = TALLY_SPOOL_HDR + (size_t)e->len;
	uint32_t len;
	int64_t t;
	ssize_t got;

	if (s->rfd < 0 || s->rseg != e->seg) {
		char name[64];

		if (s->rfd >= 0)
			close(s->rfd);
		seg_name(name, sizeof(name), e->seg);
		s->rfd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
		s->rseg = e->seg;
		if (s->rfd < 0) {
			*why = strerror(errno);
			return -errno;
		}
	}
	if (grow_buf(s, rlen) != 0)
		return -ENOMEM;
	got = tally_pread_all(s->rfd, s->buf, rlen, (off_t)e->off);
	if (got < 0) {
		*why = strerror((int)-got);
		return (int)got;
	}
	if (rec_check(s->buf, (size_t)got, &len, &t, why) != REC_OK || len != e->len)
		return -EBADMSG;
	return 0;
}

int tally_spool_peek(struct tally_spool *s, struct tally_batch *out)
{
	while (s->qlen > 0) {
		const struct rec *e = &s->q[s->qhead];
		const char *why = "payload does not decode";
		int rc = read_record(s, e, &why);

		if (rc == 0)
			rc = tally_batch_decode(out, s->buf + TALLY_SPOOL_HDR, e->len);
		if (rc == 0 || (rc != -EBADMSG && rc != -ENOENT)) {
			if (rc != 0)
				report(s, "cannot read segment %" PRIu64 ": %s", e->seg, why);
			publish(s);
			return rc;
		}
		s->st.corrupt++;
		report(s, "record in segment %" PRIu64 " at offset %" PRIu64
			  " failed its check on replay (%s): skipped", e->seg, e->off, why);
		q_pop(s);
	}
	publish(s);
	return -ENOENT;
}

int tally_spool_walk(struct tally_spool *s, tally_spool_walk_fn fn, void *arg)
{
	struct tally_batch b;
	int rc = 0;

	tally_batch_init(&b, "", 0);
	for (size_t i = 0; rc == 0 && i < s->qlen; i++) {
		const struct rec *e = &s->q[s->qhead + i];
		const char *why = "payload does not decode";

		rc = read_record(s, e, &why);
		if (rc == 0)
			rc = tally_batch_decode(&b, s->buf + TALLY_SPOOL_HDR, e->len);
		if (rc == -EBADMSG) { /* the reader of record i judges it, as peek would */
			rc = 0;
			continue;
		}
		if (rc == 0)
			rc = fn(&b, e->time_ms, arg);
	}
	tally_batch_free(&b);
	return rc;
}

int tally_spool_consume(struct tally_spool *s)
{
	const struct rec *e;
	int rc;

	if (s->qlen == 0)
		return -ENOENT;
	e = &s->q[s->qhead];
	rc = write_cursor(s, e->seg, e->off + TALLY_SPOOL_HDR + e->len);
	if (rc == 0) {
		q_pop(s);
		s->st.replayed++;
		if (s->live_bytes < s->max_bytes / 10 * 9)
			s->st.full_alarm = false;
		rc = reclaim(s);
	}
	publish(s);
	return rc;
}

/* ---- seqs, stats ---- */

int tally_spool_seq_reserve(struct tally_spool *s, uint64_t *next)
{
	uint64_t v = *next > s->seq_next ? *next : s->seq_next;

	if (v >= s->seq_limit) {
		uint64_t lim = v + TALLY_SPOOL_SEQ_BLOCK;
		int rc = tally_small_write(s->dirfd, "seq", SEQ_MAGIC, &lim, 1);

		if (rc != 0) {
			report(s, "cannot write the seq high-water mark: %s", strerror(-rc));
			publish(s);
			return rc;
		}
		s->seq_limit = lim;
	}
	s->seq_next = v + 1;
	*next = v;
	return 0;
}

void tally_spool_stats(struct tally_spool *s, struct tally_spool_stats *out)
{
	pthread_mutex_lock(&s->mu);
	*out = s->pub;
	pthread_mutex_unlock(&s->mu);
	out->oldest_age_ms = 0;
	if (out->records > 0) {
		int64_t age = now_ms() - out->oldest_ms;

		out->oldest_age_ms = age > 0 ? age : 0;
	}
	out->age_alarm = s->max_age_ms > 0 && out->oldest_age_ms > s->max_age_ms;
}

const char *tally_spool_errmsg(const struct tally_spool *s)
{
	return s->st.last_err;
}

void tally_spool_set_segment_bytes(struct tally_spool *s, uint64_t bytes)
{
	s->seg_bytes = bytes > 0 ? bytes : 1;
}
