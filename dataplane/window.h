/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-worker window table: (key, window_start) -> count, sum, min, max, last.
 * Single writer (its worker) until sealed, then single reader (the flusher).
 * Open addressing index of 8-byte entries (hash tag | row number) over a dense
 * array of 64-byte rows; keys live in an arena. Memory is mmap'd once at start
 * (transparent huge pages requested) and never grows.
 */
#ifndef TALLY_WINDOW_H
#define TALLY_WINDOW_H

#include <stddef.h>
#include <stdint.h>

struct tally_row {
	uint64_t hash;
	int64_t win_start;
	uint64_t count;
	double sum, min, max, last;
	uint32_t key_off;
	uint8_t key_len;
	uint8_t pad_[3];
};
_Static_assert(sizeof(struct tally_row) == 64, "a row is one cache line");

struct tally_wtab;

/*
 * Window containing t: floor(t / w) * w, correct for negative t. Returns 0, or
 * -ERANGE when that start is not representable (t near INT64_MIN), -EINVAL when
 * w <= 0.
 */
int tally_window_start(int64_t t, int64_t w, int64_t *start);

uint64_t tally_key_hash(const uint8_t *key, uint32_t len);
/* Hash of a (key, window) pair from the key's hash. */
static inline uint64_t tally_row_hash(uint64_t key_hash, int64_t win_start)
{
	uint64_t h = key_hash ^ ((uint64_t)win_start * 0x9e3779b97f4a7c15ULL);
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	h ^= h >> 32;
	return h;
}

/* max_rows rows, keys of mean length up to 64 bytes. NULL with errno on failure. */
struct tally_wtab *tally_wtab_create(uint32_t max_rows);
void tally_wtab_destroy(struct tally_wtab *t);
void tally_wtab_reset(struct tally_wtab *t);
size_t tally_wtab_bytes(const struct tally_wtab *t);

void tally_wtab_prefetch(const struct tally_wtab *t, uint64_t h);
/* Prefetch the row (and key) of h once its index entry is cached. */
void tally_wtab_prefetch_row(const struct tally_wtab *t, uint64_t h);
/* Add one value. Returns 1 if a row was created, 0 if updated, -ENOSPC if full. */
int tally_wtab_add(struct tally_wtab *t, uint64_t h, const uint8_t *key, uint8_t key_len,
		   int64_t win_start, double v);
/* Fold a row of another table in: counts and sums add, min/max combine, last from r. */
int tally_wtab_merge(struct tally_wtab *t, const struct tally_wtab *src,
		     const struct tally_row *r);

uint32_t tally_wtab_rows(const struct tally_wtab *t);
uint32_t tally_wtab_capacity(const struct tally_wtab *t);
const struct tally_row *tally_wtab_row(const struct tally_wtab *t, uint32_t i);
const uint8_t *tally_wtab_key(const struct tally_wtab *t, const struct tally_row *r);

#endif
