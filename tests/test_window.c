/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Window arithmetic (negative, huge, boundaries) and the window table: random
 * runs of adds against a reference table (keys of 1..255 arbitrary bytes around
 * the inline and prefix lengths, families of keys that differ in one byte or are
 * prefixes of each other, extreme windows, forced probe collisions), creation
 * order, reset and reuse, merging, the row and arena limits, and near_full;
 * and the apply stage's time checks (limits worked out once per batch, a cached
 * window) against the rule per event, on random batches around every limit.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "apply.h"
#include "window.h"

#define TEST_SEED 0
#include "test_rng.h"

static int64_t ws(int64_t t, int64_t w)
{
	int64_t s = 0;

	assert_int_equal(tally_window_start(t, w, &s), 0);
	return s;
}

static void test_window_start(void **st)
{
	int64_t s;

	(void)st;
	assert_int_equal(ws(0, 10000), 0);
	assert_int_equal(ws(9999, 10000), 0);
	assert_int_equal(ws(10000, 10000), 10000);
	assert_int_equal(ws(1700000012345, 10000), 1700000010000);
	assert_int_equal(ws(-1, 10000), -10000);
	assert_int_equal(ws(-10000, 10000), -10000);
	assert_int_equal(ws(-10001, 10000), -20000);
	assert_int_equal(ws(12345, 1), 12345);
	assert_int_equal(ws(INT64_MAX, 10000), INT64_MAX - INT64_MAX % 10000);
	assert_int_equal(ws(INT64_MIN, 1), INT64_MIN);
	assert_int_equal(ws(INT64_MIN, 2), INT64_MIN);             /* even: exact */
	assert_int_equal(tally_window_start(INT64_MIN, 3, &s), -ERANGE); /* below INT64_MIN */
	assert_int_equal(tally_window_start(INT64_MIN + 1, 10000, &s), -ERANGE);
	assert_int_equal(tally_window_start(5, 0, &s), -EINVAL);
	assert_int_equal(tally_window_start(5, -10, &s), -EINVAL);
	for (int64_t t = -30; t <= 30; t++) { /* against the definition */
		int64_t w = 7, start = ws(t, w);

		assert_true(start <= t && t < start + w && start % w == 0);
	}
}

static int add(struct tally_wtab *t, const char *key, int64_t win, double v)
{
	uint64_t h = tally_row_hash(tally_key_hash((const uint8_t *)key, (uint32_t)strlen(key)), win);

	return tally_wtab_add(t, h, (const uint8_t *)key, (uint8_t)strlen(key), win, v);
}

static const struct tally_row *find(const struct tally_wtab *t, const char *key, int64_t win)
{
	for (uint32_t i = 0; i < tally_wtab_rows(t); i++) {
		const struct tally_row *r = tally_wtab_row(t, i);

		if (r->win_start == win && r->key_len == strlen(key) &&
		    memcmp(tally_wtab_key(t, r), key, r->key_len) == 0)
			return r;
	}
	return NULL;
}

static void test_add(void **st)
{
	struct tally_wtab *t = tally_wtab_create(1024);
	const struct tally_row *r;

	(void)st;
	assert_int_equal(add(t, "a", 0, 5), 1);
	assert_int_equal(add(t, "a", 0, -2), 0);
	assert_int_equal(add(t, "a", 0, 9), 0);
	assert_int_equal(add(t, "a", 10000, 1), 1); /* another window: another row */
	assert_int_equal(add(t, "b", 0, 1), 1);
	assert_int_equal(add(t, "ab", 0, 1), 1);
	assert_int_equal(tally_wtab_rows(t), 4);
	r = find(t, "a", 0);
	assert_non_null(r);
	assert_int_equal(r->count, 3);
	assert_true(r->sum == 12 && r->min == -2 && r->max == 9 && r->last == 9);
	tally_wtab_destroy(t);
}

