/* SPDX-License-Identifier: BSD-3-Clause */
/* The daemon's state, shared by its main loop (tallyd.c) and control API (ctl.c). */
#ifndef TALLY_TALLYD_H
#define TALLY_TALLYD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "archiver.h"
#include "config.h"
#include "flush.h"
#include "loop.h"
#include "worker.h"

struct rte_mempool;

struct tally_daemon {
	struct tally_config cfg;
	struct tally_shared sh; /* sh.params: malloc'd, replaced whole by live.c */
	ck_epoch_record_t ctl_rec; /* the control thread's, for ck_epoch_synchronize */
	struct tally_rules *rules; /* what sh.params->rules points to; NULL = none */
	uint64_t rules_gen;
	uint64_t rules_reloads, rules_reload_errors, config_changes;
	int nargs;   /* tallyd's own arguments (before "--"), re-read on SIGHUP */
	char **args;
	int hups_seen;
	struct tally_worker *workers;
	unsigned nworkers;
	uint16_t port;
	struct rte_mempool *mp;
	struct tally_writer wr;
	char spool_dir[1024];
	struct tally_flusher fl;
	struct tally_archiver arch; /* archive_dir; unused when empty */
	int ctl_fd;
	struct tally_loop loop;
	struct tally_loop_handler ctl_h;
	struct ctl_client *ctl_clients;
	unsigned ctl_nclients;
	uint64_t ctl_requests, ctl_bad_requests, ctl_client_timeouts, ctl_refused;
	uint64_t start_ms;
	uint64_t last_rx, last_rx_ms; /* stop_after_idle_ms */
	size_t sweep_rate;            /* dedup buckets swept per tick */
	bool stopping;
	int stop; /* ck_pr: tallyctl stop */
};

/* Every counter, summed over workers, flusher and port. */
void tally_daemon_counters(const struct tally_daemon *d, uint64_t out[TALLY_C_MAX]);

int tally_ctl_listen(const char *path, char *err, size_t errlen);
/* Serve clients from d->loop. 0 or a negative errno. */
int tally_ctl_start(struct tally_daemon *d);
/* Drop clients whose exchange outlived its bound (a loop timer calls it). */
void tally_ctl_expire(struct tally_daemon *d);
void tally_ctl_close(struct tally_daemon *d);

#endif
