/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-gen: TLY1 or StatsD traffic for tests and benchmarks, to a pcap file or
 * a DPDK port (memif, af_xdp, NIC). Frames come pre-rendered from a pool
 * (gen_traffic.c), so the sending core only copies and patches event ids. It
 * prints what it sent and writes the exact expected totals per key and window.
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
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "gen_traffic.h"
#include "port.h"

struct run {
	struct gen_opts o;
	uint64_t count, rate;
	double duration;
	const char *pcap, *port, *expected, *stats_json;
	uint16_t txq;
	double linger;
	uint64_t sent, tx_failed, tx_retries;
	int64_t rows;
	double seconds;
};

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static void usage(FILE *out)
{
	fprintf(out,
	"usage: tally-gen [options] [-- EAL args]\n"
	"  --proto tly1|statsd     (tly1)\n"
	"  --keys N                distinct keys / StatsD names (1000)\n"
	"  --dist uniform|zipf     key distribution (uniform); --zipf-s S (1.1)\n"
	"  --events-per-dgram N    TLY1 events or StatsD lines per datagram (1)\n"
	"  --dup-rate F            fraction of TLY1 events re-sent with an earlier id (0)\n"
	"  --malformed-rate F      fraction of malformed datagrams (0)\n"
	"  --count N               datagrams to send (10000); --duration S instead (port mode)\n"
	"  --rate PPS              datagrams per second, 0 = as fast as possible (0)\n"
	"  --pcap FILE             write a capture instead of sending\n"
	"  --port DEVARGS          DPDK port to probe (default: port 0 of the EAL args)\n"
	"  --tx-queues N           TX queues, flows spread over them (1)\n"
	"  --expected FILE         write the expected totals (TSV)\n"
	"  --window-ms W           window size of the expected totals (10000)\n"
	"  --time-ms T             base event time (now); --time-span-ms S spread (0)\n"
	"  --dst-port P            (7000 for tly1, 8125 for statsd)\n"
	"  --flows N               UDP source ports (16); --ipv6-share F, --vlan-share F (0)\n"
	"  --pool N                pre-rendered datagrams (min(count, 65536))\n"
	"  --linger S              after sending, keep the port open until the receiver\n"
	"                          disconnects or S seconds pass (memif: the receiver's PMD\n"
	"                          must not poll a peer that is tearing down) (0)\n"
	"  --seed N (1)  --sender-id X (0x7a11)  --mtu N (1500)  --stats-json FILE\n");
}