static void test_full(void **st)
{
	struct tally_wtab *t = tally_wtab_create(1024);
	char k[32];

	(void)st;
	for (int i = 0; i < 1024; i++) {
		snprintf(k, sizeof(k), "key%d", i);
		assert_int_equal(add(t, k, 0, i), 1);
	}
	assert_int_equal(add(t, "one.more", 0, 1), -ENOSPC);
	assert_int_equal(add(t, "key7", 0, 1), 0); /* existing rows still update */
	assert_int_equal(find(t, "key7", 0)->count, 2);
	assert_int_equal(tally_wtab_rows(t), 1024);
	tally_wtab_reset(t);
	assert_int_equal(tally_wtab_rows(t), 0);
	assert_null(find(t, "key7", 0));
	assert_int_equal(add(t, "key7", 0, 1), 1);
	tally_wtab_destroy(t);
}

/* Many keys, reset (both ways of clearing the index), refill: nothing stale. */
static void test_reset_many(void **st)
{
	struct tally_wtab *t = tally_wtab_create(100000);
	char k[32];

	(void)st;
	for (int round = 0; round < 3; round++) {
		int n = round == 1 ? 100 : 100000;

		for (int i = 0; i < n; i++) {
			snprintf(k, sizeof(k), "r%d.%d", round, i);
			assert_int_equal(add(t, k, 0, 1), 1);
			assert_int_equal(add(t, k, 0, 1), 0);
		}
		assert_int_equal(tally_wtab_rows(t), n);
		tally_wtab_reset(t);
	}
	tally_wtab_destroy(t);
}

static void test_merge(void **st)
{
	struct tally_wtab *a = tally_wtab_create(1024), *b = tally_wtab_create(1024);
	struct tally_wtab *m = tally_wtab_create(1024);
	const struct tally_row *r;

	(void)st;
	add(a, "x", 0, 1);
	add(a, "x", 0, 7);
	add(a, "y", 0, 3);
	add(b, "x", 0, -4);
	add(b, "z", 0, 2);
	for (uint32_t i = 0; i < tally_wtab_rows(a); i++)
		tally_wtab_merge(m, a, tally_wtab_row(a, i));
	for (uint32_t i = 0; i < tally_wtab_rows(b); i++)
		tally_wtab_merge(m, b, tally_wtab_row(b, i));
	assert_int_equal(tally_wtab_rows(m), 3);
	r = find(m, "x", 0);
	assert_int_equal(r->count, 3);
	assert_true(r->sum == 4 && r->min == -4 && r->max == 7 && r->last == -4);
	tally_wtab_destroy(a);
	tally_wtab_destroy(b);
	tally_wtab_destroy(m);
}

/* ---- Random runs against a reference table ---- */


enum { NKEYS = 3000, FAMILY = 24 };

struct pkey {
	uint8_t len, b[255];
};

static struct pkey pool[NKEYS];

static const int64_t wins[] = {0, 10000, -10000, 1700000000000, -1700000000000,
			       INT64_MIN, INT64_MAX - INT64_MAX % 10000, INT64_MIN + 10000};
#define NWINS (sizeof(wins) / sizeof(wins[0]))

/* Lengths where the row layout changes (inline up to 15, 11-byte prefix) and
 * where the comparisons' overlapping words meet, and some of every length. */
static uint8_t pick_len(void)
{
	static const uint8_t edge[] = {1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 19, 23, 24};

	switch (below(4)) {
	case 0:
		return edge[below(sizeof(edge))];
	case 1:
		return (uint8_t)(64 + below(17));
	case 2:
		return (uint8_t)(11 + below(6));
	default:
		return (uint8_t)(1 + below(255));
	}
}

static bool pool_has(unsigned n, const struct pkey *k)
{
	for (unsigned i = 0; i < n; i++)
		if (pool[i].len == k->len && memcmp(pool[i].b, k->b, k->len) == 0)
			return true;
	return false;
}

/*
 * Families of FAMILY keys around a random base: copies that differ in the last
 * byte, in one byte anywhere (often in the 11-byte prefix or just past it), and
 * prefixes of the base. Bytes are arbitrary, zeros included. All distinct.
 */
