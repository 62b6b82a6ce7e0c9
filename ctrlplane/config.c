/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The config table and everything derived from it: defaults, the file parser
 * (inih), command-line overrides, get/set for tallyctl, and the README reference.
 * Every error names the key, and for files the file and line.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <ini.h>

#include "ack.h"
#include "config.h"
#include "log.h"
#include "shard.h"
#include "sink.h"

#define U64(n, def, lo, hi, rt, help) \
	{#n, TALLY_CFG_U64, offsetof(struct tally_config, n), \
	 sizeof(((struct tally_config *)0)->n), def, lo, hi, rt != TALLY_APPLY_RESTART, false, \
	 help, NULL, rt}
#define STR(n, def, rt, help, chk) \
	{#n, TALLY_CFG_STR, offsetof(struct tally_config, n), \
	 sizeof(((struct tally_config *)0)->n), def, 0, 0, rt != TALLY_APPLY_RESTART, false, \
	 help, chk, rt}
/* rt: false (needs a restart) or how a running tallyd applies it. */
/* A secret: shown as "(hidden)", never echoed in an error. */
#define SECRET(n, def, rt, help, chk) \
	{#n, TALLY_CFG_STR, offsetof(struct tally_config, n), \
	 sizeof(((struct tally_config *)0)->n), def, 0, 0, rt != TALLY_APPLY_RESTART, true, \
	 help, chk, rt}

static int check_sink(const char *v, char *err, size_t len);
static int check_mac_keys(const char *v, char *err, size_t len);
static int check_appliance(const char *v, char *err, size_t len);
static int check_ack_mode(const char *v, char *err, size_t len);
static int check_pg_method(const char *v, char *err, size_t len);
static int check_pg_shards(const char *v, char *err, size_t len);
static int check_spool_dir(const char *v, char *err, size_t len);
static int check_redis_prefix(const char *v, char *err, size_t len);
static int check_metrics_addr(const char *v, char *err, size_t len);
static int check_socket_mode(const char *v, char *err, size_t len);
static int check_log_level(const char *v, char *err, size_t len);
static int check_log_target(const char *v, char *err, size_t len);
static int check_percentiles(const char *v, char *err, size_t len);

