/* SPDX-License-Identifier: BSD-3-Clause */
/* Config: defaults, every key round-trips, every error names the key (and line). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "config.h"

static struct tally_config c;
static char err[512];

static void expect_err(const char *key, const char *value, const char *part)
{
	tally_config_defaults(&c);
	assert_int_not_equal(tally_config_set(&c, key, value, err, sizeof(err)), 0);
	if (strstr(err, part) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", err, part);
}

static void test_defaults_roundtrip(void **st)
{
	char buf[1100];

	(void)st;
	tally_config_defaults(&c);
	assert_int_equal(c.window_ms, 10000);
	assert_int_equal(c.tly1_port, 7000);
	assert_string_equal(c.sink, "sqlite");
	for (size_t i = 0; i < tally_cfg_nkeys; i++) {
		const struct tally_cfg_key *k = &tally_cfg_keys[i];

		assert_int_equal(tally_config_get(&c, k->name, buf, sizeof(buf)), 0);
		assert_string_equal(buf, k->def);
		assert_int_equal(tally_config_set(&c, k->name, buf, err, sizeof(err)), 0);
	}
	assert_int_equal(tally_config_set(&c, "window_ms", "60000", err, sizeof(err)), 0);
	tally_config_get(&c, "window_ms", buf, sizeof(buf));
	assert_string_equal(buf, "60000");
}

static void test_bad_values(void **st)
{
	char longs[400];

	(void)st;
	expect_err("window_ms", "abc", "window_ms: \"abc\" is not a whole number");
	expect_err("window_ms", "10x", "not a whole number");
	expect_err("window_ms", "-5", "not a whole number");
	expect_err("window_ms", "", "not a whole number");
	expect_err("window_ms", "0", "below the minimum 1");
	expect_err("tly1_port", "65536", "above the maximum 65535");
	expect_err("windw_ms", "1", "did you mean \"window_ms\"");
	expect_err("zzzzzzzz", "1", "unknown key \"zzzzzzzz\"");
	expect_err("sink", "mysql", "sink");
	expect_err("appliance_id", "a b", "appliance_id");
	expect_err("appliance_id", "", "appliance_id");
	expect_err("statsd_percentiles", "50,abc", "\"abc\" in \"50,abc\" is not a percentile");
	expect_err("statsd_percentiles", "50,50", "\"50\"");
	expect_err("statsd_percentiles", "0", "not a percentile");
	expect_err("statsd_percentiles", "99.99999", "not a percentile");
	expect_err("statsd_percentiles", "", "not a percentile");
	expect_err("sketch_rows", "0", "below the minimum 1");
	expect_err("mac_keys", "1:00", "mac_keys");
	expect_err("mac_keys", "0:000102030405060708090a0b0c0d0e0f", "mac_keys");
	expect_err("mac_keys", "1:000102030405060708090a0b0c0d0e0g", "mac_keys");
	memset(longs, 'x', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = 0;
	expect_err("sqlite_path", longs, "longer than");
}

static void test_mac_keys(void **st)
{
	bool present[256];
	uint8_t key[256][16];

	(void)st;
	assert_int_equal(tally_config_mac_keys("1:000102030405060708090a0b0c0d0e0f,255:"
					       "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", present, key,
					       err, sizeof(err)), 0);
	assert_true(present[1] && present[255] && !present[2]);
	assert_int_equal(key[1][15], 0x0f);
	assert_int_equal(key[255][0], 0xff);
	assert_int_equal(tally_config_mac_keys("", present, key, err, sizeof(err)), 0);
	assert_false(present[1]);
}

static const char *write_file(const char *text)
{
	static char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/tally-cfg-%d.conf", getpid());
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static void expect_file_err(const char *text, const char *part)
{
	const char *p = write_file(text);

	tally_config_defaults(&c);
	assert_int_not_equal(tally_config_load(&c, p, err, sizeof(err)), 0);
	if (strstr(err, part) == NULL || strstr(err, p) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", err, part);
	unlink(p);
}

static void test_file(void **st)
{
	const char *p = write_file("# comment\n\nwindow_ms = 5000\nport =\nsqlite_path = /tmp/x.db\n");

	(void)st;
	tally_config_defaults(&c);
	assert_int_equal(tally_config_load(&c, p, err, sizeof(err)), 0);
	assert_int_equal(c.window_ms, 5000);
	assert_string_equal(c.sqlite_path, "/tmp/x.db");
	unlink(p);
	expect_file_err("window_ms = 1\nflush_interval_ms = 5\n", ":2: flush_interval_ms: 5 is below");
	expect_file_err("a\n", ":1:");
	expect_file_err("window_ms = 1\n\nwindow_ms = 2\n", ":3: window_ms set twice (first on line 1)");
	expect_file_err("[main]\nwindow_ms = 1\n", ":2: [main]: sections are not used");
	expect_file_err("\nnot_a_key = 1\n", ":2: unknown key");
	assert_int_equal(tally_config_load(&c, "/nonexistent.conf", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent.conf: No such file"));
}

/* Secrets: never read back, never echoed in an error, a warning when the file
 * holding them is readable by others. */