static void make_pool(void)
{
	unsigned n = 0;

	rng = 0x77696e64;
	while (n < NKEYS) {
		struct pkey base, k;

		base.len = pick_len();
		for (unsigned i = 0; i < base.len; i++)
			base.b[i] = below(4) == 0 ? 0 : (uint8_t)rnd();
		for (unsigned j = 0; j < FAMILY && n < NKEYS; j++) {
			unsigned at;

			k = base;
			switch (j % 4) {
			case 0:
				k.b[k.len - 1] = (uint8_t)(k.b[k.len - 1] + 1 + below(255));
				break;
			case 1:
				at = below(2) ? (unsigned)below(k.len) : (unsigned)(8 + below(8)) % k.len;
				k.b[at] ^= (uint8_t)(1 << below(8));
				break;
			case 2:
				k.len = (uint8_t)(1 + below(base.len));
				break;
			default:
				break; /* the base itself */
			}
			if (!pool_has(n, &k))
				pool[n++] = k;
		}
	}
}

struct rrow {
	uint32_t key;
	int64_t win;
	uint64_t count;
	double sum, min, max, last;
};

/* The reference: rows in creation order, found by a linear scan of a small
 * index keyed by (pool key, window). Arena use modelled as the table documents. */
struct ref {
	struct rrow *row;
	int32_t *at; /* NKEYS * NWINS: row number or -1 */
	uint32_t n, max_rows, arena_used, arena_cap;
};

static void ref_init(struct ref *r, uint32_t max_rows)
{
	r->row = calloc(max_rows, sizeof(*r->row));
	r->at = malloc(sizeof(int32_t) * NKEYS * NWINS);
	assert_non_null(r->row);
	assert_non_null(r->at);
	memset(r->at, 0xff, sizeof(int32_t) * NKEYS * NWINS);
	r->n = 0;
	r->max_rows = max_rows;
	r->arena_used = 0;
	r->arena_cap = max_rows * 64;
}

static void ref_free(struct ref *r)
{
	free(r->row);
	free(r->at);
}

/* Fold (count, sum, min, max, last) into key k's row of window w: 1 created,
 * 0 updated, -ENOSPC when a new row does not fit (rows or arena). */
static int ref_fold(struct ref *r, uint32_t k, uint32_t w, const struct rrow *in)
{
	int32_t *at = &r->at[k * NWINS + w];
	struct rrow *x;
	uint8_t len = pool[k].len;

	if (*at < 0) {
		if (r->n == r->max_rows || (len > TALLY_ROW_KEY_INLINE &&
					    r->arena_cap - r->arena_used < len))
			return -ENOSPC;
		r->arena_used += len > TALLY_ROW_KEY_INLINE ? len : 0;
		*at = (int32_t)r->n;
		r->row[r->n] = *in;
		r->row[r->n].key = k;
		r->row[r->n].win = wins[w];
		r->n++;
		return 1;
	}
	x = &r->row[*at];
	x->count += in->count;
	x->sum += in->sum;
	x->min = in->min < x->min ? in->min : x->min;
	x->max = in->max > x->max ? in->max : x->max;
	x->last = in->last;
	return 0;
}

static uint32_t win_index(int64_t win)
{
	for (uint32_t w = 0; w < NWINS; w++)
		if (wins[w] == win)
			return w;
	fail();
	return 0;
}

/*
 * First cell of key k's row in window w. collide: every key of a family, in
 * every window, starts at the same cell, so each add compares against many rows
 * that differ from it in one byte, in length or in window: tally_row_is does
 * all the deciding. The table allows any first cell as long as it is the same
 * for a row every time.
 */
static uint64_t row_h(uint32_t k, uint32_t w)
{
	return tally_row_hash(tally_key_hash(pool[k].b, pool[k].len), wins[w]);
}

static uint64_t first_cell(const struct tally_wtab *t, uint32_t k, uint32_t w, bool collide)
{
	if (collide)
		return (uint64_t)(k / FAMILY) * 7919 % t->ncells;
	return tally_wtab_slot(t, tally_row_hash(tally_key_hash(pool[k].b, pool[k].len), wins[w]));
}

/* Random adds: mostly a hot set of families, values exact in a double (halves),
 * so sums are exact whatever the order. */
