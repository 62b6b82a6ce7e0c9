/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * metrics_addr's HTTP server: libmicrohttpd with its own polling thread, so
 * scrapes and page loads never run on the control loop. Each request copies
 * the published snapshot under snap_lock (a memcpy; the control thread holds
 * the lock as briefly) and formats from the copy, outside the lock.
 *
 * tallyd binds the socket itself and hands it to libmicrohttpd: a bind error
 * is a start-up error naming metrics_addr, and port 0 gets a free port whose
 * number `tallyctl status` reports.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <jansson.h>
#include <microhttpd.h>

#include "metrics.h"
#include "log.h"
#include "prom.h"
#include "tallyd.h"

struct tally_metrics {
	struct MHD_Daemon *mhd;
	struct tally_daemon *d;
	struct tally_snap snap; /* the server thread's copy */
	char bound[80];
};

static void take_snapshot(struct tally_metrics *m)
{
	pthread_mutex_lock(&m->d->snap_lock);
	tally_snap_copy(&m->snap, &m->d->published);
	pthread_mutex_unlock(&m->d->snap_lock);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
			     void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result ret;

	if (r == NULL) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *msg)
{
	return reply(c, status, "text/plain; charset=utf-8", (void *)msg, strlen(msg),
		     MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result serve_metrics(struct tally_metrics *m, struct MHD_Connection *c)
{
	struct tally_buf b = {0};

	take_snapshot(m);
	if (tally_prom_format(&m->snap, &b) != 0) {
		tally_buf_free(&b);
		return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	}
	return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len,
		     MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result serve_json(struct tally_metrics *m, struct MHD_Connection *c)
{
	json_t *j;
	char *s;

	take_snapshot(m);
	j = tally_stats_json(&m->snap);
	s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (s == NULL)
		return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	return reply(c, MHD_HTTP_OK, "application/json", s, strlen(s), MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload, size_t *upload_size, void **req)
{
	struct tally_metrics *m = cls;

	(void)version, (void)upload, (void)upload_size, (void)req;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n");
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(m, c);
	if (strcmp(url, "/stats.json") == 0)
		return serve_json(m, c);
	if (strcmp(url, "/") == 0)
		return reply(c, MHD_HTTP_OK, "text/html; charset=utf-8", (void *)tally_status_html,
			     strlen(tally_status_html), MHD_RESPMEM_PERSISTENT);
	return text(c, MHD_HTTP_NOT_FOUND, "not found: try /, /metrics or /stats.json\n");
}

/* Bind and listen; the bound address goes into m->bound. fd or -errno. */
static int listen_on(struct tally_metrics *m, const char *addr, char *err, size_t errlen)
{
	struct sockaddr_storage sa;
	unsigned salen;
	char host[INET6_ADDRSTRLEN];
	int one = 1, fd, r = tally_config_hostport("metrics_addr", addr, &sa, &salen, err, errlen);

	if (r < 0)
		return r;
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, salen) < 0 || listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &(socklen_t){sizeof(sa)}) < 0) {
		r = -errno;
		snprintf(err, errlen, "metrics_addr: cannot listen on %s: %s (set another "
			 "address, or empty to turn metrics off)", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		return r;
	}
	if (sa.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(m->bound, sizeof(m->bound), "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		struct sockaddr_in *in4 = (struct sockaddr_in *)&sa;

		inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
		snprintf(m->bound, sizeof(m->bound), "%s:%u", host, ntohs(in4->sin_port));
	}
	return fd;
}

int tally_metrics_start(struct tally_daemon *d, char *err, size_t errlen)
{
	struct tally_metrics *m;
	int fd;

	if (d->cfg.metrics_addr[0] == '\0')
		return 0;
	m = calloc(1, sizeof(*m));
	if (m == NULL || tally_snap_init(&m->snap, d->nworkers) < 0) {
		free(m);
		snprintf(err, errlen, "metrics_addr: out of memory");
		return -ENOMEM;
	}
	m->d = d;
	d->metrics = m;
	fd = listen_on(m, d->cfg.metrics_addr, err, errlen);
	if (fd < 0)
		return fd;
	m->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL,
				  NULL, on_request, m, MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT,
				  10u, MHD_OPTION_END);
	if (m->mhd == NULL) {
		close(fd);
		snprintf(err, errlen, "metrics_addr: cannot start the HTTP server on %s", m->bound);
		return -EIO;
	}
	tally_log(LOG_INFO, "tallyd: metrics and status page on http://%s/", m->bound);
	return 0;
}

const char *tally_metrics_bound(const struct tally_daemon *d)
{
	return d->metrics != NULL ? d->metrics->bound : "";
}

void tally_metrics_stop(struct tally_daemon *d)
{
	struct tally_metrics *m = d->metrics;

	if (m == NULL)
		return;
	if (m->mhd != NULL)
		MHD_stop_daemon(m->mhd); /* closes the listening socket too */
	tally_snap_fini(&m->snap);
	free(m);
	d->metrics = NULL;
}
