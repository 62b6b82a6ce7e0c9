/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Rules: the file parser (good lines, every kind of bad line, Hyperscan's and
 * PCRE2's own messages passed through with file and line), the decision (first
 * rule wins, StatsD names, rename with groups or a fixed name, sample scaling)
 * and the worker's decision cache (hit, miss, a new window, a new rules
 * generation, slot collisions, the rename arena).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "counters.h"
#include "rules.h"
#include "window.h"

static struct tally_rules *compile_ok(const char *text)
{
	struct tally_rules *rs = NULL;
	char err[512] = "";

	if (tally_rules_compile(text, "t.rules", 1, &rs, err, sizeof(err)) != 0)
		fail_msg("unexpected error: %s", err);
	return rs;
}

static void compile_bad(const char *text, const char *want)
{
	struct tally_rules *rs = NULL;
	char err[512] = "";

	assert_int_not_equal(tally_rules_compile(text, "t.rules", 1, &rs, err, sizeof(err)), 0);
	assert_null(rs);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", err, want);
}

static void test_parse_good(void **state)
{
	struct tally_rules *rs = compile_ok(
		"# comment\n\n  drop /^bot\\./\n"
		"rename /^api\\.(\\w+)\\.latency$/ api.$1.lat\r\n"
		"sample /^debug\\./ 10\n"
		"rename /^a\\/b$/ fixed.name\n"
		"keep /.*/\n");

	(void)state;
	assert_int_equal(rs->n, 5);
	assert_int_equal(rs->rule[0].action, TALLY_RULE_DROP);
	assert_int_equal(rs->rule[0].line, 3);
	assert_string_equal(rs->rule[0].pattern, "^bot\\.");
	assert_int_equal(rs->rule[1].action, TALLY_RULE_RENAME);
	assert_non_null(rs->rule[1].re);
	assert_string_equal(rs->rule[1].arg, "api.$1.lat");
	assert_int_equal(rs->rule[2].sample_n, 10);
	assert_string_equal(rs->rule[3].pattern, "^a\\/b$");
	assert_null(rs->rule[3].re); /* a fixed name needs no PCRE2 */
	assert_int_equal(rs->rule[4].action, TALLY_RULE_KEEP);
	tally_rules_free(rs);
	rs = compile_ok("# nothing but comments\n");
	assert_int_equal(rs->n, 0);
	assert_null(rs->db);
	tally_rules_free(rs);
}

static void test_parse_bad(void **state)
{
	(void)state;
	compile_bad("keep /a/\nzap /x/\n", "t.rules:2: \"zap\" is not an action");
	compile_bad("drop ^x\n", "t.rules:1: expected /PATTERN/");
	compile_bad("drop /x\n", "t.rules:1: expected /PATTERN/");
	compile_bad("drop /x/ y\n", "t.rules:1: drop takes no argument");
	compile_bad("rename /x/\n", "t.rules:1: rename needs an argument");
	compile_bad("sample /x/ 0\n", "t.rules:1: sample: \"0\" is not a whole number");
	compile_bad("sample /x/ ten\n", "t.rules:1: sample: \"ten\"");
	compile_bad("keep /x/i\n", "t.rules:1: unexpected \"i\" after the closing '/'");
	compile_bad("rename /x/ a b\n", "t.rules:1: one argument at most");
	compile_bad("rename /^(a)$/ x.$2\n", "t.rules:1: rename uses $2 but /^(a)$/ has 1 group");
	/* Hyperscan's own message, on the line of the bad pattern */
	compile_bad("keep /ok/\n\ndrop /a(b/\n", "t.rules:3: /a(b/: Hyperscan: Missing close "
		    "parenthesis for group started at index 1.");
	/* a back-reference: PCRE2 would take it, Hyperscan does not */
	compile_bad("drop /(a)\\1/\n", "t.rules:1: /(a)\\1/: Hyperscan:");
}

static struct tally_decision decide(const struct tally_rules *rs, const char *key, bool statsd,
				    char *out)
{
	struct tally_decision d;
	uint8_t buf[TALLY_KEY_MAX];
	pcre2_match_data *md = pcre2_match_data_create(10, NULL);

	assert_int_equal(tally_rules_decide(rs, rs->scratch[rs->nworkers], md,
					    (const uint8_t *)key, (uint32_t)strlen(key), statsd,
					    buf, &d), 0);
	pcre2_match_data_free(md);
	if (out != NULL)
		snprintf(out, 300, "%.*s", d.key_len, (const char *)buf);
	return d;
}

