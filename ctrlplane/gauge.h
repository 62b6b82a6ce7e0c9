/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The appliance's gauge state: the current value of every StatsD gauge key
 * (name|g[|#tags]), which carries across windows. The flusher owns it (single
 * thread): worker rows that hold only relative lines are offsets from it, and
 * every gauge row it passes sets it. At start it is loaded from the sink (the
 * `last` of each gauge key's newest window), so it survives a restart.
 *
 * An open-addressing table of (key, value), keys in one growing arena; it
 * grows by doubling at half full, off the worker cores.
 */
#ifndef TALLY_GAUGE_H
#define TALLY_GAUGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tally_gauge_slot;
struct tally_wtab;

struct tally_gauges {
	struct tally_gauge_slot *slot;
	size_t nslots, n;
	uint8_t *keys;
	size_t keys_used, keys_cap;
};

/* Empty; storage comes with the first key. */
void tally_gauges_init(struct tally_gauges *g);
void tally_gauges_free(struct tally_gauges *g);
/* The value of key, or false when the key has none yet. */
bool tally_gauges_get(const struct tally_gauges *g, const uint8_t *key, uint8_t len, double *v);
/* Set key's value. 0 or -ENOMEM. */
int tally_gauges_set(struct tally_gauges *g, const uint8_t *key, uint8_t len, double v);
/*
 * The gauge rows of t, in its row order, against g: a row that saw only
 * relative lines (TALLY_AUX_REL) gets the key's value added to its last, min
 * and max (count times to its sum); every gauge row then sets the key's value
 * to its last. The flusher does this to each worker table before it merges or
 * copies it; tally-recount to its table before each write. Returns the number
 * of keys that could not be kept (out of memory).
 */
unsigned tally_gauges_resolve(struct tally_gauges *g, struct tally_wtab *t);
/* True if the key is a StatsD canonical gauge key: <name>|g or <name>|g|#tags. */
bool tally_gauge_key(const uint8_t *key, uint8_t len);

#endif