static int parse_opts(int argc, char **argv, struct run *r)
{
	static const struct option lo[] = {
		{"proto", 1, 0, 'P'}, {"keys", 1, 0, 'k'}, {"dist", 1, 0, 'd'}, {"zipf-s", 1, 0, 'z'},
		{"events-per-dgram", 1, 0, 'e'}, {"dup-rate", 1, 0, 'D'}, {"malformed-rate", 1, 0, 'M'},
		{"count", 1, 0, 'n'}, {"duration", 1, 0, 'T'}, {"rate", 1, 0, 'r'}, {"pcap", 1, 0, 'w'},
		{"port", 1, 0, 'p'}, {"tx-queues", 1, 0, 'q'}, {"expected", 1, 0, 'x'},
		{"window-ms", 1, 0, 'W'}, {"time-ms", 1, 0, 't'}, {"time-span-ms", 1, 0, 's'},
		{"dst-port", 1, 0, 'o'}, {"flows", 1, 0, 'f'}, {"ipv6-share", 1, 0, '6'},
		{"vlan-share", 1, 0, 'v'}, {"pool", 1, 0, 'l'}, {"seed", 1, 0, 'S'},
		{"sender-id", 1, 0, 'i'}, {"mtu", 1, 0, 'm'}, {"stats-json", 1, 0, 'j'},
		{"linger", 1, 0, 'L'},
		{"help", 0, 0, 'h'}, {0, 0, 0, 0}};
	struct timespec now;
	int c;

	clock_gettime(CLOCK_REALTIME, &now);
	r->o = (struct gen_opts){GEN_TLY1, 1000, 1, 0, 16, false, 1.1, 0, 0, 0, 0,
				 (uint64_t)now.tv_sec * 1000, 0, 10000, 1, 0x7a11, 0, 1500};
	r->count = 10000;
	r->txq = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'P':
			if (strcmp(optarg, "tly1") && strcmp(optarg, "statsd"))
				goto bad;
			r->o.proto = strcmp(optarg, "tly1") ? GEN_STATSD : GEN_TLY1;
			break;
		case 'k': r->o.keys = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'd':
			if (strcmp(optarg, "uniform") && strcmp(optarg, "zipf"))
				goto bad;
			r->o.zipf = strcmp(optarg, "zipf") == 0;
			break;
		case 'z': r->o.zipf_s = atof(optarg); break;
		case 'e': r->o.per_dgram = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'D': r->o.dup_rate = atof(optarg); break;
		case 'M': r->o.malformed_rate = atof(optarg); break;
		case 'n': r->count = strtoull(optarg, NULL, 0); break;
		case 'T': r->duration = atof(optarg); r->count = 0; break;
		case 'r': r->rate = strtoull(optarg, NULL, 0); break;
		case 'w': r->pcap = optarg; break;
		case 'p': r->port = optarg; break;
		case 'q': r->txq = (uint16_t)strtoul(optarg, NULL, 0); break;
		case 'x': r->expected = optarg; break;
		case 'W': r->o.window_ms = strtoull(optarg, NULL, 0); break;
		case 't': r->o.time_ms = strtoull(optarg, NULL, 0); break;
		case 's': r->o.span_ms = strtoull(optarg, NULL, 0); break;
		case 'o': r->o.dst_port = (uint16_t)strtoul(optarg, NULL, 0); break;
		case 'f': r->o.flows = (uint32_t)strtoul(optarg, NULL, 0); break;
		case '6': r->o.ipv6_share = atof(optarg); break;
		case 'v': r->o.vlan_share = atof(optarg); break;
		case 'l': r->o.pool = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'S': r->o.seed = strtoull(optarg, NULL, 0); break;
		case 'i': r->o.sender_id = strtoull(optarg, NULL, 0); break;
		case 'm': r->o.mtu = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'j': r->stats_json = optarg; break;
		case 'L': r->linger = atof(optarg); break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	return 0;
bad:
	fprintf(stderr, "tally-gen: bad value \"%s\" for --%s\n", optarg, lo[c == 'P' ? 0 : 2].name);
	return -1;
}

static int check_opts(struct run *r)
{
	struct gen_opts *o = &r->o;
	const char *e = NULL;

	if (o->dst_port == 0)
		o->dst_port = o->proto == GEN_TLY1 ? 7000 : 8125;
	if (o->pool == 0)
		o->pool = (uint32_t)(r->count && r->count < 65536 ? r->count : 65536);
	if (o->keys == 0) e = "--keys must be at least 1";
	else if (o->per_dgram == 0 || o->per_dgram > 1024) e = "--events-per-dgram must be 1..1024";
	else if (o->window_ms == 0) e = "--window-ms must be at least 1";
	else if (o->proto == GEN_STATSD && o->window_ms % 1000) e = "StatsD times are whole seconds "
		"(|T): --window-ms must be a multiple of 1000";
	else if (o->flows == 0 || r->txq == 0) e = "--flows and --tx-queues must be at least 1";
	else if (o->dup_rate < 0 || o->dup_rate >= 1 || o->malformed_rate < 0 || o->malformed_rate >= 1)
		e = "--dup-rate and --malformed-rate must be in [0, 1)";
	else if (!r->pcap && r->count == 0 && r->duration <= 0) e = "give --count or --duration";
	else if (r->pcap && r->count == 0) e = "--pcap needs --count";
	else if (o->sender_id == 0) e = "--sender-id 0 is invalid in TLY1";
	else if (o->span_ms / o->window_ms > 60000) e = "--time-span-ms covers too many windows";
	if (e != NULL)
		fprintf(stderr, "tally-gen: %s\n", e);
	return e ? -1 : 0;
}

