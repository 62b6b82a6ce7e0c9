/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tallyctl: the command-line client of tallyd's control socket. Sends one
 * command per connection and prints the JSON answer for people (or as it is with
 * --json). stats shows every counter from the one list, zeroes included. Every
 * command's help comes from one table (cmds[]), its arguments are checked
 * before anything is sent, and the exit code says what happened (EX_*).
 */
#include <errno.h>
#include <poll.h>
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

/*
 * Exit codes, the same for every command, so scripts can tell a refused
 * command from a daemon that is not there (README: tallyctl).
 */
enum {
	EX_OK = 0,          /* done */
	EX_FAILED = 1,      /* tallyd answered with an error, or an unreadable answer */
	EX_USAGE = 2,       /* bad command line: nothing was sent */
	EX_UNREACHABLE = 3, /* no tallyd at the socket: missing, refused, no permission */
	EX_TIMEOUT = 4,     /* no answer in time (or drain not complete by --timeout) */
	EX_DENIED = 5,      /* tallyd refused this user the command (ctl_ro_group) */
};

/* Options, each allowed only with the commands that use it. */
enum {
	O_JSON = 1, O_WATCH = 2, O_N = 4, O_BY = 8, O_PREFIX = 16, O_TIMEOUT = 32,
	O_NOWAIT = 64, O_STATSD = 128,
};

struct cmd_help {
	const char *name;
	const char *usage;   /* after "tallyctl [-s SOCKET] " */
	const char *summary; /* one line of the overview */
	const char *text;    /* what it does */
	const char *options; /* option lines, or NULL */
	const char *exits;   /* exit codes of its own, or NULL */
	unsigned opts;       /* O_* it accepts */
	bool readonly;       /* allowed to ctl_ro_group members */
};

