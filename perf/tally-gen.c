/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-gen: TLY1 or StatsD traffic for tests and benchmarks, to a pcap file or
 * a DPDK port (memif, af_xdp, NIC). Frames come pre-rendered from a pool
 * (gen_traffic.c), so the sending core only copies a frame into an mbuf and
 * patches its event ids: one core drives well over 10 Mpps of 1-event frames.
 * It prints what it sent and writes the exact expected totals per key and window.
 *
 *   tally-gen [options] [-- EAL args]
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>

#include "counters.h"
#include "gen_traffic.h"
#include "port.h"
#include "wire.h"

#define BURST 32
#define TXQ_MAX 64
#define NB_TXD 1024
#define POOL_DEFAULT (1u << 20)
#define POOL_DEFAULT_EVENTS (1u << 23) /* keeps the default pool under ~1 GB */
#define STALL_SECONDS 5.0 /* no TX progress this long: the receiver is gone */

struct run {
	struct gen_opts o;
	uint64_t count, rate;
	bool count_set, key_len_set;
	double duration, linger, link_timeout;
	const char *pcap, *port, *expected, *stats_json;
	uint16_t txq;
	/* results */
	uint64_t sent, tx_failed, tx_retries, alloc_retries;
	int64_t rows;
	double seconds;
};

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static void usage(FILE *out)
{
	fprintf(out,
	"usage: tally-gen [options] [-- EAL args]\n"
	"traffic:\n"
	"  --proto tly1|statsd     protocol (tly1)\n"
	"  --keys N                distinct TLY1 keys / StatsD names (1000)\n"
	"  --dist uniform|zipf     key distribution (uniform); --zipf-s S exponent (1.1)\n"
	"  --events-per-dgram N    TLY1 events or StatsD lines per datagram (1)\n"
	"  --key-len N             TLY1 key length, \"tally.\" + zero-padded index (14,\n"
	"                          more if --keys needs more digits)\n"
	"  --dup-rate F            fraction of TLY1 events re-sending an earlier event (0)\n"
	"  --malformed-rate F      fraction of malformed datagrams; StatsD: datagrams with\n"
	"                          bad lines among good ones (0)\n"
	"  --window-ms W           window of the expected totals (10000)\n"
	"  --time-ms T             base event time, ms (now, rounded down to a second)\n"
	"  --time-span-ms S        spread event times over [T, T+S) by position (0)\n"
	"  --dst-port P            UDP port (7000 for tly1, 8125 for statsd)\n"
	"  --flows N               UDP source ports, for RSS (16)\n"
	"  --ipv6-share F          fraction of IPv6 frames (0)\n"
	"  --vlan-share F          fraction of frames with an 802.1Q tag (0)\n"
	"  --mtu N                 largest IP packet (1500)\n"
	"  --seed N                (1); --sender-id X  TLY1 sender_id (0x7a11)\n"
	"  --pool N                pre-rendered datagrams, sent in cycles with new ids\n"
	"                          (min(count, %u, %u / events-per-dgram))\n"
	"amount and output:\n"
	"  --count N               datagrams to send (10000)\n"
	"  --duration S            send for S seconds instead (port mode; with --count,\n"
	"                          whichever ends first)\n"
	"  --rate PPS              datagrams per second, 0 = as fast as possible (0)\n"
	"  --pcap FILE             write a capture (no EAL) instead of sending\n"
	"  --port DEVARGS          DPDK port to probe, e.g. net_memif0,role=client,socket=S\n"
	"                          (default: the first port of the EAL args)\n"
	"  --tx-queues N           TX queues; flow f always goes to queue f %% N (1)\n"
	"  --link-timeout S        wait for the link this long (10)\n"
	"  --linger S              after sending, keep the port open until the receiver\n"
	"                          disconnects or S seconds pass (memif: a receiver must\n"
	"                          not poll a peer that is tearing down) (0)\n"
	"  --expected FILE         write the expected totals (TSV)\n"
	"  --stats-json FILE       write the summary as JSON too\n"
	"prints one \"name value\" per line: datagrams_sent (the datagrams the expected\n"
	"totals cover), frames_tx_failed (of those, never taken by the port: exit status\n"
	"1, totals not exact), events_sent, events_valid_expected, duplicates_sent,\n"
	"malformed_datagrams, expected_rows, seconds, mpps, events_per_sec, ..., and\n"
	"expect_<counter> N: what that tallyd counter reads after this run alone\n",
	POOL_DEFAULT, POOL_DEFAULT_EVENTS);
}