static int write_pcap(struct run *r, const struct gen_pool *p)
{
	pcap_t *pc = pcap_open_dead(DLT_EN10MB, 65535);
	pcap_dumper_t *d = pc ? pcap_dump_open(pc, r->pcap) : NULL;
	uint8_t frame[10000];
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (d == NULL) {
		fprintf(stderr, "tally-gen: cannot write %s: %s\n", r->pcap, pc ? pcap_geterr(pc) : "pcap");
		return -1;
	}
	for (r->sent = 0; r->sent < r->count; r->sent++) {
		uint32_t i = (uint32_t)(r->sent % p->nframes);
		struct pcap_pkthdr h = {{(time_t)(r->sent / 1000000), (suseconds_t)(r->sent % 1000000)},
					p->frames[i].len, p->frames[i].len};

		gen_frame_render(p, i, r->sent / p->nframes, frame);
		pcap_dump((u_char *)d, &h, frame);
	}
	pcap_dump_close(d);
	pcap_close(pc);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	r->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	return 0;
}

static int port_setup(struct run *r, uint16_t *pid, struct rte_mempool **mp)
{
	struct rte_eth_conf conf = {0};
	uint16_t nb_txd = 1024;
	char err[256];

	if (tally_port_find(r->port ? r->port : "", pid, err, sizeof(err)) != 0) {
		fprintf(stderr, "tally-gen: %s\n", err);
		return -1;
	}
	*mp = rte_pktmbuf_pool_create("gen", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				      rte_socket_id());
	if (*mp == NULL || rte_eth_dev_configure(*pid, 1, r->txq, &conf) < 0 ||
	    rte_eth_rx_queue_setup(*pid, 0, 256, 0, NULL, *mp) < 0)
		goto fail;
	for (uint16_t q = 0; q < r->txq; q++)
		if (rte_eth_tx_queue_setup(*pid, q, nb_txd, 0, NULL) < 0)
			goto fail;
	if (rte_eth_dev_start(*pid) < 0)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "tally-gen: port setup failed: %s\n", rte_strerror(rte_errno));
	return -1;
}

static int wait_link(uint16_t pid)
{
	struct rte_eth_link link;

	for (int i = 0; i < 100 && !stop; i++) {
		if (rte_eth_link_get_nowait(pid, &link) == 0 && link.link_status)
			return 0;
		rte_delay_ms(100);
	}
	fprintf(stderr, "tally-gen: link of port %u did not come up in 10 s (is the receiver "
		"running?)\n", pid);
	return -1;
}

/* Send one burst on queue q; retry the unsent tail until it goes or we stop. */
static uint16_t send_burst(struct run *r, const struct gen_pool *p, uint16_t pid, uint16_t q,
			   struct rte_mempool *mp, uint16_t n)
{
	struct rte_mbuf *m[32];
	uint16_t done = 0;

	if (rte_pktmbuf_alloc_bulk(mp, m, n) != 0)
		return 0;
	for (uint16_t k = 0; k < n; k++) {
		uint64_t s = r->sent + k;
		uint32_t i = (uint32_t)(s % p->nframes);

		gen_frame_render(p, i, s / p->nframes, rte_pktmbuf_mtod(m[k], uint8_t *));
		m[k]->data_len = m[k]->pkt_len = p->frames[i].len;
	}
	while (done < n) {
		done += rte_eth_tx_burst(pid, q, m + done, n - done);
		if (done < n && stop)
			break;
		r->tx_retries += done < n;
	}
	if (done < n) {
		r->tx_failed += n - done;
		rte_pktmbuf_free_bulk(m + done, n - done);
	}
	return done;
}

static void report(struct run *r, const struct gen_pool *p);

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

