/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The worker loop: receive a burst, parse every frame into a batch of events,
 * then apply the batch (time checks, dedup, window table) in two passes so the
 * dedup bucket and table slot of event i + TALLY_PREFETCH are in flight while
 * event i is applied. Everything per packet runs here, on a pinned lcore: no
 * locks, no malloc, no syscalls. Counters are plain increments on the worker's
 * own cache lines; the control plane sums them when asked.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ck_pr.h>
#include <rte_branch_prediction.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "ack.h"
#include "apply.h"
#include "mem.h"
#include "parse_statsd.h"
#include "parse_tly1.h"
#include "pkt.h"
#include "worker.h"

/* Frames ahead whose first data line is prefetched while parsing. */
#define TALLY_PKT_PREFETCH 4

/* A batch's renamed keys fit in the half of the rule cache's arena that
 * tally_rcache_begin leaves free. */
_Static_assert(TALLY_RCACHE_ARENA / 2 >= TALLY_EVBUF_EVENTS * TALLY_KEY_MAX &&
	       TALLY_RCACHE_BATCH_KEYS == TALLY_EVBUF_EVENTS, "rule cache arena too small");

int tally_worker_init(struct tally_worker *w, unsigned id, struct tally_shared *sh,
		      uint32_t table_rows)
{
	return tally_worker_init_node(w, id, sh, table_rows, TALLY_NODE_ANY);
}

/* Buffers and tables on the worker's node, pre-faulted: calloc'd buffers were
 * first touched by the first burst, a page fault on the hot path. */
int tally_worker_init_node(struct tally_worker *w, unsigned id, struct tally_shared *sh,
			   uint32_t table_rows, int node)
{
	w->id = id;
	w->sh = sh;
	w->txq = -1; /* tallyd gives it one; tests and benchmarks have none */
	w->evb.cap = TALLY_EVBUF_EVENTS;
	w->evb.arena_cap = TALLY_EVBUF_ARENA;
	w->evb.ev = tally_mem_map_node(TALLY_EVBUF_EVENTS * sizeof(*w->evb.ev), node);
	w->evb.arena = tally_mem_map_node(TALLY_EVBUF_ARENA, node);
	if (w->evb.ev == NULL || w->evb.arena == NULL)
		return -ENOMEM;
	ck_ring_init(&w->sealed, TALLY_RING_SIZE);
	ck_ring_init(&w->spare, TALLY_RING_SIZE);
	ck_ring_init(&w->exc, TALLY_EXC_RING);
	for (unsigned i = 0; i < TALLY_TABLES_PER_WORKER; i++) {
		w->tables[i] = tally_wtab_create_ext(table_rows, sh->sketch_rows ? sh->sketch_rows
									 : TALLY_SKETCH_ROWS_DEFAULT,
						     node);
		if (w->tables[i] == NULL)
			return -errno;
		if (tally_wtab_defer_sketches(w->tables[i], sh->sketch_values, node) != 0)
			return -ENOMEM;
		if (i > 0)
			ck_ring_enqueue_spsc(&w->spare, w->spare_buf, w->tables[i]);
	}
	w->cur = w->tables[0];
	if (tally_rcache_init(&w->rc, TALLY_RCACHE_ENTRIES, TALLY_RCACHE_ARENA, node) != 0)
		return -ENOMEM;
	ck_epoch_register(&sh->epoch, &w->epoch_rec, NULL);
	return 0;
}

void tally_worker_fini(struct tally_worker *w)
{
	for (unsigned i = 0; i < TALLY_TABLES_PER_WORKER; i++)
		tally_wtab_destroy(w->tables[i]);
	tally_mem_unmap(w->evb.ev, TALLY_EVBUF_EVENTS * sizeof(*w->evb.ev));
	tally_mem_unmap(w->evb.arena, TALLY_EVBUF_ARENA);
	tally_rcache_fini(&w->rc);
	if (w->acklists != NULL)
		tally_mem_unmap(w->acklists, sizeof(struct tally_acklist) * TALLY_ACKLISTS);
}

static enum tally_csum_state csum_state(uint64_t flags, uint64_t mask, uint64_t good,
					uint64_t bad)
{
	if ((flags & mask) == good)
		return TALLY_CSUM_GOOD;
	if ((flags & mask) == bad)
		return TALLY_CSUM_BAD;
	return TALLY_CSUM_UNKNOWN;
}

static void apply_events(struct tally_worker *w, const struct tally_params *p,
			 uint64_t now_ms);

/* Room for what one datagram of len bytes can add, applying the events so far
 * if there is not: then a parser never runs out of room (-ENOSPC) mid-burst. */