static void run_adds(struct tally_wtab *t, struct ref *r, uint64_t seed, int n, bool collide)
{
	rng = seed;
	for (int i = 0; i < n; i++) {
		uint32_t k = (uint32_t)(below(3) ? below(NKEYS / 8) : below(NKEYS));
		uint32_t w = (uint32_t)(below(2) ? 0 : below(NWINS));
		double v = (double)((int64_t)below(2000001) - 1000000) / 2;
		struct rrow one = {0, 0, 1, v, v, v, v};
		int want = ref_fold(r, k, w, &one);

		assert_int_equal(tally_wtab_add_at(t, row_h(k, w), first_cell(t, k, w, collide), pool[k].b,
						   pool[k].len, wins[w], v),
				 want);
	}
}

/* Every row in creation order equals the reference's, every row is found again
 * from its first cell, and the arena holds exactly the long keys. */
static void check_table(struct tally_wtab *t, const struct ref *r, bool collide)
{
	assert_int_equal(tally_wtab_rows(t), r->n);
	assert_int_equal(t->arena_used, r->arena_used);
	for (uint32_t i = 0; i < r->n; i++) {
		const struct tally_row *row = tally_wtab_row(t, i);
		const struct rrow *x = &r->row[i];
		const struct pkey *k = &pool[x->key];
		struct tally_row *found;
		bool created = true;

		assert_int_equal(row->key_len, k->len);
		assert_memory_equal(tally_wtab_key(t, row), k->b, k->len);
		assert_true(row->win_start == x->win);
		assert_int_equal(row->count, x->count);
		assert_true(row->sum == x->sum && row->min == x->min);
		assert_true(row->max == x->max && row->last == x->last);
		found = tally_wtab_find(t, row_h(x->key, win_index(x->win)),
					first_cell(t, x->key, win_index(x->win), collide), k->b,
					k->len, x->win, &created);
		assert_false(created);
		assert_ptr_equal(found, row);
	}
}

/* Random runs, both ways of choosing first cells, then reset and a new run on
 * the same table: nothing of the first run may be found or get in the way. */
static void test_against_reference(void **st)
{
	struct tally_wtab *t = tally_wtab_create(32768);
	struct ref r;

	(void)st;
	make_pool();
	for (int run = 0; run < 4; run++) {
		bool collide = run % 2 == 1;

		ref_init(&r, 32768);
		run_adds(t, &r, 1000 + (uint64_t)run, 40000, collide);
		check_table(t, &r, collide);
		ref_free(&r);
		tally_wtab_reset(t);
		assert_int_equal(tally_wtab_rows(t), 0);
		assert_int_equal(t->arena_used, 0);
	}
	tally_wtab_destroy(t);
}

/* A row as the reference's input. */
static struct rrow as_ref(const struct tally_row *row)
{
	return (struct rrow){0, 0, row->count, row->sum, row->min, row->max, row->last};
}

/* Merge every row of src into m, in creation order, as the flusher does. */
static void merge_all(struct tally_wtab *m, struct ref *rm, const struct tally_wtab *src,
		      const struct ref *rs)
{
	for (uint32_t i = 0; i < tally_wtab_rows(src); i++) {
		const struct tally_row *row = tally_wtab_row(src, i);
		struct rrow in = as_ref(row);

		assert_int_equal(tally_wtab_merge(m, src, row),
				 ref_fold(rm, rs->row[i].key, win_index(rs->row[i].win), &in));
	}
}

/* Two tables built from overlapping random runs (one with forced collisions)
 * merged into a third: the reference of the union, creation order included. */
static void test_merge_against_reference(void **st)
{
	struct tally_wtab *a = tally_wtab_create(16384), *b = tally_wtab_create(16384);
	struct tally_wtab *m = tally_wtab_create(32768);
	struct ref ra, rb, rm;

	(void)st;
	make_pool();
	ref_init(&ra, 16384);
	ref_init(&rb, 16384);
	ref_init(&rm, 32768);
	run_adds(a, &ra, 7, 20000, false);
	run_adds(b, &rb, 8, 20000, true);
	merge_all(m, &rm, a, &ra);
	merge_all(m, &rm, b, &rb);
	assert_true(rm.n < ra.n + rb.n); /* the runs overlapped */
	check_table(m, &rm, false);
	ref_free(&ra);
	ref_free(&rb);
	ref_free(&rm);
	tally_wtab_destroy(a);
	tally_wtab_destroy(b);
	tally_wtab_destroy(m);
}