const struct tally_cfg_key tally_cfg_keys[] = {
	STR(port, "", false, "DPDK input device: vdev with args (net_pcap0,rx_pcap=f.pcap) or PCI "
	    "address; several separated by ';' (their queues spread over the workers); empty = "
	    "the first port the EAL arguments bring up", NULL),
	U64(rx_queues, "0", 0, 64, false, "RX queues per port; 0 = one per worker lcore, or as many "
	    "as the device has if fewer (RSS spreads flows)"),
	U64(rx_desc, "1024", 64, 16384, false, "descriptors per RX queue"),
	U64(mbufs, "0", 0, 16777215, false, "mbufs in the RX pool; 0 = derived at start from "
	    "RX queues x rx_desc + TX descriptors + workers x (burst + 1.5 x mempool cache); a "
	    "value below that is refused at start"),
	U64(tly1_port, "7000", 0, 65535, false, "UDP port for TLY1; 0 = off"),
	U64(statsd_port, "8125", 0, 65535, false, "UDP port for StatsD; 0 = off; may equal "
	    "tly1_port (then the magic \"TLY1\" decides)"),
	U64(window_ms, "10000", 1, 86400000, false, "tumbling event-time window size"),
	U64(flush_interval_ms, "1000", 10, 3600000, TALLY_APPLY_FLUSH, "how often worker tables are sealed "
	    "and written to the sink"),
	U64(lateness_ms, "3600000", 0, UINT64_MAX / 4, TALLY_APPLY_PARAMS, "drop events older than this "
	    "(against arrival time); 0 = off"),
	U64(future_ms, "60000", 0, UINT64_MAX / 4, TALLY_APPLY_PARAMS, "drop events further ahead than this; 0 = off"),
	U64(dedup_capacity, "8388608", 1024, 17179869184ULL, false, "event ids the dedup horizon "
	    "holds at least (16 bytes each)"),
	U64(dedup_horizon_ms, "600000", 1000, 604800000, false, "how long an event id is remembered"),
	U64(table_rows, "1048576", 1024, 2147483647, false, "(key, window) rows a worker table "
	    "holds: those one flush interval sees (3 tables per worker, 204 bytes a row)"),
	STR(statsd_percentiles, "50,90,95,99,99.9", false, "percentiles stored for each StatsD "
	    "ms, h and d row (tally_sketches columns p50 p90 ...; 99.9 -> p999), computed from "
	    "its merged sketch (1% relative error)", check_percentiles),
	U64(sketch_rows, "256", 1, 1048576, false, "rows of a worker table that can keep a "
	    "sketch (ms, h, d) or HyperLogLog (s): 16 KiB each, allocated at start; beyond them "
	    "values still count exactly and statsd_sketch_full counts what the sketches missed"),
	U64(sketch_values, "4194304", 0, 268435456, false, "sketch values (ms, h, d, s lines) a "
	    "worker table holds, 8 bytes each, for the flusher to fold into the sketches after the "
	    "seal, off the worker core; a table is sealed early at 7/8 of them; 0: each worker "
	    "folds its values itself (a timer line then costs about 2.5 counter lines)"),
	STR(sink, "sqlite", false, "where batches go: sqlite, postgres, redis, redis-cluster",
	    check_sink),
	U64(sink_timeout_ms, "5000", 100, 600000, false, "bound on every sink connect and call; "
	    "a sink that does not answer by then has failed (transient)"),
	U64(sink_retry_base_ms, "100", 1, 600000, false, "first retry of a failed sink write after "
	    "a random wait below this; doubles with each failure in a row (full jitter)"),
	U64(sink_retry_max_ms, "10000", 1, 3600000, false, "cap of the random wait between sink "
	    "retries"),
	U64(breaker_failures, "3", 1, 1000, false, "failures in a row that open a sink endpoint's "
	    "circuit breaker"),
	U64(breaker_open_ms, "5000", 10, 3600000, false, "how long an open breaker waits before one "
	    "probe (half-open)"),
	STR(spool_dir, "tally-spool", false, "where batches a sink cannot take are kept, fsync'd "
	    "(one subdirectory per sink endpoint; created if missing; one tallyd per directory)",
	    check_spool_dir),
	U64(spool_max_bytes, "1073741824", 1048576, 1099511627776ULL, false, "bound of the spool: "
	    "past it batches stay in memory, then workers count drop_table_full"),
	U64(spool_max_age_ms, "3600000", 0, UINT64_MAX / 4, false, "alarm when the oldest spooled "
	    "batch is older than this (nothing is deleted); 0 = off"),
	STR(archive_dir, "", false, "raw-event archive: every accepted datagram (payload, arrival "
	    "time, source) kept in zstd segment files here for tally-recount and "
	    "tally-archive2pcap; empty = off", NULL),
	U64(archive_retention_ms, "259200000", 0, UINT64_MAX / 4, false, "archive segments older "
	    "than this are deleted; 0 = kept until archive_max_bytes"),
	U64(archive_max_bytes, "10737418240", 0, 1125899906842624ULL, false, "bound of the "
	    "archive's segments: the oldest are deleted past it; 0 = no bound"),
	U64(archive_segment_ms, "600000", 1000, 86400000, false, "time slice of one archive "
	    "segment (the unit retention deletes)"),
	STR(sqlite_path, "tally.db", false, "SQLite database file (WAL mode)", NULL),
	U64(sqlite_cache_mb, "256", 1, 65536, false, "SQLite page cache in MiB; hold the "
	    "tally_counts rows a flush touches, or upserts go to disk"),
	SECRET(pg_conninfo, "", false, "PostgreSQL sink: libpq connection string or URI; TLS "
	    "(sslmode, sslrootcert), password or passfile go in it; a multi-host string "
	    "(host=a,b port=p,q) with target_session_attrs=read-write fails over to the "
	    "host that takes writes", NULL),
	SECRET(pg_shards, "", false, "PostgreSQL shards instead of pg_conninfo: NAME CONNINFO "
	       "entries separated by vertical bars; keys spread by consistent hashing on NAME "
	       "(secret: may hold passwords)", check_pg_shards),
	STR(pg_method, "copy", false, "how the PostgreSQL sink sends rows: copy (binary COPY "
	    "into a temporary table, one upsert) or pipeline (one upsert per row, pipelined)",
	    check_pg_method),
	STR(redis_addr, "127.0.0.1:6379", false, "Redis server (sink redis) as host:port", NULL),
	SECRET(redis_password, "", false, "Redis AUTH password, both Redis sinks; empty = none "
	       "(secret: never shown)", NULL),
	STR(redis_prefix, "tally:", false, "prefix of every Redis key the Redis sinks write "
	    "(no { or })", check_redis_prefix),
	STR(redis_cluster_nodes, "127.0.0.1:7000", false, "Redis Cluster seed nodes (sink "
	    "redis-cluster): comma-separated host:port; the rest is learnt from CLUSTER SLOTS", NULL),
	STR(appliance_id, "tally", false, "this appliance's name in tally_batches "
	    "([A-Za-z0-9._-]+)", check_appliance),
	STR(ctl_socket, "/run/tally/tallyd.sock", false, "control socket for tallyctl", NULL),
	STR(ctl_socket_mode, "0600", false, "permission bits of the control socket, octal; "
	    "connecting needs write permission: 0600 = tallyd's user (and root) only, 0660 = "
	    "also ctl_socket_group", check_socket_mode),
	STR(ctl_socket_group, "", false, "group of the control socket (name or number; tallyd "
	    "must be a member); empty = tallyd's own group", NULL),
	STR(ctl_ro_group, "", false, "members of this group (name or number) may use the "
	    "read-only tallyctl commands (stats, status, config, rules show/test, sink, spool, "
	    "archive, where, top, get); root and tallyd's user may use all; everyone else is "
	    "refused; empty = no read-only group", NULL),
	STR(log_level, "info", TALLY_APPLY_LOG, "lowest level logged: err, warning, notice, "
	    "info, debug", check_log_level),
	STR(log_target, "auto", TALLY_APPLY_LOG, "where tallyd logs: auto (the journal when "
	    "stderr is connected to it, else stderr), stderr, journal, syslog", check_log_target),
	STR(metrics_addr, "127.0.0.1:9125", false, "HTTP address (IPv4:port or [IPv6]:port) of "
	    "the Prometheus /metrics, /stats.json and the status page /; port 0 = any free "
	    "port (tallyctl status shows it); empty = off", check_metrics_addr),
	SECRET(mac_keys, "", TALLY_APPLY_PARAMS, "TLY1 MAC keys: comma-separated id:32-hex-digits, "
	       "id 1..255 (secret: never shown; keep the file mode 600); a key removed or "
	       "replaced at run time is still accepted for mac_grace_ms", check_mac_keys),
	U64(mac_grace_ms, "600000", 0, UINT64_MAX / 4, TALLY_APPLY_PARAMS, "how long a MAC key "
	    "retired by a change of mac_keys (removed, or replaced under its id) is still "
	    "accepted, so producers can switch without a loss; 0 = at once"),
	U64(require_mac, "0", 0, 1, TALLY_APPLY_PARAMS, "1: drop every TLY1 datagram without a "
	    "MAC (tly1_mac_required; StatsD, which has no MAC, is not affected: set statsd_port "
	    "0 to refuse it)"),
	U64(committed_refresh_ms, "1000", 0, 3600000, false, "ack_mode committed: how often the "
	    "datagram lists other appliances committed to the shared sink are read, so a "
	    "producer failing over from one of them is not counted twice; 0 = only at start"),
	STR(ack_mode, "accepted", false, "TLY1 acks for ACK_REQ datagrams: accepted (once in "
	    "memory), committed (once the flush holding it is in the sink or the spool: survives a "
	    "crash), none (no acks)", check_ack_mode),
	STR(rules_file, "", TALLY_APPLY_RULES, "rules on TLY1 keys and StatsD names: lines of "
	    "ACTION /PATTERN/ [ARG] (drop, keep, rename NEW, sample N; README: Rules); empty = "
	    "none, every key kept", NULL),
	STR(xdp_program, "", false, "net_af_xdp ports: the XDP program tallyd has the PMD attach "
	    "(xdp_prog=): a .bpf.o path; empty = tally_xdp.bpf.o installed with tallyd; none = the "
	    "PMD's own (every frame of the queue to tallyd, no filter, no kernel traffic)", NULL),
	STR(acl, "", false, "net_af_xdp with tally_xdp: source prefixes allowed to send events, "
	    "comma-separated (10.77.0.0/24,fd00::/64); empty = everyone; tallyctl acl changes it "
	    "live", NULL),
	U64(ratelimit_pps, "0", 0, 100000000, false, "net_af_xdp with tally_xdp: datagrams per "
	    "second per source address, dropped in XDP above it; 0 = no limit; tallyctl ratelimit "
	    "changes it live"),
	U64(ratelimit_burst, "1000", 1, 1000000, false, "token-bucket depth of ratelimit_pps, in "
	    "datagrams"),
	U64(xdp_statsd_max_len, "1472", 1, 65507, false, "net_af_xdp with tally_xdp: StatsD "
	    "datagrams longer than this (payload bytes) are dropped in XDP"),
	STR(exception_port, "", false, "exception path for ports DPDK owns: a kernel-side device "
	    "per port, ';'-separated in the order of port (net_tap0,iface=tally0;net_tap1,"
	    "iface=tally1), that gets that port's frames that are not Tally's (ARP, ND, ICMP, TCP, "
	    "other ports) and whose replies go out of that port; give each interface the "
	    "appliance's address on that port's network; empty = off (such frames are counted and "
	    "dropped)", NULL),
	U64(exception_max_per_burst, "4", 1, 32, false, "exception path: frames a worker hands to "
	    "the kernel per burst of 32 at most (the share of a worker a flood of non-Tally "
	    "traffic can take); the rest count as exception_dropped"),
	U64(run_ms, "0", 0, UINT64_MAX / 4, false, "stop after this long; 0 = until SIGINT/SIGTERM"),
	U64(stop_after_idle_ms, "0", 0, UINT64_MAX / 4, false, "stop once no frame arrived for "
	    "this long after the first (pcap replays); 0 = never"),
};
const size_t tally_cfg_nkeys = sizeof(tally_cfg_keys) / sizeof(tally_cfg_keys[0]);

