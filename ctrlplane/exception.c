/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The exception path, DPDK's documented pattern for a NIC it owns: frames that
 * are not Tally's (ARP, ND, ICMP, TCP, other UDP ports, fragments) go to a
 * kernel-side device (a TAP, net_tap) that carries the appliance's address,
 * and what the kernel sends back goes out of the port the TAP belongs to, so
 * ARP, ND, ping and SSH to the appliance work while tallyd runs.
 *
 * One TAP per port (exception_port lists them in the order of port), not one
 * for all: a reply must leave through the port its request came in on, and a
 * kernel interface per port says so the kernel's own way (each has the port's
 * MAC, its own addresses and routes, its own neighbour table), where a single
 * TAP would need a learned MAC-to-port table that broadcasts and ND multicast
 * could only flood. A worker's frame goes to the TAP of the port it arrived on
 * (the PMD's mbuf->port); a port without a TAP drops such frames under their
 * drop reason, as with the path off.
 *
 * Workers never touch a TAP: its I/O is a syscall per frame. A worker hands
 * such a frame to the control thread through its own SPSC ring, at most
 * exception_max_per_burst per burst of 32 (so a flood of non-Tally traffic
 * costs a worker at most that share of its bursts plus one ring enqueue each;
 * the rest is counted and dropped). The control thread, every millisecond,
 * writes the rings to the TAPs and each TAP's frames to its port's last TX
 * queue, which nothing else transmits on.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <ck_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "port.h"
#include "tallyd.h"

#define EXC_BURST 32
#define EXC_RX_DESC 256

/* net_tap takes the port's MAC unless told otherwise: ARP and ND replies then
 * name the address the NIC receives on, promiscuous or not. */
static void tap_devargs(const char *devargs, uint16_t port, char *out, size_t len)
{
	struct rte_ether_addr mac;

	if (strncmp(devargs, "net_tap", 7) != 0 || strstr(devargs, "mac=") != NULL ||
	    rte_eth_macaddr_get(port, &mac)) {
		snprintf(out, len, "%s", devargs);
		return;
	}
	snprintf(out, len, "%s,mac=" RTE_ETHER_ADDR_PRT_FMT, devargs, RTE_ETHER_ADDR_BYTES(&mac));
}

static int find_one(struct tally_daemon *d, const char *devargs, char *err, size_t errlen)
{
	char full[TALLY_CFG_STR_MAX + 32];
	uint16_t *pid = &d->exc_ports[d->nexc];
	int r;

	if (d->nexc == d->nports) {
		snprintf(err, errlen, "exception_port: %u devices or more for %u port(s): one per "
			 "port, in the order of port", d->nexc + 1, d->nports);
		return -EINVAL;
	}
	tap_devargs(devargs, d->ports[d->nexc], full, sizeof(full));
	r = tally_port_find(full, pid, err, errlen);
	if (r < 0)
		return r;
	for (unsigned p = 0; p < d->nports; p++)
		if (d->ports[p] == *pid) {
			snprintf(err, errlen, "exception_port: \"%s\" is one of the input ports",
				 devargs);
			return -EINVAL;
		}
	d->nexc++;
	return 0;
}

/* exception_port lists devices separated by ';' (devargs hold commas). */
int tally_exception_find(struct tally_daemon *d, char *err, size_t errlen)
{
	char list[sizeof(d->cfg.exception_port)], *save = NULL;
	int r = 0;

	snprintf(list, sizeof(list), "%s", d->cfg.exception_port);
	for (char *t = strtok_r(list, ";", &save); t != NULL && r == 0;
	     t = strtok_r(NULL, ";", &save))
		r = find_one(d, t, err, errlen);
	if (r < 0)
		return r;
	d->exc_on = d->nexc > 0;
	return (int)d->nexc * (EXC_RX_DESC + TALLY_TX_DESC); /* mbufs they hold, for the pool */
}

int tally_exception_start(struct tally_daemon *d, char *err, size_t errlen)
{
	uint16_t one = 1;
	int r;

	for (unsigned i = 0; i < d->nexc; i++) {
		r = tally_port_start(d->exc_ports[i], 1, &one, EXC_RX_DESC, d->mp, err, errlen);
		if (r < 0)
			return r;
		fprintf(stderr, "tallyd: exception path: frames not Tally's from port %u go to "
			"port %u (at most %llu per burst of %d per worker), its replies out of "
			"port %u TX queue %u\n", d->ports[i], d->exc_ports[i],
			(unsigned long long)d->cfg.exception_max_per_burst, TALLY_BURST,
			d->ports[i], d->exc_txqs[i]);
	}
	for (unsigned i = 0; d->exc_on && i < d->nworkers; i++) {
		d->workers[i].exc_cap = (uint16_t)d->cfg.exception_max_per_burst;
		for (unsigned p = 0; p < d->nexc; p++)
			d->workers[i].exc_ports |= 1ull << (d->ports[p] % 64);
	}
	if (d->exc_on && d->nexc < d->nports)
		fprintf(stderr, "tallyd: exception path: the ports after the first %u have no "
			"exception_port: frames not Tally's are dropped there, counted by reason\n",
			d->nexc);
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

/* The index in ports[] of the port m arrived on, or nexc when it has no TAP. */
static unsigned tap_of(const struct tally_daemon *d, const struct rte_mbuf *m)
{
	unsigned i = 0;

	while (i < d->nexc && d->ports[i] != m->port)
		i++;
	return i;
}

/* One burst of a worker's ring, sorted by ingress port onto that port's TAP. */
static uint16_t to_kernel(struct tally_daemon *d, struct tally_worker *w)
{
	struct rte_mbuf *by[TALLY_MAX_PORTS + 1][EXC_BURST];
	uint16_t n = 0, cnt[TALLY_MAX_PORTS + 1] = {0};
	void *p;

	for (; n < EXC_BURST && ck_ring_dequeue_spsc(&w->exc, w->exc_buf, &p); n++) {
		unsigned i = tap_of(d, p);

		by[i][cnt[i]++] = p;
	}
	for (unsigned i = 0; i < d->nexc; i++)
		send_or_free(d->exc_ports[i], 0, by[i], cnt[i], &d->exc_dropped);
	if (cnt[d->nexc] > 0) {
		rte_pktmbuf_free_bulk(by[d->nexc], cnt[d->nexc]);
		d->exc_dropped += cnt[d->nexc];
	}
	return n;
}

void tally_exception_poll(struct tally_daemon *d)
{
	struct rte_mbuf *m[EXC_BURST];
	uint16_t n;

	for (unsigned i = 0; i < d->nworkers && d->exc_on; i++)
		while (to_kernel(d, &d->workers[i]) == EXC_BURST)
			;
	for (unsigned i = 0; i < d->nexc; i++)
		do {
			n = rte_eth_rx_burst(d->exc_ports[i], 0, m, EXC_BURST);
			d->exc_from_kernel += send_or_free(d->ports[i], d->exc_txqs[i], m, n,
							   &d->exc_dropped);
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
	for (unsigned i = 0; i < d->nexc; i++)
		tally_port_stop(d->exc_ports[i]);
	d->exc_on = false;
}
