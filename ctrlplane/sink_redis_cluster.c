/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The Redis Cluster sink, on plain hiredis connections (hiredis 0.14 has no
 * cluster support). Same hashes and chunk script as the Redis sink
 * (redis_common.h), plus routing: a key's slot is CRC16-XMODEM of its name (or
 * of its hash tag) mod 16384, and the slot's master comes from CLUSTER SLOTS,
 * read at open and again after a MOVED reply or a lost connection.
 *
 * A Lua script may touch keys of one slot only, so a batch is grouped by slot
 * (a counting sort, batch order kept within a slot) and cut into one call per
 * (slot, chunk); each call carries its own marker
 * `P b:<appliance>:<seq>:<slot>:<chunk>:{t}`, where the tag t is a short string
 * that hashes to that slot, so the marker lives beside its rows and the script
 * sets it atomically with them. Calls go pipelined, one stream per master. A
 * call met with MOVED is resent to the new owner, ASK once with ASKING,
 * NOSCRIPT with EVAL; a dead master's calls wait for a topology refresh. After
 * TALLY_CLUSTER_ROUNDS rounds whatever is not done makes the write fail
 * transiently: the retry (same seq) skips every call already applied.
 *
 * Failover: replication is asynchronous, so a master killed after answering
 * may take the batch with it. Each master with a replica (CLUSTER NODES: any
 * replica not flagged fail, synced or not) is therefore sent WAIT 1 after its
 * calls, on the connection that ran them; without an acknowledgement, or if
 * that connection was lost, the write fails transiently and is retried.
 * `P seq:<appliance>` is raised (and WAITed for) before any call, so last_seq
 * never falls below a seq whose markers exist.
 *
 * Time: no call of a write waits more than sink_timeout_ms after the last
 * reply the write got, so dead or stopped nodes (in calls, rounds, refreshes)
 * cost one timeout per write, not one per node and attempt. Each write starts
 * by re-reading the topology (CLUSTER SLOTS and NODES, two round trips) from a
 * node that did not fail last.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "gauge.h"
#include "redis_common.h"
#include "sink.h"

#define TALLY_CLUSTER_NODES 64
#define TALLY_CLUSTER_SEEDS 16
#define TALLY_CLUSTER_ROUNDS 3

static const uint16_t crc16_table[256] = {
	0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7,
	0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef,
	0x1231, 0x0210, 0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6,
	0x9339, 0x8318, 0xb37b, 0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de,
	0x2462, 0x3443, 0x0420, 0x1401, 0x64e6, 0x74c7, 0x44a4, 0x5485,
	0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee, 0xf5cf, 0xc5ac, 0xd58d,
	0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6, 0x5695, 0x46b4,
	0xb75b, 0xa77a, 0x9719, 0x8738, 0xf7df, 0xe7fe, 0xd79d, 0xc7bc,
	0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
	0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b,
	0x5af5, 0x4ad4, 0x7ab7, 0x6a96, 0x1a71, 0x0a50, 0x3a33, 0x2a12,
	0xdbfd, 0xcbdc, 0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a,
	0x6ca6, 0x7c87, 0x4ce4, 0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41,
	0xedae, 0xfd8f, 0xcdec, 0xddcd, 0xad2a, 0xbd0b, 0x8d68, 0x9d49,
	0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13, 0x2e32, 0x1e51, 0x0e70,
	0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a, 0x9f59, 0x8f78,
	0x9188, 0x81a9, 0xb1ca, 0xa1eb, 0xd10c, 0xc12d, 0xf14e, 0xe16f,
	0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
	0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e,
	0x02b1, 0x1290, 0x22f3, 0x32d2, 0x4235, 0x5214, 0x6277, 0x7256,
	0xb5ea, 0xa5cb, 0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d,
	0x34e2, 0x24c3, 0x14a0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405,
	0xa7db, 0xb7fa, 0x8799, 0x97b8, 0xe75f, 0xf77e, 0xc71d, 0xd73c,
	0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657, 0x7676, 0x4615, 0x5634,
	0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9, 0xb98a, 0xa9ab,
	0x5844, 0x4865, 0x7806, 0x6827, 0x18c0, 0x08e1, 0x3882, 0x28a3,
	0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
	0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92,
	0xfd2e, 0xed0f, 0xdd6c, 0xcd4d, 0xbdaa, 0xad8b, 0x9de8, 0x8dc9,
	0x7c26, 0x6c07, 0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1,
	0xef1f, 0xff3e, 0xcf5d, 0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8,
	0x6e17, 0x7e36, 0x4e55, 0x5e74, 0x2e93, 0x3eb2, 0x0ed1, 0x1ef0,
};

