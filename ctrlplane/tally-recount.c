/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-recount: recompute totals from the raw-event archive (archive.h), at
 * another window size or under corrected rules, and write them to a sink under
 * their own appliance id.
 *
 *   tally-recount --from T1 --to T2 [--archive DIR] [--window-ms W] [--rules FILE]
 *                 [--appliance ID] [-c FILE] [--KEY VALUE ...]
 *
 * T1, T2: arrival times, ms since the epoch or YYYY-MM-DDTHH:MM:SSZ; the range
 * is [T1, T2).
 *
 * --replace corrects the live rows instead: T1 and T2 are then window bounds,
 * and every row of window_ms W with window_start_ms in [T1, T2), of any key,
 * is replaced by the recount's rows of that window, in one sink transaction
 * per window (the sink's replace op; SQLite and PostgreSQL). A window's events
 * arrived within [start - future_ms, end + lateness_ms), and the dedup table
 * must have seen the dedup_horizon_ms before, so the windows are recounted in
 * chunks, each read from its first window's start - future_ms -
 * dedup_horizon_ms to its last window's end + lateness_ms, with a fresh table
 * and dedup; rows outside the chunk's windows are thrown away. Only windows
 * tallyd can no longer add to are replaced: T2 + lateness_ms +
 * 2 * flush_interval_ms + REPLACE_GRACE_MS must be past. -c and --KEY VALUE are tallyd's own config (the sink and its
 * keys, ports, lateness, MAC keys, dedup sizes): a recount with the live config
 * makes the live decisions. --archive defaults to archive_dir, --window-ms to
 * window_ms, --rules to rules_file.
 *
 * The main idea: every archived datagram goes through the worker's own code,
 * the parsers and dataplane/apply.h (time checks against the stored arrival
 * time, rules, dedup, window table), in arrival order, one batch per arrival
 * millisecond as a worker's burst would. The table is written as a batch when
 * it is 7/8 full and at the end; the sink adds rows of the same (key, window)
 * as it does for tallyd's flushes.
 *
 * StatsD timers and sets keep their sketches (sketch_rows slabs, as a worker
 * table) and gauges their value across windows (gauge.h) exactly as the
 * flusher does, with one difference: the gauge state starts empty at T1, so a
 * relative gauge line before the key's first absolute line in the range counts
 * from 0 (the live appliance's value at T1 is not in the archive).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"
#include "archive.h"
#include "batch.h"
#include "config.h"
#include "counters.h"
#include "dedup.h"
#include "gauge.h"
#include "mem.h"
#include "rules.h"
#include "sink.h"
#include "window.h"

#define EVENTS 16384
#define ARENA (512 * 1024)
#define PBUF (4 * 1024 * 1024) /* payload copies: TLY1 keys point into them */
#define DEDUP_TICK_MS 2        /* tallyd's: generations move as they did live */
/* Past a window's last flush: the sink writer's retries of its batch. */
#define REPLACE_GRACE_MS 5000

struct recount {
	struct tally_config cfg;
	struct tally_params p;
	struct tally_rules *rules;
	struct tally_rcache rc;
	struct tally_evbuf evb;
	struct tally_wtab *tab;
	struct tally_dedup *dedup;
	uint64_t ctr[TALLY_C_MAX];
	uint8_t *pbuf;
	size_t pused;
	uint64_t batch_ms, last_tick, sweep;
	struct tally_sink *sink;
	struct tally_batch b;
	struct tally_gauges gauges; /* StatsD gauges' values across windows, as the flusher's */
	uint64_t seq, batches, rows;
	int err;
	char archive[TALLY_CFG_STR_MAX], appliance[TALLY_APPLIANCE_MAX], rules_file[1024];
	uint64_t from, to;
	int64_t window_ms;
	bool tty;
	/* --replace: the chunk being recounted, and what was replaced */
	bool replace;
	uint64_t chunk_from, chunk_to, chunk, nchunks, windows;
};

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The table as one batch to the sink; emptied after. */
static int write_table(struct recount *rc)
{
	int r;

	if (rc->tab->nrows == 0)
		return 0;
	tally_batch_clear(&rc->b);
	if (tally_gauges_resolve(&rc->gauges, rc->tab) != 0) {
		fprintf(stderr, "tally-recount: out of memory for the gauge state\n");
		return -ENOMEM;
	}
	if (tally_batch_add_wtab(&rc->b, rc->tab) < 0) {
		fprintf(stderr, "tally-recount: out of memory for a batch of %u rows\n",
			rc->tab->nrows);
		return -ENOMEM;
	}
	rc->b.seq = rc->seq++;
	rc->b.now_ms = (int64_t)wall_ms();
	r = rc->sink->ops->write(rc->sink, &rc->b);
	if (r < 0) {
		fprintf(stderr, "tally-recount: sink %s: %s\n", rc->sink->name, rc->sink->err);
		return r;
	}
	rc->batches++;
	rc->rows += rc->b.nrows;
	tally_wtab_reset(rc->tab);
	return 0;
}

/* The events so far, as a worker's burst at arrival time batch_ms. */
static void apply(struct recount *rc)
{
	struct tally_applier a = {rc->ctr, rc->tab, rc->dedup, &rc->rc, &rc->evb, 0};

	if (rc->evb.n > 0)
		tally_apply_events(&a, &rc->p, rc->batch_ms);
	tally_evbuf_clear(&rc->evb);
	rc->pused = 0;
	if (rc->err == 0 && tally_wtab_near_full(rc->tab)) {
		if (!rc->replace)
			rc->err = write_table(rc);
		else {
			fprintf(stderr, "tally-recount: --replace: table_rows %llu is too small for "
				"the rows of windows [%llu, %llu): raise --table_rows\n",
				(unsigned long long)rc->cfg.table_rows,
				(unsigned long long)rc->chunk_from, (unsigned long long)rc->chunk_to);
			rc->err = -ENOSPC;
		}
	}
}

/* tallyd ticks dedup every 2 ms of its clock; here the clock is arrival time. */
static void dedup_tick(struct recount *rc, uint64_t now)
{
	if (now < rc->last_tick + DEDUP_TICK_MS)
		return;
	tally_dedup_tick(rc->dedup, now, rc->ctr[TALLY_C_DEDUP_INSERTED], rc->sweep);
	rc->last_tick = now;
}

static int on_record(const struct tally_arec *r, void *arg)
{
	struct recount *rc = arg;
	struct tally_evbuf *e = &rc->evb;
	bool tly1 = tally_is_tly1(&rc->p, r->dport, r->payload, r->len);
	uint32_t need = tly1 ? TALLY_TLY1_MAX_COUNT : TALLY_STATSD_MAX_EVENTS(r->len);
	uint8_t *copy;

	/* A worker's burst shares one arrival time; so does a batch here. */
	if (r->arrival_ms != rc->batch_ms || e->cap - e->n < need ||
	    e->arena_cap - e->arena_used < (tly1 ? 0 : r->len) || PBUF - rc->pused < r->len) {
		apply(rc);
		rc->batch_ms = r->arrival_ms;
		dedup_tick(rc, r->arrival_ms);
	}
	copy = memcpy(rc->pbuf + rc->pused, r->payload, r->len);
	rc->pused += r->len;
	if (tly1) {
		struct tally_tly1_hdr h; /* no acks: the senders were answered live */

		tally_dgram_tly1(rc->ctr, &rc->p, e, copy, r->len, &h);
	}
	else
		tally_dgram_statsd(rc->ctr, e, copy, r->len);
	return rc->err;
}

static void progress(size_t done, size_t total, void *arg)
{
	struct recount *rc = arg;
	int bar = total ? (int)(40 * done / total) : 40;

	bool last = done == total && rc->chunk + 1 >= rc->nchunks;
	char chunk[48] = "";

	if (!rc->tty && !last)
		return;
	if (rc->replace)
		snprintf(chunk, sizeof(chunk), "chunk %llu/%llu, ",
			 (unsigned long long)rc->chunk + 1, (unsigned long long)rc->nchunks);
	fprintf(stderr, "\rtally-recount: [%.*s%*s] %s%zu/%zu segments, %llu datagrams%s",
		bar, "########################################", 40 - bar, "", chunk, done, total,
		(unsigned long long)(rc->ctr[TALLY_C_TLY1_DATAGRAMS] +
				     rc->ctr[TALLY_C_STATSD_DATAGRAMS]), last ? "\n" : "");
}

static int parse_time(const char *s, uint64_t *out)
{
	struct tm tm = {0};
	char *end;

	*out = strtoull(s, &end, 10);
	if (*s != '\0' && *end == '\0')
		return 0;
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL || *end != '\0')
		return -EINVAL;
	*out = (uint64_t)timegm(&tm) * 1000;
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: tally-recount --from T1 --to T2 [--archive DIR] [--window-ms W]\n"
		"                     [--rules FILE] [--appliance ID] [--replace]\n"
		"                     [-c FILE] [--KEY VALUE ...]\n"
		"  T1, T2            arrival times: ms since the epoch or YYYY-MM-DDTHH:MM:SSZ\n"
		"  --replace         replace the sink's rows of windows [T1, T2) (window bounds,\n"
		"                    all keys) by the recount's, one transaction per window;\n"
		"                    only closed windows (T2 + lateness_ms + 2 flushes + 5 s past)\n"
		"  --archive DIR     the archive (default: archive_dir of the config)\n"
		"  --window-ms W     window size of the recount (default: window_ms)\n"
		"  --rules FILE      rules to apply (default: rules_file; '' = none)\n"
		"  --appliance ID    appliance id of the rows' batches (default recount-<time>)\n"
		"  -c FILE, --KEY V  tallyd's config: --sink sqlite --sqlite_path r.db, ports,\n"
		"                    lateness_ms, mac_keys, dedup_capacity, table_rows...\n");
}