/* ---- options ---- */

enum {
	O_PROTO = 256, O_KEYS, O_DIST, O_ZIPF_S, O_PER_DGRAM, O_KEY_LEN, O_DUP, O_BAD,
	O_COUNT, O_DURATION, O_RATE, O_PCAP, O_PORT, O_TXQ, O_EXPECTED, O_WINDOW, O_TIME,
	O_SPAN, O_DST_PORT, O_FLOWS, O_IPV6, O_VLAN, O_POOL, O_SEED, O_SENDER, O_MTU,
	O_JSON, O_LINGER, O_LINK_TIMEOUT,
};

static const struct option long_opts[] = {
	{"proto", 1, 0, O_PROTO}, {"keys", 1, 0, O_KEYS}, {"dist", 1, 0, O_DIST},
	{"zipf-s", 1, 0, O_ZIPF_S}, {"events-per-dgram", 1, 0, O_PER_DGRAM},
	{"key-len", 1, 0, O_KEY_LEN}, {"dup-rate", 1, 0, O_DUP}, {"malformed-rate", 1, 0, O_BAD},
	{"count", 1, 0, O_COUNT}, {"duration", 1, 0, O_DURATION}, {"rate", 1, 0, O_RATE},
	{"pcap", 1, 0, O_PCAP}, {"port", 1, 0, O_PORT}, {"tx-queues", 1, 0, O_TXQ},
	{"expected", 1, 0, O_EXPECTED}, {"window-ms", 1, 0, O_WINDOW}, {"time-ms", 1, 0, O_TIME},
	{"time-span-ms", 1, 0, O_SPAN}, {"dst-port", 1, 0, O_DST_PORT}, {"flows", 1, 0, O_FLOWS},
	{"ipv6-share", 1, 0, O_IPV6}, {"vlan-share", 1, 0, O_VLAN}, {"pool", 1, 0, O_POOL},
	{"seed", 1, 0, O_SEED}, {"sender-id", 1, 0, O_SENDER}, {"mtu", 1, 0, O_MTU},
	{"stats-json", 1, 0, O_JSON}, {"linger", 1, 0, O_LINGER},
	{"link-timeout", 1, 0, O_LINK_TIMEOUT}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};

static int num_u64(const char *s, uint64_t max, uint64_t *v)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || x > max)
		return -EINVAL;
	*v = x;
	return 0;
}

static int num_u32(const char *s, uint32_t *v)
{
	uint64_t x;
	int r = num_u64(s, UINT32_MAX, &x);

	*v = r ? *v : (uint32_t)x;
	return r;
}

/* A finite number in [lo, hi]. */
static int num_f(const char *s, double lo, double hi, double *v)
{
	char *end;
	double x = strtod(s, &end);

	if (end == s || *end != '\0' || !isfinite(x) || x < lo || x > hi)
		return -EINVAL;
	*v = x;
	return 0;
}

static int pick(const char *s, const char *a, const char *b, bool *is_b)
{
	if (strcmp(s, a) != 0 && strcmp(s, b) != 0)
		return -EINVAL;
	*is_b = strcmp(s, b) == 0;
	return 0;
}

