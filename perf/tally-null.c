/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-null: the null receiver. One lcore busy-polls one RX queue in bursts of
 * 32 and frees the mbufs: the packet-I/O ceiling of the machine, which the
 * benchmark puts next to tallyd's rate. Same conventions as tallyd and tally-gen:
 * own options, then -- and the EAL args.
 *
 * The rate is taken over [first packet, last packet], so neither the wait for
 * the sender nor the idle tail after it stops counts; the whole polling time
 * is reported too (seconds_total).
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "port.h"

#define BURST 32
#define NB_RXD 1024
#define NB_MBUF 16383

struct null_opts {
	const char *devargs, *json;
	double duration;
};

struct null_stats {
	uint64_t rx, bytes;
	double seconds, seconds_total;
	struct rte_eth_stats eth;
};

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static void usage(FILE *out)
{
	fprintf(out,
	"usage: tally-null [options] -- EAL args\n"
	"  --duration S       stop S seconds after the first packet (0 = at SIGINT/SIGTERM) (0)\n"
	"  --port DEVARGS     DPDK port to probe, e.g. net_memif0,role=server,socket=S\n"
	"                     (default: the first port of the EAL args)\n"
	"  --stats-json FILE  write the results as JSON too\n"
	"prints rx_packets, rx_bytes, seconds (first to last packet), mpps (over those\n"
	"seconds), seconds_total (all polling), imissed, rx_nombuf\n");
}

/* Own options up to "--"; returns the index of "--" (argc if none), or -1. */
static int parse_opts(int argc, char **argv, struct null_opts *o)
{
	int i;

	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end = NULL;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(a, "--duration") && v) {
			o->duration = strtod(v, &end);
			if (*end != '\0' || end == v || !isfinite(o->duration) || o->duration < 0) {
				fprintf(stderr, "tally-null: bad value \"%s\" for --duration\n", v);
				return -1;
			}
		} else if (!strcmp(a, "--port") && v) {
			o->devargs = v;
		} else if (!strcmp(a, "--stats-json") && v) {
			o->json = v;
		} else {
			fprintf(stderr, "tally-null: unknown option or missing value: \"%s\"\n", a);
			usage(stderr);
			return -1;
		}
		i++;
	}
	return i;
}

static int setup(const char *devargs, uint16_t *pid)
{
	struct rte_eth_conf conf = {0};
	struct rte_mempool *mp;
	char err[256];
	int socket;

	if (tally_port_find(devargs ? devargs : "", pid, err, sizeof(err)) != 0) {
		fprintf(stderr, "tally-null: %s\n", err);
		return -ENODEV;
	}
	socket = rte_eth_dev_socket_id(*pid);
	mp = rte_pktmbuf_pool_create("null", NB_MBUF, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				     rte_socket_id());
	if (mp == NULL || rte_eth_dev_configure(*pid, 1, 1, &conf) < 0 ||
	    rte_eth_rx_queue_setup(*pid, 0, NB_RXD, socket, NULL, mp) < 0 ||
	    rte_eth_tx_queue_setup(*pid, 0, 512, socket, NULL) < 0 || rte_eth_dev_start(*pid) < 0) {
		fprintf(stderr, "tally-null: setting up port %u failed: %s\n", *pid,
			rte_strerror(rte_errno));
		return -EIO;
	}
	return 0;
}

/* Busy-poll until the duration, counted from the first packet (a generator may
 * take a while to build its traffic), ends or a signal comes. */
static void poll_loop(uint16_t pid, double duration, struct null_stats *s)
{
	struct rte_mbuf *m[BURST];
	uint64_t hz = rte_get_tsc_hz(), t0 = rte_rdtsc(), first = 0, last = 0, now = t0;
	uint64_t end = UINT64_MAX;

	while (!stop && now < end) {
		uint16_t n = rte_eth_rx_burst(pid, 0, m, BURST);

		now = rte_rdtsc();
		if (n == 0)
			continue;
		if (first == 0) {
			first = now;
			end = duration > 0 ? first + (uint64_t)(duration * (double)hz) : UINT64_MAX;
		}
		last = now;
		s->rx += n;
		for (uint16_t k = 0; k < n; k++)
			s->bytes += m[k]->pkt_len;
		rte_pktmbuf_free_bulk(m, n);
	}
	s->seconds = first ? (double)(last - first) / (double)hz : 0;
	s->seconds_total = (double)(now - t0) / (double)hz;
}

static void report(const struct null_stats *s, FILE *out, bool json)
{
	double mpps = s->seconds > 0 ? (double)s->rx / s->seconds / 1e6 : 0;

	fprintf(out, json ? "{\"rx_packets\": %llu, \"rx_bytes\": %llu, \"seconds\": %.6f, "
			    "\"mpps\": %.6f, \"seconds_total\": %.6f, \"imissed\": %llu, "
			    "\"rx_nombuf\": %llu}\n"
			  : "rx_packets %llu\nrx_bytes %llu\nseconds %.6f\nmpps %.6f\n"
			    "seconds_total %.6f\nimissed %llu\nrx_nombuf %llu\n",
		(unsigned long long)s->rx, (unsigned long long)s->bytes, s->seconds, mpps,
		s->seconds_total, (unsigned long long)s->eth.imissed,
		(unsigned long long)s->eth.rx_nombuf);
}

int main(int argc, char **argv)
{
	struct null_opts o = {0};
	struct null_stats s = {0};
	uint16_t pid;
	int dd = parse_opts(argc, argv, &o);

	if (dd < 0)
		return 2;
	/* EAL sees the program name followed by what came after "--". */
	if (dd < argc)
		argv[dd] = argv[0];
	if (rte_eal_init(dd < argc ? argc - dd : 1, dd < argc ? argv + dd : argv) < 0) {
		fprintf(stderr, "tally-null: EAL init failed: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	if (setup(o.devargs, &pid) != 0)
		return 1;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	poll_loop(pid, o.duration, &s);
	rte_eth_stats_get(pid, &s.eth);
	report(&s, stdout, false);
	fflush(stdout);
	if (o.json != NULL) {
		FILE *f = fopen(o.json, "w");

		if (f == NULL) {
			fprintf(stderr, "tally-null: cannot write %s: %s\n", o.json, strerror(errno));
			return 1;
		}
		report(&s, f, true);
		fclose(f);
	}
	rte_eth_dev_stop(pid);
	rte_eth_dev_close(pid);
	/* no rte_eal_cleanup(): as tallyd (see its main) */
	return 0;
}
