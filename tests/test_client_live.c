/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libtally against fake appliances on loopback (a thread each, parsing with the
 * dataplane's TLY1 parser and answering TLA1 acks as told): failover to the
 * next appliance with the same event ids, the half-open probe closing a
 * breaker again, overload answers retried, MAC signing verified (and a wrong
 * key dropped, not retried forever), the memory bound's -ENOBUFS, and four
 * threads sending on one client.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "counters.h"
#include "parse_tly1.h"
#include "tally.h"

enum fake_mode { FAKE_SILENT, FAKE_ACK, FAKE_OVERLOAD_FIRST };

struct fake {
	int fd;
	char name[32];
	_Atomic int mode;
	atomic_bool stop;
	pthread_t thr;
	pthread_mutex_t mu;
	uint64_t *ids; /* every event id received, repeats included */
	size_t nids, cap;
	uint64_t overloaded_seq[4096];
	unsigned noverloaded;
	struct tally_mac_keys keys;
	struct tally_event evs[TALLY_TLY1_MAX_COUNT];
};

static void fake_ack(struct fake *f, const struct sockaddr_in *to, uint8_t status,
		     const struct tally_tly1_hdr *h)
{
	uint8_t a[TALLY_TLA1_LEN] = "TLA1";

	a[4] = status;
	tally_put_le64(a + 8, h->sender_id);
	tally_put_le64(a + 16, h->batch_seq);
	(void)sendto(f->fd, a, sizeof(a), 0, (const struct sockaddr *)to, sizeof(*to));
}

static bool first_time(struct fake *f, uint64_t seq)
{
	for (unsigned i = 0; i < f->noverloaded; i++)
		if (f->overloaded_seq[i] == seq)
			return false;
	if (f->noverloaded < 4096)
		f->overloaded_seq[f->noverloaded++] = seq;
	return true;
}

static void fake_one(struct fake *f, const uint8_t *b, uint32_t len, const struct sockaddr_in *from)
{
	struct tally_evbuf out = {.ev = f->evs, .cap = TALLY_TLY1_MAX_COUNT};
	struct tally_tly1_hdr h;
	int r = tally_tly1_parse(b, len, &f->keys, &out, &h);
	int mode = atomic_load(&f->mode);

	if (r != TALLY_OK) {
		if (r == TALLY_C_TLY1_MAC_BAD || r == TALLY_C_TLY1_MAC_NO_KEY)
			fake_ack(f, from, TALLY_ACK_UNAUTHENTICATED, &h);
		return;
	}
	if (mode == FAKE_OVERLOAD_FIRST && first_time(f, h.batch_seq)) {
		fake_ack(f, from, TALLY_ACK_OVERLOADED, &h);
		return;
	}
	pthread_mutex_lock(&f->mu);
	for (uint32_t i = 0; i < out.n; i++) {
		if (f->nids == f->cap) {
			f->cap = f->cap ? 2 * f->cap : 4096;
			f->ids = realloc(f->ids, f->cap * sizeof(*f->ids));
		}
		f->ids[f->nids++] = f->evs[i].event_id;
	}
	pthread_mutex_unlock(&f->mu);
	if (mode != FAKE_SILENT)
		fake_ack(f, from, TALLY_ACK_COMMITTED, &h);
}

static void *fake_thread(void *arg)
{
	struct fake *f = arg;
	static _Thread_local uint8_t b[65536];

	while (!atomic_load(&f->stop)) {
		struct pollfd p = {.fd = f->fd, .events = POLLIN};
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);

		if (poll(&p, 1, 20) <= 0)
			continue;
		ssize_t n = recvfrom(f->fd, b, sizeof(b), 0, (struct sockaddr *)&from, &fl);
		if (n > 0)
			fake_one(f, b, (uint32_t)n, &from);
	}
	return NULL;
}

static struct fake *fake_start(enum fake_mode mode)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int rcv = 8 << 20;

	f->fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(f->fd >= 0);
	(void)setsockopt(f->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv));
	assert_int_equal(bind(f->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(f->fd, (struct sockaddr *)&a, &al), 0);
	snprintf(f->name, sizeof(f->name), "127.0.0.1:%u", ntohs(a.sin_port));
	atomic_store(&f->mode, mode);
	pthread_mutex_init(&f->mu, NULL);
	assert_int_equal(pthread_create(&f->thr, NULL, fake_thread, f), 0);
	return f;
}

