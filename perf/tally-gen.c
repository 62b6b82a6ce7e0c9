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
#include <rte_pause.h>

#include "counters.h"
#include "gen_opts.h"
#include "gen_traffic.h"
#include "port.h"
#include "wire.h"

#define BURST 32
#define TXQ_MAX 64
#define NB_TXD 1024

struct run {
	struct gen_opts o;
	uint64_t count, rate;
	bool count_set;
	bool paced; /* a NIC does not wait: what the port refuses is dropped */
	double duration, linger, link_timeout, stall_timeout, catch_up_us;
	const char *pcap, *port, *expected, *stats_json;
	uint16_t txq;
	/* results */
	uint64_t sent, tx_failed, tx_retries, alloc_retries, behind_skipped;
	int64_t rows;
	double seconds;
};

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static void usage(FILE *out)
{
	fprintf(out, "usage: tally-gen [options] [-- EAL args]\n");
	gen_opts_usage(out);
	fprintf(out,
	"amount and output:\n"
	"  --count N               datagrams to send (10000)\n"
	"  --duration S            send for S seconds instead (port mode; with --count,\n"
	"                          whichever ends first)\n"
	"  --rate PPS              datagrams per second, 0 = as fast as possible (0)\n"
	"  --paced                 like a NIC: frames the port refuses (receiver ring full)\n"
	"                          are dropped at once and counted in frames_tx_failed,\n"
	"                          never retried, so the offered rate does not bend to the\n"
	"                          receiver (default: retry a full ring)\n"
	"  --catch-up-us US        paced: a generator up to US microseconds behind its\n"
	"                          schedule (its CPU was taken) catches up at full speed, as\n"
	"                          a switch's buffer drains after a pause, so the offered\n"
	"                          rate is the asked one; what falls further behind is\n"
	"                          skipped, never sent (frames_behind_skipped) (1000)\n"
	"  --pcap FILE             write a capture (no EAL) instead of sending\n"
	"  --port DEVARGS          DPDK port to probe, e.g. net_memif0,role=client,socket=S\n"
	"                          (default: the first port of the EAL args)\n"
	"  --tx-queues N           TX queues; flow f always goes to queue f %% N (1)\n"
	"  --link-timeout S        wait for the link this long (10)\n"
	"  --stall-timeout S       the port taking no frame this long means the receiver is\n"
	"                          gone: stop sending (5)\n"
	"  --linger S              after sending, keep the port open until the receiver\n"
	"                          disconnects or S seconds pass (memif: a receiver must\n"
	"                          not poll a peer that is tearing down) (0)\n"
	"  --expected FILE         write the expected totals (TSV)\n"
	"  --stats-json FILE       write the summary as JSON too\n"
	"prints one \"name value\" per line: datagrams_sent (the datagrams the expected\n"
	"totals cover), frames_tx_failed (of those, never taken by the port: exit status\n"
	"1, totals not exact), events_sent, events_valid_expected, duplicates_sent,\n"
	"malformed_datagrams, expected_rows, seconds, mpps, events_per_sec, ..., and\n"
	"expect_<counter> N: what that tallyd counter reads after this run alone\n");
}

/* ---- options ---- */

enum {
	O_COUNT = GEN_O_END, O_DURATION, O_RATE, O_PCAP, O_PORT, O_TXQ, O_EXPECTED,
	O_JSON, O_LINGER, O_LINK_TIMEOUT, O_STALL, O_PACED, O_CATCH_UP,
};

static const struct option long_opts[] = {
	GEN_TRAFFIC_LONG_OPTS,
	{"count", 1, 0, O_COUNT}, {"duration", 1, 0, O_DURATION}, {"rate", 1, 0, O_RATE},
	{"pcap", 1, 0, O_PCAP}, {"port", 1, 0, O_PORT}, {"tx-queues", 1, 0, O_TXQ},
	{"expected", 1, 0, O_EXPECTED}, {"stats-json", 1, 0, O_JSON},
	{"linger", 1, 0, O_LINGER}, {"link-timeout", 1, 0, O_LINK_TIMEOUT},
	{"stall-timeout", 1, 0, O_STALL}, {"paced", 0, 0, O_PACED},
	{"catch-up-us", 1, 0, O_CATCH_UP},
	{"help", 0, 0, 'h'}, {0, 0, 0, 0}};

static int set_opt(struct run *r, int c, const char *a)
{
	uint64_t x = 0;

	switch (c) {
	case O_COUNT: r->count_set = true; return gen_num_u64(a, UINT64_MAX, &r->count);
	case O_DURATION: return gen_num_f(a, 0, 1e9, &r->duration);
	case O_RATE: return gen_num_u64(a, 1000000000000ULL, &r->rate);
	case O_PCAP: r->pcap = a; return 0;
	case O_PORT: r->port = a; return 0;
	case O_TXQ: if (gen_num_u64(a, TXQ_MAX, &x)) return -EINVAL;
		r->txq = (uint16_t)x; return 0;
	case O_EXPECTED: r->expected = a; return 0;
	case O_JSON: r->stats_json = a; return 0;
	case O_LINGER: return gen_num_f(a, 0, 1e6, &r->linger);
	case O_LINK_TIMEOUT: return gen_num_f(a, 0, 1e6, &r->link_timeout);
	case O_STALL: return gen_num_f(a, 0.1, 1e6, &r->stall_timeout);
	case O_PACED: r->paced = true; return 0;
	case O_CATCH_UP: return gen_num_f(a, 0, 1e7, &r->catch_up_us);
	}
	return gen_opt_set(&r->o, c, a);
}