uint16_t tally_redis_crc16(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint16_t crc = 0;

	for (size_t i = 0; i < len; i++)
		crc = (uint16_t)(crc << 8) ^ crc16_table[((crc >> 8) ^ p[i]) & 0xff];
	return crc;
}

unsigned tally_redis_keyslot(const void *key, size_t len)
{
	const char *k = key, *open = memchr(k, '{', len), *close;

	if (open != NULL) {
		size_t rest = len - (size_t)(open - k) - 1;

		close = memchr(open + 1, '}', rest);
		if (close != NULL && close > open + 1)
			return tally_redis_crc16(open + 1, (size_t)(close - open - 1)) % TALLY_REDIS_SLOTS;
	}
	return tally_redis_crc16(k, len) % TALLY_REDIS_SLOTS;
}

int tally_redis_slot_tags(char (*tags)[8])
{
	unsigned left = TALLY_REDIS_SLOTS;

	for (unsigned s = 0; s < TALLY_REDIS_SLOTS; s++)
		tags[s][0] = '\0';
	for (unsigned i = 0; left > 0 && i < (1u << 24); i++) {
		char t[8];
		int n = snprintf(t, sizeof(t), "%x", i);
		unsigned s = tally_redis_crc16(t, (size_t)n) % TALLY_REDIS_SLOTS;

		if (tags[s][0] == '\0') {
			memcpy(tags[s], t, (size_t)n + 1);
			left--;
		}
	}
	return left == 0 ? 0 : -ENOENT;
}

struct sink_cluster {
	struct tally_sink base;
	struct tally_redis_node nodes[TALLY_CLUSTER_NODES];
	int nnodes;
	struct tally_redis_node seeds[TALLY_CLUSTER_SEEDS];
	int nseeds;
	int16_t owner[TALLY_REDIS_SLOTS]; /* node index, -1 unknown */
	char tags[TALLY_REDIS_SLOTS][8];
	char password[TALLY_CFG_STR_MAX];
	char prefix[64];
	char sha[41];
	uint64_t timeout_ms;
	uint64_t deadline;  /* monotonic ms: no call of this write waits past it */
	struct tally_redis_job job;
	uint32_t *idx, *slot_count;
	int *row_slot, *slot_of;
	size_t rows_cap;
	struct tally_redis_call *calls;
	struct tally_redis_call **todo;
	size_t calls_cap;
	char key[512]; /* one row key, to hash */
};

static uint64_t mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* A reply came: the next call may again wait up to the whole timeout. */
static void progress(struct sink_cluster *s, struct tally_redis_node *n)
{
	s->deadline = mono_ms() + s->timeout_ms;
	n->bad = false;
}

static uint64_t budget_ms(const struct sink_cluster *s)
{
	uint64_t now = mono_ms();

	return s->deadline > now ? s->deadline - now : 0;
}

/* Connect if needed, and bound n's next calls by what is left of the write's
 * time: so a write that meets dead or stopped nodes (one after another, in
 * refreshes and rounds) still returns within about sink_timeout_ms. */