/* Our own options; anything else of the --KEY VALUE form is a config key. */
static int own_option(struct recount *rc, const char *k, const char *v, bool *set_rules)
{
	uint64_t w;

	if (!strcmp(k, "from"))
		return parse_time(v, &rc->from);
	if (!strcmp(k, "to"))
		return parse_time(v, &rc->to);
	if (!strcmp(k, "archive"))
		return snprintf(rc->archive, sizeof(rc->archive), "%s", v) <
		       (int)sizeof(rc->archive) ? 0 : -ENAMETOOLONG;
	if (!strcmp(k, "appliance"))
		return snprintf(rc->appliance, sizeof(rc->appliance), "%s", v) <
		       (int)sizeof(rc->appliance) ? 0 : -ENAMETOOLONG;
	if (!strcmp(k, "rules")) {
		*set_rules = true;
		return snprintf(rc->rules_file, sizeof(rc->rules_file), "%s", v) <
		       (int)sizeof(rc->rules_file) ? 0 : -ENAMETOOLONG;
	}
	if (!strcmp(k, "window-ms")) {
		w = strtoull(v, NULL, 10);
		rc->window_ms = (int64_t)w;
		return w >= 1 && w <= 86400000 ? 0 : -ERANGE;
	}
	return 1;
}

static int parse_args(struct recount *rc, int argc, char **argv)
{
	char err[512];
	bool set_rules = false;
	int i = 1, r;

	tally_config_defaults(&rc->cfg);
	rc->to = UINT64_MAX;
	if (argc > 2 && !strcmp(argv[1], "-c")) {
		if (tally_config_load(&rc->cfg, argv[2], err, sizeof(err)) != 0)
			return fprintf(stderr, "tally-recount: %s\n", err), -EINVAL;
		i = 3;
	}
	for (; i < argc; i++) {
		char *k = argv[i], *eq, *v;

		if (!strcmp(k, "-h") || !strcmp(k, "--help"))
			return usage(stdout), 1;
		if (strncmp(k, "--", 2) != 0)
			return fprintf(stderr, "tally-recount: unexpected \"%s\"\n", k), -EINVAL;
		k += 2;
		if (!strcmp(k, "replace")) {
			rc->replace = true;
			continue;
		}
		if ((eq = strchr(k, '=')) != NULL) {
			*eq = '\0';
			v = eq + 1;
		} else if (i + 1 < argc) {
			v = argv[++i];
		} else {
			return fprintf(stderr, "tally-recount: --%s needs a value\n", k), -EINVAL;
		}
		r = own_option(rc, k, v, &set_rules);
		if (r < 0)
			return fprintf(stderr, "tally-recount: --%s: bad value \"%s\"\n", k, v), r;
		if (r == 1 && tally_config_set(&rc->cfg, k, v, err, sizeof(err)) != 0)
			return fprintf(stderr, "tally-recount: %s\n", err), -EINVAL;
	}
	if (!rc->archive[0])
		snprintf(rc->archive, sizeof(rc->archive), "%s", rc->cfg.archive_dir);
	if (!set_rules)
		snprintf(rc->rules_file, sizeof(rc->rules_file), "%s", rc->cfg.rules_file);
	if (!rc->window_ms)
		rc->window_ms = (int64_t)rc->cfg.window_ms;
	if (!rc->archive[0])
		return fprintf(stderr, "tally-recount: no archive: give --archive DIR or a config "
			       "with archive_dir\n"), -EINVAL;
	if (rc->from >= rc->to)
		return fprintf(stderr, "tally-recount: empty range: --from %llu is not before "
			       "--to %llu\n", (unsigned long long)rc->from,
			       (unsigned long long)rc->to), -EINVAL;
	return 0;
}

