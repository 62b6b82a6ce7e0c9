/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The archiver thread (archiver.h). It polls the workers' rings in bursts of
 * 32, round robin, so one busy worker cannot starve another's ring; idle, it
 * sleeps a millisecond (the rings hold 4 ms at 1 Mpps per worker; a longer
 * sleep would make archive_ring_full depend on the scheduler). Every 100 ms it
 * ticks the archive (partial blocks, retention, a paused archive's retry) and
 * publishes its counters. Its tick clock is the wall clock in ms, the clock the
 * workers' arrival times follow.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ck_pr.h>
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "archiver.h"
#include "worker.h"

#define TICK_MS 100

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One burst from one ring: copy, then free the mbufs in one call. */
static unsigned drain_one(struct tally_archiver *ar, struct rte_ring *r)
{
	struct tally_arch_note n[TALLY_BURST];
	struct rte_mbuf *m[TALLY_BURST];
	unsigned k = rte_ring_sc_dequeue_burst_elem(r, n, sizeof(n[0]), TALLY_BURST, NULL);

	for (unsigned i = 0; i < k; i++) {
		const uint8_t *base = rte_pktmbuf_mtod(n[i].m, const uint8_t *);
		uint64_t stamp;
		struct tally_arec rec = {.len = n[i].len, .sport = n[i].sport,
					 .ip_version = n[i].ip_version,
					 .payload = base + n[i].off};

		memcpy(&stamp, &n[i].m->hash, sizeof(stamp));
		rec.arrival_ms = stamp >> 16;
		rec.dport = (uint16_t)stamp;

		memcpy(rec.saddr, base + n[i].saddr_off, n[i].ip_version == 6 ? 16 : 4);
		tally_archive_add(&ar->a, &rec);
		m[i] = n[i].m;
	}
	if (k > 0)
		rte_pktmbuf_free_bulk(m, k);
	return k;
}

static unsigned drain_all(struct tally_archiver *ar)
{
	unsigned got = 0;

	for (unsigned i = 0; i < ar->nrings; i++)
		got += drain_one(ar, ar->rings[i]);
	return got;
}

static void publish(struct tally_archiver *ar)
{
	const struct tally_archive_stats *s = &ar->a.st;

	if (ar->a.paused && !ck_pr_load_int(&ar->paused))
		memcpy(ar->last_err, ar->a.last_err, sizeof(ar->last_err));
	ck_pr_store_64(&ar->st.datagrams, s->datagrams);
	ck_pr_store_64(&ar->st.bytes, s->bytes);
	ck_pr_store_64(&ar->st.dropped_disk, s->dropped_disk);
	ck_pr_store_64(&ar->st.disk_full, s->disk_full);
	ck_pr_store_64(&ar->st.segments_deleted, s->segments_deleted);
	ck_pr_fence_store();
	ck_pr_store_int(&ar->paused, ar->a.paused);
}

static void *archiver_main(void *arg)
{
	struct tally_archiver *ar = arg;
	uint64_t last = 0, now;

	while (!ck_pr_load_int(&ar->stop)) {
		unsigned got = drain_all(ar);

		now = wall_ms();
		if (now - last >= TICK_MS) {
			tally_archive_tick(&ar->a, now);
			publish(ar);
			last = now;
		}
		if (got == 0)
			usleep(1000);
	}
	/* The workers have stopped: what is in the rings is the last of it. */
	while (drain_all(ar) > 0)
		;
	tally_archive_close(&ar->a);
	publish(ar);
	return NULL;
}

static int make_rings(struct tally_archiver *ar, unsigned n,
		      char *err, size_t errlen)
{
	ar->rings = calloc(n, sizeof(*ar->rings));
	if (ar->rings == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		char name[32];

		snprintf(name, sizeof(name), "tally_arch%u", i);
		/* One worker enqueues, the archiver alone dequeues: SP/SC. */
		ar->rings[i] = rte_ring_create_elem(name, sizeof(struct tally_arch_note),
						    TALLY_ARCHIVE_RING, SOCKET_ID_ANY,
						    RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
		if (ar->rings[i] == NULL) {
			snprintf(err, errlen, "archive_dir: cannot create hand-off ring %u: %s", i,
				 rte_strerror(rte_errno));
			return -ENOMEM;
		}
		ar->nrings++;
	}
	return 0;
}

int tally_archiver_start(struct tally_archiver *ar, const char *dir, uint64_t retention_ms,
			 uint64_t max_bytes, uint64_t slice_ms, struct tally_worker *workers,
			 unsigned nworkers, char *err, size_t errlen)
{
	int r = tally_archive_open(&ar->a, dir, retention_ms, max_bytes, slice_ms, err, errlen);

	if (r == 0)
		r = make_rings(ar, nworkers, err, errlen);
	if (r == 0 && (r = -pthread_create(&ar->th, NULL, archiver_main, ar)) != 0)
		snprintf(err, errlen, "archive_dir: cannot start the archiver thread: %s",
			 strerror(-r));
	if (r < 0)
		return r;
	pthread_setname_np(ar->th, "tally-archiver");
	ar->started = true;
	for (unsigned i = 0; i < nworkers; i++)
		workers[i].arch = ar->rings[i];
	return 0;
}

void tally_archiver_stop(struct tally_archiver *ar)
{
	if (ar->started) {
		ck_pr_store_int(&ar->stop, 1);
		pthread_join(ar->th, NULL);
		ar->started = false;
	}
	for (unsigned i = 0; i < ar->nrings; i++)
		rte_ring_free(ar->rings[i]);
	free(ar->rings);
	ar->rings = NULL;
	ar->nrings = 0;
}

void tally_archiver_counters(const struct tally_archiver *ar, uint64_t out[TALLY_C_MAX])
{
	struct tally_archiver *a = (struct tally_archiver *)ar; /* ck_pr loads take non-const */

	out[TALLY_C_ARCHIVE_DATAGRAMS] += ck_pr_load_64(&a->st.datagrams);
	out[TALLY_C_ARCHIVE_BYTES] += ck_pr_load_64(&a->st.bytes);
	out[TALLY_C_ARCHIVE_DROPPED_DISK] += ck_pr_load_64(&a->st.dropped_disk);
	out[TALLY_C_ARCHIVE_DISK_FULL] += ck_pr_load_64(&a->st.disk_full);
	out[TALLY_C_ARCHIVE_SEGMENTS_DELETED] += ck_pr_load_64(&a->st.segments_deleted);
	out[TALLY_C_ARCHIVE_PAUSED] = (uint64_t)ck_pr_load_int(&a->paused);
}
