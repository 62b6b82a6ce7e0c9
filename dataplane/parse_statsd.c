/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * StatsD / DogStatsD line parser. Each line is judged alone: a bad line adds one
 * to its reason's counter and the next line is read; a good line becomes one
 * event whose key is the canonical <name>|<type>[|#tags] (tags sorted bytewise
 * as whole strings, exact repeats removed), written into the evbuf's arena.
 *
 * Check order per line: UTF-8 and NUL; name (non-empty, before the first ':',
 * no '|'); type (c g ms h d s); value (a number; for s any non-empty text,
 * kept as its 64-bit hash; for g a leading + or - makes it a relative change);
 * then the fields after the type in any order, each at most once: @rate,
 * #tags, T<unix seconds>, c:<container> (ignored). Empty tags between commas
 * are ignored. At most TALLY_STATSD_MAX_TAGS tags per line. Each event carries
 * its row kind (event.h): what the row keeps besides its sums.
 *
 * Design: a worker has ~150 cycles a line for parsing, so each byte is
 * classified once, by SIMD compares, and nothing calls into libc on the common
 * path.
 * - A cursor classifies the datagram 64 bytes at a time into a mask of the
 *   separators '\n', '|' and ',', and hands them out in order (ctz, clear the
 *   lowest bit). The line is walked along them: '|' to '|' for the value, the
 *   type and each field, ',' to ',' inside #tags. Only a line's first ':'
 *   matters, so the name's end is found by a 16-byte scan at the line's start.
 *   Loads stay inside the datagram: the last block is loaded ending at its end
 *   and the mask shifted.
 * - The same pass notes blocks holding a byte that is not ASCII, or a NUL. A
 *   line that touched none is valid UTF-8; any other line gets the exact check
 *   (tally_utf8_valid), and a failure overrides whatever the walk found: the
 *   walk has no effect until its line is committed, so the check coming last
 *   gives the same outcome as coming first.
 * - Numbers take an exact fast path (Clinger: mantissa <= 2^53, |exp10| <= 22,
 *   one correctly rounded IEEE operation, bit-for-bit strtod); anything else is
 *   strtod on a bounded copy. |T digits are converted 16 at a time (SIMD).
 * - Each tag carries its first 8 bytes as a big-endian integer, its head.
 *   Comparing heads is memcmp order, and as a line holds no NUL the zero padding
 *   puts a tag before any longer one it begins. Two to four tags are ordered by
 *   a branch-free sorting network on the heads (tag orders are random, so
 *   branches would mispredict); equal heads of tags with the same bytes are an
 *   exact repeat, written once. Any other tie, and more tags, take an insertion
 *   sort that reads on past the head.
 * - The key is written straight into the arena: 16-byte moves when the line
 *   has 16 bytes of slack in the datagram and the arena, else exact moves.
 * Positions are pointers, and the cursor and the evbuf's fill counts are locals
 * of the datagram's loop: stores of key bytes could alias them otherwise, and
 * the hot state stays in registers.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__SSSE3__)
#include <tmmintrin.h>
#endif

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "counters.h"
#include "parse_statsd.h"
#include "parse_tly1.h"
#include "wire.h"

#define TALLY_STATSD_MAX_TAGS 64
#define NUM_MAX 400 /* longest number text accepted (DBL_MAX has 309 digits) */

/* ---- classifying bytes ---- */

/* 64 bytes: which are separators, and whether any is not plain (NUL or >= 0x80). */
struct block {
	uint64_t seps;
	bool np;
};

#if defined(__SSE2__)
/* Bit i: q[i] is '\n', '|' or ','. *plain keeps the bytes in 1..0x7f (signed > 0). */
static inline uint64_t seps16(const uint8_t *q, __m128i *plain)
{
	__m128i v = _mm_loadu_si128((const __m128i *)q);
	__m128i x = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\n')),
				 _mm_cmpeq_epi8(v, _mm_set1_epi8('|')));

	*plain = _mm_and_si128(*plain, _mm_cmpgt_epi8(v, _mm_setzero_si128()));
	return (uint32_t)_mm_movemask_epi8(_mm_or_si128(x, _mm_cmpeq_epi8(v, _mm_set1_epi8(','))));
}

static inline struct block classify64(const uint8_t *q)
{
	__m128i plain = _mm_set1_epi8(-1);
	uint64_t m = seps16(q, &plain) | seps16(q + 16, &plain) << 16 |
		     seps16(q + 32, &plain) << 32 | seps16(q + 48, &plain) << 48;

	return (struct block){m, _mm_movemask_epi8(plain) != 0xffff};
}