/* ---- Limits ---- */

/* Everything a failed insert could have touched. */
struct snap {
	struct tally_row *cell;
	uint32_t *used;
	uint8_t *arena;
	uint32_t nrows, arena_used;
};

static void snap_take(struct snap *s, const struct tally_wtab *t)
{
	s->cell = malloc(t->ncells * sizeof(*t->cell));
	s->used = malloc(t->max_rows * sizeof(*t->used));
	s->arena = malloc(t->arena_cap);
	assert_true(s->cell && s->used && s->arena);
	memcpy(s->cell, t->cell, t->ncells * sizeof(*t->cell));
	memcpy(s->used, t->used, t->max_rows * sizeof(*t->used));
	memcpy(s->arena, t->arena, t->arena_cap);
	s->nrows = t->nrows;
	s->arena_used = t->arena_used;
}

static void snap_same(const struct snap *s, const struct tally_wtab *t)
{
	assert_int_equal(t->nrows, s->nrows);
	assert_int_equal(t->arena_used, s->arena_used);
	assert_memory_equal(t->cell, s->cell, t->ncells * sizeof(*t->cell));
	assert_memory_equal(t->used, s->used, t->max_rows * sizeof(*t->used));
	assert_memory_equal(t->arena, s->arena, t->arena_cap);
}

static void snap_free(struct snap *s)
{
	free(s->cell);
	free(s->used);
	free(s->arena);
}

/* A distinct key of length len >= 5: i in the first 4 bytes, then filler and len. */
static const uint8_t *nkey(uint32_t i, uint8_t len)
{
	static uint8_t k[255];

	memset(k, 'x', sizeof(k));
	k[0] = (uint8_t)(i >> 24);
	k[1] = (uint8_t)(i >> 16);
	k[2] = (uint8_t)(i >> 8);
	k[3] = (uint8_t)i;
	k[len - 1] = (uint8_t)len;
	return k;
}

static int addk(struct tally_wtab *t, const uint8_t *key, uint8_t len, int64_t win, double v)
{
	return tally_wtab_add(t, tally_row_hash(tally_key_hash(key, len), win), key, len, win, v);
}

/* A full table refuses new rows with -ENOSPC, short or long key, by add or by
 * merge, and changes nothing; existing rows still update. */
static void test_rows_full_changes_nothing(void **st)
{
	struct tally_wtab *t = tally_wtab_create(1000), *src = tally_wtab_create(16);
	struct snap s;

	(void)st;
	for (uint32_t i = 0; i < 1000; i++)
		assert_int_equal(addk(t, nkey(i, (uint8_t)(5 + i % 40)), (uint8_t)(5 + i % 40), 0, i),
				 1);
	assert_int_equal(addk(src, nkey(5000, 30), 30, 0, 1), 1);
	snap_take(&s, t);
	assert_int_equal(addk(t, nkey(1000, 8), 8, 0, 1), -ENOSPC);
	assert_int_equal(addk(t, nkey(1001, 200), 200, 0, 1), -ENOSPC);
	assert_int_equal(addk(t, nkey(7, 12), 12, 10000, 1), -ENOSPC); /* another window */
	assert_int_equal(tally_wtab_merge(t, src, tally_wtab_row(src, 0)), -ENOSPC);
	snap_same(&s, t);
	assert_int_equal(addk(t, nkey(7, 12), 12, 0, 2), 0);
	assert_int_equal(tally_wtab_row(t, 7)->count, 2);
	snap_free(&s);
	tally_wtab_destroy(t);
	tally_wtab_destroy(src);
}

/* The long-key arena (64 bytes a row) fills before the rows do: a key that does
 * not fit is -ENOSPC and changes nothing, one that fits exactly is taken, and
 * keys of up to 15 bytes (inline) still go in. */