static int check_percentiles(const char *v, char *err, size_t len)
{
	struct tally_pctl p;

	return tally_pctl_parse(v, &p, err, len);
}

static int check_sink(const char *v, char *err, size_t len)
{
	char names[128];

	if (tally_sink_find(v) != NULL)
		return 0;
	tally_sink_names(names, sizeof(names));
	snprintf(err, len, "sink: \"%s\" is not a sink (this build has: %s)", v, names);
	return -EINVAL;
}

static int check_pg_method(const char *v, char *err, size_t len)
{
	if (strcmp(v, "copy") == 0 || strcmp(v, "pipeline") == 0)
		return 0;
	snprintf(err, len, "pg_method: \"%s\" is not copy or pipeline", v);
	return -EINVAL;
}

static int check_spool_dir(const char *v, char *err, size_t len)
{
	if (v[0] != '\0')
		return 0;
	snprintf(err, len, "spool_dir: must not be empty (batches a sink cannot take need a home)");
	return -EINVAL;
}

/* "NAME CONNINFO | NAME CONNINFO": names [A-Za-z0-9._-], distinct, each with a conninfo. */
static int check_pg_shards(const char *v, char *err, size_t len)
{
	char names[TALLY_SHARD_MAX][64];
	unsigned n = 0;

	for (const char *p = v; *p != '\0';) {
		size_t e = strcspn(p, "|"), k;

		p += strspn(p, " \t");
		k = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");
		if (k == 0 || k >= 64 || (p[k] != ' ' && p[k] != '\t') || n == TALLY_SHARD_MAX) {
			snprintf(err, len, "pg_shards: entry %u is not NAME CONNINFO (NAME of "
				 "[A-Za-z0-9._-], at most %d entries)", n + 1, TALLY_SHARD_MAX);
			return -EINVAL;
		}
		snprintf(names[n], sizeof(names[n]), "%.*s", (int)k, p);
		for (unsigned i = 0; i < n; i++)
			if (strcmp(names[i], names[n]) == 0) {
				snprintf(err, len, "pg_shards: shard name \"%s\" is used twice", names[n]);
				return -EINVAL;
			}
		n++;
		p = strchr(p, '|');
		if (p == NULL)
			break;
		p++;
		(void)e;
	}
	return 0;
}