static const struct cmd_help cmds[] = {
	{"stats", "stats [--json] [--watch [SECONDS]]", "every counter (with rates when watching)",
	 "Every counter of tallyd, zeroes included, with its help text; then per-worker\n"
	 "packets and events, the dedup table and the window tables. --watch redraws it\n"
	 "every SECONDS (default 1) with rates per second until Ctrl-C.",
	 "  --json               the whole answer as JSON (plus per-worker counters)\n"
	 "  -w, --watch [S]      refresh every S seconds (default 1)\n",
	 NULL, O_JSON | O_WATCH, true},
	{"status", "status [--json]", "version, uptime, cores, ports and link, sink, spool",
	 "Version, appliance, uptime, state (running, draining, drained, stopping),\n"
	 "config file, each worker's lcore and health, each port's link, the sink and\n"
	 "its breaker, the spool, the control socket and the metrics address.",
	 "  --json               the answer as JSON\n", NULL, O_JSON, true},
	{"config", "config [show | KEY | get KEY] | config set KEY VALUE [--json]",
	 "running configuration; set: change a runtime key",
	 "config or config show prints every key of the running configuration (secrets\n"
	 "as \"(hidden)\"); config KEY or config get KEY prints one. config set KEY VALUE\n"
	 "changes a runtime key live (tallyd --help-config: the runtime column); the\n"
	 "others need a restart. Changes are not written back to the config file.",
	 "  --json               the answer as JSON\n",
	 "  1  unknown key, a bad value, or a key that needs a restart\n", O_JSON, true},
	{"rules", "rules show | rules reload [FILE] | rules test [--statsd] KEY",
	 "rules and their counters; reload; test a key",
	 "show lists the rules with matched/dropped/renamed/sampled_out counters.\n"
	 "reload compiles the rules file again (or FILE, which becomes rules_file) and\n"
	 "swaps it in without stopping traffic; a bad file leaves the old rules.\n"
	 "test says which rule KEY meets and what it becomes (--statsd: KEY is a StatsD\n"
	 "canonical key, name|type[|#tags]).",
	 "  --statsd             rules test: KEY is a StatsD key\n"
	 "  --json               the answer as JSON\n",
	 "  1  the rules file does not compile (reload), or no rules_file is set\n",
	 O_JSON | O_STATSD, true},
	{"sink", "sink [--json]", "each sink endpoint: breaker, counts, last error",
	 "Each sink endpoint (one, or one per PostgreSQL shard): circuit breaker,\n"
	 "batches written, skipped, spooled and replayed, errors and the last one.",
	 "  --json               the answer as JSON\n", NULL, O_JSON, true},
	{"spool", "spool [replay] [--json]", "what waits in the spool; replay: retry now",
	 "What waits in each endpoint's spool: records, bytes, age of the oldest, alarms.\n"
	 "spool replay makes every endpoint try its spool now (and releases a breaker\n"
	 "held open by a permanent error, once its cause is fixed).",
	 "  --json               the answer as JSON\n", NULL, O_JSON, true},
	{"archive", "archive [--json]", "raw-event archive: state, time range, bytes, drops",
	 "The raw-event archive (archive_dir): on, off or paused (and why), the time\n"
	 "range and size it holds, what it wrote and what it left out.",
	 "  --json               the answer as JSON\n", NULL, O_JSON, true},
	{"where", "where KEY [--json]", "the sink endpoint (shard) that holds KEY",
	 "The sink endpoint that holds KEY's rows: with PostgreSQL shards, the shard\n"
	 "consistent hashing places it on.",
	 "  --json               the answer as JSON\n", NULL, O_JSON, true},
	{"top", "top [-n N] [--by count|sum] [--prefix P] [--json]",
	 "heaviest keys of the open windows (as of the last flush)",
	 "The N heaviest keys of the open windows by count or sum, as of the last flush\n"
	 "(up to flush_interval_ms behind); --prefix keeps the keys that start with P.",
	 "  -n N                 how many keys, 1..1000 (default 10)\n"
	 "  --by count|sum       order by (default count)\n"
	 "  --prefix P           only keys starting with P\n"
	 "  --json               the answer as JSON\n",
	 NULL, O_JSON | O_N | O_BY | O_PREFIX, true},
	{"get", "get KEY [--json]", "KEY's open windows, and its stored rows",
	 "KEY's rows in the open windows (as of the last flush), and with the SQLite\n"
	 "sink its newest 20 stored rows.",
	 "  --json               the answer as JSON\n", NULL, O_JSON, true},
	{"acl", "acl add CIDR | acl del CIDR | acl list", "the XDP allow-list (net_af_xdp), live",
	 "The source prefixes the XDP front lets send events (net_af_xdp with tally_xdp);\n"
	 "an empty list lets everyone in. Changes are live, not written to the config.",
	 "  --json               the answer as JSON\n",
	 "  1  no XDP front, or a bad prefix\n", O_JSON, false},
	{"ratelimit", "ratelimit set PPS [BURST] | ratelimit show",
	 "per-source XDP rate limit; 0 = off",
	 "The XDP front's per-source token bucket: PPS datagrams per second, BURST deep;\n"
	 "set 0 switches it off. Live, not written to the config.",
	 "  --json               the answer as JSON\n",
	 "  1  no XDP front, or a value out of range\n", O_JSON, false},
	{"flush", "flush", "flush the window tables to the sink now",
	 "Asks the flusher to seal every worker's window table and write it now,\n"
	 "instead of at the next flush_interval_ms tick. Returns at once.", NULL, NULL, 0, false},
	{"drain", "drain [status] [--timeout SECONDS] [--no-wait] [--json]",
	 "stop taking traffic, flush everything, stay up idle",
	 "Takes the appliance out of rotation without stopping it: the workers stop\n"
	 "polling their RX queues (frames wait in the rings, then the NIC drops them,\n"
	 "counted as port_imissed; over memif the sender waits), everything they had\n"
	 "accepted is flushed and placed in the sink or the spool, and tallyd stays up,\n"
	 "taking no traffic, until `tallyctl resume` (or `stop`, which exits as always).\n"
	 "Waits until the drain is complete and reports what it flushed: batches, rows\n"
	 "and events placed, those committed to the sink, batch parts spooled.\n"
	 "drain status reports without starting one.",
	 "  --timeout SECONDS    wait at most this long (default 120)\n"
	 "  --no-wait            start the drain and return at once\n"
	 "  --json               the report as JSON\n",
	 "  4  not complete within --timeout (tallyd goes on draining)\n",
	 O_JSON | O_TIMEOUT | O_NOWAIT, false},
	{"resume", "resume", "take traffic again after a drain",
	 "Ends a drain: the workers poll their RX queues again.", NULL, NULL, 0, false},
	{"stop", "stop", "drain, flush everything, exit (as SIGTERM)",
	 "tallyd stops its workers after their current burst, flushes everything they\n"
	 "accepted to the sink (or the spool) and exits. Returns at once; tallyd's exit\n"
	 "report goes to its log.", NULL, NULL, 0, false},
	{"help", "help [COMMAND]", "this overview, or one command's help",
	 "Without COMMAND, the overview of every command; with it, the command's usage,\n"
	 "what it does, its options and exit codes (as tallyctl COMMAND --help).",
	 NULL, NULL, 0, true},
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static const struct cmd_help *find_cmd(const char *name)
{
	for (size_t i = 0; i < NCMDS; i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

static const char exit_codes[] =
	"exit codes:\n"
	"  0  done\n"
	"  1  tallyd answered with an error (the command failed), or an unreadable answer\n"
	"  2  usage error: unknown command, option or missing argument (nothing sent)\n"
	"  3  cannot reach tallyd: socket missing, connection refused, no permission\n"
	"  4  no answer within 10 s\n"
	"  5  permission denied: tallyd refused this user the command (ctl_ro_group)\n";

static void usage(FILE *out)
{
	fprintf(out, "usage: tallyctl [-s SOCKET] COMMAND [ARGS] [OPTIONS]\n"
		"  -s, --socket PATH    tallyd control socket (default $TALLY_SOCKET or %s)\n"
		"  -h, --help           this overview; tallyctl COMMAND --help (or tallyctl help\n"
		"                       COMMAND): the command's usage, options and exit codes\n"
		"commands:\n", DEFAULT_SOCKET);
	for (size_t i = 0; i < NCMDS; i++)
		fprintf(out, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
	fprintf(out, "%s", exit_codes);
}

static void cmd_usage(FILE *out, const struct cmd_help *c)
{
	fprintf(out, "usage: tallyctl [-s SOCKET] %s\n\n%s\n", c->usage, c->text);
	fprintf(out, "%s\n", c->readonly ? "Read-only: members of ctl_ro_group may use it."
		     : "Changes state: root and tallyd's user only.");
	if (c->options != NULL)
		fprintf(out, "\noptions:\n%s", c->options);
	fprintf(out, "  -s, --socket PATH    tallyd control socket (default $TALLY_SOCKET or %s)\n"
		"\n%s", DEFAULT_SOCKET, exit_codes);
	if (c->exits != NULL)
		fprintf(out, "%s:\n%s", c->name, c->exits);
}

/* tallyd answers within its own 1 s bound per client; a reply slower than this
 * means it is stuck, and a script must hear of it (exit 4), not hang. */
#define REPLY_TIMEOUT_S 10
#define REPLY_MAX (16 << 20)

/* Read the one-line answer; EX_OK with *out (malloc'd) or an exit code. */
static int read_reply(int fd, const char *path, char **out)
{
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap);
	struct pollfd p = {.fd = fd, .events = POLLIN};

	while (buf != NULL) {
		ssize_t n;

		if (poll(&p, 1, REPLY_TIMEOUT_S * 1000) == 0) {
			fprintf(stderr, "tallyctl: no answer from tallyd at %s within %d s\n", path,
				REPLY_TIMEOUT_S);
			free(buf);
			return EX_TIMEOUT;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(buf + len - n, '\n', (size_t)n) != NULL)
			break;
		if (len + 1 == cap) {
			char *more = cap < REPLY_MAX ? realloc(buf, cap * 2) : NULL;

			if (more == NULL)
				break;
			buf = more;
			cap *= 2;
		}
	}
	if (buf == NULL || len == 0) {
		fprintf(stderr, "tallyctl: cannot reach tallyd at %s: it closed the connection "
			"without an answer\n", path);
		free(buf);
		return EX_UNREACHABLE;
	}
	buf[len] = '\0';
	*out = buf;
	return EX_OK;
}

/* Send one command; EX_OK with the parsed reply in *out, or an exit code
 * (message printed). */
static int request(const char *path, const char *cmd, json_t **out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	json_error_t jerr;
	char line[600], *text = NULL;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), len, rc;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "tallyctl: cannot reach tallyd at %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return EX_UNREACHABLE;
	}
	len = snprintf(line, sizeof(line), "%s\n", cmd);
	/* One write: tallyd reads one line, answers and closes. */
	if (write(fd, line, (size_t)len) != len) {
		fprintf(stderr, "tallyctl: cannot reach tallyd at %s: %s\n", path, strerror(errno));
		close(fd);
		return EX_UNREACHABLE;
	}
	rc = read_reply(fd, path, &text);
	close(fd);
	if (rc != EX_OK)
		return rc;
	*out = json_loads(text, JSON_DISABLE_EOF_CHECK, &jerr);
	free(text);
	if (*out == NULL) {
		fprintf(stderr, "tallyctl: unreadable answer from tallyd: %s\n", jerr.text);
		return EX_FAILED;
	}
	return EX_OK;
}

/* request, and an answer that is an error is one: printed, its exit code. */
static int call(const char *path, const char *cmd, json_t **out)
{
	int rc = request(path, cmd, out);
	json_t *e;

	if (rc != EX_OK)
		return rc;
	e = json_object_get(*out, "error");
	if (e == NULL)
		return EX_OK;
	fprintf(stderr, "tallyctl: %s: %s\n", cmd, json_string_value(e));
	rc = json_is_true(json_object_get(*out, "denied")) ? EX_DENIED : EX_FAILED;
	json_decref(*out);
	*out = NULL;
	return rc;
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
		json_t *r;
		int rc = call(path, "stats", &r);

		if (rc != EX_OK)
			return rc;
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
	return EX_OK;
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
	json_t *r, *val;
	const char *key;
	int rc = call(path, cmd, &r);

	if (rc != EX_OK)
		return rc;
	if (json) {
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
	json_t *r, *rule;
	size_t i;
	int rc = call(path, "rules show", &r);

	if (rc != EX_OK)
		return rc;
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
	return EX_OK;
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
	json_t *r;
	int rc = call(path, "status", &r);

	if (rc != EX_OK)
		return rc;
	if (json)
		json_dumpf(r, stdout, JSON_INDENT(2)), putchar('\n');
	else
		print_status(r);
	json_decref(r);
	return EX_OK;
}

/* tallyctl top's options. */
static unsigned top_n = 10;
static const char *top_by = "count", *top_prefix = "";

static int cmd_top(const char *path, bool json)
{
	char cmd[400];
	json_t *r, *k;
	size_t i;
	int rc;

	snprintf(cmd, sizeof(cmd), "top %u %s %s", top_n, top_by, top_prefix);
	rc = call(path, cmd, &r);
	if (rc != EX_OK)
		return rc;
	if (json) {
		json_dumpf(r, stdout, JSON_INDENT(2)), putchar('\n');
		json_decref(r);
		return EX_OK;
	}
	printf("%12s %16s  key   (open windows, as of the last flush)\n", "count", "sum");
	json_array_foreach(json_object_get(r, "keys"), i, k)
		printf("%12lld %16.6g  %s\n", JI(k, "count"),
		       json_real_value(json_object_get(k, "sum")), JS(k, "key"));
	json_decref(r);
	return EX_OK;
}

/* A drain reply's state; "" if it has none (never a NULL to strcmp). */
static const char *drain_state(json_t *r)
{
	const char *st = JS(r, "state");

	return st != NULL ? st : "";
}

/* tallyctl drain: start it, wait for "drained" (polling drain status), report. */
static void print_drain(json_t *r)
{
	json_t *f = json_object_get(r, "flushed"), *c = json_object_get(r, "committed");

	if (strcmp(drain_state(r), "drained") == 0)
		printf("drained in %lld ms: tallyd takes no traffic (tallyctl resume takes it again, "
		       "tallyctl stop exits)\n", JI(r, "elapsed_ms"));
	else
		printf("%s for %lld ms\n", drain_state(r), JI(r, "elapsed_ms"));
	printf("%-20s %lld batches, %lld rows, %lld events (in the sink or the spool)\n",
	       "flushed", JI(f, "batches"), JI(f, "rows"), JI(f, "events"));
	printf("%-20s %lld batches, %lld rows, %lld events\n", "committed to the sink",
	       JI(c, "batches"), JI(c, "rows"), JI(c, "events"));
	printf("%-20s %lld batch parts (the spool holds %lld)\n", "spooled", JI(r, "spooled"),
	       JI(r, "spool_records"));
	printf("%-20s %lld accepted since start, %lld flushed\n", "events",
	       JI(r, "events_accepted"), JI(r, "events_flushed_total"));
	if (JI(r, "rows_lost") != 0)
		printf("%-20s %lld rows NOT stored\n", "lost", JI(r, "rows_lost"));
}

static int cmd_drain(const char *path, const char *sub, bool json, bool wait, unsigned timeout)
{
	struct timespec t0, t;
	json_t *r;
	int rc = call(path, sub != NULL ? "drain status" : "drain", &r);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (rc == EX_OK && sub == NULL && wait && strcmp(drain_state(r), "drained") != 0) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec >= (time_t)timeout) {
			fprintf(stderr, "tallyctl: drain: not complete within %u s (tallyd goes on "
				"draining; tallyctl drain status)\n", timeout);
			json_decref(r);
			return EX_TIMEOUT;
		}
		json_decref(r);
		usleep(100 * 1000);
		rc = call(path, "drain status", &r);
	}
	if (rc != EX_OK)
		return rc;
	if (json)
		json_dumpf(r, stdout, JSON_INDENT(2)), putchar('\n');
	else if (strcmp(drain_state(r), "running") == 0)
		printf("running: no drain\n");
	else
		print_drain(r);
	json_decref(r);
	return EX_OK;
}