static void make_room(struct tally_worker *w, const struct tally_params *p, uint64_t now_ms,
		      uint32_t events, uint32_t arena)
{
	struct tally_evbuf *b = &w->evb;

	if (unlikely(b->cap - b->n < events || b->arena_cap - b->arena_used < arena))
		apply_events(w, p, now_ms);
}

/* Acks (ack.h). */

/* Send what this burst built; what the TX queue does not take is dropped and
 * counted: the sender retransmits, and dedup makes that harmless. */
static void ack_flush(struct tally_worker *w)
{
	uint64_t *c = w->ctr.v;
	uint16_t sent;

	if (w->ntx == 0)
		return;
	sent = rte_eth_tx_burst(w->txport, (uint16_t)w->txq, w->tx, (uint16_t)w->ntx);
	for (uint32_t i = 0; i < sent; i++)
		c[TALLY_C_ACK_COMMITTED + w->txst[i]]++;
	if (unlikely(sent < w->ntx)) {
		c[TALLY_C_ACK_TX_FULL] += w->ntx - sent;
		c[TALLY_C_TLY1_ACK_UNSENT] += w->ntx - sent;
		rte_pktmbuf_free_bulk(w->tx + sent, w->ntx - sent);
	}
	w->ntx = 0;
}

static void ack_queue(struct tally_worker *w, const struct tally_ack *a, uint8_t status)
{
	struct rte_mbuf *m;
	uint32_t len;

	if (unlikely(w->txq < 0)) {
		w->ctr.v[TALLY_C_TLY1_ACK_UNSENT]++;
		return;
	}
	if (w->ntx == RTE_DIM(w->tx))
		ack_flush(w);
	m = rte_pktmbuf_alloc(w->txpool);
	if (unlikely(m == NULL)) {
		w->ctr.v[TALLY_C_ACK_NO_MBUF]++;
		w->ctr.v[TALLY_C_TLY1_ACK_UNSENT]++;
		return;
	}
	len = tally_ack_frame(a, status, rte_pktmbuf_mtod(m, uint8_t *));
	m->data_len = (uint16_t)len;
	m->pkt_len = len;
	w->txst[w->ntx] = status;
	w->tx[w->ntx++] = m;
}

/* Committed mode: keep the ack with the current table; false when no list
 * has room (every list is in flight). */
static bool ack_record(struct tally_worker *w, const struct tally_ack *a)
{
	struct tally_acklist *l = w->cur->acks;

	if (l == NULL || l->n == TALLY_ACKLIST_CAP) {
		if (w->nfree == 0)
			return false;
		w->ackfree[--w->nfree]->next = l;
		l = w->cur->acks = w->ackfree[w->nfree];
		l->n = 0;
	}
	l->a[l->n++] = *a;
	return true;
}

/* The applied datagrams' answers. full: some event of this apply did not fit
 * in the table, so each is answered overloaded (its applied events are in
 * dedup, its others were forgotten: a retransmit adds exactly those). */
static void ack_resolve(struct tally_worker *w, const struct tally_params *p, bool full)
{
	for (uint32_t i = 0; i < w->npend; i++) {
		const struct tally_ack *a = &w->pend[i];

		if (full)
			ack_queue(w, a, TALLY_ACK_OVERLOADED);
		else if (p->ack_mode == TALLY_ACKM_ACCEPTED)
			ack_queue(w, a, TALLY_ACK_ACCEPTED);
		else if (!ack_record(w, a)) {
			w->ctr.v[TALLY_C_ACK_LIST_FULL]++;
			ack_queue(w, a, TALLY_ACK_OVERLOADED);
		}
	}
	w->npend = 0;
}

/* A datagram that asked for an ack: a rejected one is answered now (if its
 * header names a sender), an accepted one once its events are applied. */
static void ack_datagram(struct tally_worker *w, const struct tally_params *p,
			 const uint8_t *frame, const struct tally_udp *u,
			 const struct tally_tly1_hdr *h, int r)
{
	struct tally_ack a;
	int st;

	if (p->ack_mode == TALLY_ACKM_NONE) {
		w->ctr.v[TALLY_C_TLY1_ACK_UNSENT]++;
		return;
	}
	if (r == TALLY_OK) {
		if (tally_ack_from_udp(&w->pend[w->npend], frame, u, h->sender_id,
				       h->batch_seq) == 0)
			w->npend++;
		return;
	}
	st = tally_ack_reject_status(r);
	if (st >= 0 && tally_ack_from_udp(&a, frame, u, h->sender_id, h->batch_seq) == 0)
		ack_queue(w, &a, (uint8_t)st);
}