/* The worker's parameters from the config, the recount's window and rules. */
static int setup_params(struct recount *rc)
{
	char err[512];

	rc->p.ports[0] = (uint16_t)rc->cfg.tly1_port;
	rc->p.ports[1] = (uint16_t)rc->cfg.statsd_port;
	rc->p.window_ms = rc->window_ms;
	rc->p.lateness_ms = rc->cfg.lateness_ms;
	rc->p.future_ms = rc->cfg.future_ms;
	if (tally_config_mac_keys(rc->cfg.mac_keys, rc->p.mac.present, rc->p.mac.key, err,
				  sizeof(err)) != 0)
		return fprintf(stderr, "tally-recount: %s\n", err), -EINVAL;
	if (!rc->rules_file[0])
		return 0;
	if (tally_rules_load(rc->rules_file, 1, &rc->rules, err, sizeof(err)) != 0)
		return fprintf(stderr, "tally-recount: %s\n", err), -EINVAL;
	if (tally_rcache_init(&rc->rc, TALLY_RCACHE_ENTRIES, TALLY_RCACHE_ARENA, TALLY_NODE_ANY))
		return fprintf(stderr, "tally-recount: out of memory for the rules cache\n"), -ENOMEM;
	rc->p.rules = rc->rules;
	return 0;
}