/* The command line, parsed: options may come before or after the command. */
#define MAX_WORDS 5

struct args {
	const char *path;
	const char *words[MAX_WORDS];
	unsigned nwords;
	unsigned opts; /* O_* given */
	bool help;
	unsigned watch, timeout;
};

static int bad(const char *fmt, const char *a)
{
	fprintf(stderr, "tallyctl: ");
	fprintf(stderr, fmt, a);
	fputc('\n', stderr);
	return EX_USAGE;
}

static bool number(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (s[0] == '\0' || s[0] == '-' || *end != '\0' || v < lo || v > hi)
		return false;
	*out = (unsigned)v;
	return true;
}

/* One option at argv[*i]; EX_OK, or EX_USAGE (message printed). */
static int option(struct args *a, int argc, char **argv, int *i)
{
	const char *o = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;

	if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
		a->help = true;
	} else if (!strcmp(o, "--json") || !strcmp(o, "-j")) {
		a->opts |= O_JSON;
	} else if (!strcmp(o, "-s") || !strcmp(o, "--socket")) {
		if (v == NULL)
			return bad("%s needs a PATH", o);
		a->path = argv[++*i];
	} else if (!strncmp(o, "--socket=", 9)) {
		a->path = o + 9;
	} else if (!strcmp(o, "-w") || !strcmp(o, "--watch")) {
		a->opts |= O_WATCH;
		a->watch = 1;
		if (v != NULL && v[0] != '-' && !number(argv[++*i], 1, 86400, &a->watch))
			return bad("--watch: \"%s\" is not a number of seconds 1..86400", v);
	} else if (!strcmp(o, "-n")) {
		a->opts |= O_N;
		if (v == NULL || !number(argv[++*i], 1, 1000, &top_n))
			return bad("-n needs a number 1..1000%s", "");
	} else if (!strcmp(o, "--by")) {
		a->opts |= O_BY;
		if (v == NULL || (strcmp(v, "count") && strcmp(v, "sum")))
			return bad("--by needs count or sum%s", "");
		top_by = argv[++*i];
	} else if (!strcmp(o, "--prefix")) {
		a->opts |= O_PREFIX;
		if (v == NULL)
			return bad("--prefix needs a PREFIX%s", "");
		top_prefix = argv[++*i];
	} else if (!strcmp(o, "--timeout")) {
		a->opts |= O_TIMEOUT;
		if (v == NULL || !number(argv[++*i], 1, 86400, &a->timeout))
			return bad("--timeout needs a number of seconds 1..86400%s", "");
	} else if (!strcmp(o, "--no-wait")) {
		a->opts |= O_NOWAIT;
	} else if (!strcmp(o, "--statsd")) {
		a->opts |= O_STATSD; /* sent as a word: "rules test --statsd KEY" */
		if (a->nwords == MAX_WORDS)
			return bad("too many arguments at \"%s\"", o);
		a->words[a->nwords++] = o;
	} else {
		return bad("unknown option \"%s\" (tallyctl --help)", o);
	}
	return EX_OK;
}

