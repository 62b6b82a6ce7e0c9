/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Differential test: tally_statsd_parse against the reference parser
 * (statsd_ref.c, the parser as it was before it was made fast) on generated
 * datagrams. Lines are built from parts that hit every rule and reason: good
 * lines of every type, numbers for the exact fast path, its edges and the strtod
 * fallback, rates, |T, |c:, tags with repeats, empties, shared prefixes and no
 * colon, fields in every order and repeated, CRLF, empty lines, bad UTF-8 and NUL,
 * too-long keys, more than 64 tags; then random byte mutations of whole
 * datagrams. Both parsers must agree on everything they return or write: the
 * return value, every counter, every event field (value compared bit for bit),
 * the key's place and bytes in the arena. Each datagram and arena is its own
 * exact-size heap block, so the ASan build catches any read or write past
 * either. The seed is fixed: a failure repeats, and prints the datagram.
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

#include "counters.h"
#include "parse_statsd.h"
#include "statsd_ref.h"

#define DGRAM_MAX 16384
#define EV_MAX (TALLY_STATSD_MAX_EVENTS(DGRAM_MAX) + 8)

static uint64_t rng = 0x5eed5eedULL;

/* splitmix64: fixed seed, so every run tests the same datagrams. */
static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint32_t below(uint32_t n)
{
	return (uint32_t)(rnd() % n);
}

static bool pct(unsigned p)
{
	return below(100) < p;
}

static const char *pick(const char *const *v, size_t n)
{
	return v[below((uint32_t)n)];
}
#define PICK(v) pick(v, sizeof(v) / sizeof(v[0]))

struct buf {
	uint8_t b[DGRAM_MAX];
	uint32_t n;
};

static void put(struct buf *d, const void *s, size_t n)
{
	if (n > DGRAM_MAX - d->n)
		n = DGRAM_MAX - d->n;
	memcpy(d->b + d->n, s, n);
	d->n += (uint32_t)n;
}

static void puts_(struct buf *d, const char *s)
{
	put(d, s, strlen(s));
}

