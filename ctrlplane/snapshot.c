/* SPDX-License-Identifier: BSD-3-Clause */
/* Snapshot memory: the worker array is the only thing a snapshot owns. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"

const char *const tally_health_names[] = {"running", "stalled", "done"};

int tally_snap_init(struct tally_snap *s, unsigned nworkers)
{
	memset(s, 0, sizeof(*s));
	s->nworkers = nworkers;
	s->w = calloc(nworkers ? nworkers : 1, sizeof(*s->w));
	return s->w == NULL ? -ENOMEM : 0;
}

void tally_snap_fini(struct tally_snap *s)
{
	free(s->w);
	s->w = NULL;
}

void tally_snap_copy(struct tally_snap *dst, const struct tally_snap *src)
{
	struct tally_snap_worker *w = dst->w;

	memcpy(w, src->w, sizeof(*w) * src->nworkers);
	*dst = *src;
	dst->w = w;
}
