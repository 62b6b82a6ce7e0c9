/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What happens to a datagram's events once it is parsed, shared by the worker
 * (worker.c) and tally-recount: the datagram's type and parse result as
 * counters, then per batch of events the time checks, window, rules, dedup and
 * window-table update. All static inline and DPDK-free: the worker compiles it
 * into its burst loop exactly as before the split (same inlining, same code),
 * and a recount of the archive runs the very same decisions.
 *
 * A batch is applied in two passes so the dedup bucket and table slot of event
 * i + TALLY_PREFETCH are in flight while event i is applied.
 */
#ifndef TALLY_APPLY_H
#define TALLY_APPLY_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "counters.h"
#include "dedup.h"
#include "event.h"
#include "parse_statsd.h"
#include "dgset.h"
#include "parse_tly1.h"
#include "rules.h"
#include "window.h"

#define tally_likely(x) __builtin_expect(!!(x), 1)
#define tally_unlikely(x) __builtin_expect(!!(x), 0)

/* Events ahead whose dedup line and table row are prefetched while event i is
 * applied: about three lines each, so 8 events keep ~24 misses in flight. */
#define TALLY_PREFETCH 8
/* Events ahead whose long key's arena bytes are prefetched: nearer, since the
 * arena offset is in the row, which must have arrived first. */
#define TALLY_PREFETCH_KEY 3

/* What workers read per burst. Swapped as a whole under ck_epoch, never edited. */
struct tally_params {
	uint16_t ports[2]; /* TLY1, StatsD; 0 = off */
	int64_t window_ms;
	uint64_t lateness_ms; /* 0 = off */
	uint64_t future_ms;   /* 0 = off */
	struct tally_mac_keys mac;
	const struct tally_rules *rules; /* NULL: no rules file, every key kept */
	/* ACK_REQ datagrams committed before (a restart, another appliance):
	 * dropped whole and acked committed; NULL: none */
	const struct tally_dgset *committed;
	uint8_t ack_mode;                /* enum tally_ack_mode; fixed at start */
};

/* Where a batch goes: a worker's own pieces, or tally-recount's. Built on the
 * stack per batch (the worker's fields, loaded once). */
struct tally_applier {
	uint64_t *ctr;           /* counters, enum tally_counter */
	struct tally_wtab *cur;  /* the window table events are added to */
	struct tally_dedup *dedup;
	struct tally_rcache *rc; /* used only with rules */
	struct tally_evbuf *evb; /* the parsed events */
	unsigned id;             /* the rules' writer slot */
};

/* Which parser a datagram to dport goes to. */
static inline bool tally_is_tly1(const struct tally_params *p, uint16_t dport,
				 const uint8_t *payload, uint16_t len)
{
	if (p->ports[0] != p->ports[1])
		return dport == p->ports[0];
	/* One port for both: the four magic bytes decide. */
	return len >= 4 && memcmp(payload, TALLY_TLY1_MAGIC, 4) == 0;
}

/* A TLY1 parse result as a counter: TALLY_OK, or one of the TLY1 reasons;
 * anything else (there is nothing else) is drop_internal, never a stray index. */
static inline enum tally_counter tally_tly1_counter(int r)
{
	if (tally_likely(r == TALLY_OK))
		return TALLY_C_TLY1_DATAGRAMS;
	if ((unsigned)(r - TALLY_C_TLY1_SHORT) <= TALLY_C_TLY1_MAC_REQUIRED - TALLY_C_TLY1_SHORT)
		return (enum tally_counter)r;
	return TALLY_C_DROP_INTERNAL;
}

/* Parse a TLY1 datagram into evb (room for TALLY_TLY1_MAX_COUNT events made
 * by the caller) and count the result; *h is the header (flags 0 when it could
 * not be read), for the worker's acks. Returns the parse result. */
static inline int tally_dgram_tly1(uint64_t *c, const struct tally_params *p,
				   struct tally_evbuf *evb, const uint8_t *payload, uint16_t len,
				   struct tally_tly1_hdr *h)
{
	int r;

	h->flags = 0;
	r = tally_tly1_parse(payload, len, &p->mac, evb, h);
	c[tally_tly1_counter(r)]++;
	c[TALLY_C_TLY1_MAC_OLD_KEY] += r == TALLY_OK && h->mac_old;
	return r;
}

/* The same for StatsD (room for TALLY_STATSD_MAX_EVENTS(len) events and len
 * arena bytes made by the caller). */
static inline void tally_dgram_statsd(uint64_t *c, struct tally_evbuf *evb,
				      const uint8_t *payload, uint16_t len)
{
	c[TALLY_C_STATSD_DATAGRAMS]++;
	if (tally_unlikely(tally_statsd_parse(payload, len, evb, c) < 0))
		c[TALLY_C_DROP_INTERNAL]++;
}