static int setup_state(struct recount *rc)
{
	rc->evb.cap = EVENTS;
	rc->evb.arena_cap = ARENA;
	rc->evb.ev = calloc(EVENTS, sizeof(*rc->evb.ev));
	rc->evb.arena = malloc(ARENA);
	rc->pbuf = malloc(PBUF);
	rc->tab = tally_wtab_create_ext((uint32_t)rc->cfg.table_rows, (uint32_t)rc->cfg.sketch_rows,
					TALLY_NODE_ANY);
	tally_gauges_init(&rc->gauges);
	rc->dedup = tally_dedup_create(rc->cfg.dedup_capacity, rc->cfg.dedup_horizon_ms);
	if (rc->evb.ev == NULL || rc->evb.arena == NULL || rc->pbuf == NULL || rc->tab == NULL ||
	    rc->dedup == NULL)
		return fprintf(stderr, "tally-recount: out of memory (table_rows %llu, "
			       "dedup_capacity %llu)\n", (unsigned long long)rc->cfg.table_rows,
			       (unsigned long long)rc->cfg.dedup_capacity), -ENOMEM;
	tally_dedup_set_writers(rc->dedup, 1);
	rc->sweep = tally_dedup_sweep_rate(rc->dedup, DEDUP_TICK_MS);
	return 0;
}

