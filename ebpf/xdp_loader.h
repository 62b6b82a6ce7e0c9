/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control plane's side of the XDP front. DPDK 22.11's net_af_xdp loads the
 * program itself (its xdp_prog= devarg) and puts its AF_XDP sockets in the
 * program's xsks_map; this file does the rest: clears a tally_xdp left attached
 * by a crashed tallyd before the PMD probes (with libxdp, so another tool's
 * program is recognised and named, never removed), finds the attached
 * program's maps by id, fills them from the config, changes them live for
 * tallyctl (acl, ratelimit), sums the per-CPU verdict counters, and detaches
 * the program if the PMD left it behind.
 */
#ifndef TALLY_XDP_LOADER_H
#define TALLY_XDP_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "counters.h"
#include "tally_xdp.h"

struct bpf_object;

struct tally_xdp {
	int ifindex;     /* 0 when bound to an object (tests) */
	uint32_t prog_id;
	int cfg_fd, acl4_fd, acl6_fd, rl_fd, stats_fd, xsks_fd;
	struct tally_xdp_cfg cfg; /* what tally_cfg holds */
};

#define TALLY_XDP_CIDR_MAX 64

/* The object file: path itself, or for "" the installed program, else the
 * build tree's. 0 or -ENOENT with err. */
int tally_xdp_object_path(const char *path, char *out, size_t outlen, char *err, size_t errlen);
/* Detach a tally_xdp a crashed tallyd left on ifname; refuse (-EBUSY) when
 * another program holds the interface, naming it. 0 when the interface is free. */
int tally_xdp_clear_leftover(const char *ifname, char *err, size_t errlen);
/* Bind to the tally_xdp attached to ifname (by the PMD) or to a loaded object. */
int tally_xdp_bind_ifname(struct tally_xdp *x, const char *ifname, char *err, size_t errlen);
int tally_xdp_bind_object(struct tally_xdp *x, struct bpf_object *obj, char *err, size_t errlen);
void tally_xdp_close(struct tally_xdp *x);
/* Detach the program from the interface if it is still ours (PMD left it). */
void tally_xdp_detach(struct tally_xdp *x);

/* Ports in host order; statsd_max_len 1..65507. */
int tally_xdp_set_ports(struct tally_xdp *x, uint16_t tly1, uint16_t statsd,
			uint32_t statsd_max_len);
/* pps 0 = off; bounds TALLY_XDP_RATE_MAX, TALLY_XDP_BURST_MAX. */
int tally_xdp_ratelimit_set(struct tally_xdp *x, uint64_t pps, uint64_t burst, char *err,
			    size_t errlen);
/* "10.77.0.0/24", "fd00::/64", "10.77.0.5" (= /32). */
int tally_xdp_acl_add(struct tally_xdp *x, const char *cidr, char *err, size_t errlen);
int tally_xdp_acl_del(struct tally_xdp *x, const char *cidr, char *err, size_t errlen);
/* A comma/space-separated list, as the acl key holds it. */
int tally_xdp_acl_add_list(struct tally_xdp *x, const char *list, char *err, size_t errlen);
/* Up to max entries as text; the count, or a negative errno. */
int tally_xdp_acl_list(const struct tally_xdp *x, char (*out)[TALLY_XDP_CIDR_MAX], size_t max);
/* The XDP_* counters, summed over CPUs, at out[0..TALLY_XDP_NCOUNTERS). */
int tally_xdp_counters(const struct tally_xdp *x, uint64_t out[TALLY_XDP_NCOUNTERS]);

#endif
