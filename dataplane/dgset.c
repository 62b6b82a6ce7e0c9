/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>

#include "dgset.h"

struct tally_dgset *tally_dgset_create(uint64_t n)
{
	struct tally_dgset *s = calloc(1, sizeof(*s));
	uint64_t cap = 16;

	while (cap < 2 * n + 1) /* at most half full: short probes, never a full loop */
		cap <<= 1;
	if (s == NULL || (s->slot = calloc(cap, sizeof(*s->slot))) == NULL) {
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	s->mask = cap - 1;
	return s;
}

void tally_dgset_free(struct tally_dgset *s)
{
	if (s == NULL)
		return;
	free(s->slot);
	free(s);
}

bool tally_dgset_add(struct tally_dgset *s, uint64_t sender, uint64_t seq)
{
	if (sender == 0)
		return true;
	if (2 * (s->n + 1) > s->mask + 1)
		return false;
	for (uint64_t i = tally_dgset_hash(sender, seq) & s->mask;; i = (i + 1) & s->mask) {
		struct tally_dgid *e = &s->slot[i];

		if (e->sender == sender && e->seq == seq)
			return true;
		if (e->sender == 0) {
			*e = (struct tally_dgid){sender, seq};
			s->n++;
			return true;
		}
	}
}
