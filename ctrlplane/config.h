/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Tally's configuration: one table (config.c) of every key with its type,
 * default, bounds, help and whether it may change at run time. The file parser,
 * the command-line overrides, `tallyctl config` and the README reference
 * (`tallyd --help-config`) all come from that table.
 */
#ifndef TALLY_CONFIG_H
#define TALLY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TALLY_CFG_STR_MAX 256

struct tally_config {
	char port[TALLY_CFG_STR_MAX];
	uint64_t rx_queues;
	uint64_t rx_desc;
	uint64_t mbufs;
	uint64_t tly1_port;
	uint64_t statsd_port;
	uint64_t window_ms;
	uint64_t flush_interval_ms;
	uint64_t lateness_ms;
	uint64_t future_ms;
	uint64_t dedup_capacity;
	uint64_t dedup_horizon_ms;
	uint64_t table_rows;
	char sink[TALLY_CFG_STR_MAX];
	uint64_t sink_timeout_ms;
	uint64_t sink_retry_base_ms, sink_retry_max_ms;
	uint64_t breaker_failures, breaker_open_ms;
	char spool_dir[TALLY_CFG_STR_MAX];
	uint64_t spool_max_bytes, spool_max_age_ms;
	char archive_dir[TALLY_CFG_STR_MAX];
	uint64_t archive_retention_ms, archive_max_bytes, archive_segment_ms;
	char sqlite_path[TALLY_CFG_STR_MAX];
	char statsd_percentiles[TALLY_CFG_STR_MAX];
	uint64_t sketch_rows;
	uint64_t sketch_values;
	uint64_t sqlite_cache_mb;
	char pg_conninfo[TALLY_CFG_STR_MAX * 4];
	char pg_shards[TALLY_CFG_STR_MAX * 16];
	char pg_method[16];
	char redis_addr[TALLY_CFG_STR_MAX];
	char redis_password[TALLY_CFG_STR_MAX];
	char redis_prefix[64];
	char redis_cluster_nodes[TALLY_CFG_STR_MAX * 4];
	char appliance_id[TALLY_CFG_STR_MAX];
	char ctl_socket[TALLY_CFG_STR_MAX];
	char ctl_socket_mode[8];
	char ctl_socket_group[64];
	char ctl_ro_group[64];
	char log_level[16];
	char log_target[16];
	char metrics_addr[64];
	char mac_keys[TALLY_CFG_STR_MAX * 4];
	uint64_t mac_grace_ms, require_mac;
	uint64_t committed_refresh_ms;
	char ack_mode[16];
	char rules_file[TALLY_CFG_STR_MAX];
	char xdp_program[TALLY_CFG_STR_MAX];
	char acl[TALLY_CFG_STR_MAX * 16];
	uint64_t ratelimit_pps, ratelimit_burst;
	uint64_t xdp_statsd_max_len;
	char exception_port[TALLY_CFG_STR_MAX];
	uint64_t exception_max_per_burst;
	uint64_t run_ms;
	uint64_t stop_after_idle_ms;
};

enum tally_cfg_type { TALLY_CFG_U64, TALLY_CFG_STR };

/* How a running tallyd takes a new value (live.c has one apply step per kind;
 * the rollback of a failed change is the same step with the old value). */
enum tally_cfg_apply {
	TALLY_APPLY_RESTART = 0, /* not at run time: "needs a restart" */
	TALLY_APPLY_PARAMS,      /* a new struct tally_params, swapped under ck_epoch */
	TALLY_APPLY_FLUSH,       /* the flusher's interval (an atomic store) */
	TALLY_APPLY_RULES,       /* compile the rules file, swap it in with new params */
	TALLY_APPLY_LOG,         /* log_level, log_target: log.c's threshold and target */
};

struct tally_cfg_key {
	const char *name;
	enum tally_cfg_type type;
	size_t offset, size; /* field in struct tally_config */
	const char *def;     /* default, as text */
	uint64_t min, max;   /* U64 bounds */
	bool runtime;        /* may change while running (tallyctl config set) */
	bool sensitive;      /* a secret: never printed, logged or echoed in errors */
	const char *help;
	/* extra check of a value (enum-like strings, key lists); NULL = none */
	int (*check)(const char *value, char *err, size_t errlen);
	enum tally_cfg_apply apply; /* runtime keys: how to apply a change */
};

extern const struct tally_cfg_key tally_cfg_keys[];
extern const size_t tally_cfg_nkeys;

void tally_config_defaults(struct tally_config *c);
const struct tally_cfg_key *tally_config_find(const char *name);
/* Set one key from text. 0, or -EINVAL/-ENOENT/-ERANGE with err naming key and problem. */
int tally_config_set(struct tally_config *c, const char *name, const char *value, char *err,
		     size_t errlen);
/* Current value as text; a sensitive key that is set reads "(hidden)". 0 or -ENOENT. */
int tally_config_get(const struct tally_config *c, const char *name, char *buf, size_t len);
/* Load "key = value" lines ('#' comments). Errors name file, line and key. */
int tally_config_load(struct tally_config *c, const char *path, char *err, size_t errlen);
/* Checks across keys (e.g. at least one port). 0 or -EINVAL with err. */
int tally_config_validate(const struct tally_config *c, char *err, size_t errlen);
/* ack_mode as enum tally_ack_mode (dataplane/ack.h); -EINVAL if unknown. */
int tally_config_ack_mode(const char *v);
/* Parse mac_keys ("id:hex32,...") into the tables of struct tally_mac_keys. */
int tally_config_mac_keys(const char *spec, bool present[256], uint8_t key[256][16],
			  char *err, size_t errlen);
/* "IPv4:port" or "[IPv6]:port" into *sa (sockaddr_in or _in6 in a
 * sockaddr_storage); 0 or -EINVAL with err naming `key`. */
struct sockaddr_storage;
int tally_config_hostport(const char *key, const char *v, struct sockaddr_storage *sa,
			  unsigned *salen, char *err, size_t errlen);
/* Markdown table of every key for the README. */
void tally_config_reference(FILE *out);

/*
 * tallyd's own arguments: [-c FILE] [--KEY=VALUE | --KEY VALUE]... [-- EAL args].
 * The file is read first, then overrides, whatever their order. On success
 * (0) *eal_start is the index of the first EAL argument (argc if none).
 * Returns 1 for -h/--help and 2 for --help-config (the caller prints them),
 * or a negative errno with err naming the key.
 */
int tally_config_from_args(struct tally_config *c, int argc, char **argv, int *eal_start,
			   char *err, size_t errlen);

#endif
