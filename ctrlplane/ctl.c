/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control API: a Unix stream socket that takes one command line per
 * connection and answers one JSON document (jansson). tallyctl is its client.
 * Commands: stats, status, flush, stop, config [KEY], config set KEY VALUE,
 * rules show | reload [FILE] | test [--statsd] KEY, sink, spool [replay],
 * where KEY, top, get, acl add|del|list, ratelimit set|show (the XDP front's
 * maps, live), drain [status], resume (and a test hook, debug). Each peer's
 * credentials decide which of them it may use (ctl_access.h). Stats and
 * status come from a snapshot (snapshot.h) that only loads atomics, the one
 * the metrics thread is also given. Served from the main lcore's event loop
 * (loop.h), never from a worker, never blocking it.
 */
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <sys/epoll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ck_pr.h>
#include <jansson.h>
#include <sqlite3.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include "ctl_access.h"
#include "dedup.h"
#include "log.h"
#include "live.h"
#include "metrics.h"
#include "rules.h"
#include "tallyd.h"
#include "window.h"
#include "timeutil.h"

/* The spools' gauges and damage counts, summed over the writer's lanes. */
static void spool_counters(const struct tally_daemon *d, uint64_t *out)
{
	for (unsigned i = 0; i < d->wr.nlanes; i++) {
		const struct tally_lane *l = &d->wr.lanes[i];
		struct tally_spool_stats st;

		if (l->spool == NULL)
			continue;
		tally_spool_stats(l->spool, &st);
		out[TALLY_C_SPOOL_RECORDS] += st.records;
		out[TALLY_C_SPOOL_BYTES] += st.bytes;
		out[TALLY_C_SPOOL_CORRUPT] += st.corrupt;
		out[TALLY_C_SPOOL_TORN] += st.torn;
		out[TALLY_C_SPOOL_FULL_REFUSALS] += st.full_refusals;
		out[TALLY_C_BREAKER_OPENS] += l->br.opens;
	}
	out[TALLY_C_FLUSH_PENDING] = tally_writer_queued(&d->wr);
}


/* Raise *v to x (several threads read counters: ctl, metrics, the exit). */
static void raise_to(uint64_t *v, uint64_t x)
{
	uint64_t cur = ck_pr_load_64(v);

	while (x > cur && !ck_pr_cas_64_value(v, cur, x, &cur))
		;
}

/* What the kernel says of a worker thread: how often it took the thread's CPU
 * for another task, and how long the thread waited runnable meanwhile. A
 * busy-polling worker never sleeps, so both are time the RX queue went
 * unpolled for reasons outside Tally. */
static void worker_sched(struct tally_worker *w, uint64_t out[TALLY_C_MAX])
{
	int tid = ck_pr_load_int(&w->tid);
	unsigned long long run, wait, n;
	char path[64], line[128];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", tid);
	if (tid != 0 && (f = fopen(path, "r")) != NULL) {
		if (fscanf(f, "%llu %llu", &run, &wait) == 2)
			raise_to(&w->sched_wait_ns, wait);
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
	if (tid != 0 && (f = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "nonvoluntary_ctxt_switches: %llu", &n) == 1)
				raise_to(&w->sched_preempted, n);
		fclose(f);
	}
	out[TALLY_C_WORKER_PREEMPTED] += ck_pr_load_64(&w->sched_preempted);
	out[TALLY_C_WORKER_CPU_TAKEN_US] += ck_pr_load_64(&w->sched_wait_ns) / 1000;
}

void tally_daemon_counters(const struct tally_daemon *d, uint64_t out[TALLY_C_MAX])
{
	struct rte_eth_stats ps;

	memset(out, 0, sizeof(uint64_t) * TALLY_C_MAX);
	for (unsigned i = 0; i < d->nworkers; i++)
		for (unsigned c = 0; c < TALLY_C_MAX; c++)
			out[c] += ck_pr_load_64((uint64_t *)&d->workers[i].ctr.v[c]);
	for (unsigned c = 0; c < TALLY_C_MAX; c++)
		out[c] += ck_pr_load_64((uint64_t *)&d->fl.ctr.v[c]) +
			  ck_pr_load_64((uint64_t *)&d->wr.ctr.v[c]);
	spool_counters(d, out);
	tally_archiver_counters(&d->arch, out);
	out[TALLY_C_DEDUP_GEN_HELD] = ck_pr_load_64((uint64_t *)&d->sh.dedup->ctl.held_back);
	out[TALLY_C_CTL_LATE_TICKS] = d->loop.late;
	out[TALLY_C_COMMITTED_KNOWN] = d->committed ? ck_pr_load_64((uint64_t *)&d->committed->n) : 0;
	out[TALLY_C_COMMITTED_REFRESHES] = ck_pr_load_64((uint64_t *)&d->refresher.refreshes);
	out[TALLY_C_COMMITTED_REFRESH_ERRORS] = ck_pr_load_64((uint64_t *)&d->refresher.errors);
	out[TALLY_C_CTL_REQUESTS] = d->ctl_requests;
	out[TALLY_C_CTL_BAD_REQUESTS] = d->ctl_bad_requests;
	out[TALLY_C_CTL_CLIENT_TIMEOUTS] = d->ctl_client_timeouts;
	out[TALLY_C_CTL_REFUSED] = d->ctl_refused;
	out[TALLY_C_CTL_DENIED] = d->ctl_denied;
	out[TALLY_C_CTL_DRAINED] = d->drain.state != TALLY_DRAIN_OFF;
	out[TALLY_C_CLOCK_STEPS] = d->sh.clock.steps;
	out[TALLY_C_RULES_RELOADS] = d->rules_reloads;
	out[TALLY_C_RULES_RELOAD_ERRORS] = d->rules_reload_errors;
	out[TALLY_C_CONFIG_CHANGES] = d->config_changes;
	tally_daemon_xdp_counters(d, out);
	out[TALLY_C_EXC_FROM_KERNEL] = d->exc_from_kernel;
	out[TALLY_C_EXC_DROPPED] += d->exc_dropped;
	for (unsigned p = 0; p < d->nports; p++)
		if (rte_eth_stats_get(d->ports[p], &ps) == 0) {
			out[TALLY_C_PORT_IMISSED] += ps.imissed;
			out[TALLY_C_PORT_NOMBUF] += ps.rx_nombuf;
			out[TALLY_C_PORT_IERRORS] += ps.ierrors;
		}
	out[TALLY_C_WATCHDOG_STALLS] = d->wd.stalls;
	out[TALLY_C_WATCHDOG_SINK_STALLS] = d->wd.sink_stalls;
	out[TALLY_C_WATCHDOG_RX_LOST] = d->wd.rx_lost;
	/* the cache is the workers' own, written with CAS only */
	for (unsigned i = 0; i < d->nworkers; i++)
		worker_sched((struct tally_worker *)&d->workers[i], out);
}