static int node_connect(struct sink_cluster *s, struct tally_redis_node *n)
{
	uint64_t left = budget_ms(s);

	if (left == 0) {
		char last[sizeof(s->base.err)];

		if (strncmp(s->base.err, "redis-cluster: no answer", 24) == 0)
			return -ETIMEDOUT;
		memcpy(last, s->base.err, sizeof(last));
		snprintf(s->base.err, sizeof(s->base.err), "redis-cluster: no answer within "
			 "sink_timeout_ms (%llu ms); last: %.150s", (unsigned long long)s->timeout_ms,
			 last);
		return -ETIMEDOUT;
	}
	if (n->c != NULL)
		return tally_redis_arm(n, left, s->base.err, sizeof(s->base.err));
	return tally_redis_connect(n, s->password, left, s->sha, s->base.err, sizeof(s->base.err));
}

/* The node at host:port, added if new; -ENOSPC when the table is full. */
static int node_find(struct sink_cluster *s, const char *host, int port)
{
	for (int i = 0; i < s->nnodes; i++)
		if (s->nodes[i].port == port && strcmp(s->nodes[i].host, host) == 0)
			return i;
	if (s->nnodes == TALLY_CLUSTER_NODES) {
		snprintf(s->base.err, sizeof(s->base.err), "redis-cluster: more than %d masters",
			 TALLY_CLUSTER_NODES);
		return -ENOSPC;
	}
	s->nodes[s->nnodes] = (struct tally_redis_node){.port = port};
	snprintf(s->nodes[s->nnodes].host, sizeof(s->nodes[0].host), "%s", host);
	return s->nnodes++;
}

/* One CLUSTER SLOTS entry: [start, end, [host, port, id], replica...]. */
static int apply_slots_entry(struct sink_cluster *s, const struct tally_redis_node *from,
			     const redisReply *e, int16_t *owner)
{
	const redisReply *m;
	int i;

	if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
	    e->element[0]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_ARRAY ||
	    e->element[2]->elements < 2 || e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
		return -EPROTO;
	m = e->element[2];
	i = node_find(s, m->element[0]->type == REDIS_REPLY_STRING && m->element[0]->len > 0 ?
			 m->element[0]->str : from->host, (int)m->element[1]->integer);
	if (i < 0)
		return i;
	if (m->elements >= 3 && m->element[2]->type == REDIS_REPLY_STRING)
		snprintf(s->nodes[i].id, sizeof(s->nodes[i].id), "%s", m->element[2]->str);
	for (long long x = e->element[0]->integer; x <= e->element[1]->integer; x++)
		if (x >= 0 && x < TALLY_REDIS_SLOTS)
			owner[x] = (int16_t)i;
	return 0;
}

/* Does a CLUSTER NODES line's flags field name a replica that may hold data? */
static bool live_replica(const char *flags, size_t len)
{
	char f[128];
	bool replica = false, gone = false;
	char *save = NULL;

	snprintf(f, sizeof(f), "%.*s", (int)(len < sizeof(f) ? len : sizeof(f) - 1), flags);
	for (char *t = strtok_r(f, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		replica = replica || strcmp(t, "slave") == 0 || strcmp(t, "replica") == 0;
		gone = gone || strcmp(t, "fail") == 0 || strcmp(t, "noaddr") == 0;
	}
	return replica && !gone;
}

/* One CLUSTER NODES line, "<id> <addr> <flags> <master id> ...": count the
 * replica for its master. */
static void count_line(struct sink_cluster *s, const char *l, size_t len)
{
	const char *f[4];
	size_t fl[4], at = 0;

	for (int k = 0; k < 4; k++) {
		size_t n = strcspn(l + at, " ");

		if (at + n >= len)
			return;
		f[k] = l + at;
		fl[k] = n;
		at += n + 1;
	}
	if (!live_replica(f[2], fl[2]))
		return;
	for (int i = 0; i < s->nnodes; i++)
		if (strlen(s->nodes[i].id) == fl[3] && memcmp(f[3], s->nodes[i].id, fl[3]) == 0)
			s->nodes[i].replicas++;
}

/*
 * Replicas per master, from CLUSTER NODES (the cluster's configuration), not
 * from CLUSTER SLOTS: Redis 7 leaves out of CLUSTER SLOTS a replica that has
 * not finished its first sync (offset 0). Counting from there, a sink opened
 * on a new cluster saw no replica, never sent WAIT, and reported batches
 * APPLIED that a failover then lost whole (test_sink_redis_live: seq 8 and 9
 * re-applied on the promoted replica). A replica flagged fail cannot ack, and
 * its master must not stall for it: it does not count.
 */
static int count_replicas(struct sink_cluster *s, struct tally_redis_node *n)
{
	const char *argv[] = {"CLUSTER", "NODES"};
	redisReply *r;
	int e = 0;

	if ((r = tally_redis_command(n, "CLUSTER NODES", s->base.err, sizeof(s->base.err), &e, 2,
				     argv)) == NULL)
		return e;
	if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS) {
		freeReplyObject(r);
		return -EPROTO;
	}
	for (int i = 0; i < s->nnodes; i++)
		s->nodes[i].replicas = 0;
	for (const char *l = r->str; *l != '\0';) {
		size_t len = strcspn(l, "\n");

		count_line(s, l, len);
		l += len + (l[len] != '\0');
	}
	freeReplyObject(r);
	return 0;
}

