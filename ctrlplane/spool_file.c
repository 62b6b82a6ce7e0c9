/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * File helpers of the spool (spool_file.h) and its checksum.
 *
 * CRC32C comes from Intel's ISA-L (Debian's libisal2): crc32_iscsi picks the
 * fastest code the CPU has at run time (PCLMUL folding, SSE4.2 crc32, or a
 * table) and is the storage industry's well-tested implementation. zlib has
 * only CRC32 (not Castagnoli), and DPDK's rte_hash_crc would tie the control
 * library to DPDK headers that the build can be configured without. ISA-L
 * leaves the initial and final inversion to the caller.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <isa-l/crc.h>

#include "spool.h"
#include "spool_file.h"

uint32_t tally_crc32c(const void *p, size_t n)
{
	uint32_t crc = 0xFFFFFFFFu;
	const unsigned char *b = p;

	/* crc32_iscsi takes an int length: feed it in chunks below INT_MAX. */
	while (n > 0) {
		int k = n > (1U << 30) ? 1 << 30 : (int)n;

		crc = crc32_iscsi((unsigned char *)b, k, crc);
		b += k;
		n -= (size_t)k;
	}
	return crc ^ 0xFFFFFFFFu;
}

int tally_mkdir_p(const char *dir)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0750) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, 0750) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int tally_pwrite_all(int fd, const void *p, size_t n, off_t off)
{
	const char *b = p;

	while (n > 0) {
		ssize_t w = pwrite(fd, b, n, off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		b += w, n -= (size_t)w, off += w;
	}
	return 0;
}

ssize_t tally_pread_all(int fd, void *p, size_t n, off_t off)
{
	char *b = p;
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, b + got, n - got, off + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static size_t small_encode(uint8_t *buf, const char magic[4], const uint64_t *v, unsigned n)
{
	uint32_t crc;

	memcpy(buf, magic, 4);
	for (unsigned i = 0; i < n; i++) {
		uint64_t le = htole64(v[i]);

		memcpy(buf + 4 + 8 * i, &le, 8);
	}
	crc = htole32(tally_crc32c(buf, 4 + 8 * n));
	memcpy(buf + 4 + 8 * n, &crc, 4);
	return 8 + 8 * (size_t)n;
}

int tally_small_write(int dirfd, const char *name, const char magic[4], const uint64_t *v,
		      unsigned n)
{
	uint8_t buf[8 + 8 * TALLY_SMALL_MAX];
	char tmp[128];
	size_t len = small_encode(buf, magic, v, n);
	int fd, rc;

	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	rc = tally_pwrite_all(fd, buf, len, 0);
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && renameat(dirfd, tmp, dirfd, name) != 0)
		rc = -errno;
	if (rc == 0 && fsync(dirfd) != 0)
		rc = -errno;
	return rc;
}

int tally_small_read(int dirfd, const char *name, const char magic[4], uint64_t *v, unsigned n)
{
	uint8_t buf[8 + 8 * TALLY_SMALL_MAX + 1];
	size_t want = 8 + 8 * (size_t)n;
	uint32_t crc;
	ssize_t got;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	got = tally_pread_all(fd, buf, want + 1, 0);
	close(fd);
	if (got < 0)
		return (int)got;
	if ((size_t)got != want || memcmp(buf, magic, 4) != 0)
		return -EBADMSG;
	memcpy(&crc, buf + want - 4, 4);
	if (le32toh(crc) != tally_crc32c(buf, want - 4))
		return -EBADMSG;
	for (unsigned i = 0; i < n; i++) {
		memcpy(&v[i], buf + 4 + 8 * i, 8);
		v[i] = le64toh(v[i]);
	}
	return 0;
}
