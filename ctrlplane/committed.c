/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ck_pr.h>

#include "committed.h"
#include "timeutil.h"

/* One datagram of one lane's batch, before the lanes are compared. */
struct seen {
	uint64_t seq, sender, dseq;
	unsigned lane;
};

struct collect {
	struct seen *v;
	size_t n, cap;
	unsigned lane;
	int64_t since_ms;
	const char *appliance;
	int err;
	uint64_t seq; /* the batch being unpacked */
};

static void add_one(void *arg, uint64_t sender, uint64_t dseq)
{
	struct collect *c = arg;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 4096;
		void *p = realloc(c->v, cap * sizeof(*c->v));

		if (p == NULL) {
			c->err = -ENOMEM;
			return;
		}
		c->v = p;
		c->cap = cap;
	}
	c->v[c->n++] = (struct seen){c->seq, sender, dseq, c->lane};
}

static void from_sink(void *arg, const char *appliance, uint64_t seq, const uint8_t *blob,
		      size_t len)
{
	struct collect *c = arg;

	(void)appliance;
	c->seq = seq;
	if (tally_dgrams_unpack(blob, len, add_one, c) != 0)
		fprintf(stderr, "tallyd: committed: batch %llu's datagram list is damaged; "
			"passed over\n", (unsigned long long)seq);
}

static int from_spool(const struct tally_batch *b, int64_t appended_ms, void *arg)
{
	struct collect *c = arg;

	if (appended_ms < c->since_ms || strcmp(b->appliance, c->appliance) != 0)
		return 0;
	c->seq = b->seq;
	for (uint32_t i = 0; i < b->ndgrams; i++)
		add_one(c, b->dgrams[i].sender, b->dgrams[i].seq);
	return c->err;
}

static int cmp_seen(const void *pa, const void *pb)
{
	const struct seen *a = pa, *b = pb;

	if (a->seq != b->seq)
		return a->seq < b->seq ? -1 : 1;
	if (a->sender != b->sender)
		return a->sender < b->sender ? -1 : 1;
	if (a->dseq != b->dseq)
		return a->dseq < b->dseq ? -1 : 1;
	return a->lane < b->lane ? -1 : a->lane > b->lane;
}

/* A set with room for its own ids and n more. */
static struct tally_dgset *grow_set(struct tally_dgset *old, uint64_t n)
{
	struct tally_dgset *s = tally_dgset_create((old ? old->n : 0) + n);

	if (s == NULL || old == NULL)
		return s;
	for (uint64_t i = 0; i <= old->mask; i++)
		tally_dgset_add(s, old->slot[i].sender, old->slot[i].seq);
	tally_dgset_free(old);
	return s;
}

/* Into *set: with lanes > 1, only what every lane holds (distinct lanes of
 * equal (seq, datagram) runs counted). */
static int to_set(struct collect *c, unsigned lanes, struct tally_dgset **set)
{
	struct tally_dgset *s;

	if (c->n == 0)
		return 0;
	s = *set = grow_set(*set, c->n);
	if (s == NULL)
		return -ENOMEM;
	if (lanes > 1)
		qsort(c->v, c->n, sizeof(*c->v), cmp_seen);
	for (size_t i = 0; i < c->n;) {
		size_t j = i + 1;
		unsigned distinct = 1;

		while (lanes > 1 && j < c->n && c->v[j].seq == c->v[i].seq &&
		       c->v[j].sender == c->v[i].sender && c->v[j].dseq == c->v[i].dseq) {
			distinct += c->v[j].lane != c->v[j - 1].lane;
			j++;
		}
		if (distinct >= lanes)
			tally_dgset_add(s, c->v[i].sender, c->v[i].dseq);
		i = j;
	}
	return 0;
}

