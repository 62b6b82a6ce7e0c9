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

#include "mem.h"
#include "parse_statsd.h"
#include "parse_tly1.h"
#include "pkt.h"
#include "worker.h"

/* Events ahead whose dedup line and table row are prefetched while event i is
 * applied: about three lines each, so 8 events keep ~24 misses in flight. */
#define TALLY_PREFETCH 8
/* Events ahead whose long key's arena bytes are prefetched: nearer, since the
 * arena offset is in the row, which must have arrived first. */
#define TALLY_PREFETCH_KEY 3
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
	w->evb.cap = TALLY_EVBUF_EVENTS;
	w->evb.arena_cap = TALLY_EVBUF_ARENA;
	w->evb.ev = tally_mem_map_node(TALLY_EVBUF_EVENTS * sizeof(*w->evb.ev), node);
	w->evb.arena = tally_mem_map_node(TALLY_EVBUF_ARENA, node);
	if (w->evb.ev == NULL || w->evb.arena == NULL)
		return -ENOMEM;
	ck_ring_init(&w->sealed, TALLY_RING_SIZE);
	ck_ring_init(&w->spare, TALLY_RING_SIZE);
	for (unsigned i = 0; i < TALLY_TABLES_PER_WORKER; i++) {
		w->tables[i] = tally_wtab_create_ext(table_rows, sh->sketch_rows ? sh->sketch_rows
									 : TALLY_SKETCH_ROWS_DEFAULT,
						     node);
		if (w->tables[i] == NULL)
			return -errno;
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

static bool is_tly1(const struct tally_params *p, const struct tally_udp *u)
{
	if (p->ports[0] != p->ports[1])
		return u->dport == p->ports[0];
	/* One port for both: the four magic bytes decide. */
	return u->len >= 4 && memcmp(u->payload, TALLY_TLY1_MAGIC, 4) == 0;
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

/* A TLY1 parse result as a counter: TALLY_OK, or one of the TLY1 reasons;
 * anything else (there is nothing else) is drop_internal, never a stray index. */
static enum tally_counter tly1_counter(int r)
{
	if (likely(r == TALLY_OK))
		return TALLY_C_TLY1_DATAGRAMS;
	if ((unsigned)(r - TALLY_C_TLY1_SHORT) <= TALLY_C_TLY1_MAC_BAD - TALLY_C_TLY1_SHORT)
		return (enum tally_counter)r;
	return TALLY_C_DROP_INTERNAL;
}

static void parse_datagram(struct tally_worker *w, const struct tally_params *p,
			   const struct tally_udp *u, uint64_t now_ms)
{
	uint64_t *c = w->ctr.v;
	struct tally_tly1_hdr h;
	int r;

	if (is_tly1(p, u)) {
		make_room(w, p, now_ms, TALLY_TLY1_MAX_COUNT, 0);
		r = tally_tly1_parse(u->payload, u->len, &p->mac, &w->evb, &h);
		c[tly1_counter(r)]++;
		/* acks are not sent yet: a sender waiting for one must hear of it */
		c[TALLY_C_TLY1_ACK_UNSENT] += r == TALLY_OK && (h.flags & TALLY_TLY1_F_ACK_REQ);
		return;
	}
	c[TALLY_C_STATSD_DATAGRAMS]++;
	make_room(w, p, now_ms, TALLY_STATSD_MAX_EVENTS(u->len), u->len);
	if (unlikely(tally_statsd_parse(u->payload, u->len, &w->evb, c) < 0))
		c[TALLY_C_DROP_INTERNAL]++;
}

static void parse_frame(struct tally_worker *w, const struct tally_params *p,
			struct rte_mbuf *m, uint64_t now_ms)
{
	struct tally_udp u;
	uint64_t f = m->ol_flags;
	int r;

	w->ctr.v[TALLY_C_RX_BYTES] += m->pkt_len;
	r = tally_pkt_parse(rte_pktmbuf_mtod(m, const uint8_t *), m->data_len,
			    csum_state(f, RTE_MBUF_F_RX_IP_CKSUM_MASK, RTE_MBUF_F_RX_IP_CKSUM_GOOD,
				       RTE_MBUF_F_RX_IP_CKSUM_BAD),
			    csum_state(f, RTE_MBUF_F_RX_L4_CKSUM_MASK, RTE_MBUF_F_RX_L4_CKSUM_GOOD,
				       RTE_MBUF_F_RX_L4_CKSUM_BAD),
			    p->ports, 2, &u);
	if (unlikely(r != TALLY_OK)) {
		w->ctr.v[r]++;
		return;
	}
	parse_datagram(w, p, &u, now_ms);
}

/*
 * Event time -> window, or the drop reason. The window of the previous event is
 * cached because a burst's events almost always share one: it saves a 64-bit
 * division per event.
 */
struct win_cache {
	int64_t start, end;
};

static int event_window(const struct tally_params *p, uint64_t now_ms, struct win_cache *wc,
			struct tally_event *e)
{
	uint64_t t = e->time_ms ? e->time_ms : now_ms;

	if (unlikely(t > (uint64_t)INT64_MAX - (uint64_t)p->window_ms))
		return TALLY_C_DROP_FUTURE;
	if (p->future_ms && t > now_ms + p->future_ms)
		return TALLY_C_DROP_FUTURE;
	if (p->lateness_ms && t + p->lateness_ms < now_ms)
		return TALLY_C_DROP_LATE;
	if (unlikely((int64_t)t < wc->start || (int64_t)t >= wc->end)) {
		/* t >= 0 and w > 0: the start is always representable. */
		tally_window_start((int64_t)t, p->window_ms, &wc->start);
		wc->end = wc->start + p->window_ms;
	}
	e->win_start = wc->start;
	return TALLY_OK;
}

/* What a batch did, summed in registers and added to the counters once. */
struct apply_sums {
	uint64_t accepted, dups, inserted, evicted, gave_up, rows, full, sk_missed;
};

/* Time checks, window and hashes of one event; false if it is dropped. */
static inline bool prepare_one(struct tally_worker *w, const struct tally_params *p,
			       uint64_t now_ms, struct win_cache *wc, struct tally_event *e)
{
	int r = event_window(p, now_ms, wc, e);

	if (unlikely(r != TALLY_OK)) {
		w->ctr.v[r]++;
		return false;
	}
	e->hash = tally_row_hash(tally_key_hash(e->key, e->key_len), e->win_start);
	/* No rules file: this one branch is all rules cost. */
	if (unlikely(p->rules != NULL) &&
	    !tally_rules_event(&w->rc, p->rules, w->id, w->ctr.v, e))
		return false;
	e->cell = (uint32_t)tally_wtab_slot(w->cur, e->hash);
	if (e->event_id)
		e->dd = tally_dedup_ref(w->sh->dedup, e->event_id);
	return true;
}

/* The lines an event's apply will touch: its dedup buckets and table cell. */
static inline void prefetch_event(const struct tally_worker *w, const struct tally_event *e)
{
	tally_prefetch(&w->cur->cell[e->cell]);
	if (e->kind == TALLY_EV_SKETCH || e->kind == TALLY_EV_SET)
		tally_wtab_prefetch_aux(w->cur, e->cell);
	if (e->event_id)
		tally_dedup_prefetch(w->sh->dedup, e->dd);
}

static inline void apply_one(struct tally_worker *w, const struct tally_event *e,
			     struct tally_dedup_view v, struct apply_sums *s)
{
	struct tally_dedup *d = w->sh->dedup;
	int r;

	if (e->event_id) {
		r = tally_dedup_insert(d, e->dd, v);
		if (r == TALLY_DEDUP_DUP) {
			s->dups++;
			return;
		}
		s->inserted++;
		s->evicted += r == TALLY_DEDUP_NEW_EVICT;
		s->gave_up += r == TALLY_DEDUP_NEW_GAVE_UP;
	}
	if (likely(e->kind == TALLY_EV_PLAIN)) {
		r = tally_wtab_add_at(w->cur, e->hash, e->cell, e->key, e->key_len, e->win_start,
				      e->value);
	} else {
		bool missed = false;

		r = tally_wtab_add_kind(w->cur, e->hash, e->cell, e->key, e->key_len,
					e->win_start, e, &missed);
		s->sk_missed += missed;
	}
	if (unlikely(r < 0)) {
		/* Not applied, so not remembered: a resend must count. */
		if (e->event_id)
			tally_dedup_forget(d, e->dd.h, v.gen);
		s->full++;
		return;
	}
	s->accepted++;
	s->rows += (uint64_t)r;
}

static void add_sums(struct tally_worker *w, const struct apply_sums *s)
{
	uint64_t *c = w->ctr.v;

	c[TALLY_C_EVENTS_ACCEPTED] += s->accepted;
	c[TALLY_C_DROP_DUPLICATE] += s->dups;
	c[TALLY_C_DEDUP_INSERTED] += s->inserted;
	c[TALLY_C_DEDUP_EVICTED] += s->evicted;
	c[TALLY_C_DEDUP_CAS_GAVE_UP] += s->gave_up;
	c[TALLY_C_WINDOW_ROWS] += s->rows;
	c[TALLY_C_DROP_TABLE_FULL] += s->full;
	c[TALLY_C_STATSD_SKETCH_FULL] += s->sk_missed;
}

/* Pass 1: drop by time, find windows, hash; keep survivors in place and
 * prefetch the first TALLY_PREFETCH of them. */
static uint32_t prepare_events(struct tally_worker *w, const struct tally_params *p,
			       uint64_t now_ms)
{
	struct tally_event *ev = w->evb.ev;
	struct win_cache wc = {INT64_MAX, INT64_MIN};
	uint32_t k = 0;

	if (unlikely(p->rules != NULL))
		tally_rcache_begin(&w->rc, p->rules);
	for (uint32_t i = 0; i < w->evb.n; i++) {
		if (!prepare_one(w, p, now_ms, &wc, &ev[i]))
			continue;
		if (k != i)
			ev[k] = ev[i];
		if (k < TALLY_PREFETCH)
			prefetch_event(w, &ev[k]);
		k++;
	}
	return k;
}

/* Pass 2: dedup and table, with event i + TALLY_PREFETCH's lines in flight.
 * (Measured: one fused loop that prepares i + TALLY_PREFETCH while applying i
 * ran ~15% slower.) */
static void apply_events(struct tally_worker *w, const struct tally_params *p,
			 uint64_t now_ms)
{
	struct tally_event *ev = w->evb.ev;
	struct tally_dedup_view v = tally_dedup_view(w->sh->dedup);
	struct apply_sums s = {0};
	uint32_t n;

	w->ctr.v[TALLY_C_EVENTS_IN] += w->evb.n;
	n = prepare_events(w, p, now_ms);
	for (uint32_t i = 0; i < n; i++) {
		if (i + TALLY_PREFETCH < n)
			prefetch_event(w, &ev[i + TALLY_PREFETCH]);
		if (i + TALLY_PREFETCH_KEY < n) { /* its cell and aux word have arrived by now */
			const struct tally_event *k = &ev[i + TALLY_PREFETCH_KEY];

			tally_wtab_prefetch_key(w->cur, k->cell, k->key_len);
			if (k->kind == TALLY_EV_SKETCH || k->kind == TALLY_EV_SET)
				tally_wtab_prefetch_sketch(w->cur, k->cell, k);
		}
		apply_one(w, &ev[i], v, &s);
	}
	add_sums(w, &s);
	tally_evbuf_clear(&w->evb);
}

void tally_worker_burst(struct tally_worker *w, const struct tally_params *p,
			struct rte_mbuf **pkts, uint16_t n, uint64_t now_ms)
{
	uint16_t i;

	for (i = 0; i < n && i < TALLY_PKT_PREFETCH; i++)
		rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void *));
	for (i = 0; i < n; i++) {
		if (i + TALLY_PKT_PREFETCH < n)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + TALLY_PKT_PREFETCH], void *));
		parse_frame(w, p, pkts[i], now_ms);
	}
	apply_events(w, p, now_ms);
	rte_pktmbuf_free_bulk(pkts, n);
	w->ctr.v[TALLY_C_RX_PACKETS] += n;
	w->ctr.v[TALLY_C_RX_BURSTS]++;
}

static void poll_queues(struct tally_worker *w)
{
	struct tally_shared *sh = w->sh;
	struct rte_mbuf *pkts[TALLY_BURST];
	ck_epoch_section_t section;

	for (uint16_t q = 0; q < w->nqueues; q++) {
		uint16_t n = rte_eth_rx_burst(w->port, w->queues[q], pkts, TALLY_BURST);
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

int tally_worker_main(void *arg)
{
	struct tally_worker *w = arg;

	w->lcore = rte_lcore_id();
	while (!ck_pr_load_int(&w->sh->stop)) {
		poll_queues(w);
		tally_worker_maybe_seal(w);
	}
	tally_worker_seal_last(w);
	return 0;
}
