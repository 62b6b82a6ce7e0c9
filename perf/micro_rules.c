/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-micro's rules cases: what the rules stage costs per event with 10,
 * 1,000 and 10,000 patterns, with the per-worker decision cache (a Hyperscan
 * scan once per (key, window)) and without it (a scan per event). 4,096 keys
 * in one window, half of them meeting a rule (keep or drop), the other half
 * none; the same events go through each case, and every case checks that the
 * rules dropped exactly the keys they should.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x86intrin.h>

#include "counters.h"
#include "micro.h"
#include "rules.h"
#include "window.h"

#define RULE_KEYS 4096

/* Rule i: keys svc.<i>.<word>; even rules keep, odd rules drop. */
static char *rules_text(unsigned n)
{
	char *t = malloc((size_t)n * 48 + 1), *p = t;

	for (unsigned i = 0; i < n; i++)
		p += sprintf(p, "%s /^svc\\.%u\\.[a-z]+$/\n", i % 2 ? "drop" : "keep", i);
	*p = '\0';
	return t;
}

/* Key k names rule k % (2n) when that is below n: half meet a rule. */
static void make_events(struct tally_event *ev, char (*keys)[32], unsigned n)
{
	for (unsigned k = 0; k < RULE_KEYS; k++) {
		unsigned r = k % (2 * n);

		snprintf(keys[k], 32, r < n ? "svc.%u.count" : "other.%u.count", r);
		ev[k] = (struct tally_event){.key = (const uint8_t *)keys[k],
					     .key_len = (uint8_t)strlen(keys[k])};
		ev[k].win_start = 0;
		ev[k].hash = tally_row_hash(tally_key_hash(ev[k].key, ev[k].key_len), 0);
	}
}

static void bench_case(unsigned npat, bool cache, uint64_t ops)
{
	static struct tally_event ev[RULE_KEYS];
	static char keys[RULE_KEYS][32];
	struct tally_rules *rs;
	struct tally_rcache rc;
	uint64_t c[TALLY_C_MAX] = {0}, dropped = 0, want = 0, t0, t;
	char err[512], name[64], *text = rules_text(npat);

	if (tally_rules_compile(text, "bench", 1, &rs, err, sizeof(err)) != 0)
		micro_fail(err);
	free(text);
	rs->gen = 1;
	if (tally_rcache_init(&rc, TALLY_RCACHE_ENTRIES, TALLY_RCACHE_ARENA, -1) != 0)
		micro_fail("rule cache: out of memory");
	rc.off = !cache;
	make_events(ev, keys, npat);
	for (unsigned k = 0; k < RULE_KEYS; k++) {
		unsigned r = k % (2 * npat);

		want += r < npat && r % 2;
	}
	tally_rcache_begin(&rc, rs);
	t0 = __rdtsc();
	for (uint64_t i = 0; i < ops; i++) {
		struct tally_event e = ev[i % RULE_KEYS];

		dropped += !tally_rules_event(&rc, rs, 0, c, &e);
	}
	t = __rdtsc() - t0;
	if (dropped != want * (ops / RULE_KEYS))
		micro_fail("rules: dropped the wrong events");
	snprintf(name, sizeof(name), "%u patterns, %s", npat, cache ? "decision cache" : "no cache");
	micro_report("rules", name, ops, t, 0);
	tally_rcache_fini(&rc);
	tally_rules_free(rs);
}

void micro_rules(uint64_t ops)
{
	const unsigned npat[] = {10, 1000, 10000};

	for (unsigned i = 0; i < 3; i++) {
		bench_case(npat[i], true, ops / RULE_KEYS * RULE_KEYS);
		bench_case(npat[i], false, ops / 8 / RULE_KEYS * RULE_KEYS);
	}
}
