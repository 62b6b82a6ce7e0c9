/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libtally's client (tally.h). One mutex guards everything; callers fill one
 * datagram per appliance, and a background thread seals datagrams that
 * lingered, reads acks, retransmits what timed out and runs each appliance's
 * circuit breaker. A datagram stays in memory, counted against
 * max_unacked_bytes, from its first event to its ack: that is the whole memory
 * bound, and what makes a retransmit byte-identical (same batch_seq, same
 * event ids) whichever appliance it goes to.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "backoff.h"
#include "ring.h"
#include "tally.h"
#include "tly1_enc.h"

/* A datagram from its first event to its ack. */
struct pend {
	struct pend *prev, *next; /* sent and unacked, in batch_seq order */
	struct pend *hnext;       /* hash chain by batch_seq */
	uint64_t seq, khash;      /* khash: its first key's, which failover follows */
	uint64_t born_ms, sent_ms, due_ms;
	uint32_t attempts, nevents;
	unsigned node;            /* where it was last sent (or is being filled for) */
	bool probe;               /* the one datagram a half-open breaker lets through */
	struct tally_cl_dgram d;
	uint8_t buf[];
};

struct node {
	char *name;
	int fd; /* UDP, connected: only this appliance's acks arrive on it */
	enum tally_breaker state;
	uint32_t fails;           /* datagrams lost with no ack at all since they left */
	uint64_t open_until, last_ack_ms;
	bool probe_out;
	struct pend *building;
};