/*
 * A whole datagram of 16 to 63 bytes, without copying it out: 16-byte loads,
 * the last one ending at the datagram's end and shifted to its place.
 * classify64 stays its own four loads: as classify_short(q, 64), even
 * unrolled, D and D1 took 13-26 more instructions a line (callgrind).
 */
static inline struct block classify_short(const uint8_t *p, uint32_t n)
{
	__m128i plain = _mm_set1_epi8(-1);
	uint64_t m = 0;
	uint32_t i = 0;

	for (; i + 16 <= n; i += 16)
		m |= seps16(p + i, &plain) << i;
	if (i < n)
		m |= seps16(p + n - 16, &plain) >> (16 - (n - i)) << i;
	return (struct block){m, _mm_movemask_epi8(plain) != 0xffff};
}

/* Bit i: q[i] is ':', '|' or '\n', the bytes that can end a name. */
static inline uint32_t name_stops16(const uint8_t *q)
{
	__m128i v = _mm_loadu_si128((const __m128i *)q);
	__m128i x = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\n')),
				 _mm_cmpeq_epi8(v, _mm_set1_epi8('|')));

	return (uint32_t)_mm_movemask_epi8(_mm_or_si128(x, _mm_cmpeq_epi8(v, _mm_set1_epi8(':'))));
}
#else
static inline struct block classify64(const uint8_t *q)
{
	struct block b = {0, false};

	for (unsigned i = 0; i < 64; i++) {
		b.seps |= (uint64_t)(q[i] == '\n' || q[i] == '|' || q[i] == ',') << i;
		b.np |= q[i] == 0 || q[i] >= 0x80;
	}
	return b;
}
#endif

/*
 * The block at b, 64 bytes or fewer before end. Past the end nothing is a
 * separator; the last block's np may also cover bytes before b, which only
 * means more lines get the exact UTF-8 check.
 */
static struct block block_at(const uint8_t *p, const uint8_t *end, const uint8_t *b)
{
	struct block r;
	uint8_t tmp[64];

	if (end - b >= 64)
		return classify64(b);
	if (end - p >= 64) {
		r = classify64(end - 64);
		r.seps >>= 64 - (end - b);
		return r;
	}
#if defined(__SSE2__)
	if (end - p >= 16) /* a datagram shorter than a block */
		return classify_short(p, (uint32_t)(end - p));
#endif
	memset(tmp, ' ', sizeof(tmp)); /* shorter than one load */
	memcpy(tmp, p, (size_t)(end - p));
	return classify64(tmp);
}

/* The first ':', '|' or '\n' from s on, or end: where a name ends. */
static inline const uint8_t *name_end(const uint8_t *p, const uint8_t *end, const uint8_t *s)
{
#if defined(__SSE2__)
	for (; end - s >= 16; s += 16) {
		uint32_t m = name_stops16(s);

		if (m != 0)
			return s + (unsigned)__builtin_ctz(m);
	}
	if (end - p >= 16 && s < end) {
		uint32_t m = name_stops16(end - 16) >> (16 - (end - s));

		return m != 0 ? s + (unsigned)__builtin_ctz(m) : end;
	}
#else
	(void)p;
#endif
	for (; s < end; s++)
		if (*s == ':' || *s == '|' || *s == '\n')
			return s;
	return end;
}

/* ---- the cursor ---- */

/* Separators of the block at base not handed out yet are the set bits of m. */
struct scan {
	const uint8_t *base;
	uint64_t m;
	const uint8_t *p, *end;
	bool np;    /* this block holds a byte that is not plain */
	bool dirty; /* some block of the current line did */
};

static inline void scan_load(struct scan *sc, const uint8_t *base)
{
	struct block b = block_at(sc->p, sc->end, base);

	sc->base = base;
	sc->m = b.seps;
	sc->np = b.np;
	sc->dirty |= b.np;
}

/* The next block holding a separator; false at the datagram's end. */
static inline bool scan_more(struct scan *sc)
{
	while (sc->m == 0) {
		if (sc->end - sc->base <= 64)
			return false;
		scan_load(sc, sc->base + 64);
	}
	return true;
}

