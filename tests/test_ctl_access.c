/* SPDX-License-Identifier: BSD-3-Clause */
/* ctl_access.c: which request lines only read, and who gets which access.
 * The read-only list is an allow-list: anything unknown changes state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ctl_access.h"

static void test_readonly_commands(void **st)
{
	static const char *const reads[] = {
		"stats", "status", "config", "config show", "config window_ms",
		"config get window_ms", "rules show", "rules test api.x",
		"rules test --statsd api.x|c", "sink", "spool", "archive", "where api.x",
		"top 10 count", "top 5 sum api.", "get api.x", "acl list", "ratelimit show",
		"drain status", "request-too-long",
	};

	(void)st;
	for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++)
		if (!tally_ctl_readonly(reads[i]))
			fail_msg("\"%s\" should be read-only", reads[i]);
}

static void test_state_changing_commands(void **st)
{
	static const char *const writes[] = {
		"flush", "flush now", "stop", "drain", "drain now", "resume",
		"config set lateness_ms 1", "config set", "rules reload", "rules reload /x",
		"rules", "spool replay", "spool x", "acl add 10.0.0.0/8", "acl del ::/0", "acl",
		"ratelimit set 5", "ratelimit", "ratelimit show x", "debug park-worker 0 10",
		"", "nosuch", "statsx", "stop stats", "configset x",
	};

	(void)st;
	for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++)
		if (tally_ctl_readonly(writes[i]))
			fail_msg("\"%s\" should count as changing state", writes[i]);
}

static void test_peer_access(void **st)
{
	gid_t groups[] = {10, 20, 30};

	(void)st;
	/* root and tallyd's own user: everything, group or not */
	assert_int_equal(tally_ctl_peer_access(0, 0, NULL, 0, 500, (gid_t)-1), TALLY_CTL_FULL);
	assert_int_equal(tally_ctl_peer_access(500, 500, NULL, 0, 500, 30), TALLY_CTL_FULL);
	/* the read-only group as primary or supplementary group */
	assert_int_equal(tally_ctl_peer_access(1001, 30, NULL, 0, 500, 30), TALLY_CTL_READONLY);
	assert_int_equal(tally_ctl_peer_access(1001, 5, groups, 3, 500, 30), TALLY_CTL_READONLY);
	/* anyone else, and everyone but root and owner when no group is set */
	assert_int_equal(tally_ctl_peer_access(1001, 5, groups, 2, 500, 30), TALLY_CTL_NONE);
	assert_int_equal(tally_ctl_peer_access(1001, 30, groups, 3, 500, (gid_t)-1),
			 TALLY_CTL_NONE);
}

static void test_group_names(void **st)
{
	char err[256];
	gid_t g = 0;

	(void)st;
	assert_int_equal(tally_ctl_group("ctl_ro_group", "root", &g, err, sizeof(err)), 0);
	assert_int_equal(g, 0);
	assert_int_equal(tally_ctl_group("ctl_ro_group", "4242", &g, err, sizeof(err)), 0);
	assert_int_equal(g, 4242);
	assert_int_not_equal(tally_ctl_group("ctl_ro_group", "no-such-group-x", &g, err,
					     sizeof(err)), 0);
	assert_non_null(strstr(err, "ctl_ro_group: no group \"no-such-group-x\""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_readonly_commands),
		cmocka_unit_test(test_state_changing_commands),
		cmocka_unit_test(test_peer_access),
		cmocka_unit_test(test_group_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