static const char *last_sink_error(const struct tally_daemon *d)
{
	for (unsigned i = 0; i < d->wr.nlanes; i++)
		if (d->wr.lanes[i].last_err[0] != '\0')
			return d->wr.lanes[i].last_err;
	return "";
}

/* The sinks as one: the worst breaker of the endpoints, their spools summed. */
static void snapshot_sink(const struct tally_daemon *d, struct tally_sink_state *st)
{
	enum tally_breaker_state worst = TALLY_BREAKER_CLOSED;

	memset(st, 0, sizeof(*st));
	snprintf(st->name, sizeof(st->name), "%.31s", d->cfg.sink);
	snprintf(st->state, sizeof(st->state), "%s",
		 d->wd.sink_stalled ? "stalled" : ck_pr_load_int((int *)&d->wr.sink_down) ? "down" : "up");
	pthread_mutex_lock((pthread_mutex_t *)&d->wr.lock);
	snprintf(st->last_err, sizeof(st->last_err), "%s", last_sink_error(d));
	pthread_mutex_unlock((pthread_mutex_t *)&d->wr.lock);
	st->has_spool = true;
	for (unsigned i = 0; i < d->wr.nlanes; i++) {
		const struct tally_lane *l = &d->wr.lanes[i];
		struct tally_spool_stats sp;

		worst = l->br.state > worst ? l->br.state : worst;
		if (l->spool == NULL)
			continue;
		tally_spool_stats(l->spool, &sp);
		st->spool.records += sp.records;
		st->spool.bytes += sp.bytes;
		st->spool.appended += sp.appended;
		st->spool.replayed += sp.replayed;
		st->spool.corrupt += sp.corrupt;
		st->spool.full_refusals += sp.full_refusals;
		st->spool.oldest_age_ms = sp.oldest_age_ms > st->spool.oldest_age_ms ?
					  sp.oldest_age_ms : st->spool.oldest_age_ms;
		st->spool.full_alarm |= sp.full_alarm;
		st->spool.age_alarm |= sp.age_alarm;
	}
	snprintf(st->breaker, sizeof(st->breaker), "%s", tally_breaker_state_name(worst));
}

void tally_daemon_snapshot(const struct tally_daemon *d, struct tally_snap *s)
{
	size_t tbytes = tally_wtab_bytes(d->workers[0].tables[0]);

	tally_daemon_counters(d, s->v);
	s->nworkers = d->nworkers;
	for (unsigned i = 0; i < d->nworkers; i++) {
		const struct tally_worker *w = &d->workers[i];
		struct tally_snap_worker *sw = &s->w[i];

		sw->id = w->id;
		sw->lcore = w->lcore;
		sw->socket = rte_lcore_to_socket_id(w->lcore);
		sw->nqueues = w->nqueues;
		sw->health = tally_watchdog_worker(d, i);
		for (unsigned c = 0; c < TALLY_C_MAX; c++)
			sw->v[c] = ck_pr_load_64((uint64_t *)&w->ctr.v[c]);
	}
	s->flusher = tally_watchdog_flusher(d);
	tally_hist_load(&d->fl.flush_hist, &s->flush_hist);
	tally_hist_load(&d->wr.sink_hist, &s->sink_hist);
	s->uptime_ms = tally_mono_ms() - d->start_ms;
	s->dedup_capacity = d->cfg.dedup_capacity;
	s->dedup_bytes = tally_dedup_bytes(d->sh.dedup);
	s->dedup_gen = tally_dedup_gen(d->sh.dedup);
	s->table_rows = d->cfg.table_rows;
	s->table_bytes = tbytes * TALLY_TABLES_PER_WORKER * d->nworkers;
	s->version = TALLY_VERSION;
	snapshot_sink(d, &s->sink);
}

void tally_daemon_publish(struct tally_daemon *d)
{
	tally_daemon_snapshot(d, &d->scratch);
	pthread_mutex_lock(&d->snap_lock);
	tally_snap_copy(&d->published, &d->scratch);
	pthread_mutex_unlock(&d->snap_lock);
}

static json_t *counters_json(const uint64_t *v)
{
	json_t *o = json_object();

	for (unsigned c = 0; c < TALLY_C_MAX; c++)
		json_object_set_new(o, tally_counter_names[c], json_integer((json_int_t)v[c]));
	return o;
}

static json_t *workers_json(const struct tally_snap *s)
{
	json_t *a = json_array();

	for (unsigned i = 0; i < s->nworkers; i++) {
		const struct tally_snap_worker *w = &s->w[i];

		json_array_append_new(a, json_pack("{s:i, s:i, s:i, s:i, s:s, s:o}", "id", (int)w->id,
						   "lcore", (int)w->lcore, "socket", (int)w->socket,
						   "queues", (int)w->nqueues,
						   "state", tally_health_names[w->health],
						   "counters", counters_json(w->v)));
	}
	return a;
}