/* The next separator, and in *c its byte ('\n' at the end of the datagram). */
static inline const uint8_t *scan_next(struct scan *sc, uint8_t *c)
{
	const uint8_t *q;

	if (sc->m == 0 && !scan_more(sc)) {
		*c = '\n';
		return sc->end;
	}
	q = sc->base + (unsigned)__builtin_ctzll(sc->m);
	sc->m &= sc->m - 1;
	*c = *q;
	return q;
}

/* The next '|' or '\n': commas outside #tags are text. */
static inline const uint8_t *scan_sep(struct scan *sc, uint8_t *c)
{
	const uint8_t *q;

	do
		q = scan_next(sc, c);
	while (*c == ',');
	return q;
}

/* The rest of a line already judged: its '\n' (or end). */
static inline const uint8_t *scan_eol(struct scan *sc, const uint8_t *q, uint8_t c)
{
	while (c != '\n')
		q = scan_next(sc, &c);
	return q;
}

/*
 * Where a part cut at q (byte c) ends: a '\r' before the line's '\n' is not in
 * the line. A part starts after a separator, so q[-1] is in the datagram and is
 * no '\r' when the part is empty.
 */
static inline const uint8_t *part_end(const uint8_t *q, uint8_t c)
{
	return c == '\n' && q[-1] == '\r' ? q - 1 : q;
}

/* ---- numbers ---- */

static const double pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
				 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
				 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static inline uint32_t digit(uint8_t c)
{
	return (uint32_t)c - '0';
}

/* Digits from i on, into *m (it wraps past 19 digits; the caller counts them). */
static inline uint32_t num_digits(const uint8_t *s, uint32_t n, uint32_t i, uint64_t *m)
{
	uint64_t v = *m;

	for (; i < n && digit(s[i]) <= 9; i++)
		v = v * 10 + digit(s[i]);
	*m = v;
	return i;
}

#define EXP_CAP 100000 /* beyond any finite double: saturating keeps it in range */

/* [+-]digits from i: the exponent, saturated; the index after it, or 0 if no digit. */
static uint32_t num_exp(const uint8_t *s, uint32_t n, uint32_t i, int32_t *e)
{
	bool neg = false;
	uint32_t d;

	if (i < n && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	for (d = i; i < n && digit(s[i]) <= 9; i++)
		if (*e < EXP_CAP)
			*e = *e * 10 + (int32_t)digit(s[i]);
	if (neg)
		*e = -*e;
	return i > d ? i : 0;
}

/* The rest: strtod on a bounded, NUL-terminated copy, and finite only. */
static bool num_slow(const uint8_t *s, uint32_t n, double *out)
{
	char buf[NUM_MAX + 1];

	memcpy(buf, s, n);
	buf[n] = '\0';
	*out = strtod(buf, NULL);
	return isfinite(*out);
}

/*
 * After [-]digits[.digits] at s[0..i), m holding nd digits of which frac after
 * the point: the exponent if any, then Clinger's fast path or strtod.
 *
 * Clinger: an integer up to 2^53 is an exact double and so is 10^k for k <= 22,
 * and IEEE multiplication and division round correctly, so one of them gives
 * exactly the double strtod would (round to nearest even). Zero is zero, with
 * its sign, whatever the exponent.
 */
static bool num_rest(const uint8_t *s, uint32_t n, uint32_t i, uint64_t m, uint32_t nd,
		     int32_t frac, bool neg, double *out)
{
	int32_t e = 0;
	double d;

	if (i < n && (s[i] == 'e' || s[i] == 'E') && (i = num_exp(s, n, i + 1, &e)) == 0)
		return false;
	if (i != n)
		return false;
	e -= frac;
	if (FLT_EVAL_METHOD != 0 || nd > 19 || (m != 0 && (m > (1ULL << 53) || e < -22 || e > 22)))
		return num_slow(s, n, out);
	d = m == 0 ? 0 : e < 0 ? (double)m / pow10[-e] : (double)m * pow10[e];
	*out = neg ? -d : d;
	return true;
}

/*
 * [-]digits[.digits][e[+-]digits], the whole text, finite; sign only if allowed.
 * Inline here: up to 15 digits without exponent, the values and rates clients
 * send, are below 2^53 and need at most one division by an exact 10^k.
 * The fast paths need double arithmetic without excess precision.
 */
static inline bool to_double(const uint8_t *s, uint32_t n, bool sign, double *out)
{
	uint64_t m = 0;
	uint32_t i = 0, d, nd;
	int32_t frac = 0;
	bool neg = false;
	double x;

	if (n == 0 || n > NUM_MAX)
		return false;
	if (sign && s[0] == '-') {
		neg = true;
		i++;
	}
	d = i;
	if ((nd = (i = num_digits(s, n, d, &m)) - d) == 0)
		return false;
	if (i < n && s[i] == '.') {
		d = i + 1;
		if ((frac = (int32_t)((i = num_digits(s, n, d, &m)) - d)) == 0)
			return false;
		nd += (uint32_t)frac;
	}
	if (FLT_EVAL_METHOD != 0 || i != n || nd > 15)
		return num_rest(s, n, i, m, nd, frac, neg, out);
	x = (double)m / pow10[frac];
	*out = neg ? -x : x;
	return true;
}

#if defined(__SSSE3__) && defined(__x86_64__)
/*
 * n (1..16) ASCII digits ending at end, 16 bytes read back from there: a digit
 * check and multiply-adds that fold pairs, quads, then octets. False if one of
 * the n is not a digit.
 */
static inline bool digits16(const uint8_t *end, uint32_t n, uint64_t *v)
{
	static const uint8_t keep[32] = {[16] = 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	__m128i d = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(end - 16)), _mm_set1_epi8('0'));
	__m128i k = _mm_loadu_si128((const __m128i *)(keep + n));
	uint32_t ok = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d));
	uint64_t r;

	if (((ok | ~(uint32_t)_mm_movemask_epi8(k)) & 0xffff) != 0xffff)
		return false;
	d = _mm_maddubs_epi16(_mm_and_si128(d, k), _mm_set1_epi16(0x010a)); /* bytes 10, 1 */
	d = _mm_madd_epi16(d, _mm_set1_epi32(0x00010064));                  /* words 100, 1 */
	d = _mm_madd_epi16(_mm_packs_epi32(d, d), _mm_set1_epi32(0x00012710)); /* 10000, 1 */
	r = (uint64_t)_mm_cvtsi128_si64(d);
	*v = (uint32_t)r * 100000000ULL + (r >> 32);
	return true;
}
#endif

