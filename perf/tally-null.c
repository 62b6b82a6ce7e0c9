/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-null: the null receiver. Polls one RX queue in bursts of 32 and frees the
 * mbufs: the packet-I/O ceiling of the machine, which the benchmark puts next to
 * tallyd's rate. Same conventions as tallyd: own options, then -- and EAL args.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "port.h"

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static int setup(const char *devargs, uint16_t *pid)
{
	struct rte_eth_conf conf = {0};
	struct rte_mempool *mp;
	char err[256];

	if (tally_port_find(devargs ? devargs : "", pid, err, sizeof(err)) != 0) {
		fprintf(stderr, "tally-null: %s\n", err);
		return -1;
	}
	mp = rte_pktmbuf_pool_create("null", 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
	if (mp == NULL || rte_eth_dev_configure(*pid, 1, 1, &conf) < 0 ||
	    rte_eth_rx_queue_setup(*pid, 0, 1024, 0, NULL, mp) < 0 ||
	    rte_eth_tx_queue_setup(*pid, 0, 512, 0, NULL) < 0 || rte_eth_dev_start(*pid) < 0) {
		fprintf(stderr, "tally-null: port setup failed: %s\n", rte_strerror(rte_errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *devargs = NULL, *json = NULL;
	double duration = 0;
	uint64_t rx = 0, bytes = 0, first = 0, last = 0, t0, hz;
	struct rte_eth_stats st = {0};
	struct rte_mbuf *m[32];
	uint16_t pid;
	int i, eal = argc;

	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (!strcmp(argv[i], "--duration") && i + 1 < argc) duration = atof(argv[++i]);
		else if (!strcmp(argv[i], "--port") && i + 1 < argc) devargs = argv[++i];
		else if (!strcmp(argv[i], "--stats-json") && i + 1 < argc) json = argv[++i];
		else {
			fprintf(stderr, "usage: tally-null [--duration S] [--port DEVARGS] "
				"[--stats-json FILE] -- EAL args\n");
			return 2;
		}
	}
	eal = i < argc ? i : 0;
	argv[eal] = argv[0];
	if (rte_eal_init(eal ? argc - eal : 1, argv + eal) < 0 || setup(devargs, &pid) != 0)
		return 1;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	hz = rte_get_tsc_hz();
	t0 = rte_rdtsc();
	while (!stop && (duration <= 0 || rte_rdtsc() - t0 < (uint64_t)(duration * (double)hz))) {
		uint16_t n = rte_eth_rx_burst(pid, 0, m, 32);

		if (n == 0)
			continue;
		last = rte_rdtsc();
		first = first ? first : last;
		rx += n;
		for (uint16_t k = 0; k < n; k++)
			bytes += m[k]->pkt_len;
		rte_pktmbuf_free_bulk(m, n);
	}
	rte_eth_stats_get(pid, &st);
	double secs = first ? (double)(last - first) / (double)hz : 0;
	printf("rx_packets %llu\nrx_bytes %llu\nseconds %.3f\nmpps %.3f\nimissed %llu\nrx_nombuf %llu\n",
	       (unsigned long long)rx, (unsigned long long)bytes, secs,
	       secs > 0 ? (double)rx / secs / 1e6 : 0, (unsigned long long)st.imissed,
	       (unsigned long long)st.rx_nombuf);
	if (json != NULL) {
		FILE *f = fopen(json, "w");

		if (f != NULL) {
			fprintf(f, "{\"rx_packets\": %llu, \"rx_bytes\": %llu, \"seconds\": %.6f, "
				"\"mpps\": %.6f, \"imissed\": %llu, \"rx_nombuf\": %llu}\n",
				(unsigned long long)rx, (unsigned long long)bytes, secs,
				secs > 0 ? (double)rx / secs / 1e6 : 0, (unsigned long long)st.imissed,
				(unsigned long long)st.rx_nombuf);
			fclose(f);
		}
	}
	rte_eth_dev_stop(pid);
	rte_eal_cleanup();
	return 0;
}
