/* SPDX-License-Identifier: BSD-3-Clause */
/* The appliance's gauge state (gauge.h): an open-addressing map, grown by doubling. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "gauge.h"
#include "window.h"

struct tally_gauge_slot {
	uint64_t hash;
	size_t key_off;
	double v;
	uint8_t key_len; /* 0: empty */
};

void tally_gauges_init(struct tally_gauges *g)
{
	memset(g, 0, sizeof(*g));
}

void tally_gauges_free(struct tally_gauges *g)
{
	free(g->slot);
	free(g->keys);
	tally_gauges_init(g);
}

static struct tally_gauge_slot *find(const struct tally_gauges *g, const uint8_t *key,
				     uint8_t len, uint64_t h)
{
	for (size_t i = h & (g->nslots - 1);; i = (i + 1) & (g->nslots - 1)) {
		struct tally_gauge_slot *s = &g->slot[i];

		if (s->key_len == 0 || (s->hash == h && s->key_len == len &&
					memcmp(g->keys + s->key_off, key, len) == 0))
			return s;
	}
}

bool tally_gauges_get(const struct tally_gauges *g, const uint8_t *key, uint8_t len, double *v)
{
	const struct tally_gauge_slot *s;

	if (g->nslots == 0)
		return false;
	s = find(g, key, len, XXH3_64bits(key, len));
	if (s->key_len == 0)
		return false;
	*v = s->v;
	return true;
}

static int grow(struct tally_gauges *g)
{
	size_t n = g->nslots ? g->nslots * 2 : 1024;
	struct tally_gauge_slot *old = g->slot, *s = calloc(n, sizeof(*s));
	size_t oldn = g->nslots;

	if (s == NULL)
		return -ENOMEM;
	g->slot = s;
	g->nslots = n;
	for (size_t i = 0; i < oldn; i++)
		if (old[i].key_len != 0)
			*find(g, g->keys + old[i].key_off, old[i].key_len, old[i].hash) = old[i];
	free(old);
	return 0;
}

static int keep_key(struct tally_gauges *g, const uint8_t *key, uint8_t len)
{
	if (g->keys_used + len > g->keys_cap) {
		size_t cap = g->keys_cap ? g->keys_cap * 2 : 65536;
		uint8_t *k = realloc(g->keys, cap);

		if (k == NULL)
			return -ENOMEM;
		g->keys = k;
		g->keys_cap = cap;
	}
	memcpy(g->keys + g->keys_used, key, len);
	g->keys_used += len;
	return 0;
}

int tally_gauges_set(struct tally_gauges *g, const uint8_t *key, uint8_t len, double v)
{
	uint64_t h = XXH3_64bits(key, len);
	struct tally_gauge_slot *s;

	if ((g->n + 1) * 2 > g->nslots && grow(g) != 0)
		return -ENOMEM;
	s = find(g, key, len, h);
	if (s->key_len == 0) {
		if (keep_key(g, key, len) != 0)
			return -ENOMEM;
		*s = (struct tally_gauge_slot){h, g->keys_used - len, v, len};
		g->n++;
		return 0;
	}
	s->v = v;
	return 0;
}

bool tally_gauge_key(const uint8_t *key, uint8_t len)
{
	const uint8_t *bar = memchr(key, '|', len);
	size_t at = bar ? (size_t)(bar - key) + 1 : len;

	return at + 1 <= len && key[at] == 'g' && (at + 1 == len || key[at + 1] == '|');
}

unsigned tally_gauges_resolve(struct tally_gauges *g, struct tally_wtab *t)
{
	unsigned lost = 0;

	for (uint32_t i = 0; i < tally_wtab_rows(t); i++) {
		uint32_t c = t->used[i];
		struct tally_row *r = &t->cell[c];
		const uint8_t *key = tally_wtab_key(t, r);
		double base = 0;

		if (!(t->aux[c] & TALLY_AUX_GAUGE))
			continue;
		if (t->aux[c] & TALLY_AUX_REL) {
			tally_gauges_get(g, key, r->key_len, &base);
			r->last += base, r->min += base, r->max += base;
			r->sum += base * (double)r->count;
			t->aux[c] &= ~TALLY_AUX_REL;
		}
		lost += tally_gauges_set(g, key, r->key_len, r->last) != 0;
	}
	return lost;
}
