/* SPDX-License-Identifier: BSD-3-Clause */
/* The daemon's state, shared by its main loop (tallyd.c) and control API (ctl.c). */
#ifndef TALLY_TALLYD_H
#define TALLY_TALLYD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "flush.h"
#include "loop.h"
#include "worker.h"
#include "xdp_loader.h"

struct rte_mempool;

#define TALLY_MAX_PORTS 8

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
	uint16_t port; /* the first of ports[] */
	uint16_t ports[TALLY_MAX_PORTS], port_nq[TALLY_MAX_PORTS];
	unsigned nports;
	struct rte_mempool *mp;
	struct tally_writer wr;
	char spool_dir[1024];
	struct tally_flusher fl;
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
	/* exception path (exception.c): a kernel-side port, control-thread I/O */
	bool exc_on;
	uint16_t exc_port;
	unsigned exc_mbufs; /* what its rings hold, added to the pool */
	uint64_t exc_from_kernel, exc_dropped;
	/* net_af_xdp with tally_xdp (xdp_front.c) */
	char xdp_ifname[64];
	bool xdp_on, xdp_bound;
	struct tally_xdp xdp;
};

/* Every counter, summed over workers, flusher and port. */
void tally_daemon_counters(const struct tally_daemon *d, uint64_t out[TALLY_C_MAX]);

/* xdp_front.c: the XDP front of net_af_xdp ports. prepare rewrites the
 * devargs (xdp_prog=, queue_count=) into out before the probe. */
bool tally_daemon_is_af_xdp(const char *devargs);
int tally_daemon_xdp_prepare(struct tally_daemon *d, const char *devargs, uint16_t nq,
			     char *out, size_t outlen, char *err, size_t errlen);
int tally_daemon_xdp_start(struct tally_daemon *d, char *err, size_t errlen);
void tally_daemon_xdp_stop(struct tally_daemon *d);
void tally_daemon_xdp_counters(const struct tally_daemon *d, uint64_t out[TALLY_C_MAX]);

/* exception.c: probe exception_port (before the pool is sized), start it and
 * arm the workers (after they exist), move frames both ways (a loop timer). */
int tally_exception_find(struct tally_daemon *d, char *err, size_t errlen);
int tally_exception_start(struct tally_daemon *d, char *err, size_t errlen);
void tally_exception_poll(struct tally_daemon *d);
void tally_exception_stop(struct tally_daemon *d);

int tally_ctl_listen(const char *path, char *err, size_t errlen);
/* Serve clients from d->loop. 0 or a negative errno. */
int tally_ctl_start(struct tally_daemon *d);
/* Drop clients whose exchange outlived its bound (a loop timer calls it). */
void tally_ctl_expire(struct tally_daemon *d);
void tally_ctl_close(struct tally_daemon *d);

#endif