static void putf(struct buf *d, const char *fmt, ...)
{
	char t[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(t, sizeof(t), fmt, ap);
	va_end(ap);
	put(d, t, n < (int)sizeof(t) ? (size_t)n : sizeof(t) - 1);
}

static void put_rep(struct buf *d, char c, uint32_t n)
{
	while (n--)
		put(d, &c, 1);
}

static void put_digits(struct buf *d, uint32_t n, bool lead_nonzero)
{
	for (uint32_t i = 0; i < n; i++) {
		char c = (char)('0' + below(10));

		if (i == 0 && lead_nonzero && c == '0')
			c = '1';
		put(d, &c, 1);
	}
}

static void put_from(struct buf *d, const char *alpha, uint32_t n)
{
	size_t a = strlen(alpha);

	for (uint32_t i = 0; i < n; i++)
		put(d, alpha + below((uint32_t)a), 1);
}

/* ---- names ---- */

static void gen_name(struct buf *d)
{
	static const char *const odd[] = {"a,b", "a#b", "a@b", "a b", "\r", "T", "c", "x\ty",
					  "na\xc3\xa9me", "\xe6\x97\xa5\xe6\x9c\xac", "#", "@", ","};
	uint32_t k = below(100);

	if (k < 45)
		putf(d, "metric.%06u", below(100000));
	else if (k < 60)
		put_from(d, "abcxyz.T_-", 1 + below(8));
	else if (k < 70)
		puts_(d, PICK(odd));
	else if (k < 74)
		; /* empty: bad name */
	else if (k < 78)
		put_from(d, "ab|", 1 + below(4)); /* maybe a '|' in it */
	else if (k < 84)
		put_rep(d, 'n', 235 + below(25)); /* around the 255-byte key limit */
	else
		put_from(d, "abc.:_-/ #@,T\r", 1 + below(20));
}

/* ---- numbers ---- */

static void gen_exp(struct buf *d, int lo, int hi)
{
	static const char *const marks[] = {"e", "E", "e+", "e-", "E-", "E+"};
	int e = lo + (int)below((uint32_t)(hi - lo + 1));

	puts_(d, PICK(marks));
	putf(d, "%d", e < 0 ? -e : e);
}

/* Mantissa digits and exponents chosen to sit on both sides of the fast path's edges. */
static void gen_decimal(struct buf *d, bool sign)
{
	uint32_t nd = 1 + below(pct(70) ? 8 : 24), point = below(nd + 1);

	if (sign && pct(25))
		puts_(d, "-");
	for (uint32_t i = 0; i < nd; i++) {
		if (i == point && i > 0)
			puts_(d, ".");
		put_digits(d, 1, false);
	}
	if (pct(30))
		gen_exp(d, pct(80) ? -25 : -340, pct(80) ? 25 : 320);
}

static void gen_special_number(struct buf *d)
{
	static const char *const v[] = {
		"0", "-0", "-0.0", "0.0", "00012", "-0e10", "0e999", "0e-999", "1e22", "1e23",
		"9007199254740992", "9007199254740993", "9007199254740991", "-9007199254740993",
		"18446744073709551615", "18446744073709551616", "9999999999999999999",
		"10000000000000000000", "1234567890123456789", "12345678901234567890",
		"123456789012345e-22", "123456789012345e22", "9007199254740993e-22",
		"4.9e-324", "2.4703282292062327e-324", "2.4703282292062328e-324", "1e-400",
		"2.2250738585072011e-308", "1.7976931348623157e308", "1.7976931348623159e308",
		"1e308", "1e309", "-1e309", "0.1", "0.2", "0.3", "1.5", "2.5", "3.14159",
		"8.589973e9", "1e-22", "1e-23", "5e-1", "25e-2", "1.00000000000000011102230246251565",
		"0.000000000000000000000000000000001", "100000000000000000000000e-10",
		"1e0000000000000000000000000000001", "1e-0000000000000000000000000000001",
	};
	puts_(d, PICK(v));
}

static void gen_bad_number(struct buf *d)
{
	static const char *const v[] = {"", "+1", "1.", ".5", "1e", "1e+", "0x10", "inf",
					"nan", "-", "--1", "1.2.3", " 1", "1 ", "1e5.5", "\xef\xbc\x91",
					"1,5", "-inf", "1e-", "e5", "-.5", "1..2", "+", "NaN", "1E+-1"};
	puts_(d, PICK(v));
}

/* Around NUM_MAX (400): the longest number text the parser looks at. */
static void gen_long_number(struct buf *d)
{
	uint32_t n = 390 + below(20);

	if (pct(50)) {
		puts_(d, "0.");
		put_rep(d, '0', n - 3);
		puts_(d, "1");
	} else {
		put_digits(d, n, true);
	}
}

static void gen_value(struct buf *d)
{
	uint32_t k = below(100);

	if (k < 35)
		putf(d, "%u", below(1000));
	else if (k < 45)
		putf(d, "-%u", below(1000));
	else if (k < 50)
		putf(d, "+%u", below(1000)); /* relative gauge, or a bad value */
	else if (k < 56) {
		/* a bad relative gauge, an empty set member, or set members */
		static const char *const odd[] = {"", "", "+", "-x", "+1e", "-.5", "+-1", "u:42"};

		puts_(d, PICK(odd));
	}
	else if (k < 65)
		gen_decimal(d, true);
	else if (k < 75)
		gen_special_number(d);
	else if (k < 83)
		gen_bad_number(d);
	else if (k < 85)
		gen_long_number(d);
	else
		put_from(d, "0123456789.eE+-", 1 + below(12));
}

/* ---- fields ---- */

static void gen_rate(struct buf *d)
{
	static const char *const v[] = {"1", "0.5", "0.25", "0.1", "1.0", "1e0", "0.333",
					"1e-5", "5e-324", "0.99999999999999999999",
					"1.00000000000000001", "0.0000001", "0", "0.0", "1.5", "-0.5",
					"abc", "", "1e400", "2", "1e-400", "+0.5", ".5", "0.5.",
					"inf", "1.0000000000000002", "10e-1", "0.5e1"};
	uint32_t k = below(100);

	puts_(d, "@");
	if (k < 70)
		puts_(d, PICK(v));
	else if (k < 85)
		gen_decimal(d, false);
	else
		gen_value(d);
}

static void gen_tag(struct buf *d, const struct buf *tags, const uint32_t *starts, uint32_t nt)
{
	static const char *const pool[] = {
		"env:prod", "env:dev", "host:h17", "host:h01", "region:r3", "region:r0", "a", "ab",
		"a:1", "a:10", "a:2", "b:1", "z", "abcdefgh", "abcdefghi", "abcdefg", "abcdefgz",
		"service:api", "service:apix", "service:ap", "service:", "environment:production",
		"environment:prod", "environment:productio", "version:1.2.3", "k\xc3\xa9y:v",
		"\xd0\xba:\xd0\xb7", "#", "@x", "T1", "c:x", "a b", "\r", ":", "::", "x:y:z",
	};
	uint32_t k = below(100);

	if (k < 15 && nt > 0) { /* an exact repeat of an earlier tag */
		uint32_t i = below(nt);

		put(d, tags->b + starts[i], starts[i + 1] - starts[i]);
	} else if (k < 70) {
		puts_(d, PICK(pool));
	} else if (k < 80) {
		; /* empty */
	} else if (k < 95) {
		put_from(d, "ab:", 1 + below(18)); /* long shared prefixes */
	} else {
		put_from(d, "abcdefghijklmnopqrstuvwxyz0123456789:._-/", 1 + below(60));
	}
}

static void gen_tags(struct buf *d)
{
	struct buf *seen = malloc(sizeof(*seen));
	uint32_t starts[128], nt = 0, n, k = below(100);

	assert_non_null(seen);
	seen->n = 0;
	n = k < 85 ? below(6) : k < 92 ? 10 + below(20) : 60 + below(10);
	puts_(d, "#");
	if (pct(5))
		puts_(d, ",");
	for (uint32_t i = 0; i < n; i++) {
		uint32_t at;

		if (i > 0)
			puts_(d, pct(5) ? ",," : ",");
		at = d->n;
		gen_tag(d, seen, starts, nt);
		if (nt < 127) {
			starts[nt] = seen->n;
			put(seen, d->b + at, d->n - at);
			starts[++nt] = seen->n;
		}
	}
	if (pct(5))
		puts_(d, ",");
	free(seen);
}

/* Three to five tags in any order, sometimes an exact repeat. */
static void gen_tags_clean(struct buf *d)
{
	static const char *const pool[] = {"env:prod", "env:dev", "host:h17", "host:h01",
					   "region:r3", "region:r0", "service:api", "service:apix",
					   "version:1.2.3", "a", "ab", "a:1", "a:10"};
	uint32_t n = 1 + below(5), first = 0;

	puts_(d, "|#");
	for (uint32_t i = 0; i < n; i++) {
		uint32_t k = below((uint32_t)(sizeof(pool) / sizeof(pool[0])));

		if (i == 0)
			first = k;
		else if (pct(20))
			k = first;
		putf(d, "%s%s", i ? "," : "", pool[k]);
	}
}

static void gen_ts(struct buf *d)
{
	static const char *const bad[] = {"", "12x", "-5", "1234567890123", " 1", "+1", "1.5",
					  "999999999999", "000000000000", "0"};

	puts_(d, "T");
	if (pct(70))
		putf(d, "%u", 1600000000 + below(200000000));
	else if (pct(50))
		put_digits(d, 1 + below(13), false);
	else
		puts_(d, PICK(bad));
}

static void gen_other_field(struct buf *d)
{
	static const char *const v[] = {"c:abc123", "c:", "c", "cx", "c:a:b", "x:1", "", "e",
					"@", "s", "Tab", "#a|", "\r"};
	puts_(d, PICK(v));
}

static void gen_field(struct buf *d, unsigned which)
{
	switch (which) {
	case 0: gen_tags(d); break;
	case 1: gen_ts(d); break;
	case 2: gen_rate(d); break;
	default: gen_other_field(d); break;
	}
}

/* Up to four fields in a random order, sometimes one twice. */
static void gen_fields(struct buf *d)
{
	unsigned f[5] = {0, 1, 2, 3, 0}, n = below(5);

	for (unsigned i = 3; i > 0; i--) {
		unsigned j = below(i + 1), x = f[i];

		f[i] = f[j];
		f[j] = x;
	}
	if (n > 0 && pct(5)) {
		f[n] = f[below(n)];
		n++;
	}
	for (unsigned i = 0; i < n; i++) {
		if (f[i] == 3 && pct(60))
			continue; /* unknown fields are rarer than real ones */
		puts_(d, "|");
		gen_field(d, f[i]);
	}
}

static void gen_type(struct buf *d)
{
	static const char *const good[] = {"c", "c", "c", "g", "g", "ms", "ms", "h", "d", "s", "s"};
	static const char *const bad[] = {"", "x", "cc", "m", "msx", "C", "G", "S",
					  "mss", "ms ", " c", "\xc3\xa9", "g\r"};

	puts_(d, pct(88) ? PICK(good) : PICK(bad));
}

/* ---- lines and datagrams ---- */

static void gen_structured(struct buf *d)
{
	gen_name(d);
	if (pct(97))
		puts_(d, ":");
	gen_value(d);
	if (pct(97)) {
		puts_(d, "|");
		gen_type(d);
		gen_fields(d);
	}
	if (pct(3))
		puts_(d, "|");
}

/* A line most likely good: the shapes real clients send, fields in any order. */
static void gen_clean(struct buf *d)
{
	static const char *const types[] = {"c", "g", "ms", "h", "d", "s"};
	static const char *const rates[] = {"1", "0.5", "0.25", "0.1", "0.01"};
	unsigned f[3] = {0, 1, 2}, n = below(4);

	putf(d, "metric.%06u:", below(100000));
	if (pct(70))
		putf(d, "%u", below(100));
	else
		gen_decimal(d, true);
	putf(d, "|%s", PICK(types));
	for (unsigned i = 2; i > 0; i--) {
		unsigned j = below(i + 1), x = f[i];

		f[i] = f[j];
		f[j] = x;
	}
	for (unsigned i = 0; i < n && i < 3; i++) {
		if (f[i] == 0)
			gen_tags_clean(d);
		else if (f[i] == 1)
			putf(d, "|T%u", 1600000000 + below(200000000));
		else
			putf(d, "|@%s", PICK(rates));
	}
}

/* Invalid UTF-8 or a NUL somewhere in the line, or valid multibyte text. */
static void inject(struct buf *d, uint32_t from)
{
	static const char *const bad[] = {"\xff", "\xc0\x80", "\xed\xa0\x80", "\xf5\x80\x80\x80",
					  "\xe2\x82", "\x80", "\xf4\x90\x80\x80", "\xc3",
					  "\xe0\x80\xaf", "\xf0\x8f\xbf\xbf"};
	static const char *const good[] = {"\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80",
					   "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf"};
	uint32_t at = from + below(d->n - from + 1);
	const char *s = pct(50) ? PICK(bad) : PICK(good);
	uint32_t n = (uint32_t)strlen(s);
	bool nul = pct(20);

	if (nul)
		n = 1;
	if (d->n + n > DGRAM_MAX)
		return;
	memmove(d->b + at + n, d->b + at, d->n - at);
	memcpy(d->b + at, nul ? "\0" : s, n);
	d->n += n;
}

static void gen_line(struct buf *d)
{
	static const char *const fixed[] = {"nocolon", "abc|def", "m:1", "", "\r", "a:1|c",
					    ":1|c", "m:1|", "m:1||c", "a|b:1|c", "m:u|s"};
	uint32_t from = d->n, k = below(100);

	if (k < 35)
		gen_clean(d);
	else if (k < 75)
		gen_structured(d);
	else if (k < 82)
		puts_(d, PICK(fixed));
	else if (k < 92) {
		gen_structured(d);
		inject(d, from);
	} else
		put_from(d, ":|#@,.Tc0123456789-e\r ab", below(40));
}

static void gen_datagram(struct buf *d)
{
	static const char *const ends[] = {"\n", "\n", "\n", "\n", "\n", "\n", "\r\n", "\r\n",
					   "\r\r\n", "\n\n"};
	uint32_t lines = pct(10) ? 1 : 1 + below(20);

	d->n = 0;
	for (uint32_t i = 0; i < lines; i++) {
		gen_line(d);
		if (i + 1 < lines || pct(70))
			puts_(d, PICK(ends));
	}
}

/* Byte-level damage: overwrite, insert, delete, duplicate a run, truncate. */
static void mutate(struct buf *d)
{
	static const uint8_t interesting[] = {':', '|', '\n', '\r', ',', '#', '@', 'T', 'c',
					      '0', '-', '.', 'e', 0, 0x80, 0xff, 0xc3, 'g', 's'};
	uint32_t n = 1 + below(4);

	for (uint32_t i = 0; i < n && d->n > 0; i++) {
		uint32_t at = below(d->n), k = below(5);
		uint8_t c = pct(70) ? interesting[below(sizeof(interesting))] : (uint8_t)rnd();

		if (k == 0) {
			d->b[at] = c;
		} else if (k == 1 && d->n < DGRAM_MAX) {
			memmove(d->b + at + 1, d->b + at, d->n - at);
			d->b[at] = c;
			d->n++;
		} else if (k == 2) {
			memmove(d->b + at, d->b + at + 1, d->n - at - 1);
			d->n--;
		} else if (k == 3) {
			uint32_t run = below(d->n - at) + 1;

			if (d->n + run <= DGRAM_MAX) {
				memmove(d->b + at + run, d->b + at, d->n - at);
				d->n += run;
			}
		} else {
			d->n = at;
		}
	}
}

/* ---- running both parsers ---- */

struct side {
	struct tally_evbuf out;
	uint64_t ctr[TALLY_C_MAX];
	int ret;
};

static struct tally_event ev_a[EV_MAX], ev_b[EV_MAX];
static uint64_t seen[TALLY_C_MAX]; /* lines per outcome over a test: proof of coverage */
static uint64_t enospc;

static void dump(const uint8_t *p, uint32_t len)
{
	fprintf(stderr, "datagram (%u bytes): \"", len);
	for (uint32_t i = 0; i < len; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
			fputc(p[i], stderr);
		else
			fprintf(stderr, "\\x%02x", p[i]);
	}
	fprintf(stderr, "\"\n");
}

static void compare(const struct side *a, const struct side *b, const uint8_t *p, uint32_t len)
{
	bool same = a->ret == b->ret && a->out.n == b->out.n &&
		    a->out.arena_used == b->out.arena_used &&
		    memcmp(a->ctr, b->ctr, sizeof(a->ctr)) == 0 &&
		    memcmp(a->out.arena, b->out.arena, a->out.arena_used) == 0;

	for (uint32_t i = 0; same && i < a->out.n; i++) {
		const struct tally_event *x = &a->out.ev[i], *y = &b->out.ev[i];

		same = x->key - a->out.arena == y->key - b->out.arena && x->key_len == y->key_len &&
		       memcmp(x->key, y->key, x->key_len) == 0 &&
		       memcmp(&x->value, &y->value, sizeof(x->value)) == 0 &&
		       x->time_ms == y->time_ms && x->event_id == y->event_id &&
		       x->hash == y->hash && memcmp(&x->dd, &y->dd, sizeof(x->dd)) == 0 &&
		       x->cell == y->cell && x->kind == y->kind && x->statsd == y->statsd;
		if (!same)
			fprintf(stderr, "event %u: key %.*s / %.*s value %a / %a time %llu / %llu\n",
				i, x->key_len, x->key, y->key_len, y->key, x->value, y->value,
				(unsigned long long)x->time_ms, (unsigned long long)y->time_ms);
	}
	if (!same) {
		dump(p, len);
		fprintf(stderr, "ret %d / %d, n %u / %u, arena_used %u / %u\n", a->ret, b->ret,
			a->out.n, b->out.n, a->out.arena_used, b->out.arena_used);
		for (unsigned c = 0; c < TALLY_C_MAX; c++)
			if (a->ctr[c] != b->ctr[c])
				fprintf(stderr, "counter %s: %llu / %llu\n", tally_counter_names[c],
					(unsigned long long)a->ctr[c], (unsigned long long)b->ctr[c]);
	}
	assert_true(same);
}

/*
 * Both sides start from the same state: some events and arena bytes already in
 * the buffer, counters not at zero, and now and then exactly one slot or byte too
 * few for the datagram (-ENOSPC) or exactly enough.
 */
static void setup(struct side *s, struct tally_event *ev, uint32_t len, uint32_t pre,
		  uint32_t room, uint32_t arena_cap, uint8_t *arena, uint64_t seed)
{
	memset(ev, 0xa5, sizeof(struct tally_event) * (pre + TALLY_STATSD_MAX_EVENTS(len) + 1));
	s->out = (struct tally_evbuf){ev, pre, pre + room, arena, pre * 3, arena_cap};
	for (uint32_t i = 0; i < pre; i++) {
		ev[i].key = arena + 3 * i;
		ev[i].key_len = 3;
	}
	memset(arena, 0x5a, arena_cap);
	for (unsigned c = 0; c < TALLY_C_MAX; c++)
		s->ctr[c] = (seed + c * 7) % 5;
}

static void run_case(const uint8_t *src, uint32_t len)
{
	uint8_t *p = malloc(len ? len : 1), *arena_a, *arena_b;
	uint32_t pre = pct(20) ? below(4) : 0, room = TALLY_STATSD_MAX_EVENTS(len);
	uint32_t arena_cap = pre * 3 + len;
	uint64_t seed = rnd();
	struct side a, b;

	assert_non_null(p);
	memcpy(p, src, len);
	if (pct(2))
		room--; /* one event slot short: -ENOSPC */
	else if (pct(50))
		room += below(4);
	if (pct(2) && len > 0)
		arena_cap--; /* one arena byte short: -ENOSPC */
	else if (pct(50))
		arena_cap += below(64);

	arena_a = malloc(arena_cap ? arena_cap : 1);
	arena_b = malloc(arena_cap ? arena_cap : 1);
	assert_non_null(arena_a);
	assert_non_null(arena_b);
	setup(&a, ev_a, len, pre, room, arena_cap, arena_a, seed);
	setup(&b, ev_b, len, pre, room, arena_cap, arena_b, seed);
	a.ret = tally_statsd_parse(p, len, &a.out, a.ctr);
	b.ret = ref_statsd_parse(p, len, &b.out, b.ctr);
	compare(&a, &b, p, len);
	for (unsigned c = 0; c < TALLY_C_MAX; c++)
		seen[c] += b.ctr[c] - (seed + c * 7) % 5;
	enospc += b.ret == -ENOSPC;
	free(arena_a);
	free(arena_b);
	free(p);
}

static struct buf dg;

/* Every StatsD outcome came up often enough for the comparison to mean something. */
static void expect_coverage(uint64_t min)
{
	for (unsigned c = TALLY_C_STATSD_LINES; c <= TALLY_C_STATSD_BAD_UTF8; c++) {
		print_message("%-22s %llu\n", tally_counter_names[c], (unsigned long long)seen[c]);
		assert_true(seen[c] >= min);
	}
	print_message("%-22s %llu\n", "-ENOSPC", (unsigned long long)enospc);
	memset(seen, 0, sizeof(seen));
	enospc = 0;
}

static void test_generated(void **st)
{
	(void)st;
	for (uint32_t i = 0; i < 200000; i++) {
		gen_datagram(&dg);
		run_case(dg.b, dg.n);
	}
	expect_coverage(1000);
}

static void test_mutated(void **st)
{
	(void)st;
	for (uint32_t i = 0; i < 100000; i++) {
		gen_datagram(&dg);
		mutate(&dg);
		run_case(dg.b, dg.n);
	}
	expect_coverage(500);
}

/* Short datagrams of the bytes that matter, every length from 0 up past a block. */
static void test_short(void **st)
{
	static const char alpha[] = ":|#@,.Tc019-e\r\n ags\xc3\xa9";

	(void)st;
	for (uint32_t i = 0; i < 100000; i++) {
		dg.n = 0;
		put_from(&dg, pct(50) ? alpha : "a:1|c\n", below(140));
		run_case(dg.b, dg.n);
	}
}

/* Numbers alone, many per datagram: the fast path against strtod, bit for bit. */
static void test_numbers(void **st)
{
	(void)st;
	for (uint32_t i = 0; i < 20000; i++) {
		dg.n = 0;
		for (uint32_t j = 0; j < 30; j++) {
			puts_(&dg, "m:");
			if (pct(60))
				gen_decimal(&dg, true);
			else
				gen_value(&dg);
			puts_(&dg, pct(50) ? "|d" : "|c|@");
			if (dg.b[dg.n - 1] == '@')
				gen_decimal(&dg, false);
			puts_(&dg, "\n");
		}
		run_case(dg.b, dg.n);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generated), cmocka_unit_test(test_mutated),
		cmocka_unit_test(test_short), cmocka_unit_test(test_numbers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