static int setup_sink(struct recount *rc)
{
	char err[512];
	time_t t = time(NULL);
	int64_t last;

	if (!rc->appliance[0])
		strftime(rc->appliance, sizeof(rc->appliance), "recount-%Y%m%dT%H%M%SZ", gmtime(&t));
	rc->sink = tally_sink_open(&rc->cfg, err, sizeof(err));
	if (rc->sink == NULL)
		return fprintf(stderr, "tally-recount: %s\n", err), -EIO;
	last = rc->sink->ops->last_seq(rc->sink, rc->appliance);
	if (last < 0)
		return fprintf(stderr, "tally-recount: sink %s: %s\n", rc->sink->name,
			       rc->sink->err), -EIO;
	rc->seq = (uint64_t)last + 1; /* a rerun under one id adds after it */
	tally_batch_init(&rc->b, rc->appliance, rc->window_ms);
	return 0;
}

/* An empty archive would replace the windows by nothing: refused. One that
 * starts after the first window's events could arrive (retention, or tallyd
 * not archiving yet: the listing cannot tell which) is warned about. */
static int check_archive_covers(struct recount *rc)
{
	struct tally_archive_info in = {0};
	uint64_t need = rc->from > rc->cfg.future_ms ? rc->from - rc->cfg.future_ms : 0;
	int r = tally_archive_info(rc->archive, &in);

	if (r < 0 || in.segments == 0)
		return fprintf(stderr, "tally-recount: --replace: archive %s has no segments%s%s: "
			       "replacing would delete the windows' rows\n", rc->archive,
			       r < 0 ? ": " : "", r < 0 ? strerror(-r) : ""), -ENODATA;
	if (in.oldest_ms > need)
		fprintf(stderr, "tally-recount: --replace: warning: the archive starts at %llu, after "
			"%llu (from - future_ms): events that arrived before it (deleted by "
			"retention, or before archive_dir was set) are not in the replaced rows\n",
			(unsigned long long)in.oldest_ms, (unsigned long long)need);
	return 0;
}

/*
 * --replace: only whole windows, only on a sink that can, only with bounded
 * event times (else no archive range holds all of a window's events), and only
 * windows tallyd can no longer add to. Then the chunk size: at least the span
 * a chunk reads around its windows, so the reads overlap at most 2x.
 */
static int check_replace(struct recount *rc)
{
	const struct tally_config *c = &rc->cfg;
	uint64_t w = (uint64_t)rc->window_ms, span, chunk_ms, closed, now = wall_ms();

	if (rc->sink->ops->replace == NULL)
		return fprintf(stderr, "tally-recount: --replace: sink %s cannot replace a window's "
			       "rows (SQLite and PostgreSQL can; Redis keeps no index of a window's "
			       "keys, so finding them would take a SCAN of the whole keyspace outside "
			       "any transaction): recount without --replace, or into an SQL sink\n",
			       rc->sink->name), -ENOTSUP;
	if (rc->to == UINT64_MAX || rc->from % w != 0 || rc->to % w != 0)
		return fprintf(stderr, "tally-recount: --replace: --from and --to must be window "
			       "bounds, multiples of window_ms %llu\n", (unsigned long long)w), -EINVAL;
	if (c->lateness_ms == 0 || c->future_ms == 0)
		return fprintf(stderr, "tally-recount: --replace: lateness_ms and future_ms must be "
			       "on (not 0): with either off an event of any time can land in a "
			       "window, so no archive range holds all of a window's events\n"), -EINVAL;
	if (check_archive_covers(rc) < 0)
		return -ENODATA;
	closed = rc->to + c->lateness_ms + 2 * c->flush_interval_ms + REPLACE_GRACE_MS;
	if (now < closed)
		return fprintf(stderr, "tally-recount: --replace: the windows before %llu still take "
			       "events or flushes until %llu (to + lateness_ms + 2 x "
			       "flush_interval_ms + %d ms), %llu s from now: rerun then\n",
			       (unsigned long long)rc->to, (unsigned long long)closed,
			       REPLACE_GRACE_MS, (unsigned long long)(closed - now + 999) / 1000),
		       -EAGAIN;
	span = c->future_ms + c->dedup_horizon_ms + c->lateness_ms;
	chunk_ms = (span + w - 1) / w * w;
	rc->nchunks = (rc->to - rc->from + chunk_ms - 1) / chunk_ms;
	return (int)(chunk_ms / w); /* windows per chunk */
}

