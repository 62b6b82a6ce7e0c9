/* SPDX-License-Identifier: BSD-3-Clause */
/* log.c: the level filter, the per-call-site rate limit and its "suppressed"
 * line, on a fake clock, written to a memory stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"

static uint64_t fake_now = 1000000;
static char *buf;
static size_t buflen;
static FILE *out;

static uint64_t fake_clock(void)
{
	return fake_now;
}

static int setup(void **st)
{
	(void)st;
	fake_now += 100 * TALLY_LOG_INTERVAL_MS; /* every bucket full again */
	out = open_memstream(&buf, &buflen);
	tally_log_test_hooks(fake_clock, out);
	tally_log_setup(LOG_INFO, TALLY_LOG_STDERR);
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	tally_log_test_hooks(NULL, NULL);
	fclose(out);
	free(buf);
	return 0;
}

static unsigned lines_with(const char *part)
{
	unsigned n = 0;

	fflush(out);
	for (const char *p = buf; p != NULL && (p = strstr(p, part)) != NULL; p++)
		n++;
	return n;
}

/* One call site, logged n times. */
static void site_a(int level, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		tally_log(level, "tallyd: site a %u", i);
}

static void test_names(void **st)
{
	(void)st;
	assert_int_equal(tally_log_level_parse("err"), LOG_ERR);
	assert_int_equal(tally_log_level_parse("warning"), LOG_WARNING);
	assert_int_equal(tally_log_level_parse("notice"), LOG_NOTICE);
	assert_int_equal(tally_log_level_parse("info"), LOG_INFO);
	assert_int_equal(tally_log_level_parse("debug"), LOG_DEBUG);
	assert_int_equal(tally_log_level_parse("warn"), -1);
	assert_int_equal(tally_log_level_parse(""), -1);
	assert_int_equal(tally_log_target_parse("auto"), TALLY_LOG_AUTO);
	assert_int_equal(tally_log_target_parse("syslog"), TALLY_LOG_SYSLOG);
	assert_int_equal(tally_log_target_parse("journal"), TALLY_LOG_JOURNAL);
	assert_int_equal(tally_log_target_parse("stderr"), TALLY_LOG_STDERR);
	assert_int_equal(tally_log_target_parse("file"), -1);
}

static void test_level_filter(void **st)
{
	(void)st;
	tally_log_setup(LOG_WARNING, TALLY_LOG_STDERR);
	tally_log(LOG_INFO, "tallyd: info hidden");
	tally_log(LOG_NOTICE, "tallyd: notice hidden");
	tally_log(LOG_WARNING, "tallyd: warning shown");
	tally_log(LOG_ERR, "tallyd: err shown");
	assert_int_equal(lines_with("hidden"), 0);
	assert_int_equal(lines_with("shown"), 2);
	/* changed at run time: the next message follows it */
	tally_log_setup(LOG_DEBUG, TALLY_LOG_STDERR);
	tally_log(LOG_DEBUG, "tallyd: debug now shown");
	assert_int_equal(lines_with("debug now shown"), 1);
	assert_true(tally_log_enabled(LOG_DEBUG));
	tally_log_setup(LOG_ERR, TALLY_LOG_STDERR);
	assert_false(tally_log_enabled(LOG_WARNING));
}

/* Stderr keeps the message as given, one line each (tests grep it). */
static void test_format(void **st)
{
	(void)st;
	tally_log(LOG_NOTICE, "config: %s: %d -> %d", "lateness_ms", 1, 2);
	fflush(out);
	assert_string_equal(buf, "config: lateness_ms: 1 -> 2\n");
}

static void test_rate_limit(void **st)
{
	(void)st;
	site_a(LOG_WARNING, 25);
	/* the burst, then nothing, and no report yet */
	assert_int_equal(lines_with("site a"), TALLY_LOG_BURST);
	assert_int_equal(lines_with("suppressed"), 0);
	/* another call site has its own bucket */
	tally_log(LOG_WARNING, "tallyd: site b");
	assert_int_equal(lines_with("site b"), 1);
	/* within the interval the tick says nothing */
	fake_now += TALLY_LOG_INTERVAL_MS - 1;
	tally_log_tick();
	assert_int_equal(lines_with("suppressed"), 0);
	/* the next message after the interval: one report line, then the message */
	fake_now += 1;
	site_a(LOG_WARNING, 1);
	assert_int_equal(lines_with("suppressed 15 messages from"), 1);
	assert_int_equal(lines_with("site a"), TALLY_LOG_BURST + 1);
	assert_non_null(strstr(buf, "test_log.c:"));
}

static void test_tick_reports(void **st)
{
	(void)st;
	site_a(LOG_ERR, TALLY_LOG_BURST + 3);
	fake_now += TALLY_LOG_INTERVAL_MS;
	tally_log_tick();
	assert_int_equal(lines_with("suppressed 3 messages"), 1);
	/* said once: a second tick and a quiet site add nothing */
	fake_now += TALLY_LOG_INTERVAL_MS;
	tally_log_tick();
	assert_int_equal(lines_with("suppressed"), 1);
	/* and the site has a full bucket again */
	site_a(LOG_ERR, TALLY_LOG_BURST);
	assert_int_equal(lines_with("site a"), 2 * TALLY_LOG_BURST);
}

/* The record of operators' actions is never cut. */
static void test_always(void **st)
{
	(void)st;
	for (int i = 0; i < 3 * TALLY_LOG_BURST; i++)
		tally_log_always(LOG_NOTICE, "tallyd: audit %d", i);
	assert_int_equal(lines_with("audit"), 3 * TALLY_LOG_BURST);
	tally_log_setup(LOG_WARNING, TALLY_LOG_STDERR);
	tally_log_always(LOG_NOTICE, "tallyd: filtered audit");
	assert_int_equal(lines_with("filtered audit"), 0); /* the level still applies */
}

/* Filtered messages take no token: a debug flood does not silence the site
 * once debug is switched on. */
static void test_filtered_costs_nothing(void **st)
{
	(void)st;
	tally_log_setup(LOG_INFO, TALLY_LOG_STDERR);
	site_a(LOG_DEBUG, 100);
	tally_log_setup(LOG_DEBUG, TALLY_LOG_STDERR);
	site_a(LOG_DEBUG, 1);
	assert_int_equal(lines_with("site a"), 1);
	assert_int_equal(lines_with("suppressed"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tick_reports, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filtered_costs_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_always, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
