/* SPDX-License-Identifier: BSD-3-Clause */
/* The sink registry: sinks register from constructors; tallyd opens one by name. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "sink.h"

static struct tally_sink_type *types;

void tally_sink_register(struct tally_sink_type *t)
{
	t->next = types;
	types = t;
}

const struct tally_sink_type *tally_sink_find(const char *name)
{
	for (const struct tally_sink_type *t = types; t != NULL; t = t->next)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

void tally_sink_names(char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (const struct tally_sink_type *t = types; t != NULL && n < len; t = t->next)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", t->name);
}

struct tally_sink *tally_sink_open(const struct tally_config *c, char *err, size_t errlen)
{
	const struct tally_sink_type *t = tally_sink_find(c->sink);
	struct tally_sink *s;
	char names[128];

	if (t == NULL) {
		tally_sink_names(names, sizeof(names));
		snprintf(err, errlen, "sink: \"%s\" is not a sink (this build has: %s)", c->sink,
			 names);
		return NULL;
	}
	s = t->open(c, err, errlen);
	if (s != NULL)
		s->name = t->name;
	return s;
}

/* One item: digits with at most one point and four decimals. */
static int pctl_item(const char *s, size_t n, struct tally_pctl *out)
{
	char buf[16], *end, *c = out->col[out->n];
	double v;

	if (n == 0 || n >= sizeof(buf) || strspn(s, "0123456789.") < n)
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	v = strtod(buf, &end);
	if (*end != '\0' || !(v > 0 && v <= 100) || (strchr(buf, '.') && strlen(strchr(buf, '.')) > 5))
		return -EINVAL;
	*c++ = 'p';
	for (size_t i = 0; i < n; i++)
		if (buf[i] != '.')
			*c++ = buf[i];
	*c = '\0';
	for (unsigned i = 0; i < out->n; i++)
		if (strcmp(out->col[i], out->col[out->n]) == 0)
			return -EINVAL;
	out->q[out->n++] = v / 100;
	return 0;
}

int tally_pctl_parse(const char *list, struct tally_pctl *out, char *err, size_t errlen)
{
	const char *s = list;

	out->n = 0;
	for (;;) {
		size_t n = strcspn(s, ",");

		while (n > 0 && *s == ' ')
			s++, n--;
		if (out->n == TALLY_PCTL_MAX || pctl_item(s, n, out) != 0) {
			snprintf(err, errlen, "statsd_percentiles: \"%.*s\" in \"%s\" is not a "
				 "percentile (0 < p <= 100, at most 4 decimals, distinct, up to %d)",
				 (int)n, s, list, TALLY_PCTL_MAX);
			return -EINVAL;
		}
		if (s[n] == '\0')
			return 0;
		s += n + 1;
	}
}