static int cmp_win(const void *a, const void *b)
{
	int64_t x = ((const struct tally_batch_row *)a)->win_start;
	int64_t y = ((const struct tally_batch_row *)b)->win_start;

	return (x > y) - (x < y);
}

/* The chunk's table, window by window, each replacing the sink's rows of that
 * window: an empty window too (its live rows go). */
static int replace_windows(struct recount *rc)
{
	struct tally_batch *b = &rc->b;
	uint64_t w = (uint64_t)rc->window_ms;
	uint32_t i = 0;

	tally_batch_clear(b);
	if (tally_batch_add_wtab(b, rc->tab) < 0)
		return fprintf(stderr, "tally-recount: out of memory for a batch of %u rows\n",
			       rc->tab->nrows), -ENOMEM;
	tally_wtab_reset(rc->tab);
	qsort(b->rows, b->nrows, sizeof(b->rows[0]), cmp_win);
	while (i < b->nrows && b->rows[i].win_start < (int64_t)rc->chunk_from)
		i++;
	for (uint64_t ws = rc->chunk_from; ws < rc->chunk_to; ws += w) {
		struct tally_batch v = *b; /* a view of this window's rows */
		uint32_t n = 0;
		int r;

		while (i + n < b->nrows && b->rows[i + n].win_start == (int64_t)ws)
			n++;
		v.rows = b->rows + i;
		v.nrows = n;
		v.seq = rc->seq++;
		v.now_ms = (int64_t)wall_ms();
		r = rc->sink->ops->replace(rc->sink, &v, (int64_t)ws);
		if (r < 0)
			return fprintf(stderr, "tally-recount: sink %s: replacing window %llu: %s\n",
				       rc->sink->name, (unsigned long long)ws, rc->sink->err), r;
		rc->windows++;
		rc->batches += r == TALLY_SINK_APPLIED;
		rc->rows += r == TALLY_SINK_APPLIED ? n : 0;
		i += n;
	}
	return 0;
}

/* One chunk of windows [chunk_from, chunk_to) from a fresh table and dedup. */
static int replace_chunk(struct recount *rc, struct tally_archive_scan_report *rep)
{
	const struct tally_config *c = &rc->cfg;
	uint64_t before = c->future_ms + c->dedup_horizon_ms;
	uint64_t from = rc->chunk_from > before ? rc->chunk_from - before : 0;
	int r;

	tally_dedup_destroy(rc->dedup);
	rc->dedup = tally_dedup_create(c->dedup_capacity, c->dedup_horizon_ms);
	if (rc->dedup == NULL)
		return fprintf(stderr, "tally-recount: out of memory for dedup\n"), -ENOMEM;
	tally_dedup_set_writers(rc->dedup, 1);
	tally_wtab_reset(rc->tab);
	rc->batch_ms = rc->last_tick = 0;
	r = tally_archive_scan(rc->archive, from, rc->chunk_to + c->lateness_ms, on_record, rc,
			       rep, stderr, progress);
	if (r < 0)
		return fprintf(stderr, "tally-recount: archive %s: %s\n", rc->archive,
			       strerror(-r)), r;
	apply(rc);
	return rc->err ? rc->err : replace_windows(rc);
}