static json_t *spool_json(const struct tally_spool_stats *sp)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:s}",
			 "records", (json_int_t)sp->records, "bytes", (json_int_t)sp->bytes,
			 "appended", (json_int_t)sp->appended, "replayed", (json_int_t)sp->replayed,
			 "corrupt", (json_int_t)sp->corrupt, "full_refusals",
			 (json_int_t)sp->full_refusals, "oldest_age_ms", (json_int_t)sp->oldest_age_ms,
			 "full_alarm", sp->full_alarm, "age_alarm", sp->age_alarm,
			 "last_err", sp->last_err);
}

/* Sink, breaker ("" = none) and spool (null = none). */
static json_t *sink_json(const struct tally_sink_state *st)
{
	return json_pack("{s:s, s:s, s:s, s:o, s:s}", "name", st->name, "state", st->state,
			 "breaker", st->breaker[0] ? st->breaker : "none",
			 "spool", st->has_spool ? spool_json(&st->spool) : json_null(),
			 "last_error", st->last_err);
}

json_t *tally_stats_json(const struct tally_snap *s)
{
	return json_pack("{s:o, s:o, s:{s:I, s:I, s:i}, s:{s:I, s:I}, s:s, s:o, s:s, s:I, s:s}",
			 "counters", counters_json(s->v), "workers", workers_json(s),
			 "dedup", "capacity", (json_int_t)s->dedup_capacity,
			 "bytes", (json_int_t)s->dedup_bytes, "generation", (int)s->dedup_gen,
			 "tables", "rows_per_table", (json_int_t)s->table_rows,
			 "bytes", (json_int_t)s->table_bytes,
			 "sink_last_error", s->sink.last_err, "sink", sink_json(&s->sink),
			 "flusher", tally_health_names[s->flusher],
			 "uptime_ms", (json_int_t)s->uptime_ms, "version", s->version);
}

static json_t *stats_json(struct tally_daemon *d)
{
	tally_daemon_snapshot(d, &d->scratch);
	return tally_stats_json(&d->scratch);
}

static json_t *link_json(uint16_t port)
{
	struct rte_eth_dev_info info;
	struct rte_eth_link link;
	char name[RTE_ETH_NAME_MAX_LEN] = "?";
	const char *drv = "?";

	if (rte_eth_dev_info_get(port, &info) == 0)
		drv = info.driver_name;
	rte_eth_dev_get_name_by_port(port, name);
	memset(&link, 0, sizeof(link));
	rte_eth_link_get_nowait(port, &link);
	return json_pack("{s:i, s:s, s:s, s:s, s:I, s:s}", "id", (int)port, "name", name,
			 "driver", drv, "link", link.link_status ? "up" : "down",
			 "speed_mbps", (json_int_t)link.link_speed, "duplex",
			 link.link_duplex == RTE_ETH_LINK_FULL_DUPLEX ? "full" : "half");
}

static json_t *status_json(struct tally_daemon *d)
{
	struct tally_snap *s = &d->scratch;
	json_t *ws = json_array(), *ports = json_array();

	tally_daemon_snapshot(d, s);
	for (unsigned i = 0; i < s->nworkers; i++)
		json_array_append_new(ws, json_pack("{s:i, s:i, s:i, s:i, s:s}", "id", (int)s->w[i].id,
						    "lcore", (int)s->w[i].lcore, "socket",
						    (int)s->w[i].socket, "queues", (int)s->w[i].nqueues,
						    "state", tally_health_names[s->w[i].health]));
	json_array_append_new(ports, link_json(d->port));
	return json_pack("{s:s, s:s, s:s, s:I, s:s?, s:i, s:o, s:o, s:s, s:s, s:o, s:s, s:I, s:I}",
			 "state", d->stopping ? "stopping" : tally_drain_state_name(d->drain.state),
			 "version", TALLY_VERSION,
			 "appliance", d->cfg.appliance_id, "uptime_ms", (json_int_t)s->uptime_ms,
			 "config_file", d->config_file, "main_lcore", (int)rte_get_main_lcore(),
			 "workers", ws, "ports", ports, "flusher", tally_health_names[s->flusher],
			 "metrics_addr", tally_metrics_bound(d), "sink", sink_json(&s->sink),
			 "ctl_socket", d->cfg.ctl_socket,
			 "next_batch_seq", (json_int_t)ck_pr_load_64((uint64_t *)&d->wr.seq_floor),
			 "window_ms", (json_int_t)d->cfg.window_ms);
}

static json_t *config_json(const struct tally_daemon *d, const char *key)
{
	char buf[TALLY_CFG_STR_MAX * 4];
	json_t *o;

	if (key != NULL) {
		if (tally_config_get(&d->cfg, key, buf, sizeof(buf)) != 0)
			return json_pack("{s:s}", "error", "unknown config key");
		return json_pack("{s:s}", key, buf);
	}
	o = json_object();
	for (size_t i = 0; i < tally_cfg_nkeys; i++) {
		tally_config_get(&d->cfg, tally_cfg_keys[i].name, buf, sizeof(buf));
		json_object_set_new(o, tally_cfg_keys[i].name, json_string(buf));
	}
	return o;
}

/* One lane of the sink writer: its endpoint, breaker and counts. */
static json_t *lane_json(struct tally_daemon *d, const struct tally_lane *l)
{
	json_t *o;

	pthread_mutex_lock(&d->wr.lock);
	o = json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "name", l->name,
		      "breaker", tally_breaker_state_name(l->br.state), "failures_in_a_row",
		      (int)l->br.failures, "breaker_opens", (json_int_t)l->br.opens,
		      "written", (json_int_t)l->written, "skipped", (json_int_t)l->skipped,
		      "errors", (json_int_t)l->errors, "spooled", (json_int_t)l->spooled,
		      "replayed", (json_int_t)l->replayed, "last_error", l->last_err);
	pthread_mutex_unlock(&d->wr.lock);
	json_object_set_new(o, "last_ok_ms", json_integer((json_int_t)l->last_ok_ms));
	return o;
}