static void test_arena_full_changes_nothing(void **st)
{
	struct tally_wtab *t = tally_wtab_create(1000), *src = tally_wtab_create(16);
	struct snap s;

	(void)st;
	assert_int_equal(t->arena_cap, 64000);
	for (uint32_t i = 0; i < 250; i++) /* 250 * 255 = 63750 */
		assert_int_equal(addk(t, nkey(i, 255), 255, 0, i), 1);
	assert_int_equal(addk(src, nkey(9000, 251), 251, 0, 1), 1);
	snap_take(&s, t);
	assert_int_equal(addk(t, nkey(250, 255), 255, 0, 1), -ENOSPC);
	assert_int_equal(addk(t, nkey(251, 251), 251, 0, 1), -ENOSPC); /* one byte too many */
	assert_int_equal(tally_wtab_merge(t, src, tally_wtab_row(src, 0)), -ENOSPC);
	snap_same(&s, t);
	assert_int_equal(addk(t, nkey(252, 250), 250, 0, 1), 1); /* exactly the rest */
	assert_int_equal(t->arena_used, t->arena_cap);
	assert_int_equal(addk(t, nkey(253, 16), 16, 0, 1), -ENOSPC);
	assert_int_equal(addk(t, nkey(254, 15), 15, 0, 1), 1);
	assert_int_equal(tally_wtab_rows(t), 252);
	for (uint32_t i = 0; i < 250; i++) /* every long key intact, the last one too */
		assert_memory_equal(tally_wtab_key(t, tally_wtab_row(t, i)), nkey(i, 255), 255);
	assert_memory_equal(tally_wtab_key(t, tally_wtab_row(t, 250)), nkey(252, 250), 250);
	snap_free(&s);
	tally_wtab_destroy(t);
	tally_wtab_destroy(src);
}

/* near_full turns at 7/8 of the rows, or of the arena, not a row before. */
static void test_near_full(void **st)
{
	struct tally_wtab *t = tally_wtab_create(1024);

	(void)st;
	for (uint32_t i = 0; i < 896; i++) {
		assert_false(tally_wtab_near_full(t));
		assert_int_equal(addk(t, nkey(i, 6), 6, 0, 1), 1);
	}
	assert_true(tally_wtab_near_full(t));
	tally_wtab_reset(t);
	assert_false(tally_wtab_near_full(t));
	for (uint32_t i = 0; i < 225; i++) { /* 7/8 of 65536 = 57344 = 224.9 keys of 255 */
		assert_false(tally_wtab_near_full(t));
		assert_int_equal(addk(t, nkey(i, 255), 255, 0, 1), 1);
	}
	assert_true(tally_wtab_near_full(t));
	tally_wtab_destroy(t);
}

/* The live view's table has no slab pool: sketch rows fold in by their sums,
 * never refused (a refusal would reset the view), and keep no sketch. */
static void test_merge_sketch_into_plain(void **st)
{
	struct tally_wtab *src = tally_wtab_create_ext(64, 4, TALLY_NODE_ANY);
	struct tally_wtab *view = tally_wtab_create(64);
	const uint8_t key[] = "lat|ms";
	struct tally_event e = {.kind = TALLY_EV_SKETCH};
	uint64_t h = tally_row_hash(tally_key_hash(key, 6), 0);
	bool missed = false;

	(void)st;
	assert_non_null(src);
	assert_non_null(view);
	for (int i = 1; i <= 10; i++) {
		e.value = i;
		assert_true(tally_wtab_add_kind(src, h, tally_wtab_slot(src, h), key, 6, 0, &e,
						&missed) >= 0);
		assert_false(missed);
	}
	assert_non_null(tally_wtab_sketch(src, tally_wtab_cell(src, tally_wtab_row(src, 0))));
	for (int round = 0; round < 2; round++)
		assert_int_equal(tally_wtab_merge(view, src, tally_wtab_row(src, 0)), round == 0);
	assert_int_equal(tally_wtab_rows(view), 1);
	assert_int_equal(tally_wtab_row(view, 0)->count, 20);
	assert_true(tally_wtab_row(view, 0)->sum == 110);
	assert_null(tally_wtab_sketch(view, tally_wtab_cell(view, tally_wtab_row(view, 0))));
	tally_wtab_destroy(src);
	tally_wtab_destroy(view);
}

