/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Tally's XDP front: the first and cheapest place a hostile or broken datagram
 * can die. For UDP to the configured event ports it drops what a worker would
 * drop anyway (too short for a TLY1 header, a bad magic, an empty or oversized
 * StatsD datagram, a first IPv4 fragment), sources outside the allow-list (LPM
 * tries, IPv4 and IPv6; an empty list lets everyone in) and sources over their
 * token bucket (an LRU hash, so a spoofed-source flood evicts old buckets
 * instead of failing), and redirects the rest to the AF_XDP socket bound to
 * the receiving queue. Everything else (ARP, ND, ICMP, TCP, other ports, frames
 * whose headers are cut short) is the kernel's: XDP_PASS. Every verdict has a
 * per-CPU counter, indexed as the XDP_* counters of dataplane/counters.h.
 *
 * No CO-RE: the program reads packet bytes and its own maps, never a kernel
 * structure, so it needs no vmlinux.h and loads on any kernel with LPM tries,
 * LRU hashes and XSKMAP lookups (5.3+; Debian 12 ships 6.1). Kept that way on
 * purpose: four helpers (map lookup/update, ktime_get_ns, redirect_map), no
 * kfunc, no bpf_loop or dynptr, no BPF-to-BPF call; ebpf/verify_kernel.sh
 * boots Debian 12's 6.1 kernel in qemu and runs its verifier and the unit
 * test there (meson test xdp-kernel-6.1).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "counters.h"
#include "tally_xdp.h"

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, TALLY_XDP_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tally_xdp_cfg);
} tally_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, TALLY_XDP_ACL_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tally_xdp_acl4_key);
	__type(value, __u8);
} tally_acl4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, TALLY_XDP_ACL_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tally_xdp_acl6_key);
	__type(value, __u8);
} tally_acl6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TALLY_XDP_RL_SOURCES);
	__type(key, struct tally_xdp_src);
	__type(value, struct tally_xdp_bucket);
} tally_rl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TALLY_XDP_NCOUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} tally_stats SEC(".maps");

#define VERDICT(c) (TALLY_C_##c - TALLY_C_XDP_PASS)

/* What the parse found; src holds IPv4 as ::ffff:a.b.c.d. */
struct pkt {
	struct tally_xdp_src src;
	__u8 *payload;
	__u32 plen;     /* UDP payload bytes, bounded by the frame */
	__u32 udp_len;  /* the UDP length field */
	__u16 dport;    /* network order */
	__u8 v6;
	__u8 first_frag;
};

static __always_inline int count(__u32 verdict, int action)
{
	__u64 *v = bpf_map_lookup_elem(&tally_stats, &verdict);

	if (v)
		*v += 1;
	return action;
}

/* Ethernet and up to two VLAN tags (802.1Q, 802.1ad); returns the ethertype
 * (network order) and moves *pos past them, or 0 when the frame is cut short. */
static __always_inline __u16 parse_eth(__u8 **pos, __u8 *end)
{
	struct ethhdr *eth = (struct ethhdr *)*pos;
	__u16 proto;

	if ((__u8 *)(eth + 1) > end)
		return 0;
	proto = eth->h_proto;
	*pos = (__u8 *)(eth + 1);
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if (*pos + 4 > end)
			return 0;
		proto = *(__u16 *)(*pos + 2);
		*pos += 4;
	}
	return proto;
}

/* IPv4 with options: 0 and *pos on the UDP header, or -1 (not UDP, cut short). */
static __always_inline int parse_ipv4(__u8 **pos, __u8 *end, struct pkt *p)
{
	struct iphdr *ip = (struct iphdr *)*pos;
	__u32 ihl;

	if ((__u8 *)(ip + 1) > end || ip->protocol != IPPROTO_UDP)
		return -1;
	ihl = (__u32)ip->ihl * 4;
	if (ihl < sizeof(*ip) || *pos + ihl > end)
		return -1;
	/* A later fragment has no UDP header: the kernel gets it and drops it
	 * when its reassembly times out. The first one is judged by its port. */
	if (ip->frag_off & bpf_htons(0x1fff))
		return -1;
	p->first_frag = (ip->frag_off & bpf_htons(0x2000)) != 0;
	__builtin_memset(p->src.addr, 0, 10);
	p->src.addr[10] = 0xff;
	p->src.addr[11] = 0xff;
	__builtin_memcpy(&p->src.addr[12], &ip->saddr, 4);
	*pos += ihl;
	return 0;
}