static int parse(int argc, char **argv, struct args *a)
{
	bool words_only = false;

	for (int i = 1; i < argc; i++) {
		int rc;

		if (!words_only && !strcmp(argv[i], "--")) {
			words_only = true;
		} else if (!words_only && argv[i][0] == '-' && argv[i][1] != '\0') {
			if ((rc = option(a, argc, argv, &i)) != EX_OK)
				return rc;
		} else if (a->nwords == MAX_WORDS) {
			return bad("too many arguments at \"%s\"", argv[i]);
		} else {
			a->words[a->nwords++] = argv[i];
		}
	}
	return EX_OK;
}

static bool is(const char *w, const char *s)
{
	return w != NULL && strcmp(w, s) == 0;
}

/* The words after the command fit one of its forms. n: how many there are. */
static bool words_fit(const char *cmd, const char *const *w, unsigned n)
{
	if (!strcmp(cmd, "config"))
		return n == 0 || (n == 1 && !is(w[0], "set") && !is(w[0], "get")) ||
		       (n == 2 && is(w[0], "get")) || (n == 3 && is(w[0], "set"));
	if (!strcmp(cmd, "rules"))
		return (n == 1 && is(w[0], "show")) || (is(w[0], "reload") && n <= 2) ||
		       (is(w[0], "test") && n == 2 && !is(w[1], "--statsd")) ||
		       (is(w[0], "test") && n == 3 && is(w[1], "--statsd"));
	if (!strcmp(cmd, "spool"))
		return n == 0 || (n == 1 && is(w[0], "replay"));
	if (!strcmp(cmd, "where") || !strcmp(cmd, "get"))
		return n == 1;
	if (!strcmp(cmd, "acl"))
		return (n == 1 && is(w[0], "list")) || (n == 2 && (is(w[0], "add") || is(w[0], "del")));
	if (!strcmp(cmd, "ratelimit"))
		return (n == 1 && is(w[0], "show")) || (is(w[0], "set") && (n == 2 || n == 3));
	if (!strcmp(cmd, "drain"))
		return n == 0 || (n == 1 && is(w[0], "status"));
	if (!strcmp(cmd, "help"))
		return n <= 1;
	return n == 0;
}

