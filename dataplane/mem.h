/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Large tables (dedup, window tables) live outside DPDK's heap so they work
 * with or without hugepages: anonymous mmap, transparent huge pages requested,
 * and every page touched at start-up. A first touch on the hot path is a page
 * fault (and with THP, maybe a compaction stall): measured at ~1800 cycles per
 * event in scenario A before this, so the worker must never take one. On a
 * multi-socket server the pages are also placed on the worker's own node.
 */
#ifndef TALLY_MEM_H
#define TALLY_MEM_H

#include <stddef.h>

/* No NUMA preference: pages land on the node of the thread that pre-faults them. */
#define TALLY_NODE_ANY (-1)

/* Zeroed, pre-faulted memory; NULL with errno set. */
void *tally_mem_map(size_t bytes);
/*
 * The same, with the pages taken from NUMA node `node` when it can (preferred,
 * not bound; TALLY_NODE_ANY = no preference). A worker's tables and buffers go
 * on its lcore's node: a remote line costs ~1.5-2x a local one, and the worker
 * touches three random lines per event.
 */
void *tally_mem_map_node(size_t bytes, int node);
void tally_mem_unmap(void *p, size_t bytes);

/*
 * Prefetch the line at p into every cache level. Not __builtin_prefetch: once a
 * helper that only prefetches is inlined, GCC 12 deems it free of effects and
 * deletes the call (measured: no prefetch left in the worker, 2-3x the cycles
 * per event). An asm volatile cannot be dropped.
 */
static inline void tally_prefetch(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ volatile("prefetcht0 %0" : : "m"(*(const volatile char *)p));
#else
	__builtin_prefetch(p, 1, 3);
#endif
}

#endif