struct tally_client {
	pthread_mutex_t mu;
	pthread_cond_t room, acked;
	pthread_t thr;
	int wake; /* eventfd: new lingering datagram, flush, close */
	bool stop, closing, thread_up;
	struct tally_opts o; /* appliances and mac_key not kept */
	uint8_t mac_key[16];
	struct node nodes[TALLY_CLIENT_MAX_APPLIANCES];
	unsigned n;
	struct tally_cl_ring ring;
	struct pend **buckets;
	uint32_t nbuckets;
	struct pend *head, *tail;
	uint64_t next_seq, next_id, rng, used, pend_size;
	struct tally_stats st;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void abs_deadline(struct timespec *ts, uint32_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static void wake_thread(struct tally_client *c)
{
	uint64_t one = 1;

	if (write(c->wake, &one, sizeof(one)) < 0) { /* full counter: already woken */
	}
}

/* ---- the pending table: a hash by batch_seq and a list in seq order ---- */

static struct pend **bucket(struct tally_client *c, uint64_t seq)
{
	return &c->buckets[seq & (c->nbuckets - 1)];
}

static struct pend *pend_find(struct tally_client *c, uint64_t seq)
{
	struct pend *p = *bucket(c, seq);

	while (p != NULL && p->seq != seq)
		p = p->hnext;
	return p;
}

static void pend_link(struct tally_client *c, struct pend *p)
{
	struct pend **b = bucket(c, p->seq);

	p->hnext = *b;
	*b = p;
	p->prev = c->tail;
	p->next = NULL;
	if (c->tail != NULL)
		c->tail->next = p;
	else
		c->head = p;
	c->tail = p;
}

/* Unlink, free, give the memory back and wake whoever waits on it. */
static void pend_done(struct tally_client *c, struct pend *p)
{
	struct pend **b = bucket(c, p->seq);

	while (*b != p)
		b = &(*b)->hnext;
	*b = p->hnext;
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		c->head = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	else
		c->tail = p->prev;
	if (p->probe)
		c->nodes[p->node].probe_out = false;
	c->used -= c->pend_size;
	c->st.unacked_datagrams--;
	c->st.unacked_events -= p->nevents;
	free(p);
	pthread_cond_broadcast(&c->room);
	pthread_cond_broadcast(&c->acked);
}

/* ---- breakers and routing ---- */

/* New events go to a closed appliance, or to a half-open one whose probe is
 * not out yet (their datagram becomes the probe). */
static bool usable(unsigned node, void *arg)
{
	struct node *n = &((struct tally_client *)arg)->nodes[node];

	return n->state == TALLY_BREAKER_CLOSED ||
	       (n->state == TALLY_BREAKER_HALF_OPEN && !n->probe_out);
}

static void transmit(struct tally_client *c, struct pend *p, uint64_t now)
{
	struct node *n = &c->nodes[p->node];

	if (send(n->fd, p->buf, p->d.len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		c->st.send_errors++; /* lost like a dropped datagram: the timeout resends it */
	p->sent_ms = now;
	p->due_ms = now + c->o.ack_timeout_ms +
		    tally_cl_backoff_ms(c->o.backoff_base_ms, c->o.backoff_max_ms, p->attempts,
					tally_cl_rand(&c->rng));
}

static void retransmit(struct tally_client *c, struct pend *p, uint64_t now)
{
	p->attempts++;
	c->st.retransmits++;
	transmit(c, p, now);
}

/* Move every datagram of a failed appliance to the next usable one on the
 * ring from its first key, as is (same batch_seq, same event ids). */
static void fail_over(struct tally_client *c, unsigned node, uint64_t now)
{
	for (struct pend *p = c->head; p != NULL; p = p->next) {
		if (p->node != node)
			continue;
		unsigned to = tally_cl_ring_pick(&c->ring, p->khash, usable, c);

		if (to == node)
			continue; /* nowhere else to go: its own timeouts keep resending */
		if (p->probe) {
			p->probe = false;
			c->nodes[node].probe_out = false;
		}
		p->node = to;
		c->st.failovers++;
		if (c->nodes[to].state == TALLY_BREAKER_HALF_OPEN) {
			p->probe = true;
			c->nodes[to].probe_out = true;
		}
		retransmit(c, p, now);
	}
}

static void seal_and_send(struct tally_client *c, unsigned node, uint64_t now);

static void breaker_open(struct tally_client *c, unsigned node, uint64_t now)
{
	struct node *n = &c->nodes[node];

	n->state = TALLY_BREAKER_OPEN;
	n->open_until = now + c->o.breaker_open_ms;
	n->probe_out = false;
	c->st.breaker_opens++;
	if (n->building != NULL)
		n->building->probe = false;
	if (n->building != NULL)
		seal_and_send(c, node, now); /* to the next appliance: its node is open */
	fail_over(c, node, now);
}

/* ---- building and sending datagrams ---- */

static void seal_and_send(struct tally_client *c, unsigned node, uint64_t now)
{
	struct pend *p = c->nodes[node].building;

	c->nodes[node].building = NULL;
	p->seq = c->next_seq++;
	tally_put_le64(p->buf + TALLY_TLY1_OFF_SEQ, p->seq);
	tally_cl_dgram_seal(&p->d, c->mac_key);
	if (c->nodes[node].state == TALLY_BREAKER_OPEN && !p->probe) {
		p->node = tally_cl_ring_pick(&c->ring, p->khash, usable, c);
		if (c->nodes[p->node].state == TALLY_BREAKER_HALF_OPEN) {
			p->probe = true;
			c->nodes[p->node].probe_out = true;
		}
	}
	pend_link(c, p);
	c->st.datagrams_sent++;
	c->st.events_sent += p->nevents;
	transmit(c, p, now);
}

static void send_all_building(struct tally_client *c, uint64_t now)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->nodes[i].building != NULL)
			seal_and_send(c, i, now);
}

static struct pend *pend_new(struct tally_client *c, unsigned node, uint64_t khash, uint64_t now)
{
	struct pend *p = malloc(c->pend_size);

	if (p == NULL)
		return NULL;
	memset(p, 0, sizeof(*p));
	p->node = node;
	p->khash = khash;
	p->born_ms = now;
	tally_cl_dgram_init(&p->d, p->buf, c->o.max_datagram, c->o.mac_key_id,
			    c->o.sender_id, 0 /* seq: at seal, so the list is in seq order */);
	if (c->nodes[node].state == TALLY_BREAKER_HALF_OPEN) {
		p->probe = true;
		c->nodes[node].probe_out = true;
	}
	c->nodes[node].building = p;
	c->used += c->pend_size;
	c->st.unacked_bytes = c->used;
	c->st.unacked_datagrams++;
	wake_thread(c); /* its linger deadline is new to the thread */
	return p;
}

static int add_event(struct pend *p, const struct tally_ev *ev, uint64_t id, uint64_t time_ms)
{
	int r = tally_cl_dgram_add(&p->d, (const uint8_t *)ev->key, (uint8_t)ev->key_len, id,
				   time_ms, ev->value);

	p->nevents += r == 0;
	return r; /* an empty datagram takes any valid event (check_opts) */
}

/* Add one checked event; waits for room while the memory bound is reached. */
static int enqueue(struct tally_client *c, const struct tally_ev *ev, uint64_t id,
		   uint64_t time_ms, uint64_t h)
{
	struct timespec until;
	bool waited = false;

	for (;;) {
		uint64_t now = mono_ms();
		unsigned node = tally_cl_ring_pick(&c->ring, h, usable, c);
		struct pend *p = c->nodes[node].building;

		if (p != NULL && add_event(p, ev, id, time_ms) == 0)
			return 0;
		if (p != NULL)
			seal_and_send(c, node, now);
		if (c->used + c->pend_size <= c->o.max_unacked_bytes) {
			/* Straight in, not routed again: a half-open node's new
			 * datagram is its probe and no longer "usable". */
			p = pend_new(c, node, h, now);
			return p == NULL ? -ENOMEM : add_event(p, ev, id, time_ms);
		}
		send_all_building(c, now); /* their acks are what frees memory */
		if (!waited) {
			waited = true;
			c->st.send_waits++;
			abs_deadline(&until, c->o.send_timeout_ms);
		}
		if (c->closing)
			return -ESHUTDOWN;
		if (pthread_cond_timedwait(&c->room, &c->mu, &until) == ETIMEDOUT &&
		    c->used + c->pend_size > c->o.max_unacked_bytes) {
			c->st.send_full++;
			return -ENOBUFS;
		}
	}
}

int tally_send_ev(struct tally_client *c, const struct tally_ev *ev, uint64_t *id_out)
{
	if (ev == NULL || ev->key == NULL || !tally_cl_key_valid((const uint8_t *)ev->key, ev->key_len))
		return -EINVAL;
	uint64_t h = tally_cl_key_hash(ev->key, ev->key_len);
	uint64_t t = ev->time_ms != 0 ? ev->time_ms : wall_ms();
	int r;

	pthread_mutex_lock(&c->mu);
	if (c->closing) {
		pthread_mutex_unlock(&c->mu);
		return -ESHUTDOWN;
	}
	uint64_t id = ev->id;
	if (id == 0) {
		id = c->next_id++;
		if (id == 0) /* 0 means "never dedup" on the wire: skip it */
			id = c->next_id++;
	}
	r = enqueue(c, ev, id, t, h);
	if (r == 0) {
		c->st.events_queued++;
		c->st.unacked_events++;
		if (id_out != NULL)
			*id_out = id;
	}
	c->st.unacked_bytes = c->used;
	pthread_mutex_unlock(&c->mu);
	return r;
}

int tally_send(struct tally_client *c, const char *key, int64_t value)
{
	struct tally_ev ev = {.key = key, .key_len = key != NULL ? strlen(key) : 0, .value = value};

	return tally_send_ev(c, &ev, NULL);
}

/* ---- acks and timeouts (the background thread, under the mutex) ---- */

static void on_ack(struct tally_client *c, unsigned from, const struct tally_cl_ack *a, uint64_t now)
{
	struct node *n = &c->nodes[from];
	struct pend *p;

	if (a->sender_id != c->o.sender_id || a->status > TALLY_ACK_OVERLOADED) {
		c->st.acks_bad++;
		return;
	}
	/* Any answer proves the appliance alive, whatever it says. */
	n->last_ack_ms = now;
	n->fails = 0;
	n->state = TALLY_BREAKER_CLOSED;
	p = pend_find(c, a->batch_seq);
	if (p == NULL) {
		c->st.acks_stale++;
		return;
	}
	switch (a->status) {
	case TALLY_ACK_COMMITTED:
	case TALLY_ACK_ACCEPTED:
		c->st.acks_committed += a->status == TALLY_ACK_COMMITTED;
		c->st.acks_accepted += a->status == TALLY_ACK_ACCEPTED;
		c->st.datagrams_acked++;
		c->st.events_acked += p->nevents;
		pend_done(c, p);
		break;
	case TALLY_ACK_MALFORMED:
	case TALLY_ACK_UNAUTHENTICATED:
		/* Resending the same bytes gets the same answer: drop, count. */
		c->st.datagrams_dropped++;
		c->st.events_dropped += p->nevents;
		pend_done(c, p);
		break;
	default: /* overloaded: alive, so no failover; back off and send again */
		c->st.acks_overloaded++;
		p->attempts++;
		p->due_ms = now + tally_cl_backoff_ms(c->o.backoff_base_ms, c->o.backoff_max_ms,
						      p->attempts, tally_cl_rand(&c->rng));
	}
}

/* A datagram's ack is late. It counts against its appliance only when nothing
 * at all came back from it since the datagram left: random loss of one
 * datagram or one ack is not a dead appliance. */
static void on_timeout(struct tally_client *c, struct pend *p, uint64_t now)
{
	unsigned node = p->node;
	struct node *n = &c->nodes[node];

	if (n->last_ack_ms < p->sent_ms && n->state != TALLY_BREAKER_OPEN) {
		n->fails++;
		if (p->probe || n->fails >= c->o.breaker_failures) {
			breaker_open(c, node, now); /* moved p too, if it could */
			if (p->sent_ms == now)
				return;
		}
	}
	retransmit(c, p, now);
}

/* One pass of timers; returns how long the thread may sleep. */
static uint64_t run_timers(struct tally_client *c, uint64_t now)
{
	uint64_t next = now + 100;

	for (unsigned i = 0; i < c->n; i++) {
		struct node *n = &c->nodes[i];

		if (n->state == TALLY_BREAKER_OPEN) {
			if (now >= n->open_until)
				n->state = TALLY_BREAKER_HALF_OPEN;
			else if (n->open_until < next)
				next = n->open_until;
		}
		if (n->building != NULL) {
			if (now >= n->building->born_ms + c->o.linger_ms)
				seal_and_send(c, i, now);
			else if (n->building->born_ms + c->o.linger_ms < next)
				next = n->building->born_ms + c->o.linger_ms;
		}
	}
	/* Every unacked datagram, each pass: at most max_unacked_bytes /
	 * max_datagram of them (~12,000 at the defaults), a few microseconds
	 * against the ack timeouts it serves; no timer heap to keep in step. */
	for (struct pend *p = c->head, *nx; p != NULL; p = nx) {
		nx = p->next;
		if (p->due_ms <= now)
			on_timeout(c, p, now);
		if (p->due_ms < next)
			next = p->due_ms;
	}
	return next > now ? next - now : 0;
}

#define ACK_BURST 256

struct rx_ack {
	unsigned from;
	struct tally_cl_ack a;
};

/* Read what the sockets hold, without the mutex. */
static unsigned read_acks(struct tally_client *c, struct pollfd *pfd, struct rx_ack *out,
			  uint64_t *bad)
{
	unsigned n = 0;

	for (unsigned i = 0; i < c->n; i++) {
		if (!(pfd[i].revents & (POLLIN | POLLERR)))
			continue;
		/* Bounded in tries, not only in acks: an error never spins here. */
		for (unsigned tries = 0; tries < ACK_BURST && n < ACK_BURST; tries++) {
			uint8_t b[64];
			ssize_t r = recv(pfd[i].fd, b, sizeof(b), MSG_DONTWAIT);

			if (r < 0) {
				if (errno != ECONNREFUSED)
					break; /* EAGAIN: drained */
				continue; /* an ICMP error, reported once: the timeouts judge */
			}
			if (tally_cl_ack_decode(b, (size_t)r, &out[n].a) != 0) {
				(*bad)++;
				continue;
			}
			out[n++].from = i;
		}
	}
	return n;
}

static void *client_thread(void *arg)
{
	struct tally_client *c = arg;
	struct pollfd pfd[TALLY_CLIENT_MAX_APPLIANCES + 1];
	struct rx_ack acks[ACK_BURST];

	for (unsigned i = 0; i < c->n; i++)
		pfd[i] = (struct pollfd){.fd = c->nodes[i].fd, .events = POLLIN};
	pfd[c->n] = (struct pollfd){.fd = c->wake, .events = POLLIN};
	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		uint64_t sleep_ms = run_timers(c, mono_ms()), bad = 0;

		pthread_mutex_unlock(&c->mu);
		if (poll(pfd, c->n + 1, (int)sleep_ms) > 0 && (pfd[c->n].revents & POLLIN)) {
			uint64_t v;

			if (read(c->wake, &v, sizeof(v)) < 0) { /* EAGAIN: another read took it */
			}
		}
		unsigned n = read_acks(c, pfd, acks, &bad);

		pthread_mutex_lock(&c->mu);
		uint64_t now = mono_ms();
		for (unsigned i = 0; i < n; i++)
			on_ack(c, acks[i].from, &acks[i].a, now);
		c->st.acks_bad += bad;
		c->st.unacked_bytes = c->used;
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* ---- flush, stats, lifetime ---- */

int tally_flush(struct tally_client *c, uint32_t timeout_ms)
{
	struct timespec until;
	int r = 0;

	abs_deadline(&until, timeout_ms);
	pthread_mutex_lock(&c->mu);
	send_all_building(c, mono_ms());
	uint64_t last = c->next_seq - 1; /* the list is in seq order: wait for its head */
	wake_thread(c);
	while (c->head != NULL && c->head->seq <= last && r == 0)
		if (pthread_cond_timedwait(&c->acked, &c->mu, &until) == ETIMEDOUT)
			r = -ETIMEDOUT;
	if (c->head == NULL || c->head->seq > last)
		r = 0;
	pthread_mutex_unlock(&c->mu);
	return r;
}

void tally_stats_get(struct tally_client *c, struct tally_stats *out)
{
	pthread_mutex_lock(&c->mu);
	c->st.unacked_bytes = c->used;
	*out = c->st;
	pthread_mutex_unlock(&c->mu);
}

int tally_appliance_state(struct tally_client *c, unsigned i, const char **name,
			  enum tally_breaker *state)
{
	if (i >= c->n)
		return -ERANGE;
	pthread_mutex_lock(&c->mu);
	if (name != NULL)
		*name = c->nodes[i].name;
	if (state != NULL)
		*state = c->nodes[i].state;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

void tally_opts_init(struct tally_opts *o)
{
	*o = (struct tally_opts){
		.max_unacked_bytes = 16u << 20,
		.max_datagram = 1400,
		.linger_ms = 5,
		.ack_timeout_ms = 2000,
		.backoff_base_ms = 100,
		.backoff_max_ms = 5000,
		.breaker_failures = 3,
		.breaker_open_ms = 2000,
		.send_timeout_ms = 1000,
		.vnodes = 160,
	};
}

/* The smallest datagram that takes any one valid event (a 255-byte key, MAC). */
#define MIN_DATAGRAM (TALLY_TLY1_HDR_LEN + TALLY_TLY1_EVT_FIXED + TALLY_KEY_MAX + TALLY_TLY1_MAC_LEN)

static int check_opts(const struct tally_opts *o)
{
	if (o->appliances == NULL || o->n_appliances == 0 ||
	    o->n_appliances > TALLY_CLIENT_MAX_APPLIANCES)
		return -EINVAL;
	if (o->max_datagram < MIN_DATAGRAM || o->max_datagram > 65507)
		return -EINVAL;
	if (o->max_unacked_bytes < sizeof(struct pend) + o->max_datagram)
		return -EINVAL;
	if (o->ack_timeout_ms == 0 || o->breaker_failures == 0 || o->vnodes == 0)
		return -EINVAL;
	if ((o->mac_key_id != 0) != (o->mac_key != NULL))
		return -EINVAL;
	return 0;
}

/* "host:port" or "[v6addr]:port" -> a connected, non-blocking UDP socket. */
static int open_appliance(const char *spec)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	size_t hl = colon != NULL ? (size_t)(colon - spec) : 0;
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *ai = NULL;

	if (colon == NULL || hl == 0 || hl >= sizeof(host) || colon[1] == '\0')
		return -EINVAL;
	if (spec[0] == '[' && hl >= 2 && spec[hl - 1] == ']') {
		memcpy(host, spec + 1, hl - 2);
		host[hl - 2] = '\0';
	} else {
		memcpy(host, spec, hl);
		host[hl] = '\0';
	}
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || ai == NULL)
		return -EADDRNOTAVAIL;
	int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int r = fd < 0 ? -errno : 0;

	if (r == 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
		r = -errno;
	freeaddrinfo(ai);
	if (r != 0) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	/* Committed acks arrive in bursts, one per flush: room for thousands.
	 * FORCE passes rmem_max when allowed; the plain one is capped by it. */
	int rcv = 4 << 20;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	return fd;
}

static uint32_t pow2_at_least(uint64_t v)
{
	uint32_t p = 64;

	while (p < v && p < (1u << 22))
		p <<= 1;
	return p;
}

static void client_free(struct tally_client *c)
{
	for (unsigned i = 0; i < c->n; i++) {
		free(c->nodes[i].building);
		free(c->nodes[i].name);
		if (c->nodes[i].fd >= 0)
			close(c->nodes[i].fd);
	}
	for (struct pend *p = c->head, *nx; p != NULL; p = nx) {
		nx = p->next;
		free(p);
	}
	tally_cl_ring_free(&c->ring);
	free(c->buckets);
	if (c->wake >= 0)
		close(c->wake);
	pthread_cond_destroy(&c->room);
	pthread_cond_destroy(&c->acked);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static int client_ids(struct tally_client *c)
{
	if (sodium_init() < 0)
		return -EIO;
	while (c->o.sender_id == 0)
		randombytes_buf(&c->o.sender_id, sizeof(c->o.sender_id));
	c->next_id = c->o.id_base;
	if (c->next_id == 0)
		randombytes_buf(&c->next_id, sizeof(c->next_id));
	randombytes_buf(&c->rng, sizeof(c->rng));
	randombytes_buf(&c->next_seq, sizeof(c->next_seq));
	c->next_seq >>= 1; /* a random start: a restarted producer's seqs are new ones */
	return 0;
}

static int client_sync_init(struct tally_client *c)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->room, &ca);
	pthread_cond_init(&c->acked, &ca);
	pthread_condattr_destroy(&ca);
	c->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return c->wake < 0 ? -errno : 0;
}

static int client_nodes(struct tally_client *c, const struct tally_opts *o)
{
	for (unsigned i = 0; i < c->n; i++) {
		c->nodes[i].name = strdup(o->appliances[i]);
		if (c->nodes[i].name == NULL)
			return -ENOMEM;
		int fd = open_appliance(o->appliances[i]);
		if (fd < 0)
			return fd;
		c->nodes[i].fd = fd;
	}
	return tally_cl_ring_build(&c->ring, o->appliances, c->n, o->vnodes);
}

int tally_client_new(const struct tally_opts *o, struct tally_client **out)
{
	int r = check_opts(o);

	if (r != 0)
		return r;
	struct tally_client *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->wake = -1;
	for (unsigned i = 0; i < TALLY_CLIENT_MAX_APPLIANCES; i++)
		c->nodes[i].fd = -1;
	c->o = *o;
	c->o.appliances = NULL;
	c->o.mac_key = NULL;
	if (o->mac_key != NULL)
		memcpy(c->mac_key, o->mac_key, sizeof(c->mac_key));
	c->n = o->n_appliances;
	c->pend_size = sizeof(struct pend) + o->max_datagram;
	c->nbuckets = pow2_at_least(o->max_unacked_bytes / c->pend_size);
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	r = client_sync_init(c);
	if (r == 0 && c->buckets == NULL)
		r = -ENOMEM;
	if (r == 0)
		r = client_nodes(c, o);
	if (r == 0)
		r = client_ids(c);
	if (r == 0)
		r = -pthread_create(&c->thr, NULL, client_thread, c);
	if (r != 0) {
		client_free(c);
		return r;
	}
	c->thread_up = true;
	*out = c;
	return 0;
}

int tally_client_close(struct tally_client *c, uint32_t timeout_ms)
{
	int r = tally_flush(c, timeout_ms);

	pthread_mutex_lock(&c->mu);
	c->closing = true;
	c->stop = true;
	pthread_cond_broadcast(&c->room);
	pthread_mutex_unlock(&c->mu);
	wake_thread(c);
	if (c->thread_up)
		pthread_join(c->thr, NULL);
	client_free(c);
	return r;
}
