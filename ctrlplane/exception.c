/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The exception path, DPDK's documented pattern for a NIC it owns: frames that
 * are not Tally's (ARP, ND, ICMP, TCP, other UDP ports, fragments) go to a
 * kernel-side device (a TAP, net_tap) that carries the appliance's address,
 * and what the kernel sends back goes out of the first port, so ARP, ping and
 * SSH to the appliance work while tallyd runs.
 *
 * Workers never touch the TAP: its I/O is a syscall per frame. A worker hands
 * such a frame to the control thread through its own SPSC ring, at most
 * exception_max_per_burst per burst of 32 (so a flood of non-Tally traffic
 * costs a worker at most that share of its bursts plus one ring enqueue each;
 * the rest is counted and dropped). The control thread, every millisecond,
 * writes the rings to the TAP and the TAP's frames to TX queue 0 of the port,
 * which nothing else transmits on.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <ck_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "port.h"
#include "log.h"
#include "tallyd.h"

#define EXC_BURST 32
#define EXC_RX_DESC 256

/* net_tap takes the port's MAC unless told otherwise: ARP replies then name
 * the address the NIC receives on, promiscuous or not. */
static void tap_devargs(const struct tally_daemon *d, char *out, size_t len)
{
	struct rte_ether_addr mac;

	if (strncmp(d->cfg.exception_port, "net_tap", 7) != 0 ||
	    strstr(d->cfg.exception_port, "mac=") != NULL || rte_eth_macaddr_get(d->port, &mac)) {
		snprintf(out, len, "%s", d->cfg.exception_port);
		return;
	}
	snprintf(out, len, "%s,mac=" RTE_ETHER_ADDR_PRT_FMT, d->cfg.exception_port,
		 RTE_ETHER_ADDR_BYTES(&mac));
}

int tally_exception_find(struct tally_daemon *d, char *err, size_t errlen)
{
	char devargs[TALLY_CFG_STR_MAX + 32];
	int r;

	if (d->cfg.exception_port[0] == '\0')
		return 0;
	tap_devargs(d, devargs, sizeof(devargs));
	r = tally_port_find(devargs, &d->exc_port, err, errlen);
	if (r < 0)
		return r;
	for (unsigned p = 0; p < d->nports; p++)
		if (d->ports[p] == d->exc_port) {
			snprintf(err, errlen, "exception_port: \"%s\" is one of the input ports",
				 d->cfg.exception_port);
			return -EINVAL;
		}
	d->exc_on = true;
	return EXC_RX_DESC + TALLY_TX_DESC; /* mbufs it holds, for the pool */
}

int tally_exception_start(struct tally_daemon *d, char *err, size_t errlen)
{
	struct rte_eth_dev_info info;
	uint16_t one = 1;
	int r;

	if (!d->exc_on)
		return 0;
	if (rte_eth_dev_info_get(d->port, &info) != 0 || info.max_tx_queues == 0) {
		snprintf(err, errlen, "exception_port: port %u cannot transmit: the kernel's replies "
			 "would have no way out", d->port);
		return -ENOTSUP;
	}
	r = tally_port_start(d->exc_port, 1, &one, EXC_RX_DESC, d->mp, err, errlen);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < d->nworkers; i++)
		d->workers[i].exc_cap = (uint16_t)d->cfg.exception_max_per_burst;
	tally_log(LOG_INFO, "tallyd: exception path: frames not Tally's go to port %u (%s), at most "
		"%llu per burst of %d per worker", d->exc_port, d->cfg.exception_port,
		(unsigned long long)d->cfg.exception_max_per_burst, TALLY_BURST);
	return 0;
}

/* Send n frames on (port, txq); what the device refuses is freed and counted.
 * The queue is the control thread's own: workers send acks on theirs. */
static uint16_t send_or_free(uint16_t port, uint16_t txq, struct rte_mbuf **m, uint16_t n,
			     uint64_t *dropped)
{
	uint16_t sent = n ? rte_eth_tx_burst(port, txq, m, n) : 0;

	if (sent < n) {
		rte_pktmbuf_free_bulk(m + sent, n - sent);
		*dropped += n - sent;
	}
	return sent;
}

void tally_exception_poll(struct tally_daemon *d)
{
	struct rte_mbuf *m[EXC_BURST];
	uint16_t n;

	if (!d->exc_on)
		return;
	for (unsigned i = 0; i < d->nworkers; i++) {
		struct tally_worker *w = &d->workers[i];

		do {
			void *p;

			for (n = 0; n < EXC_BURST && ck_ring_dequeue_spsc(&w->exc, w->exc_buf, &p); n++)
				m[n] = p;
			send_or_free(d->exc_port, 0, m, n, &d->exc_dropped);
		} while (n == EXC_BURST);
	}
	do {
		n = rte_eth_rx_burst(d->exc_port, 0, m, EXC_BURST);
		d->exc_from_kernel += send_or_free(d->port, d->exc_txq, m, n, &d->exc_dropped);
	} while (n == EXC_BURST);
}

/* After the workers stopped: free what they left in the rings. */
void tally_exception_stop(struct tally_daemon *d)
{
	void *p;

	if (!d->exc_on)
		return;
	for (unsigned i = 0; i < d->nworkers; i++)
		while (ck_ring_dequeue_spsc(&d->workers[i].exc, d->workers[i].exc_buf, &p))
			rte_pktmbuf_free(p);
	tally_port_stop(d->exc_port);
	d->exc_on = false;
}
