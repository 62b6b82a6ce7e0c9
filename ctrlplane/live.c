/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Live config and rules: what `tallyctl config set`, `tallyctl rules reload`
 * and SIGHUP change in a running tallyd, without stopping traffic.
 *
 * Workers read struct tally_params (and through it the rules) inside an epoch
 * section per burst. A change builds a whole new params object here, on the
 * control thread, publishes it with one pointer store, and frees the old one
 * (and old rules) after ck_epoch_synchronize: that waits only until every
 * worker has finished the burst it was in, microseconds, so the control loop
 * blocks no longer than that. Each runtime key has an apply step by its kind
 * (config.h); if a step fails the old value stays, and a SIGHUP that changes
 * several keys re-applies the old values of those already changed (rollback).
 * Every change is logged as "config: KEY: OLD -> NEW", secrets "(hidden)".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ck_pr.h>

#include "live.h"
#include "timeutil.h"

/* Publish next as the workers' params; free the old one after a grace period.
 * The old rules, if next replaces them, go with it. */
static int swap_params(struct tally_daemon *d, const struct tally_params *next,
		       struct tally_rules *old_rules)
{
	struct tally_params *p = malloc(sizeof(*p)), *old = d->sh.params;

	if (p == NULL)
		return -ENOMEM;
	*p = *next;
	ck_pr_fence_store(); /* the contents before the pointer */
	ck_pr_store_ptr(&d->sh.params, p);
	ck_epoch_synchronize(&d->ctl_rec);
	free(old);
	if (old_rules != NULL && old_rules != next->rules)
		tally_rules_free(old_rules);
	return 0;
}

/*
 * The MAC keys of config c. A key that c removes or replaces under its id moves
 * to the retired set and is still accepted for mac_grace_ms (keys retired
 * earlier and still in their grace period stay, and the period restarts), so
 * producers can switch keys under traffic without a loss.
 */
static int build_mac(struct tally_daemon *d, const struct tally_config *c,
		     struct tally_mac_keys *m, char *err, size_t errlen)
{
	const struct tally_mac_keys *cur = &d->sh.params->mac;
	bool retired = false;

	if (tally_config_mac_keys(c->mac_keys, m->present, m->key, err, errlen) != 0)
		return -EINVAL;
	m->require = c->require_mac != 0;
	for (unsigned id = 0; id < 256; id++) {
		bool gone = cur->present[id] &&
			    (!m->present[id] || memcmp(cur->key[id], m->key[id], 16) != 0);

		if (gone && c->mac_grace_ms > 0) {
			memcpy(m->old[id], cur->key[id], 16);
			m->old_present[id] = retired = true;
		}
	}
	if (retired)
		d->mac_grace_until_ms = tally_mono_ms() + c->mac_grace_ms;
	return 0;
}

void tally_live_mac_expire(struct tally_daemon *d)
{
	struct tally_params p;

	if (d->mac_grace_until_ms == 0 || tally_mono_ms() < d->mac_grace_until_ms)
		return;
	p = *d->sh.params;
	memset(p.mac.old_present, 0, sizeof(p.mac.old_present));
	if (swap_params(d, &p, NULL) != 0)
		return; /* out of memory: the next tick tries again */
	d->mac_grace_until_ms = 0;
	fprintf(stderr, "tallyd: mac: grace period over, retired keys are no longer accepted\n");
}

static int apply_params(struct tally_daemon *d, const struct tally_config *c, char *err,
			size_t errlen)
{
	struct tally_params p = *d->sh.params;

	p.lateness_ms = c->lateness_ms;
	p.future_ms = c->future_ms;
	if (build_mac(d, c, &p.mac, err, errlen) != 0)
		return -EINVAL;
	if (swap_params(d, &p, NULL) != 0) {
		snprintf(err, errlen, "out of memory for new parameters");
		return -ENOMEM;
	}
	return 0;
}

static int apply_flush(struct tally_daemon *d, const struct tally_config *c, char *err,
		       size_t errlen)
{
	(void)err, (void)errlen;
	ck_pr_store_64(&d->fl.interval_ms, c->flush_interval_ms);
	return 0;
}

/* Compile c->rules_file (or none) off the workers; the old rules stay on error. */
static int apply_rules(struct tally_daemon *d, const struct tally_config *c, char *err,
		       size_t errlen)
{
	struct tally_params p = *d->sh.params;
	struct tally_rules *rs = NULL, *old = d->rules;
	int r = 0;

	if (c->rules_file[0] != '\0')
		r = tally_rules_load(c->rules_file, d->nworkers, &rs, err, errlen);
	if (r == 0) {
		rs != NULL ? (void)(rs->gen = ++d->rules_gen) : (void)0;
		p.rules = rs;
		r = swap_params(d, &p, old);
		if (r != 0)
			snprintf(err, errlen, "out of memory for new parameters");
	}
	if (r != 0) {
		tally_rules_free(rs);
		d->rules_reload_errors++;
		return r;
	}
	d->rules = rs;
	d->rules_reloads++;
	fprintf(stderr, "tallyd: rules: %s: %u rule(s), generation %llu\n",
		rs ? rs->file : "(none)", rs ? rs->n : 0, (unsigned long long)d->rules_gen);
	return 0;
}

