/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Large tables (dedup, window tables) live outside DPDK's heap so they work
 * with or without hugepages: anonymous mmap, transparent huge pages requested,
 * and every page touched at start-up. A first touch on the hot path is a page
 * fault (and with THP, maybe a compaction stall): measured at ~1800 cycles per
 * event in scenario A before this, so the worker must never take one.
 */
#ifndef TALLY_MEM_H
#define TALLY_MEM_H

#include <stddef.h>

/* Zeroed, pre-faulted memory; NULL with errno set. */
void *tally_mem_map(size_t bytes);
void tally_mem_unmap(void *p, size_t bytes);

#endif
