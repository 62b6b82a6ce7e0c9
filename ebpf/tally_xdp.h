/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the XDP program (tally_xdp.bpf.c) and its loader (xdp_loader.c) share:
 * the map names and the layout of every key and value. Plain fixed-width types
 * only, so the same header compiles for -target bpf and for user space.
 *
 * Addresses and ports are kept in network byte order, as they sit in the frame:
 * the program compares bytes and never converts on the hot path.
 */
#ifndef TALLY_XDP_H
#define TALLY_XDP_H

#include <linux/types.h>

#define TALLY_XDP_PROG "tally_xdp"
#define TALLY_XDP_MAP_XSKS "xsks_map" /* the name DPDK's net_af_xdp looks for */
#define TALLY_XDP_MAP_CFG "tally_cfg"
#define TALLY_XDP_MAP_ACL4 "tally_acl4"
#define TALLY_XDP_MAP_ACL6 "tally_acl6"
#define TALLY_XDP_MAP_RL "tally_rl"
#define TALLY_XDP_MAP_STATS "tally_stats"

#define TALLY_XDP_MAX_QUEUES 64
#define TALLY_XDP_ACL_MAX 4096
#define TALLY_XDP_RL_SOURCES 65536
#define TALLY_XDP_TLY1_HDR 24
/* Token buckets count in nano-packets: one datagram costs this many. */
#define TALLY_XDP_TOKEN 1000000000ull
/* Refill is capped at 10 s of elapsed time so elapsed x rate cannot overflow:
 * with rate <= TALLY_XDP_RATE_MAX it stays below 2^63. */
#define TALLY_XDP_REFILL_MAX_NS 10000000000ull
#define TALLY_XDP_RATE_MAX 100000000ull
#define TALLY_XDP_BURST_MAX 1000000ull

/* The one entry of tally_cfg. Ports are network order; 0 = off. */
struct tally_xdp_cfg {
	__u16 tly1_port;
	__u16 statsd_port;
	__u32 statsd_max_len; /* StatsD payload bytes, 1..this */
	__u32 acl_on;         /* 1: the allow-list has entries and is enforced */
	__u32 pad;
	__u64 rate_pps;       /* per source; 0 = no rate limit */
	__u64 burst;          /* bucket depth in datagrams */
};

struct tally_xdp_acl4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct tally_xdp_acl6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Rate-limit key: IPv6 source, or IPv4 as ::ffff:a.b.c.d. */
struct tally_xdp_src {
	__u8 addr[16];
};

struct tally_xdp_bucket {
	__u64 tokens; /* nano-packets */
	__u64 last_ns;
};

#endif
