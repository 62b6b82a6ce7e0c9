/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The raw-event archive's segment files: every record comes back byte for byte
 * and in range; a torn tail, a corrupt block and a corrupt header are each
 * skipped with a report while the rest is read; retention deletes the oldest
 * segments by age and by size, never the one being written; a write that fails
 * (file size limit standing in for a full disk) pauses the archive, counts what
 * it dropped, leaves no torn block and resumes later.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "archive.h"

#define T0 1700000000000ULL
#define SLICE 60000ULL

static char dir[64];
static char err[256];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb, (void)flag, (void)f;
	return remove(p);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_archive.XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Record i: payload "ev<i>" padded to a length that varies with i. */
static void make_rec(struct tally_arec *r, uint8_t *buf, uint64_t i, uint64_t t)
{
	size_t len = 10 + i % 50;

	memset(r, 0, sizeof(*r));
	memset(buf, 'a' + (int)(i % 26), len);
	snprintf((char *)buf, len, "ev%" PRIu64, i);
	r->arrival_ms = t;
	r->len = (uint16_t)len;
	r->sport = (uint16_t)(1000 + i);
	r->dport = 7000;
	r->ip_version = i % 2 ? 6 : 4;
	r->saddr[0] = 127;
	r->saddr[15] = (uint8_t)i;
	r->payload = buf;
}

/* n records, one every step ms from T0, a block written each second. */
static void write_n(struct tally_archive *a, uint64_t n, uint64_t step)
{
	uint8_t buf[128];
	struct tally_arec r;

	for (uint64_t i = 0; i < n; i++) {
		make_rec(&r, buf, i, T0 + i * step);
		tally_archive_tick(a, r.arrival_ms);
		tally_archive_add(a, &r);
	}
}

struct seen {
	uint64_t n, bad;
	uint64_t first_t, last_t;
};

static int check_rec(const struct tally_arec *r, void *arg)
{
	struct seen *s = arg;
	uint8_t buf[128];
	struct tally_arec want;
	uint64_t i = strtoull((const char *)r->payload + 2, NULL, 10);

	make_rec(&want, buf, i, r->arrival_ms);
	if (r->len != want.len || memcmp(r->payload, buf, want.len) != 0 ||
	    r->sport != want.sport || r->ip_version != want.ip_version ||
	    memcmp(r->saddr, want.saddr, 16) != 0)
		s->bad++;
	if (s->n++ == 0)
		s->first_t = r->arrival_ms;
	s->last_t = r->arrival_ms;
	return 0;
}

static struct tally_archive_scan_report scan(uint64_t from, uint64_t to, struct seen *s)
{
	struct tally_archive_scan_report rep;

	memset(s, 0, sizeof(*s));
	assert_int_equal(tally_archive_scan(dir, from, to, check_rec, s, &rep, NULL, NULL), 0);
	return rep;
}

static void test_roundtrip(void **state)
{
	struct tally_archive a;
	struct tally_archive_scan_report rep;
	struct tally_archive_info info;
	struct seen s;

	(void)state;
	assert_int_equal(tally_archive_open(&a, dir, 0, 0, SLICE, err, sizeof(err)), 0);
	write_n(&a, 3000, 100); /* 300 s: five segments of 60 s */
	tally_archive_close(&a);
	assert_int_equal(a.st.datagrams, 3000);
	rep = scan(0, UINT64_MAX, &s);
	assert_int_equal(s.n, 3000);
	assert_int_equal(s.bad, 0);
	assert_int_equal(rep.segments, 5);
	assert_int_equal(rep.corrupt_blocks + rep.corrupt_headers + rep.torn_tails, 0);
	/* A range: [T0 + 100 s, T0 + 150 s) holds records 1000..1499. */
	scan(T0 + 100000, T0 + 150000, &s);
	assert_int_equal(s.n, 500);
	assert_int_equal(s.first_t, T0 + 100000);
	assert_int_equal(s.last_t, T0 + 149900);
	assert_int_equal(tally_archive_info(dir, &info), 0);
	assert_int_equal(info.segments, 5);
	assert_int_equal(info.oldest_ms, T0);
	assert_int_equal(info.newest_ms, T0 + 240000);
	assert_true(info.bytes > 0 && info.bytes == a.st.bytes);
}

static char *seg_file(uint64_t start)
{
	static char path[1200];

	tally_archive_seg_path(path, sizeof(path), dir, start);
	return path;
}

static void flip_byte(const char *path, off_t at)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, at), 1);
	b ^= 0x5a;
	assert_int_equal(pwrite(fd, &b, 1, at), 1);
	close(fd);
}

/* One segment of 60 one-second blocks (10 records each), then damage. */
static void one_segment(void)
{
	struct tally_archive a;

	assert_int_equal(tally_archive_open(&a, dir, 0, 0, SLICE, err, sizeof(err)), 0);
	write_n(&a, 600, 100);
	tally_archive_close(&a);
}

