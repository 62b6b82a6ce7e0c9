/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The XDP front's loader (xdp_loader.h says what it does and why the PMD
 * attaches the program). Maps are found by name through the attached
 * program's map ids, so tallyd needs no pinning and leaves nothing in bpffs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <xdp/libxdp.h>

#include "xdp_loader.h"

int tally_xdp_object_path(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
	const char *p = path;

	if (p[0] == '\0')
		p = access(TALLY_XDP_OBJ_INSTALLED, R_OK) == 0 ? TALLY_XDP_OBJ_INSTALLED
							       : TALLY_XDP_OBJ_BUILD;
	if (access(p, R_OK) != 0) {
		snprintf(err, errlen, "xdp_program: cannot read \"%s\": %s", p, strerror(errno));
		return -ENOENT;
	}
	snprintf(out, outlen, "%s", p);
	return 0;
}

static int ifindex_of(const char *ifname, char *err, size_t errlen)
{
	int i = (int)if_nametoindex(ifname);

	if (i == 0)
		snprintf(err, errlen, "xdp: no interface \"%s\": %s", ifname, strerror(errno));
	return i;
}

int tally_xdp_clear_leftover(const char *ifname, char *err, size_t errlen)
{
	int ifindex = ifindex_of(ifname, err, errlen), r = 0;
	struct xdp_multiprog *mp;
	struct xdp_program *main;

	if (ifindex == 0)
		return -ENODEV;
	mp = xdp_multiprog__get_from_ifindex(ifindex);
	if (libxdp_get_error(mp) || mp == NULL)
		return 0; /* nothing attached */
	main = xdp_multiprog__main_prog(mp);
	if (main == NULL) {
		xdp_multiprog__close(mp);
		return 0;
	}
	if (xdp_multiprog__is_legacy(mp) && strcmp(xdp_program__name(main), TALLY_XDP_PROG) == 0) {
		fprintf(stderr, "tallyd: %s: replacing a tally_xdp (id %u) left by an earlier "
			"tallyd\n", ifname, xdp_program__id(main));
		r = xdp_multiprog__detach(mp);
		if (r < 0)
			snprintf(err, errlen, "xdp: %s: cannot detach the leftover tally_xdp: %s",
				 ifname, strerror(-r));
	} else {
		/* DPDK 22.11's net_af_xdp attaches xdp_prog alone, not through the
		 * libxdp dispatcher, so it cannot share the interface. */
		snprintf(err, errlen, "xdp: %s already runs XDP program \"%s\" (id %u)%s: "
			 "net_af_xdp needs the interface to itself; unload it (xdp-loader "
			 "unload %s --all) or use another interface", ifname,
			 xdp_program__name(main), xdp_program__id(main),
			 xdp_multiprog__is_legacy(mp) ? "" : " in a libxdp dispatcher", ifname);
		r = -EBUSY;
	}
	xdp_multiprog__close(mp);
	return r;
}

static void fds_reset(struct tally_xdp *x)
{
	x->cfg_fd = x->acl4_fd = x->acl6_fd = x->rl_fd = x->stats_fd = x->xsks_fd = -1;
}

/* Keep fd if name is one of ours; returns whether it was kept. */
static int take_map(struct tally_xdp *x, const char *name, int fd)
{
	struct { const char *name; int *fd; } maps[] = {
		{TALLY_XDP_MAP_CFG, &x->cfg_fd}, {TALLY_XDP_MAP_ACL4, &x->acl4_fd},
		{TALLY_XDP_MAP_ACL6, &x->acl6_fd}, {TALLY_XDP_MAP_RL, &x->rl_fd},
		{TALLY_XDP_MAP_STATS, &x->stats_fd}, {TALLY_XDP_MAP_XSKS, &x->xsks_fd},
	};

	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++)
		if (strcmp(name, maps[i].name) == 0 && *maps[i].fd < 0) {
			*maps[i].fd = fd;
			return 1;
		}
	return 0;
}

static int check_bound(struct tally_xdp *x, const char *what, char *err, size_t errlen)
{
	if (x->cfg_fd < 0 || x->acl4_fd < 0 || x->acl6_fd < 0 || x->rl_fd < 0 ||
	    x->stats_fd < 0 || x->xsks_fd < 0) {
		snprintf(err, errlen, "xdp: %s lacks one of tally_xdp's maps: not Tally's program "
			 "or another version of it", what);
		tally_xdp_close(x);
		return -ENOENT;
	}
	memset(&x->cfg, 0, sizeof(x->cfg));
	return 0;
}