/*
 * Event time -> window, or the drop reason. The limits are worked out once per
 * batch, and the window of the previous event is cached because a batch's
 * events almost always share one: an event inside both (the usual case) costs
 * one subtraction and one compare, no division and no test of the limits.
 */
struct tally_win_cache {
	int64_t start, end;
	uint64_t t_lo, t_hi;      /* accepted times: t_lo <= t <= t_hi */
	uint64_t fast_lo, fast_n; /* accepted and in [start, end): t - fast_lo < fast_n */
};

/*
 * The batch's limits, the same tests as per event: t > INT64_MAX - window_ms or
 * (future_ms and t > now_ms + future_ms) is future; lateness_ms and
 * t + lateness_ms < now_ms is late (no wrap: both limits are at most
 * UINT64_MAX / 4 and an accepted t < 2^63).
 */
static inline void tally_ap_win_init(const struct tally_params *p, uint64_t now_ms,
				     struct tally_win_cache *wc)
{
	uint64_t hi = (uint64_t)INT64_MAX - (uint64_t)p->window_ms;

	if (p->future_ms && now_ms + p->future_ms < hi)
		hi = now_ms + p->future_ms;
	wc->t_hi = hi;
	wc->t_lo = p->lateness_ms && now_ms > p->lateness_ms ? now_ms - p->lateness_ms : 0;
	wc->start = INT64_MAX;
	wc->end = INT64_MIN;
	wc->fast_lo = 1;
	wc->fast_n = 0; /* nothing is fast until the first window is known */
}

static inline int tally_ap_event_window_slow(const struct tally_params *p,
					     struct tally_win_cache *wc, uint64_t t,
					     struct tally_event *e)
{
	uint64_t lo, hi;

	if (t > wc->t_hi)
		return TALLY_C_DROP_FUTURE;
	if (t < wc->t_lo)
		return TALLY_C_DROP_LATE;
	/* t >= 0 and w > 0: the start is always representable. */
	tally_window_start((int64_t)t, p->window_ms, &wc->start);
	wc->end = wc->start + p->window_ms;
	lo = (uint64_t)wc->start > wc->t_lo ? (uint64_t)wc->start : wc->t_lo;
	hi = (uint64_t)wc->end - 1 < wc->t_hi ? (uint64_t)wc->end - 1 : wc->t_hi;
	wc->fast_lo = lo;
	wc->fast_n = hi - lo + 1; /* lo <= t <= hi: never empty */
	e->win_start = wc->start;
	return TALLY_OK;
}

static inline int tally_ap_event_window(const struct tally_params *p, uint64_t now_ms,
					struct tally_win_cache *wc, struct tally_event *e)
{
	uint64_t t = e->time_ms ? e->time_ms : now_ms;

	if (tally_likely(t - wc->fast_lo < wc->fast_n)) {
		e->win_start = wc->start;
		return TALLY_OK;
	}
	return tally_ap_event_window_slow(p, wc, t, e);
}

/* What a batch did, summed in registers and added to the counters once. */
struct tally_apply_sums {
	uint64_t accepted, dups, inserted, evicted, gave_up, rows, full, sk_missed;
};

/* Time checks, window and hashes of one event; false if it is dropped. */
static inline bool tally_ap_prepare_one(struct tally_applier *a, const struct tally_params *p,
					uint64_t now_ms, struct tally_win_cache *wc,
					struct tally_event *e)
{
	int r = tally_ap_event_window(p, now_ms, wc, e);

	if (tally_unlikely(r != TALLY_OK)) {
		a->ctr[r]++;
		return false;
	}
	e->hash = tally_row_hash(tally_key_hash(e->key, e->key_len), e->win_start);
	/* No rules file: this one branch is all rules cost. */
	if (tally_unlikely(p->rules != NULL) &&
	    !tally_rules_event(a->rc, p->rules, a->id, a->ctr, e))
		return false;
	e->cell = (uint32_t)tally_wtab_slot(a->cur, e->hash);
	if (e->event_id)
		e->dd = tally_dedup_ref(a->dedup, e->event_id);
	return true;
}

/* The lines an event's apply will touch: its dedup buckets and table cell. */
static inline void tally_ap_prefetch_event(const struct tally_applier *a,
					   const struct tally_event *e)
{
	tally_prefetch(&a->cur->cell[e->cell]);
	/* deferred sketch values touch no aux word or slab here */
	if ((e->kind == TALLY_EV_SKETCH || e->kind == TALLY_EV_SET) && a->cur->pend == NULL)
		tally_wtab_prefetch_aux(a->cur, e->cell);
	if (e->event_id)
		tally_dedup_prefetch(a->dedup, e->dd);
}