static int set_opt(struct run *r, int c, const char *a)
{
	struct gen_opts *o = &r->o;
	uint64_t x = 0;
	bool b;

	switch (c) {
	case O_PROTO: if (pick(a, "tly1", "statsd", &b)) return -EINVAL;
		o->proto = b ? GEN_STATSD : GEN_TLY1; return 0;
	case O_DIST: return pick(a, "uniform", "zipf", &o->zipf);
	case O_KEYS: return num_u32(a, &o->keys);
	case O_ZIPF_S: return num_f(a, 0, 100, &o->zipf_s);
	case O_PER_DGRAM: return num_u32(a, &o->per_dgram);
	case O_KEY_LEN: r->key_len_set = true; return num_u32(a, &o->key_len);
	case O_DUP: return num_f(a, 0, 1, &o->dup_rate);
	case O_BAD: return num_f(a, 0, 1, &o->malformed_rate);
	case O_COUNT: r->count_set = true; return num_u64(a, UINT64_MAX, &r->count);
	case O_DURATION: return num_f(a, 0, 1e9, &r->duration);
	case O_RATE: return num_u64(a, 1000000000000ULL, &r->rate);
	case O_PCAP: r->pcap = a; return 0;
	case O_PORT: r->port = a; return 0;
	case O_TXQ: if (num_u64(a, TXQ_MAX, &x)) return -EINVAL;
		r->txq = (uint16_t)x; return 0;
	case O_EXPECTED: r->expected = a; return 0;
	case O_WINDOW: return num_u64(a, UINT32_MAX, &o->window_ms);
	case O_TIME: return num_u64(a, INT64_MAX / 2, &o->time_ms);
	case O_SPAN: return num_u64(a, INT64_MAX / 4, &o->span_ms);
	case O_DST_PORT: if (num_u64(a, UINT16_MAX, &x)) return -EINVAL;
		o->dst_port = (uint16_t)x; return 0;
	case O_FLOWS: return num_u32(a, &o->flows);
	case O_IPV6: return num_f(a, 0, 1, &o->ipv6_share);
	case O_VLAN: return num_f(a, 0, 1, &o->vlan_share);
	case O_POOL: return num_u32(a, &o->pool);
	case O_SEED: return num_u64(a, UINT64_MAX, &o->seed);
	case O_SENDER: return num_u64(a, UINT64_MAX, &o->sender_id);
	case O_MTU: return num_u32(a, &o->mtu);
	case O_JSON: r->stats_json = a; return 0;
	case O_LINGER: return num_f(a, 0, 1e6, &r->linger);
	case O_LINK_TIMEOUT: return num_f(a, 0, 1e6, &r->link_timeout);
	}
	return -EINVAL;
}

static void set_defaults(struct run *r)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	r->o = (struct gen_opts){.proto = GEN_TLY1, .keys = 1000, .per_dgram = 1, .flows = 16,
				 .mtu = 1500, .zipf_s = 1.1, .window_ms = 10000, .seed = 1,
				 .sender_id = 0x7a11,
				 .time_ms = (uint64_t)now.tv_sec * 1000};
	r->count = 10000;
	r->txq = 1;
	r->link_timeout = 10;
	r->rows = -1;
}