/* The command and its words make sense before anything is sent. */
static int validate(const struct args *a, const struct cmd_help *c)
{
	const char *const *w = a->words + 1;
	unsigned n = a->nwords - 1, extra = a->opts & ~c->opts;

	if (!words_fit(c->name, w, n)) {
		fprintf(stderr, "tallyctl: %s: wrong arguments\nusage: tallyctl %s\n", c->name,
			c->usage);
		return EX_USAGE;
	}
	if (extra != 0 || ((a->opts & O_STATSD) && !is(w[0], "test"))) {
		fprintf(stderr, "tallyctl: %s: an option it does not take\nusage: tallyctl %s\n",
			c->name, c->usage);
		return EX_USAGE;
	}
	return EX_OK;
}

static int help(const struct args *a)
{
	/* help X, X --help, help --help; help alone is the overview */
	const char *name = a->nwords > 1 && is(a->words[0], "help") ? a->words[1]
			   : a->nwords > 0 && (a->help || !is(a->words[0], "help")) ? a->words[0]
			   : NULL;
	const struct cmd_help *c = name != NULL ? find_cmd(name) : NULL;

	if (name == NULL) {
		usage(stdout);
		return EX_OK;
	}
	if (c == NULL) {
		fprintf(stderr, "tallyctl: unknown command \"%s\"\n", name);
		usage(stderr);
		return EX_USAGE;
	}
	cmd_usage(stdout, c);
	return EX_OK;
}

