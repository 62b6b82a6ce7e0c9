/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The traffic options of tally-gen, shared with tally-pipeline so that both
 * build the very same pool of frames from the same flags (perf/bench.py passes
 * one scenario's flags to each). One table: getopt entries, parsing, defaults,
 * derived values, checks and the usage text.
 */
#ifndef TALLY_GEN_OPTS_H
#define TALLY_GEN_OPTS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "gen_traffic.h"

enum gen_opt_code {
	GEN_O_PROTO = 256, GEN_O_KEYS, GEN_O_DIST, GEN_O_ZIPF_S, GEN_O_PER_DGRAM,
	GEN_O_KEY_LEN, GEN_O_DUP, GEN_O_BAD, GEN_O_WINDOW, GEN_O_TIME, GEN_O_SPAN,
	GEN_O_DST_PORT, GEN_O_FLOWS, GEN_O_IPV6, GEN_O_VLAN, GEN_O_MTU, GEN_O_POOL,
	GEN_O_SEED, GEN_O_SENDER, GEN_O_ACK_REQ, GEN_O_MAC_KEY, GEN_O_PLAIN, GEN_O_STYPES,
	GEN_O_END /* tools number their own options from here */
};

/* getopt_long entries of the traffic options, to splice into a tool's table. */
#define GEN_TRAFFIC_LONG_OPTS \
	{"proto", 1, 0, GEN_O_PROTO}, {"keys", 1, 0, GEN_O_KEYS}, \
	{"dist", 1, 0, GEN_O_DIST}, {"zipf-s", 1, 0, GEN_O_ZIPF_S}, \
	{"events-per-dgram", 1, 0, GEN_O_PER_DGRAM}, {"key-len", 1, 0, GEN_O_KEY_LEN}, \
	{"dup-rate", 1, 0, GEN_O_DUP}, {"malformed-rate", 1, 0, GEN_O_BAD}, \
	{"window-ms", 1, 0, GEN_O_WINDOW}, {"time-ms", 1, 0, GEN_O_TIME}, \
	{"time-span-ms", 1, 0, GEN_O_SPAN}, {"dst-port", 1, 0, GEN_O_DST_PORT}, \
	{"flows", 1, 0, GEN_O_FLOWS}, {"ipv6-share", 1, 0, GEN_O_IPV6}, \
	{"vlan-share", 1, 0, GEN_O_VLAN}, {"mtu", 1, 0, GEN_O_MTU}, \
	{"pool", 1, 0, GEN_O_POOL}, {"seed", 1, 0, GEN_O_SEED}, \
	{"sender-id", 1, 0, GEN_O_SENDER}, {"ack-req", 0, 0, GEN_O_ACK_REQ}, \
	{"mac-key", 1, 0, GEN_O_MAC_KEY}, {"statsd-plain", 0, 0, GEN_O_PLAIN}, \
	{"statsd-types", 1, 0, GEN_O_STYPES}

/* Defaults: TLY1, 1000 keys uniform, 1 event per datagram, now as base time. */
void gen_opts_defaults(struct gen_opts *o);
/* Apply one traffic option: 0, or -EINVAL for a bad value. */
int gen_opt_set(struct gen_opts *o, int code, const char *arg);
/*
 * Derive what depends on other options (UDP port, key length, pool size, where
 * `datagrams` is how many will be sent, UINT64_MAX if unknown) and check them
 * all. NULL, or a message naming the option that is wrong.
 */
const char *gen_opts_finish(struct gen_opts *o, uint64_t datagrams);
void gen_opts_usage(FILE *out);

/* Where the tool's options end: the index of "--" (EAL arguments follow), else argc. */
int gen_opts_end(int argc, char **argv);

/* Number parsers for the tools' own options: 0 or -EINVAL. */
int gen_num_u64(const char *s, uint64_t max, uint64_t *v);
int gen_num_f(const char *s, double lo, double hi, double *v);

#endif