static void test_torn_tail(void **state)
{
	struct tally_archive_scan_report rep;
	struct stat st;
	struct seen s;

	(void)state;
	one_segment();
	assert_int_equal(stat(seg_file(T0), &st), 0);
	/* Cut into the last block, then into a header. */
	assert_int_equal(truncate(seg_file(T0), st.st_size - 7), 0);
	rep = scan(0, UINT64_MAX, &s);
	assert_int_equal(rep.torn_tails, 1);
	assert_int_equal(s.n, 590);
	assert_int_equal(s.bad, 0);
	one_segment(); /* appends a whole second copy after the torn block */
	rep = scan(0, UINT64_MAX, &s);
	assert_int_equal(rep.corrupt_headers + rep.torn_tails, 1); /* misframed: stops there */
	assert_int_equal(s.bad, 0);
}

static void test_corrupt(void **state)
{
	struct tally_archive_scan_report rep;
	struct seen s;
	FILE *log = tmpfile();
	char line[256] = "";

	(void)state;
	one_segment();
	flip_byte(seg_file(T0), TALLY_ARCHIVE_HDR + 5); /* the first block's data */
	memset(&rep, 0, sizeof(rep));
	memset(&s, 0, sizeof(s));
	assert_int_equal(tally_archive_scan(dir, 0, UINT64_MAX, check_rec, &s, &rep, log, NULL), 0);
	assert_int_equal(rep.corrupt_blocks, 1);
	assert_int_equal(s.n, 590);
	assert_int_equal(s.bad, 0);
	rewind(log);
	assert_non_null(fgets(line, sizeof(line), log));
	assert_non_null(strstr(line, "corrupt block (data checksum): skipped"));
	fclose(log);
	/* A header: its length cannot be trusted, the rest of the segment goes. */
	flip_byte(seg_file(T0), 4);
	rep = scan(0, UINT64_MAX, &s);
	assert_int_equal(rep.corrupt_headers, 1);
	assert_int_equal(s.n, 0);
}

static void test_retention_age(void **state)
{
	struct tally_archive a;
	struct tally_archive_info info;
	struct seen s;

	(void)state;
	/* Keep 2 minutes: writing 5 minutes leaves the newest segments only. */
	assert_int_equal(tally_archive_open(&a, dir, 120000, 0, SLICE, err, sizeof(err)), 0);
	write_n(&a, 3000, 100);
	tally_archive_retain(&a, T0 + 300000);
	tally_archive_close(&a);
	assert_int_equal(tally_archive_info(dir, &info), 0);
	assert_int_equal(a.st.segments_deleted, 2);
	assert_int_equal(info.segments, 3);
	assert_int_equal(info.oldest_ms, T0 + 120000);
	scan(0, UINT64_MAX, &s);
	assert_int_equal(s.first_t, T0 + 120000);
	assert_int_equal(s.last_t, T0 + 299900);
}

static void test_retention_size(void **state)
{
	struct tally_archive a;
	struct tally_archive_info info;
	uint64_t one;

	(void)state;
	assert_int_equal(tally_archive_open(&a, dir, 0, 0, SLICE, err, sizeof(err)), 0);
	write_n(&a, 600, 100);
	tally_archive_close(&a);
	one = a.st.bytes; /* a segment's size */
	teardown(NULL);
	setup(NULL);
	assert_int_equal(tally_archive_open(&a, dir, 0, one * 5 / 2, SLICE, err, sizeof(err)), 0);
	write_n(&a, 3000, 100);
	tally_archive_close(&a);
	assert_int_equal(tally_archive_info(dir, &info), 0);
	assert_true(info.bytes <= one * 5 / 2);
	assert_true(a.st.segments_deleted >= 2);
	assert_true(info.newest_ms >= T0 + 240000); /* the newest is kept */
}

static void test_write_fails(void **state)
{
	struct tally_archive a;
	struct tally_archive_scan_report rep;
	struct rlimit old, lim;
	struct seen s;

	(void)state;
	signal(SIGXFSZ, SIG_IGN); /* then a write past the limit fails with EFBIG */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 4096;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(tally_archive_open(&a, dir, 0, 0, SLICE, err, sizeof(err)), 0);
	write_n(&a, 600, 100);
	assert_true(a.paused);
	assert_true(a.st.disk_full >= 1); /* each retry that failed */
	assert_non_null(strstr(a.last_err, "archive paused"));
	assert_int_equal(a.st.datagrams + a.st.dropped_disk + a.nrec, 600);
	assert_true(a.st.dropped_disk > 0);
	/* Room again: the archive resumes after TALLY_ARCHIVE_RETRY_MS. */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	tally_archive_tick(&a, T0 + 600 * 100 + TALLY_ARCHIVE_RETRY_MS);
	assert_false(a.paused);
	tally_archive_close(&a);
	rep = scan(0, UINT64_MAX, &s);
	assert_int_equal(rep.torn_tails + rep.corrupt_blocks + rep.corrupt_headers, 0);
	assert_int_equal(s.n, a.st.datagrams);
	assert_int_equal(s.bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_age, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_fails, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