static int replace_all(struct recount *rc, struct tally_archive_scan_report *rep)
{
	int per = check_replace(rc), r = 0;
	uint64_t chunk_ms;

	if (per < 0)
		return per;
	chunk_ms = (uint64_t)per * (uint64_t)rc->window_ms;
	for (rc->chunk = 0; rc->chunk < rc->nchunks && r == 0; rc->chunk++) {
		rc->chunk_from = rc->from + rc->chunk * chunk_ms;
		rc->chunk_to = rc->chunk_from + chunk_ms < rc->to ? rc->chunk_from + chunk_ms : rc->to;
		r = replace_chunk(rc, rep);
	}
	return r;
}

static void summary(const struct recount *rc, const struct tally_archive_scan_report *rep,
		    double secs)
{
	fprintf(stderr, "tally-recount: %s [%llu, %llu) window %lld ms%s%s -> sink %s as %s\n",
		rc->archive, (unsigned long long)rc->from, (unsigned long long)rc->to,
		(long long)rc->window_ms, rc->rules ? ", rules " : "",
		rc->rules ? rc->rules_file : "", rc->cfg.sink, rc->appliance);
	if (rc->replace)
		fprintf(stderr, "replaced_windows %llu\nchunks %llu\n(counters count each chunk's "
			"reads: the chunks' reads overlap)\n", (unsigned long long)rc->windows,
			(unsigned long long)rc->nchunks);
	fprintf(stderr, "segments %llu\nblocks %llu\nrecords %llu\ncorrupt_blocks %llu\n"
		"corrupt_headers %llu\ntorn_tails %llu\nbatches %llu\nrows %llu\nseconds %.3f\n",
		(unsigned long long)rep->segments, (unsigned long long)rep->blocks,
		(unsigned long long)rep->records, (unsigned long long)rep->corrupt_blocks,
		(unsigned long long)rep->corrupt_headers, (unsigned long long)rep->torn_tails,
		(unsigned long long)rc->batches, (unsigned long long)rc->rows, secs);
	/* The worker's counters that moved, in tallyd's exit-report form. */
	for (unsigned c = 0; c < TALLY_C_MAX; c++)
		if (rc->ctr[c])
			fprintf(stderr, "%s %llu  %s\n", tally_counter_names[c],
				(unsigned long long)rc->ctr[c], tally_counter_help[c]);
}

static void cleanup(struct recount *rc)
{
	if (rc->sink != NULL)
		rc->sink->ops->close(rc->sink);
	tally_batch_free(&rc->b);
	tally_gauges_free(&rc->gauges);
	tally_wtab_destroy(rc->tab);
	tally_dedup_destroy(rc->dedup);
	if (rc->rules != NULL)
		tally_rcache_fini(&rc->rc);
	tally_rules_free(rc->rules);
	free(rc->evb.ev);
	free(rc->evb.arena);
	free(rc->pbuf);
}

int main(int argc, char **argv)
{
	static struct recount rc;
	struct tally_archive_scan_report rep = {0};
	uint64_t t0 = wall_ms();
	int r = parse_args(&rc, argc, argv);

	if (r != 0)
		return r == 1 ? EXIT_SUCCESS : 2;
	rc.tty = isatty(STDERR_FILENO);
	if (setup_params(&rc) < 0 || setup_state(&rc) < 0 || setup_sink(&rc) < 0) {
		cleanup(&rc);
		return EXIT_FAILURE;
	}
	if (rc.replace) {
		r = replace_all(&rc, &rep);
	} else {
		rc.nchunks = 1;
		r = tally_archive_scan(rc.archive, rc.from, rc.to, on_record, &rc, &rep, stderr,
				       progress);
		if (r < 0)
			fprintf(stderr, "tally-recount: archive %s: %s\n", rc.archive, strerror(-r));
		apply(&rc);
		if (r == 0 && rc.err == 0)
			rc.err = write_table(&rc);
	}
	summary(&rc, &rep, (double)(wall_ms() - t0) / 1000);
	cleanup(&rc);
	return r == 0 && rc.err == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
