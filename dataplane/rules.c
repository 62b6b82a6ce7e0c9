/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Rules files, their Hyperscan database, the decision for one key, and the
 * worker's decision cache (rules.h says what rules mean). Parsing, compiling
 * and scratch allocation run off the workers; a worker only scans, on a cache
 * miss, with its own scratch, and runs PCRE2 only for a rename with groups.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "mem.h"
#include "rules.h"
#include "window.h"

#define RULES_GROUPS 10 /* $0..$9 */

const char *tally_rule_action_name(enum tally_rule_action a)
{
	static const char *const names[] = {"drop", "keep", "rename", "sample"};

	return (unsigned)a < 4 ? names[a] : "?";
}

static int action_of(const char *s, size_t n, enum tally_rule_action *a)
{
	for (int i = 0; i < 4; i++) {
		const char *name = tally_rule_action_name((enum tally_rule_action)i);

		if (strlen(name) == n && memcmp(s, name, n) == 0) {
			*a = (enum tally_rule_action)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* The pattern runs from the first '/' to the next unescaped '/'. */
static const char *pattern_end(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' && s[1] != '\0')
			s++;
		else if (*s == '/')
			return s;
	}
	return NULL;
}

static int template_groups(const char *t)
{
	int max = -1;

	for (; *t != '\0'; t++)
		if (*t == '$' && t[1] >= '0' && t[1] <= '9') {
			max = t[1] - '0' > max ? t[1] - '0' : max;
			t++;
		} else if (*t == '$' && t[1] == '$') {
			t++;
		}
	return max;
}

/* The argument of an action: none for drop/keep, a template, or N >= 1. */
static int check_arg(struct tally_rule *r, char *msg, size_t len)
{
	char *end;
	unsigned long n;

	if (r->action == TALLY_RULE_DROP || r->action == TALLY_RULE_KEEP) {
		if (r->arg == NULL)
			return 0;
		snprintf(msg, len, "%s takes no argument (got \"%s\")",
			 tally_rule_action_name(r->action), r->arg);
		return -EINVAL;
	}
	if (r->arg == NULL) {
		snprintf(msg, len, "%s needs an argument: %s", tally_rule_action_name(r->action),
			 r->action == TALLY_RULE_RENAME ? "the new key (fixed, or with $1..$9)"
							: "N (keep 1 in N)");
		return -EINVAL;
	}
	if (r->action == TALLY_RULE_RENAME) {
		if (strlen(r->arg) > TALLY_KEY_MAX) {
			snprintf(msg, len, "rename: the new key is longer than %d bytes", TALLY_KEY_MAX);
			return -EINVAL;
		}
		return 0;
	}
	errno = 0;
	n = strtoul(r->arg, &end, 10);
	if (r->arg[0] < '0' || r->arg[0] > '9' || *end != '\0' || errno || n < 1 ||
	    n > UINT32_MAX) {
		snprintf(msg, len, "sample: \"%s\" is not a whole number from 1 to %u", r->arg,
			 UINT32_MAX);
		return -EINVAL;
	}
	r->sample_n = (uint32_t)n;
	return 0;
}

/* One non-comment line: ACTION /PATTERN/ [ARG]. line is edited in place. */
static int parse_line(char *line, struct tally_rule *r, char *msg, size_t len)
{
	size_t n = strcspn(line, " \t");
	char *p = line + n, *end;

	if (action_of(line, n, &r->action) != 0) {
		snprintf(msg, len, "\"%.*s\" is not an action (drop, keep, rename, sample)", (int)n,
			 line);
		return -EINVAL;
	}
	p += strspn(p, " \t");
	if (*p != '/' || (end = (char *)pattern_end(p + 1)) == NULL) {
		snprintf(msg, len, "expected /PATTERN/ after %s", tally_rule_action_name(r->action));
		return -EINVAL;
	}
	*end++ = '\0';
	r->pattern = strdup(p + 1);
	if (*end != '\0' && *end != ' ' && *end != '\t') {
		snprintf(msg, len, "unexpected \"%c\" after the closing '/' (flags are written "
			 "inline, e.g. (?i))", *end);
		return -EINVAL;
	}
	end += strspn(end, " \t");
	if (*end != '\0') {
		if (end[strcspn(end, " \t")] != '\0') {
			snprintf(msg, len, "one argument at most (\"%s\")", end);
			return -EINVAL;
		}
		r->arg = strdup(end);
	}
	if (r->pattern == NULL || (*end != '\0' && r->arg == NULL))
		return -ENOMEM;
	return check_arg(r, msg, len);
}

/* A rename with groups gets its PCRE2 program; the template's groups must exist. */
static int compile_groups(struct tally_rule *r, char *msg, size_t len)
{
	int groups = r->action == TALLY_RULE_RENAME ? template_groups(r->arg) : -1, ec;
	uint32_t have = 0;
	PCRE2_SIZE off;

	if (groups < 0)
		return 0;
	r->re = pcre2_compile((PCRE2_SPTR)r->pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &off,
			      NULL);
	if (r->re == NULL) {
		PCRE2_UCHAR m[160];

		pcre2_get_error_message(ec, m, sizeof(m));
		snprintf(msg, len, "/%s/: PCRE2 (for the groups of rename): %s at offset %zu",
			 r->pattern, (char *)m, (size_t)off);
		return -EINVAL;
	}
	pcre2_pattern_info(r->re, PCRE2_INFO_CAPTURECOUNT, &have);
	if ((uint32_t)groups > have) {
		snprintf(msg, len, "rename uses $%d but /%s/ has %u group(s)", groups, r->pattern,
			 have);
		return -EINVAL;
	}
	return 0;
}

static int add_rule(struct tally_rules *rs, size_t *cap)
{
	if (rs->n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		struct tally_rule *r = realloc(rs->rule, c * sizeof(*r));

		if (r == NULL)
			return -ENOMEM;
		rs->rule = r;
		*cap = c;
	}
	memset(&rs->rule[rs->n], 0, sizeof(rs->rule[0]));
	return 0;
}

/* Every line into rs->rule; errors name file and line. */
static int parse_text(struct tally_rules *rs, char *text, const char *file, char *err,
		      size_t errlen)
{
	size_t cap = 0;
	unsigned lineno = 0;
	char msg[512];

	for (char *line = text, *next; line != NULL; line = next) {
		int r;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		lineno++;
		line[strcspn(line, "\r")] = '\0';
		line += strspn(line, " \t");
		if (*line == '\0' || *line == '#')
			continue;
		if ((r = add_rule(rs, &cap)) != 0)
			return r;
		rs->rule[rs->n].line = lineno;
		r = parse_line(line, &rs->rule[rs->n], msg, sizeof(msg));
		rs->n++;
		if (r == 0)
			r = compile_groups(&rs->rule[rs->n - 1], msg, sizeof(msg));
		if (r != 0) {
			snprintf(err, errlen, "%s:%u: %s", file, lineno, r == -ENOMEM ? "out of memory" : msg);
			return r;
		}
	}
	return 0;
}

/* One database of every pattern, id = rule index; Hyperscan's error named. */
static int compile_db(struct tally_rules *rs, const char *file, char *err, size_t errlen)
{
	const char **pats = calloc(rs->n, sizeof(*pats));
	unsigned *flags = calloc(rs->n, sizeof(*flags)), *ids = calloc(rs->n, sizeof(*ids));
	hs_compile_error_t *ce = NULL;
	hs_error_t r;

	if (pats == NULL || flags == NULL || ids == NULL) {
		free(pats), free(flags), free(ids);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < rs->n; i++) {
		pats[i] = rs->rule[i].pattern;
		/* Which rule matches is all we need: one report per rule, no start
		 * offsets; keys are valid UTF-8 (both parsers check). */
		flags[i] = HS_FLAG_SINGLEMATCH | HS_FLAG_ALLOWEMPTY | HS_FLAG_UTF8;
		ids[i] = i;
	}
	r = hs_compile_multi(pats, flags, ids, rs->n, HS_MODE_BLOCK, NULL, &rs->db, &ce);
	free(pats), free(flags), free(ids);
	if (r == HS_SUCCESS)
		return 0;
	if (ce != NULL && ce->expression >= 0 && (unsigned)ce->expression < rs->n)
		snprintf(err, errlen, "%s:%u: /%s/: Hyperscan: %s", file,
			 rs->rule[ce->expression].line, rs->rule[ce->expression].pattern, ce->message);
	else
		snprintf(err, errlen, "%s: Hyperscan: %s", file, ce != NULL ? ce->message : "compile failed");
	hs_free_compile_error(ce);
	return -EINVAL;
}

/* Scratch per worker and one for the control thread; counters per worker. */
static int alloc_per_worker(struct tally_rules *rs, char *err, size_t errlen)
{
	hs_scratch_t *proto = NULL;

	rs->stride = (rs->n + 1 + 1) & ~(size_t)1; /* a worker's block on its own line(s) */
	rs->ctr = aligned_alloc(64, sizeof(*rs->ctr) * rs->stride * rs->nworkers + 64);
	rs->scratch = calloc(rs->nworkers + 1, sizeof(*rs->scratch));
	if (rs->ctr == NULL || rs->scratch == NULL)
		return -ENOMEM;
	memset(rs->ctr, 0, sizeof(*rs->ctr) * rs->stride * rs->nworkers);
	if (rs->db == NULL)
		return 0;
	if (hs_alloc_scratch(rs->db, &proto) != HS_SUCCESS) {
		snprintf(err, errlen, "%s: Hyperscan: cannot allocate scratch", rs->file);
		return -ENOMEM;
	}
	rs->scratch[0] = proto;
	for (unsigned i = 1; i <= rs->nworkers; i++)
		if (hs_clone_scratch(proto, &rs->scratch[i]) != HS_SUCCESS) {
			snprintf(err, errlen, "%s: Hyperscan: cannot clone scratch", rs->file);
			return -ENOMEM;
		}
	return 0;
}

int tally_rules_compile(const char *text, const char *file, unsigned nworkers,
			struct tally_rules **out, char *err, size_t errlen)
{
	struct tally_rules *rs = calloc(1, sizeof(*rs));
	char *copy = strdup(text);
	int r = rs == NULL || copy == NULL ? -ENOMEM : 0;

	if (r == 0) {
		rs->nworkers = nworkers;
		snprintf(rs->file, sizeof(rs->file), "%s", file);
		r = parse_text(rs, copy, file, err, errlen);
	}
	if (r == 0 && rs->n > 0)
		r = compile_db(rs, file, err, errlen);
	if (r == 0)
		r = alloc_per_worker(rs, err, errlen);
	free(copy);
	if (r == -ENOMEM && err[0] == '\0')
		snprintf(err, errlen, "%s: out of memory", file);
	if (r != 0) {
		tally_rules_free(rs);
		return r;
	}
	*out = rs;
	return 0;
}

int tally_rules_load(const char *path, unsigned nworkers, struct tally_rules **out, char *err,
		     size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t len = 0;
	int r;

	if (f == NULL) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return r;
	}
	FILE *m = open_memstream(&text, &len);
	char buf[65536];
	size_t n;

	while (m != NULL && (n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, m);
	r = ferror(f) ? -EIO : 0;
	fclose(f);
	if (m == NULL || fclose(m) != 0)
		r = -ENOMEM;
	if (r == 0)
		r = tally_rules_compile(text, path, nworkers, out, err, errlen);
	else
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
	free(text);
	return r;
}

void tally_rules_free(struct tally_rules *rs)
{
	if (rs == NULL)
		return;
	for (unsigned i = 0; i < rs->n; i++) {
		free(rs->rule[i].pattern);
		free(rs->rule[i].arg);
		pcre2_code_free(rs->rule[i].re);
	}
	if (rs->scratch != NULL)
		for (unsigned i = 0; i <= rs->nworkers; i++)
			hs_free_scratch(rs->scratch[i]);
	hs_free_database(rs->db);
	free(rs->scratch);
	free(rs->ctr);
	free(rs->rule);
	free(rs);
}

struct tally_rule_ctr tally_rules_ctr_sum(const struct tally_rules *rs, unsigned i)
{
	struct tally_rule_ctr s = {0};

	for (unsigned w = 0; w < rs->nworkers; w++) {
		const struct tally_rule_ctr *c = &rs->ctr[w * rs->stride + i];

		s.matched += __atomic_load_n(&c->matched, __ATOMIC_RELAXED);
		s.dropped += __atomic_load_n(&c->dropped, __ATOMIC_RELAXED);
		s.renamed += __atomic_load_n(&c->renamed, __ATOMIC_RELAXED);
		s.sampled_out += __atomic_load_n(&c->sampled_out, __ATOMIC_RELAXED);
	}
	return s;
}

/* Hyperscan reports in end-offset order: keep the lowest rule id, and stop
 * scanning once rule 0 (which nothing can beat) has matched. */
static int on_match(unsigned id, unsigned long long from, unsigned long long to,
		    unsigned flags, void *ctx)
{
	int *best = ctx;

	(void)from, (void)to, (void)flags;
	if (*best < 0 || (int)id < *best)
		*best = (int)id;
	return *best == 0;
}

/* out = template with $N replaced by the groups of subject; its length, or -1. */
static int expand(const struct tally_rule *r, pcre2_match_data *md, const uint8_t *subj,
		  uint32_t len, uint8_t *out, size_t cap)
{
	const char *t = r->arg;
	PCRE2_SIZE *ov;
	size_t n = 0;
	int rc;

	if (r->re == NULL) /* a fixed name */
		return strlen(t) <= cap ? (memcpy(out, t, strlen(t)), (int)strlen(t)) : -1;
	rc = pcre2_match(r->re, subj, len, 0, 0, md, NULL);
	if (rc <= 0)
		return -1; /* Hyperscan matched where PCRE2 does not: the key stays */
	ov = pcre2_get_ovector_pointer(md);
	for (; *t != '\0'; t++) {
		const uint8_t *piece = (const uint8_t *)t;
		size_t plen = 1;

		if (*t == '$' && t[1] >= '0' && t[1] <= '9') {
			int g = *++t - '0';

			plen = g < rc && ov[2 * g] != PCRE2_UNSET ? ov[2 * g + 1] - ov[2 * g] : 0;
			piece = subj + (plen ? ov[2 * g] : 0);
		} else if (*t == '$' && t[1] == '$') {
			t++;
		}
		if (n + plen > cap)
			return -1;
		memcpy(out + n, piece, plen);
		n += plen;
	}
	return (int)n;
}

/* A rename: new name or key in out, |type|#tags kept for StatsD; 0 = not a key. */
static uint8_t rename_key(const struct tally_rule *r, pcre2_match_data *md, const uint8_t *key,
			  uint32_t len, uint32_t name_len, bool statsd, uint8_t *out)
{
	int n = expand(r, md, key, name_len, out, TALLY_KEY_MAX);

	if (n <= 0 || (statsd && memchr(out, '|', (size_t)n) != NULL) ||
	    (size_t)n + (len - name_len) > TALLY_KEY_MAX || memchr(out, '\0', (size_t)n) != NULL)
		return 0;
	memcpy(out + n, key + name_len, len - name_len);
	return (uint8_t)(n + (len - name_len));
}

int tally_rules_decide(const struct tally_rules *rs, hs_scratch_t *s, pcre2_match_data *md,
		       const uint8_t *key, uint32_t len, bool statsd,
		       uint8_t out[TALLY_KEY_MAX], struct tally_decision *d)
{
	const uint8_t *bar = statsd ? memchr(key, '|', len) : NULL;
	uint32_t name_len = bar != NULL ? (uint32_t)(bar - key) : len;
	hs_error_t r;

	*d = (struct tally_decision){.rule = -1, .action = TALLY_RULE_KEEP};
	if (rs->db == NULL)
		return 0;
	r = hs_scan(rs->db, (const char *)key, name_len, 0, s, on_match, &d->rule);
	if (r != HS_SUCCESS && r != HS_SCAN_TERMINATED)
		return -EIO;
	if (d->rule < 0)
		return 0;
	d->action = rs->rule[d->rule].action;
	if (d->action == TALLY_RULE_RENAME)
		d->key_len = rename_key(&rs->rule[d->rule], md, key, len, name_len, statsd, out);
	return 0;
}

int tally_rcache_init(struct tally_rcache *rc, uint32_t entries, uint32_t arena, int node)
{
	memset(rc, 0, sizeof(*rc));
	if (entries == 0 || (entries & (entries - 1)) != 0)
		return -EINVAL;
	rc->e = tally_mem_map_node(sizeof(*rc->e) * entries, node);
	rc->arena = tally_mem_map_node(arena, node);
	rc->md = pcre2_match_data_create(RULES_GROUPS, NULL);
	if (rc->e == NULL || rc->arena == NULL || rc->md == NULL) {
		tally_rcache_fini(rc);
		return -ENOMEM;
	}
	rc->mask = entries - 1;
	rc->cap = arena;
	rc->epoch = 1;
	rc->gen = UINT64_MAX;
	rc->rng = 0x2545f4914f6cdd1dULL;
	return 0;
}

void tally_rcache_fini(struct tally_rcache *rc)
{
	if (rc->e != NULL)
		tally_mem_unmap(rc->e, sizeof(*rc->e) * (rc->mask + 1));
	if (rc->arena != NULL)
		tally_mem_unmap(rc->arena, rc->cap);
	pcre2_match_data_free(rc->md);
	memset(rc, 0, sizeof(*rc));
}

/* A miss: decide, and keep the answer (and a renamed key) in the entry. */
static void rcache_fill(struct tally_rcache *rc, const struct tally_rules *rs, unsigned worker,
			uint64_t *c, const struct tally_event *e, struct tally_rcache_entry *x)
{
	struct tally_decision d;
	uint8_t *out = rc->arena + rc->used;

	c[TALLY_C_RULES_CACHE_MISSES]++;
	if (tally_rules_decide(rs, rs->scratch[worker], rc->md, e->key, e->key_len, e->statsd,
			       out, &d) != 0) {
		c[TALLY_C_RULES_SCAN_ERRORS]++;
		d = (struct tally_decision){.rule = -1}; /* kept: never lost to a bug */
	}
	*x = (struct tally_rcache_entry){.hash = e->hash, .epoch = rc->epoch, .rule = d.rule,
					 .action = (uint8_t)d.action, .key_len = d.key_len};
	if (d.rule >= 0 && d.action == TALLY_RULE_RENAME && d.key_len > 0) {
		x->off = rc->used;
		x->new_hash = tally_row_hash(tally_key_hash(out, d.key_len), e->win_start);
		rc->used += d.key_len;
	}
}

static inline uint64_t rcache_rand(struct tally_rcache *rc)
{
	rc->rng ^= rc->rng << 13; /* xorshift64: a draw per sampled StatsD line */
	rc->rng ^= rc->rng >> 7;
	rc->rng ^= rc->rng << 17;
	return rc->rng;
}

bool tally_rules_event(struct tally_rcache *rc, const struct tally_rules *rs, unsigned worker,
		       uint64_t *c, struct tally_event *e)
{
	struct tally_rcache_entry *x = &rc->e[e->hash & rc->mask];
	struct tally_rule_ctr *rctr;
	uint32_t n;

	if (rc->off || x->hash != e->hash || x->epoch != rc->epoch)
		rcache_fill(rc, rs, worker, c, e, x);
	if (x->rule < 0)
		return true;
	rctr = &rs->ctr[worker * rs->stride + (uint32_t)x->rule];
	rctr->matched++;
	switch (x->action) {
	case TALLY_RULE_DROP:
		rctr->dropped++;
		c[TALLY_C_RULES_DROPPED]++;
		return false;
	case TALLY_RULE_RENAME:
		if (x->key_len == 0) {
			c[TALLY_C_RULES_RENAME_BAD]++;
			return true;
		}
		e->key = rc->arena + x->off;
		e->key_len = x->key_len;
		e->hash = x->new_hash;
		rctr->renamed++;
		c[TALLY_C_RULES_RENAMED]++;
		return true;
	case TALLY_RULE_SAMPLE:
		n = rs->rule[x->rule].sample_n;
		if (!tally_rules_sample_keep(e->event_id ? e->event_id : rcache_rand(rc), n)) {
			rctr->sampled_out++;
			c[TALLY_C_RULES_SAMPLED_OUT]++;
			return false;
		}
		e->value *= n;
		return true;
	default:
		return true;
	}
}