static json_t *sink_cmd_json(struct tally_daemon *d)
{
	json_t *a = json_array();

	for (unsigned i = 0; i < d->wr.nlanes; i++)
		json_array_append_new(a, lane_json(d, &d->wr.lanes[i]));
	return json_pack("{s:s, s:o}", "sink", d->cfg.sink, "endpoints", a);
}

static json_t *spool_cmd_json(struct tally_daemon *d)
{
	json_t *a = json_array();

	for (unsigned i = 0; i < d->wr.nlanes; i++) {
		struct tally_spool_stats st;

		tally_spool_stats(d->wr.lanes[i].spool, &st);
		json_array_append_new(a, json_pack(
			"{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:s}",
			"name", d->wr.lanes[i].name, "records", (json_int_t)st.records,
			"bytes", (json_int_t)st.bytes, "oldest_age_ms", (json_int_t)st.oldest_age_ms,
			"appended", (json_int_t)st.appended, "replayed", (json_int_t)st.replayed,
			"corrupt", (json_int_t)st.corrupt, "torn", (json_int_t)st.torn,
			"full_refusals", (json_int_t)st.full_refusals, "full_alarm", st.full_alarm,
			"age_alarm", st.age_alarm, "last_error", st.last_err));
	}
	return json_pack("{s:s, s:I, s:I, s:o}", "dir", d->spool_dir,
			 "max_bytes", (json_int_t)d->cfg.spool_max_bytes,
			 "max_age_ms", (json_int_t)d->cfg.spool_max_age_ms, "lanes", a);
}

static json_t *spool_cmd(struct tally_daemon *d, const char *arg)
{
	if (arg == NULL)
		return spool_cmd_json(d);
	if (strcmp(arg, "replay") == 0) {
		ck_pr_store_int(&d->wr.force, 1);
		return json_pack("{s:s}", "result", "replay forced: every endpoint tries its spool now");
	}
	return json_pack("{s:s}", "error", "usage: spool [replay]");
}

static json_t *where_json(struct tally_daemon *d, const char *key)
{
	if (key == NULL || key[0] == '\0' || strlen(key) > 255)
		return json_pack("{s:s}", "error", "usage: where KEY (1..255 bytes)");
	return json_pack("{s:s, s:s}", "key", key, "endpoint",
			 tally_writer_where(&d->wr, (const uint8_t *)key, strlen(key)));
}


static json_t *config_set_json(struct tally_daemon *d, char *arg)
{
	char *value = arg != NULL ? strchr(arg, ' ') : NULL, err[512], now[TALLY_CFG_STR_MAX * 4];

	if (value == NULL)
		return json_pack("{s:s}", "error", "usage: config set KEY VALUE");
	*value++ = '\0';
	if (tally_live_set(d, arg, value, err, sizeof(err)) != 0)
		return json_pack("{s:s}", "error", err);
	tally_config_get(&d->cfg, arg, now, sizeof(now));
	return json_pack("{s:s}", arg, now);
}

static json_t *rules_show_json(const struct tally_daemon *d)
{
	const struct tally_rules *rs = d->rules;
	json_t *a = json_array();

	for (unsigned i = 0; rs != NULL && i < rs->n; i++) {
		const struct tally_rule *r = &rs->rule[i];
		struct tally_rule_ctr c = tally_rules_ctr_sum(rs, i);

		json_array_append_new(a, json_pack("{s:i, s:i, s:s, s:s, s:s?, s:I, s:I, s:I, s:I}",
			"id", (int)i, "line", (int)r->line, "action", tally_rule_action_name(r->action),
			"pattern", r->pattern, "arg", r->arg, "matched", (json_int_t)c.matched,
			"dropped", (json_int_t)c.dropped, "renamed", (json_int_t)c.renamed,
			"sampled_out", (json_int_t)c.sampled_out));
	}
	return json_pack("{s:s, s:I, s:o}", "file", rs != NULL ? rs->file : "",
			 "generation", (json_int_t)(rs != NULL ? rs->gen : 0), "rules", a);
}

/* "test [--statsd] KEY": which rule, and what the key becomes; the control
 * thread's own scratch (the last one), never a worker's. */
static json_t *rules_test_json(const struct tally_daemon *d, char *arg)
{
	const struct tally_rules *rs = d->rules;
	bool statsd = arg != NULL && strncmp(arg, "--statsd ", 9) == 0;
	const char *key = statsd ? arg + 9 : arg, *result;
	struct tally_decision dec = {.rule = -1, .action = TALLY_RULE_KEEP};
	uint8_t out[TALLY_KEY_MAX + 1];
	pcre2_match_data *md;

	if (key == NULL || key[0] == '\0' || strlen(key) > TALLY_KEY_MAX)
		return json_pack("{s:s}", "error", "usage: rules test [--statsd] KEY (1..255 bytes)");
	md = pcre2_match_data_create(10, NULL);
	if (rs != NULL && (md == NULL || tally_rules_decide(rs, rs->scratch[rs->nworkers], md,
			(const uint8_t *)key, (uint32_t)strlen(key), statsd, out, &dec) != 0)) {
		pcre2_match_data_free(md);
		return json_pack("{s:s}", "error", "Hyperscan scan failed");
	}
	pcre2_match_data_free(md);
	out[dec.action == TALLY_RULE_RENAME ? dec.key_len : 0] = '\0';
	result = dec.action == TALLY_RULE_DROP ? "(dropped)"
		 : dec.action == TALLY_RULE_RENAME && dec.key_len ? (const char *)out : key;
	return json_pack("{s:s, s:i, s:i, s:s, s:s, s:i}", "key", key, "rule", dec.rule,
			 "line", dec.rule >= 0 ? (int)rs->rule[dec.rule].line : 0, "action",
			 dec.rule >= 0 ? tally_rule_action_name(dec.action) : "keep (no rule)",
			 "result", result, "sample_n",
			 dec.action == TALLY_RULE_SAMPLE ? (int)rs->rule[dec.rule].sample_n : 1);
}

