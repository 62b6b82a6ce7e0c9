/* SPDX-License-Identifier: BSD-3-Clause */
/* The sink registry: sinks register from constructors; tallyd opens one by name. */
#include <stdio.h>
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