static inline void tally_ap_apply_one(struct tally_applier *a, const struct tally_event *e,
				      struct tally_dedup_view v, struct tally_apply_sums *s)
{
	struct tally_dedup *d = a->dedup;
	int r;

	if (e->event_id) {
		r = tally_dedup_insert(d, e->dd, v);
		if (r == TALLY_DEDUP_DUP) {
			s->dups++;
			return;
		}
		s->inserted++;
		if (tally_unlikely(r != TALLY_DEDUP_NEW)) {
			s->evicted += r == TALLY_DEDUP_NEW_EVICT;
			s->gave_up += r == TALLY_DEDUP_NEW_GAVE_UP;
		}
	}
	if (tally_likely(e->kind == TALLY_EV_PLAIN)) {
		r = tally_wtab_add_at(a->cur, e->hash, e->cell, e->key, e->key_len, e->win_start,
				      e->value);
	} else {
		bool missed = false;

		r = tally_wtab_add_kind(a->cur, e->hash, e->cell, e->key, e->key_len,
					e->win_start, e, &missed);
		s->sk_missed += missed;
	}
	if (tally_unlikely(r < 0)) {
		/* Not applied, so not remembered: a resend must count. */
		if (e->event_id)
			tally_dedup_forget(d, e->dd.h, v.gen);
		s->full++;
		return;
	}
	s->accepted++;
	s->rows += (uint64_t)r;
}

static inline void tally_ap_add_sums(struct tally_applier *a,
				     const struct tally_apply_sums *s)
{
	uint64_t *c = a->ctr;

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
static inline uint32_t tally_ap_prepare_events(struct tally_applier *a,
					       const struct tally_params *p, uint64_t now_ms,
					       bool *plain)
{
	struct tally_event *ev = a->evb->ev;
	struct tally_win_cache wc;
	uint32_t k = 0, odd = 0;

	tally_ap_win_init(p, now_ms, &wc);
	if (tally_unlikely(p->rules != NULL))
		tally_rcache_begin(a->rc, p->rules);
	for (uint32_t i = 0, n = a->evb->n; i < n; i++) {
		if (!tally_ap_prepare_one(a, p, now_ms, &wc, &ev[i]))
			continue;
		/* a key of 16..255 bytes has a bit of 0xf0; a plain event's kind is 0 */
		_Static_assert(TALLY_ROW_KEY_INLINE == 15 && TALLY_EV_PLAIN == 0, "odd test");
		odd |= (ev[i].key_len & 0xf0u) | ev[i].kind;
		if (k != i)
			ev[k] = ev[i];
		if (k < TALLY_PREFETCH)
			tally_ap_prefetch_event(a, &ev[k]);
		k++;
	}
	*plain = !odd;
	return k;
}

/* Pass 2: dedup and table, with event i + TALLY_PREFETCH's lines in flight.
 * (Measured: one fused loop that prepares i + TALLY_PREFETCH while applying i
 * ran ~15% slower.) */
static inline bool tally_apply_events(struct tally_applier *a, const struct tally_params *p,
				      uint64_t now_ms)
{
	struct tally_event *ev = a->evb->ev;
	struct tally_dedup_view v = tally_dedup_view(a->dedup);
	struct tally_apply_sums s = {0};
	uint32_t n;
	bool plain;

	a->ctr[TALLY_C_EVENTS_IN] += a->evb->n;
	n = tally_ap_prepare_events(a, p, now_ms, &plain);
	for (uint32_t i = 0; i < n; i++) {
		if (i + TALLY_PREFETCH < n)
			tally_ap_prefetch_event(a, &ev[i + TALLY_PREFETCH]);
		/* its A bucket has arrived by now: B's too, if A's mark says the id may be there */
		if (i + TALLY_PREFETCH_KEY < n && ev[i + TALLY_PREFETCH_KEY].event_id)
			tally_dedup_prefetch_b(a->dedup, ev[i + TALLY_PREFETCH_KEY].dd, v.lo);
		/* plain: no long key nor sketch in the batch (every TLY1 batch of short keys) */
		if (!plain && i + TALLY_PREFETCH_KEY < n) { /* its cell and aux word have arrived by now */
			const struct tally_event *k = &ev[i + TALLY_PREFETCH_KEY];

			tally_wtab_prefetch_key(a->cur, k->cell, k->key_len);
			if ((k->kind == TALLY_EV_SKETCH || k->kind == TALLY_EV_SET) &&
			    a->cur->pend == NULL)
				tally_wtab_prefetch_sketch(a->cur, k->cell, k);
		}
		tally_ap_apply_one(a, &ev[i], v, &s);
	}
	tally_ap_add_sums(a, &s);
	tally_evbuf_clear(a->evb);
	return s.full != 0; /* some event did not fit: the worker's acks say overloaded */
}

#endif