typedef int (*apply_fn)(struct tally_daemon *d, const struct tally_config *c, char *err,
			size_t errlen);
static const apply_fn appliers[] = {
	[TALLY_APPLY_PARAMS] = apply_params,
	[TALLY_APPLY_FLUSH] = apply_flush,
	[TALLY_APPLY_RULES] = apply_rules,
};

int tally_live_rules_init(struct tally_daemon *d, char *err, size_t errlen)
{
	if (d->cfg.rules_file[0] == '\0')
		return 0;
	if (tally_rules_load(d->cfg.rules_file, d->nworkers, &d->rules, err, errlen) != 0)
		return -EINVAL;
	d->rules->gen = ++d->rules_gen;
	d->sh.params->rules = d->rules;
	return 0;
}

int tally_live_rules_reload(struct tally_daemon *d, char *err, size_t errlen)
{
	if (d->cfg.rules_file[0] == '\0') {
		snprintf(err, errlen, "rules_file is not set: give a FILE");
		return -EINVAL;
	}
	return apply_rules(d, &d->cfg, err, errlen);
}

/* Apply key k as next has it; on success d->cfg takes the value and it is logged. */
static int apply_key(struct tally_daemon *d, const struct tally_cfg_key *k,
		     const struct tally_config *next, char *err, size_t errlen)
{
	char was[TALLY_CFG_STR_MAX * 4], now[TALLY_CFG_STR_MAX * 4];
	int r = appliers[k->apply](d, next, err, errlen);

	if (r != 0)
		return r;
	tally_config_get(&d->cfg, k->name, was, sizeof(was));
	memcpy((char *)&d->cfg + k->offset, (const char *)next + k->offset, k->size);
	tally_config_get(&d->cfg, k->name, now, sizeof(now));
	fprintf(stderr, "config: %s: %s -> %s\n", k->name, was, now);
	d->config_changes++;
	return 0;
}

int tally_live_set(struct tally_daemon *d, const char *name, const char *value, char *err,
		   size_t errlen)
{
	const struct tally_cfg_key *k = tally_config_find(name);
	struct tally_config next = d->cfg;
	int r;

	if (k != NULL && !k->runtime) {
		snprintf(err, errlen, "%s needs a restart (it is not a runtime key)", name);
		return -EPERM;
	}
	r = tally_config_set(&next, name, value, err, errlen);
	if (r == 0)
		r = apply_key(d, k, &next, err, errlen);
	return r;
}

static bool same(const struct tally_cfg_key *k, const struct tally_config *a,
		 const struct tally_config *b)
{
	return memcmp((const char *)a + k->offset, (const char *)b + k->offset, k->size) == 0;
}

/* A failed SIGHUP: put back the keys already changed, last first. */
static void rollback(struct tally_daemon *d, const struct tally_config *old, size_t upto)
{
	char err[512];

	for (size_t i = upto; i-- > 0;) {
		const struct tally_cfg_key *k = &tally_cfg_keys[i];

		if (k->runtime && !same(k, old, &d->cfg) && apply_key(d, k, old, err, sizeof(err)))
			fprintf(stderr, "config: %s: rollback failed: %s\n", k->name, err);
	}
}

int tally_live_reload_file(struct tally_daemon *d)
{
	struct tally_config next, old = d->cfg;
	char err[512];
	int eal;

	if (tally_config_from_args(&next, d->nargs, d->args, &eal, err, sizeof(err)) != 0 ||
	    tally_config_validate(&next, err, sizeof(err)) != 0) {
		fprintf(stderr, "config: SIGHUP: not applied: %s\n", err);
		return -EINVAL;
	}
	for (size_t i = 0; i < tally_cfg_nkeys; i++) {
		const struct tally_cfg_key *k = &tally_cfg_keys[i];

		if (same(k, &next, &d->cfg))
			continue;
		if (!k->runtime) {
			fprintf(stderr, "config: %s changed in the file but needs a restart: not "
				"applied\n", k->name);
			continue;
		}
		if (apply_key(d, k, &next, err, sizeof(err)) != 0) {
			fprintf(stderr, "config: SIGHUP: %s: %s; rolling back\n", k->name, err);
			rollback(d, &old, i);
			return -EINVAL;
		}
	}
	/* The same rules_file may hold new rules: read it again too. */
	if (same(tally_config_find("rules_file"), &old, &d->cfg) && d->cfg.rules_file[0] != '\0' &&
	    tally_live_rules_reload(d, err, sizeof(err)) != 0)
		fprintf(stderr, "config: SIGHUP: rules not reloaded: %s\n", err);
	fprintf(stderr, "config: SIGHUP: configuration re-read\n");
	return 0;
}