/* Ask n for CLUSTER SLOTS and CLUSTER NODES, and take its answer. */
static int slots_from(struct sink_cluster *s, struct tally_redis_node *n)
{
	const char *argv[] = {"CLUSTER", "SLOTS"};
	int16_t owner[TALLY_REDIS_SLOTS];
	redisReply *r;
	int e = node_connect(s, n);

	if (e < 0 || (r = tally_redis_command(n, "CLUSTER SLOTS", s->base.err, sizeof(s->base.err),
					       &e, 2, argv)) == NULL)
		return e;
	memset(owner, 0xff, sizeof(owner));
	if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
		e = r->type == REDIS_REPLY_ERROR ? tally_redis_reply_errno(r->str) : -EAGAIN;
		if (r->type != REDIS_REPLY_ERROR)
			snprintf(s->base.err, sizeof(s->base.err), "redis %s:%d: CLUSTER SLOTS: "
				 "no slots assigned", n->host, n->port);
	}
	for (size_t i = 0; e == 0 && i < r->elements; i++)
		e = apply_slots_entry(s, n, r->element[i], owner);
	freeReplyObject(r);
	if (e == 0 && (e = count_replicas(s, n)) == 0) {
		memcpy(s->owner, owner, sizeof(owner));
		progress(s, n);
	}
	return e;
}

/* Learn the topology from any node that answers: known masters that did not
 * fail last, then those that did, then seeds, while the write has time. */
static int refresh(struct sink_cluster *s)
{
	int e = -EHOSTUNREACH;

	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < s->nnodes; i++)
			if (s->nodes[i].bad == (pass == 1) && (e = slots_from(s, &s->nodes[i])) == 0)
				return 0;
	for (int i = 0; i < s->nseeds && budget_ms(s) > 0; i++) {
		e = slots_from(s, &s->seeds[i]);
		tally_redis_close(&s->seeds[i]);
		if (e == 0)
			return 0;
	}
	return e;
}

/* Run one command on the owner of slot, following MOVED/ASK (refreshing). */
static redisReply *slot_command(struct sink_cluster *s, unsigned slot, const char *what,
				int argc, const char **argv, const size_t *argl, int *node, int *e)
{
	for (int round = 0; round < TALLY_CLUSTER_ROUNDS; round++) {
		redisReply *r;

		*node = s->owner[slot];
		if (*node < 0 || (*e = node_connect(s, &s->nodes[*node])) < 0) {
			if (*node < 0)
				*e = -EAGAIN;
			refresh(s);
			continue;
		}
		r = redisCommandArgv(s->nodes[*node].c, argc, argv, argl);
		if (r == NULL) {
			*e = tally_redis_io_error(&s->nodes[*node], what, s->base.err,
						  sizeof(s->base.err));
			refresh(s);
			continue;
		}
		progress(s, &s->nodes[*node]);
		if (r->type != REDIS_REPLY_ERROR || tally_redis_reply_errno(r->str) != -EAGAIN)
			return r;
		*e = -EAGAIN;
		snprintf(s->base.err, sizeof(s->base.err), "redis %s:%d: %s: %.160s",
			 s->nodes[*node].host, s->nodes[*node].port, what, r->str);
		freeReplyObject(r);
		refresh(s);
	}
	return NULL;
}