/* 1 to 12 digits at s[0..n) as an integer; false if there are none, too many, or a non-digit. */
static inline bool digits12(const uint8_t *p, const uint8_t *s, uint32_t n, uint64_t *v)
{
	uint64_t x = 0;

	if (n == 0 || n > 12)
		return false;
#if defined(__SSSE3__) && defined(__x86_64__)
	if (s + n - p >= 16) /* the 16 bytes before the end are in the datagram */
		return digits16(s + n, n, v);
#else
	(void)p;
#endif
	for (uint32_t k = 0; k < n; k++) {
		if (digit(s[k]) > 9)
			return false;
		x = x * 10 + digit(s[k]);
	}
	*v = x;
	return true;
}

/* ---- tags ---- */

/* A tag: its head (bytes 0..7, big-endian, zero past the end), at = offset | length << 32. */
struct tag {
	uint64_t head, at;
};

static inline uint32_t tag_off(struct tag t)
{
	return (uint32_t)t.at;
}

static inline uint32_t tag_len(struct tag t)
{
	return (uint32_t)(t.at >> 32);
}

static inline uint64_t be64(uint64_t w)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return __builtin_bswap64(w);
#else
	return w;
#endif
}

/* Bytes [s, s + 8) of a tag with left (>= 1) bytes from s, big-endian, zero past its end. */
static inline uint64_t tag_chunk(const uint8_t *end, const uint8_t *s, uint32_t left)
{
	uint64_t w = 0;

	if (end - s >= 8) {
		memcpy(&w, s, 8);
		w = be64(w);
	} else { /* near the datagram's end: no load past it */
		for (int i = 0; i < end - s; i++)
			w |= (uint64_t)s[i] << (56 - 8 * i);
	}
	return left >= 8 ? w : w & ~(~0ULL >> (8 * left));
}

/*
 * memcmp order of two tags, the shorter first on a tie. Equal chunks where one
 * tag ends mean that one is a prefix of the other: a zero pad can only equal a
 * zero byte, and lines hold no NUL.
 */
static int tag_cmp(const uint8_t *p, uint32_t len, struct tag a, struct tag b)
{
	uint64_t x = a.head, y = b.head;

	for (uint32_t k = 8;; k += 8) {
		if (x != y)
			return x < y ? -1 : 1;
		if (tag_len(a) <= k || tag_len(b) <= k)
			return (tag_len(a) > tag_len(b)) - (tag_len(a) < tag_len(b));
		x = tag_chunk(p + len, p + tag_off(a) + k, tag_len(a) - k);
		y = tag_chunk(p + len, p + tag_off(b) + k, tag_len(b) - k);
	}
}