/* Add a timer value (or, with member != 0, a set member) to key's row. */
static bool add_sk(struct tally_wtab *t, const char *key, double v, uint64_t member)
{
	struct tally_event e = {.kind = member ? TALLY_EV_SET : TALLY_EV_SKETCH};
	uint8_t n = (uint8_t)strlen(key);
	uint64_t h = tally_row_hash(tally_key_hash((const uint8_t *)key, n), 0);
	bool missed = false;

	if (member)
		e.member = member;
	else
		e.value = v;
	assert_true(tally_wtab_add_kind(t, h, tally_wtab_slot(t, h), (const uint8_t *)key, n, 0,
					&e, &missed) >= 0);
	return !missed;
}

static const struct tally_sketch *sketch_of(const struct tally_wtab *t, const char *key)
{
	for (uint32_t i = 0; i < tally_wtab_rows(t); i++) {
		const struct tally_row *r = tally_wtab_row(t, i);

		if (r->key_len == strlen(key) && memcmp(r->key, key, r->key_len) == 0)
			return tally_wtab_sketch(t, tally_wtab_cell(t, r));
	}
	return NULL;
}

static void assert_same_sketch(const struct tally_sketch *a, const struct tally_sketch *b)
{
	static uint8_t x[TALLY_SKETCH_BLOB_MAX], y[TALLY_SKETCH_BLOB_MAX];
	size_t n;

	assert_non_null(a);
	assert_non_null(b);
	n = tally_sketch_encode(a, x);
	assert_int_equal(n, tally_sketch_encode(b, y));
	assert_memory_equal(x, y, n);
}

/*
 * Deferred sketch values (a worker's table) settle into exactly the sketches
 * a table that folds each value at once builds: values of every store (zero,
 * positive, negative, extremes) and set members, some past the list's end
 * (straight to the slabs), and the list asks for a seal at 7/8.
 */
static void test_deferred_sketches(void **st)
{
	struct tally_wtab *d = tally_wtab_create_ext(64, 4, TALLY_NODE_ANY);
	struct tally_wtab *now = tally_wtab_create_ext(64, 4, TALLY_NODE_ANY);
	const double vals[] = {0, 1e-12, -0.0, 1, 1.5, -3, 250, 1e300, -1e-300, 5e-9, 0.999};
	uint64_t rng = 7;

	(void)st;
	assert_int_equal(tally_wtab_defer_sketches(d, 64, TALLY_NODE_ANY), 0);
	for (int i = 0; i < 100; i++) {
		double v = vals[i % 11] * (1 + i / 11);
		uint64_t m = rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;

		/* 56 timer values, then 8 members fill the list; the rest go
		 * straight to the slabs */
		if (i < 56 || i >= 64)
			assert_true(add_sk(d, "t|ms", v, 0) && add_sk(now, "t|ms", v, 0));
		if (i >= 56)
			assert_true(add_sk(d, "u|s", 1, m | 1) && add_sk(now, "u|s", 1, m | 1));
		if (i == 54)
			assert_false(tally_wtab_near_full(d));
		if (i == 55)
			assert_true(tally_wtab_near_full(d)); /* 56 = 7/8 of 64 */
		if (i == 63) {
			assert_int_equal(d->npend, 64);
			assert_null(sketch_of(d, "u|s")); /* all deferred: no slab yet */
		}
	}
	assert_int_equal(tally_wtab_settle(d), 0);
	assert_int_equal(d->npend, 0);
	assert_same_sketch(sketch_of(d, "t|ms"), sketch_of(now, "t|ms"));
	assert_same_sketch(sketch_of(d, "u|s"), sketch_of(now, "u|s"));
	tally_wtab_reset(d);
	assert_false(tally_wtab_near_full(d));
	tally_wtab_destroy(d);
	tally_wtab_destroy(now);
}

/* Settling with the slab pool used up: values still count in their rows, the
 * ones no slab took are returned (statsd_sketch_full), nothing crashes. */
