/* SPDX-License-Identifier: BSD-3-Clause */
/* The daemon's state, shared by its main loop (tallyd.c) and control API (ctl.c). */
#ifndef TALLY_TALLYD_H
#define TALLY_TALLYD_H

#include <signal.h>
#include <stdint.h>

#include "config.h"
#include "flush.h"
#include "worker.h"

struct rte_mempool;

struct tally_daemon {
	struct tally_config cfg;
	struct tally_shared sh;
	struct tally_params params;
	struct tally_worker *workers;
	unsigned nworkers;
	uint16_t port;
	struct rte_mempool *mp;
	struct tally_sink *sink;
	struct tally_flusher fl;
	int ctl_fd;
	uint64_t start_ms;
	int stop; /* ck_pr: tallyctl stop */
};

/* Every counter, summed over workers, flusher and port. */
void tally_daemon_counters(const struct tally_daemon *d, uint64_t out[TALLY_C_MAX]);

int tally_ctl_listen(const char *path, char *err, size_t errlen);
/* Serve the requests that arrive within timeout_ms. */
void tally_ctl_poll(struct tally_daemon *d, int timeout_ms);
void tally_ctl_close(struct tally_daemon *d);

#endif