static int bind_prog_maps(struct tally_xdp *x, int prog_fd, char *err, size_t errlen)
{
	struct bpf_prog_info info = {0};
	uint32_t ids[16], len = sizeof(info);
	int r;

	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) < 0 || info.nr_map_ids > 16) {
		snprintf(err, errlen, "xdp: cannot read the program's info: %s", strerror(errno));
		return -EIO;
	}
	if (strcmp(info.name, TALLY_XDP_PROG) != 0) {
		snprintf(err, errlen, "xdp: the attached program is \"%s\", not tally_xdp",
			 info.name);
		return -ENOENT;
	}
	r = (int)info.nr_map_ids;
	memset(&info, 0, sizeof(info));
	info.nr_map_ids = (uint32_t)r;
	info.map_ids = (uint64_t)(uintptr_t)ids;
	len = sizeof(info);
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) < 0)
		return -errno;
	for (int i = 0; i < r; i++) {
		struct bpf_map_info mi = {0};
		uint32_t mlen = sizeof(mi);
		int fd = bpf_map_get_fd_by_id(ids[i]);

		if (fd < 0)
			continue;
		if (bpf_obj_get_info_by_fd(fd, &mi, &mlen) < 0 || !take_map(x, mi.name, fd))
			close(fd);
	}
	return 0;
}

int tally_xdp_bind_ifname(struct tally_xdp *x, const char *ifname, char *err, size_t errlen)
{
	int ifindex = ifindex_of(ifname, err, errlen), prog_fd, r;
	uint32_t id = 0;

	fds_reset(x);
	if (ifindex == 0)
		return -ENODEV;
	r = bpf_xdp_query_id(ifindex, 0, &id);
	if (r < 0 || id == 0) {
		snprintf(err, errlen, "xdp: no XDP program on %s after the port started", ifname);
		return r < 0 ? r : -ENOENT;
	}
	prog_fd = bpf_prog_get_fd_by_id(id);
	if (prog_fd < 0) {
		snprintf(err, errlen, "xdp: %s: program id %u: %s", ifname, id, strerror(errno));
		return -errno;
	}
	r = bind_prog_maps(x, prog_fd, err, errlen);
	close(prog_fd);
	if (r < 0)
		return r;
	x->ifindex = ifindex;
	x->prog_id = id;
	return check_bound(x, ifname, err, errlen);
}

int tally_xdp_bind_object(struct tally_xdp *x, struct bpf_object *obj, char *err, size_t errlen)
{
	struct bpf_map *m;

	fds_reset(x);
	x->ifindex = 0;
	x->prog_id = 0;
	bpf_object__for_each_map(m, obj) {
		int fd = dup(bpf_map__fd(m));

		if (fd >= 0 && !take_map(x, bpf_map__name(m), fd))
			close(fd);
	}
	return check_bound(x, "the object", err, errlen);
}

void tally_xdp_close(struct tally_xdp *x)
{
	int *fds[] = {&x->cfg_fd, &x->acl4_fd, &x->acl6_fd, &x->rl_fd, &x->stats_fd, &x->xsks_fd};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

void tally_xdp_detach(struct tally_xdp *x)
{
	uint32_t id = 0;

	if (x->ifindex == 0 || bpf_xdp_query_id(x->ifindex, 0, &id) < 0 || id != x->prog_id)
		return; /* gone already (the PMD detached it) or not ours */
	LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = -1);
	bpf_xdp_detach(x->ifindex, 0, &opts);
}

static int cfg_push(struct tally_xdp *x)
{
	uint32_t zero = 0;

	return bpf_map_update_elem(x->cfg_fd, &zero, &x->cfg, BPF_ANY) < 0 ? -errno : 0;
}

int tally_xdp_set_ports(struct tally_xdp *x, uint16_t tly1, uint16_t statsd,
			uint32_t statsd_max_len)
{
	if (statsd_max_len == 0 || statsd_max_len > 65507)
		return -ERANGE;
	x->cfg.tly1_port = htons(tly1);
	x->cfg.statsd_port = htons(statsd);
	x->cfg.statsd_max_len = statsd_max_len;
	return cfg_push(x);
}

int tally_xdp_ratelimit_set(struct tally_xdp *x, uint64_t pps, uint64_t burst, char *err,
			    size_t errlen)
{
	if (pps > TALLY_XDP_RATE_MAX || (pps != 0 && (burst == 0 || burst > TALLY_XDP_BURST_MAX))) {
		snprintf(err, errlen, "ratelimit: pps %llu burst %llu: pps must be 0 (off) .. %llu "
			 "and burst 1 .. %llu", (unsigned long long)pps, (unsigned long long)burst,
			 TALLY_XDP_RATE_MAX, TALLY_XDP_BURST_MAX);
		return -ERANGE;
	}
	x->cfg.rate_pps = pps;
	x->cfg.burst = burst;
	return cfg_push(x);
}

/* An ACL entry as an LPM key of its family, host bits cleared so that add,
 * del and list agree on one spelling. 4 or 6, or -EINVAL. */
static int acl_parse(const char *cidr, struct tally_xdp_acl4_key *k4,
		     struct tally_xdp_acl6_key *k6, char *err, size_t errlen)
{
	char addr[TALLY_XDP_CIDR_MAX], *slash, *end;
	int fam, bits;
	long len;
	uint8_t *a;

