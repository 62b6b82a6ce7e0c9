/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tallyctl: the command-line client of tallyd's control socket. Sends one
 * command per connection and prints the JSON answer for people (or as it is with
 * --json). stats shows every counter from the one list, zeroes included.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "stats.h"

#define DEFAULT_SOCKET "/run/tally/tallyd.sock"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: tallyctl [-s SOCKET] COMMAND\n"
		"  -s, --socket PATH    tallyd control socket (default %s)\n"
		"commands:\n"
		"  stats [--json] [--watch SECONDS]   every counter (with rates when watching)\n"
		"  status [--json]                    version, uptime, cores and their state, ports\n"
		"                                     and link, config file, sink, breaker, spool\n"
		"  config [KEY]                       running configuration\n"
		"  config set KEY VALUE               change a runtime key (others need a restart)\n"
		"  rules show                         rules with their counters\n"
		"  rules reload [FILE]                compile the rules file (or FILE) and swap it in\n"
		"  rules test [--statsd] KEY          which rule a key meets and what it becomes\n"
		"  sink                               each sink endpoint: breaker, counts, last error\n"
		"  spool [replay]                     what waits in the spool; replay: retry now\n"
		"  archive                            raw-event archive: state, time range, bytes, drops\n"
		"  where KEY                          the sink endpoint (shard) that holds KEY\n"
		"  top [-n N] [--by count|sum] [--prefix P]\n"
		"                                     heaviest keys of the open windows (as of the\n"
		"                                     last flush)\n"
		"  get KEY                            KEY's open windows, and its stored rows\n"
		"  acl add|del CIDR, acl list         the XDP allow-list (net_af_xdp), live\n"
		"  ratelimit set PPS [BURST]          per-source XDP rate limit; 0 = off\n"
		"  ratelimit show                     the rate limit in force\n"
		"  flush                              flush window tables to the sink now\n"
		"  stop                               drain, flush everything, exit\n",
		DEFAULT_SOCKET);
}

/* tallyd answers within its own 1 s bound per client; a reply slower than this
 * means it is stuck, and a script must hear of it (exit 1), not hang. */
#define REPLY_TIMEOUT_S 10

/* Send one command; return the parsed reply or NULL (message printed). */
static json_t *request(const char *path, const char *cmd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = REPLY_TIMEOUT_S};
	json_error_t jerr;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "tallyctl: cannot reach tallyd at %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	char line[600];
	int len = snprintf(line, sizeof(line), "%s\n", cmd);

	/* One write: tallyd reads one line, answers and closes. */
	if (write(fd, line, (size_t)len) != len) {
		fprintf(stderr, "tallyctl: %s: %s\n", path, strerror(errno));
		close(fd);
		return NULL;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	json_t *j = json_loadfd(fd, JSON_DISABLE_EOF_CHECK, &jerr);
	close(fd);
	if (j == NULL)
		fprintf(stderr, "tallyctl: bad or no reply from tallyd within %d s: %s\n",
			REPLY_TIMEOUT_S, jerr.text);
	return j;
}

static void counters_of(json_t *reply, uint64_t v[TALLY_C_MAX])
{
	json_t *c = json_object_get(reply, "counters");

	for (unsigned i = 0; i < TALLY_C_MAX; i++)
		v[i] = (uint64_t)json_integer_value(json_object_get(c, tally_counter_names[i]));
}

static void print_stats(json_t *reply, const uint64_t *prev, double seconds, uint64_t *v)
{
	json_t *w, *dd = json_object_get(reply, "dedup"), *tb = json_object_get(reply, "tables");
	size_t i;

	counters_of(reply, v);
	tally_stats_print(stdout, v, prev, seconds);
	json_array_foreach(json_object_get(reply, "workers"), i, w) {
		json_t *wc = json_object_get(w, "counters");

		printf("worker %lld (lcore %lld, %lld queues): rx_packets %lld events_accepted %lld\n",
		       json_integer_value(json_object_get(w, "id")),
		       json_integer_value(json_object_get(w, "lcore")),
		       json_integer_value(json_object_get(w, "queues")),
		       json_integer_value(json_object_get(wc, "rx_packets")),
		       json_integer_value(json_object_get(wc, "events_accepted")));
	}
	printf("dedup: capacity %lld ids, %lld bytes, generation %lld\n",
	       json_integer_value(json_object_get(dd, "capacity")),
	       json_integer_value(json_object_get(dd, "bytes")),
	       json_integer_value(json_object_get(dd, "generation")));
	printf("window tables: %lld rows each, %lld bytes in all\n",
	       json_integer_value(json_object_get(tb, "rows_per_table")),
	       json_integer_value(json_object_get(tb, "bytes")));
	const char *e = json_string_value(json_object_get(reply, "sink_last_error"));
	if (e != NULL && e[0] != '\0')
		printf("sink last error: %s\n", e);
}

