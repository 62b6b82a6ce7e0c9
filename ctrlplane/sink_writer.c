/* SPDX-License-Identifier: BSD-3-Clause */
/* The sink writer thread: lanes, spools, breakers, replay (sink_writer.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#include <ck_pr.h>

#include "committed.h"
#include "sink_writer.h"
#include "timeutil.h"

#define IDLE_US 1000     /* nothing to do: look again after this */
#define STUCK_RETRY_MS 100

void tally_writer_init(struct tally_writer *w, const struct tally_writer_opts *o)
{
	memset(w, 0, sizeof(*w));
	w->o = *o;
	ck_ring_init(&w->q, TALLY_WRITER_QUEUE);
	pthread_mutex_init(&w->lock, NULL);
	tally_batch_init(&w->replay, "", 0);
}

int tally_writer_add_lane(struct tally_writer *w, const char *name, tally_lane_open_fn open,
			  void *open_arg, char *err, size_t errlen)
{
	struct tally_lane *l;

	if (w->nlanes == TALLY_SHARD_MAX) {
		snprintf(err, errlen, "sink: more than %d shards", TALLY_SHARD_MAX);
		return -EINVAL;
	}
	l = &w->lanes[w->nlanes];
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->open = open;
	l->open_arg = open_arg;
	tally_breaker_init(&l->br, w->o.breaker_failures, w->o.retry_base_ms, w->o.retry_max_ms,
			   w->o.breaker_open_ms, (uint64_t)tally_wall_ms() * 2654435761u + w->nlanes);
	tally_batch_init(&w->parts[w->nlanes], "", 0);
	w->nlanes++;
	return 0;
}

static void lane_error(struct tally_writer *w, struct tally_lane *l, const char *what, int r)
{
	pthread_mutex_lock(&w->lock);
	snprintf(l->last_err, sizeof(l->last_err), "%s: %s", what,
		 l->sink && l->sink->err[0] ? l->sink->err : strerror(-r));
	l->errors++;
	pthread_mutex_unlock(&w->lock);
	w->ctr.v[TALLY_C_SINK_ERRORS]++;
	w->ctr.v[TALLY_C_SINK_PERMANENT_ERRORS] += !tally_sink_transient(r);
}

/* The lane's sink, opened if need be; NULL (error noted) if it cannot be. */
static struct tally_sink *lane_sink(struct tally_writer *w, struct tally_lane *l)
{
	char err[256];

	if (l->sink == NULL && (l->sink = l->open(l->open_arg, err, sizeof(err))) == NULL) {
		pthread_mutex_lock(&w->lock);
		snprintf(l->last_err, sizeof(l->last_err), "%s", err);
		l->errors++;
		pthread_mutex_unlock(&w->lock);
		w->ctr.v[TALLY_C_SINK_ERRORS]++;
	}
	return l->sink;
}

static void beat(struct tally_writer *w)
{
	ck_pr_store_64(&w->heartbeat, w->heartbeat + 1);
}

/* One sink call, timed; in_sink tells the watchdog whose stall it would be. */
static int sink_call(struct tally_writer *w, struct tally_sink *s, struct tally_batch *b)
{
	uint64_t t0 = tally_mono_us();
	int r;

	b->now_ms = tally_wall_ms();
	ck_pr_store_int(&w->in_sink, 1);
	r = s->ops->write(s, b);
	ck_pr_store_int(&w->in_sink, 0);
	beat(w);
	tally_hist_observe(&w->sink_hist, tally_mono_us() - t0);
	ck_pr_store_int(&w->sink_down, r < 0);
	return r;
}

/* One write of part b to lane l's sink; the breaker learns the outcome. */
static int lane_write(struct tally_writer *w, struct tally_lane *l, struct tally_batch *b)
{
	struct tally_sink *s = lane_sink(w, l);
	int r = s ? sink_call(w, s, b) : -ECONNREFUSED;

	if (r < 0) {
		if (s != NULL)
			lane_error(w, l, "write", r);
		tally_breaker_failure(&l->br, tally_mono_ms(), s != NULL && !tally_sink_transient(r));
		return r;
	}
	tally_breaker_success(&l->br);
	pthread_mutex_lock(&w->lock);
	l->written += r == TALLY_SINK_APPLIED;
	l->skipped += r == TALLY_SINK_SKIPPED;
	l->last_ok_ms = (uint64_t)tally_wall_ms();
	pthread_mutex_unlock(&w->lock);
	/* A skipped batch is committed too: an earlier attempt whose answer was
	 * lost (a timeout) wrote it, uncounted; only the seq check saw it. */
	w->ctr.v[TALLY_C_SINK_SKIPPED] += r == TALLY_SINK_SKIPPED;
	w->ctr.v[TALLY_C_FLUSH_BATCHES]++;
	w->ctr.v[TALLY_C_FLUSH_ROWS] += b->nrows;
	w->ctr.v[TALLY_C_FLUSH_EVENTS] += tally_batch_events(b);
	return r;
}

