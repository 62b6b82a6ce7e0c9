/* SPDX-License-Identifier: BSD-3-Clause */
/* Pre-faulted anonymous memory for the big tables (see mem.h). */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#include "mem.h"

void *tally_mem_map(size_t bytes)
{
	uint8_t *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	madvise(p, bytes, MADV_HUGEPAGE); /* best effort: THP may be off */
	for (size_t off = 0; off < bytes; off += 4096)
		((volatile uint8_t *)p)[off] = 0;
	return p;
}

void tally_mem_unmap(void *p, size_t bytes)
{
	if (p != NULL)
		munmap(p, bytes);
}
