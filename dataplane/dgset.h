/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The committed-datagram set: (sender_id, batch_seq) of TLY1 datagrams with
 * ACK_REQ whose events are already durable (in a sink, or a spool), read from
 * the sinks and spools at start and, for other appliances sharing the sink,
 * again every committed_refresh_ms. A worker drops such a datagram whole when
 * a producer retransmits it (its ack was lost, or the appliance that took it
 * died before acking) and acks it committed: this is what makes dedup survive
 * a restart and a failover (README: "Exactly once").
 *
 * Built whole off the workers, then read-only: open addressing over a power of
 * two of 16-byte entries, sender_id 0 (never valid in TLY1) marks a free slot.
 * Swapped under ck_epoch with the rest of struct tally_params.
 */
#ifndef TALLY_DGSET_H
#define TALLY_DGSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tally_dgid {
	uint64_t sender, seq;
};

struct tally_dgset {
	uint64_t mask, n;
	struct tally_dgid *slot;
};

/* Room for at least n ids; NULL on ENOMEM. */
struct tally_dgset *tally_dgset_create(uint64_t n);
void tally_dgset_free(struct tally_dgset *s);
/* Add an id (sender 0 is ignored); false when full. */
bool tally_dgset_add(struct tally_dgset *s, uint64_t sender, uint64_t seq);

static inline uint64_t tally_dgset_hash(uint64_t sender, uint64_t seq)
{
	uint64_t h = (sender ^ (seq * 0x9e3779b97f4a7c15ULL)) * 0xff51afd7ed558ccdULL;

	return h ^ (h >> 32);
}

static inline bool tally_dgset_has(const struct tally_dgset *s, uint64_t sender, uint64_t seq)
{
	for (uint64_t i = tally_dgset_hash(sender, seq) & s->mask;; i = (i + 1) & s->mask) {
		const struct tally_dgid *e = &s->slot[i];

		if (e->sender == 0)
			return false;
		if (e->sender == sender && e->seq == seq)
			return true;
	}
}

#endif