static int cmd_stats(const char *path, bool json, unsigned watch)
{
	uint64_t prev[TALLY_C_MAX], v[TALLY_C_MAX];
	struct timespec t0 = {0}, t1;
	bool first = true;

	do {
		json_t *r = request(path, "stats");

		if (r == NULL)
			return EXIT_FAILURE;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (json) {
			json_dumpf(r, stdout, JSON_INDENT(2));
			putchar('\n');
		} else {
			double s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;

			if (watch)
				printf("\033[H\033[2J");
			print_stats(r, first ? NULL : prev, s, v);
			memcpy(prev, v, sizeof(v));
		}
		fflush(stdout);
		json_decref(r);
		t0 = t1;
		first = false;
		if (watch)
			sleep(watch);
	} while (watch);
	return EXIT_SUCCESS;
}

/* A reply for people: "key  value" lines, nested objects and arrays indented. */
static void print_value(const char *key, json_t *val, int depth)
{
	const char *k;
	json_t *v;
	size_t i;

	if (json_is_object(val)) {
		printf("%*s%s%s", depth * 2, "", key ? key : "", key ? ":\n" : "");
		json_object_foreach(val, k, v)
			print_value(k, v, depth + (key != NULL));
	} else if (json_is_array(val)) {
		printf("%*s%s:\n", depth * 2, "", key);
		json_array_foreach(val, i, v) {
			const char *name = json_string_value(json_object_get(v, "name"));
			char idx[32];

			snprintf(idx, sizeof(idx), "[%zu]", i);
			print_value(name ? name : idx, v, depth + 1);
		}
	} else if (json_is_string(val)) {
		printf("%*s%-22s %s\n", depth * 2, "", key, json_string_value(val));
	} else if (json_is_boolean(val)) {
		printf("%*s%-22s %s\n", depth * 2, "", key, json_is_true(val) ? "yes" : "no");
	} else {
		printf("%*s%-22s %lld\n", depth * 2, "", key, json_integer_value(val));
	}
}