/* A brace in the prefix would become the hash tag of every key, one cluster slot. */
static int check_redis_prefix(const char *v, char *err, size_t len)
{
	if (strpbrk(v, "{}") == NULL)
		return 0;
	snprintf(err, len, "redis_prefix: \"%s\" holds { or }, which Redis Cluster reads as a "
		 "hash tag", v);
	return -EINVAL;
}

int tally_config_hostport(const char *key, const char *v, struct sockaddr_storage *sa,
			  unsigned *salen, char *err, size_t errlen)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
	const char *colon = strrchr(v, ':');
	char host[64], *end;
	unsigned long port;
	size_t hl;

	memset(sa, 0, sizeof(*sa));
	if (colon == NULL || colon[1] == '\0')
		goto bad;
	port = strtoul(colon + 1, &end, 10);
	hl = (size_t)(colon - v);
	if (*end != '\0' || port > 65535 || hl == 0 || hl >= sizeof(host))
		goto bad;
	if (v[0] == '[' && v[hl - 1] == ']') {
		snprintf(host, sizeof(host), "%.*s", (int)hl - 2, v + 1);
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*salen = sizeof(*in6);
		if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1)
			return 0;
		goto bad;
	}
	snprintf(host, sizeof(host), "%.*s", (int)hl, v);
	in4->sin_family = AF_INET;
	in4->sin_port = htons((uint16_t)port);
	*salen = sizeof(*in4);
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1)
		return 0;