/* WAIT for a replica of n, within the write's time (the socket outlives WAIT). */
static int wait_node(struct sink_cluster *s, struct tally_redis_node *n)
{
	int e;

	if (n->replicas <= 0)
		return 0;
	if ((e = node_connect(s, n)) < 0)
		return e;
	e = tally_redis_wait_replica(n, budget_ms(s) / 2 + 1, s->base.err, sizeof(s->base.err));
	if (e == 0)
		progress(s, n);
	return e;
}

/* Raise P seq:<appliance> to b->seq, replicated, before any row is written. */
static int reserve_seq(struct sink_cluster *s, const struct tally_batch *b)
{
	char key[400], seq[24];
	size_t kl = tally_redis_seq_key(key, sizeof(key), s->prefix, b->appliance);
	const char *argv[] = {"EVAL", tally_redis_seq_script, "1", key, seq};
	size_t argl[] = {4, strlen(tally_redis_seq_script), 1, kl, 0};
	redisReply *r;
	int node, e = 0;

	argl[4] = (size_t)snprintf(seq, sizeof(seq), "%llu", (unsigned long long)b->seq);
	r = slot_command(s, tally_redis_keyslot(key, kl), "raise seq", 5, argv, argl, &node, &e);
	if (r == NULL)
		return e;
	if (r->type == REDIS_REPLY_ERROR) {
		e = tally_redis_reply_errno(r->str);
		snprintf(s->base.err, sizeof(s->base.err), "redis %s:%d: raise seq: %.160s",
			 s->nodes[node].host, s->nodes[node].port, r->str);
	}
	freeReplyObject(r);
	return e < 0 ? e : wait_node(s, &s->nodes[node]);
}

static int reserve(struct sink_cluster *s, uint32_t nrows)
{
	size_t ncalls = nrows / TALLY_REDIS_CHUNK + (nrows < TALLY_REDIS_SLOTS ? nrows : TALLY_REDIS_SLOTS) + 1;

	if (nrows > s->rows_cap) {
		free(s->idx);
		free(s->row_slot);
		free(s->slot_of);
		s->idx = malloc(nrows * sizeof(*s->idx));
		s->row_slot = malloc(nrows * sizeof(*s->row_slot));
		s->slot_of = malloc(nrows * sizeof(*s->slot_of));
		s->rows_cap = s->idx && s->row_slot && s->slot_of ? nrows : 0;
		if (s->rows_cap == 0)
			return -ENOMEM;
	}
	if (ncalls > s->calls_cap) {
		free(s->calls);
		free(s->todo);
		s->calls = malloc(ncalls * sizeof(*s->calls));
		s->todo = malloc(ncalls * sizeof(*s->todo));
		s->calls_cap = s->calls && s->todo ? ncalls : 0;
		if (s->calls_cap == 0)
			return -ENOMEM;
	}
	return 0;
}

