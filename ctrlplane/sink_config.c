/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The sink writer's lanes from the config: one lane for the configured sink,
 * or one per PostgreSQL shard of pg_shards ("NAME CONNINFO | ..."). A lane's
 * sink is (re)opened lazily by the writer, so a sink that is down at start
 * (or a SQLite directory that is missing) is an error in `tallyctl sink` and
 * batches in the spool, not a daemon that refuses to run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "sink_config.h"

struct pg_shard {
	char conninfo[TALLY_CFG_STR_MAX * 4];
	const struct tally_config *cfg;
};

static struct tally_sink *open_configured(void *arg, char *err, size_t errlen)
{
	return tally_sink_open(arg, err, errlen);
}

static struct tally_sink *open_shard(void *arg, char *err, size_t errlen)
{
	struct pg_shard *sh = arg;
	struct tally_sink *s = tally_sink_pg_open(sh->conninfo, (unsigned)sh->cfg->sink_timeout_ms,
						  err, errlen);

	if (s != NULL && tally_sink_pg_set_method(s, sh->cfg->pg_method) != 0) {
		snprintf(err, errlen, "pg_method: \"%s\" is not copy or pipeline", sh->cfg->pg_method);
		s->ops->close(s);
		return NULL;
	}
	if (s != NULL &&
	    tally_sink_pg_set_percentiles(s, sh->cfg->statsd_percentiles, err, errlen) != 0) {
		s->ops->close(s);
		return NULL;
	}
	if (s != NULL)
		s->name = "postgres";
	return s;
}

/* One "NAME CONNINFO" entry (validated by the config table) into a lane. */
static int add_shard(struct tally_writer *w, const struct tally_config *c, const char *p,
		     size_t n, char *err, size_t errlen)
{
	struct pg_shard *sh = calloc(1, sizeof(*sh));
	char name[64], lane[80];
	size_t k;

	if (sh == NULL)
		return -ENOMEM;
	while (n > 0 && (*p == ' ' || *p == '\t'))
		p++, n--;
	k = strcspn(p, " \t");
	snprintf(name, sizeof(name), "%.*s", (int)(k < 63 ? k : 63), p);
	snprintf(sh->conninfo, sizeof(sh->conninfo), "%.*s", (int)(n - k), p + k);
	sh->cfg = c;
	snprintf(lane, sizeof(lane), "postgres-%s", name);
	if (tally_writer_add_lane(w, lane, open_shard, sh, err, errlen) != 0) {
		free(sh);
		return -EINVAL;
	}
	w->lanes[w->nlanes - 1].own_arg = true;
	return 0;
}

int tally_writer_from_config(struct tally_writer *w, const struct tally_config *c,
			     char *spool_dir, size_t spool_len, char *err, size_t errlen)
{
	struct tally_writer_opts o = {
		.spool_dir = spool_dir, .spool_max_bytes = c->spool_max_bytes,
		.spool_max_age_ms = c->spool_max_age_ms,
		.breaker_failures = (unsigned)c->breaker_failures,
		.retry_base_ms = c->sink_retry_base_ms, .retry_max_ms = c->sink_retry_max_ms,
		.breaker_open_ms = c->breaker_open_ms,
	};
	int r = 0;

	snprintf(spool_dir, spool_len, "%s", c->spool_dir);
	tally_writer_init(w, &o);
	if (c->pg_shards[0] == '\0')
		return tally_writer_add_lane(w, c->sink, open_configured, (void *)c, err, errlen);
	for (const char *p = c->pg_shards; r == 0 && *p != '\0';) {
		size_t n = strcspn(p, "|");

		r = add_shard(w, c, p, n, err, errlen);
		p += n + (p[n] == '|');
	}
	return r;
}