static void test_decide(void **state)
{
	struct tally_rules *rs = compile_ok(
		"drop /^bot\\./\n"
		"rename /^api\\.(\\w+)\\.latency$/ api.$1.lat\n"
		"rename /^(\\w+)\\.(\\w+)\\.swap$/ $2.$1.$$\n"
		"keep /^bot\\.keep/\n"
		"rename /^old$/ new.name\n"
		"rename /^long$/ " "0123456789012345678901234567890123456789012345678901234567890123"
		"456789012345678901234567890123456789012345678901234567890123456789012345678901"
		"234567890123456789012345678901234567890123456789012345678901234567890123456789"
		"01234567890123456789012345678901234\n"
		"sample /^debug\\./ 4\n");
	char out[300];
	struct tally_decision d;

	(void)state;
	d = decide(rs, "bot.keep.x", false, NULL); /* rules 0 and 3 match: the first wins */
	assert_int_equal(d.rule, 0);
	assert_int_equal(d.action, TALLY_RULE_DROP);
	d = decide(rs, "api.login.latency", false, out);
	assert_int_equal(d.rule, 1);
	assert_string_equal(out, "api.login.lat");
	d = decide(rs, "a.b.swap", false, out);
	assert_string_equal(out, "b.a.$");
	/* StatsD: the name is matched and replaced, |type|#tags kept */
	d = decide(rs, "api.pay.latency|ms|#env:prod", true, out);
	assert_string_equal(out, "api.pay.lat|ms|#env:prod");
	d = decide(rs, "old|c", true, out);
	assert_string_equal(out, "new.name|c");
	/* as a TLY1 key "old|c" is not "old" */
	assert_int_equal(decide(rs, "old|c", false, NULL).rule, -1);
	/* a result over 255 bytes is not a key: key_len 0 (the event keeps its key) */
	d = decide(rs, "long|c", true, NULL);
	assert_int_equal(d.rule, 5);
	assert_int_equal(d.key_len, 0);
	d = decide(rs, "debug.x", false, NULL);
	assert_int_equal(d.action, TALLY_RULE_SAMPLE);
	assert_int_equal(decide(rs, "other", false, NULL).rule, -1);
	tally_rules_free(rs);
}

/* An event as prepare_one leaves it: row hash of (key, window). */
static struct tally_event event(const char *key, int64_t win, uint64_t id, bool statsd)
{
	struct tally_event e = {.key = (const uint8_t *)key, .key_len = (uint8_t)strlen(key),
				.event_id = id, .value = 3, .statsd = statsd};

	e.win_start = win;
	e.hash = tally_row_hash(tally_key_hash(e.key, e.key_len), win);
	return e;
}

struct fixture {
	struct tally_rules *rs;
	struct tally_rcache rc;
	uint64_t c[TALLY_C_MAX];
};

static struct fixture *fixture(const char *text, uint32_t entries)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->rs = compile_ok(text);
	f->rs->gen = 1;
	assert_int_equal(tally_rcache_init(&f->rc, entries, TALLY_RCACHE_ARENA, -1), 0);
	tally_rcache_begin(&f->rc, f->rs);
	return f;
}

static void fixture_free(struct fixture *f)
{
	tally_rcache_fini(&f->rc);
	tally_rules_free(f->rs);
	free(f);
}

static bool run(struct fixture *f, struct tally_event *e)
{
	return tally_rules_event(&f->rc, f->rs, 0, f->c, e);
}

static void test_cache_hit_miss(void **state)
{
	struct fixture *f = fixture("drop /^bot/\nrename /^a\\.(\\d+)$/ b.$1\n", 65536);
	struct tally_event e;

	(void)state;
	for (int i = 0; i < 5; i++) {
		e = event("a.17", 1000, 0, false);
		assert_true(run(f, &e));
		assert_int_equal(e.key_len, 4);
		assert_memory_equal(e.key, "b.17", 4);
		assert_int_equal(e.hash, tally_row_hash(tally_key_hash(e.key, 4), 1000));
		e = event("bot.x", 1000, 0, false);
		assert_false(run(f, &e));
	}
	assert_int_equal(f->c[TALLY_C_RULES_CACHE_MISSES], 2); /* once per key */
	assert_int_equal(f->c[TALLY_C_RULES_RENAMED], 5);
	assert_int_equal(f->c[TALLY_C_RULES_DROPPED], 5);
	assert_int_equal(tally_rules_ctr_sum(f->rs, 0).dropped, 5);
	assert_int_equal(tally_rules_ctr_sum(f->rs, 1).matched, 5);
	/* a new window: matched again, once */
	e = event("a.17", 2000, 0, false);
	run(f, &e);
	e = event("a.17", 2000, 0, false);
	run(f, &e);
	assert_int_equal(f->c[TALLY_C_RULES_CACHE_MISSES], 3);
	/* off: every event decides (the benchmark's "without cache") */
	f->rc.off = true;
	e = event("bot.x", 1000, 0, false);
	run(f, &e);
	assert_int_equal(f->c[TALLY_C_RULES_CACHE_MISSES], 4);
	fixture_free(f);
}

