/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Port setup for any DPDK device: real NICs (ixgbe, i40e, ice, mlx5), net_af_xdp,
 * net_memif, net_pcap, net_ring, net_null. Start-up checks what the device can do
 * and says what to change when it is wrong, naming the device and the limit.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include "port.h"

static int probe(const char *devargs, uint16_t *port_id, char *err, size_t errlen)
{
	char name[RTE_DEV_NAME_MAX_LEN];
	size_t n = strcspn(devargs, ",");
	int r;

	snprintf(name, sizeof(name), "%.*s", (int)n, devargs);
	/* Already brought up by the EAL arguments (-a or --vdev)? */
	if (rte_eth_dev_get_port_by_name(name, port_id) == 0)
		return 0;
	r = rte_dev_probe(devargs);
	if (r < 0) {
		snprintf(err, errlen, "port: cannot probe \"%s\": %s", devargs, strerror(-r));
		return r;
	}
	if (rte_eth_dev_get_port_by_name(name, port_id) != 0) {
		snprintf(err, errlen, "port: \"%s\" probed but is not an ethdev", devargs);
		return -ENODEV;
	}
	return 0;
}

int tally_port_find(const char *devargs, uint16_t *port_id, char *err, size_t errlen)
{
	uint16_t pid;

	if (devargs[0] != '\0')
		return probe(devargs, port_id, err, errlen);
	RTE_ETH_FOREACH_DEV(pid) {
		*port_id = pid;
		return 0;
	}
	snprintf(err, errlen, "port: no DPDK port: set port (e.g. port=net_pcap0,rx_pcap=in.pcap) "
		 "or pass -a PCI or --vdev after --");
	return -ENODEV;
}

static void port_conf(const struct rte_eth_dev_info *info, uint16_t nb_rxq,
		      struct rte_eth_conf *conf)
{
	memset(conf, 0, sizeof(*conf));
	conf->rxmode.offloads = info->rx_offload_capa &
		(RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM);
	if (nb_rxq > 1 && info->flow_type_rss_offloads != 0) {
		conf->rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf->rx_adv_conf.rss_conf.rss_hf = info->flow_type_rss_offloads &
			(RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP);
	}
}

/* The queues and descriptors tally_port_start will set up, as the PMD adjusts
 * them: the mbuf pool is sized from these before the port is configured. */
int tally_port_plan(uint16_t port_id, uint16_t nb_rxq, uint16_t nb_txq, uint16_t rx_desc,
		    struct tally_pool_need *need, char *err, size_t errlen)
{
	struct rte_eth_dev_info info;
	uint16_t nb_rxd = rx_desc, nb_txd = TALLY_TX_DESC;
	int r = rte_eth_dev_info_get(port_id, &info);

	if (r == 0)
		r = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &nb_rxd, &nb_txd);
	if (r < 0) {
		snprintf(err, errlen, "port %u: cannot read its limits: %s", port_id, strerror(-r));
		return r;
	}
	need->rx_queues = nb_rxq;
	need->rx_desc = nb_rxd;
	need->tx_queues = RTE_MIN(nb_txq, info.max_tx_queues);
	need->tx_desc = nb_txd;
	return 0;
}

static int queues_setup(uint16_t port_id, uint16_t nb_rxq, uint16_t nb_txq, uint16_t nb_rxd,
			uint16_t nb_txd, struct rte_mempool *mp)
{
	int r = 0, socket = rte_eth_dev_socket_id(port_id);

	if (socket < 0)
		socket = SOCKET_ID_ANY;
	for (uint16_t q = 0; q < nb_rxq && r == 0; q++)
		r = rte_eth_rx_queue_setup(port_id, q, nb_rxd, socket, NULL, mp);
	/* One TX queue per worker for its acks: a worker owns its queue, so TX
	 * takes no lock. Some PMDs refuse to start without one. */
	for (uint16_t q = 0; q < nb_txq && r == 0; q++)
		r = rte_eth_tx_queue_setup(port_id, q, nb_txd, socket, NULL);
	return r;
}

