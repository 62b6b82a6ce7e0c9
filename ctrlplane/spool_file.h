/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * File helpers of the spool (spool.h): whole reads and writes that survive
 * EINTR and short transfers, mkdir -p, and "small durable files" (the cursor
 * and the seq high-water mark), replaced atomically: written to a temporary
 * name, fsync'd, renamed over the old one, then the directory fsync'd, so a
 * crash leaves either the old file or the new one, never a mix. Each small
 * file carries a magic and a CRC32C so a damaged one is noticed, not trusted.
 */
#ifndef TALLY_SPOOL_FILE_H
#define TALLY_SPOOL_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Create dir and missing parents (mode 0750). 0 or -errno. */
int tally_mkdir_p(const char *dir);
/* Write all n bytes at off. 0 or -errno. */
int tally_pwrite_all(int fd, const void *p, size_t n, off_t off);
/* Read up to n bytes at off; fewer only at end of file. Bytes read or -errno. */
ssize_t tally_pread_all(int fd, void *p, size_t n, off_t off);

/* A small file: 4-byte magic, n u64 values, CRC32C of what precedes it. */
#define TALLY_SMALL_MAX 4
int tally_small_write(int dirfd, const char *name, const char magic[4], const uint64_t *v,
		      unsigned n);
/* 0, -ENOENT if absent, -EBADMSG if damaged, or -errno. */
int tally_small_read(int dirfd, const char *name, const char magic[4], uint64_t *v, unsigned n);

#endif