	snprintf(addr, sizeof(addr), "%s", cidr);
	slash = strchr(addr, '/');
	if (slash)
		*slash++ = '\0';
	memset(k4, 0, sizeof(*k4));
	memset(k6, 0, sizeof(*k6));
	if (inet_pton(AF_INET, addr, k4->addr) == 1) {
		fam = 4, bits = 32, a = k4->addr;
	} else if (inet_pton(AF_INET6, addr, k6->addr) == 1) {
		fam = 6, bits = 128, a = k6->addr;
	} else {
		snprintf(err, errlen, "acl: \"%s\" is not an IPv4 or IPv6 address or prefix", cidr);
		return -EINVAL;
	}
	len = bits;
	if (slash && (len = strtol(slash, &end, 10), *slash == '\0' || *end || len < 0 ||
		      len > bits)) {
		snprintf(err, errlen, "acl: \"%s\": prefix length must be 0..%d", cidr, bits);
		return -EINVAL;
	}
	for (int i = 0; i < bits / 8; i++)
		if (i * 8 >= len)
			a[i] = 0;
		else if (i * 8 + 8 > len)
			a[i] &= (uint8_t)(0xff << (8 - (len - i * 8)));
	k4->prefixlen = k6->prefixlen = (uint32_t)len;
	return fam;
}

static int acl_count(const struct tally_xdp *x)
{
	return tally_xdp_acl_list(x, NULL, 0);
}

/* The program enforces the list only while it has entries: empty = everyone. */
static int acl_refresh(struct tally_xdp *x)
{
	int n = acl_count(x);

	if (n < 0)
		return n;
	x->cfg.acl_on = n > 0;
	return cfg_push(x);
}

static int acl_change(struct tally_xdp *x, const char *cidr, int add, char *err, size_t errlen)
{
	struct tally_xdp_acl4_key k4;
	struct tally_xdp_acl6_key k6;
	int fam = acl_parse(cidr, &k4, &k6, err, errlen), fd, r;
	void *key;
	uint8_t one = 1;

	if (fam < 0)
		return fam;
	fd = fam == 4 ? x->acl4_fd : x->acl6_fd;
	key = fam == 4 ? (void *)&k4 : (void *)&k6;
	r = add ? bpf_map_update_elem(fd, key, &one, BPF_ANY) : bpf_map_delete_elem(fd, key);
	if (r < 0) {
		r = -errno;
		snprintf(err, errlen, "acl: cannot %s \"%s\": %s", add ? "add" : "delete", cidr,
			 r == -ENOENT ? "not in the list" : r == -ENOSPC ? "the list is full (4096)"
			 : strerror(-r));
		return r;
	}
	return acl_refresh(x);
}

int tally_xdp_acl_add(struct tally_xdp *x, const char *cidr, char *err, size_t errlen)
{
	return acl_change(x, cidr, 1, err, errlen);
}

int tally_xdp_acl_del(struct tally_xdp *x, const char *cidr, char *err, size_t errlen)
{
	return acl_change(x, cidr, 0, err, errlen);
}

int tally_xdp_acl_add_list(struct tally_xdp *x, const char *list, char *err, size_t errlen)
{
	char buf[4096], *save = NULL;
	int r = 0;

	snprintf(buf, sizeof(buf), "%s", list);
	for (char *t = strtok_r(buf, ", \t", &save); t && r == 0; t = strtok_r(NULL, ", \t", &save))
		r = tally_xdp_acl_add(x, t, err, errlen);
	return r == 0 ? acl_refresh(x) : r;
}

/* Walk one trie, writing entries from out[n] on while there is room. */
static int acl_walk(int fd, size_t keylen, int fam, char (*out)[TALLY_XDP_CIDR_MAX], size_t max,
		    size_t n)
{
	uint8_t key[sizeof(struct tally_xdp_acl6_key)], next[sizeof(key)];
	void *prev = NULL;

	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		if (out && n < max) {
			char a[INET6_ADDRSTRLEN];
			uint32_t plen;

			memcpy(&plen, next, 4);
			inet_ntop(fam == 4 ? AF_INET : AF_INET6, next + 4, a, sizeof(a));
			snprintf(out[n], TALLY_XDP_CIDR_MAX, "%s/%u", a, plen);
		}
		n++;
		memcpy(key, next, keylen);
		prev = key;
	}
	return errno == ENOENT ? (int)n : -errno;
}

int tally_xdp_acl_list(const struct tally_xdp *x, char (*out)[TALLY_XDP_CIDR_MAX], size_t max)
{
	int n = acl_walk(x->acl4_fd, sizeof(struct tally_xdp_acl4_key), 4, out, max, 0);

	if (n < 0)
		return n;
	return acl_walk(x->acl6_fd, sizeof(struct tally_xdp_acl6_key), 6, out, max, (size_t)n);
}

int tally_xdp_counters(const struct tally_xdp *x, uint64_t out[TALLY_XDP_NCOUNTERS])
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *v;

	if (ncpu <= 0)
		return ncpu < 0 ? ncpu : -EINVAL;
	v = calloc((size_t)ncpu, sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < TALLY_XDP_NCOUNTERS; i++) {
		out[i] = 0;
		if (bpf_map_lookup_elem(x->stats_fd, &i, v) < 0)
			continue;
		for (int c = 0; c < ncpu; c++)
			out[i] += v[c];
	}
	free(v);
	return 0;
}