static int parse_opts(int argc, char **argv, struct run *r)
{
	int c, li = 0;

	set_defaults(r);
	while ((c = getopt_long(argc, argv, "h", long_opts, &li)) != -1) {
		if (c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (c == '?' || c == ':') {
			fprintf(stderr, "tally-gen: see tally-gen --help\n");
			return -EINVAL;
		}
		if (set_opt(r, c, optarg) != 0) {
			fprintf(stderr, "tally-gen: bad value \"%s\" for --%s\n", optarg,
				long_opts[li].name);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tally-gen: unexpected argument \"%s\" (EAL args go after --)\n",
			argv[optind]);
		return -EINVAL;
	}
	return 0;
}

static uint32_t digits(uint32_t v)
{
	uint32_t d = 1;

	while (v >= 10) {
		v /= 10;
		d++;
	}
	return d;
}

/* Fill in what depends on other options (ports, key length, pool size). */
static const char *derive(struct run *r)
{
	struct gen_opts *o = &r->o;
	uint32_t need = (uint32_t)strlen("tally.") + digits(o->keys ? o->keys - 1 : 0);
	uint64_t pool = r->count_set || r->duration <= 0 ? r->count : UINT64_MAX;

	if (o->dst_port == 0)
		o->dst_port = o->proto == GEN_TLY1 ? 7000 : 8125;
	if (!r->key_len_set)
		o->key_len = need > 14 ? need : 14;
	else if (o->key_len < need || o->key_len > TALLY_KEY_MAX)
		return "--key-len is too short for --keys (\"tally.\" and the zero-padded key "
		       "index) or above 255";
	if (pool > POOL_DEFAULT)
		pool = POOL_DEFAULT;
	if (o->per_dgram && pool > POOL_DEFAULT_EVENTS / o->per_dgram)
		pool = POOL_DEFAULT_EVENTS / o->per_dgram;
	if (o->pool == 0)
		o->pool = (uint32_t)(pool ? pool : 1);
	return NULL;
}

static const char *check_tly1_size(const struct run *r)
{
	static char msg[200];
	const struct gen_opts *o = &r->o;
	uint32_t ev = gen_tly1_event_len(o), ip = (o->ipv6_share > 0 ? 40 : 20) + 8;
	uint32_t fit = o->mtu > ip + 24 ? (o->mtu - ip - 24) / ev : 0;

	if (o->proto != GEN_TLY1 || o->per_dgram <= fit)
		return NULL;
	snprintf(msg, sizeof(msg), "%u events of %u bytes do not fit in --mtu %u: at most %u "
		 "per datagram%s", o->per_dgram, ev, o->mtu, fit,
		 o->ipv6_share > 0 ? " over IPv6" : "");
	return msg;
}

static const char *check_values(const struct run *r)
{
	const struct gen_opts *o = &r->o;

	if (o->keys == 0) return "--keys must be at least 1";
	if (o->per_dgram == 0 || o->per_dgram > TALLY_TLY1_MAX_COUNT)
		return "--events-per-dgram must be 1..1024";
	if (o->window_ms == 0) return "--window-ms must be at least 1";
	if (o->proto == GEN_STATSD && o->window_ms % 1000)
		return "StatsD event times are whole seconds (|T): --window-ms must be a "
		       "multiple of 1000";
	if (o->flows == 0 || o->flows > 55536) return "--flows must be 1..55536";
	if (r->txq == 0) return "--tx-queues must be 1..64";
	if (o->dup_rate >= 1 || o->malformed_rate >= 1)
		return "--dup-rate and --malformed-rate must be below 1";
	if (o->sender_id == 0) return "--sender-id 0 is invalid in TLY1";
	if (o->mtu < 100 || o->mtu > 65535) return "--mtu must be 100..65535";
	if (o->zipf && o->zipf_s <= 0) return "--zipf-s must be above 0";
	if (r->pcap && !r->count_set && r->duration > 0) return "--pcap needs --count";
	if (!r->pcap && r->count == 0 && r->duration <= 0) return "give --count or --duration";
	if (r->pcap && (r->port || r->rate)) return "--pcap goes without --port and --rate";
	return check_tly1_size(r);
}

static int check_opts(struct run *r)
{
	const char *e = derive(r);

	if (e == NULL)
		e = check_values(r);
	if (e != NULL) {
		fprintf(stderr, "tally-gen: %s\n", e);
		return -EINVAL;
	}
	if (r->o.proto == GEN_STATSD && r->o.dup_rate > 0)
		fprintf(stderr, "tally-gen: note: StatsD lines have no ids; --dup-rate ignored\n");
	return 0;
}

/* ---- pcap output ---- */

static double since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static int write_pcap(struct run *r, const struct gen_pool *p)
{
	static uint8_t frame[GEN_FRAME_MAX];
	pcap_t *pc = pcap_open_dead(DLT_EN10MB, 65535);
	pcap_dumper_t *d = pc ? pcap_dump_open(pc, r->pcap) : NULL;
	struct timespec t0;
	uint64_t usec0 = r->o.time_ms * 1000;

	if (d == NULL) {
		fprintf(stderr, "tally-gen: cannot write %s: %s\n", r->pcap,
			pc ? pcap_geterr(pc) : "pcap_open_dead failed");
		if (pc)
			pcap_close(pc);
		return -EIO;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* frame timestamps: the base event time, one microsecond apart */
	for (r->sent = 0; r->sent < r->count && !stop; r->sent++) {
		uint32_t i = (uint32_t)(r->sent % p->nframes);
		uint64_t us = usec0 + r->sent;
		struct pcap_pkthdr h = {{(time_t)(us / 1000000), (suseconds_t)(us % 1000000)},
					p->frames[i].len, p->frames[i].len};

		gen_frame_render(p, i, r->sent / p->nframes, frame);
		pcap_dump((u_char *)d, &h, frame);
	}
	if (pcap_dump_flush(d) != 0) {
		fprintf(stderr, "tally-gen: writing %s failed\n", r->pcap);
		return -EIO;
	}
	pcap_dump_close(d);
	pcap_close(pc);
	r->seconds = since(&t0);
	return 0;
}

/* ---- DPDK port output ---- */

struct txbuf {
	struct rte_mbuf *m[BURST];
	uint16_t n;
};

struct sender {
	struct run *r;
	const struct gen_pool *p;
	struct rte_mempool *mp;
	uint16_t pid;
	bool dead;           /* the receiver stopped taking frames */
	uint32_t next;       /* next frame of the pool */
	uint64_t cycle;
	uint64_t stall_tsc;
	struct txbuf q[TXQ_MAX];
};

static int port_fail(const struct sender *s, const char *step, int err)
{
	fprintf(stderr, "tally-gen: port %u: %s failed: %s\n", s->pid, step, rte_strerror(-err));
	return -EIO;
}

/* Start the port; a memif client cannot start until its server is listening, so
 * keep trying until the deadline, with the PMD's per-attempt complaints muted. */
static int port_start(struct sender *s, uint64_t deadline)
{
	uint32_t level = rte_log_get_global_level();
	int r;

	while ((r = rte_eth_dev_start(s->pid)) < 0 && !stop && rte_rdtsc() < deadline) {
		rte_log_set_global_level(RTE_LOG_CRIT);
		rte_delay_ms(100);
	}
	rte_log_set_global_level(level);
	if (r < 0) {
		fprintf(stderr, "tally-gen: port %u did not start within %.0f s: %s (memif: is the "
			"server listening on that socket?)\n", s->pid, s->r->link_timeout,
			rte_strerror(-r));
		return -EIO;
	}
	return 0;
}

static uint64_t deadline(double seconds)
{
	return rte_rdtsc() + (uint64_t)(seconds * (double)rte_get_tsc_hz());
}

static int port_setup(struct sender *s)
{
	struct run *r = s->r;
	struct rte_eth_conf conf = {0};
	uint32_t room = RTE_PKTMBUF_HEADROOM + GEN_HDR_MAX + r->o.mtu;
	/* every TX ring full plus the bursts in hand, and spare for the mempool caches */
	uint32_t nb = r->txq * (NB_TXD + BURST) + 2048;
	char err[256];
	int rc, socket;

	if (tally_port_find(r->port ? r->port : "", &s->pid, err, sizeof(err)) != 0) {
		fprintf(stderr, "tally-gen: %s\n", err);
		return -ENODEV;
	}
	socket = rte_eth_dev_socket_id(s->pid);
	s->mp = rte_pktmbuf_pool_create("gen", nb < 8191 ? 8191 : nb, 256, 0,
					(uint16_t)(room > RTE_MBUF_DEFAULT_BUF_SIZE ? room
					: RTE_MBUF_DEFAULT_BUF_SIZE), rte_socket_id());
	if (s->mp == NULL)
		return port_fail(s, "mbuf pool creation (raise -m?)", -rte_errno);
	rc = rte_eth_dev_configure(s->pid, 1, r->txq, &conf);
	if (rc < 0)
		return port_fail(s, "configure (too many --tx-queues?)", rc);
	rc = rte_eth_rx_queue_setup(s->pid, 0, 256, socket, NULL, s->mp);
	if (rc < 0)
		return port_fail(s, "RX queue setup", rc);
	for (uint16_t q = 0; q < r->txq; q++)
		if ((rc = rte_eth_tx_queue_setup(s->pid, q, NB_TXD, socket, NULL)) < 0)
			return port_fail(s, "TX queue setup", rc);
	return port_start(s, deadline(r->link_timeout));
}

/*
 * Wait for the link. A memif client that connects while its server is still
 * setting up is refused ("ID not found") and never retries by itself, so a memif
 * port still down after a second is restarted.
 */
static int wait_link(struct sender *s)
{
	struct rte_eth_link link;
	struct rte_eth_dev_info info;
	uint64_t end = deadline(s->r->link_timeout), retry = deadline(1);
	bool memif = rte_eth_dev_info_get(s->pid, &info) == 0 &&
		     strcmp(info.driver_name, "net_memif") == 0;

	do {
		if (rte_eth_link_get_nowait(s->pid, &link) == 0 && link.link_status)
			return 0;
		rte_delay_ms(10);
		if (memif && rte_rdtsc() > retry) {
			rte_eth_dev_stop(s->pid);
			if (port_start(s, end) != 0)
				return -EIO;
			retry = deadline(1);
		}
	} while (!stop && rte_rdtsc() < end);
	fprintf(stderr, "tally-gen: the link of port %u did not come up within %.0f s (is the "
		"receiver running? for memif: is the server up on the same socket?)\n", s->pid,
		s->r->link_timeout);
	return -ETIMEDOUT;
}

/* Send queue q's burst, retrying the unsent tail; never drop silently. */
static void tx_flush(struct sender *s, uint16_t q)
{
	struct txbuf *b = &s->q[q];
	uint16_t done = 0;
	uint64_t idle_since = 0;

	while (done < b->n) {
		uint16_t k = rte_eth_tx_burst(s->pid, q, b->m + done, (uint16_t)(b->n - done));

		done = (uint16_t)(done + k);
		if (done == b->n)
			break;
		s->r->tx_retries++;
		if (k > 0)
			idle_since = 0;
		else if (idle_since == 0)
			idle_since = rte_rdtsc();
		else if (stop || rte_rdtsc() - idle_since > s->stall_tsc)
			break;
	}
	if (done < b->n) {
		s->r->tx_failed += b->n - done;
		rte_pktmbuf_free_bulk(b->m + done, b->n - done);
		if (!stop)
			s->dead = true;
	}
	b->n = 0;
}

/* Render n frames into fresh mbufs, each to its flow's queue, and send them. */
static int send_frames(struct sender *s, uint16_t n)
{
	const struct gen_pool *p = s->p;
	struct rte_mbuf *m[BURST];
	uint16_t txq = s->r->txq;

	if (rte_pktmbuf_alloc_bulk(s->mp, m, n) != 0)
		return -ENOBUFS;
	for (uint16_t k = 0; k < n; k++) {
		uint32_t i = s->next;
		uint16_t q = txq == 1 ? 0 : (uint16_t)(i % p->o.flows % txq);

		gen_frame_render(p, i, s->cycle, rte_pktmbuf_mtod(m[k], uint8_t *));
		m[k]->data_len = (uint16_t)p->frames[i].len;
		m[k]->pkt_len = p->frames[i].len;
		s->q[q].m[s->q[q].n++] = m[k];
		if (++s->next == p->nframes) {
			s->next = 0;
			s->cycle++;
		}
	}
	for (uint16_t q = 0; q < txq; q++)
		if (s->q[q].n > 0)
			tx_flush(s, q);
	return 0;
}

static void send_loop(struct sender *s)
{
	struct run *r = s->r;
	uint64_t hz = rte_get_tsc_hz(), t0 = rte_rdtsc();
	uint64_t end = r->duration > 0 ? t0 + (uint64_t)(r->duration * (double)hz) : UINT64_MAX;
	uint64_t limit = r->count_set || r->duration <= 0 ? r->count : UINT64_MAX;

	s->stall_tsc = (uint64_t)(STALL_SECONDS * (double)hz);
	while (!stop && !s->dead && r->sent < limit) {
		uint64_t now = rte_rdtsc(), n = limit - r->sent < BURST ? limit - r->sent : BURST;

		if (now >= end)
			break;
		if (r->rate) { /* pace with the TSC: never ahead of rate * elapsed */
			uint64_t due = (uint64_t)((double)(now - t0) / (double)hz * (double)r->rate) + 1;

			if (due <= r->sent)
				continue;
			n = due - r->sent < n ? due - r->sent : n;
		}
		if (send_frames(s, (uint16_t)n) != 0) {
			r->alloc_retries++;
			continue;
		}
		r->sent += n;
	}
	r->seconds = (double)(rte_rdtsc() - t0) / (double)hz;
	if (s->dead)
		fprintf(stderr, "tally-gen: port %u took no frame for %.0f s: stopped sending (is "
			"the receiver still running?)\n", s->pid, STALL_SECONDS);
}

/* Wait for the receiver to go first (link down), at most r->linger seconds. */
static void linger(const struct run *r, uint16_t pid)
{
	struct rte_eth_link link;

	for (double t = 0; t < r->linger && !stop; t += 0.05) {
		if (rte_eth_link_get_nowait(pid, &link) == 0 && !link.link_status)
			return;
		rte_delay_ms(50);
	}
}

static int report(struct run *r, const struct gen_pool *p);

static int send_port(struct run *r, const struct gen_pool *p)
{
	static struct sender s;
	int rc;

	s = (struct sender){.r = r, .p = p};
	if (port_setup(&s) != 0)
		return -EIO;
	rc = wait_link(&s);
	if (rc == 0) {
		send_loop(&s);
		rte_delay_ms(200); /* let the last bursts leave before anything closes */
		/* the report comes before the linger: a driver may stop the receiver on it */
		rc = report(r, p);
		linger(r, s.pid);
	}
	rte_eth_dev_stop(s.pid);
	rte_eth_dev_close(s.pid);
	return rc;
}

/* ---- summary ---- */

struct stat_line {
	const char *name;
	double v;
	bool integer;
};

static void summary_write(const struct stat_line *f, size_t n, FILE *out, bool json)
{
	for (size_t i = 0; i < n; i++) {
		const char *sep = json ? (i ? ", " : "{") : "";

		if (f[i].integer)
			fprintf(out, json ? "%s\"%s\": %.0f" : "%s%s %.0f\n", sep, f[i].name, f[i].v);
		else
			fprintf(out, json ? "%s\"%s\": %.6f" : "%s%s %.6f\n", sep, f[i].name, f[i].v);
	}
	if (json)
		fprintf(out, "}\n");
}

static int summary(const struct run *r, const struct gen_pool *p)
{
	static struct gen_sent g;
	static struct stat_line f[32 + TALLY_C_MAX];
	double s = r->seconds > 0 ? r->seconds : 1e-9;
	size_t n = 0;

	gen_sent_counts(p, r->sent, &g);
#define LINE(nm, val, isint) (f[n++] = (struct stat_line){nm, (double)(val), isint})
	LINE("datagrams_sent", r->sent, true);
	LINE("frames_tx_failed", r->tx_failed, true);
	LINE("tx_retries", r->tx_retries, true);
	LINE("events_sent", g.events, true);
	LINE("events_valid_expected", g.valid, true);
	LINE("duplicates_sent", g.dups, true);
	LINE("malformed_datagrams", g.malformed, true);
	LINE("bad_statsd_lines", g.bad_lines, true);
	LINE("expected_rows", r->rows, true);
	LINE("pool_datagrams", p->nframes, true);
	LINE("seconds", r->seconds, false);
	LINE("mpps", (double)r->sent / s / 1e6, false);
	LINE("events_per_sec", (double)g.events / s, false);
	/* what tallyd's counters should read after this run alone */
	static char names[TALLY_C_MAX][64];
	for (int c = 0; c < TALLY_C_MAX; c++)
		if (g.by_reason[c] > 0) {
			snprintf(names[c], sizeof(names[c]), "expect_%s", tally_counter_names[c]);
			LINE(names[c], g.by_reason[c], true);
		}
#undef LINE
	summary_write(f, n, stdout, false);
	fflush(stdout);
	if (r->stats_json != NULL) {
		FILE *j = fopen(r->stats_json, "w");

		if (j == NULL) {
			fprintf(stderr, "tally-gen: cannot write %s: %s\n", r->stats_json, strerror(errno));
			return -errno;
		}
		summary_write(f, n, j, true);
		fclose(j);
	}
	return 0;
}

/* Expected totals (rows counted even without --expected), then the summary. */
static int report(struct run *r, const struct gen_pool *p)
{
	r->rows = gen_expected_write(p, r->sent, r->expected);
	if (r->rows < 0) {
		fprintf(stderr, "tally-gen: cannot write the expected totals %s: %s\n",
			r->expected ? r->expected : "", strerror((int)-r->rows));
		return (int)r->rows;
	}
	return summary(r, p);
}

/* ---- main ---- */

/* EAL sees the program name followed by what came after "--". */
static int eal_init(int argc, char **argv, int dashdash)
{
	char **eal_argv = dashdash < argc ? argv + dashdash : argv;
	int eal_argc = dashdash < argc ? argc - dashdash : 1;

	eal_argv[0] = argv[0];
	if (rte_eal_init(eal_argc, eal_argv) < 0) {
		fprintf(stderr, "tally-gen: EAL init failed: %s\n", rte_strerror(rte_errno));
		return -EIO;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct run r;
	struct gen_pool *p;
	int dashdash = argc, rc;

	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) {
			dashdash = i;
			break;
		}
	if (parse_opts(dashdash, argv, &r) != 0 || check_opts(&r) != 0)
		return 2;
	p = gen_pool_build(&r.o);
	if (p == NULL)
		return 1;
	if (r.pcap == NULL && eal_init(argc, argv, dashdash) != 0)
		return 1;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (r.pcap != NULL) {
		rc = write_pcap(&r, p);
		if (rc == 0)
			rc = report(&r, p);
	} else {
		rc = send_port(&r, p);
		rte_eal_cleanup();
	}
	gen_pool_free(p);
	return rc != 0 || r.tx_failed ? 1 : 0;
}
