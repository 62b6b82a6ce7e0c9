/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * How many mbufs the RX pool needs, as a pure function (no DPDK, so a cmocka
 * test checks it). The formula is l3fwd's: every descriptor of every RX and TX
 * ring can hold an mbuf, every worker can hold a burst in flight, and every
 * lcore's mempool cache can hold up to 1.5 x its size before it flushes back
 * (rte_mempool's flush threshold). A pool smaller than that runs dry once the
 * rings are full and the port counts rx_nombuf while traffic is light: the old
 * fixed default of 16383 was below 16 queues x 1024 descriptors on its own.
 */
#ifndef TALLY_PORT_SIZING_H
#define TALLY_PORT_SIZING_H

#include <stdint.h>

#define TALLY_MEMPOOL_CACHE 256 /* per-lcore mbuf cache of the RX pool */
#define TALLY_TX_DESC 512       /* descriptors of the (ack) TX queue */
#define TALLY_MBUFS_MAX 16777215ULL

struct tally_pool_need {
	uint64_t rx_queues, rx_desc; /* after the PMD adjusted them */
	uint64_t tx_queues, tx_desc;
	uint64_t lcores;             /* lcores that take mbufs from the pool */
	uint64_t burst, cache;
	uint64_t held;               /* mbufs other threads hold (the archiver's rings) */
};

/* Mbufs the pool must hold at least. */
static inline uint64_t tally_mbufs_needed(const struct tally_pool_need *n)
{
	return n->rx_queues * n->rx_desc + n->tx_queues * n->tx_desc +
	       n->lcores * (n->burst + n->cache + n->cache / 2) + n->held;
}

/* The pool size used when mbufs = 0: the need rounded up to 2^k - 1, the size
 * at which rte_mempool wastes no memory (DPDK's advice for rte_mempool_create). */
static inline uint64_t tally_mbufs_derived(const struct tally_pool_need *n)
{
	uint64_t need = tally_mbufs_needed(n), size = 1;

	while (size - 1 < need)
		size <<= 1;
	return size - 1;
}

#endif
