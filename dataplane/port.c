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

int tally_port_start(uint16_t port_id, uint16_t nb_rxq, uint16_t rx_desc,
		     struct rte_mempool *mp, char *err, size_t errlen)
{
	struct rte_eth_dev_info info;
	struct rte_eth_conf conf;
	uint16_t nb_txq = 1, nb_rxd = rx_desc, nb_txd = 512;
	int r, socket = rte_eth_dev_socket_id(port_id);

	r = rte_eth_dev_info_get(port_id, &info);
	if (r < 0)
		goto fail;
	if (nb_rxq > info.max_rx_queues) {
		snprintf(err, errlen, "port %u (%s): %u RX queues wanted (rx_queues or one per "
			 "worker) but the device has at most %u", port_id, info.driver_name,
			 nb_rxq, info.max_rx_queues);
		return -EINVAL;
	}
	if (info.max_tx_queues == 0)
		nb_txq = 0;
	port_conf(&info, nb_rxq, &conf);
	r = rte_eth_dev_configure(port_id, nb_rxq, nb_txq, &conf);
	if (r < 0)
		goto fail;
	r = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &nb_rxd, &nb_txd);
	if (r < 0)
		goto fail;
	for (uint16_t q = 0; q < nb_rxq; q++) {
		r = rte_eth_rx_queue_setup(port_id, q, nb_rxd, socket < 0 ? 0 : socket, NULL, mp);
		if (r < 0)
			goto fail;
	}
	/* One TX queue for acks (later); some PMDs refuse to start without it. */
	for (uint16_t q = 0; q < nb_txq; q++) {
		r = rte_eth_tx_queue_setup(port_id, q, nb_txd, socket < 0 ? 0 : socket, NULL);
		if (r < 0)
			goto fail;
	}
	r = rte_eth_dev_start(port_id);
	if (r < 0)
		goto fail;
	rte_eth_promiscuous_enable(port_id); /* best effort: not every PMD has it */
	return 0;
fail:
	snprintf(err, errlen, "port %u: setup failed: %s", port_id, strerror(-r));
	return r;
}

void tally_port_stop(uint16_t port_id)
{
	rte_eth_dev_stop(port_id);
	rte_eth_dev_close(port_id);
}