/* Between bursts, committed mode: up to a burst of acks from the lists the
 * writer gave back, so a list of a thousand never floods the TX ring. */
static void ack_send_committed(struct tally_worker *w)
{
	struct tally_acklist *l = w->ackcur;
	uint32_t k;

	if (l == NULL && !ck_ring_dequeue_spsc(&w->acks_back, w->acks_back_buf, &l))
		return;
	w->ackcur = l;
	if (!l->durable) {
		w->ctr.v[TALLY_C_TLY1_ACK_UNSENT] += l->n;
		l->sent = l->n;
	}
	for (k = 0; k < TALLY_BURST && l->sent < l->n; k++)
		ack_queue(w, &l->a[l->sent++], TALLY_ACK_COMMITTED);
	ack_flush(w);
	if (l->sent == l->n) {
		l->n = 0;
		w->ackfree[w->nfree++] = l;
		w->ackcur = NULL;
	}
}

/* A retransmit of a datagram committed before this start: its events are
 * in the sink already. Take them back out of the batch, answer committed. */
static void committed_before(struct tally_worker *w, const uint8_t *frame,
			     const struct tally_udp *u, const struct tally_tly1_hdr *h)
{
	struct tally_ack a;

	w->evb.n -= h->count;
	w->ctr.v[TALLY_C_TLY1_DATAGRAMS]--;
	w->ctr.v[TALLY_C_TLY1_COMMITTED_BEFORE]++;
	if (tally_ack_from_udp(&a, frame, u, h->sender_id, h->batch_seq) == 0)
		ack_queue(w, &a, TALLY_ACK_COMMITTED);
}

static void parse_datagram(struct tally_worker *w, const struct tally_params *p,
			   const uint8_t *frame, const struct tally_udp *u, uint64_t now_ms)
{
	struct tally_tly1_hdr h;
	int r;

	if (tally_is_tly1(p, u->dport, u->payload, u->len)) {
		make_room(w, p, now_ms, TALLY_TLY1_MAX_COUNT, 0);
		if (unlikely(w->npend == TALLY_BURST))
			apply_events(w, p, now_ms);
		r = tally_dgram_tly1(w->ctr.v, p, &w->evb, u->payload, u->len, &h);
		if (unlikely(p->committed != NULL) && r == TALLY_OK &&
		    (h.flags & TALLY_TLY1_F_ACK_REQ) &&
		    tally_dgset_has(p->committed, h.sender_id, h.batch_seq)) {
			committed_before(w, frame, u, &h);
			return;
		}
		if (h.flags & TALLY_TLY1_F_ACK_REQ)
			ack_datagram(w, p, frame, u, &h, r);
		return;
	}
	make_room(w, p, now_ms, TALLY_STATSD_MAX_EVENTS(u->len), u->len);
	tally_dgram_statsd(w->ctr.v, &w->evb, u->payload, u->len);
}

/* The datagram's place in its mbuf, for the archiver (archive_ring.h); none
 * when the ring had no room for it at the start of the burst. */
static inline void archive_note(struct tally_worker *w, struct rte_mbuf *m,
				const struct tally_udp *u, uint64_t now_ms)
{
	const uint8_t *base = rte_pktmbuf_mtod(m, const uint8_t *);
	struct tally_arch_note *n;
	uint64_t stamp = tally_arch_stamp(now_ms, u->dport);

	if (unlikely(w->narch == w->arch_room)) {
		w->ctr.v[TALLY_C_ARCHIVE_RING_FULL]++;
		return;
	}
	n = &w->archq[w->narch++];
	_Static_assert(sizeof(m->hash) == sizeof(stamp), "mbuf hash field is not 8 bytes");
	memcpy(&m->hash, &stamp, sizeof(stamp)); /* on a line the parse just read */
	n->m = m;
	n->off = (uint16_t)(u->payload - base);
	n->len = u->len;
	n->sport = u->sport;
	n->ip_version = u->ip_version;
	n->saddr_off = (uint8_t)(u->saddr - base);
}

/*
 * The ring's room, read once at the start of a burst (one load of the
 * archiver's tail): notes are taken only up to it, so a full ring costs the
 * worker no notes, no enqueue and no merge pass, just one counter a datagram.
 */
static inline void archive_begin(struct tally_worker *w, uint16_t n)
{
	unsigned room = rte_ring_free_count(w->arch);
	unsigned cap = RTE_DIM(w->archq); /* a caller's burst may be longer (tally-pipeline --burst) */

	room = room < cap ? room : cap;
	w->arch_room = (uint16_t)(room < n ? room : n);
}

