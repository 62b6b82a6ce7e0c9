/* SPDX-License-Identifier: BSD-3-Clause */
/* The live view of the open windows (liveview.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "liveview.h"

int tally_liveview_init(struct tally_liveview *v, uint32_t rows, int64_t window_ms)
{
	memset(v, 0, sizeof(*v));
	pthread_mutex_init(&v->mu, NULL);
	rows = rows < TALLY_LIVEVIEW_ROWS ? rows : TALLY_LIVEVIEW_ROWS;
	v->window_ms = window_ms;
	v->newest = INT64_MIN / 2;
	v->t = tally_wtab_create(rows);
	v->spare = tally_wtab_create(rows);
	return v->t == NULL || v->spare == NULL ? -ENOMEM : 0;
}

void tally_liveview_fini(struct tally_liveview *v)
{
	tally_wtab_destroy(v->t);
	tally_wtab_destroy(v->spare);
	v->t = v->spare = NULL;
	pthread_mutex_destroy(&v->mu);
}

/* A newer window opened: keep the rows of the two newest windows only. */
static void prune(struct tally_liveview *v)
{
	struct tally_wtab *old = v->t, *t = v->spare;

	tally_wtab_reset(t);
	for (uint32_t i = 0; i < tally_wtab_rows(old); i++) {
		const struct tally_row *r = tally_wtab_row(old, i);

		if (r->win_start >= v->newest - v->window_ms)
			tally_wtab_merge(t, old, r);
	}
	v->t = t;
	v->spare = old;
}

static void fold_row(struct tally_liveview *v, const struct tally_batch *b,
		     const struct tally_batch_row *br)
{
	struct tally_row in = {.win_start = br->win_start, .count = br->count, .sum = br->sum,
			       .min = br->min, .max = br->max, .last = br->last};

	if (tally_wtab_merge_row(v->t, tally_batch_key(b, br), br->key_len, &in) == -ENOSPC) {
		tally_wtab_reset(v->t);
		v->resets++;
		tally_wtab_merge_row(v->t, tally_batch_key(b, br), br->key_len, &in);
	}
}

void tally_liveview_add(struct tally_liveview *v, const struct tally_batch *b)
{
	int64_t newest = v->newest;

	for (uint32_t i = 0; i < b->nrows; i++)
		newest = b->rows[i].win_start > newest ? b->rows[i].win_start : newest;
	pthread_mutex_lock(&v->mu);
	if (newest > v->newest) {
		v->newest = newest;
		prune(v);
	}
	for (uint32_t i = 0; i < b->nrows; i++)
		if (b->rows[i].win_start >= v->newest - v->window_ms)
			fold_row(v, b, &b->rows[i]);
	pthread_mutex_unlock(&v->mu);
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(((const struct tally_live_top *)a)->key, ((const struct tally_live_top *)b)->key);
}

/* Heaviest first (by sum if *by_sum, else by count); ties by key. */
static int cmp_weight(const void *a, const void *b, void *by_sum)
{
	const struct tally_live_top *x = a, *y = b;

	if (*(bool *)by_sum && x->sum != y->sum)
		return x->sum < y->sum ? 1 : -1;
	if (!*(bool *)by_sum && x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return strcmp(x->key, y->key);
}

/* Rows matching prefix, copied out under the lock, then summed per key. */
static unsigned collect(struct tally_liveview *v, const char *prefix, struct tally_live_top **out)
{
	size_t plen = strlen(prefix);
	unsigned n = 0;

	pthread_mutex_lock(&v->mu);
	*out = malloc(sizeof(**out) * (tally_wtab_rows(v->t) + 1));
	for (uint32_t i = 0; *out != NULL && i < tally_wtab_rows(v->t); i++) {
		const struct tally_row *r = tally_wtab_row(v->t, i);
		const uint8_t *k = tally_wtab_key(v->t, r);

		if (r->key_len < plen || memcmp(k, prefix, plen) != 0)
			continue;
		memcpy((*out)[n].key, k, r->key_len);
		(*out)[n].key[r->key_len] = '\0';
		(*out)[n].count = r->count;
		(*out)[n++].sum = r->sum;
	}
	pthread_mutex_unlock(&v->mu);
	return *out == NULL ? 0 : n;
}

unsigned tally_liveview_top(struct tally_liveview *v, unsigned n, bool by_sum,
			    const char *prefix, struct tally_live_top *out)
{
	struct tally_live_top *all;
	unsigned m = collect(v, prefix, &all), k = 0;

	qsort(all, m, sizeof(*all), cmp_key);
	for (unsigned i = 0; i < m; i++) { /* one entry per key, windows summed */
		if (k > 0 && strcmp(all[k - 1].key, all[i].key) == 0) {
			all[k - 1].count += all[i].count;
			all[k - 1].sum += all[i].sum;
		} else {
			all[k++] = all[i];
		}
	}
	qsort_r(all, k, sizeof(*all), cmp_weight, &by_sum);
	n = k < n ? k : n;
	memcpy(out, all, sizeof(*out) * n);
	free(all);
	return n;
}

unsigned tally_liveview_get(struct tally_liveview *v, const char *key, struct tally_row *out,
			    unsigned max)
{
	size_t len = strlen(key);
	unsigned n = 0;

	pthread_mutex_lock(&v->mu);
	for (int64_t w = v->newest - v->window_ms; n < max && w <= v->newest; w += v->window_ms) {
		uint64_t h = tally_row_hash(tally_key_hash((const uint8_t *)key, (uint32_t)len), w);
		uint64_t c = tally_wtab_slot(v->t, h);

		for (;;) { /* the table's own probe, read only */
			const struct tally_row *r = &v->t->cell[c];

			if (r->key_len == 0)
				break;
			if (tally_row_is(v->t, r, h, (const uint8_t *)key, (uint8_t)len, w)) {
				out[n++] = *r;
				break;
			}
			c = c + 1 == v->t->ncells ? 0 : c + 1;
		}
	}
	pthread_mutex_unlock(&v->mu);
	return n;
}