static __always_inline int parse_ipv6(__u8 **pos, __u8 *end, struct pkt *p)
{
	struct ipv6hdr *ip6 = (struct ipv6hdr *)*pos;

	/* Extension headers go to the kernel: Tally's parsers refuse them anyway. */
	if ((__u8 *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_UDP)
		return -1;
	__builtin_memcpy(p->src.addr, &ip6->saddr, 16);
	p->v6 = 1;
	*pos = (__u8 *)(ip6 + 1);
	return 0;
}

/* 0 with p filled for a UDP datagram whose headers are all in the frame. */
static __always_inline int parse(__u8 *pos, __u8 *end, struct pkt *p)
{
	struct udphdr *udp;
	__u16 proto = parse_eth(&pos, end);
	__u32 avail;

	if (proto == bpf_htons(ETH_P_IP)) {
		if (parse_ipv4(&pos, end, p) < 0)
			return -1;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		if (parse_ipv6(&pos, end, p) < 0)
			return -1;
	} else {
		return -1;
	}
	udp = (struct udphdr *)pos;
	if ((__u8 *)(udp + 1) > end)
		return -1;
	p->dport = udp->dest;
	p->udp_len = bpf_ntohs(udp->len);
	p->payload = (__u8 *)(udp + 1);
	avail = (__u32)(end - p->payload);
	p->plen = p->udp_len < sizeof(*udp) ? 0 : p->udp_len - (__u32)sizeof(*udp);
	if (p->plen > avail)
		p->plen = avail;
	return 0;
}

static __always_inline int acl_allows(const struct tally_xdp_cfg *c, const struct pkt *p)
{
	if (!c->acl_on)
		return 1;
	if (p->v6) {
		struct tally_xdp_acl6_key k6 = {.prefixlen = 128};

		__builtin_memcpy(k6.addr, p->src.addr, 16);
		return bpf_map_lookup_elem(&tally_acl6, &k6) != NULL;
	}
	struct tally_xdp_acl4_key k4 = {.prefixlen = 32};

	__builtin_memcpy(k4.addr, &p->src.addr[12], 4);
	return bpf_map_lookup_elem(&tally_acl4, &k4) != NULL;
}

/* Token bucket per source. Buckets are shared by CPUs without atomics: two
 * queues of one source may race and let a datagram or two more through; the
 * bound holds within that error, and no lock is taken per packet. */
static __always_inline int rate_allows(const struct tally_xdp_cfg *c, const struct pkt *p)
{
	__u64 now, elapsed, tokens, cap;
	struct tally_xdp_bucket *b;

	if (c->rate_pps == 0)
		return 1;
	now = bpf_ktime_get_ns();
	cap = c->burst * TALLY_XDP_TOKEN;
	b = bpf_map_lookup_elem(&tally_rl, &p->src);
	if (!b) {
		struct tally_xdp_bucket nb = {.tokens = cap - TALLY_XDP_TOKEN, .last_ns = now};

		bpf_map_update_elem(&tally_rl, &p->src, &nb, BPF_ANY);
		return 1;
	}
	elapsed = now - b->last_ns;
	if (elapsed > TALLY_XDP_REFILL_MAX_NS)
		elapsed = TALLY_XDP_REFILL_MAX_NS;
	tokens = b->tokens + elapsed * c->rate_pps;
	if (tokens > cap)
		tokens = cap;
	b->last_ns = now;
	if (tokens < TALLY_XDP_TOKEN) {
		b->tokens = tokens;
		return 0;
	}
	b->tokens = tokens - TALLY_XDP_TOKEN;
	return 1;
}

static __always_inline int is_tly1_magic(const struct pkt *p, __u8 *end)
{
	__u8 *m = p->payload;

	if (p->plen < 4 || m + 4 > end)
		return 0;
	return m[0] == 'T' && m[1] == 'L' && m[2] == 'Y' && m[3] == '1';
}

/* The shape check a worker would make first: -1 and the verdict, or 0. */
static __always_inline int shape(const struct tally_xdp_cfg *c, const struct pkt *p, __u8 *end,
				 __u32 *verdict)
{
	int tly1 = p->dport == c->tly1_port &&
		   (c->tly1_port != c->statsd_port || is_tly1_magic(p, end));

	if (p->first_frag) {
		*verdict = VERDICT(XDP_DROP_FRAG);
		return -1;
	}
	if (p->udp_len < sizeof(struct udphdr) || (tly1 && p->plen < TALLY_XDP_TLY1_HDR)) {
		*verdict = VERDICT(XDP_DROP_SHORT);
		return -1;
	}
	if (tly1 && !is_tly1_magic(p, end)) {
		*verdict = VERDICT(XDP_DROP_MAGIC);
		return -1;
	}
	if (!tly1 && (p->plen == 0 || p->plen > c->statsd_max_len)) {
		*verdict = VERDICT(XDP_DROP_STATSD_LEN);
		return -1;
	}
	return 0;
}

SEC("xdp")
int tally_xdp(struct xdp_md *ctx)
{
	__u8 *data = (__u8 *)(long)ctx->data, *end = (__u8 *)(long)ctx->data_end;
	__u32 zero = 0, verdict, queue = ctx->rx_queue_index;
	const struct tally_xdp_cfg *c = bpf_map_lookup_elem(&tally_cfg, &zero);
	struct pkt p = {};

	if (!c || parse(data, end, &p) < 0)
		return count(VERDICT(XDP_PASS), XDP_PASS);
	if (p.dport == 0 || (p.dport != c->tly1_port && p.dport != c->statsd_port))
		return count(VERDICT(XDP_PASS), XDP_PASS);
	if (!acl_allows(c, &p))
		return count(VERDICT(XDP_DROP_ACL), XDP_DROP);
	if (shape(c, &p, end, &verdict) < 0)
		return count(verdict, XDP_DROP);
	if (!rate_allows(c, &p))
		return count(VERDICT(XDP_DROP_RATE), XDP_DROP);
	/* Looked up first so a missing socket is counted, not a silent fallback. */
	if (!bpf_map_lookup_elem(&xsks_map, &queue))
		return count(VERDICT(XDP_DROP_NO_SOCKET), XDP_DROP);
	count(VERDICT(XDP_REDIRECT), 0);
	return bpf_redirect_map(&xsks_map, queue, XDP_DROP);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