static void test_cache_generation(void **state)
{
	struct fixture *f = fixture("drop /^k$/\n", 65536);
	struct tally_rules *next = compile_ok("keep /^k$/\n");
	struct tally_event e = event("k", 0, 0, false);

	(void)state;
	assert_false(run(f, &e));
	tally_rcache_begin(&f->rc, f->rs); /* same generation: still cached */
	e = event("k", 0, 0, false);
	assert_false(run(f, &e));
	assert_int_equal(f->c[TALLY_C_RULES_CACHE_MISSES], 1);
	next->gen = 2; /* a reload: the cached "drop" must not survive it */
	tally_rules_free(f->rs);
	f->rs = next;
	tally_rcache_begin(&f->rc, f->rs);
	e = event("k", 0, 0, false);
	assert_true(run(f, &e));
	assert_int_equal(f->c[TALLY_C_RULES_CACHE_MISSES], 2);
	fixture_free(f);
}

/* Two entries: keys that share a slot evict each other, never answer for each other. */
static void test_cache_collisions(void **state)
{
	struct fixture *f = fixture("drop /^d/\nrename /^r(\\d+)$/ x$1\n", 2);
	char keys[64][8];
	unsigned dropped = 0;

	(void)state;
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 64; i++) {
			struct tally_event e;

			snprintf(keys[i], sizeof(keys[i]), "%c%d", i % 2 ? 'd' : 'r', i);
			e = event(keys[i], 0, 0, false);
			if (!run(f, &e)) {
				dropped++;
				assert_int_equal(keys[i][0], 'd');
			} else {
				assert_int_equal(e.key[0], 'x');
				assert_memory_equal(e.key + 1, keys[i] + 1, e.key_len - 1);
			}
		}
	assert_int_equal(dropped, 3 * 32);
	assert_true(f->c[TALLY_C_RULES_CACHE_MISSES] > 64);
	fixture_free(f);
}

/* The rename arena is reset between batches once half full, with a new epoch:
 * no entry can point into reused bytes. */
static void test_cache_arena(void **state)
{
	struct fixture *f = fixture("rename /^(k.*)$/ renamed.$1\n", 65536);
	struct tally_event e = event("k0", 0, 0, false);

	(void)state;
	run(f, &e);
	f->rc.used = f->rc.cap / 2 + 1; /* as after many renames */
	tally_rcache_begin(&f->rc, f->rs);
	assert_int_equal(f->rc.used, 0);
	e = event("k0", 0, 0, false);
	run(f, &e);
	assert_int_equal(f->c[TALLY_C_RULES_CACHE_MISSES], 2);
	assert_memory_equal(e.key, "renamed.k0", 10);
	fixture_free(f);
}

/* sample N: about 1/N kept, each with value x N, so the sum stays unbiased;
 * an event_id decides the same way every time (a resend, a duplicate). */
static void test_sample(void **state)
{
	struct fixture *f = fixture("sample /^s/ 8\n", 65536);
	const unsigned n = 80000;
	unsigned kept = 0;
	double sum = 0;

	(void)state;
	for (unsigned i = 1; i <= n; i++) {
		struct tally_event e = event("s", 0, i, false), again = e;
		bool k = run(f, &e);

		assert_int_equal(k, run(f, &again));
		if (k) {
			kept++;
			assert_true(e.value == 3.0 * 8);
			sum += e.value;
		}
	}
	/* binomial(80000, 1/8): sd ~ 94; 6 sd either side */
	assert_in_range(kept, n / 8 - 560, n / 8 + 560);
	assert_true(sum > 0.95 * 3 * n && sum < 1.05 * 3 * n);
	assert_int_equal(f->c[TALLY_C_RULES_SAMPLED_OUT], 2 * (n - kept));
	assert_int_equal(tally_rules_ctr_sum(f->rs, 0).sampled_out, 2 * (n - kept));
	/* id 0 (StatsD): random draws, the same rate */
	kept = 0;
	for (unsigned i = 0; i < n; i++) {
		struct tally_event e = event("s|c", 0, 0, true);

		kept += run(f, &e);
	}
	assert_in_range(kept, n / 8 - 560, n / 8 + 560);
	fixture_free(f);
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/tally-rules-XXXXXX", err[512] = "";
	struct tally_rules *rs = NULL;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "keep /a/\ndrop /[/\n", 18), 18);
	close(fd);
	assert_int_equal(tally_rules_load(path, 2, &rs, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":2: /[/: Hyperscan:"));
	assert_non_null(strstr(err, path));
	unlink(path);
	assert_int_equal(tally_rules_load(path, 2, &rs, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "No such file"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_cache_hit_miss),
		cmocka_unit_test(test_cache_generation),
		cmocka_unit_test(test_cache_collisions),
		cmocka_unit_test(test_cache_arena),
		cmocka_unit_test(test_sample),
		cmocka_unit_test(test_load_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