static int cmd_simple(const char *path, const char *cmd, bool json)
{
	json_t *r = request(path, cmd), *val;
	const char *key;
	int rc = EXIT_SUCCESS;

	if (r == NULL)
		return EXIT_FAILURE;
	if (json_object_get(r, "error") != NULL) {
		fprintf(stderr, "tallyctl: %s: %s\n", cmd,
			json_string_value(json_object_get(r, "error")));
		rc = EXIT_FAILURE;
	} else if (json) {
		json_dumpf(r, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		json_object_foreach(r, key, val)
			print_value(key, val, 0);
	}
	json_decref(r);
	return rc;
}

static int cmd_rules_show(const char *path)
{
	json_t *r = request(path, "rules show"), *rule;
	size_t i;

	if (r == NULL)
		return EXIT_FAILURE;
	printf("rules file: %s (generation %lld)\n",
	       json_string_value(json_object_get(r, "file")),
	       json_integer_value(json_object_get(r, "generation")));
	printf("%4s %5s %-7s %-32s %-20s %12s %12s %12s %12s\n", "id", "line", "action",
	       "pattern", "arg", "matched", "dropped", "renamed", "sampled_out");
	json_array_foreach(json_object_get(r, "rules"), i, rule) {
		const char *arg = json_string_value(json_object_get(rule, "arg"));
		char pat[300];

		snprintf(pat, sizeof(pat), "/%s/", json_string_value(json_object_get(rule, "pattern")));
		printf("%4lld %5lld %-7s %-32s %-20s %12lld %12lld %12lld %12lld\n",
		       json_integer_value(json_object_get(rule, "id")),
		       json_integer_value(json_object_get(rule, "line")),
		       json_string_value(json_object_get(rule, "action")), pat,
		       arg ? arg : "-", json_integer_value(json_object_get(rule, "matched")),
		       json_integer_value(json_object_get(rule, "dropped")),
		       json_integer_value(json_object_get(rule, "renamed")),
		       json_integer_value(json_object_get(rule, "sampled_out")));
	}
	json_decref(r);
	return EXIT_SUCCESS;
}

#define JS(o, k) json_string_value(json_object_get(o, k))
#define JI(o, k) json_integer_value(json_object_get(o, k))

static void print_sink(json_t *k)
{
	json_t *sp = json_object_get(k, "spool");

	printf("%-20s %s: %s, breaker %s\n", "sink", JS(k, "name"), JS(k, "state"),
	       JS(k, "breaker"));
	if (JS(k, "last_error") && JS(k, "last_error")[0])
		printf("%-20s %s\n", "sink last error", JS(k, "last_error"));
	if (json_is_object(sp))
		printf("%-20s %lld records, %lld bytes, oldest %lld ms%s%s\n", "spool",
		       JI(sp, "records"), JI(sp, "bytes"), JI(sp, "oldest_age_ms"),
		       json_is_true(json_object_get(sp, "full_alarm")) ? ", FULL" : "",
		       json_is_true(json_object_get(sp, "age_alarm")) ? ", OLD" : "");
	else
		printf("%-20s none\n", "spool");
}

/* status for people: one line per fact, one per core and per port. */
static void print_status(json_t *r)
{
	json_t *w, *p;
	size_t i;

	printf("%-20s %s\n%-20s %s\n%-20s %s\n", "state", JS(r, "state"), "version",
	       JS(r, "version"), "appliance", JS(r, "appliance"));
	printf("%-20s %.1f s\n", "uptime", JI(r, "uptime_ms") / 1000.0);
	printf("%-20s %s\n", "config file", JS(r, "config_file") ? JS(r, "config_file") : "(none)");
	printf("%-20s lcore %lld (control, flusher %s)\n", "main", JI(r, "main_lcore"),
	       JS(r, "flusher"));
	json_array_foreach(json_object_get(r, "workers"), i, w)
		printf("worker %-13lld lcore %lld socket %lld, %lld queue(s): %s\n", JI(w, "id"),
		       JI(w, "lcore"), JI(w, "socket"), JI(w, "queues"), JS(w, "state"));
	json_array_foreach(json_object_get(r, "ports"), i, p)
		printf("port %-15lld %s (%s): link %s %lld Mbps %s-duplex\n", JI(p, "id"),
		       JS(p, "name"), JS(p, "driver"), JS(p, "link"), JI(p, "speed_mbps"),
		       JS(p, "duplex"));
	print_sink(json_object_get(r, "sink"));
	printf("%-20s %s\n%-20s %s\n", "control socket", JS(r, "ctl_socket"), "metrics",
	       JS(r, "metrics_addr")[0] ? JS(r, "metrics_addr") : "off");
	printf("%-20s %lld\n%-20s %lld\n", "window_ms", JI(r, "window_ms"), "next_batch_seq",
	       JI(r, "next_batch_seq"));
}

static int cmd_status(const char *path, bool json)
{
	json_t *r = request(path, "status");

	if (r == NULL)
		return EXIT_FAILURE;
	if (json)
		json_dumpf(r, stdout, JSON_INDENT(2)), putchar('\n');
	else
		print_status(r);
	json_decref(r);
	return EXIT_SUCCESS;
}

/* Options may come before or after the command: tallyctl stats --json. */
#define MAX_WORDS 5

/* tallyctl top's options. */
static unsigned top_n = 10;
static const char *top_by = "count", *top_prefix = "";

static int cmd_top(const char *path, bool json)
{
	char cmd[400];
	json_t *r, *k;
	size_t i;

	snprintf(cmd, sizeof(cmd), "top %u %s %s", top_n, top_by, top_prefix);
	r = request(path, cmd);
	if (r == NULL)
		return EXIT_FAILURE;
	if (json_object_get(r, "error") != NULL || json) {
		int bad = json_object_get(r, "error") != NULL;

		if (bad)
			fprintf(stderr, "tallyctl: top: %s\n", JS(r, "error"));
		else
			json_dumpf(r, stdout, JSON_INDENT(2)), putchar('\n');
		json_decref(r);
		return bad ? EXIT_FAILURE : EXIT_SUCCESS;
	}
	printf("%12s %16s  key   (open windows, as of the last flush)\n", "count", "sum");
	json_array_foreach(json_object_get(r, "keys"), i, k)
		printf("%12lld %16.6g  %s\n", JI(k, "count"),
		       json_real_value(json_object_get(k, "sum")), JS(k, "key"));
	json_decref(r);
	return EXIT_SUCCESS;
}

static int parse(int argc, char **argv, const char **path, bool *json, unsigned *watch,
		 const char *words[MAX_WORDS])
{
	unsigned nwords = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			return 1;
		if (!strcmp(a, "--json") || !strcmp(a, "-j")) {
			*json = true;
		} else if ((!strcmp(a, "-s") || !strcmp(a, "--socket")) && i + 1 < argc) {
			*path = argv[++i];
		} else if (!strncmp(a, "--socket=", 9)) {
			*path = a + 9;
		} else if ((!strcmp(a, "-w") || !strcmp(a, "--watch"))) {
			*watch = i + 1 < argc && argv[i + 1][0] != '-' ? (unsigned)atoi(argv[++i]) : 1;
			*watch = *watch ? *watch : 1;
		} else if (!strcmp(a, "-n") && i + 1 < argc) {
			top_n = (unsigned)atoi(argv[++i]);
		} else if (!strcmp(a, "--by") && i + 1 < argc) {
			top_by = argv[++i];
		} else if (!strcmp(a, "--prefix") && i + 1 < argc) {
			top_prefix = argv[++i];
		} else if ((a[0] == '-' && strcmp(a, "--statsd") != 0) || nwords == MAX_WORDS) {
			fprintf(stderr, "tallyctl: unexpected argument \"%s\"\n", a);
			return 2;
		} else {
			words[nwords++] = a;
		}
	}
	return nwords == 0 ? 2 : 0;
}