bad:
	snprintf(err, errlen, "%s: \"%s\" is not IPv4:port or [IPv6]:port (numeric address, "
		 "port 0..65535)", key, v);
	return -EINVAL;
}

static int check_metrics_addr(const char *v, char *err, size_t len)
{
	struct sockaddr_storage sa;
	unsigned salen;

	if (v[0] == '\0')
		return 0;
	return tally_config_hostport("metrics_addr", v, &sa, &salen, err, len);
}

static int check_socket_mode(const char *v, char *err, size_t len)
{
	char *end;
	unsigned long m = strtoul(v, &end, 8);

	if (v[0] != '\0' && *end == '\0' && m <= 0777)
		return 0;
	snprintf(err, len, "ctl_socket_mode: \"%s\" is not an octal mode 0..0777", v);
	return -EINVAL;
}

static int check_log_level(const char *v, char *err, size_t len)
{
	if (tally_log_level_parse(v) >= 0)
		return 0;
	snprintf(err, len, "log_level: \"%s\" is not err, warning, notice, info or debug", v);
	return -EINVAL;
}

static int check_log_target(const char *v, char *err, size_t len)
{
	if (tally_log_target_parse(v) >= 0)
		return 0;
	snprintf(err, len, "log_target: \"%s\" is not auto, stderr, journal or syslog", v);
	return -EINVAL;
}

int tally_config_ack_mode(const char *v)
{
	if (strcmp(v, "none") == 0)
		return TALLY_ACKM_NONE;
	if (strcmp(v, "accepted") == 0)
		return TALLY_ACKM_ACCEPTED;
	if (strcmp(v, "committed") == 0)
		return TALLY_ACKM_COMMITTED;
	return -EINVAL;
}

static int check_ack_mode(const char *v, char *err, size_t len)
{
	if (tally_config_ack_mode(v) >= 0)
		return 0;
	snprintf(err, len, "ack_mode: \"%s\" is not accepted, committed or none", v);
	return -EINVAL;
}

