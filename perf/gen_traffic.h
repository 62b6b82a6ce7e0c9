/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-gen's traffic model: a pool of pre-rendered frames sent in cycles. Cycle
 * c sends the same keys, times and values with new event ids (id = base + c * E +
 * j + 1 for the pool's j-th fresh event), so the generator core only copies and
 * patches 8 bytes per event, and the expected totals are the pool's totals times
 * the full cycles plus the prefix of the last one.
 */
#ifndef TALLY_GEN_TRAFFIC_H
#define TALLY_GEN_TRAFFIC_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum gen_proto { GEN_TLY1, GEN_STATSD };

struct gen_opts {
	enum gen_proto proto;
	uint32_t keys, per_dgram, pool, flows;
	bool zipf;
	double zipf_s, dup_rate, malformed_rate, ipv6_share, vlan_share;
	uint64_t time_ms, span_ms, window_ms, seed, sender_id;
	uint16_t dst_port;
	uint32_t mtu;
};

struct gen_frame {
	uint64_t off;         /* in gen_pool.buf */
	uint32_t len;
	uint32_t patch_first; /* in gen_pool.patch */
	uint16_t npatch;
	uint16_t l4_off;      /* UDP header offset, for the IPv6 checksum */
	uint16_t dups, bad_lines;
	bool ipv6, bad;
};

struct gen_patch {
	uint32_t off; /* of the 8-byte event id, from the frame start */
	uint32_t src; /* id = base + cycle * fresh + src + 1 */
};

struct gen_event { /* one valid event, in send order, for the expected totals */
	uint32_t key, frame;
	uint16_t win;
	double v;
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

/* Build the pool; NULL with a message on stderr. */
struct gen_pool *gen_pool_build(const struct gen_opts *o);
void gen_pool_free(struct gen_pool *p);
/* Copy frame i of cycle c into dst (room for frames[i].len) with its ids patched. */
void gen_frame_render(const struct gen_pool *p, uint32_t i, uint64_t cycle, uint8_t *dst);
/* Counts sent after `sent` datagrams. */
void gen_sent_counts(const struct gen_pool *p, uint64_t sent, uint64_t *events,
		     uint64_t *valid, uint64_t *dups, uint64_t *malformed, uint64_t *bad_lines);
/* Write the expected totals TSV after `sent` datagrams. Returns rows or -1. */
int64_t gen_expected_write(const struct gen_pool *p, uint64_t sent, const char *path);

#endif