/* One enqueue per burst: with one producer the room only grew since
 * archive_begin, so all the notes go. The archiver owns the enqueued mbufs;
 * the rest of the burst is freed here. */
static uint16_t archive_handoff(struct tally_worker *w, struct rte_mbuf **pkts, uint16_t n)
{
	unsigned k = w->narch;
	uint16_t keep = 0;

	rte_ring_sp_enqueue_bulk_elem(w->arch, w->archq, sizeof(w->archq[0]), k, NULL);
	w->narch = 0;
	if (k == n)
		return 0; /* all given, the usual case */
	/* The notes are in burst order: one merge pass finds the given mbufs. */
	for (unsigned i = 0, j = 0; i < n; i++) {
		if (j < k && pkts[i] == w->archq[j].m)
			j++;
		else
			pkts[keep++] = pkts[i];
	}
	return keep;
}

/* Frames that are someone else's, not broken: the kernel's on the exception path. */
static bool for_kernel(int reason)
{
	return reason == TALLY_C_DROP_ETHERTYPE || reason == TALLY_C_DROP_IP_PROTO ||
	       reason == TALLY_C_DROP_UDP_PORT || reason == TALLY_C_DROP_IP_FRAG ||
	       reason == TALLY_C_DROP_IPV6_EXT;
}

/* Hand m to the control thread for the kernel, within this burst's share;
 * false (not counted here) when m's port has no TAP. */
static bool divert(struct tally_worker *w, struct rte_mbuf *m)
{
	if (!(w->exc_ports >> (m->port % 64) & 1))
		return false;
	if (w->exc_left > 0 && ck_ring_enqueue_spsc(&w->exc, w->exc_buf, m)) {
		w->exc_left--;
		w->ctr.v[TALLY_C_EXC_TO_KERNEL]++;
		return true;
	}
	w->ctr.v[TALLY_C_EXC_DROPPED]++;
	return false;
}

/* Parse one frame; true if it went to the exception path (not to be freed). */
static bool parse_frame(struct tally_worker *w, const struct tally_params *p,
			struct rte_mbuf *m, uint64_t now_ms)
{
	struct tally_udp u;
	uint64_t f = m->ol_flags;
	const uint8_t *frame = rte_pktmbuf_mtod(m, const uint8_t *);
	int r;

	enum tally_csum_state ipc = csum_state(f, RTE_MBUF_F_RX_IP_CKSUM_MASK,
					      RTE_MBUF_F_RX_IP_CKSUM_GOOD, RTE_MBUF_F_RX_IP_CKSUM_BAD);
	enum tally_csum_state l4c = csum_state(f, RTE_MBUF_F_RX_L4_CKSUM_MASK,
					      RTE_MBUF_F_RX_L4_CKSUM_GOOD, RTE_MBUF_F_RX_L4_CKSUM_BAD);

	w->ctr.v[TALLY_C_RX_BYTES] += m->pkt_len;
	r = tally_pkt_parse(frame, m->data_len, ipc, l4c, p->ports, 2, &u);
	if (unlikely(r != TALLY_OK)) {
		if (w->exc_cap != 0 && for_kernel(r) && divert(w, m))
			return true;
		w->ctr.v[r]++;
		return false;
	}
	if (w->arch != NULL)
		archive_note(w, m, &u, now_ms);
	parse_datagram(w, p, frame, &u, now_ms);
	return false;
}

/* The batch through apply.h, with this worker's table, dedup and rules cache. */
static void apply_events(struct tally_worker *w, const struct tally_params *p,
			 uint64_t now_ms)
{
	struct tally_applier a = {w->ctr.v, w->cur, w->sh->dedup, &w->rc, &w->evb, w->id};

	bool full = tally_apply_events(&a, p, now_ms);

	if (w->npend)
		ack_resolve(w, p, full);
}

void tally_worker_burst(struct tally_worker *w, const struct tally_params *p,
			struct rte_mbuf **pkts, uint16_t n, uint64_t now_ms)
{
	uint16_t i;

	w->exc_left = w->exc_cap;
	if (w->arch != NULL)
		archive_begin(w, n);
	for (i = 0; i < n && i < TALLY_PKT_PREFETCH; i++)
		rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void *));
	for (i = 0; i < n; i++) {
		if (i + TALLY_PKT_PREFETCH < n)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + TALLY_PKT_PREFETCH], void *));
		if (parse_frame(w, p, pkts[i], now_ms))
			pkts[i] = NULL; /* the kernel's now: free_bulk skips NULL */
	}
	apply_events(w, p, now_ms);
	ack_flush(w);
	w->ctr.v[TALLY_C_RX_PACKETS] += n;
	if (w->narch)
		n = archive_handoff(w, pkts, n);
	rte_pktmbuf_free_bulk(pkts, n);
	w->ctr.v[TALLY_C_RX_BURSTS]++;
}

