/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The HTTP server of metrics_addr (libmicrohttpd, its own thread): GET /metrics
 * (Prometheus text, prom.h), /stats.json (the JSON of `tallyctl stats --json`)
 * and / (the status page, status.html embedded at build time). It reads only the
 * snapshot the control thread publishes every 100 ms (tally_daemon.published),
 * so a slow scraper never touches the control loop or daemon state.
 */
#ifndef TALLY_METRICS_H
#define TALLY_METRICS_H

#include <stddef.h>

struct tally_daemon;

/* Listen on d->cfg.metrics_addr (empty: do nothing). 0, or a negative errno
 * with err naming metrics_addr. */
int tally_metrics_start(struct tally_daemon *d, char *err, size_t errlen);
/* The bound address ("127.0.0.1:41234"), "" when off. */
const char *tally_metrics_bound(const struct tally_daemon *d);
void tally_metrics_stop(struct tally_daemon *d);

extern const char tally_status_html[];

#endif