/*
 * Sort the tags in place, dropping exact repeats; returns how many remain.
 * Insertion: lines carry a handful of tags.
 */
static uint32_t sort_unique(const uint8_t *p, uint32_t len, struct tag *t, uint32_t n)
{
	uint32_t k = n > 0;

	for (uint32_t i = 1; i < n; i++) {
		struct tag x = t[i];
		uint32_t j = k;
		int c = 1;

		while (j > 0 && (c = x.head != t[j - 1].head ? (x.head < t[j - 1].head ? -1 : 1)
							      : tag_cmp(p, len, x, t[j - 1])) < 0)
			j--;
		if (j > 0 && c == 0)
			continue; /* an exact repeat */
		for (uint32_t m = k; m > j; m--)
			t[m] = t[m - 1];
		t[j] = x;
		k++;
	}
	return k;
}

/*
 * Order a pair by head. A mask and XORs, not a conditional: tag orders are
 * random, and a compiler given a choice branches on them (16-byte swaps).
 */
static inline void cswap(struct tag *a, struct tag *b)
{
	uint64_t m = -(uint64_t)(b->head < a->head);
	uint64_t dh = (a->head ^ b->head) & m, da = (a->at ^ b->at) & m;

	a->head ^= dh, b->head ^= dh, a->at ^= da, b->at ^= da;
}

/*
 * Up to four tags, the usual case: a sorting network on the heads, the missing
 * ones padded with the largest head, into s[]. No data-dependent branch.
 */
static inline __attribute__((always_inline)) void sort4(const struct tag *t, uint32_t n,
							 struct tag *s)
{
	const struct tag pad = {~0ULL, 0};
	struct tag a = t[0], b = t[1], c = n > 2 ? t[2] : pad, d = n > 3 ? t[3] : pad;

	cswap(&a, &b), cswap(&c, &d), cswap(&a, &c), cswap(&b, &d), cswap(&b, &c);
	s[0] = a, s[1] = b, s[2] = c, s[3] = d;
}

/* ---- the line ---- */

enum { HAS_RATE = 1, HAS_TAGS = 2, HAS_TS = 4, HAS_CONTAINER = 8 };

struct line {
	const uint8_t *s, *type;
	uint32_t name_n, type_n, ntags;
	unsigned has;
	bool counter;
	uint8_t kind; /* enum tally_ev_kind */
	double v, rate;
	uint64_t member; /* a set's member, hashed */
	uint64_t time_ms;
};

/*
 * #tags after f (the '#'), split at ',' up to the field's end (*q, byte *c),
 * into t[] in the order written.
 */
static inline int parse_tags(struct scan *sc, const uint8_t *f, struct tag *t, uint32_t *ntags,
			     const uint8_t **q, uint8_t *c)
{
	const uint8_t *pos = f + 1, *at, *e;
	uint32_t n = 0;
	int r = TALLY_OK;

	for (;; pos = at + 1) {
		at = scan_next(sc, c);
		e = part_end(at, *c);
		if (e > pos) {
			if (n == TALLY_STATSD_MAX_TAGS) {
				r = TALLY_C_STATSD_BAD_FIELD;
				break;
			}
			t[n++] = (struct tag){tag_chunk(sc->end, pos, (uint32_t)(e - pos)),
					      (uint64_t)(pos - sc->p) | (uint64_t)(e - pos) << 32};
		}
		if (*c != ',')
			break;
	}
	*q = at;
	*ntags = n;
	return r;
}

/* One |field after the type, other than #tags: f[0..n). */
static inline int parse_field(const uint8_t *p, const uint8_t *f, uint32_t n, struct line *l)
{
	uint64_t sec;
	double rate;

	if (n == 0)
		return TALLY_C_STATSD_BAD_FIELD;
	switch (f[0]) {
	case '@':
		if (l->has & HAS_RATE)
			return TALLY_C_STATSD_BAD_FIELD;
		l->has |= HAS_RATE;
		if (!to_double(f + 1, n - 1, false, &rate) || !(rate > 0 && rate <= 1))
			return TALLY_C_STATSD_BAD_RATE;
		l->rate = rate;
		return TALLY_OK;
	case 'T':
		if (l->has & HAS_TS)
			return TALLY_C_STATSD_BAD_FIELD;
		l->has |= HAS_TS;
		/* |T0 is no time: an event time of 0 reads as "arrival time" */
		if (!digits12(p, f + 1, n - 1, &sec) || sec == 0)
			return TALLY_C_STATSD_BAD_TS;
		l->time_ms = sec * 1000;
		return TALLY_OK;
	case 'c':
		if ((l->has & HAS_CONTAINER) || n < 2 || f[1] != ':')
			return TALLY_C_STATSD_BAD_FIELD;
		l->has |= HAS_CONTAINER;
		return TALLY_OK;
	}
	return TALLY_C_STATSD_BAD_FIELD;
}

