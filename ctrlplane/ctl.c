/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control API: a Unix stream socket that takes one command line per
 * connection and answers one JSON document (jansson). tallyctl is its client.
 * Commands: stats, status, flush, stop, config [KEY]. Served from the main
 * lcore's loop, never from a worker.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ck_pr.h>
#include <jansson.h>
#include <rte_ethdev.h>

#include "dedup.h"
#include "tallyd.h"
#include "window.h"

void tally_daemon_counters(const struct tally_daemon *d, uint64_t out[TALLY_C_MAX])
{
	struct rte_eth_stats ps;

	memset(out, 0, sizeof(uint64_t) * TALLY_C_MAX);
	for (unsigned i = 0; i < d->nworkers; i++)
		for (unsigned c = 0; c < TALLY_C_MAX; c++)
			out[c] += ck_pr_load_64((uint64_t *)&d->workers[i].ctr.v[c]);
	for (unsigned c = 0; c < TALLY_C_MAX; c++)
		out[c] += ck_pr_load_64((uint64_t *)&d->fl.ctr.v[c]);
	out[TALLY_C_DEDUP_GEN_HELD] = ck_pr_load_64((uint64_t *)&d->sh.dedup->held_back);
	if (rte_eth_stats_get(d->port, &ps) == 0) {
		out[TALLY_C_PORT_IMISSED] = ps.imissed;
		out[TALLY_C_PORT_NOMBUF] = ps.rx_nombuf;
		out[TALLY_C_PORT_IERRORS] = ps.ierrors;
	}
}

static json_t *counters_json(const uint64_t *v)
{
	json_t *o = json_object();

	for (unsigned c = 0; c < TALLY_C_MAX; c++)
		json_object_set_new(o, tally_counter_names[c], json_integer((json_int_t)v[c]));
	return o;
}

static json_t *workers_json(const struct tally_daemon *d)
{
	json_t *a = json_array();

	for (unsigned i = 0; i < d->nworkers; i++) {
		const struct tally_worker *w = &d->workers[i];

		json_array_append_new(a, json_pack("{s:i, s:i, s:i, s:o}", "id", (int)w->id,
						   "lcore", (int)w->lcore, "queues", (int)w->nqueues,
						   "counters", counters_json(w->ctr.v)));
	}
	return a;
}

static json_t *stats_json(const struct tally_daemon *d)
{
	uint64_t v[TALLY_C_MAX];
	size_t tbytes = tally_wtab_bytes(d->workers[0].tables[0]);

	tally_daemon_counters(d, v);
	return json_pack("{s:o, s:o, s:{s:I, s:I, s:i}, s:{s:I, s:I}, s:s}",
			 "counters", counters_json(v), "workers", workers_json(d),
			 "dedup", "capacity", (json_int_t)d->cfg.dedup_capacity,
			 "bytes", (json_int_t)tally_dedup_bytes(d->sh.dedup),
			 "generation", (int)tally_dedup_gen(d->sh.dedup),
			 "tables", "rows_per_table", (json_int_t)d->cfg.table_rows,
			 "bytes", (json_int_t)(tbytes * TALLY_TABLES_PER_WORKER * d->nworkers),
			 "sink_last_error", d->fl.last_err);
}

static json_t *status_json(const struct tally_daemon *d)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return json_pack("{s:s, s:s, s:i, s:i, s:I, s:s, s:I, s:I}", "state", "running",
			 "appliance", d->cfg.appliance_id, "workers", (int)d->nworkers,
			 "port", (int)d->port,
			 "uptime_ms", (json_int_t)((uint64_t)ts.tv_sec * 1000 +
						   (uint64_t)ts.tv_nsec / 1000000 - d->start_ms),
			 "sink", d->cfg.sink, "next_batch_seq", (json_int_t)d->fl.seq,
			 "window_ms", (json_int_t)d->cfg.window_ms);
}

static json_t *config_json(const struct tally_daemon *d, const char *key)
{
	char buf[TALLY_CFG_STR_MAX * 4];
	json_t *o;

	if (key != NULL) {
		if (tally_config_get(&d->cfg, key, buf, sizeof(buf)) != 0)
			return json_pack("{s:s}", "error", "unknown config key");
		return json_pack("{s:s}", key, buf);
	}
	o = json_object();
	for (size_t i = 0; i < tally_cfg_nkeys; i++) {
		tally_config_get(&d->cfg, tally_cfg_keys[i].name, buf, sizeof(buf));
		json_object_set_new(o, tally_cfg_keys[i].name, json_string(buf));
	}
	return o;
}

static json_t *dispatch(struct tally_daemon *d, char *line)
{
	char *arg = strchr(line, ' ');

	if (arg != NULL)
		*arg++ = '\0';
	if (strcmp(line, "stats") == 0)
		return stats_json(d);
	if (strcmp(line, "status") == 0)
		return status_json(d);
	if (strcmp(line, "config") == 0)
		return config_json(d, arg);
	if (strcmp(line, "flush") == 0) {
		ck_pr_store_int(&d->fl.flush_now, 1);
		return json_pack("{s:s}", "result", "flush requested");
	}
	if (strcmp(line, "stop") == 0) {
		ck_pr_store_int(&d->stop, 1);
		return json_pack("{s:s}", "result", "stopping: draining workers and flushing");
	}
	return json_pack("{s:s, s:s}", "error", "unknown command", "commands",
			 "stats, status, config [KEY], flush, stop");
}

static void serve(struct tally_daemon *d, int fd)
{
	char line[512];
	ssize_t n;
	json_t *reply;
	char *text;

	/* A client that connects and says nothing must not stall the main loop. */
	struct timeval tv = {.tv_sec = 1};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	n = read(fd, line, sizeof(line) - 1);
	if (n <= 0)
		return;
	line[n] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	reply = dispatch(d, line);
	text = json_dumps(reply, JSON_COMPACT);
	if (text != NULL) {
		if (write(fd, text, strlen(text)) < 0 || write(fd, "\n", 1) < 0)
			fprintf(stderr, "tallyd: control reply: %s\n", strerror(errno));
		free(text);
	}
	json_decref(reply);
}

int tally_ctl_listen(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[sizeof(sa.sun_path)];
	char *slash;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "ctl_socket: \"%s\" is longer than %zu bytes", path,
			 sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		mkdir(dir, 0755); /* /run/tally on a fresh boot; EEXIST is fine */
	}
	/* Bind a temporary name and rename it once listening: the path appears only
	 * when it accepts connections, so its existence means "ready". */
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.new", path) >= (int)sizeof(sa.sun_path)) {
		snprintf(err, errlen, "ctl_socket: \"%s\" is too long", path);
		return -ENAMETOOLONG;
	}
	unlink(sa.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0 ||
	    rename(sa.sun_path, path) < 0) {
		snprintf(err, errlen, "ctl_socket: cannot listen on \"%s\": %s", path,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	return fd;
}

void tally_ctl_poll(struct tally_daemon *d, int timeout_ms)
{
	struct pollfd p = {.fd = d->ctl_fd, .events = POLLIN};

	while (poll(&p, 1, timeout_ms) > 0) {
		int fd = accept4(d->ctl_fd, NULL, NULL, SOCK_CLOEXEC);

		if (fd >= 0) {
			serve(d, fd);
			close(fd);
		}
		timeout_ms = 0;
	}
}

void tally_ctl_close(struct tally_daemon *d)
{
	if (d->ctl_fd >= 0) {
		close(d->ctl_fd);
		unlink(d->cfg.ctl_socket);
	}
}