/* idx: rows grouped by slot (counting sort, batch order kept); slot_of: their slots. */
static void group_by_slot(struct sink_cluster *s, const struct tally_batch *b)
{
	uint32_t *start = s->slot_count;

	memset(start, 0, (TALLY_REDIS_SLOTS + 1) * sizeof(*start));
	for (uint32_t i = 0; i < b->nrows; i++) {
		const struct tally_batch_row *r = &b->rows[i];
		size_t n = tally_redis_row_key(s->key, sizeof(s->key), s->prefix, b->window_ms,
					       r->win_start, tally_batch_key(b, r), r->key_len);

		s->row_slot[i] = (int)tally_redis_keyslot(s->key, n);
		start[s->row_slot[i] + 1]++;
	}
	for (unsigned x = 0; x < TALLY_REDIS_SLOTS; x++)
		start[x + 1] += start[x];
	for (uint32_t i = 0; i < b->nrows; i++) {
		uint32_t at = start[s->row_slot[i]]++;

		s->idx[at] = i;
		s->slot_of[at] = s->row_slot[i];
	}
}

static bool call_done(const struct tally_redis_call *c)
{
	return c->state == TALLY_REDIS_APPLIED || c->state == TALLY_REDIS_SKIPPED ||
	       c->state == TALLY_REDIS_FAILED;
}

/* Where each call not done goes this round; false if some slot has no owner. */
static bool route(struct sink_cluster *s, size_t ncalls)
{
	bool all = true;

	for (size_t i = 0; i < ncalls; i++) {
		struct tally_redis_call *c = &s->calls[i];
		char host[64];
		int port, n;

		if (call_done(c))
			continue;
		if ((c->state == TALLY_REDIS_MOVED || c->state == TALLY_REDIS_ASK) &&
		    tally_redis_parse_addr(c->redirect, host, sizeof(host), &port) == 0 &&
		    (n = node_find(s, host, port)) >= 0) {
			c->asking = c->state == TALLY_REDIS_ASK;
			if (c->state == TALLY_REDIS_MOVED)
				s->owner[c->slot] = (int16_t)n;
			c->node = n;
		} else {
			c->node = s->owner[c->slot];
		}
		if (c->state != TALLY_REDIS_NOSCRIPT)
			c->state = TALLY_REDIS_PENDING;
		all = all && c->node >= 0;
	}
	return all;
}

/* Send node's calls not done; false when the topology should be refreshed. */
static bool send_node(struct sink_cluster *s, int node, size_t ncalls)
{
	struct tally_redis_node *n = &s->nodes[node];
	size_t k = 0;
	int e;

	for (size_t i = 0; i < ncalls; i++)
		if (!call_done(&s->calls[i]) && s->calls[i].node == node)
			s->todo[k++] = &s->calls[i];
	if (k == 0)
		return true;
	e = node_connect(s, n);
	if (e == 0)
		e = tally_redis_pipeline(&s->job, n, s->todo, k, s->base.err, sizeof(s->base.err));
	if (e == 0)
		progress(s, n);
	for (size_t i = 0; i < k; i++) {
		if (e < 0 && s->todo[i]->state == TALLY_REDIS_PENDING)
			s->todo[i]->err = e;
		if (s->todo[i]->state == TALLY_REDIS_MOVED || s->todo[i]->state == TALLY_REDIS_RETRY)
			e = e < 0 ? e : -EAGAIN;
	}
	return e == 0;
}

static int send_rounds(struct sink_cluster *s, size_t ncalls)
{
	for (int round = 0; round < TALLY_CLUSTER_ROUNDS; round++) {
		bool fresh = route(s, ncalls), done = true;

		for (int node = 0; node < s->nnodes; node++)
			fresh = send_node(s, node, ncalls) && fresh;
		for (size_t i = 0; i < ncalls; i++)
			done = done && call_done(&s->calls[i]);
		if (done)
			return 0;
		if (!fresh)
			refresh(s);
	}
	return 0;
}

/*
 * WAIT on every master that answered calls of this batch. WAIT covers the
 * writes of the connection it is sent on: if the connection that answered
 * some call is gone (an I/O error, a refresh that failed on it) and a new one
 * took its place, WAIT on the new one proves nothing about them, so the write
 * fails transiently; its retry skips those calls, rewriting their markers on
 * the new connection, and WAITs for that.
 */