static json_t *rules_json(struct tally_daemon *d, char *arg)
{
	char *rest = arg != NULL ? strchr(arg, ' ') : NULL, err[512];
	int r;

	if (rest != NULL)
		*rest++ = '\0';
	if (arg != NULL && strcmp(arg, "show") == 0)
		return rules_show_json(d);
	if (arg != NULL && strcmp(arg, "test") == 0)
		return rules_test_json(d, rest);
	if (arg == NULL || strcmp(arg, "reload") != 0)
		return json_pack("{s:s}", "error", "usage: rules show | reload [FILE] | test KEY");
	r = rest != NULL ? tally_live_set(d, "rules_file", rest, err, sizeof(err))
			 : tally_live_rules_reload(d, err, sizeof(err));
	if (r != 0)
		return json_pack("{s:s}", "error", err);
	return json_pack("{s:s, s:I, s:i}", "file", d->cfg.rules_file, "generation",
			 (json_int_t)d->rules_gen, "rules", d->rules != NULL ? (int)d->rules->n : 0);
}

/* "top N count|sum [PREFIX]": the heaviest keys of the open windows. */
static json_t *top_json(struct tally_daemon *d, const char *arg)
{
	char by[8] = "count", prefix[256] = "";
	unsigned n = 10, got;
	struct tally_live_top *t;
	json_t *a = json_array();

	if (arg != NULL && sscanf(arg, "%u %7s %255s", &n, by, prefix) < 1)
		return json_pack("{s:s}", "error", "usage: top [N] [count|sum] [PREFIX]");
	if (n == 0 || n > 1000 || (strcmp(by, "count") && strcmp(by, "sum")))
		return json_pack("{s:s}", "error", "top: N is 1..1000, by count or sum");
	t = calloc(n, sizeof(*t));
	if (t == NULL)
		return json_pack("{s:s}", "error", "top: out of memory");
	got = tally_liveview_top(&d->view, n, by[0] == 's', prefix, t);
	for (unsigned i = 0; i < got; i++)
		json_array_append_new(a, json_pack("{s:s, s:I, s:f}", "key", t[i].key,
						   "count", (json_int_t)t[i].count, "sum", t[i].sum));
	free(t);
	return json_pack("{s:s, s:s, s:s, s:I, s:o}", "by", by, "prefix", prefix,
			 "as_of", "the last flush (up to flush_interval_ms behind)",
			 "newest_window_ms", (json_int_t)d->view.newest, "keys", a);
}

static json_t *row_json(const struct tally_row *r, int64_t window_ms)
{
	return json_pack("{s:I, s:I, s:I, s:f, s:f, s:f, s:f}", "window_start_ms",
			 (json_int_t)r->win_start, "window_ms", (json_int_t)window_ms,
			 "count", (json_int_t)r->count, "sum", r->sum, "min", r->min, "max", r->max,
			 "last", r->last);
}

/* The key's stored rows, newest first, when the sink is the SQLite file. */
static json_t *stored_json(const struct tally_daemon *d, const char *key)
{
	json_t *a = json_array();
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;

	if (strcmp(d->cfg.sink, "sqlite") != 0)
		return json_string("not read back from this sink: query it directly");
	if (sqlite3_open_v2(d->cfg.sqlite_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(db, 100) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT window_start_ms, window_ms, count, sum, min, max, last "
			       "FROM tally_counts WHERE key = ?1 ORDER BY window_start_ms DESC "
			       "LIMIT 20", -1, &st, NULL) != SQLITE_OK) {
		json_decref(a);
		a = json_string(db ? sqlite3_errmsg(db) : "cannot open the database");
	} else {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW) {
			struct tally_row r = {sqlite3_column_int64(st, 0),
					      (uint64_t)sqlite3_column_int64(st, 2),
					      sqlite3_column_double(st, 3), sqlite3_column_double(st, 4),
					      sqlite3_column_double(st, 5), sqlite3_column_double(st, 6)};

			json_array_append_new(a, row_json(&r, sqlite3_column_int64(st, 1)));
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return a;
}

static json_t *get_json(struct tally_daemon *d, const char *key)
{
	struct tally_row rows[2];
	json_t *live = json_array();
	unsigned n;

	if (key == NULL || key[0] == '\0' || strlen(key) > 255)
		return json_pack("{s:s}", "error", "usage: get KEY (1..255 bytes)");
	n = tally_liveview_get(&d->view, key, rows, 2);
	for (unsigned i = 0; i < n; i++)
		json_array_append_new(live, row_json(&rows[i], (int64_t)d->cfg.window_ms));
	return json_pack("{s:s, s:o, s:o}", "key", key, "open_windows", live, "stored",
			 stored_json(d, key));
}

/* The archive's state, its time range and size from the directory (the index
 * by time), and what it left out. */
static json_t *archive_json(const struct tally_daemon *d)
{
	struct tally_archive_info in;
	uint64_t v[TALLY_C_MAX] = {0};
	const char *state = "off";
	int r;

	if (!d->cfg.archive_dir[0])
		return json_pack("{s:s}", "state", state);
	r = tally_archive_info(d->cfg.archive_dir, &in);
	tally_archiver_counters(&d->arch, v);
	for (unsigned i = 0; i < d->nworkers; i++)
		v[TALLY_C_ARCHIVE_RING_FULL] +=
			ck_pr_load_64((uint64_t *)&d->workers[i].ctr.v[TALLY_C_ARCHIVE_RING_FULL]);
	state = v[TALLY_C_ARCHIVE_PAUSED] ? "paused" : "on";
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			 "state", state, "dir", d->cfg.archive_dir,
			 "alarm", v[TALLY_C_ARCHIVE_PAUSED] ? d->arch.last_err
			 : r < 0 ? strerror(-r) : "",
			 "oldest_ms", (json_int_t)in.oldest_ms, "newest_ms", (json_int_t)in.newest_ms,
			 "segments", (json_int_t)in.segments, "bytes", (json_int_t)in.bytes,
			 "datagrams", (json_int_t)v[TALLY_C_ARCHIVE_DATAGRAMS],
			 "dropped_ring_full", (json_int_t)v[TALLY_C_ARCHIVE_RING_FULL],
			 "dropped_disk", (json_int_t)v[TALLY_C_ARCHIVE_DROPPED_DISK],
			 "disk_full", (json_int_t)v[TALLY_C_ARCHIVE_DISK_FULL],
			 "segments_deleted", (json_int_t)v[TALLY_C_ARCHIVE_SEGMENTS_DELETED],
			 "retention_ms", (json_int_t)d->cfg.archive_retention_ms);
}