static int check_appliance(const char *v, char *err, size_t len)
{
	if (v[0] != '\0' && strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789._-") == strlen(v))
		return 0;
	snprintf(err, len, "appliance_id: \"%s\" must be non-empty [A-Za-z0-9._-]", v);
	return -EINVAL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One "id:hex32" entry of mac_keys, the nth. Errors never quote the key. */
static int mac_entry(const char *s, size_t n, unsigned nth, bool present[256],
		     uint8_t key[256][16], char *err, size_t len)
{
	char *end;
	unsigned long id = strtoul(s, &end, 10);

	if (end == s || *end != ':' || id < 1 || id > 255 || (size_t)(end - s) + 33 != n) {
		snprintf(err, len, "mac_keys: entry %u is not id:32-hex-digits with id 1..255", nth);
		return -EINVAL;
	}
	for (int i = 0; i < 16; i++) {
		int hi = hexval(end[1 + 2 * i]), lo = hexval(end[2 + 2 * i]);

		if (hi < 0 || lo < 0) {
			snprintf(err, len, "mac_keys: key %lu is not 32 hex digits", id);
			return -EINVAL;
		}
		if (key != NULL)
			key[id][i] = (uint8_t)(hi << 4 | lo);
	}
	if (present != NULL)
		present[id] = true;
	return 0;
}

int tally_config_mac_keys(const char *spec, bool present[256], uint8_t key[256][16],
			  char *err, size_t errlen)
{
	const char *s = spec;
	unsigned nth = 1;

	if (present != NULL)
		memset(present, 0, 256 * sizeof(bool));
	while (*s != '\0') {
		size_t n = strcspn(s, ",");
		int r = mac_entry(s, n, nth++, present, key, err, errlen);

		if (r != 0)
			return r;
		s += n + (s[n] == ',');
	}
	return 0;
}

static int check_mac_keys(const char *v, char *err, size_t len)
{
	return tally_config_mac_keys(v, NULL, NULL, err, len);
}

void tally_config_defaults(struct tally_config *c)
{
	char err[256];

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < tally_cfg_nkeys; i++)
		tally_config_set(c, tally_cfg_keys[i].name, tally_cfg_keys[i].def, err, sizeof(err));
}

/* Levenshtein distance, for "did you mean". Names are short. */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[64], cur[64];

	if (la >= 63 || lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;

			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, sizeof(size_t) * (lb + 1));
	}
	return prev[lb];
}

const struct tally_cfg_key *tally_config_find(const char *name)
{
	for (size_t i = 0; i < tally_cfg_nkeys; i++)
		if (strcmp(tally_cfg_keys[i].name, name) == 0)
			return &tally_cfg_keys[i];
	return NULL;
}

static void unknown_key(const char *name, char *err, size_t len)
{
	const char *best = NULL;
	size_t bd = 3;

	for (size_t i = 0; i < tally_cfg_nkeys; i++) {
		size_t d = distance(name, tally_cfg_keys[i].name);

		if (d < bd) {
			bd = d;
			best = tally_cfg_keys[i].name;
		}
	}
	if (best != NULL)
		snprintf(err, len, "unknown key \"%s\" (did you mean \"%s\"?)", name, best);
	else
		snprintf(err, len, "unknown key \"%s\" (tallyd --help-config lists them)", name);
}

static int set_u64(const struct tally_cfg_key *k, uint64_t *dst, const char *v, char *err,
		   size_t len)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(v, &end, 10);
	if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno == ERANGE) {
		snprintf(err, len, "%s: \"%s\" is not a whole number", k->name, v);
		return -EINVAL;
	}
	if (x < k->min || x > k->max) {
		snprintf(err, len, "%s: %llu is %s the %s %llu", k->name, x,
			 x < k->min ? "below" : "above", x < k->min ? "minimum" : "maximum",
			 (unsigned long long)(x < k->min ? k->min : k->max));
		return -ERANGE;
	}
	*dst = x;
	return 0;
}

