/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The worker's side of the table hand-off (protocol in worker.h). No DPDK: the
 * flusher's tests drive it from plain threads.
 */
#include <errno.h>

#include <ck_pr.h>
#include <ck_ring.h>

#include "mem.h"
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
	/* A table with acks but no rows (all duplicates) still goes: its acks
	 * wait for it. */
	uint32_t rows = tally_wtab_rows(w->cur) + (w->cur->acks != NULL);
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
	if (tally_wtab_rows(w->cur) > 0 || w->cur->acks != NULL) {
		ck_ring_enqueue_spsc(&w->sealed, w->sealed_buf, w->cur);
		w->cur = NULL;
		w->ctr.v[TALLY_C_TABLES_SEALED]++;
	}
	ck_pr_fence_store();
	ck_pr_store_8((uint8_t *)&w->done, 1);
}

/* Committed mode. The lists are one block on the worker's node, touched now so
 * that the first ack is no page fault. */
int tally_worker_acks_init(struct tally_worker *w, int node)
{
	size_t bytes = sizeof(struct tally_acklist) * TALLY_ACKLISTS;

	w->acklists = tally_mem_map_node(bytes, node);
	if (w->acklists == NULL)
		return -ENOMEM;
	ck_ring_init(&w->acks_back, TALLY_ACK_RING);
	for (unsigned i = 0; i < TALLY_ACKLISTS; i++) {
		w->acklists[i].worker = w->id;
		w->ackfree[w->nfree++] = &w->acklists[i];
	}
	return 0;
}

/* The writer thread is the only producer of every acks_back ring and each
 * worker the only consumer of its own: SPSC. The ring holds more than all of a
 * worker's lists, so the enqueue cannot fail. */
void tally_worker_acks_back(struct tally_worker *ws, struct tally_acklist *l, bool durable)
{
	while (l != NULL) {
		struct tally_acklist *next = l->next;
		struct tally_worker *w = &ws[l->worker];

		l->next = NULL;
		l->durable = durable;
		l->sent = 0;
		ck_ring_enqueue_spsc(&w->acks_back, w->acks_back_buf, l);
		l = next;
	}
}