int tally_port_start(uint16_t port_id, uint16_t nb_rxq, uint16_t *nb_txq_io, uint16_t rx_desc,
		     struct rte_mempool *mp, char *err, size_t errlen)
{
	struct rte_eth_dev_info info;
	struct rte_eth_conf conf;
	uint16_t nb_txq = *nb_txq_io, nb_rxd = rx_desc, nb_txd = TALLY_TX_DESC;
	int r;

	r = rte_eth_dev_info_get(port_id, &info);
	if (r < 0)
		goto fail;
	if (nb_rxq > info.max_rx_queues) {
		snprintf(err, errlen, "port %u (%s): %u RX queues wanted (rx_queues or one per "
			 "worker) but the device has at most %u", port_id, info.driver_name,
			 nb_rxq, info.max_rx_queues);
		return -EINVAL;
	}
	/* Fewer TX queues than workers (pcap: one per tx_pcap): the workers
	 * without one count their acks unsent. */
	nb_txq = RTE_MIN(nb_txq, info.max_tx_queues);
	*nb_txq_io = nb_txq;
	port_conf(&info, nb_rxq, &conf);
	r = rte_eth_dev_configure(port_id, nb_rxq, nb_txq, &conf);
	if (r == 0)
		r = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &nb_rxd, &nb_txd);
	if (r == 0)
		r = queues_setup(port_id, nb_rxq, nb_txq, nb_rxd, nb_txd, mp);
	if (r == 0)
		r = rte_eth_dev_start(port_id);
	if (r < 0)
		goto fail;
	rte_eth_promiscuous_enable(port_id); /* best effort: not every PMD has it */
	return 0;
fail:
	snprintf(err, errlen, "port %u: setup failed: %s", port_id, strerror(-r));
	return r;
}

/* rte_eth_link_speed_to_str is experimental in 22.11: the same text, here. */
static void speed_str(uint32_t mbps, char *buf, size_t len)
{
	if (mbps == RTE_ETH_SPEED_NUM_UNKNOWN || mbps == RTE_ETH_SPEED_NUM_NONE)
		snprintf(buf, len, "(speed unknown)");
	else if (mbps >= 1000 && mbps % 1000 == 0)
		snprintf(buf, len, "%u Gbps", mbps / 1000);
	else
		snprintf(buf, len, "%u Mbps", mbps);
}

/* Once, at start: a port that is down is reported, never fatal. A memif server
 * is down until its client connects, a NIC until the cable or switch is up;
 * tallyd counts whatever arrives once it is up. */
void tally_port_report_link(uint16_t port_id, FILE *out)
{
	struct rte_eth_dev_info info;
	struct rte_eth_link link;
	const char *drv = "?";
	char speed[32];

	if (rte_eth_dev_info_get(port_id, &info) == 0)
		drv = info.driver_name;
	memset(&link, 0, sizeof(link));
	if (rte_eth_link_get_nowait(port_id, &link) < 0 || link.link_status == RTE_ETH_LINK_DOWN) {
		fprintf(out, "tallyd: port %u (%s): link down: waiting for it to come up "
			"(tallyd runs on)\n", port_id, drv);
		return;
	}
	speed_str(link.link_speed, speed, sizeof(speed));
	fprintf(out, "tallyd: port %u (%s): link up %s %s\n", port_id, drv, speed,
		link.link_duplex == RTE_ETH_LINK_FULL_DUPLEX ? "full-duplex" : "half-duplex");
}

/* A worker on another socket than its NIC reads every frame across the
 * inter-socket link: it works, at a cost, so it is a warning, not an error. */
void tally_port_check_lcore(uint16_t port_id, unsigned lcore, unsigned worker, FILE *out)
{
	int port_socket = rte_eth_dev_socket_id(port_id);
	unsigned lcore_socket = rte_lcore_to_socket_id(lcore);

	if (port_socket < 0 || (unsigned)port_socket == lcore_socket)
		return;
	fprintf(out, "tallyd: warning: worker %u on lcore %u is on socket %u but port %u is on "
		"socket %d: every frame crosses sockets; give tallyd lcores of socket %d "
		"(deploy/REAL-NIC.md)\n", worker, lcore, lcore_socket, port_id, port_socket,
		port_socket);
}

void tally_port_stop(uint16_t port_id)
{
	rte_eth_dev_stop(port_id);
	rte_eth_dev_close(port_id);
}