/*
 * Test hook, not in tallyctl's help: "debug park-worker N MS" makes worker N
 * sleep MS ms between two loops, as a stalled worker would (a thread cannot be
 * SIGSTOPped alone). The worker checks the flag once per loop.
 */
static json_t *debug_json(struct tally_daemon *d, const char *arg)
{
	unsigned n, ms;

	if (arg == NULL || sscanf(arg, "park-worker %u %u", &n, &ms) != 2)
		return json_pack("{s:s}", "error", "usage: debug park-worker WORKER MS");
	if (n >= d->nworkers || ms == 0 || ms > 60000)
		return json_pack("{s:s}", "error", "park-worker: no such worker, or MS not in 1..60000");
	ck_pr_store_32(&d->workers[n].park_ms, ms);
	return json_pack("{s:s}", "result", "worker parked");
}

static json_t *acl_list_json(const struct tally_daemon *d)
{
	static char list[TALLY_XDP_ACL_MAX * 2][TALLY_XDP_CIDR_MAX];
	int n = tally_xdp_acl_list(&d->xdp, list, TALLY_XDP_ACL_MAX * 2);
	json_t *a = json_array();

	for (int i = 0; i < n && i < TALLY_XDP_ACL_MAX * 2; i++)
		json_array_append_new(a, json_string(list[i]));
	return json_pack("{s:s, s:b, s:o}", "iface", d->xdp_ifname, "enforced",
			 d->xdp.cfg.acl_on != 0, "allow", a);
}

/* "acl add|del CIDR" and "acl list": the XDP allow-list, live. */
static json_t *acl_json(struct tally_daemon *d, char *arg)
{
	char *rest = arg != NULL ? strchr(arg, ' ') : NULL, err[256] = "";
	int r;

	if (!d->xdp_bound)
		return json_pack("{s:s}", "error", "acl: no XDP front: the port is not net_af_xdp "
				 "with tally_xdp");
	if (rest != NULL)
		*rest++ = '\0';
	if (arg != NULL && strcmp(arg, "list") == 0)
		return acl_list_json(d);
	if (arg == NULL || rest == NULL || (strcmp(arg, "add") != 0 && strcmp(arg, "del") != 0))
		return json_pack("{s:s}", "error", "usage: acl add CIDR | acl del CIDR | acl list");
	r = strcmp(arg, "add") == 0 ? tally_xdp_acl_add(&d->xdp, rest, err, sizeof(err))
				    : tally_xdp_acl_del(&d->xdp, rest, err, sizeof(err));
	if (r < 0)
		return json_pack("{s:s}", "error", err);
	return acl_list_json(d);
}

/* "ratelimit set PPS [BURST]" and "ratelimit show". */
static json_t *ratelimit_json(struct tally_daemon *d, char *arg)
{
	unsigned long long pps, burst = d->xdp.cfg.burst ? d->xdp.cfg.burst : 1;
	char err[256], extra;
	int n;

	if (!d->xdp_bound)
		return json_pack("{s:s}", "error", "ratelimit: no XDP front: the port is not "
				 "net_af_xdp with tally_xdp");
	if (arg != NULL && strncmp(arg, "set ", 4) == 0) {
		n = sscanf(arg + 4, "%llu %llu %c", &pps, &burst, &extra);
		if (n < 1 || n > 2)
			return json_pack("{s:s}", "error", "usage: ratelimit set PPS [BURST]");
		if (tally_xdp_ratelimit_set(&d->xdp, pps, burst, err, sizeof(err)) < 0)
			return json_pack("{s:s}", "error", err);
	} else if (arg == NULL || strcmp(arg, "show") != 0) {
		return json_pack("{s:s}", "error", "usage: ratelimit set PPS [BURST] | ratelimit show");
	}
	return json_pack("{s:I, s:I}", "pps", (json_int_t)d->xdp.cfg.rate_pps, "burst",
			 (json_int_t)d->xdp.cfg.burst);
}

/* "drain": start one (or report the one in progress); "drain status": report. */
static json_t *drain_cmd(struct tally_daemon *d, const char *arg)
{
	if (arg != NULL && strcmp(arg, "status") != 0)
		return json_pack("{s:s}", "error", "usage: drain [status]");
	if (d->stopping)
		return json_pack("{s:s}", "error", "drain: tallyd is stopping");
	if (arg == NULL)
		tally_drain_start(d);
	return tally_drain_json(d);
}

