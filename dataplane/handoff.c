/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The worker's side of the table hand-off (protocol in worker.h). No DPDK: the
 * flusher's tests drive it from plain threads.
 */
#include <ck_pr.h>
#include <ck_ring.h>

#include "worker.h"

/* Hand the current table to the flusher if a spare is free. Returns false if
 * the table had to be kept. */
static bool seal_table(struct tally_worker *w)
{
	struct tally_wtab *spare;

	if (!ck_ring_dequeue_spsc(&w->spare, w->spare_buf, &spare))
		return false;
	/* The sealed ring holds every table, so this cannot fail. Its release
	 * store publishes the table's rows before the flusher can see the pointer. */
	ck_ring_enqueue_spsc(&w->sealed, w->sealed_buf, w->cur);
	w->cur = spare;
	w->ctr.v[TALLY_C_TABLES_SEALED]++;
	return true;
}

void tally_worker_maybe_seal(struct tally_worker *w)
{
	uint64_t req = ck_pr_load_64(&w->seal_req);
	uint32_t rows = tally_wtab_rows(w->cur);
	/* Seal early at 7/8 full so a busy interval does not run into table_full. */
	bool near_full = tally_wtab_near_full(w->cur);

	if (likely(req == w->seal_seen && !near_full))
		return;
	if (rows == 0 || seal_table(w)) {
		w->seal_deferred = false;
		ck_pr_fence_store();
		ck_pr_store_64(&w->seal_seen, req);
	} else if (!w->seal_deferred && req != w->seal_seen) {
		w->seal_deferred = true;
		w->ctr.v[TALLY_C_SEAL_DEFERRED]++;
	}
}

void tally_worker_seal_last(struct tally_worker *w)
{
	/* The sealed ring has room for every table the worker owns. */
	if (tally_wtab_rows(w->cur) > 0) {
		ck_ring_enqueue_spsc(&w->sealed, w->sealed_buf, w->cur);
		w->cur = NULL;
		w->ctr.v[TALLY_C_TABLES_SEALED]++;
	}
	ck_pr_fence_store();
	ck_pr_store_8((uint8_t *)&w->done, 1);
}