int tally_config_set(struct tally_config *c, const char *name, const char *value, char *err,
		     size_t errlen)
{
	const struct tally_cfg_key *k = tally_config_find(name);
	char *field;

	if (k == NULL) {
		unknown_key(name, err, errlen);
		return -ENOENT;
	}
	field = (char *)c + k->offset;
	if (k->type == TALLY_CFG_U64)
		return set_u64(k, (uint64_t *)field, value, err, errlen);
	if (strlen(value) >= k->size) {
		/* the value is not quoted: for a secret it would be the secret */
		snprintf(err, errlen, "%s: value is longer than %zu bytes", k->name, k->size - 1);
		return -ERANGE;
	}
	if (k->check != NULL && k->check(value, err, errlen) != 0)
		return -EINVAL;
	memcpy(field, value, strlen(value) + 1);
	return 0;
}

int tally_config_get(const struct tally_config *c, const char *name, char *buf, size_t len)
{
	const struct tally_cfg_key *k = tally_config_find(name);
	const char *field;

	if (k == NULL)
		return -ENOENT;
	field = (const char *)c + k->offset;
	if (k->type == TALLY_CFG_U64)
		snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)field);
	else if (k->sensitive && field[0] != '\0')
		snprintf(buf, len, "(hidden)");
	else
		snprintf(buf, len, "%s", field);
	return 0;
}

int tally_config_validate(const struct tally_config *c, char *err, size_t errlen)
{
	if (c->tly1_port == 0 && c->statsd_port == 0) {
		snprintf(err, errlen, "tly1_port and statsd_port are both 0: nothing to listen on");
		return -EINVAL;
	}
	if (c->pg_shards[0] != '\0' && strcmp(c->sink, "postgres") != 0) {
		snprintf(err, errlen, "pg_shards is set but sink is %s: shards are PostgreSQL's "
			 "(set sink = postgres)", c->sink);
		return -EINVAL;
	}
	if (c->pg_shards[0] != '\0' && c->pg_conninfo[0] != '\0') {
		snprintf(err, errlen, "pg_conninfo and pg_shards are both set: use one");
		return -EINVAL;
	}
	if (c->sink_retry_base_ms > c->sink_retry_max_ms) {
		snprintf(err, errlen, "sink_retry_base_ms (%llu) is above sink_retry_max_ms (%llu)",
			 (unsigned long long)c->sink_retry_base_ms,
			 (unsigned long long)c->sink_retry_max_ms);
		return -EINVAL;
	}
	return 0;
}

/* inih reads through us so we know the line of every key (duplicates, errors). */
struct file_ctx {
	FILE *f;
	unsigned line;
	struct tally_config *c;
	unsigned seen[128]; /* line where each key was set, 0 = not yet */
	char msg[384];
};

static char *read_line(char *buf, int size, void *stream)
{
	struct file_ctx *x = stream;
	char *r = fgets(buf, size, x->f);

	if (r != NULL)
		x->line++;
	return r;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct file_ctx *x = user;
	const struct tally_cfg_key *k = tally_config_find(name);

	if (section[0] != '\0') {
		snprintf(x->msg, sizeof(x->msg), "[%s]: sections are not used; write key = value",
			 section);
		return 0;
	}
	if (k != NULL && x->seen[k - tally_cfg_keys] != 0) {
		snprintf(x->msg, sizeof(x->msg), "%s set twice (first on line %u)", name,
			 x->seen[k - tally_cfg_keys]);
		return 0;
	}
	if (tally_config_set(x->c, name, value, x->msg, sizeof(x->msg)) != 0)
		return 0;
	x->seen[k - tally_cfg_keys] = x->line;
	return 1;
}

/* Secrets in a file that others can read are one `cat` from leaking. */
static void warn_readable_secrets(struct file_ctx *x, const char *path)
{
	struct stat st;

	if (fstat(fileno(x->f), &st) != 0 || (st.st_mode & 0077) == 0)
		return;
	for (size_t i = 0; i < tally_cfg_nkeys; i++)
		if (tally_cfg_keys[i].sensitive && x->seen[i] != 0)
			tally_log(LOG_WARNING, "tallyd: warning: %s holds %s (line %u) and is readable by "
				"group or others (mode %03o): chmod 600 %s", path,
				tally_cfg_keys[i].name, x->seen[i], (unsigned)(st.st_mode & 0777), path);
}

