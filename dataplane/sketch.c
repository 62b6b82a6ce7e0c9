/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Quantile sketch and HyperLogLog (sketch.h): the cold parts of adding
 * (moving or collapsing a store's bins), quantiles, the estimate, merging, and
 * the blob form.
 *
 * Blob, version 1 (varints are LEB128, signed ones zigzag):
 *   'D' 1 | f64 alpha (LE) | zero | 2 x (lo, n, n x count)   positive, negative
 *   'H' 1 | p | 0 | 16384 registers                          dense
 *   'H' 1 | p | 1 | k | k x (index delta, register)          sparse (fewer bytes)
 * Decoding checks every length and value: a blob this code did not write is
 * -EBADMSG, never a read past its end.
 */
#include <errno.h>
#include <string.h>

#include "sketch.h"

#define BLOB_VERSION 1

void tally_sketch_init(struct tally_sketch *s, enum tally_sketch_kind kind)
{
	memset(s, 0, sizeof(*s));
	s->kind = (uint8_t)kind;
	if (kind == TALLY_SK_DDS) {
		s->dds.pos.lo = s->dds.neg.lo = 1;
		s->dds.pos.hi = s->dds.neg.hi = 0;
	}
}

/* ---- the store ---- */

static int store_empty(const struct tally_dds_store *st)
{
	return st->lo > st->hi;
}

/*
 * Move the window of bins to start at off. Bins are circular (bin i lives in
 * slot i mod TALLY_DDS_BINS), so nothing moves: the slots of bins that leave
 * the window are empty, except below off when the used span no longer fits;
 * those are summed into bin off (the collapse) and cleared.
 */
static void store_move(struct tally_dds_store *st, int32_t off)
{
	uint64_t low = 0;

	for (int32_t i = st->lo; i <= st->hi && i < off; i++) {
		low += *tally_dds_slot(st, i);
		*tally_dds_slot(st, i) = 0;
	}
	st->offset = off;
	if (low != 0) {
		*tally_dds_slot(st, off) += low;
		st->lo = off;
		st->hi = st->hi < off ? off : st->hi;
	}
}

/*
 * Bin idx is outside the window: centre the used span in it if it fits, else
 * keep the highest TALLY_DDS_BINS bins and collapse the rest into the lowest.
 * Returns the bin the value now goes to.
 */
static int32_t store_extend(struct tally_dds_store *st, int32_t idx)
{
	int64_t lo = store_empty(st) ? idx : (idx < st->lo ? idx : st->lo);
	int64_t hi = store_empty(st) ? idx : (idx > st->hi ? idx : st->hi);
	int64_t off;

	if (hi - lo < TALLY_DDS_BINS)
		off = lo - (TALLY_DDS_BINS - (hi - lo + 1)) / 2;
	else
		off = hi - TALLY_DDS_BINS + 1;
	if (store_empty(st))
		st->offset = (int32_t)off;
	else
		store_move(st, (int32_t)off);
	return idx < off ? (int32_t)off : idx;
}

void tally_dds_store_add(struct tally_dds_store *st, int32_t idx, uint64_t n)
{
	if (store_empty(st) || idx < st->offset || idx >= st->offset + TALLY_DDS_BINS)
		idx = store_extend(st, idx);
	*tally_dds_slot(st, idx) += n;
	if (store_empty(st)) {
		st->lo = st->hi = idx;
		return;
	}
	st->lo = idx < st->lo ? idx : st->lo;
	st->hi = idx > st->hi ? idx : st->hi;
}

static uint64_t store_count(const struct tally_dds_store *st)
{
	uint64_t n = 0;

	for (int32_t i = st->lo; i <= st->hi; i++)
		n += *tally_dds_slot((struct tally_dds_store *)st, i);
	return n;
}

uint64_t tally_dds_count(const struct tally_sketch *s)
{
	return s->dds.zero + store_count(&s->dds.pos) + store_count(&s->dds.neg);
}

/* ---- reading ---- */

static double bin_value(int32_t i)
{
	const double gamma = (1 + TALLY_DDS_ALPHA) / (1 - TALLY_DDS_ALPHA);

	return 2 * exp((double)i / TALLY_DDS_INV_LN_GAMMA) / (gamma + 1);
}

double tally_dds_quantile(const struct tally_sketch *s, double q)
{
	const struct tally_dds_store *pos = &s->dds.pos, *neg = &s->dds.neg;
	uint64_t n = tally_dds_count(s), cum = 0;
	double rank;

	if (n == 0 || !(q >= 0 && q <= 1))
		return NAN;
	rank = q * (double)(n - 1);
	for (int32_t i = neg->hi; i >= neg->lo; i--) /* most negative first */
		if ((double)(cum += neg->bins[(uint32_t)i % TALLY_DDS_BINS]) > rank)
			return -bin_value(i);
	if ((double)(cum += s->dds.zero) > rank)
		return 0;
	for (int32_t i = pos->lo; i <= pos->hi; i++)
		if ((double)(cum += pos->bins[(uint32_t)i % TALLY_DDS_BINS]) > rank)
			return bin_value(i);
	return bin_value(pos->hi); /* rounding of rank near n - 1 */
}

/* Ertl's sigma and tau (arXiv:1702.01284, algorithm 6). */
static double hll_sigma(double x)
{
	double y = 1, z = x, zp;

	if (x == 1)
		return INFINITY;
	do {
		x *= x;
		zp = z;
		z += x * y;
		y += y;
	} while (z != zp);
	return z;
}

static double hll_tau(double x)
{
	double y = 1, z = 1 - x, zp;

	if (x == 0 || x == 1)
		return 0;
	do {
		x = sqrt(x);
		zp = z;
		y *= 0.5;
		z -= (1 - x) * (1 - x) * y;
	} while (z != zp);
	return z / 3;
}

double tally_hll_estimate(const struct tally_sketch *s)
{
	enum { Q = 64 - TALLY_HLL_P };
	const double m = TALLY_HLL_M;
	uint32_t c[Q + 2] = {0};
	double z;

	for (uint32_t i = 0; i < TALLY_HLL_M; i++)
		c[s->reg[i] <= Q + 1 ? s->reg[i] : Q + 1]++;
	z = m * hll_tau(1 - c[Q + 1] / m);
	for (int k = Q; k >= 1; k--)
		z = 0.5 * (z + c[k]);
	z += m * hll_sigma(c[0] / m);
	return m * m / (2 * log(2)) / z;
}

/* ---- merging ---- */

static void store_merge(struct tally_dds_store *dst, const struct tally_dds_store *src)
{
	if (store_empty(src))
		return;
	/* Highest first: a collapse then happens at most once, into the final window. */
	for (int32_t i = src->hi; i >= src->lo; i--)
		if (src->bins[(uint32_t)i % TALLY_DDS_BINS] != 0)
			tally_dds_store_add(dst, i, src->bins[(uint32_t)i % TALLY_DDS_BINS]);
}

int tally_sketch_merge(struct tally_sketch *dst, const struct tally_sketch *src)
{
	if (dst->kind != src->kind)
		return -EINVAL;
	if (src->kind == TALLY_SK_DDS) {
		dst->dds.zero += src->dds.zero;
		store_merge(&dst->dds.pos, &src->dds.pos);
		store_merge(&dst->dds.neg, &src->dds.neg);
	} else if (src->kind == TALLY_SK_HLL) {
		for (uint32_t i = 0; i < TALLY_HLL_M; i++)
			dst->reg[i] = src->reg[i] > dst->reg[i] ? src->reg[i] : dst->reg[i];
	}
	return 0;
}

/* ---- the blob ---- */

static uint8_t *put_var(uint8_t *p, uint64_t v)
{
	for (; v >= 0x80; v >>= 7)
		*p++ = (uint8_t)(v | 0x80);
	*p++ = (uint8_t)v;
	return p;
}

static uint8_t *put_store(uint8_t *p, const struct tally_dds_store *st)
{
	int32_t lo = store_empty(st) ? 0 : st->lo;
	uint32_t n = store_empty(st) ? 0 : (uint32_t)(st->hi - st->lo + 1);

	p = put_var(p, ((uint64_t)(int64_t)lo << 1) ^ (uint64_t)((int64_t)lo >> 63));
	p = put_var(p, n);
	for (uint32_t i = 0; i < n; i++)
		p = put_var(p, st->bins[(uint32_t)(lo + (int32_t)i) % TALLY_DDS_BINS]);
	return p;
}

static size_t encode_hll(const struct tally_sketch *s, uint8_t *out)
{
	uint8_t *p = out + 4, tmp[10];
	uint32_t k = 0, last = 0;
	size_t sparse = 0;

	for (uint32_t i = 0; i < TALLY_HLL_M; i++)
		if (s->reg[i] != 0) {
			sparse += (size_t)(put_var(tmp, i - last) - tmp) + 1;
			last = i;
			k++;
		}
	out[0] = 'H', out[1] = BLOB_VERSION, out[2] = TALLY_HLL_P;
	out[3] = sparse + 3 < TALLY_HLL_M;
	if (!out[3]) {
		memcpy(p, s->reg, TALLY_HLL_M);
		return 4 + TALLY_HLL_M;
	}
	p = put_var(p, k);
	last = 0;
	for (uint32_t i = 0; i < TALLY_HLL_M; i++)
		if (s->reg[i] != 0) {
			p = put_var(p, i - last);
			*p++ = s->reg[i];
			last = i;
		}
	return (size_t)(p - out);
}

size_t tally_sketch_encode(const struct tally_sketch *s, uint8_t *out)
{
	uint8_t *p = out;
	double a = TALLY_DDS_ALPHA;

	if (s->kind == TALLY_SK_HLL)
		return encode_hll(s, out);
	*p++ = 'D', *p++ = BLOB_VERSION;
	memcpy(p, &a, 8), p += 8; /* x86-64 and arm64: little-endian */
	p = put_var(p, s->dds.zero);
	p = put_store(p, &s->dds.pos);
	p = put_store(p, &s->dds.neg);
	return (size_t)(p - out);
}

struct rd {
	const uint8_t *p, *end;
	int bad;
};

static uint64_t get_var(struct rd *r)
{
	uint64_t v = 0;

	for (unsigned sh = 0; sh < 64; sh += 7) {
		if (r->p == r->end) {
			r->bad = 1;
			return 0;
		}
		v |= (uint64_t)(*r->p & 0x7f) << sh;
		if ((*r->p++ & 0x80) == 0)
			return v;
	}
	r->bad = 1;
	return 0;
}

/* A store's bins, added to s (merging) through the collapsing add. */
static void get_store(struct rd *r, struct tally_dds_store *st)
{
	uint64_t z = get_var(r), n = get_var(r);
	int64_t lo = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
	uint64_t c[TALLY_DDS_BINS];

	if (r->bad || n > TALLY_DDS_BINS || lo < INT32_MIN || lo + (int64_t)n > INT32_MAX) {
		r->bad = 1;
		return;
	}
	for (uint64_t i = 0; i < n; i++)
		c[i] = get_var(r);
	/* written lowest first; added highest first, as in a merge */
	for (uint64_t i = n; !r->bad && i-- > 0;)
		if (c[i] != 0)
			tally_dds_store_add(st, (int32_t)(lo + (int64_t)i), c[i]);
}

static int merge_hll_blob(struct tally_sketch *s, struct rd *r)
{
	uint64_t k, at = 0;

	if (r->end - r->p < 2 || r->p[0] != TALLY_HLL_P || r->p[1] > 1)
		return -EBADMSG;
	if (r->p[1] == 0) {
		if (r->end - r->p != 2 + TALLY_HLL_M)
			return -EBADMSG;
		for (uint32_t i = 0; i < TALLY_HLL_M; i++)
			if (r->p[2 + i] > 64 - TALLY_HLL_P + 1)
				return -EBADMSG;
		for (uint32_t i = 0; i < TALLY_HLL_M; i++)
			s->reg[i] = r->p[2 + i] > s->reg[i] ? r->p[2 + i] : s->reg[i];
		return 0;
	}
	r->p += 2;
	k = get_var(r);
	for (uint64_t j = 0; !r->bad && j < k; j++) {
		at += get_var(r);
		if (r->bad || at >= TALLY_HLL_M || r->p == r->end || *r->p > 64 - TALLY_HLL_P + 1)
			return -EBADMSG;
		s->reg[at] = *r->p > s->reg[at] ? *r->p : s->reg[at];
		r->p++;
	}
	return r->bad || r->p != r->end ? -EBADMSG : 0;
}

int tally_sketch_merge_blob(struct tally_sketch *s, const uint8_t *in, size_t len)
{
	struct rd r = {in + 2, in + len, 0};
	enum tally_sketch_kind kind;
	double a;

	if (len < 2 || in[1] != BLOB_VERSION || (in[0] != 'D' && in[0] != 'H'))
		return -EBADMSG;
	kind = in[0] == 'D' ? TALLY_SK_DDS : TALLY_SK_HLL;
	if (s->kind == TALLY_SK_NONE)
		tally_sketch_init(s, kind);
	if (s->kind != kind)
		return -EINVAL;
	if (kind == TALLY_SK_HLL)
		return merge_hll_blob(s, &r);
	if (len < 10)
		return -EBADMSG;
	memcpy(&a, in + 2, 8);
	if (a != TALLY_DDS_ALPHA)
		return -EBADMSG; /* another mapping: its bins mean other values */
	r.p += 8;
	s->dds.zero += get_var(&r);
	get_store(&r, &s->dds.pos);
	get_store(&r, &s->dds.neg);
	return r.bad || r.p != r.end ? -EBADMSG : 0;
}

int tally_sketch_decode(struct tally_sketch *s, const uint8_t *in, size_t len)
{
	s->kind = TALLY_SK_NONE;
	return tally_sketch_merge_blob(s, in, len);
}
