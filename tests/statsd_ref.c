/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Test-only: the StatsD parser exactly as it was at commit 4c3c939 (before the
 * fast parser), the behavioural reference for test_statsd_diff.c. Only the entry
 * point is renamed (ref_statsd_parse); nothing else may change here, or the
 * differential test stops proving anything. The one later change: sets and
 * relative gauges became events (issue 17), marked "sets and relative gauges"
 * below, written as plainly as the rest: a set's member is any non-empty
 * value text (kept as its XXH3 hash, the row's v is 1); a gauge value with a
 * leading sign is a change, the number after the sign (bad: its own reason).
 *
 * StatsD / DogStatsD line parser. Each line is judged alone: a bad line adds one
 * to its reason's counter and the next line is read; a good line becomes one
 * event whose key is the canonical <name>|<type>[|#tags] (tags sorted bytewise
 * as whole strings, exact repeats removed), written into the evbuf's arena.
 *
 * Check order per line: UTF-8 and NUL; name (non-empty, before the first ':',
 * no '|'); type (s: set; otherwise c g ms h d); value; then the fields after the
 * type in any order, each at most once: @rate, #tags, T<unix seconds>,
 * c:<container> (ignored); relative gauges last. Empty tags between commas are
 * ignored. At most TALLY_STATSD_MAX_TAGS tags per line.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "parse_statsd.h"
#include "statsd_ref.h"
#include "parse_tly1.h"
#include "wire.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#define TALLY_STATSD_MAX_TAGS 64
#define NUM_MAX 400 /* longest number text accepted (DBL_MAX has 309 digits) */

struct span {
	const uint8_t *p;
	uint32_t n;
};

struct line {
	struct span name, type, value, tags[TALLY_STATSD_MAX_TAGS];
	unsigned ntags;
	double rate;
	uint64_t time_ms;
	bool has_rate, has_tags, has_ts, has_container;
};

static bool span_is(struct span s, const char *lit)
{
	return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

/* [-]digits[.digits][e[+-]digits], the whole span; sign only if allowed. */
static bool number_grammar(struct span s, bool sign)
{
	uint32_t i = 0, d;

	if (sign && i < s.n && s.p[i] == '-')
		i++;
	for (d = i; i < s.n && s.p[i] >= '0' && s.p[i] <= '9'; i++)
		;
	if (i == d)
		return false;
	if (i < s.n && s.p[i] == '.') {
		for (d = ++i; i < s.n && s.p[i] >= '0' && s.p[i] <= '9'; i++)
			;
		if (i == d)
			return false;
	}
	if (i < s.n && (s.p[i] == 'e' || s.p[i] == 'E')) {
		if (++i < s.n && (s.p[i] == '+' || s.p[i] == '-'))
			i++;
		for (d = i; i < s.n && s.p[i] >= '0' && s.p[i] <= '9'; i++)
			;
		if (i == d)
			return false;
	}
	return i == s.n;
}

static bool to_double(struct span s, bool sign, double *out)
{
	char buf[NUM_MAX + 1];

	if (s.n == 0 || s.n > NUM_MAX || !number_grammar(s, sign))
		return false;
	memcpy(buf, s.p, s.n);
	buf[s.n] = '\0';
	*out = strtod(buf, NULL);
	return isfinite(*out);
}

static int parse_tags(struct span f, struct line *l)
{
	uint32_t i = 0;

	while (i <= f.n) {
		uint32_t j = i;

		while (j < f.n && f.p[j] != ',')
			j++;
		if (j > i) {
			if (l->ntags == TALLY_STATSD_MAX_TAGS)
				return TALLY_C_STATSD_BAD_FIELD;
			l->tags[l->ntags++] = (struct span){f.p + i, j - i};
		}
		i = j + 1;
	}
	return TALLY_OK;
}

static int parse_ts(struct span f, struct line *l)
{
	uint64_t s = 0;

	if (f.n == 0 || f.n > 12)
		return TALLY_C_STATSD_BAD_TS;
	for (uint32_t z = 0; f.p[z] == '0'; z++)
		if (z + 1 == f.n)
			return TALLY_C_STATSD_BAD_TS; /* |T0 is no time: 0 reads as "arrival" */
	for (uint32_t i = 0; i < f.n; i++) {
		if (f.p[i] < '0' || f.p[i] > '9')
			return TALLY_C_STATSD_BAD_TS;
		s = s * 10 + (f.p[i] - '0');
	}
	l->time_ms = s * 1000;
	return TALLY_OK;
}

/* One |field after the type. */
static int parse_field(struct span f, struct line *l)
{
	struct span rest = {f.p + 1, f.n ? f.n - 1 : 0};

	if (f.n == 0)
		return TALLY_C_STATSD_BAD_FIELD;
	switch (f.p[0]) {
	case '@':
		if (l->has_rate)
			return TALLY_C_STATSD_BAD_FIELD;
		l->has_rate = true;
		return to_double(rest, false, &l->rate) && l->rate > 0 && l->rate <= 1
			       ? TALLY_OK : TALLY_C_STATSD_BAD_RATE;
	case '#':
		if (l->has_tags)
			return TALLY_C_STATSD_BAD_FIELD;
		l->has_tags = true;
		return parse_tags(rest, l);
	case 'T':
		if (l->has_ts)
			return TALLY_C_STATSD_BAD_FIELD;
		l->has_ts = true;
		return parse_ts(rest, l);
	case 'c':
		if (l->has_container || f.n < 2 || f.p[1] != ':')
			return TALLY_C_STATSD_BAD_FIELD;
		l->has_container = true;
		return TALLY_OK;
	}
	return TALLY_C_STATSD_BAD_FIELD;
}

/* Split at '|' starting at *i; returns the span before it. */
static struct span next_part(const uint8_t *p, uint32_t n, uint32_t *i)
{
	uint32_t j = *i;
	struct span s;

	while (j < n && p[j] != '|')
		j++;
	s = (struct span){p + *i, j - *i};
	*i = j + 1;
	return s;
}

static int parse_type(struct span t)
{
	if (span_is(t, "s"))
		return TALLY_OK; /* sets and relative gauges */
	if (span_is(t, "c") || span_is(t, "g") || span_is(t, "ms") || span_is(t, "h") ||
	    span_is(t, "d"))
		return TALLY_OK;
	return TALLY_C_STATSD_BAD_TYPE;
}

static int parse_line(const uint8_t *p, uint32_t n, struct line *l, double *v)
{
	const uint8_t *colon = memchr(p, ':', n);
	uint32_t i;
	int r;

	if (!tally_utf8_valid(p, n))
		return TALLY_C_STATSD_BAD_UTF8;
	if (colon == NULL || colon == p || memchr(p, '|', (size_t)(colon - p)) != NULL)
		return TALLY_C_STATSD_BAD_NAME;
	l->name = (struct span){p, (uint32_t)(colon - p)};
	i = l->name.n + 1;
	l->value = next_part(p, n, &i);
	if (i > n)
		return TALLY_C_STATSD_BAD_TYPE; /* no '|' after the value */
	l->type = next_part(p, n, &i);
	r = parse_type(l->type);
	if (r != TALLY_OK)
		return r;
	bool gauge = span_is(l->type, "g");
	/* sets and relative gauges */
	if (span_is(l->type, "s")) {
		if (l->value.n == 0)
			return TALLY_C_STATSD_BAD_SET;
		*v = 1;
	} else if (gauge && l->value.n && (l->value.p[0] == '+' || l->value.p[0] == '-')) {
		struct span d = {l->value.p + 1, l->value.n - 1};

		if (!to_double(d, false, v))
			return TALLY_C_STATSD_BAD_REL_GAUGE;
		*v = l->value.p[0] == '-' ? -*v : *v;
	} else if (!to_double(l->value, true, v))
		return TALLY_C_STATSD_BAD_VALUE;
	while (i <= n) {
		int fr = parse_field(next_part(p, n, &i), l);

		if (fr != TALLY_OK)
			return fr;
	}
	return r;
}

static int span_cmp(struct span a, struct span b)
{
	int c = memcmp(a.p, b.p, a.n < b.n ? a.n : b.n);

	return c != 0 ? c : (a.n > b.n) - (a.n < b.n);
}

/* Insertion sort: lines carry a handful of tags. Then drop exact repeats. */
static unsigned sort_unique(struct span *t, unsigned n)
{
	unsigned k = 0;

	for (unsigned i = 1; i < n; i++) {
		struct span x = t[i];
		unsigned j = i;

		for (; j > 0 && span_cmp(t[j - 1], x) > 0; j--)
			t[j] = t[j - 1];
		t[j] = x;
	}
	for (unsigned i = 0; i < n; i++)
		if (k == 0 || span_cmp(t[k - 1], t[i]) != 0)
			t[k++] = t[i];
	return k;
}

static void put(uint8_t *dst, uint32_t *len, const void *src, uint32_t n)
{
	memcpy(dst + *len, src, n);
	*len += n;
}

/* Write the canonical key at dst (room for the line's length is guaranteed). */
static int canonical_key(struct line *l, uint8_t *dst, uint32_t *len)
{
	unsigned nt = sort_unique(l->tags, l->ntags);

	*len = 0;
	put(dst, len, l->name.p, l->name.n);
	put(dst, len, "|", 1);
	put(dst, len, l->type.p, l->type.n);
	for (unsigned i = 0; i < nt; i++) {
		put(dst, len, i == 0 ? "|#" : ",", i == 0 ? 2 : 1);
		put(dst, len, l->tags[i].p, l->tags[i].n);
	}
	return *len > TALLY_KEY_MAX ? TALLY_C_STATSD_KEY_TOO_LONG : TALLY_OK;
}

/* One line: append its event or count its reason. */
static void one_line(const uint8_t *p, uint32_t n, struct tally_evbuf *out, uint64_t *counters)
{
	struct line l;
	struct tally_event *e;
	uint8_t *key = out->arena + out->arena_used;
	uint32_t klen;
	double v = 0;
	int r;

	l.ntags = 0;
	l.rate = 1;
	l.time_ms = 0;
	l.has_rate = l.has_tags = l.has_ts = l.has_container = false;
	r = parse_line(p, n, &l, &v);
	if (r == TALLY_OK && span_is(l.type, "c") && !isfinite(v / l.rate))
		r = TALLY_C_STATSD_BAD_VALUE; /* value / rate must be finite too */
	if (r == TALLY_OK)
		r = canonical_key(&l, key, &klen);
	if (r != TALLY_OK) {
		counters[r]++;
		return;
	}
	e = &out->ev[out->n++];
	e->key = key;
	e->key_len = (uint8_t)klen;
	e->event_id = 0;
	e->time_ms = l.time_ms;
	e->value = span_is(l.type, "c") ? v / l.rate : v;
	/* sets and relative gauges: the row kind */
	e->statsd = 1;
	if (span_is(l.type, "s")) {
		e->kind = TALLY_EV_SET;
		e->member = XXH3_64bits(l.value.p, l.value.n);
	} else if (span_is(l.type, "g")) {
		e->kind = l.value.p[0] == '+' || l.value.p[0] == '-' ? TALLY_EV_GAUGE_REL
								     : TALLY_EV_GAUGE;
	} else {
		e->kind = span_is(l.type, "c") ? TALLY_EV_PLAIN : TALLY_EV_SKETCH;
	}
	out->arena_used += klen;
	counters[TALLY_C_STATSD_LINES]++;
}

int ref_statsd_parse(const uint8_t *p, uint32_t len, struct tally_evbuf *out,
		     uint64_t *counters)
{
	uint32_t before = out->n, i = 0;

	if (out->cap - out->n < TALLY_STATSD_MAX_EVENTS(len) ||
	    out->arena_cap - out->arena_used < len)
		return -ENOSPC;
	while (i < len) {
		const uint8_t *nl = memchr(p + i, '\n', len - i);
		uint32_t end = nl != NULL ? (uint32_t)(nl - p) : len, n = end - i;

		if (n > 0 && p[i + n - 1] == '\r')
			n--;
		if (n > 0)
			one_line(p + i, n, out, counters);
		i = end + 1;
	}
	return (int)(out->n - before);
}