/* The words as one request line. */
static int join(const struct args *a, char *cmd, size_t len)
{
	cmd[0] = '\0';
	for (unsigned i = 0; i < a->nwords; i++)
		if ((size_t)snprintf(cmd + strlen(cmd), len - strlen(cmd), "%s%s", i ? " " : "",
				     a->words[i]) >= len - strlen(cmd)) {
			fprintf(stderr, "tallyctl: command longer than %zu bytes\n", len - 1);
			return EX_USAGE;
		}
	return EX_OK;
}

static int run(const struct args *a, const struct cmd_help *c)
{
	bool json = a->opts & O_JSON;
	char cmd[512];

	if (!strcmp(c->name, "stats"))
		return cmd_stats(a->path, json, a->watch);
	if (!strcmp(c->name, "status"))
		return cmd_status(a->path, json);
	if (!strcmp(c->name, "top"))
		return cmd_top(a->path, json);
	if (!strcmp(c->name, "drain"))
		return cmd_drain(a->path, a->nwords > 1 ? a->words[1] : NULL, json,
				 !(a->opts & O_NOWAIT), a->timeout ? a->timeout : 120);
	if (!strcmp(c->name, "rules") && is(a->words[1], "show") && !json)
		return cmd_rules_show(a->path);
	if (join(a, cmd, sizeof(cmd)) != EX_OK)
		return EX_USAGE;
	return cmd_simple(a->path, cmd, json);
}

int main(int argc, char **argv)
{
	struct args a = {.path = getenv("TALLY_SOCKET") ? getenv("TALLY_SOCKET") : DEFAULT_SOCKET};
	const struct cmd_help *c;
	char cmd[512];
	int rc = parse(argc, argv, &a);

	signal(SIGPIPE, SIG_IGN); /* a daemon that goes away is an error message, not a kill */
	if (rc != EX_OK)
		return rc;
	if (a.help || is(a.words[0], "help"))
		return help(&a);
	if (a.nwords == 0) {
		usage(stderr);
		return EX_USAGE;
	}
	/* debug: test hooks (debug park-worker N MS), left out of the help. */
	if (is(a.words[0], "debug"))
		return join(&a, cmd, sizeof(cmd)) != EX_OK ? EX_USAGE : cmd_simple(a.path, cmd, false);
	c = find_cmd(a.words[0]);
	if (c == NULL) {
		fprintf(stderr, "tallyctl: unknown command \"%s\" (tallyctl --help lists them)\n",
			a.words[0]);
		return EX_USAGE;
	}
	rc = validate(&a, c);
	return rc != EX_OK ? rc : run(&a, c);
}