/* c g ms h d s: the row kind, or a reason. */
static inline int parse_type(const uint8_t *t, uint32_t n, uint8_t *kind)
{
	if (n == 1) {
		switch (t[0]) {
		case 'c': *kind = TALLY_EV_PLAIN; return TALLY_OK;
		case 'g': *kind = TALLY_EV_GAUGE; return TALLY_OK;
		case 'h': case 'd': *kind = TALLY_EV_SKETCH; return TALLY_OK;
		case 's': *kind = TALLY_EV_SET; return TALLY_OK;
		}
	}
	if (n == 2 && t[0] == 'm' && t[1] == 's') {
		*kind = TALLY_EV_SKETCH;
		return TALLY_OK;
	}
	return TALLY_C_STATSD_BAD_TYPE;
}

/*
 * The value text s[0..n) of a line of kind l->kind. A set's member is any
 * non-empty text, kept as its hash; a gauge's leading sign makes it a change.
 */
static inline int parse_value(const uint8_t *s, uint32_t n, struct line *l)
{
	double x;

	if (l->kind == TALLY_EV_SET) {
		if (n == 0)
			return TALLY_C_STATSD_BAD_SET;
		l->member = XXH3_64bits(s, n);
		l->v = 1;
		return TALLY_OK;
	}
	if (l->kind == TALLY_EV_GAUGE && n > 0 && (s[0] == '+' || s[0] == '-')) {
		l->kind = TALLY_EV_GAUGE_REL;
		if (!to_double(s + 1, n - 1, false, &x))
			return TALLY_C_STATSD_BAD_REL_GAUGE;
		l->v = s[0] == '-' ? -x : x;
		return TALLY_OK;
	}
	if (!to_double(s, n, true, &x))
		return TALLY_C_STATSD_BAD_VALUE;
	l->v = x;
	return TALLY_OK;
}

/* name:value|type; *q and *c are left at the type's end. */
static inline int parse_head(struct scan *sc, struct line *l, const uint8_t **q, uint8_t *c)
{
	const uint8_t *colon = name_end(sc->p, sc->end, l->s), *v;
	int r;

	if (colon == l->s || colon == sc->end || *colon != ':')
		return TALLY_C_STATSD_BAD_NAME;
	*q = v = scan_sep(sc, c);
	if (*c == '\n')
		return TALLY_C_STATSD_BAD_TYPE; /* no '|' after the value */
	*q = scan_sep(sc, c);
	l->name_n = (uint32_t)(colon - l->s);
	l->type = v + 1;
	l->type_n = (uint32_t)(part_end(*q, *c) - l->type);
	if ((r = parse_type(l->type, l->type_n, &l->kind)) != TALLY_OK)
		return r;
	l->counter = l->type[0] == 'c';
	return parse_value(colon + 1, (uint32_t)(v - colon - 1), l);
}

/* The |fields from *q (the '|' after the type) to the line's end. */
static inline int parse_fields(struct scan *sc, struct line *l, struct tag *tags,
			       const uint8_t **q, uint8_t *c)
{
	while (*c == '|') {
		const uint8_t *f = *q + 1;
		int r;

		if (f < sc->end && *f == '#') {
			if (l->has & HAS_TAGS)
				return TALLY_C_STATSD_BAD_FIELD;
			l->has |= HAS_TAGS;
			r = parse_tags(sc, f, tags, &l->ntags, q, c);
		} else {
			*q = scan_sep(sc, c);
			r = parse_field(sc->p, f, (uint32_t)(part_end(*q, *c) - f), l);
		}
		if (r != TALLY_OK)
			return r;
	}
	return TALLY_OK;
}

/*
 * One non-empty line: its reason, and in *eol its '\n' (or end). A line that
 * touched a block with bytes that are not plain ASCII is checked last, with the
 * exact UTF-8 rule, which then decides over anything else.
 */
