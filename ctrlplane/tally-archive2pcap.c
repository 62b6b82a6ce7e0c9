/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-archive2pcap: archive segments (archive.h) as a pcap file, so tcpdump,
 * Wireshark or tallyd's own net_pcap can read what was received.
 *
 *   tally-archive2pcap --archive DIR --out FILE [--from T1] [--to T2]
 *                      [--dst4 ADDR] [--dst6 ADDR]
 *
 * The archive keeps UDP payloads, their source address and port, destination
 * port and arrival time; the headers below are rebuilt: Ethernet II (locally
 * administered MACs), IPv4 (TTL 64, no options) or IPv6 (hop limit 64) to the
 * appliance's address (--dst4/--dst6, default 127.0.0.1 and ::1, since the
 * archive does not store it), UDP with a correct checksum. Each packet's pcap
 * time is its arrival time. Damage is reported and skipped as tally-recount does.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcap/pcap.h>

#include "archive.h"
#include "pkt.h"

#define FRAME_MAX (14 + 40 + 8 + 65535)

struct conv {
	pcap_dumper_t *d;
	uint8_t dst4[4], dst6[16];
	uint8_t frame[FRAME_MAX];
	uint64_t packets;
};

static int on_record(const struct tally_arec *r, void *arg)
{
	static const uint8_t macs[12] = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1};
	struct conv *c = arg;
	uint16_t ulen = (uint16_t)(8 + r->len);
	struct pcap_pkthdr h;
	const uint8_t *dst = r->ip_version == 6 ? c->dst6 : c->dst4;
	uint8_t *ip = c->frame + 14, *udp;
	uint32_t iplen;

	if (r->len > 65535 - 8 - 20) /* cannot be: the archive took it from one frame */
		return 0;
	memcpy(c->frame, macs, 12);
	tally_put_be16(c->frame + 12, r->ip_version == 6 ? 0x86dd : 0x0800);
	iplen = tally_put_ip_udp(ip, r->ip_version, r->saddr, dst, ulen);
	udp = ip + iplen;
	memcpy(udp + 8, r->payload, r->len);
	tally_put_udp(udp, r->saddr, dst, r->ip_version == 6 ? 16 : 4, r->sport, r->dport, ulen);
	h.ts.tv_sec = (time_t)(r->arrival_ms / 1000);
	h.ts.tv_usec = (suseconds_t)(r->arrival_ms % 1000 * 1000);
	h.caplen = h.len = (bpf_u_int32)(14 + iplen + ulen);
	pcap_dump((u_char *)c->d, &h, c->frame);
	c->packets++;
	return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	*out = strtoull(s, &end, 10);
	return *s && !*end ? 0 : -EINVAL;
}

int main(int argc, char **argv)
{
	static struct conv c;
	const char *dir = NULL, *out = NULL;
	uint64_t from = 0, to = UINT64_MAX;
	struct tally_archive_scan_report rep;
	pcap_t *p;
	int r, bad = 0;

	inet_pton(AF_INET, "127.0.0.1", c.dst4);
	inet_pton(AF_INET6, "::1", c.dst6);
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];

		if (!strcmp(k, "--archive"))
			dir = v;
		else if (!strcmp(k, "--out"))
			out = v;
		else if (!strcmp(k, "--from"))
			bad |= parse_u64(v, &from);
		else if (!strcmp(k, "--to"))
			bad |= parse_u64(v, &to);
		else if (!strcmp(k, "--dst4"))
			bad |= inet_pton(AF_INET, v, c.dst4) != 1;
		else if (!strcmp(k, "--dst6"))
			bad |= inet_pton(AF_INET6, v, c.dst6) != 1;
		else
			bad = 1;
	}
	if (bad || dir == NULL || out == NULL || argc % 2 == 0) {
		fprintf(stderr, "usage: tally-archive2pcap --archive DIR --out FILE [--from MS] "
			"[--to MS] [--dst4 ADDR] [--dst6 ADDR]\n");
		return 2;
	}
	p = pcap_open_dead(DLT_EN10MB, FRAME_MAX);
	c.d = p != NULL ? pcap_dump_open(p, out) : NULL;
	if (c.d == NULL) {
		fprintf(stderr, "tally-archive2pcap: %s: %s\n", out, p ? pcap_geterr(p) : "pcap");
		return 1;
	}
	r = tally_archive_scan(dir, from, to, on_record, &c, &rep, stderr, NULL);
	pcap_dump_close(c.d);
	pcap_close(p);
	if (r < 0) {
		fprintf(stderr, "tally-archive2pcap: archive %s: %s\n", dir, strerror(-r));
		return 1;
	}
	fprintf(stderr, "tally-archive2pcap: %" PRIu64 " packets from %" PRIu64 " segments to %s "
		"(%" PRIu64 " corrupt blocks, %" PRIu64 " corrupt headers, %" PRIu64
		" torn tails skipped)\n", c.packets, rep.segments, out, rep.corrupt_blocks,
		rep.corrupt_headers, rep.torn_tails);
	return 0;
}
