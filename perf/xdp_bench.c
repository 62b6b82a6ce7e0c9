/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-xdp-bench: what tally_xdp costs per frame, verdict by verdict, on one
 * CPU of this machine. The kernel runs the program N times on one crafted
 * frame (bpf_prog_test_run_opts, repeat) and reports the mean time per run;
 * 1e9 / that is the most frames per second one CPU can judge. It measures the
 * program alone: no NIC, no driver, no DMA, so a real port's XDP drop rate is
 * lower (a veth's is bound by the sender's stack, see perf/xdp_veth_bench.sh).
 * Needs root.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include "xdp_loader.h"

/* Ethernet + IPv4 + UDP + 40 bytes of payload (a TLY1 header and a bit). */
static size_t frame(uint8_t *b, const char *src, uint16_t dport, const char *magic)
{
	memset(b, 0, 82);
	b[12] = 0x08;
	b[14] = 0x45, b[17] = 68, b[22] = 64, b[23] = 17;
	inet_pton(AF_INET, src, b + 26);
	inet_pton(AF_INET, "10.77.0.1", b + 30);
	b[34] = 0x9c, b[35] = 0x40;
	b[36] = (uint8_t)(dport >> 8), b[37] = (uint8_t)dport;
	b[39] = 48;
	memcpy(b + 42, magic, 4);
	return 82;
}

static double ns_per_frame(int prog_fd, const uint8_t *b, size_t len, unsigned repeat)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = b, .data_size_in = (uint32_t)len,
		    .repeat = repeat);

	if (bpf_prog_test_run_opts(prog_fd, &o) != 0)
		return -1;
	return (double)o.duration; /* the kernel's mean over the repeats, ns */
}

int main(int argc, char **argv)
{
	const char *obj_path = argc > 1 ? argv[1] : TALLY_XDP_OBJ_BUILD;
	unsigned repeat = argc > 2 ? (unsigned)atoi(argv[2]) : 10000000;
	struct bpf_object *obj = bpf_object__open_file(obj_path, NULL);
	struct tally_xdp x;
	char err[256];
	uint8_t b[128];
	struct { const char *name, *src, *magic; uint16_t port; } cases[] = {
		{"drop_acl (denied source)", "10.78.0.9", "TLY1", 7000},
		{"drop_magic (allowed source)", "10.77.0.2", "JUNK", 7000},
		{"drop_no_socket (the redirect path)", "10.77.0.2", "TLY1", 7000},
		{"pass (other port)", "10.78.0.9", "TLY1", 22},
	};

	if (libbpf_get_error(obj) || bpf_object__load(obj) != 0) {
		fprintf(stderr, "tally-xdp-bench: cannot load %s (root needed)\n", obj_path);
		return 1;
	}
	int prog_fd = bpf_program__fd(bpf_object__find_program_by_name(obj, TALLY_XDP_PROG));

	if (tally_xdp_bind_object(&x, obj, err, sizeof(err)) != 0 ||
	    tally_xdp_set_ports(&x, 7000, 8125, 1472) != 0 ||
	    tally_xdp_acl_add_list(&x, "10.77.0.0/24,fd00::/64", err, sizeof(err)) != 0) {
		fprintf(stderr, "tally-xdp-bench: %s\n", err);
		return 1;
	}
	printf("tally_xdp on one CPU, %u runs per case, allow-list of 2 prefixes:\n", repeat);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double ns = ns_per_frame(prog_fd, b, frame(b, cases[i].src, cases[i].port,
							   cases[i].magic), repeat);

		printf("  %-36s %6.1f ns/frame  %6.2f Mpps\n", cases[i].name, ns,
		       ns > 0 ? 1e3 / ns : 0);
	}
	tally_xdp_close(&x);
	bpf_object__close(obj);
	return 0;
}
