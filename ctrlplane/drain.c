/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tallyctl drain: take the appliance out of rotation without stopping it.
 *
 * A drain has an id, stored in sh.drain: workers stop polling their RX queues
 * (frames wait in the rings, then the NIC drops them and counts port_imissed;
 * over memif the sender waits) and answer with the id once the loop that
 * polled last is over. Then every event they accepted is in a window table, and
 * one flush tick that starts after that moment seals and hands over all of
 * them; the drain is complete when the sink writer has finished (written to
 * the sink, or appended to the spool and synced) every batch the flusher
 * submitted. The control thread advances this state machine from a timer and
 * never waits on it; tallyctl polls `drain status`. `resume` takes traffic
 * again; `stop` still drains and exits as always.
 */
#include <ck_pr.h>
#include <jansson.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "tallyd.h"
#include "timeutil.h"

static uint32_t drain_ids;

const char *tally_drain_state_name(enum tally_drain_state s)
{
	static const char *const names[] = {
		[TALLY_DRAIN_OFF] = "running", [TALLY_DRAIN_QUIESCING] = "draining",
		[TALLY_DRAIN_FLUSHING] = "draining", [TALLY_DRAIN_DRAINED] = "drained",
	};
	return names[s];
}

void tally_drain_start(struct tally_daemon *d)
{
	struct tally_drain *dr = &d->drain;

	if (dr->state != TALLY_DRAIN_OFF)
		return;
	tally_daemon_counters(d, dr->base);
	dr->placed0[0] = ck_pr_load_64(&d->wr.finished);
	dr->placed0[1] = ck_pr_load_64(&d->wr.placed_rows);
	dr->placed0[2] = ck_pr_load_64(&d->wr.placed_events);
	dr->start_ms = tally_mono_ms();
	dr->done_ms = 0;
	dr->state = TALLY_DRAIN_QUIESCING;
	if (++drain_ids == 0) /* 0 means "no drain" to the workers */
		drain_ids = 1;
	ck_pr_store_32(&d->sh.drain, drain_ids);
	tally_log_always(LOG_NOTICE, "tallyd: drain: workers stop taking traffic; flushing what they "
		  "accepted");
	sd_notify(0, "STATUS=draining: taking no traffic");
}

void tally_drain_resume(struct tally_daemon *d)
{
	if (d->drain.state == TALLY_DRAIN_OFF)
		return;
	ck_pr_store_32(&d->sh.drain, 0);
	d->drain.state = TALLY_DRAIN_OFF;
	tally_log_always(LOG_NOTICE, "tallyd: resume: workers take traffic again");
	sd_notify(0, "STATUS=running");
}

static bool workers_quiet(const struct tally_daemon *d)
{
	uint32_t id = ck_pr_load_32((uint32_t *)&d->sh.drain);

	for (unsigned i = 0; i < d->nworkers; i++)
		if (ck_pr_load_32((uint32_t *)&d->workers[i].drain_seen) != id)
			return false;
	return true;
}

/* The flush tick that started after the workers went quiet has finished, and
 * the writer is done with every batch the flusher submitted. */
static bool all_placed(struct tally_daemon *d)
{
	struct tally_drain *dr = &d->drain;

	if (ck_pr_load_64(&d->fl.tick) <= dr->tick)
		ck_pr_store_int(&d->fl.flush_now, 1); /* a request lost to a tick in progress */
	if (ck_pr_load_64(&d->fl.tick_done) <= dr->tick)
		return false;
	return ck_pr_load_64(&d->wr.finished) == ck_pr_load_64(&d->fl.submitted);
}

void tally_drain_step(struct tally_daemon *d)
{
	struct tally_drain *dr = &d->drain;

	if (dr->state == TALLY_DRAIN_QUIESCING && workers_quiet(d)) {
		dr->tick = ck_pr_load_64(&d->fl.tick);
		ck_pr_store_int(&d->fl.flush_now, 1);
		dr->state = TALLY_DRAIN_FLUSHING;
	}
	if (dr->state == TALLY_DRAIN_FLUSHING && all_placed(d)) {
		dr->state = TALLY_DRAIN_DRAINED;
		dr->done_ms = tally_mono_ms();
		tally_log_always(LOG_NOTICE, "tallyd: drained in %llu ms: %llu batches, %llu rows, %llu "
			  "events placed; taking no traffic (tallyctl resume, or stop)",
			  (unsigned long long)(dr->done_ms - dr->start_ms),
			  (unsigned long long)(ck_pr_load_64(&d->wr.finished) - dr->placed0[0]),
			  (unsigned long long)(ck_pr_load_64(&d->wr.placed_rows) - dr->placed0[1]),
			  (unsigned long long)(ck_pr_load_64(&d->wr.placed_events) - dr->placed0[2]));
		sd_notify(0, "STATUS=drained: taking no traffic");
	}
}

/* What the drain did so far: counters since it started, and where things are. */
json_t *tally_drain_json(const struct tally_daemon *d)
{
	const struct tally_drain *dr = &d->drain;
	uint64_t v[TALLY_C_MAX], now = tally_mono_ms();
#define DELTA(c) (json_int_t)(v[TALLY_C_##c] - dr->base[TALLY_C_##c])

	if (dr->state == TALLY_DRAIN_OFF)
		return json_pack("{s:s}", "state", "running");
	tally_daemon_counters(d, v);
	return json_pack("{s:s, s:I, s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I}, s:I, s:I, s:I, s:I, "
			 "s:I, s:I}",
			 "state", tally_drain_state_name(dr->state),
			 "elapsed_ms", (json_int_t)((dr->done_ms ? dr->done_ms : now) - dr->start_ms),
			 "flushed", "batches",
			 (json_int_t)(ck_pr_load_64((uint64_t *)&d->wr.finished) - dr->placed0[0]),
			 "rows", (json_int_t)(ck_pr_load_64((uint64_t *)&d->wr.placed_rows) - dr->placed0[1]),
			 "events",
			 (json_int_t)(ck_pr_load_64((uint64_t *)&d->wr.placed_events) - dr->placed0[2]),
			 "committed", "batches", DELTA(FLUSH_BATCHES), "rows", DELTA(FLUSH_ROWS),
			 "events", DELTA(FLUSH_EVENTS),
			 "spooled", DELTA(SPOOL_APPENDED),
			 "spool_records", (json_int_t)v[TALLY_C_SPOOL_RECORDS],
			 "rows_lost", DELTA(FLUSH_ROWS_LOST),
			 "events_accepted", (json_int_t)v[TALLY_C_EVENTS_ACCEPTED],
			 "events_flushed_total", (json_int_t)ck_pr_load_64((uint64_t *)&d->wr.placed_events),
			 "rx_packets", (json_int_t)v[TALLY_C_RX_PACKETS]);
#undef DELTA
}