static int lane_spool(struct tally_writer *w, struct tally_lane *l, const struct tally_batch *b)
{
	int r = tally_spool_append(l->spool, b);

	if (r < 0) {
		w->ctr.v[TALLY_C_SPOOL_ERRORS]++;
		pthread_mutex_lock(&w->lock);
		snprintf(l->last_err, sizeof(l->last_err), "spool: %s", tally_spool_errmsg(l->spool));
		pthread_mutex_unlock(&w->lock);
		return r;
	}
	l->dirty = true;
	w->ctr.v[TALLY_C_SPOOL_APPENDED]++;
	pthread_mutex_lock(&w->lock);
	l->spooled++;
	pthread_mutex_unlock(&w->lock);
	return 0;
}

static bool spool_empty(struct tally_spool *s)
{
	struct tally_spool_stats st;

	tally_spool_stats(s, &st);
	return st.records == 0;
}

/* Sink first, unless the lane must keep order behind its spool or is resting. */
static bool place_part(struct tally_writer *w, unsigned i, struct tally_batch *b)
{
	struct tally_lane *l = &w->lanes[i];

	if (b->nrows == 0 && b->ndgrams == 0)
		return true;
	if (!ck_pr_load_int(&w->give_up) && spool_empty(l->spool) &&
	    tally_breaker_allow(&l->br, tally_mono_ms()) && lane_write(w, l, b) >= 0)
		return true;
	return lane_spool(w, l, b) == 0;
}

/*
 * Make every spool append durable. A lane whose sync failed has its part
 * placed again (a duplicate record is harmless, the sink skips the seq it
 * holds); parts that went to a sink directly stay placed, so they are neither
 * written nor counted twice.
 */
static bool sync_lanes(struct tally_writer *w)
{
	bool ok = true;

	for (unsigned i = 0; i < w->nlanes; i++) {
		struct tally_lane *l = &w->lanes[i];

		if (!l->dirty)
			continue;
		if (tally_spool_sync(l->spool) < 0) {
			w->ctr.v[TALLY_C_SPOOL_ERRORS]++;
			w->placed[i] = false;
			ok = false;
			continue;
		}
		l->dirty = false;
	}
	return ok;
}

static int assign_seq(struct tally_writer *w, struct tally_batch *b)
{
	uint64_t seq = w->seq_floor;
	int r = tally_spool_seq_reserve(w->lanes[0].spool, &seq);

	if (r == 0)
		b->seq = seq;
	return r;
}

/* Split the current batch into its lanes' parts (one lane: the batch itself). */
/* Every part carries the batch's datagram list: a datagram counts as
 * committed only where every lane holds its part (sink_writer.h). */
static int split(struct tally_writer *w)
{
	if (w->nlanes == 1)
		return 0;
	if (tally_ring_split(&w->ring, w->cur, w->parts) != 0)
		return -ENOMEM;
	for (unsigned i = 0; i < w->nlanes; i++)
		if (tally_batch_copy_dgrams(&w->parts[i], w->cur) != 0)
			return -ENOMEM;
	return 0;
}

static struct tally_batch *part_of(struct tally_writer *w, unsigned i)
{
	return w->nlanes == 1 ? w->cur : &w->parts[i];
}

/* Place the current batch in every lane; false if some lane could not take
 * its part yet (spool full or failing): the writer keeps it and retries. */
static bool place_current(struct tally_writer *w)
{
	bool all = true;

	for (unsigned i = 0; i < w->nlanes; i++) {
		if (!w->placed[i])
			w->placed[i] = place_part(w, i, part_of(w, i));
		all &= w->placed[i];
	}
	return sync_lanes(w) && all;
}

/* The acks wait for this point: the batch is in a sink or synced to a spool. */
static void release_acks(struct tally_writer *w, bool durable)
{
	if (w->cur->acks != NULL && w->acks_done != NULL)
		w->acks_done(w->acks_arg, w->cur->acks, durable);
	w->cur->acks = NULL;
}

static void drop_current(struct tally_writer *w)
{
	tally_batch_free(w->cur);
	free(w->cur);
	w->cur = NULL;
}

/* Count what could not be placed anywhere (give-up at exit). */
static void lose_current(struct tally_writer *w)
{
	for (unsigned i = 0; i < w->nlanes; i++)
		if (!w->placed[i]) {
			w->ctr.v[TALLY_C_FLUSH_ROWS_LOST] += part_of(w, i)->nrows;
			w->ctr.v[TALLY_C_FLUSH_EVENTS_LOST] += tally_batch_events(part_of(w, i));
		}
}