static int send_port(struct run *r, const struct gen_pool *p)
{
	struct rte_mempool *mp;
	uint16_t pid, q = 0;
	uint64_t hz = rte_get_tsc_hz(), t0, end, limit = r->count ? r->count : UINT64_MAX;

	if (port_setup(r, &pid, &mp) != 0 || wait_link(pid) != 0)
		return -1;
	t0 = rte_rdtsc();
	end = r->duration > 0 ? t0 + (uint64_t)(r->duration * (double)hz) : UINT64_MAX;
	while (!stop && r->sent < limit) {
		uint64_t now = rte_rdtsc();
		uint16_t n = (uint16_t)(limit - r->sent < 32 ? limit - r->sent : 32);

		if (now >= end)
			break;
		if (r->rate && r->sent * hz > (now - t0) * r->rate)
			continue;
		r->sent += send_burst(r, p, pid, q, mp, n);
		q = (uint16_t)((q + 1) % r->txq);
	}
	r->seconds = (double)(rte_rdtsc() - t0) / (double)hz;
	rte_delay_ms(200); /* let the last bursts leave before the port goes */
	report(r, p);
	linger(r, pid);
	rte_eth_dev_stop(pid);
	rte_eth_dev_close(pid);
	return 0;
}

static void summary(const struct run *r, const struct gen_pool *p, int64_t rows);

/* Expected totals and the summary, written before the port closes (see linger). */
static void report(struct run *r, const struct gen_pool *p)
{
	if (r->expected && (r->rows = gen_expected_write(p, r->sent, r->expected)) < 0) {
		fprintf(stderr, "tally-gen: cannot write %s: %s\n", r->expected, strerror(errno));
		exit(1);
	}
	summary(r, p, r->rows);
	fflush(stdout);
}

static void summary(const struct run *r, const struct gen_pool *p, int64_t rows)
{
	uint64_t ev, valid, dups, bad, bad_lines;
	double s = r->seconds > 0 ? r->seconds : 1e-9;
	FILE *j = r->stats_json ? fopen(r->stats_json, "w") : NULL;

	gen_sent_counts(p, r->sent, &ev, &valid, &dups, &bad, &bad_lines);
	struct { const char *n; double v; } f[] = {
		{"datagrams_sent", (double)r->sent}, {"frames_tx_failed", (double)r->tx_failed},
		{"tx_retries", (double)r->tx_retries}, {"events_sent", (double)ev},
		{"events_valid_expected", (double)valid}, {"duplicates_sent", (double)dups},
		{"malformed_datagrams", (double)bad}, {"bad_statsd_lines", (double)bad_lines},
		{"expected_rows", (double)rows}, {"pool_datagrams", (double)p->nframes},
		{"seconds", r->seconds}, {"mpps", (double)r->sent / s / 1e6},
		{"events_per_sec", (double)ev / s}};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		printf("%s %.*f\n", f[i].n, f[i].v == (double)(uint64_t)f[i].v ? 0 : 3, f[i].v);
		if (j)
			fprintf(j, "%s\"%s\": %.6f%s", i ? "" : "{", f[i].n, f[i].v,
				i + 1 < sizeof(f) / sizeof(f[0]) ? ", " : "}\n");
	}
	if (j)
		fclose(j);
}

int main(int argc, char **argv)
{
	struct run r = {0};
	struct gen_pool *p;
	int eal = argc;

	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) {
			eal = i;
			break;
		}
	if (parse_opts(eal, argv, &r) != 0 || check_opts(&r) != 0)
		return 2;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	p = gen_pool_build(&r.o);
	if (p == NULL)
		return 1;
	if (r.pcap == NULL) {
		/* EAL sees the program name followed by what came after "--". */
		char **eal_argv = eal < argc ? argv + eal : argv;

		eal_argv[0] = argv[0];
		if (rte_eal_init(eal < argc ? argc - eal : 1, eal_argv) < 0) {
			fprintf(stderr, "tally-gen: EAL init failed: %s\n", rte_strerror(rte_errno));
			return 1;
		}
	}
	r.rows = -1;
	if (r.pcap ? write_pcap(&r, p) : send_port(&r, p))
		return 1;
	if (r.pcap)
		report(&r, p);
	gen_pool_free(p);
	return r.tx_failed ? 1 : 0;
}