int tally_config_load(struct tally_config *c, const char *path, char *err, size_t errlen)
{
	struct file_ctx x = {.c = c};
	int r;

	x.f = fopen(path, "r");
	if (x.f == NULL) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return r;
	}
	r = ini_parse_stream(read_line, &x, on_key, &x);
	if (r == 0)
		warn_readable_secrets(&x, path);
	fclose(x.f);
	if (r == 0)
		return 0;
	if (x.msg[0] == '\0')
		snprintf(x.msg, sizeof(x.msg), "expected key = value");
	snprintf(err, errlen, "%s:%d: %s", path, r, x.msg);
	return -EINVAL;
}

void tally_config_reference(FILE *out)
{
	fprintf(out, "| key | default | range | runtime | meaning |\n|---|---|---|---|---|\n");
	for (size_t i = 0; i < tally_cfg_nkeys; i++) {
		const struct tally_cfg_key *k = &tally_cfg_keys[i];
		char range[64] = "text";

		if (k->type == TALLY_CFG_U64)
			snprintf(range, sizeof(range), "%llu..%llu", (unsigned long long)k->min,
				 (unsigned long long)k->max);
		fprintf(out, "| `%s` | `%s` | %s | %s | %s |\n", k->name, k->def, range,
			k->runtime ? "yes" : "no", k->help);
	}
}

/* "--window-ms" and "--window_ms" both name window_ms. */
static void option_name(const char *arg, char *name, size_t len, const char **value)
{
	const char *eq = strchr(arg, '=');
	size_t n = eq != NULL ? (size_t)(eq - arg) : strlen(arg);

	snprintf(name, len, "%.*s", (int)n, arg);
	for (char *p = name; *p; p++)
		if (*p == '-')
			*p = '_';
	*value = eq != NULL ? eq + 1 : NULL;
}

/* First pass: find -c FILE, help, "--"; remember where the overrides are. */
static int scan_args(int argc, char **argv, const char **file, int *eal_start)
{
	*eal_start = argc;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			*eal_start = i + 1;
			return 0;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
			return 1;
		if (strcmp(a, "--help-config") == 0)
			return 2;
		if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc)
			*file = argv[++i];
		else if (strncmp(a, "--config=", 9) == 0)
			*file = a + 9;
	}
	return 0;
}

static int apply_overrides(struct tally_config *c, int argc, char **argv, int end,
			   char *err, size_t errlen)
{
	for (int i = 1; i < end && i < argc; i++) {
		const char *a = argv[i], *value;
		char name[128];
		int r;

		if (strcmp(a, "--") == 0)
			break;
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			i++;
			continue;
		}
		if (strncmp(a, "--config=", 9) == 0)
			continue;
		if (strncmp(a, "--", 2) != 0) {
			snprintf(err, errlen, "unexpected argument \"%s\" (options are --KEY=VALUE; "
				 "EAL arguments go after --)", a);
			return -EINVAL;
		}
		option_name(a + 2, name, sizeof(name), &value);
		if (value == NULL) {
			if (tally_config_find(name) == NULL || i + 1 >= end) {
				r = tally_config_set(c, name, "", err, errlen);
				return r != 0 ? r : -EINVAL;
			}
			value = argv[++i];
		}
		r = tally_config_set(c, name, value, err, errlen);
		if (r != 0)
			return r;
	}
	return 0;
}

int tally_config_from_args(struct tally_config *c, int argc, char **argv, int *eal_start,
			   char *err, size_t errlen)
{
	const char *file = NULL;
	int r = scan_args(argc, argv, &file, eal_start);

	if (r != 0)
		return r;
	tally_config_defaults(c);
	if (file != NULL && (r = tally_config_load(c, file, err, errlen)) != 0)
		return r;
	return apply_overrides(c, argc, argv, *eal_start, err, errlen);
}