/* Take the next batch off the queue; true if there was one. */
static bool take_next(struct tally_writer *w)
{
	struct tally_batch *b;

	if (!ck_ring_dequeue_spsc(&w->q, w->qbuf, &b))
		return false;
	w->cur = b;
	memset(w->placed, 0, sizeof(w->placed));
	if (assign_seq(w, b) < 0 || split(w) < 0) {
		/* no seq, no memory: keep it and try again (see work_current) */
		w->ctr.v[TALLY_C_SPOOL_ERRORS]++;
		b->seq = 0;
	}
	return true;
}

/* Try to place the held batch; true when done with it. */
static bool work_current(struct tally_writer *w)
{
	if (w->cur->seq == 0 && (assign_seq(w, w->cur) < 0 || split(w) < 0)) {
		w->cur->seq = 0;
		return false;
	}
	if (!place_current(w))
		return false;
	release_acks(w, true);
	drop_current(w);
	return true;
}

/* Replay one record of lane l if its breaker allows; true if one went out. */
static bool replay_one(struct tally_writer *w, struct tally_lane *l)
{
	int r;

	if (spool_empty(l->spool) || ck_pr_load_int(&w->give_up) ||
	    !tally_breaker_allow(&l->br, tally_mono_ms()))
		return false;
	r = tally_spool_peek(l->spool, &w->replay);
	if (r < 0)
		return false;
	if (lane_write(w, l, &w->replay) < 0)
		return false;
	if (tally_spool_consume(l->spool) < 0) {
		w->ctr.v[TALLY_C_SPOOL_ERRORS]++;
		return false;
	}
	w->ctr.v[TALLY_C_SPOOL_REPLAYED]++;
	pthread_mutex_lock(&w->lock);
	l->replayed++;
	pthread_mutex_unlock(&w->lock);
	return true;
}

static bool replay_all(struct tally_writer *w)
{
	bool any = false;

	if (ck_pr_load_int(&w->force)) {
		ck_pr_store_int(&w->force, 0);
		for (unsigned i = 0; i < w->nlanes; i++)
			tally_breaker_force(&w->lanes[i].br);
	}
	for (unsigned i = 0; i < w->nlanes; i++)
		any |= replay_one(w, &w->lanes[i]);
	return any;
}

static void *writer_main(void *arg)
{
	struct tally_writer *w = arg;

	/* Like the flusher: batches can wait, packets and control ticks cannot. */
	setpriority(PRIO_PROCESS, (id_t)gettid(), 10);

	for (;;) {
		bool busy = replay_all(w);

		beat(w);
		if (w->cur != NULL && !work_current(w)) {
			if (ck_pr_load_int(&w->give_up) && ck_pr_load_int(&w->stop)) {
				lose_current(w);
				release_acks(w, false);
				drop_current(w);
			} else {
				usleep(STUCK_RETRY_MS * 1000);
			}
			continue;
		}
		if (take_next(w))
			continue;
		if (ck_pr_load_int(&w->stop))
			break;
		if (!busy)
			usleep(IDLE_US);
	}
	sync_lanes(w);
	return NULL;
}

static int open_spools(struct tally_writer *w, char *err, size_t errlen)
{
	for (unsigned i = 0; i < w->nlanes; i++) {
		struct tally_lane *l = &w->lanes[i];
		struct tally_spool_stats st;
		char dir[1024];

		snprintf(dir, sizeof(dir), "%s/%s", w->o.spool_dir, l->name);
		l->spool = tally_spool_open(dir, w->o.spool_max_bytes, w->o.spool_max_age_ms, err,
					    errlen);
		if (l->spool == NULL)
			return -errno;
		tally_spool_stats(l->spool, &st);
		if (st.records)
			fprintf(stderr, "tallyd: spool %s holds %llu batches (%llu bytes) to replay\n",
				dir, (unsigned long long)st.records, (unsigned long long)st.bytes);
		if (st.last_err[0])
			fprintf(stderr, "tallyd: spool %s: %s\n", dir, st.last_err);
	}
	return 0;
}

/*
 * The first seq: above what every lane's sink holds for this appliance. A lane
 * that cannot answer now is fine while the spool's high-water mark remembers
 * the seqs used before; a brand-new spool with a sink that cannot answer starts
 * at the wall clock in microseconds, above any seq counted up from 1.
 */