static void test_deferred_pool_full(void **st)
{
	struct tally_wtab *d = tally_wtab_create_ext(64, 2, TALLY_NODE_ANY);
	char key[8];

	(void)st;
	assert_int_equal(tally_wtab_defer_sketches(d, 64, TALLY_NODE_ANY), 0);
	for (int k = 0; k < 4; k++) {
		snprintf(key, sizeof(key), "k%d|ms", k);
		for (int i = 0; i < 5; i++)
			assert_true(add_sk(d, key, i + 1, 0));
	}
	assert_true(tally_wtab_near_full(d)); /* 4 sketch rows for 2 slabs */
	assert_int_equal(tally_wtab_settle(d), 10);
	assert_int_equal(tally_wtab_rows(d), 4);
	for (uint32_t i = 0; i < 4; i++) {
		const struct tally_sketch *s = tally_wtab_sketch(d, d->used[i]);

		assert_int_equal(tally_wtab_row(d, i)->count, 5);
		if (i < 2)
			assert_int_equal(tally_dds_count(s), 5);
		else
			assert_null(s);
	}
	tally_wtab_destroy(d);
}

/* The rule per event, as apply.h applied it before the limits were per batch. */
static int time_rule(const struct tally_params *p, uint64_t now, uint64_t t0, int64_t *win)
{
	uint64_t t = t0 ? t0 : now;

	if (t > (uint64_t)INT64_MAX - (uint64_t)p->window_ms)
		return TALLY_C_DROP_FUTURE;
	if (p->future_ms && t > now + p->future_ms)
		return TALLY_C_DROP_FUTURE;
	if (p->lateness_ms && t + p->lateness_ms < now)
		return TALLY_C_DROP_LATE;
	assert_int_equal(tally_window_start((int64_t)t, p->window_ms, win), 0);
	return TALLY_OK;
}

/* A time near one of the limits, a window edge, or anywhere. */
static uint64_t edge_time(const struct tally_params *p, uint64_t now)
{
	int64_t d = (int64_t)below(5) - 2;
	uint64_t w = (uint64_t)p->window_ms;

	switch (below(8)) {
	case 0: return 0;
	case 1: return now + p->future_ms + (uint64_t)d;
	case 2: return now - p->lateness_ms + (uint64_t)d;
	case 3: return (uint64_t)INT64_MAX - w + (uint64_t)d;
	case 4: return (now / w + below(3)) * w + (uint64_t)d;
	case 5: return rnd();
	default: return now - below(2 * p->lateness_ms + 1) + below(2 * p->future_ms + 1);
	}
}

static void test_apply_time_limits(void **state)
{
	static const uint64_t limits[][2] = {{3600000, 60000}, {0, 60000}, {3600000, 0}, {0, 0},
					     {1, 1}, {UINT64_MAX / 4, UINT64_MAX / 4}};
	static struct tally_event ev[64];
	(void)state;
	for (unsigned round = 0; round < 3000; round++) {
		struct tally_params p = {.window_ms = (int64_t)(below(3) ? 10000 : 1 + below(100000)),
					 .lateness_ms = limits[round % 6][0],
					 .future_ms = limits[round % 6][1]};
		uint64_t now = below(4) ? 1800000000000ULL + below(1000000) : below(5000000);
		struct tally_win_cache wc;
		uint32_t n = 1 + (uint32_t)below(64);

		tally_ap_win_init(&p, now, &wc);
		for (uint32_t i = 0; i < n; i++) {
			int64_t want_win = 0;
			uint64_t t = edge_time(&p, now);
			int want = time_rule(&p, now, t, &want_win);

			ev[i].time_ms = t;
			assert_int_equal(tally_ap_event_window(&p, now, &wc, &ev[i]), want);
			if (want == TALLY_OK)
				assert_int_equal(ev[i].win_start, want_win);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_start), cmocka_unit_test(test_add),
		cmocka_unit_test(test_full), cmocka_unit_test(test_reset_many),
		cmocka_unit_test(test_merge), cmocka_unit_test(test_against_reference),
		cmocka_unit_test(test_merge_against_reference),
		cmocka_unit_test(test_rows_full_changes_nothing),
		cmocka_unit_test(test_arena_full_changes_nothing), cmocka_unit_test(test_near_full),
		cmocka_unit_test(test_merge_sketch_into_plain),
		cmocka_unit_test(test_deferred_sketches), cmocka_unit_test(test_deferred_pool_full),
		cmocka_unit_test(test_apply_time_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
