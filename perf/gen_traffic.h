/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-gen's traffic model, with no DPDK in it: a pool of P pre-rendered frames
 * sent in cycles. Cycle c sends the pool's frames again with the same keys, times
 * and values but new event ids (id = base + c * E + j + 1 for the pool's j-th
 * fresh event, E fresh events per pool), so the sending core only copies a frame
 * and patches 8 bytes per event, and the expected totals after any number of
 * datagrams are the pool's totals times the full cycles plus the totals of the
 * last cycle's prefix.
 */
#ifndef TALLY_GEN_TRAFFIC_H
#define TALLY_GEN_TRAFFIC_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "counters.h"

enum gen_proto { GEN_TLY1, GEN_STATSD };

/* The room a frame may need: Ethernet + one VLAN tag + IPv6 + UDP + a datagram. */
#define GEN_HDR_MAX (14 + 4 + 40 + 8)
#define GEN_FRAME_MAX (GEN_HDR_MAX + 65535)
/* The pool holds at most this many events (ids and lookups stay 32-bit). */
#define GEN_POOL_EVENTS_MAX (1u << 30)

#define GEN_STYPES_MAX 20
/* c g ms h d s: what --statsd-types names, by index */
extern const char *const gen_statsd_types[6];

struct gen_opts {
	enum gen_proto proto;
	uint32_t keys, per_dgram, pool, flows, key_len, mtu;
	bool zipf;
	double zipf_s, dup_rate, malformed_rate, ipv6_share, vlan_share;
	uint64_t time_ms, span_ms, window_ms, seed, sender_id;
	bool ack_req; /* TLY1 flag ACK_REQ on every datagram */
	uint8_t mac_id;      /* --mac-key: valid TLY1 datagrams signed under key mac_id */
	uint8_t mac_key[16]; /* (SipHash-2-4-128, DESIGN's trailer); 0 = unsigned */
	/* StatsD lines as every StatsD server reads them ("name:N|c", no tags,
	 * |T or rate), for comparisons with other servers; no expected totals */
	bool statsd_plain;
	uint16_t dst_port;
	/* StatsD: key k has type gen_statsd_types[stypes[k % nstypes]] */
	uint8_t stypes[GEN_STYPES_MAX], nstypes;
};

struct gen_frame {
	uint64_t off;         /* in gen_pool.buf */
	uint32_t len;
	uint32_t patch_first; /* in gen_pool.patch */
	uint16_t npatch;
	uint16_t l4_off;      /* UDP header offset */
	uint16_t dups, bad_lines;
	bool ipv6, bad;
	bool mac; /* the last 16 payload bytes are its MAC, computed at render time */
};

struct gen_patch {
	uint32_t off; /* of the 8-byte event id, from the UDP payload start */
	uint32_t src; /* id = base + cycle * fresh + src + 1 */
};

/* One valid event, in send order. Values are integers by construction (TLY1
 * -20..100, StatsD 1..100 divided by a rate of 1, 0.5 or 0.25), so every sum is
 * exact in a double. */
struct gen_event {
	uint32_t key, frame;
	int32_t v;
	uint16_t win; /* window index from gen_pool.win0 */
	uint16_t pad_;
};

struct gen_pool {
	struct gen_opts o;
	uint8_t *buf;
	uint64_t buf_used, buf_cap;
	struct gen_frame *frames;
	uint32_t nframes;
	struct gen_patch *patch;
	uint64_t npatch, patch_cap;
	struct gen_event *ev;
	uint64_t nev, ev_cap;
	uint64_t fresh;       /* E: fresh ids per cycle */
	uint64_t id_base;
	uint32_t dups_per_cycle, malformed_per_cycle, bad_lines_per_cycle;
	uint64_t win0;        /* first window start */
	uint32_t nwin;
	double *zipf_cdf;
	uint64_t rng;
};

/* The TLY1 event size for these options (fixed part + key). */
uint32_t gen_tly1_event_len(const struct gen_opts *o);
/* Build the pool. NULL after a message on stderr. */
struct gen_pool *gen_pool_build(const struct gen_opts *o);
void gen_pool_free(struct gen_pool *p);
/*
 * Copy frame i of cycle c into dst (room for frames[i].len) with its event ids
 * and batch_seq patched and, over IPv6, its UDP checksum computed.
 */
void gen_frame_render(const struct gen_pool *p, uint32_t i, uint64_t cycle, uint8_t *dst);

struct gen_sent {
	uint64_t datagrams, events, valid, dups, malformed, bad_lines;
	/* what tallyd's counters should read after a clean run of these datagrams:
	 * each rejection reason, and drop_duplicate */
	uint64_t by_reason[TALLY_C_MAX];
};
/* What the first `sent` datagrams of the sequence hold. */
void gen_sent_counts(const struct gen_pool *p, uint64_t sent, struct gen_sent *s);
/*
 * Expected totals after `sent` datagrams: one TSV row per (key, window), written
 * to path (NULL: only counted). Returns the number of rows, or -errno.
 */
int64_t gen_expected_write(const struct gen_pool *p, uint64_t sent, const char *path);

#endif
