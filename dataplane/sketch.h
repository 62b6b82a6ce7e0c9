/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Mergeable sketches for StatsD rows: a DDSketch-style quantile sketch for
 * timers, histograms and distributions (ms, h, d), and a HyperLogLog for sets
 * (s). Both merge exactly (bin counts add, registers take the max), so a row's
 * sketch is the same whether its values came through one worker in one flush
 * or through many workers and flushes: the sinks merge, never average.
 *
 * Quantiles (DDSketch, Masson et al. 2019): a value v > 0 goes to bin
 * i = ceil(log_gamma(v)), gamma = (1 + a) / (1 - a), a = TALLY_DDS_ALPHA (1%);
 * bin i is read back as 2 gamma^i / (gamma + 1), within a of every value in it.
 * Negative values have their own store (of |v|), and |v| < TALLY_DDS_MIN_VALUE
 * counts as zero. Each store keeps TALLY_DDS_BINS consecutive bins (1024:
 * a ratio of gamma^1024 ~ 6.5e8 between the smallest and largest value kept
 * exactly); when a store would need more, its lowest bins collapse into one
 * (DDSketch's "collapsing lowest" store), so only the smallest values lose
 * the guarantee, and p50..p99.9 of timer data keep it.
 *
 * Distinct counts (HyperLogLog, p = 14): 16384 one-byte registers of the
 * 64-bit XXH3 hash of the member's text; estimate by Ertl's improved
 * estimator (2017), unbiased from 0 to beyond 2^50 with no empirical tables;
 * standard error 1.04 / sqrt(16384) = 0.81%.
 *
 * A struct tally_sketch is fixed-size (about 16 KiB) so a window table can
 * keep a pool of them allocated up front; the blob form (tally_sketch_encode)
 * is compact: only the used bins, or the non-zero registers.
 */
#ifndef TALLY_SKETCH_H
#define TALLY_SKETCH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define TALLY_DDS_ALPHA 0.01
#define TALLY_DDS_BINS 1024
#define TALLY_DDS_MIN_VALUE 1e-9
#define TALLY_HLL_P 14
#define TALLY_HLL_M (1u << TALLY_HLL_P)

enum tally_sketch_kind { TALLY_SK_NONE = 0, TALLY_SK_DDS = 1, TALLY_SK_HLL = 2 };

/*
 * Bins offset .. offset + TALLY_DDS_BINS - 1; used ones lo .. hi (lo > hi:
 * empty). Bin i lives in slot i mod TALLY_DDS_BINS: its address depends on i
 * alone, so a worker can prefetch it without reading the header first, and a
 * window that moves moves no bins.
 */
struct tally_dds_store {
	int32_t offset, lo, hi;
	uint64_t bins[TALLY_DDS_BINS];
};

struct tally_sketch {
	uint8_t kind;
	union {
		struct {
			uint64_t zero;
			struct tally_dds_store pos, neg;
		} dds;
		uint8_t reg[TALLY_HLL_M];
	};
};

/* An empty sketch of the kind. */
void tally_sketch_init(struct tally_sketch *s, enum tally_sketch_kind kind);

/* 1 / ln(gamma), precomputed: the bin of v is ceil(ln(v) * TALLY_DDS_INV_LN_GAMMA). */
#define TALLY_DDS_INV_LN_GAMMA 49.99833328888678 /* 1 / ln(1.01 / 0.99) */

void tally_dds_store_add(struct tally_dds_store *st, int32_t idx, uint64_t n);

static inline uint64_t *tally_dds_slot(struct tally_dds_store *st, int32_t i)
{
	return &st->bins[(uint32_t)i % TALLY_DDS_BINS];
}

static inline int32_t tally_dds_index(double a)
{
	return (int32_t)ceil(log(a) * TALLY_DDS_INV_LN_GAMMA);
}

/* Where a value goes in a quantile sketch: the zero count (too near 0 to bin),
 * or the store of its sign at bin *idx. The one rule for tally_dds_add and the
 * worker's deferred timer ops (window.c). */
enum tally_dds_side { TALLY_DDS_ZERO, TALLY_DDS_POS, TALLY_DDS_NEG };

static inline enum tally_dds_side tally_dds_where(double v, int32_t *idx)
{
	double a = v < 0 ? -v : v;

	if (a < TALLY_DDS_MIN_VALUE)
		return TALLY_DDS_ZERO;
	*idx = tally_dds_index(a);
	return v > 0 ? TALLY_DDS_POS : TALLY_DDS_NEG;
}

/* One value into a quantile sketch (v finite). */
static inline void tally_dds_add(struct tally_sketch *s, double v)
{
	int32_t i;
	enum tally_dds_side w = tally_dds_where(v, &i);

	if (w == TALLY_DDS_ZERO)
		s->dds.zero++;
	else
		tally_dds_store_add(w == TALLY_DDS_POS ? &s->dds.pos : &s->dds.neg, i, 1);
}

/* A member's hash: its register (the top TALLY_HLL_P bits) and rank. */
static inline uint32_t tally_hll_reg(uint64_t h) { return (uint32_t)(h >> (64 - TALLY_HLL_P)); }

static inline uint8_t tally_hll_rho(uint64_t h)
{
	uint64_t w = h << TALLY_HLL_P;

	return w == 0 ? 64 - TALLY_HLL_P + 1 : (uint8_t)(__builtin_clzll(w) + 1);
}

/* A rank into register i: it keeps the largest. */
static inline void tally_hll_raise(struct tally_sketch *s, uint32_t i, uint8_t rho)
{
	if (rho > s->reg[i])
		s->reg[i] = rho;
}

/* One member, by its 64-bit hash, into a HyperLogLog. */
static inline void tally_hll_add(struct tally_sketch *s, uint64_t h)
{
	tally_hll_raise(s, tally_hll_reg(h), tally_hll_rho(h));
}

/* Values in a quantile sketch. */
uint64_t tally_dds_count(const struct tally_sketch *s);
/* The q-quantile (0 <= q <= 1) of a quantile sketch: within TALLY_DDS_ALPHA of
 * the value of rank floor(q (n - 1)); NAN when it is empty. */
double tally_dds_quantile(const struct tally_sketch *s, double q);
/* Estimated distinct members of a HyperLogLog. */
double tally_hll_estimate(const struct tally_sketch *s);

/* Fold src into dst (same kind): exact. -EINVAL if the kinds differ. */
int tally_sketch_merge(struct tally_sketch *dst, const struct tally_sketch *src);

/* The largest blob tally_sketch_encode writes. */
#define TALLY_SKETCH_BLOB_MAX (16 + 2 * (12 + 10 * TALLY_DDS_BINS) + TALLY_HLL_M)
/* Serialize s into out (TALLY_SKETCH_BLOB_MAX bytes of room); returns the length. */
size_t tally_sketch_encode(const struct tally_sketch *s, uint8_t *out);
/* Replace s with the blob. 0, or -EBADMSG for anything this code did not write. */
int tally_sketch_decode(struct tally_sketch *s, const uint8_t *in, size_t len);
/* Fold a blob into s, which is initialised from it when its kind is NONE. */
int tally_sketch_merge_blob(struct tally_sketch *s, const uint8_t *in, size_t len);

#endif