static inline int parse_line(struct scan *sc, struct line *l, struct tag *tags,
			     const uint8_t **eol)
{
	const uint8_t *q = l->s;
	uint8_t c = '|'; /* not yet at the line's end */
	int r = parse_head(sc, l, &q, &c);

	if (r == TALLY_OK) {
		int fr = parse_fields(sc, l, tags, &q, &c);

		if (fr != TALLY_OK)
			r = fr;
	}
	*eol = scan_eol(sc, q, c);
	if (sc->dirty && !tally_utf8_valid(l->s, (uint32_t)(*eol - l->s) - ((*eol)[-1] == '\r')))
		r = TALLY_C_STATSD_BAD_UTF8;
	return r;
}

/* ---- the key and the event ---- */

/*
 * n bytes. Wide: 16-byte moves that may read and write up to 15 bytes past
 * the end (the caller has checked the room). Otherwise overlapping 8- and 4-byte
 * moves that touch nothing outside either range.
 */
static inline void copy_bytes(uint8_t *d, const uint8_t *s, uint32_t n, bool wide)
{
	if (wide) {
		memcpy(d, s, 16);
		for (uint32_t i = 16; i < n; i += 16)
			memcpy(d + i, s + i, 16);
	} else if (n >= 8) {
		for (uint32_t i = 0; i + 8 < n; i += 8)
			memcpy(d + i, s + i, 8);
		memcpy(d + n - 8, s + n - 8, 8);
	} else if (n >= 4) {
		memcpy(d, s, 4);
		memcpy(d + n - 4, s + n - 4, 4);
	} else if (n > 0) {
		d[0] = s[0];
		d[n / 2] = s[n / 2];
		d[n - 1] = s[n - 1];
	}
}

/*
 * The tags t[0..n), sorted by head, at d; returns the end. Equal heads of two
 * tags of the same length are an exact repeat if their tails match too, and are
 * written once; any other tie (or a tag with the pad's head) means the heads
 * cannot decide: NULL.
 */
static inline __attribute__((always_inline)) uint8_t *
write_tags(uint8_t *d, const uint8_t *p, uint32_t plen, const struct tag *t, uint32_t n,
	   bool wide)
{
	for (uint32_t i = 0; i < n; i++) {
		uint32_t len = tag_len(t[i]);

		if (i > 0 && t[i].head == t[i - 1].head) {
			if (t[i].at >> 32 != t[i - 1].at >> 32 ||
			    (len > 8 && tag_cmp(p, plen, t[i], t[i - 1]) != 0))
				return NULL;
			continue; /* an exact repeat */
		}
		*d = i > 0 ? ',' : '|';
		d += i > 0 ? 1 : 2;
		d[-1] = i > 0 ? ',' : '#';
		copy_bytes(d, p + tag_off(t[i]), len, wide);
		d += len;
	}
	return n > 0 && t[n - 1].head == ~0ULL ? NULL : d;
}

/* The tags after the general sort, which leaves no tie: never NULL. */
static inline __attribute__((always_inline)) uint8_t *
write_sorted(uint8_t *d, const uint8_t *p, const struct tag *t, uint32_t n, bool wide)
{
	for (uint32_t i = 0; i < n; i++) {
		*d = i > 0 ? ',' : '|';
		d += i > 0 ? 1 : 2;
		d[-1] = i > 0 ? ',' : '#';
		copy_bytes(d, p + tag_off(t[i]), tag_len(t[i]), wide);
		d += tag_len(t[i]);
	}
	return d;
}

/*
 * The canonical key at dst: <name>|<type>[|#tags], tags sorted and each once;
 * returns its length. The key is shorter than its line and the arena has room
 * for the datagram, so its length is judged after writing.
 */
static inline __attribute__((always_inline)) uint32_t
write_key(uint8_t *dst, const uint8_t *p, uint32_t len, const struct line *l, struct tag *t,
	  bool wide)
{
	struct tag s[4];
	uint8_t *d = dst, *e;

	copy_bytes(d, l->s, l->name_n, wide);
	d += l->name_n;
	*d++ = '|';
	copy_bytes(d, l->type, l->type_n, wide);
	d += l->type_n;
	if (l->ntags >= 2 && l->ntags <= 4) {
		sort4(t, l->ntags, s);
		if ((e = write_tags(d, p, len, s, l->ntags, wide)) != NULL)
			return (uint32_t)(e - dst);
	}
	e = write_sorted(d, p, t, l->ntags < 2 ? l->ntags : sort_unique(p, len, t, l->ntags), wide);
	return (uint32_t)(e - dst);
}