static void fake_stop(struct fake *f)
{
	atomic_store(&f->stop, true);
	pthread_join(f->thr, NULL);
	close(f->fd);
	free(f->ids);
	free(f);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static bool has(const uint64_t *sorted, size_t n, uint64_t v)
{
	return bsearch(&v, sorted, n, sizeof(v), cmp_u64) != NULL;
}

/* Options for fast tests: short timeouts, small backoff. */
static void quick_opts(struct tally_opts *o, const char **names, unsigned n)
{
	tally_opts_init(o);
	o->appliances = names;
	o->n_appliances = n;
	o->ack_timeout_ms = 100;
	o->backoff_base_ms = 10;
	o->backoff_max_ms = 50;
	o->breaker_open_ms = 60000;
}

#define N_EVENTS 3000

static void send_keys(struct tally_client *c, unsigned n, uint64_t *ids)
{
	for (unsigned i = 0; i < n; i++) {
		char k[32];
		struct tally_ev ev = {.key = k, .value = 1};

		ev.key_len = (size_t)snprintf(k, sizeof(k), "key.%u", i % 500);
		assert_int_equal(tally_send_ev(c, &ev, &ids[i]), 0);
	}
}

/* A goes silent: its breaker opens, its datagrams go to B with their ids. */
static void test_failover_same_ids(void **state)
{
	(void)state;
	struct fake *a = fake_start(FAKE_SILENT), *b = fake_start(FAKE_ACK);
	const char *names[] = {a->name, b->name};
	struct tally_opts o;
	struct tally_client *c;
	struct tally_stats s;
	static uint64_t ids[N_EVENTS];
	enum tally_breaker st;

	quick_opts(&o, names, 2);
	assert_int_equal(tally_client_new(&o, &c), 0);
	send_keys(c, N_EVENTS, ids);
	assert_int_equal(tally_flush(c, 10000), 0);
	tally_stats_get(c, &s);
	assert_int_equal(s.events_acked, N_EVENTS);
	assert_true(s.failovers > 0);
	assert_true(s.breaker_opens >= 1);
	assert_int_equal(tally_appliance_state(c, 0, NULL, &st), 0);
	assert_int_equal(st, TALLY_BREAKER_OPEN);
	assert_int_equal(tally_appliance_state(c, 2, NULL, &st), -ERANGE);
	assert_int_equal(tally_client_close(c, 1000), 0);
	/* B got every event; what A got (and never acked) reached B with the same id. */
	qsort(ids, N_EVENTS, sizeof(ids[0]), cmp_u64);
	for (unsigned i = 1; i < N_EVENTS; i++)
		assert_true(ids[i] != ids[i - 1] && ids[i] != 0);
	qsort(b->ids, b->nids, sizeof(b->ids[0]), cmp_u64);
	for (unsigned i = 0; i < N_EVENTS; i++)
		assert_true(has(b->ids, b->nids, ids[i]));
	assert_true(a->nids > 0);
	for (size_t i = 0; i < a->nids; i++) {
		assert_true(has(ids, N_EVENTS, a->ids[i]));
		assert_true(has(b->ids, b->nids, a->ids[i]));
	}
	fake_stop(a);
	fake_stop(b);
}

/* After breaker_open_ms the silent appliance gets one probe; once it answers,
 * its breaker closes and its keys come back to it. */
static void test_half_open_probe(void **state)
{
	(void)state;
	struct fake *a = fake_start(FAKE_SILENT), *b = fake_start(FAKE_ACK);
	const char *names[] = {a->name, b->name};
	struct tally_opts o;
	struct tally_client *c;
	static uint64_t ids[N_EVENTS];
	enum tally_breaker st;

	quick_opts(&o, names, 2);
	o.breaker_open_ms = 200;
	assert_int_equal(tally_client_new(&o, &c), 0);
	send_keys(c, N_EVENTS, ids);
	assert_int_equal(tally_flush(c, 10000), 0);
	assert_int_equal(tally_appliance_state(c, 0, NULL, &st), 0);
	assert_int_not_equal(st, TALLY_BREAKER_CLOSED);
	atomic_store(&a->mode, FAKE_ACK);
	size_t before = a->nids;
	for (int i = 0; i < 100; i++) { /* traffic for ~1 s: the probe goes with it */
		send_keys(c, 50, ids);
		usleep(10000);
	}
	int fr = tally_flush(c, 10000);
	struct tally_stats s;
	tally_stats_get(c, &s);
	assert_int_equal(tally_appliance_state(c, 0, NULL, &st), 0);
	if (fr != 0)
		fail_msg("flush %d: state %d unacked %lu datagrams %lu events, sent %lu acked %lu, "
			 "failovers %lu opens %lu retransmits %lu", fr, st, (unsigned long)s.unacked_datagrams,
			 (unsigned long)s.unacked_events, (unsigned long)s.datagrams_sent,
			 (unsigned long)s.datagrams_acked, (unsigned long)s.failovers,
			 (unsigned long)s.breaker_opens, (unsigned long)s.retransmits);
	assert_int_equal(st, TALLY_BREAKER_CLOSED);
	assert_true(a->nids > before + 1000); /* its keys are its own again */
	assert_int_equal(tally_client_close(c, 1000), 0);
	fake_stop(a);
	fake_stop(b);
}

static void test_overloaded_retried(void **state)
{
	(void)state;
	struct fake *a = fake_start(FAKE_OVERLOAD_FIRST);
	const char *names[] = {a->name};
	struct tally_opts o;
	struct tally_client *c;
	struct tally_stats s;
	static uint64_t ids[N_EVENTS];

	quick_opts(&o, names, 1);
	assert_int_equal(tally_client_new(&o, &c), 0);
	send_keys(c, N_EVENTS, ids);
	assert_int_equal(tally_flush(c, 10000), 0);
	tally_stats_get(c, &s);
	assert_int_equal(s.events_acked, N_EVENTS);
	assert_int_equal(s.acks_overloaded, s.datagrams_sent);
	assert_true(s.retransmits >= s.acks_overloaded);
	assert_int_equal(s.breaker_opens, 0); /* overloaded is alive, not failed */
	assert_int_equal(a->nids, N_EVENTS); /* counted once: the first answer took nothing */
	tally_client_close(c, 1000);
	fake_stop(a);
}

static void test_mac(void **state)
{
	(void)state;
	struct fake *a = fake_start(FAKE_ACK);
	const char *names[] = {a->name};
	struct tally_opts o;
	struct tally_client *c;
	struct tally_stats s;
	static uint64_t ids[N_EVENTS];
	uint8_t key[16];

	randombytes_buf(key, sizeof(key));
	a->keys.present[9] = true;
	memcpy(a->keys.key[9], key, 16);
	quick_opts(&o, names, 1);
	o.mac_key_id = 9;
	o.mac_key = key;
	assert_int_equal(tally_client_new(&o, &c), 0);
	send_keys(c, N_EVENTS, ids);
	assert_int_equal(tally_flush(c, 10000), 0);
	tally_stats_get(c, &s);
	assert_int_equal(s.events_acked, N_EVENTS);
	tally_client_close(c, 1000);
	/* Another key: every datagram answered unauthenticated, dropped and counted. */
	key[0] ^= 1;
	assert_int_equal(tally_client_new(&o, &c), 0);
	send_keys(c, 100, ids);
	assert_int_equal(tally_flush(c, 10000), 0);
	tally_stats_get(c, &s);
	assert_int_equal(s.events_acked, 0);
	assert_int_equal(s.events_dropped, 100);
	assert_true(s.datagrams_dropped > 0);
	tally_client_close(c, 1000);
	fake_stop(a);
}

/* No acks and room for 3 datagrams: tally_send waits send_timeout_ms, then -ENOBUFS. */
static void test_memory_bound(void **state)
{
	(void)state;
	struct fake *a = fake_start(FAKE_SILENT);
	const char *names[] = {a->name};
	struct tally_opts o;
	struct tally_client *c;
	struct tally_stats s;
	struct timespec t0, t1;
	int r = 0;
	unsigned sent = 0;

	quick_opts(&o, names, 1);
	o.max_unacked_bytes = 3 * (o.max_datagram + 200);
	o.send_timeout_ms = 300;
	assert_int_equal(tally_client_new(&o, &c), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (r == 0 && sent < 100000) {
		r = tally_send(c, "a.key.of.some.length", 1);
		sent += r == 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(r, -ENOBUFS);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 290);
	tally_stats_get(c, &s);
	assert_int_equal(s.send_full, 1);
	assert_true(s.unacked_bytes <= o.max_unacked_bytes);
	assert_true(sent > 0 && sent < 200); /* 3 datagrams of ~30 events */
	assert_int_equal(tally_client_close(c, 100), -ETIMEDOUT);
	fake_stop(a);
}

struct sender_arg {
	struct tally_client *c;
	uint64_t ids[N_EVENTS];
};

static void *sender(void *arg)
{
	struct sender_arg *a = arg;

	send_keys(a->c, N_EVENTS, a->ids);
	return NULL;
}

/* Four threads on one client: every event acked once, every id distinct. */
static void test_threads(void **state)
{
	(void)state;
	struct fake *a = fake_start(FAKE_ACK), *b = fake_start(FAKE_ACK);
	const char *names[] = {a->name, b->name};
	static struct sender_arg args[4];
	static uint64_t all[4 * N_EVENTS];
	pthread_t t[4];
	struct tally_opts o;
	struct tally_client *c;

	quick_opts(&o, names, 2);
	o.ack_timeout_ms = 2000;
	assert_int_equal(tally_client_new(&o, &c), 0);
	for (int i = 0; i < 4; i++) {
		args[i].c = c;
		assert_int_equal(pthread_create(&t[i], NULL, sender, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		memcpy(all + i * N_EVENTS, args[i].ids, sizeof(args[i].ids));
	}
	assert_int_equal(tally_client_close(c, 10000), 0);
	qsort(all, 4 * N_EVENTS, sizeof(all[0]), cmp_u64);
	for (unsigned i = 1; i < 4 * N_EVENTS; i++)
		assert_true(all[i] != all[i - 1]);
	qsort(a->ids, a->nids, sizeof(a->ids[0]), cmp_u64);
	qsort(b->ids, b->nids, sizeof(b->ids[0]), cmp_u64);
	size_t distinct = 0;
	for (size_t i = 0; i < a->nids; i++)
		distinct += i == 0 || a->ids[i] != a->ids[i - 1];
	for (size_t i = 0; i < b->nids; i++)
		distinct += i == 0 || b->ids[i] != b->ids[i - 1];
	assert_int_equal(distinct, 4 * N_EVENTS);
	fake_stop(a);
	fake_stop(b);
}

static void test_bad_args(void **state)
{
	(void)state;
	struct tally_opts o;
	struct tally_client *c;
	const char *bad_addr[] = {"no-port"};
	const char *ok[] = {"127.0.0.1:9"};

	tally_opts_init(&o);
	assert_int_equal(tally_client_new(&o, &c), -EINVAL); /* no appliance */
	o.appliances = bad_addr;
	o.n_appliances = 1;
	assert_int_equal(tally_client_new(&o, &c), -EINVAL);
	o.appliances = ok;
	o.max_datagram = 100;
	assert_int_equal(tally_client_new(&o, &c), -EINVAL);
	tally_opts_init(&o);
	o.appliances = ok;
	o.n_appliances = 1;
	o.mac_key_id = 3; /* without a key */
	assert_int_equal(tally_client_new(&o, &c), -EINVAL);
	o.mac_key_id = 0;
	assert_int_equal(tally_client_new(&o, &c), 0);
	struct tally_ev ev = {.key = "a\0b", .key_len = 3};
	assert_int_equal(tally_send_ev(c, &ev, NULL), -EINVAL);
	assert_int_equal(tally_send(c, "", 1), -EINVAL);
	tally_client_close(c, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failover_same_ids),
		cmocka_unit_test(test_half_open_probe),
		cmocka_unit_test(test_overloaded_retried),
		cmocka_unit_test(test_mac),
		cmocka_unit_test(test_memory_bound),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_bad_args),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