int tally_committed_load(struct tally_lane *lanes, unsigned nlanes, const char *appliance,
			 bool others, int64_t since_ms, struct tally_dgset **set, char *err,
			 size_t errlen)
{
	struct collect c = {.since_ms = since_ms, .appliance = appliance};
	int r = 0;

	for (unsigned i = 0; i < nlanes && r == 0; i++) {
		struct tally_lane *l = &lanes[i];
		char e[256];

		c.lane = i;
		if (l->sink == NULL && (l->sink = l->open(l->open_arg, e, sizeof(e))) == NULL) {
			snprintf(err, errlen, "sink %s: %s", l->name, e);
			r = -ECONNREFUSED;
			break;
		}
		if (l->sink->ops->dgrams_since == NULL) {
			snprintf(err, errlen, "sink %s (%s) keeps no datagram lists", l->name,
				 l->sink->name);
			r = -EOPNOTSUPP;
			break;
		}
		r = l->sink->ops->dgrams_since(l->sink, others ? NULL : appliance,
					       others ? appliance : NULL, since_ms, from_sink, &c);
		if (r != 0)
			snprintf(err, errlen, "sink %s: %s", l->name, l->sink->err);
		else if (!others && l->spool != NULL)
			r = tally_spool_walk(l->spool, from_spool, &c);
		r = r ? r : c.err;
	}
	if (r == 0)
		r = to_set(&c, others ? 1 : nlanes, set);
	if (r == -ENOMEM)
		snprintf(err, errlen, "committed datagrams: out of memory");
	free(c.v);
	return r;
}

/* One refresh: this appliance's datagrams while within the horizon, and what
 * the others committed in it; offered if the control thread took the last. */
static void refresh(struct tally_committed_refresher *r)
{
	int64_t since = tally_wall_ms() - (int64_t)r->horizon_ms;
	struct tally_dgset *s = NULL;
	char err[320];
	int e;

	if (r->own != NULL && tally_mono_ms() < r->own_until_ms &&
	    (s = grow_set(NULL, r->own->n)) != NULL)
		for (uint64_t i = 0; i <= r->own->mask; i++)
			tally_dgset_add(s, r->own->slot[i].sender, r->own->slot[i].seq);
	e = tally_committed_load(r->lanes, r->nlanes, r->appliance, true, since, &s, err,
				 sizeof(err));
	if (e != 0) {
		ck_pr_inc_64(&r->errors);
		snprintf(r->last_err, sizeof(r->last_err), "%s", err);
		tally_dgset_free(s);
		return;
	}
	ck_pr_inc_64(&r->refreshes);
	if (s == NULL)
		s = tally_dgset_create(0); /* "none now": replaces an older set */
	if (s != NULL && !ck_pr_cas_ptr(&r->next, NULL, s))
		tally_dgset_free(s); /* the last one is still waiting: next time */
}

static void *refresher_main(void *arg)
{
	struct tally_committed_refresher *r = arg;

	setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
	while (!ck_pr_load_int(&r->stop)) {
		refresh(r);
		for (uint64_t t = 0; t < r->refresh_ms && !ck_pr_load_int(&r->stop); t += 10)
			usleep(10000);
	}
	for (unsigned i = 0; i < r->nlanes; i++)
		if (r->lanes[i].sink != NULL)
			r->lanes[i].sink->ops->close(r->lanes[i].sink);
	return NULL;
}

int tally_committed_start(struct tally_committed_refresher *r, const struct tally_writer *w,
			  char *err, size_t errlen)
{
	int e;

	r->nlanes = w->nlanes;
	for (unsigned i = 0; i < w->nlanes; i++)
		r->lanes[i] = (struct tally_lane){.open = w->lanes[i].open,
						  .open_arg = w->lanes[i].open_arg};
	for (unsigned i = 0; i < w->nlanes; i++)
		snprintf(r->lanes[i].name, sizeof(r->lanes[i].name), "%s", w->lanes[i].name);
	e = pthread_create(&r->thread, NULL, refresher_main, r);
	if (e != 0) {
		snprintf(err, errlen, "committed datagrams: cannot start thread: %s", strerror(e));
		return -e;
	}
	pthread_setname_np(r->thread, "tally-committed");
	r->running = true;
	return 0;
}

struct tally_dgset *tally_committed_take(struct tally_committed_refresher *r)
{
	return ck_pr_fas_ptr(&r->next, NULL);
}

void tally_committed_stop(struct tally_committed_refresher *r)
{
	if (!r->running)
		return;
	ck_pr_store_int(&r->stop, 1);
	pthread_join(r->thread, NULL);
	r->running = false;
	tally_dgset_free(tally_committed_take(r));
}