static json_t *dispatch(struct tally_daemon *d, char *line)
{
	char *arg = strchr(line, ' ');

	if (arg != NULL)
		*arg++ = '\0';
	if (strcmp(line, "request-too-long") == 0)
		return json_pack("{s:s}", "error", "request longer than 4096 bytes");
	if (strcmp(line, "stats") == 0)
		return stats_json(d);
	if (strcmp(line, "status") == 0)
		return status_json(d);
	if (strcmp(line, "config") == 0 && arg != NULL && strncmp(arg, "set ", 4) == 0)
		return config_set_json(d, arg + 4);
	if (strcmp(line, "config") == 0 && arg != NULL && strncmp(arg, "get ", 4) == 0)
		return config_json(d, arg + 4);
	if (strcmp(line, "config") == 0)
		return config_json(d, arg != NULL && strcmp(arg, "show") == 0 ? NULL : arg);
	if (strcmp(line, "rules") == 0)
		return rules_json(d, arg);
	if (strcmp(line, "sink") == 0)
		return sink_cmd_json(d);
	if (strcmp(line, "spool") == 0)
		return spool_cmd(d, arg);
	if (strcmp(line, "archive") == 0)
		return archive_json(d);
	if (strcmp(line, "where") == 0)
		return where_json(d, arg);
	if (strcmp(line, "top") == 0)
		return top_json(d, arg);
	if (strcmp(line, "get") == 0)
		return get_json(d, arg);
	if (strcmp(line, "debug") == 0)
		return debug_json(d, arg);
	if (strcmp(line, "acl") == 0)
		return acl_json(d, arg);
	if (strcmp(line, "ratelimit") == 0)
		return ratelimit_json(d, arg);
	if (strcmp(line, "flush") == 0) {
		ck_pr_store_int(&d->fl.flush_now, 1);
		return json_pack("{s:s}", "result", "flush requested");
	}
	if (strcmp(line, "drain") == 0)
		return drain_cmd(d, arg);
	if (strcmp(line, "resume") == 0) {
		tally_drain_resume(d);
		return json_pack("{s:s}", "result", "running: the workers take traffic again");
	}
	if (strcmp(line, "stop") == 0) {
		ck_pr_store_int(&d->stop, 1);
		return json_pack("{s:s}", "result", "stopping: draining workers and flushing");
	}
	return json_pack("{s:s, s:s}", "error", "unknown command", "commands",
			 "stats, status, config [show|KEY|get KEY], config set KEY VALUE, rules "
			 "show|reload [FILE]|test "
			 "[--statsd] KEY, sink, spool [replay], archive, where KEY, top [N] "
			 "[count|sum] [PREFIX], get KEY, acl add|del CIDR, acl list, ratelimit set PPS "
			 "[BURST], ratelimit show, flush, drain [status], resume, stop");
}

/*
 * Clients are non-blocking and served a piece at a time from the control
 * loop: a request is one line of at most CTL_MAX_REQUEST bytes, and the whole
 * exchange must end within CTL_CLIENT_MS, else the client is dropped
 * (ctl_client_timeouts). An idle or slow client costs nobody else anything.
 */
#define CTL_MAX_REQUEST 4096
#define CTL_CLIENT_MS 1000
#define CTL_MAX_CLIENTS 64

struct ctl_client {
	struct tally_loop_handler h;
	struct tally_daemon *d;
	uint64_t deadline_ms;
	char in[CTL_MAX_REQUEST + 1];
	size_t in_len;
	char *out;
	size_t out_len, out_off;
	struct ctl_client *next;
	enum tally_ctl_access access; /* from the peer's credentials at accept */
	uid_t uid;
};

static void client_close(struct tally_daemon *d, struct ctl_client *c)
{
	struct ctl_client **pp = &d->ctl_clients;

	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	d->ctl_nclients--;
	tally_loop_unwatch(&d->loop, &c->h);
	close(c->h.fd);
	free(c->out);
	free(c);
}

static void client_reply(struct ctl_client *c, json_t *reply)
{
	c->out = json_dumps(reply, JSON_COMPACT);
	json_decref(reply);
	if (c->out == NULL)
		c->out = strdup("{\"error\":\"out of memory\"}");
	c->out_len = c->out ? strlen(c->out) : 0;
	if (c->out != NULL)
		c->out[c->out_len++] = '\n'; /* json_dumps's NUL becomes the newline */
}

/* Write what the socket takes; true when the reply is all out. */
static bool client_flush(struct ctl_client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->h.fd, c->out + c->out_off, c->out_len - c->out_off);

		if (n < 0)
			return errno != EAGAIN && errno != EWOULDBLOCK;
		c->out_off += (size_t)n;
	}
	return true;
}

static bool allowed(const struct ctl_client *c, const char *line)
{
	return c->access == TALLY_CTL_FULL ||
	       (c->access == TALLY_CTL_READONLY && tally_ctl_readonly(line));
}

/* The first word of line, with spaces round it (for a strstr in a list). */
static const char *cmd_word(const char *line)
{
	static char w[40];

	snprintf(w, sizeof(w), " %.*s ", (int)strcspn(line, " "), line);
	return w;
}

/* Refused: say why and what would be allowed, and count it. */
static json_t *denied(struct ctl_client *c, const char *line)
{
	char msg[512], cmd[64];
	size_t n = strcspn(line, " ");

	c->d->ctl_denied++;
	/* name the subcommand too: "spool replay", "config set" */
	if (line[n] == ' ' && strstr(" config rules spool acl ratelimit drain ", cmd_word(line)))
		n += 1 + strcspn(line + n + 1, " ");
	snprintf(cmd, sizeof(cmd), "%.*s", (int)n, line);
	if (c->access == TALLY_CTL_READONLY)
		snprintf(msg, sizeof(msg), "permission denied: %s changes state; uid %u has "
			 "read-only access (ctl_ro_group): only root or tallyd's user may", cmd,
			 (unsigned)c->uid);
	else
		snprintf(msg, sizeof(msg), "permission denied: uid %u may not use tallyd's control "
			 "socket (not root, not tallyd's user, not in ctl_ro_group)", (unsigned)c->uid);
	tally_log(LOG_NOTICE, "tallyd: control: %s", msg);
	return json_pack("{s:s, s:b}", "error", msg, "denied", true);
}

/* A whole request line is in: answer it. */
static void client_request(struct ctl_client *c)
{
	struct tally_daemon *d = c->d;

	c->in[c->in_len] = '\0';
	c->in[strcspn(c->in, "\r\n")] = '\0';
	d->ctl_requests++;
	client_reply(c, allowed(c, c->in) ? dispatch(d, c->in) : denied(c, c->in));
	if (client_flush(c))
		client_close(d, c);
	else
		tally_loop_rewatch(&d->loop, &c->h, EPOLLOUT);
}