int main(int argc, char **argv)
{
	const char *path = getenv("TALLY_SOCKET") ? getenv("TALLY_SOCKET") : DEFAULT_SOCKET;
	const char *words[MAX_WORDS] = {NULL};
	bool json = false;
	unsigned watch = 0;
	char cmd[512];
	int r = parse(argc, argv, &path, &json, &watch, words);

	signal(SIGPIPE, SIG_IGN); /* a daemon that goes away is an error message, not a kill */
	if (r != 0) {
		usage(r == 1 ? stdout : stderr);
		return r == 1 ? EXIT_SUCCESS : 2;
	}
	if (!strcmp(words[0], "stats"))
		return cmd_stats(path, json, watch);
	if (!strcmp(words[0], "status"))
		return cmd_status(path, json);
	/* debug: test hooks (debug park-worker N MS), left out of the help. */
	if (!strcmp(words[0], "top"))
		return cmd_top(path, json);
	if (strcmp(words[0], "config") && strcmp(words[0], "rules") && strcmp(words[0], "debug") &&
	    strcmp(words[0], "get") &&
	    strcmp(words[0], "sink") && strcmp(words[0], "spool") && strcmp(words[0], "where") &&
	    strcmp(words[0], "flush") && strcmp(words[0], "stop") && strcmp(words[0], "acl") &&
	    strcmp(words[0], "ratelimit") && strcmp(words[0], "archive")) {
		fprintf(stderr, "tallyctl: unknown command \"%s\"\n", words[0]);
		usage(stderr);
		return 2;
	}
	cmd[0] = '\0';
	for (int i = 0; i < MAX_WORDS && words[i] != NULL; i++)
		if ((size_t)snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), "%s%s",
				     i ? " " : "", words[i]) >= sizeof(cmd) - strlen(cmd)) {
			fprintf(stderr, "tallyctl: command longer than %zu bytes\n", sizeof(cmd) - 1);
			return 2;
		}
	if (!strcmp(words[0], "rules") && words[1] && !strcmp(words[1], "show") && !json)
		return cmd_rules_show(path);
	return cmd_simple(path, cmd, json);
}