static void set_defaults(struct run *r)
{
	gen_opts_defaults(&r->o);
	r->count = 10000;
	r->txq = 1;
	r->link_timeout = 10;
	r->stall_timeout = 5;
	r->catch_up_us = 1000;
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

static const char *check_run(const struct run *r)
{
	if (r->txq == 0) return "--tx-queues must be 1..64";
	if (r->pcap && !r->count_set && r->duration > 0) return "--pcap needs --count";
	if (!r->pcap && r->count == 0 && r->duration <= 0) return "give --count or --duration";
	if (r->pcap && (r->port || r->rate || r->paced))
		return "--pcap goes without --port, --rate and --paced";
	if (r->o.statsd_plain && r->expected) return "--statsd-plain writes no --expected totals";
	return NULL;
}

static int check_opts(struct run *r)
{
	uint64_t datagrams = r->count_set || r->duration <= 0 ? r->count : UINT64_MAX;
	const char *e = gen_opts_finish(&r->o, datagrams);

	if (e == NULL)
		e = check_run(r);
	if (e != NULL) {
		fprintf(stderr, "tally-gen: %s\n", e);
		return -EINVAL;
	}
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
	uint64_t backoff_tsc;
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

/*
 * A full ring: wait ~0.5 us before asking again. Over memif the ring's index
 * lines are shared with the receiver, and a generator re-reading them in a
 * tight loop takes them from the receiver's core at every update, a cost no
 * NIC puts on a receiver. 0.5 us is ~10 frames at 20 Mpps: far below a ring.
 */
static void backoff(const struct sender *s)
{
	uint64_t until = rte_rdtsc() + s->backoff_tsc;

	while (rte_rdtsc() < until)
		rte_pause();
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
		if (done == b->n || s->r->paced)
			break;
		s->r->tx_retries++;
		if (k > 0)
			idle_since = 0;
		else if (idle_since == 0)
			idle_since = rte_rdtsc();
		else if (stop || rte_rdtsc() - idle_since > s->stall_tsc)
			break;
		backoff(s);
	}
	if (done < b->n) {
		s->r->tx_failed += b->n - done;
		rte_pktmbuf_free_bulk(b->m + done, b->n - done);
		if (!stop && !s->r->paced)
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
	uint64_t hz = rte_get_tsc_hz(), start = rte_rdtsc(), t0 = start;
	uint64_t end = r->duration > 0 ? t0 + (uint64_t)(r->duration * (double)hz) : UINT64_MAX;
	uint64_t limit = r->count_set || r->duration <= 0 ? r->count : UINT64_MAX;
	uint64_t slack = (uint64_t)((double)r->rate * r->catch_up_us / 1e6);

	s->stall_tsc = (uint64_t)(r->stall_timeout * (double)hz);
	s->backoff_tsc = hz / 2000000;
	while (!stop && !s->dead && r->sent < limit) {
		uint64_t now = rte_rdtsc(), n = limit - r->sent < BURST ? limit - r->sent : BURST;

		if (now >= end)
			break;
		if (r->rate) { /* pace with the TSC: never ahead of rate * elapsed */
			uint64_t due = (uint64_t)((double)(now - t0) / (double)hz * (double)r->rate) + 1;

			if (due <= r->sent)
				continue;
			/* Paced, a long stall of ours must not come out as one burst
			 * above the rate: the receiver's ring would refuse what no wire
			 * sends. A short one is caught up, as a switch's buffer drains,
			 * or every hiccup of this CPU would lower the offered rate. */
			if (r->paced && due - r->sent > slack + BURST) {
				uint64_t skip = due - r->sent - slack - BURST;

				r->behind_skipped += skip;
				t0 += (uint64_t)((double)skip / (double)r->rate * (double)hz);
				due -= skip;
			}
			n = due - r->sent < n ? due - r->sent : n;
		}
		if (send_frames(s, (uint16_t)n) != 0) {
			r->alloc_retries++;
			continue;
		}
		r->sent += n;
	}
	r->seconds = (double)(rte_rdtsc() - start) / (double)hz;
	if (s->dead)
		fprintf(stderr, "tally-gen: port %u took no frame for %.0f s: stopped sending (is "
			"the receiver still running?)\n", s->pid, r->stall_timeout);
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
	LINE("frames_behind_skipped", r->behind_skipped, true);
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
	int dashdash = gen_opts_end(argc, argv), rc;

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
		/* no rte_eal_cleanup(): as tallyd (see its main) */
	}
	gen_pool_free(p);
	return rc != 0 || r.tx_failed ? 1 : 0;
}
