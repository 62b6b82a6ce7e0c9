/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-send's line parser (line.h). CSV fields are split on commas; a key may
 * be double-quoted ("a,b" and "" for a quote inside), numbers are plain
 * decimal with nothing around them (an empty time or id field means "not
 * given"). JSON lines go through jansson, strictly: integers only, no unknown
 * or repeated fields, so a typo is a reported bad line rather than a default.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "line.h"
#include "tly1_enc.h"

static const char *const reason_str[] = {
#define TALLY_LINE_STR(n, s) s,
	TALLY_LINE_REASONS(TALLY_LINE_STR)
#undef TALLY_LINE_STR
};

static const char *const reason_name[] = {
#define TALLY_LINE_NAME(n, s) #n,
	TALLY_LINE_REASONS(TALLY_LINE_NAME)
#undef TALLY_LINE_NAME
};

const char *tally_line_reason_str(enum tally_line_reason r)
{
	return r < TALLY_LINE_NREASONS ? reason_str[r] : "?";
}

const char *tally_line_reason_name(enum tally_line_reason r)
{
	return r < TALLY_LINE_NREASONS ? reason_name[r] : "?";
}

/* A decimal integer filling s[0..n) exactly; neg allows a leading '-'. */
static bool parse_int(const char *s, size_t n, bool neg, int64_t *si, uint64_t *ui)
{
	char buf[32], *end;

	if (n == 0 || n >= sizeof(buf) || s[0] == '+' || (s[0] == '-' && !neg))
		return false;
	for (size_t i = (s[0] == '-'); i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	if (n == (size_t)(s[0] == '-'))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	if (neg)
		*si = strtoll(buf, &end, 10);
	else
		*ui = strtoull(buf, &end, 10);
	return errno == 0 && *end == '\0';
}

static enum tally_line_reason set_key(struct tally_line_ev *ev, const char *k, size_t n)
{
	if (!tally_cl_key_valid((const uint8_t *)k, n))
		return TALLY_LINE_KEY;
	memcpy(ev->key, k, n);
	ev->key[n] = '\0';
	ev->key_len = n;
	return TALLY_LINE_OK;
}

/* A quoted key: s[0] is '"'; on success *used is the bytes through the closing quote. */
static enum tally_line_reason quoted_key(const char *s, size_t len, struct tally_line_ev *ev,
					 size_t *used)
{
	char k[TALLY_KEY_MAX + 1];
	size_t n = 0;

	for (size_t i = 1; i < len; i++) {
		if (s[i] == '"' && i + 1 < len && s[i + 1] == '"') {
			i++;
		} else if (s[i] == '"') {
			*used = i + 1;
			return set_key(ev, k, n);
		}
		if (n == sizeof(k) - 1)
			return TALLY_LINE_KEY;
		k[n++] = s[i];
	}
	return TALLY_LINE_QUOTE;
}

static enum tally_line_reason csv_number(int idx, const char *f, size_t n, struct tally_line_ev *ev)
{
	static const enum tally_line_reason why[] = {TALLY_LINE_VALUE, TALLY_LINE_TIME, TALLY_LINE_ID};
	int64_t si = 0;

	if (idx > 0 && n == 0)
		return TALLY_LINE_OK; /* an empty time or id: not given */
	bool ok = idx == 0 ? parse_int(f, n, true, &ev->value, NULL)
			   : parse_int(f, n, false, &si, idx == 1 ? &ev->time_ms : &ev->id);
	return ok ? TALLY_LINE_OK : why[idx];
}

static enum tally_line_reason parse_csv(const char *s, size_t len, struct tally_line_ev *ev)
{
	size_t pos = 0;
	enum tally_line_reason r;

	if (s[0] == '"') {
		r = quoted_key(s, len, ev, &pos);
		if (r != TALLY_LINE_OK)
			return r;
		if (pos == len || s[pos] != ',')
			return pos == len ? TALLY_LINE_FIELDS : TALLY_LINE_QUOTE;
	} else {
		const char *c = memchr(s, ',', len);

		if (c == NULL)
			return TALLY_LINE_FIELDS;
		pos = (size_t)(c - s);
		if (memchr(s, '"', pos) != NULL)
			return TALLY_LINE_QUOTE;
		r = set_key(ev, s, pos);
		if (r != TALLY_LINE_OK)
			return r;
	}
	for (int idx = 0; pos < len; idx++) { /* s[pos] is the comma before field idx */
		const char *f = s + pos + 1, *c;
		size_t n;

		if (idx == 3)
			return TALLY_LINE_FIELDS;
		c = memchr(f, ',', len - pos - 1);
		n = c != NULL ? (size_t)(c - f) : len - pos - 1;
		r = csv_number(idx, f, n, ev);
		if (r != TALLY_LINE_OK)
			return r;
		pos += n + 1;
	}
	return TALLY_LINE_OK;
}

/* An optional non-negative JSON integer field. */
static bool json_u64(json_t *o, const char *name, uint64_t *out)
{
	json_t *v = json_object_get(o, name);

	if (v == NULL || json_is_null(v))
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

static enum tally_line_reason json_fields(json_t *o, struct tally_line_ev *ev)
{
	json_t *k = json_object_get(o, "key"), *v = json_object_get(o, "value");
	const char *name;
	json_t *val;

	json_object_foreach(o, name, val) {
		if (strcmp(name, "key") && strcmp(name, "value") && strcmp(name, "time") &&
		    strcmp(name, "id"))
			return TALLY_LINE_JSON_FIELD;
	}
	if (!json_is_string(k) || !json_is_integer(v))
		return TALLY_LINE_JSON_FIELD;
	ev->value = json_integer_value(v);
	if (!json_u64(o, "time", &ev->time_ms))
		return TALLY_LINE_TIME;
	if (!json_u64(o, "id", &ev->id))
		return TALLY_LINE_ID;
	return set_key(ev, json_string_value(k), json_string_length(k));
}

static enum tally_line_reason parse_json(const char *s, size_t len, struct tally_line_ev *ev)
{
	json_error_t err;
	json_t *o = json_loadb(s, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
	enum tally_line_reason r;

	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		return TALLY_LINE_JSON;
	}
	r = json_fields(o, ev);
	json_decref(o);
	return r;
}

enum tally_line_reason tally_line_parse(const char *line, size_t len, enum tally_line_fmt fmt,
					struct tally_line_ev *ev)
{
	size_t i = 0;

	memset(ev, 0, sizeof(*ev));
	if (len > 0 && line[len - 1] == '\r')
		len--;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len)
		return TALLY_LINE_EMPTY;
	if (fmt == TALLY_FMT_JSON || (fmt == TALLY_FMT_AUTO && line[i] == '{'))
		return parse_json(line, len, ev);
	return parse_csv(line, len, ev);
}