static int wait_replicas(struct sink_cluster *s, size_t ncalls)
{
	for (int node = 0; node < s->nnodes; node++) {
		struct tally_redis_node *n = &s->nodes[node];
		bool used = false, lost = false;
		int e;

		for (size_t i = 0; i < ncalls; i++) {
			const struct tally_redis_call *c = &s->calls[i];

			if (c->node != node || (c->state != TALLY_REDIS_APPLIED &&
						c->state != TALLY_REDIS_SKIPPED))
				continue;
			used = true;
			lost = lost || n->c == NULL || c->gen != n->gen;
		}
		if (used && lost && n->replicas > 0) {
			snprintf(s->base.err, sizeof(s->base.err), "redis %s:%d: connection lost after "
				 "it applied chunks of the batch: their replication is unconfirmed",
				 n->host, n->port);
			return -EAGAIN;
		}
		if (used && (e = wait_node(s, n)) < 0)
			return e;
	}
	return 0;
}

static int cluster_write(struct tally_sink *base, const struct tally_batch *b)
{
	struct sink_cluster *s = (struct sink_cluster *)base;
	long ncalls;
	int e;

	if (reserve(s, b->nrows) < 0) {
		snprintf(s->base.err, sizeof(s->base.err), "redis-cluster: out of memory for %u rows",
			 b->nrows);
		return -ENOMEM;
	}
	s->deadline = mono_ms() + s->timeout_ms;
	/* Which masters have replicas changes under us (a failover leaves the
	 * new master alone until the old one returns as its replica): WAIT
	 * decisions need a current view. Best effort: on failure the old map
	 * stays and MOVED or a lost connection refresh again. */
	refresh(s);
	if ((e = reserve_seq(s, b)) < 0)
		return e;
	group_by_slot(s, b);
	ncalls = tally_redis_cut(s->slot_of, b->nrows, TALLY_REDIS_CHUNK, s->calls, s->calls_cap);
	if (ncalls < 0)
		return (int)ncalls;
	s->job.b = b;
	s->job.idx = s->idx;
	send_rounds(s, (size_t)ncalls);
	e = tally_redis_result(s->calls, (size_t)ncalls);
	if (e >= 0) {
		int w = wait_replicas(s, (size_t)ncalls);

		e = w < 0 ? w : e;
	}
	return e;
}

static int64_t cluster_last_seq(struct tally_sink *base, const char *appliance)
{
	struct sink_cluster *s = (struct sink_cluster *)base;
	char key[400];
	size_t kl = tally_redis_seq_key(key, sizeof(key), s->prefix, appliance);
	const char *argv[] = {"GET", key};
	size_t argl[] = {3, kl};
	redisReply *r;
	int node, e = 0;

	s->deadline = mono_ms() + s->timeout_ms;
	r = slot_command(s, tally_redis_keyslot(key, kl), "GET last seq", 2, argv, argl, &node, &e);
	if (r == NULL)
		return e;
	return tally_redis_seq_reply(&s->nodes[node], r, key, kl, s->base.err, sizeof(s->base.err));
}

/* Every master's gauge rows (a key's windows may sit in different slots). */
static int cluster_load_gauges(struct tally_sink *base, int64_t window_ms, struct tally_gauges *g)
{
	struct sink_cluster *s = (struct sink_cluster *)base;
	struct tally_gauges newest;
	int e;

	s->deadline = mono_ms() + s->timeout_ms;
	if ((e = refresh(s)) < 0)
		return e;
	tally_gauges_init(&newest);
	for (int i = 0; e == 0 && i < s->nnodes; i++)
		if ((e = node_connect(s, &s->nodes[i])) == 0)
			e = tally_redis_load_gauges(&s->nodes[i], s->prefix, window_ms, g, &newest,
						    s->base.err, sizeof(s->base.err));
	tally_gauges_free(&newest);
	return e;
}