static void client_read(struct ctl_client *c)
{
	for (;;) {
		ssize_t n = read(c->h.fd, c->in + c->in_len, CTL_MAX_REQUEST - c->in_len);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) { /* hung up: what came is the request, if anything did */
			if (c->in_len == 0) {
				client_close(c->d, c);
				return;
			}
			break;
		}
		c->in_len += (size_t)n;
		if (memchr(c->in, '\n', c->in_len) != NULL)
			break;
		if (c->in_len == CTL_MAX_REQUEST) {
			c->d->ctl_bad_requests++;
			c->in_len = 0;
			snprintf(c->in, sizeof(c->in), "request-too-long");
			break;
		}
	}
	client_request(c);
}

static void on_client(struct tally_loop *l, int fd, uint32_t events, void *arg)
{
	struct ctl_client *c = arg;

	(void)l, (void)fd;
	if (c->out != NULL) {
		if (client_flush(c) || (events & (EPOLLERR | EPOLLHUP)))
			client_close(c->d, c);
		return;
	}
	client_read(c);
}

/* Who is at the other end (the kernel says, SO_PEERCRED and SO_PEERGROUPS),
 * and so which commands it may use. Unknown: nothing. */
static void peer_access(const struct tally_daemon *d, int fd, struct ctl_client *c)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	gid_t groups[1024];
	socklen_t glen = sizeof(groups);

	c->access = TALLY_CTL_NONE;
	c->uid = (uid_t)-1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
		return;
	c->uid = cr.uid;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) != 0)
		glen = 0; /* more than 1024 groups: the primary one still counts */
	c->access = tally_ctl_peer_access(cr.uid, cr.gid, groups, glen / sizeof(gid_t), geteuid(),
					  d->ctl_ro_gid);
}

static void on_listen(struct tally_loop *l, int lfd, uint32_t events, void *arg)
{
	struct tally_daemon *d = arg;
	int fd;

	(void)l, (void)events;
	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		struct ctl_client *c = d->ctl_nclients < CTL_MAX_CLIENTS ? calloc(1, sizeof(*c)) : NULL;

		if (c == NULL) {
			d->ctl_refused++;
			close(fd);
			continue;
		}
		peer_access(d, fd, c);
		c->h = (struct tally_loop_handler){fd, on_client, c};
		c->d = d;
		c->deadline_ms = tally_mono_ms() + CTL_CLIENT_MS;
		c->next = d->ctl_clients;
		d->ctl_clients = c;
		d->ctl_nclients++;
		tally_loop_watch(&d->loop, &c->h, EPOLLIN);
	}
}

void tally_ctl_expire(struct tally_daemon *d)
{
	uint64_t now = tally_mono_ms();
	struct ctl_client *c = d->ctl_clients, *next;

	for (; c != NULL; c = next) {
		next = c->next;
		if (now >= c->deadline_ms) {
			d->ctl_client_timeouts++;
			client_close(d, c);
		}
	}
}

static int ctl_listen(const char *path, mode_t mode, gid_t gid, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[sizeof(sa.sun_path)];
	char *slash;
	int fd, e;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "ctl_socket: \"%s\" is longer than %zu bytes", path,
			 sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		mkdir(dir, 0755); /* /run/tally on a fresh boot; EEXIST is fine */
	}
	/* Bind a temporary name and rename it once listening: the path appears only
	 * when it accepts connections, so its existence means "ready". */
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.new", path) >= (int)sizeof(sa.sun_path)) {
		snprintf(err, errlen, "ctl_socket: \"%s\" is too long", path);
		return -ENAMETOOLONG;
	}
	unlink(sa.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail;
	/* Group and mode before the name appears: never a moment with the
	 * umask's bits on a socket that answers. */
	if (gid != (gid_t)-1 && chown(sa.sun_path, (uid_t)-1, gid) < 0) {
		snprintf(err, errlen, "ctl_socket_group: cannot give the control socket group %u: "
			 "%s (tallyd must be a member of it)", (unsigned)gid, strerror(errno));
		close(fd);
		unlink(sa.sun_path);
		return -EPERM;
	}
	if (chmod(sa.sun_path, mode) < 0 || listen(fd, 8) < 0 || rename(sa.sun_path, path) < 0)
		goto fail;
	return fd;
fail:
	e = errno;
	snprintf(err, errlen, "ctl_socket: cannot listen on \"%s\": %s", path, strerror(e));
	if (fd >= 0)
		close(fd);
	return -e;
}

int tally_ctl_open(struct tally_daemon *d, char *err, size_t errlen)
{
	const struct tally_config *c = &d->cfg;
	gid_t gid = (gid_t)-1;

	d->ctl_ro_gid = (gid_t)-1;
	if (c->ctl_ro_group[0] != '\0' &&
	    tally_ctl_group("ctl_ro_group", c->ctl_ro_group, &d->ctl_ro_gid, err, errlen) < 0)
		return -ENOENT;
	if (c->ctl_socket_group[0] != '\0' &&
	    tally_ctl_group("ctl_socket_group", c->ctl_socket_group, &gid, err, errlen) < 0)
		return -ENOENT;
	return ctl_listen(c->ctl_socket, (mode_t)strtoul(c->ctl_socket_mode, NULL, 8), gid, err,
			  errlen);
}

int tally_ctl_start(struct tally_daemon *d)
{
	d->ctl_h = (struct tally_loop_handler){d->ctl_fd, on_listen, d};
	return tally_loop_watch(&d->loop, &d->ctl_h, EPOLLIN);
}

void tally_ctl_close(struct tally_daemon *d)
{
	while (d->ctl_clients != NULL)
		client_close(d, d->ctl_clients);
	if (d->ctl_fd >= 0) {
		close(d->ctl_fd);
		unlink(d->cfg.ctl_socket);
	}
}
