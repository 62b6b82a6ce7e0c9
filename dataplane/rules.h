/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Rules on keys: a file of `ACTION /PATTERN/ [ARG]` lines (drop, keep, rename,
 * sample) compiled into one Hyperscan database off the workers, and the
 * per-worker decision cache that makes a key cost one Hyperscan scan per
 * (key, window) instead of one per event.
 *
 * What a pattern sees: the TLY1 key, or the name of a StatsD canonical key (the
 * part before the first '|'; a rename replaces that part and keeps |type|#tags).
 * When several rules match, the first in file order wins; a key no rule matches
 * is kept. Hyperscan finds which rules match (it has no capture groups); for a
 * rename whose template uses $0..$9, PCRE2 then matches that one rule's pattern
 * to extract the groups, on a cache miss only.
 *
 * sample N keeps an event with probability 1/N (a hash of its event_id, so a
 * resent event gets the same answer; a per-worker generator when the id is 0)
 * and multiplies its value by N: the expected stored sum is the true sum. Count
 * stays exact for what is stored: the events kept, about 1/N of those sent (so
 * count x N estimates them); min, max and last are of the scaled values.
 *
 * The rules object is immutable once built and is reached through struct
 * tally_params: reloads build a new one and swap it under ck_epoch. Its
 * per-rule counters are per worker (single writer each), summed when read.
 */
#ifndef TALLY_RULES_H
#define TALLY_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hs/hs.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "event.h"
#include "wire.h"

enum tally_rule_action { TALLY_RULE_DROP, TALLY_RULE_KEEP, TALLY_RULE_RENAME, TALLY_RULE_SAMPLE };

struct tally_rule {
	enum tally_rule_action action;
	unsigned line;
	char *pattern; /* between the slashes */
	char *arg;     /* rename template, sample N as text; NULL for drop and keep */
	uint32_t sample_n;
	pcre2_code *re; /* rename with $N in its template; else NULL */
};

/* Events per rule, one block per worker. */
struct tally_rule_ctr {
	uint64_t matched, dropped, renamed, sampled_out;
};

struct tally_rules {
	uint64_t gen; /* set by the owner; the decision cache compares it */
	unsigned n, nworkers;
	struct tally_rule *rule;
	hs_database_t *db;       /* NULL when there are no rules */
	hs_scratch_t **scratch;  /* nworkers + 1: the last is the control thread's */
	struct tally_rule_ctr *ctr; /* [worker * stride + rule] */
	size_t stride;
	char file[256];
};

/* Parse and compile rules text; `file` names it in errors ("FILE:LINE: ...",
 * Hyperscan's and PCRE2's own messages passed through). 0 or -EINVAL/-ENOMEM. */
int tally_rules_compile(const char *text, const char *file, unsigned nworkers,
			struct tally_rules **out, char *err, size_t errlen);
/* The same from a file. */
int tally_rules_load(const char *path, unsigned nworkers, struct tally_rules **out, char *err,
		     size_t errlen);
void tally_rules_free(struct tally_rules *rs);
const char *tally_rule_action_name(enum tally_rule_action a);
/* Counters of rule i summed over workers. */
struct tally_rule_ctr tally_rules_ctr_sum(const struct tally_rules *rs, unsigned i);

/* The decision for one key. */
struct tally_decision {
	int rule; /* -1: no rule matched: kept */
	enum tally_rule_action action;
	uint8_t key_len; /* rename: the new key, in out; 0 = the result was not a key */
};

/* Decide for key (statsd: a canonical key whose name is matched). A rename
 * writes the new key to out. md holds PCRE2's groups (10 pairs at least).
 * 0, or a negative errno if Hyperscan failed. */
int tally_rules_decide(const struct tally_rules *rs, hs_scratch_t *s, pcre2_match_data *md,
		       const uint8_t *key, uint32_t len, bool statsd,
		       uint8_t out[TALLY_KEY_MAX], struct tally_decision *d);

/* Keep one event in n: x is the event_id, or a random draw when it is 0. */
static inline bool tally_rules_sample_keep(uint64_t x, uint32_t n)
{
	x += 0x9e3779b97f4a7c15ULL; /* splitmix64: consecutive ids spread evenly */
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x % n == 0;
}

/*
 * The decision cache: one per worker, a direct-mapped table from the (key,
 * window) row hash the prepare stage computes to the decision, and for renames
 * the new key (in the cache's arena) and its row hash. An entry is valid for
 * its epoch, which moves on when the rules generation changes or the arena is
 * reset: so a key is matched once per window and again after every reload.
 * Everything is allocated at start: no malloc on the worker.
 */
struct tally_rcache_entry {
	uint64_t hash;     /* row hash of the original key */
	uint64_t new_hash; /* rename: row hash of the new key */
	uint32_t epoch;    /* 0: empty */
	int32_t rule;      /* -1: no rule */
	uint32_t off;      /* rename: new key at arena + off */
	uint8_t action, key_len;
};

#define TALLY_RCACHE_ENTRIES 65536
/* Renamed keys of a whole event batch (16384 events x 255 bytes) fit in half:
 * the arena is reset, and the epoch moved, only between batches. */
#define TALLY_RCACHE_ARENA (8u << 20)
#define TALLY_RCACHE_BATCH_KEYS 16384u

struct tally_rcache {
	struct tally_rcache_entry *e;
	uint32_t mask, epoch;
	uint64_t gen;
	uint8_t *arena;
	uint32_t used, cap;
	uint64_t rng;
	pcre2_match_data *md;
	bool off; /* benchmarks: decide every event as if every lookup missed */
};

/* entries: a power of two. 0 or -ENOMEM. */
int tally_rcache_init(struct tally_rcache *rc, uint32_t entries, uint32_t arena, int node);
void tally_rcache_fini(struct tally_rcache *rc);

/* Before a batch: a new rules generation or a half-full arena starts an epoch. */
static inline void tally_rcache_begin(struct tally_rcache *rc, const struct tally_rules *rs)
{
	if (rs->gen != rc->gen || rc->used > rc->cap / 2) {
		rc->gen = rs->gen;
		rc->used = 0;
		rc->epoch = rc->epoch + 1 ? rc->epoch + 1 : 1;
	}
}

/* Apply the rules to one prepared event (e->hash is its row hash): false if
 * it is dropped or sampled out; a rename changes e->key, key_len and hash.
 * c: the worker's counters. */
bool tally_rules_event(struct tally_rcache *rc, const struct tally_rules *rs, unsigned worker,
		       uint64_t *c, struct tally_event *e);

#endif
