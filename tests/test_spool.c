/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The spool: order across segment rolls and reopens, torn tails at every cut,
 * corrupt records skipped with the scan resynced, the cursor after a crash,
 * the full and age alarms, the lock, seqs that never go back, hostile lengths,
 * and real SIGKILLs of a process appending and syncing (spool_crash.c).
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "spool.h"
#include "spool_batch.h"

#define TEST_SEED 0x5900150015ULL
#include "test_rng.h"

static char dir[64];
static char err[256];
static struct tally_batch b;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb, (void)flag, (void)f;
	return remove(p);
}

static int setup(void **st)
{
	(void)st;
	snprintf(dir, sizeof(dir), "/tmp/tally-spool-XXXXXX");
	assert_non_null(mkdtemp(dir));
	tally_batch_init(&b, "", 0);
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	tally_batch_free(&b);
	return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static struct tally_spool *sopen(uint64_t max_bytes, uint64_t max_age_ms)
{
	struct tally_spool *s = tally_spool_open(dir, max_bytes, max_age_ms, err, sizeof(err));

	if (s == NULL)
		fail_msg("open: %s", err);
	return s;
}

static void append(struct tally_spool *s, uint64_t seq)
{
	spool_test_batch(&b, seq);
	assert_int_equal(tally_spool_append(s, &b), 0);
}

/* Replay one record and check it is batch seq want. */
static void expect(struct tally_spool *s, uint64_t want)
{
	assert_int_equal(tally_spool_peek(s, &b), 0);
	if (!spool_test_batch_is(&b, want))
		fail_msg("replayed seq %" PRIu64 ", wanted %" PRIu64, b.seq, want);
	assert_int_equal(tally_spool_consume(s), 0);
}

static struct tally_spool_stats stats(struct tally_spool *s)
{
	struct tally_spool_stats st;

	tally_spool_stats(s, &st);
	return st;
}

static int count_segments(void)
{
	char cmd[128];
	FILE *f;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls %s | grep -c '^seg-'", dir);
	f = popen(cmd, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%d", &n), 1);
	pclose(f);
	return n;
}

/* Path of segment id (ids start at 1 and each open starts a new one). */
static void seg_path(char *out, size_t len, uint64_t id)
{
	snprintf(out, len, "%s/seg-%020" PRIu64 ".tsp", dir, id);
}

static size_t rec_bytes(uint64_t seq)
{
	spool_test_batch(&b, seq);
	return TALLY_SPOOL_HDR + tally_batch_encoded_size(&b);
}

static off_t file_size(const char *p)
{
	struct stat sb;

	assert_int_equal(stat(p, &sb), 0);
	return sb.st_size;
}

static void test_crc32c(void **st)
{
	(void)st;
	assert_int_equal(tally_crc32c("123456789", 9), 0xE3069283);
	assert_int_equal(tally_crc32c("", 0), 0);
}

/* Many batches, many segments, replayed in order; replayed segments go. */
static void test_round_trip(void **st)
{
	struct tally_spool *s = sopen(1 << 30, 0);

	(void)st;
	tally_spool_set_segment_bytes(s, 4096);
	for (uint64_t i = 1; i <= 500; i++)
		append(s, i);
	assert_int_equal(tally_spool_sync(s), 0);
	assert_true(count_segments() > 10);
	assert_int_equal(stats(s).records, 500);
	for (uint64_t i = 1; i <= 500; i++)
		expect(s, i);
	assert_int_equal(tally_spool_peek(s, &b), -ENOENT);
	assert_int_equal(tally_spool_consume(s), -ENOENT);
	assert_true(count_segments() <= 1);
	assert_int_equal(stats(s).replayed, 500);
	assert_int_equal(stats(s).bytes, 0);
	tally_spool_close(s);
}

/* Close and reopen (also in a directory that did not exist): the records
 * stay, appends continue after them, partly replayed state is kept. */
static void test_reopen(void **st)
{
	struct tally_spool *s;

	(void)st;
	strcat(dir, "/a/b");
	s = sopen(1 << 30, 0);
	for (uint64_t i = 1; i <= 100; i++)
		append(s, i);
	tally_spool_close(s);
	s = sopen(1 << 30, 0);
	assert_int_equal(stats(s).records, 100);
	for (uint64_t i = 1; i <= 30; i++)
		expect(s, i);
	for (uint64_t i = 101; i <= 150; i++)
		append(s, i);
	tally_spool_close(s);
	s = sopen(1 << 30, 0);
	assert_int_equal(stats(s).corrupt + stats(s).torn, 0);
	for (uint64_t i = 31; i <= 150; i++)
		expect(s, i);
	assert_int_equal(tally_spool_peek(s, &b), -ENOENT);
	tally_spool_close(s);
	dir[strlen(dir) - 4] = '\0';
}

/* Three records in segment 1; the third cut at each of its last 40 bytes and
 * inside its header: reported as torn, truncated, the first two intact, and
 * appends continue cleanly. */
static void test_torn_tail(void **st)
{
	char seg[128];
	size_t r3 = rec_bytes(3);

	(void)st;
	for (size_t cut = 1; cut < r3; cut = cut == 40 ? r3 - TALLY_SPOOL_HDR - 1 : cut + 1) {
		struct tally_spool *s = sopen(1 << 30, 0);
		off_t full;

		seg_path(seg, sizeof(seg), 1); /* dir is new each time round */

		for (uint64_t i = 1; i <= 3; i++)
			append(s, i);
		tally_spool_close(s);
		full = file_size(seg);
		assert_int_equal(truncate(seg, full - (off_t)cut), 0);
		s = sopen(1 << 30, 0);
		assert_int_equal(stats(s).torn, 1);
		assert_int_equal(stats(s).corrupt, 0);
		assert_non_null(strstr(stats(s).last_err, "torn tail in segment 1"));
		assert_int_equal(file_size(seg), full - (off_t)r3);
		append(s, 4);
		tally_spool_close(s);
		s = sopen(1 << 30, 0);
		assert_int_equal(stats(s).torn, 0);
		expect(s, 1), expect(s, 2), expect(s, 4);
		assert_int_equal(tally_spool_peek(s, &b), -ENOENT);
		tally_spool_close(s);
		teardown(NULL), setup(NULL);
	}
}

static void flip_bit(const char *path, off_t off, int bit)
{
	int fd = open(path, O_RDWR);
	uint8_t c;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= (uint8_t)(1u << bit);
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

/* A flipped bit anywhere in the middle record of three (magic, length, time,
 * CRCs, payload): skipped and counted, the others replay in order. */
static void test_corrupt_middle(void **st)
{
	char seg[128];
	size_t r1 = rec_bytes(1), r2 = rec_bytes(2);

	(void)st;
	for (size_t at = 0; at < r2; at += 1 + at / 8) {
		struct tally_spool *s = sopen(1 << 30, 0);
		char want[64];

		seg_path(seg, sizeof(seg), 1);

		for (uint64_t i = 1; i <= 3; i++)
			append(s, i);
		tally_spool_close(s);
		flip_bit(seg, (off_t)(r1 + at), (int)below(8));
		s = sopen(1 << 30, 0);
		assert_int_equal(stats(s).corrupt, 1);
		assert_int_equal(stats(s).torn, 0);
		snprintf(want, sizeof(want), "segment 1 at offset %zu", r1);
		if (strstr(stats(s).last_err, want) == NULL)
			fail_msg("flip at %zu: %s", at, stats(s).last_err);
		assert_int_equal(stats(s).records, 2);
		expect(s, 1), expect(s, 3);
		assert_int_equal(tally_spool_peek(s, &b), -ENOENT);
		tally_spool_close(s);
		teardown(NULL), setup(NULL);
	}
}

/* Damage after open (the disk rots): peek finds it, skips and counts it. */
static void test_corrupt_on_peek(void **st)
{
	char seg[128];
	struct tally_spool *s = sopen(1 << 30, 0);

	(void)st;
	seg_path(seg, sizeof(seg), 1);
	for (uint64_t i = 1; i <= 3; i++)
		append(s, i);
	flip_bit(seg, (off_t)(rec_bytes(1) + TALLY_SPOOL_HDR + 5), 3);
	expect(s, 1), expect(s, 3);
	assert_int_equal(stats(s).corrupt, 1);
	assert_non_null(strstr(stats(s).last_err, "failed its check on replay"));
	tally_spool_close(s);
}

/* A child appends, replays some and dies without closing; the parent replays
 * from the cursor. The record peeked but not consumed comes again. */
static void test_crash_cursor(void **st)
{
	struct tally_spool *s;
	pid_t pid;
	int status;

	(void)st;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		s = tally_spool_open(dir, 1 << 30, 0, err, sizeof(err));
		for (uint64_t i = 1; s != NULL && i <= 10; i++) {
			spool_test_batch(&b, i);
			tally_spool_append(s, &b);
		}
		if (s == NULL || tally_spool_sync(s) != 0)
			_exit(1);
		for (int i = 0; i < 4; i++)
			if (tally_spool_peek(s, &b) != 0 || tally_spool_consume(s) != 0)
				_exit(1);
		tally_spool_peek(s, &b); /* "sent to the sink", then the crash */
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(status, 0);
	s = sopen(1 << 30, 0);
	assert_int_equal(stats(s).records, 6);
	for (uint64_t i = 5; i <= 10; i++)
		expect(s, i);
	tally_spool_close(s);
}

/* Full: refused with -ENOSPC, counted, alarm; nothing old is dropped;
 * replaying frees room and clears the alarm. */
static void test_full(void **st)
{
	size_t room = rec_bytes(1) + rec_bytes(2) + rec_bytes(3) + 10;
	struct tally_spool *s = sopen(room, 0);

	(void)st;
	for (uint64_t i = 1; i <= 3; i++)
		append(s, i);
	spool_test_batch(&b, 4);
	assert_int_equal(tally_spool_append(s, &b), -ENOSPC);
	assert_int_equal(tally_spool_append(s, &b), -ENOSPC);
	assert_true(stats(s).full_alarm);
	assert_int_equal(stats(s).full_refusals, 2);
	assert_int_equal(stats(s).records, 3);
	assert_non_null(strstr(stats(s).last_err, "full"));
	expect(s, 1);
	assert_false(stats(s).full_alarm);
	assert_int_equal(rec_bytes(6), rec_bytes(1));
	append(s, 6);
	expect(s, 2), expect(s, 3), expect(s, 6);
	tally_spool_close(s);
}

/* The age alarm follows the oldest record; old records are kept. The bound
 * leaves room for slow fsyncs (a consume is two). */
static void test_age(void **st)
{
	struct tally_spool *s = sopen(1 << 30, 400);
	struct timespec ts = {0, 500 * 1000 * 1000};

	(void)st;
	append(s, 1);
	assert_false(stats(s).age_alarm);
	assert_true(stats(s).oldest_ms > 0);
	nanosleep(&ts, NULL);
	append(s, 2);
	assert_true(stats(s).age_alarm);
	assert_true(stats(s).oldest_age_ms >= 500);
	assert_int_equal(stats(s).records, 2);
	expect(s, 1);
	assert_false(stats(s).age_alarm);
	tally_spool_close(s);
	s = sopen(1 << 30, 0); /* the time survives a restart */
	assert_true(stats(s).oldest_ms > 0);
	tally_spool_close(s);
}

/* One process per spool: a second open is refused and names the holder. */
static void test_lock(void **st)
{
	struct tally_spool *s = sopen(1 << 30, 0), *s2;
	char pid[32];

	(void)st;
	s2 = tally_spool_open(dir, 1 << 30, 0, err, sizeof(err));
	assert_null(s2);
	assert_int_equal(errno, EBUSY);
	snprintf(pid, sizeof(pid), "pid %d", (int)getpid());
	assert_non_null(strstr(err, "in use"));
	assert_non_null(strstr(err, pid));
	tally_spool_close(s);
	s2 = sopen(1 << 30, 0);
	tally_spool_close(s2);
	assert_null(tally_spool_open(dir, 0, 0, err, sizeof(err)));
	assert_int_equal(errno, EINVAL);
	assert_null(tally_spool_open("/proc/no/such/dir", 1, 0, err, sizeof(err)));
	assert_non_null(strstr(err, "/proc/no/such/dir"));
}

/* Seqs never go back: across close, across a crash past a block, with a
 * floor from the sink, and above what the spool holds if the file is gone. */
static void test_seq(void **st)
{
	struct tally_spool *s = sopen(1 << 30, 0);
	uint64_t v = 0, top = 0;
	pid_t pid;
	int status;
	char p[128];

	(void)st;
	assert_int_equal(tally_spool_seq_reserve(s, &v), 0);
	assert_int_equal(v, 1);
	v = 0, assert_int_equal(tally_spool_seq_reserve(s, &v), 0);
	assert_int_equal(v, 2);
	v = 500, assert_int_equal(tally_spool_seq_reserve(s, &v), 0);
	assert_int_equal(v, 500);
	v = 3, assert_int_equal(tally_spool_seq_reserve(s, &v), 0);
	assert_int_equal(v, 501);
	tally_spool_close(s);
	s = sopen(1 << 30, 0);
	v = 0, assert_int_equal(tally_spool_seq_reserve(s, &v), 0);
	assert_true(v > 501);
	tally_spool_close(s);
	pid = fork();
	if (pid == 0) {
		s = tally_spool_open(dir, 1 << 30, 0, err, sizeof(err));
		for (int i = 0; s != NULL && i < 3000; i++)
			if (tally_spool_seq_reserve(s, &top) != 0)
				_exit(1);
		_exit(s == NULL || top < 3000 + 501); /* no close: a crash */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(status, 0);
	s = sopen(1 << 30, 0);
	v = 0, assert_int_equal(tally_spool_seq_reserve(s, &v), 0);
	assert_true(v > 3000 + 501);
	append(s, 90000);
	tally_spool_close(s);
	snprintf(p, sizeof(p), "%s/seq", dir);
	assert_int_equal(unlink(p), 0);
	s = sopen(1 << 30, 0);
	v = 0, assert_int_equal(tally_spool_seq_reserve(s, &v), 0);
	assert_int_equal(v, 90001);
	tally_spool_close(s);
}

static void put_header(uint8_t *h, uint32_t len)
{
	uint32_t crc;

	memcpy(h, "TSR1", 4);
	memcpy(h + 4, &len, 4);
	memset(h + 8, 0, 12);
	crc = tally_crc32c(h, 20);
	memcpy(h + 20, &crc, 4);
}

/* Headers with valid CRCs and lengths of 0xFFFFFFFF, 0, over the limit or
 * past the end of the file, on record 2 of 3 (corrupt: record 3 follows) and
 * on the last record (a torn tail): never trusted, never read past the end
 * (meson test --setup=asan, or a -Db_sanitize=address build, checks that). */
static void hostile(uint32_t len, uint64_t nrec)
{
	char seg[128];
	uint8_t h[TALLY_SPOOL_HDR];
	struct tally_spool *s = sopen(1 << 30, 0);
	size_t r1 = rec_bytes(1);
	int fd;

	seg_path(seg, sizeof(seg), 1);
	for (uint64_t i = 1; i <= nrec; i++)
		append(s, i);
	tally_spool_close(s);
	put_header(h, len);
	fd = open(seg, O_RDWR);
	assert_int_equal(pwrite(fd, h, sizeof(h), (off_t)r1), (ssize_t)sizeof(h));
	close(fd);
	s = sopen(1 << 30, 0);
	assert_int_equal(stats(s).records, nrec - 1);
	assert_int_equal(stats(s).torn, nrec == 2);
	assert_int_equal(stats(s).corrupt, nrec == 3);
	append(s, 4);
	tally_spool_close(s);
	s = sopen(1 << 30, 0);
	expect(s, 1);
	if (nrec == 3)
		expect(s, 3);
	expect(s, 4);
	assert_int_equal(tally_spool_peek(s, &b), -ENOENT);
	tally_spool_close(s);
	teardown(NULL), setup(NULL);
}

static void test_hostile_lengths(void **st)
{
	static const uint32_t lens[] = {0xFFFFFFFFu, 0, TALLY_SPOOL_RECORD_MAX + 1, 100000};

	(void)st;
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		hostile(lens[k], 3);
		hostile(lens[k], 2);
	}
}

/* ---- the crash test: SIGKILL a process that appends and syncs ---- */

/* Run spool_crash, read the seqs it reports durable, kill it after `after`
 * of them (and a random pause). Returns how many it reported. */
static size_t run_and_kill(const char *helper, uint64_t *seqs, size_t cap, size_t after)
{
	int fds[2], status;
	size_t n = 0, used = 0;
	char buf[1 << 16];
	bool killed = false;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		execl(helper, helper, dir, "100000", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		ssize_t r = read(fds[0], buf + used, sizeof(buf) - used - 1);
		char *p = buf, *nl;

		if (r <= 0)
			break;
		used += (size_t)r;
		buf[used] = '\0';
		while ((nl = strchr(p, '\n')) != NULL && n < cap) {
			seqs[n++] = strtoull(p, NULL, 10);
			p = nl + 1;
		}
		used -= (size_t)(p - buf);
		memmove(buf, p, used);
		if (!killed && n >= after) {
			usleep((useconds_t)below(3000));
			kill(pid, SIGKILL);
			killed = true;
		}
	}
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(killed);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	return n;
}

/* Check replayed records against the seqs reported durable (pending[*head ..
 * np)): in order, above everything replayed before, none skipped. */
static void check_replay(struct tally_spool *s, const uint64_t *pending, size_t *head, size_t np,
			 uint64_t *last, uint64_t count)
{
	for (uint64_t k = 0; k < count; k++) {
		assert_int_equal(tally_spool_peek(s, &b), 0);
		if (b.seq <= *last)
			fail_msg("seq %" PRIu64 " replayed after %" PRIu64, b.seq, *last);
		assert_true(spool_test_batch_is(&b, b.seq));
		if (*head < np && pending[*head] < b.seq)
			fail_msg("durable seq %" PRIu64 " lost", pending[*head]);
		if (*head < np && pending[*head] == b.seq)
			(*head)++;
		*last = b.seq;
		assert_int_equal(tally_spool_consume(s), 0);
	}
}

/* Ten rounds: kill the helper at a random point, reopen, replay a random part
 * (the rest carries over to the next round, behind the next round's records),
 * and in the end drain: every seq reported durable comes back once, in order,
 * and decodes to exactly its batch. */
static void test_sigkill(void **st)
{
	const char *helper = getenv("TALLY_SPOOL_CRASH");
	uint64_t *pending = calloc(200000, sizeof(*pending)), last = 0;
	size_t np = 0, head = 0;
	struct tally_spool *s;

	(void)st;
	if (helper == NULL)
		fail_msg("TALLY_SPOOL_CRASH (the spool_crash helper) is not set");
	for (int round = 0; round < 10; round++) {
		size_t n = run_and_kill(helper, pending + np, 100000, 1 + below(150));

		assert_true(n > 0);
		np += n;
		s = sopen(1ULL << 30, 0);
		assert_int_equal(stats(s).corrupt, 0);
		check_replay(s, pending, &head, np, &last, below(stats(s).records + 1));
		tally_spool_close(s);
	}
	s = sopen(1ULL << 30, 0);
	check_replay(s, pending, &head, np, &last, stats(s).records);
	assert_int_equal(head, np);
	assert_int_equal(tally_spool_peek(s, &b), -ENOENT);
	tally_spool_close(s);
	print_message("sigkill: 10 kills, %zu records reported durable, all replayed once in "
		      "order\n", np);
	free(pending);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c),
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_on_peek, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_cursor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_age, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_lengths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigkill, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