static void choose_floor(struct tally_writer *w, const char *appliance)
{
	bool unknown = false;
	int64_t max = 0;

	for (unsigned i = 0; i < w->nlanes; i++) {
		struct tally_sink *s = lane_sink(w, &w->lanes[i]);
		int64_t last = s ? s->ops->last_seq(s, appliance) : -1;

		if (last < 0) {
			unknown = true;
			fprintf(stderr, "tallyd: sink %s: cannot read the last batch of \"%s\" now "
				"(%s); batches go to the spool until it answers\n", w->lanes[i].name,
				appliance, s ? s->err : w->lanes[i].last_err);
			continue;
		}
		max = last > max ? last : max;
	}
	w->seq_floor = (uint64_t)max + 1;
	if (unknown && w->seq_floor < (uint64_t)tally_wall_ms() * 1000) {
		uint64_t probe = 0;

		/* does the spool remember earlier seqs? (a no-op reservation: 0) */
		if (tally_spool_seq_reserve(w->lanes[0].spool, &probe) == 0 && probe <= 1)
			w->seq_floor = (uint64_t)tally_wall_ms() * 1000;
	}
}

/* Before the thread runs: the lanes' sinks are still this thread's to use. */
static void load_committed(struct tally_writer *w, const char *appliance)
{
	char err[320];

	if (w->o.committed_since_ms <= 0)
		return;
	if (tally_committed_load(w->lanes, w->nlanes, appliance, false, w->o.committed_since_ms,
				 &w->committed, err, sizeof(err)) != 0 ||
	    tally_committed_load(w->lanes, w->nlanes, appliance, true, w->o.committed_since_ms,
				 &w->committed, err, sizeof(err)) != 0)
		fprintf(stderr, "tallyd: cannot read the datagrams committed before this start "
			"(%s): a producer's retransmit of one of them counts again\n", err);
	else
		fprintf(stderr, "tallyd: %llu datagrams committed before this start (here or by "
			"another appliance) are known (retransmits are acked, not counted again)\n",
			(unsigned long long)(w->committed ? w->committed->n : 0));
}

int tally_writer_start(struct tally_writer *w, const char *appliance, char *err, size_t errlen)
{
	const char *names[TALLY_SHARD_MAX];
	int r;

	if (w->nlanes == 0) {
		snprintf(err, errlen, "sink: no sink configured");
		return -EINVAL;
	}
	r = open_spools(w, err, errlen);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < w->nlanes; i++)
		names[i] = w->lanes[i].name;
	if (w->nlanes > 1 && (r = tally_ring_build(&w->ring, names, w->nlanes)) < 0) {
		snprintf(err, errlen, "sink: shard names must be distinct (%s)", strerror(-r));
		return r;
	}
	choose_floor(w, appliance);
	load_committed(w, appliance);
	r = pthread_create(&w->thread, NULL, writer_main, w);
	if (r != 0) {
		snprintf(err, errlen, "sink writer: cannot start thread: %s", strerror(r));
		return -r;
	}
	pthread_setname_np(w->thread, "tally-sink");
	w->running = true;
	return 0;
}

void tally_writer_submit(struct tally_writer *w, struct tally_batch *b)
{
	bool waited = false;

	while (!ck_ring_enqueue_spsc(&w->q, w->qbuf, b)) {
		if (!waited)
			ck_pr_inc_64(&w->ctr.v[TALLY_C_SINK_QUEUE_FULL]);
		waited = true;
		usleep(1000);
	}
}

void tally_writer_stop(struct tally_writer *w)
{
	ck_pr_store_int(&w->stop, 1);
}

bool tally_writer_done(struct tally_writer *w)
{
	if (!w->running)
		return true;
	if (pthread_tryjoin_np(w->thread, NULL) != 0)
		return false;
	w->running = false;
	return true;
}

void tally_writer_fini(struct tally_writer *w)
{
	struct tally_batch *b;

	while (ck_ring_dequeue_spsc(&w->q, w->qbuf, &b)) {
		tally_batch_free(b);
		free(b);
	}
	for (unsigned i = 0; i < w->nlanes; i++) {
		struct tally_lane *l = &w->lanes[i];

		if (l->sink != NULL)
			l->sink->ops->close(l->sink);
		tally_spool_close(l->spool);
		tally_batch_free(&w->parts[i]);
		if (l->own_arg)
			free(l->open_arg);
		l->sink = NULL;
		l->spool = NULL;
	}
	tally_batch_free(&w->replay);
	tally_ring_free(&w->ring);
	pthread_mutex_destroy(&w->lock);
}

const char *tally_writer_where(const struct tally_writer *w, const uint8_t *key, size_t len)
{
	return w->lanes[w->nlanes > 1 ? tally_ring_shard(&w->ring, key, len) : 0].name;
}

unsigned tally_writer_queued(const struct tally_writer *w)
{
	return ck_ring_size(&w->q);
}
