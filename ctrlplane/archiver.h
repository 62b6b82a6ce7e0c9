/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The archiver thread (archive_dir): drains every worker's hand-off ring
 * (archive_ring.h), copies the datagrams into the archive's blocks (archive.h)
 * and frees the mbufs. It runs on no worker core: a plain thread, like the
 * flusher, on the main lcore's CPU.
 */
#ifndef TALLY_ARCHIVER_H
#define TALLY_ARCHIVER_H

#include <pthread.h>
#include <stdbool.h>

#include "archive.h"
#include "counters.h"

struct rte_ring;
struct tally_worker;

struct tally_archiver {
	struct tally_archive a;   /* the archiver thread's alone */
	struct rte_ring **rings;  /* one per worker */
	unsigned nrings;
	pthread_t th;
	bool started;
	int stop;                 /* ck_pr */
	struct tally_archive_stats st; /* published copy, read by tallyctl */
	int paused;                    /* ck_pr: published a->paused */
	char last_err[sizeof(((struct tally_archive *)0)->last_err)]; /* under ck_pr of paused */
};

/* Create the rings, hand them to the workers, start the thread. */
int tally_archiver_start(struct tally_archiver *ar, const char *dir, uint64_t retention_ms,
			 uint64_t max_bytes, uint64_t slice_ms, struct tally_worker *workers,
			 unsigned nworkers, char *err, size_t errlen);
/* After the workers stopped: drain the rings, write the last block, join. */
void tally_archiver_stop(struct tally_archiver *ar);
/* Its counters added to out (archive_*). */
void tally_archiver_counters(const struct tally_archiver *ar, uint64_t out[TALLY_C_MAX]);

#endif