static void cluster_close(struct tally_sink *base)
{
	struct sink_cluster *s = (struct sink_cluster *)base;

	for (int i = 0; i < s->nnodes; i++)
		tally_redis_close(&s->nodes[i]);
	for (int i = 0; i < s->nseeds; i++)
		tally_redis_close(&s->seeds[i]);
	tally_redis_job_free(&s->job);
	free(s->idx);
	free(s->row_slot);
	free(s->slot_of);
	free(s->slot_count);
	free(s->calls);
	free(s->todo);
	explicit_bzero(s->password, sizeof(s->password));
	free(s);
}

static const struct tally_sink_ops cluster_ops = {
	.write = cluster_write,
	.last_seq = cluster_last_seq,
	.close = cluster_close,
	.load_gauges = cluster_load_gauges,
};

static int parse_seeds(struct sink_cluster *s, const char *nodes, char *err, size_t errlen)
{
	char list[TALLY_CFG_STR_MAX * 4], *save = NULL;

	snprintf(list, sizeof(list), "%s", nodes);
	for (char *t = strtok_r(list, ", ", &save); t != NULL; t = strtok_r(NULL, ", ", &save)) {
		struct tally_redis_node *n = &s->seeds[s->nseeds];

		if (s->nseeds == TALLY_CLUSTER_SEEDS ||
		    tally_redis_parse_addr(t, n->host, sizeof(n->host), &n->port) < 0) {
			snprintf(err, errlen, "redis_cluster_nodes: \"%s\" is not host:port (or more "
				 "than %d seeds)", t, TALLY_CLUSTER_SEEDS);
			return -EINVAL;
		}
		s->nseeds++;
	}
	if (s->nseeds > 0)
		return 0;
	snprintf(err, errlen, "redis_cluster_nodes: no seed node given");
	return -EINVAL;
}

struct tally_sink *tally_sink_redis_cluster_open(const char *nodes, const char *password,
						 const char *prefix, uint64_t timeout_ms,
						 char *err, size_t errlen)
{
	struct sink_cluster *s = calloc(1, sizeof(*s));

	if (s == NULL || (s->slot_count = calloc(TALLY_REDIS_SLOTS + 1, sizeof(uint32_t))) == NULL) {
		free(s);
		snprintf(err, errlen, "redis-cluster: out of memory");
		return NULL;
	}
	s->base.ops = &cluster_ops;
	s->base.name = "redis-cluster";
	snprintf(s->password, sizeof(s->password), "%s", password != NULL ? password : "");
	snprintf(s->prefix, sizeof(s->prefix), "%s", prefix);
	s->timeout_ms = timeout_ms;
	memset(s->owner, 0xff, sizeof(s->owner));
	s->job = (struct tally_redis_job){.prefix = s->prefix, .sha = s->sha, .tags = s->tags};
	tally_pctl_parse(TALLY_PCTL_DEFAULT, &s->job.pct, err, errlen);
	s->deadline = mono_ms() + timeout_ms;
	if (parse_seeds(s, nodes, err, errlen) < 0 || tally_redis_slot_tags(s->tags) < 0 ||
	    refresh(s) < 0) {
		if (s->nseeds > 0)
			snprintf(err, errlen, "redis-cluster: no seed gave the topology: %s", s->base.err);
		cluster_close(&s->base);
		return NULL;
	}
	return &s->base;
}

static struct tally_sink *cluster_open_cfg(const struct tally_config *c, char *err, size_t errlen)
{
	struct tally_sink *s = tally_sink_redis_cluster_open(c->redis_cluster_nodes, c->redis_password,
					     c->redis_prefix, c->sink_timeout_ms, err, errlen);

	if (s != NULL &&
	    tally_pctl_parse(c->statsd_percentiles, &((struct sink_cluster *)s)->job.pct, err, errlen) != 0) {
		s->ops->close(s);
		return NULL;
	}
	return s;
}

static struct tally_sink_type cluster_type = {
	.name = "redis-cluster",
	.help = "a Redis Cluster (redis_cluster_nodes, redis_password, redis_prefix)",
	.open = cluster_open_cfg,
};
TALLY_SINK_REGISTER(cluster_type)
