/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Prometheus text exposition of a snapshot; the naming rules are in prom.h.
 * Every family is written whole (HELP, TYPE, then all its samples), as the
 * format requires, so per-worker and per-reason samples of one family are
 * gathered here rather than emitted in counter-list order.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom.h"

static bool buf_reserve(struct tally_buf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 4096;
	char *p;

	if (b->oom)
		return false;
	while (cap < b->len + more + 1)
		cap *= 2;
	if (cap == b->cap)
		return true;
	p = realloc(b->p, cap);
	if (p == NULL) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void tally_buf_printf(struct tally_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Escape for a label value (esc_quote) or a HELP line. */
static void buf_escaped(struct tally_buf *b, const char *v, bool esc_quote)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\')
			tally_buf_printf(b, "\\\\");
		else if (*v == '\n')
			tally_buf_printf(b, "\\n");
		else if (*v == '"' && esc_quote)
			tally_buf_printf(b, "\\\"");
		else
			tally_buf_printf(b, "%c", *v);
	}
}

void tally_buf_label(struct tally_buf *b, const char *v)
{
	buf_escaped(b, v, true);
}

void tally_buf_free(struct tally_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* The accepted counts among the tly1_* and statsd_* names: everything else
 * there is a rejection (counters.h's sections). */
bool tally_counter_is_drop(unsigned c)
{
	const char *n = tally_counter_names[c];

	if (strncmp(n, "drop_", 5) == 0)
		return true;
	if (strncmp(n, "tly1_", 5) != 0 && strncmp(n, "statsd_", 7) != 0)
		return false;
	return c != TALLY_C_TLY1_DATAGRAMS && c != TALLY_C_TLY1_ACK_UNSENT &&
	       c != TALLY_C_STATSD_DATAGRAMS && c != TALLY_C_STATSD_LINES;
}

/* Workers' counters precede the flusher's in the list; dedup_gen_held is the
 * dedup table's own, filled in when read. */
bool tally_counter_per_worker(unsigned c)
{
	return c < TALLY_C_FLUSH_BATCHES && c != TALLY_C_DEDUP_GEN_HELD;
}

bool tally_counter_is_gauge(unsigned c)
{
	return strstr(tally_counter_help[c], "(gauge)") != NULL;
}

static void family(struct tally_buf *b, const char *name, const char *type, const char *help)
{
	tally_buf_printf(b, "# HELP %s ", name);
	buf_escaped(b, help, false);
	tally_buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

/* A value, in seconds when the counter counts microseconds (its name ends in
 * _us: Prometheus wants base units). */
static void sample(struct tally_buf *b, uint64_t v, bool us)
{
	if (us)
		tally_buf_printf(b, " %.6f\n", (double)v / 1e6);
	else
		tally_buf_printf(b, " %llu\n", (unsigned long long)v);
}

/* One counter outside tally_drops_total: its own family. */
static void counter_family(struct tally_buf *b, const struct tally_snap *s, unsigned c)
{
	bool gauge = tally_counter_is_gauge(c);
	const char *n = tally_counter_names[c];
	size_t len = strlen(n);
	bool us = len > 3 && strcmp(n + len - 3, "_us") == 0;
	char name[96];

	snprintf(name, sizeof(name), "tally_%.*s%s%s", (int)(us ? len - 3 : len), n,
		 us ? "_seconds" : "", gauge ? "" : "_total");
	family(b, name, gauge ? "gauge" : "counter", tally_counter_help[c]);
	if (!tally_counter_per_worker(c)) {
		tally_buf_printf(b, "%s", name);
		sample(b, s->v[c], us);
		return;
	}
	for (unsigned i = 0; i < s->nworkers; i++) {
		tally_buf_printf(b, "%s{worker=\"%u\"}", name, s->w[i].id);
		sample(b, s->w[i].v[c], us);
	}
}

static void drops_family(struct tally_buf *b, const struct tally_snap *s)
{
	family(b, "tally_drops_total", "counter", "frames, datagrams, lines or events dropped, "
	       "by reason (the unit is the reason's: see tallyctl stats)");
	for (unsigned c = 0; c < TALLY_C_MAX; c++) {
		const char *n = tally_counter_names[c];

		if (!tally_counter_is_drop(c))
			continue;
		if (strncmp(n, "drop_", 5) == 0)
			n += 5;
		if (!tally_counter_per_worker(c)) {
			tally_buf_printf(b, "tally_drops_total{reason=\"%s\"} %llu\n", n,
					 (unsigned long long)s->v[c]);
			continue;
		}
		for (unsigned i = 0; i < s->nworkers; i++)
			tally_buf_printf(b, "tally_drops_total{reason=\"%s\",worker=\"%u\"} %llu\n",
					 n, s->w[i].id, (unsigned long long)s->w[i].v[c]);
	}
}

static void histogram(struct tally_buf *b, const char *name, const char *help,
		      const struct tally_hist *h)
{
	uint64_t cum = 0;

	family(b, name, "histogram", help);
	for (unsigned i = 0; i < TALLY_HIST_NBOUNDS; i++) {
		cum += h->count[i];
		tally_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name,
				 tally_hist_bounds_ms[i] / 1000.0, (unsigned long long)cum);
	}
	cum += h->count[TALLY_HIST_NBOUNDS];
	tally_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
	tally_buf_printf(b, "%s_sum %.6f\n%s_count %llu\n", name, h->sum_us / 1e6, name,
			 (unsigned long long)cum);
}

static void gauge(struct tally_buf *b, const char *name, const char *help, double v)
{
	family(b, name, "gauge", help);
	tally_buf_printf(b, "%s %.15g\n", name, v);
}

static void health(struct tally_buf *b, const struct tally_snap *s)
{
	family(b, "tally_worker_up", "gauge", "1 while the worker's heartbeat advances, 0 when "
	       "the watchdog found it stalled or it has stopped");
	for (unsigned i = 0; i < s->nworkers; i++)
		tally_buf_printf(b, "tally_worker_up{worker=\"%u\",lcore=\"%u\"} %d\n", s->w[i].id,
				 s->w[i].lcore, s->w[i].health == TALLY_RUNNING);
	gauge(b, "tally_flusher_up", "1 while the flusher's heartbeat advances",
	      s->flusher == TALLY_RUNNING);
	family(b, "tally_build_info", "gauge", "tallyd's version, as a label; always 1");
	tally_buf_printf(b, "tally_build_info{version=\"");
	tally_buf_label(b, s->version ? s->version : "");
	tally_buf_printf(b, "\"} 1\n");
}

/* The spool's alarms and age; its counts (tally_spool_records, _bytes,
 * _appended_total...) come with the other counters. */
static void spool(struct tally_buf *b, const struct tally_spool_stats *sp)
{
	gauge(b, "tally_spool_oldest_age_seconds", "age of the oldest record not replayed; 0 "
	      "if empty", sp->oldest_age_ms / 1000.0);
	gauge(b, "tally_spool_full_alarm", "1 while the spool is above its size alarm",
	      sp->full_alarm);
	gauge(b, "tally_spool_age_alarm", "1 while the oldest record is older than its alarm",
	      sp->age_alarm);
}

static void sink(struct tally_buf *b, const struct tally_sink_state *st)
{
	static const char *const breaker[] = {"closed", "open", "half-open"};

	family(b, "tally_sink_up", "gauge", "1 while the sink takes writes; 0 when its last "
	       "write failed or a call is stalled");
	tally_buf_printf(b, "tally_sink_up{sink=\"");
	tally_buf_label(b, st->name);
	tally_buf_printf(b, "\"} %d\n", strcmp(st->state, "up") == 0);
	if (st->breaker[0] != '\0') {
		family(b, "tally_sink_breaker", "gauge", "the sink's circuit breaker: 1 for its "
		       "current state");
		for (unsigned i = 0; i < 3; i++)
			tally_buf_printf(b, "tally_sink_breaker{state=\"%s\"} %d\n", breaker[i],
					 strcmp(st->breaker, breaker[i]) == 0);
	}
	if (st->has_spool)
		spool(b, &st->spool);
}

int tally_prom_format(const struct tally_snap *s, struct tally_buf *b)
{
	for (unsigned c = 0; c < TALLY_C_MAX; c++)
		if (!tally_counter_is_drop(c))
			counter_family(b, s, c);
	drops_family(b, s);
	histogram(b, "tally_flush_duration_seconds", "each flush tick: seal requests to the "
		  "last sink write", &s->flush_hist);
	histogram(b, "tally_sink_write_duration_seconds", "each sink write call",
		  &s->sink_hist);
	health(b, s);
	sink(b, &s->sink);
	gauge(b, "tally_uptime_seconds", "seconds since tallyd started", s->uptime_ms / 1000.0);
	gauge(b, "tally_dedup_generation", "current dedup generation", (double)s->dedup_gen);
	gauge(b, "tally_dedup_capacity_ids", "event ids the dedup horizon holds",
	      (double)s->dedup_capacity);
	gauge(b, "tally_dedup_bytes", "bytes of the dedup table", (double)s->dedup_bytes);
	gauge(b, "tally_table_rows", "rows per worker window table", (double)s->table_rows);
	gauge(b, "tally_tables_bytes", "bytes of every worker window table",
	      (double)s->table_bytes);
	return b->oom ? -ENOMEM : 0;
}
