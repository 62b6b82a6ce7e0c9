/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Pre-faulted anonymous memory for the big tables and worker buffers (see
 * mem.h), optionally placed on one NUMA node.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mem.h"

/* From <numaif.h>. mbind(2) is one raw syscall here rather than a libnuma
 * dependency: Tally needs nothing else from libnuma, and DPDK already finds the
 * lcores' sockets for us. */
#define TALLY_MPOL_PREFERRED 1
#define TALLY_MAX_NODES 1024

/*
 * Ask the kernel to take the pages of [p, p + bytes) from node. PREFERRED, not
 * BIND: a node that runs out falls back to another one (slower memory, but
 * tallyd starts) instead of the OOM killer. Best effort: a kernel without NUMA
 * (ENOSYS), a node that does not exist (EINVAL) or a container that forbids it
 * (EPERM) leaves the default policy, which is the first-touching thread's node.
 */
static void bind_node(void *p, size_t bytes, int node)
{
	unsigned long mask[TALLY_MAX_NODES / (8 * sizeof(unsigned long))] = {0};
	const unsigned bits = 8 * sizeof(unsigned long);

	if (node < 0 || node >= TALLY_MAX_NODES)
		return;
	mask[node / bits] = 1UL << (node % bits);
	(void)syscall(SYS_mbind, p, bytes, TALLY_MPOL_PREFERRED, mask,
		      (unsigned long)TALLY_MAX_NODES + 1, 0UL);
}

void *tally_mem_map_node(size_t bytes, int node)
{
	uint8_t *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* The policy must be set before the first touch: that is when pages are placed. */
	bind_node(p, bytes, node);
	madvise(p, bytes, MADV_HUGEPAGE); /* best effort: THP may be off */
	for (size_t off = 0; off < bytes; off += 4096)
		((volatile uint8_t *)p)[off] = 0;
	return p;
}

void *tally_mem_map(size_t bytes)
{
	return tally_mem_map_node(bytes, TALLY_NODE_ANY);
}

void tally_mem_unmap(void *p, size_t bytes)
{
	if (p != NULL)
		munmap(p, bytes);
}