static inline __attribute__((always_inline)) int
canonical_key(const uint8_t *p, uint32_t len, const struct line *l, struct tag *t, uint8_t *dst,
	      bool wide, uint32_t *klen)
{
	*klen = wide ? write_key(dst, p, len, l, t, true) : write_key(dst, p, len, l, t, false);
	return *klen > TALLY_KEY_MAX ? TALLY_C_STATSD_KEY_TOO_LONG : TALLY_OK;
}

/*
 * Where events and keys go: the evbuf's fill counts as locals of the datagram,
 * written back at its end, as stores of key bytes could alias them otherwise.
 */
struct sink {
	struct tally_event *ev;
	uint8_t *arena;
	uint32_t n, used;
	bool slack; /* 16 bytes of arena to spare past any key of this datagram */
};

static inline void add_event(struct sink *o, const struct line *l, uint32_t klen, double v)
{
	struct tally_event *e = &o->ev[o->n++];

	e->key = o->arena + o->used;
	e->key_len = (uint8_t)klen;
	e->statsd = 1;
	e->event_id = 0;
	e->time_ms = l->time_ms;
	e->kind = l->kind;
	if (l->kind == TALLY_EV_SET)
		e->member = l->member;
	else
		e->value = v;
	o->used += klen;
}

/*
 * One line from s: append its event or count its reason; returns its end. Keys
 * may use 16-byte moves when they stay inside the datagram and the arena.
 */
static inline __attribute__((always_inline)) const uint8_t *
one_line(struct scan *sc, const uint8_t *s, struct sink *o, uint64_t *counters)
{
	struct tag tags[TALLY_STATSD_MAX_TAGS];
	struct line l = {.s = s, .rate = 1};
	const uint8_t *eol;
	uint32_t klen;
	double v;
	int r;

	sc->dirty = sc->np;
	r = parse_line(sc, &l, tags, &eol);
	v = l.counter ? l.v / l.rate : l.v;
	if (r == TALLY_OK && !isfinite(v))
		r = TALLY_C_STATSD_BAD_VALUE; /* a counter's value / rate must be finite too */
	if (r == TALLY_OK)
		r = canonical_key(sc->p, (uint32_t)(sc->end - sc->p), &l, tags, o->arena + o->used,
				  o->slack && sc->end - eol > 16, &klen);
	if (r != TALLY_OK) {
		counters[r]++;
		return eol;
	}
	add_event(o, &l, klen, v);
	counters[TALLY_C_STATSD_LINES]++;
	return eol;
}

/* Bytes an empty line at i takes ("\n", "\r\n", or a last "\r"), or 0. */
static inline uint32_t empty_line(const uint8_t *i, const uint8_t *end)
{
	if (i[0] == '\n')
		return 1;
	if (i[0] == '\r' && i + 1 == end)
		return 1;
	if (i[0] == '\r' && i[1] == '\n')
		return 2;
	return 0;
}

/*
 * The arena has room for len bytes (checked), and the keys of a datagram
 * together are shorter than it; a key starts no later than its line's offset.
 */
int tally_statsd_parse(const uint8_t *p, uint32_t len, struct tally_evbuf *out,
		       uint64_t *counters)
{
	uint32_t skip, n;
	struct scan sc = {p, 0, p, p + len, false, false};
	struct sink o = {out->ev, out->arena, out->n, out->arena_used, false};
	const uint8_t *i = p, *eol;

	if (out->cap - out->n < TALLY_STATSD_MAX_EVENTS(len) ||
	    out->arena_cap - out->arena_used < len)
		return -ENOSPC;
	if (len == 0)
		return 0;
	o.slack = out->arena_cap - out->arena_used - len >= 16;
	scan_load(&sc, p);
	while (i < sc.end) {
		if ((skip = empty_line(i, sc.end)) != 0) {
			uint8_t c;

			if (i[skip - 1] == '\n')
				scan_next(&sc, &c); /* its '\n' is the next separator */
			i += skip;
			continue;
		}
		eol = one_line(&sc, i, &o, counters);
		if (eol == sc.end)
			break;
		i = eol + 1;
	}
	n = o.n - out->n;
	out->n = o.n;
	out->arena_used = o.used;
	return (int)n;
}
