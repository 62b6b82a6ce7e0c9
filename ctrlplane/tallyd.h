/* SPDX-License-Identifier: BSD-3-Clause */
/* The daemon's state, shared by its main loop (tallyd.c) and control API (ctl.c). */
#ifndef TALLY_TALLYD_H
#define TALLY_TALLYD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <pthread.h>

#include "archiver.h"
#include "config.h"
#include "flush.h"
#include "loop.h"
#include "snapshot.h"
#include "worker.h"
#include "xdp_loader.h"

struct rte_mempool;
struct tally_daemon;
struct tally_metrics;

/* The watchdog's view of one heartbeat (watchdog.c; control thread only). */
struct tally_wd_entry {
	uint64_t hb;       /* last heartbeat seen */
	uint64_t since_ms; /* when it last advanced */
	bool stalled;
};

struct tally_watchdog {
	struct tally_wd_entry *workers; /* nworkers */
	struct tally_wd_entry flusher;
	struct tally_wd_entry writer;
	uint64_t sink_stalls;
	bool sink_stalled; /* the writer's stall is a sink call that has not returned */
	uint64_t stalls, rx_lost, imissed;
};

#define TALLY_MAX_PORTS 8

struct tally_daemon {
	struct tally_config cfg;
	struct tally_shared sh; /* sh.params: malloc'd, replaced whole by live.c */
	ck_epoch_record_t ctl_rec; /* the control thread's, for ck_epoch_synchronize */
	struct tally_rules *rules; /* what sh.params->rules points to; NULL = none */
	uint64_t rules_gen;
	uint64_t mac_grace_until_ms; /* retired MAC keys accepted until then; 0 = none */
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
	/* TX queues each port gave to workers: worker i sends its acks on queue i of
	 * its first RX queue's port if i < that port's count */
	uint16_t port_ntxq[TALLY_MAX_PORTS];
	uint16_t exc_txq; /* the first port's TX queue of the exception path */
	struct tally_writer wr;
	struct tally_liveview view; /* tallyctl top / get */
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
	const char *config_file; /* -c FILE, or NULL */
	struct tally_watchdog wd;
	/* The snapshot the metrics thread reads: the control thread refreshes it
	 * every 100 ms under snap_lock (held only for the copy). */
	struct tally_snap published, scratch;
	pthread_mutex_t snap_lock;
	struct tally_metrics *metrics;
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

/* A snapshot of everything reported, read with loads only (control thread). */
void tally_daemon_snapshot(const struct tally_daemon *d, struct tally_snap *s);
/* Refresh d->published (control thread). */
void tally_daemon_publish(struct tally_daemon *d);
/* The JSON of `tallyctl stats --json` (and /stats.json) from a snapshot. */
struct json_t;
struct json_t *tally_stats_json(const struct tally_snap *s);

/* watchdog.c: 0 or -ENOMEM; check runs from a 100 ms control-loop timer. */
int tally_watchdog_init(struct tally_daemon *d);
void tally_watchdog_check(struct tally_daemon *d, uint64_t now_ms);
void tally_watchdog_fini(struct tally_daemon *d);
enum tally_health tally_watchdog_worker(const struct tally_daemon *d, unsigned i);
enum tally_health tally_watchdog_flusher(const struct tally_daemon *d);
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
