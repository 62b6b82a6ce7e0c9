/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tallyd's use of the XDP front on net_af_xdp ports. Before the PMD probes:
 * clear a tally_xdp a crashed tallyd left on the interface and have the PMD
 * attach ours (xdp_prog=) on as many queues as tallyd polls (queue_count=).
 * After the port starts: bind to the program's maps and fill them from the
 * config (ports, StatsD bound, acl, ratelimit_*). On stop the PMD detaches it;
 * tally_daemon_xdp_stop makes sure. Other ports are left alone.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tallyd.h"
#include "log.h"
#include "xdp_loader.h"

/* The value of devarg key= in devargs, or "" (copied into out). */
static void devarg(const char *devargs, const char *key, char *out, size_t len)
{
	size_t klen = strlen(key);

	out[0] = '\0';
	for (const char *p = strchr(devargs, ','); p != NULL; p = strchr(p + 1, ','))
		if (strncmp(p + 1, key, klen) == 0 && p[1 + klen] == '=') {
			snprintf(out, len, "%.*s", (int)strcspn(p + 2 + klen, ","), p + 2 + klen);
			return;
		}
}

bool tally_daemon_is_af_xdp(const char *devargs)
{
	return strncmp(devargs, "net_af_xdp", 10) == 0;
}

int tally_daemon_xdp_prepare(struct tally_daemon *d, const char *devargs, uint16_t nq,
			     char *out, size_t outlen, char *err, size_t errlen)
{
	char prog[TALLY_CFG_STR_MAX], obj[TALLY_CFG_STR_MAX], qc[16];
	int r, n;

	if (d->xdp_ifname[0] != '\0') {
		snprintf(err, errlen, "port: \"%s\": a second net_af_xdp device; one tallyd "
			 "serves one AF_XDP interface (give it more queues instead)", devargs);
		return -EINVAL;
	}
	devarg(devargs, "iface", d->xdp_ifname, sizeof(d->xdp_ifname));
	if (d->xdp_ifname[0] == '\0') {
		snprintf(err, errlen, "port: \"%s\": net_af_xdp needs iface=IFACE", devargs);
		return -EINVAL;
	}
	devarg(devargs, "xdp_prog", prog, sizeof(prog));
	devarg(devargs, "queue_count", qc, sizeof(qc));
	d->xdp_on = prog[0] == '\0' && strcmp(d->cfg.xdp_program, "none") != 0;
	if (d->xdp_on && (r = tally_xdp_object_path(d->cfg.xdp_program, obj, sizeof(obj), err,
						    errlen)) < 0)
		return r;
	r = tally_xdp_clear_leftover(d->xdp_ifname, err, errlen);
	if (r < 0)
		return r;
	n = snprintf(out, outlen, "%s", devargs);
	if (qc[0] == '\0')
		n += snprintf(out + n, outlen - (size_t)n, ",queue_count=%u", nq);
	if (d->xdp_on)
		n += snprintf(out + n, outlen - (size_t)n, ",xdp_prog=%s", obj);
	if ((size_t)n >= outlen) {
		snprintf(err, errlen, "port: devargs with xdp_prog= longer than %zu bytes", outlen);
		return -ENAMETOOLONG;
	}
	return 0;
}

int tally_daemon_xdp_start(struct tally_daemon *d, char *err, size_t errlen)
{
	int r;

	if (!d->xdp_on)
		return 0;
	r = tally_xdp_bind_ifname(&d->xdp, d->xdp_ifname, err, errlen);
	if (r < 0)
		return r;
	d->xdp_bound = true;
	r = tally_xdp_set_ports(&d->xdp, (uint16_t)d->cfg.tly1_port, (uint16_t)d->cfg.statsd_port,
				(uint32_t)d->cfg.xdp_statsd_max_len);
	if (r == 0)
		r = tally_xdp_ratelimit_set(&d->xdp, d->cfg.ratelimit_pps, d->cfg.ratelimit_burst,
					    err, errlen);
	if (r == 0)
		r = tally_xdp_acl_add_list(&d->xdp, d->cfg.acl, err, errlen);
	if (r < 0 && err[0] == '\0')
		snprintf(err, errlen, "xdp: cannot fill tally_xdp's maps: %s", strerror(-r));
	if (r == 0)
		tally_log(LOG_INFO, "tallyd: %s: tally_xdp (id %u) attached; acl %s, ratelimit %llu/s",
			d->xdp_ifname, d->xdp.prog_id, d->xdp.cfg.acl_on ? d->cfg.acl : "(everyone)",
			(unsigned long long)d->cfg.ratelimit_pps);
	return r;
}

void tally_daemon_xdp_stop(struct tally_daemon *d)
{
	if (!d->xdp_bound)
		return;
	tally_xdp_detach(&d->xdp);
	tally_xdp_close(&d->xdp);
	d->xdp_bound = false;
}

void tally_daemon_xdp_counters(const struct tally_daemon *d, uint64_t out[TALLY_C_MAX])
{
	uint64_t v[TALLY_XDP_NCOUNTERS];

	if (!d->xdp_bound || tally_xdp_counters(&d->xdp, v) < 0)
		return;
	for (int i = 0; i < TALLY_XDP_NCOUNTERS; i++)
		out[TALLY_C_XDP_PASS + i] = v[i];
}