static void test_secrets(void **st)
{
	const char *k = "7:00112233445566778899aabbccddeeff";
	char buf[256], line[128];
	const char *p;
	FILE *cap;

	(void)st;
	tally_config_defaults(&c);
	assert_int_equal(tally_config_find("mac_keys")->sensitive, true);
	assert_int_equal(tally_config_find("pg_conninfo")->sensitive, true);
	assert_int_equal(tally_config_find("redis_password")->sensitive, true);
	assert_int_equal(tally_config_get(&c, "mac_keys", buf, sizeof(buf)), 0);
	assert_string_equal(buf, ""); /* unset reads as unset */
	assert_int_equal(tally_config_set(&c, "mac_keys", k, err, sizeof(err)), 0);
	assert_int_equal(tally_config_get(&c, "mac_keys", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "(hidden)");
	/* a bad entry next to a good one: the error names the entry, not the key */
	assert_int_not_equal(tally_config_set(&c, "mac_keys", "7:00112233445566778899aabbccddeeff,"
					      "8:0011223344556677zz99aabbccddeeff", err, sizeof(err)), 0);
	assert_null(strstr(err, "00112233"));
	assert_non_null(strstr(err, "key 8"));
	/* a world-readable file holding a secret: warned on stderr */
	snprintf(line, sizeof(line), "mac_keys = %s\n", k);
	p = write_file(line);
	chmod(p, 0644);
	cap = freopen("/tmp/tally-cfg-stderr.txt", "w", stderr);
	assert_non_null(cap);
	assert_int_equal(tally_config_load(&c, p, err, sizeof(err)), 0);
	fflush(stderr);
	{
		FILE *f = fopen("/tmp/tally-cfg-stderr.txt", "r");
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);

		buf[n] = '\0';
		fclose(f);
	}
	assert_non_null(strstr(buf, "readable by group or others"));
	assert_null(strstr(buf, "00112233"));
	unlink(p);
	unlink("/tmp/tally-cfg-stderr.txt");
}

static void test_args(void **st)
{
	const char *p = write_file("window_ms = 5000\nflush_interval_ms = 200\n");
	char *argv[] = {"tallyd", "--window-ms=7000", "-c", (char *)p, "--tly1_port", "9000",
			"--", "-l", "0-1", NULL};
	char *bad[] = {"tallyd", "--nope=1", NULL};
	char *stray[] = {"tallyd", "stray", NULL};
	char *help[] = {"tallyd", "--help-config", NULL};
	int eal;

	(void)st;
	assert_int_equal(tally_config_from_args(&c, 9, argv, &eal, err, sizeof(err)), 0);
	assert_int_equal(c.window_ms, 7000);         /* the command line wins over the file */
	assert_int_equal(c.flush_interval_ms, 200);  /* the file over the default */
	assert_int_equal(c.tly1_port, 9000);
	assert_int_equal(eal, 7);
	assert_int_not_equal(tally_config_from_args(&c, 2, bad, &eal, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "nope"));
	assert_int_not_equal(tally_config_from_args(&c, 2, stray, &eal, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "stray"));
	assert_int_equal(tally_config_from_args(&c, 2, help, &eal, err, sizeof(err)), 2);
	unlink(p);
}

static void test_validate(void **st)
{
	(void)st;
	tally_config_defaults(&c);
	assert_int_equal(tally_config_validate(&c, err, sizeof(err)), 0);
	c.tly1_port = c.statsd_port = 0;
	assert_int_not_equal(tally_config_validate(&c, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "tly1_port"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_roundtrip), cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_mac_keys), cmocka_unit_test(test_file),
		cmocka_unit_test(test_args), cmocka_unit_test(test_validate),
		cmocka_unit_test(test_secrets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