static void poll_queues(struct tally_worker *w)
{
	struct tally_shared *sh = w->sh;
	struct rte_mbuf *pkts[TALLY_BURST];
	ck_epoch_section_t section;

	for (uint16_t q = 0; q < w->nqueues; q++) {
		uint16_t n = rte_eth_rx_burst(w->queues[q].port, w->queues[q].queue, pkts,
					      TALLY_BURST);
		uint64_t t0;

		if (n == 0)
			continue;
		t0 = rte_rdtsc();
		ck_epoch_begin(&w->epoch_rec, &section);
		tally_worker_burst(w, ck_pr_load_ptr(&sh->params), pkts, n, tally_clock_ms(&sh->clock, t0, &w->clock_last));
		ck_epoch_end(&w->epoch_rec, &section);
		w->ctr.v[TALLY_C_WORKER_CYCLES] += rte_rdtsc() - t0;
	}
}

/* Test hook (tallyctl debug park-worker): stop beating and polling for a while,
 * as a stalled worker would. Off the packet path: one load per loop. */
static void park(struct tally_worker *w)
{
	uint32_t ms = ck_pr_load_32(&w->park_ms);

	ck_pr_store_32(&w->park_ms, 0);
	rte_delay_us_sleep(ms * 1000u);
}

/* tallyctl drain: frames wait in the RX rings (then the NIC drops them, as
 * port_imissed) instead of being taken. The worker says which drain it obeys
 * after the loop that polled last has finished, so the control thread knows
 * that every event it accepted is in its table; tables are still sealed on
 * request, acks still go out. */
static void drained(struct tally_worker *w)
{
	uint32_t id = ck_pr_load_32(&w->sh->drain);

	if (w->drain_seen != id) {
		ck_pr_fence_store(); /* the last burst's counters and rows before the word */
		ck_pr_store_32(&w->drain_seen, id);
	}
	rte_pause();
}

int tally_worker_ack_drain(void *arg)
{
	struct tally_worker *w = arg;

	if (w->acklists == NULL)
		return 0;
	while (w->ackcur != NULL || ck_ring_size(&w->acks_back) > 0)
		ack_send_committed(w);
	return 0;
}

/* How long the RX queues went unpolled: while the worker is away (a long
 * burst, a seal, ack sends, the OS taking its CPU) frames wait in the queue,
 * so the longest gaps at a rate say how many RX descriptors lose nothing. One
 * TSC read a loop; counted past 100 us, 1 ms and 10 ms, and their time summed. */
static void count_poll_gap(struct tally_worker *w)
{
	uint64_t now = rte_rdtsc(), gap = now - w->poll_last;

	w->poll_last = now;
	if (likely(gap < w->gap_tsc[0]))
		return;
	w->ctr.v[TALLY_C_WORKER_POLL_GAPS_100US]++;
	w->ctr.v[TALLY_C_WORKER_POLL_GAP_US] += gap / w->tsc_per_us;
	w->ctr.v[TALLY_C_WORKER_POLL_GAPS_1MS] += gap >= w->gap_tsc[1];
	w->ctr.v[TALLY_C_WORKER_POLL_GAPS_10MS] += gap >= w->gap_tsc[2];
}

int tally_worker_main(void *arg)
{
	struct tally_worker *w = arg;
	uint64_t hz = rte_get_tsc_hz();

	w->lcore = rte_lcore_id();
	w->gap_tsc[0] = hz / 10000;
	w->gap_tsc[1] = hz / 1000;
	w->gap_tsc[2] = hz / 100;
	w->tsc_per_us = hz / 1000000 ? hz / 1000000 : 1;
	ck_pr_store_int(&w->tid, rte_sys_gettid());
	w->poll_last = rte_rdtsc();
	while (!ck_pr_load_int(&w->sh->stop)) {
		ck_pr_store_64(&w->heartbeat, w->heartbeat + 1);
		if (unlikely(ck_pr_load_32(&w->park_ms) != 0))
			park(w);
		if (likely(ck_pr_load_32(&w->sh->drain) == 0)) {
			count_poll_gap(w);
			poll_queues(w);
		} else {
			drained(w);
			w->poll_last = rte_rdtsc(); /* unpolled on purpose: not a gap */
		}
		if (w->acklists != NULL)
			ack_send_committed(w);
		tally_worker_maybe_seal(w);
	}
	tally_worker_seal_last(w);
	return 0;
}
