/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The XDP program on crafted frames through bpf_prog_test_run_opts: every
 * verdict and its per-CPU counter, IPv4 (with options) and IPv6, one and two
 * VLAN tags, frames cut at every offset, a shared TLY1/StatsD port, the
 * allow-list (LPM tries, through the loader's acl calls) and the token bucket.
 * The redirect verdict needs a socket in xsks_map: an AF_XDP socket bound in
 * copy mode to queue 0 of lo, which the test run names as its ingress.
 * Needs CAP_BPF and CAP_NET_ADMIN (root), as the program itself does.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <xdp/xsk.h>

#include "xdp_loader.h"

#define TLY1_PORT 7000
#define STATSD_PORT 8125
#define V(c) (TALLY_C_##c - TALLY_C_XDP_PASS)

static struct bpf_object *obj;
static int prog_fd;
static struct tally_xdp x;
static struct xsk_socket *xsk;
static struct xsk_umem *umem;
static void *umem_area;
static int lo_index;
static char err[256];

/* A frame under construction. */
struct frame {
	uint8_t b[1600];
	size_t len;
};

static void put(struct frame *f, const void *p, size_t n)
{
	memcpy(f->b + f->len, p, n);
	f->len += n;
}

static void put16(struct frame *f, uint16_t v)
{
	v = htons(v);
	put(f, &v, 2);
}

struct spec {
	int v6, vlans, ihl_words, proto, frag;
	const char *src; /* default 10.77.0.2 / fd00::2 */
	uint16_t dport;
	const void *payload;
	size_t plen;
	int bad_udp_len; /* UDP length field below 8 */
};

static void eth(struct frame *f, const struct spec *s)
{
	static const uint8_t macs[12] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2};

	put(f, macs, 12);
	for (int i = 0; i < s->vlans; i++) {
		put16(f, i == 0 && s->vlans > 1 ? 0x88a8 : 0x8100);
		put16(f, (uint16_t)(100 + i));
	}
	put16(f, s->v6 ? 0x86dd : 0x0800);
}

static void ip(struct frame *f, const struct spec *s, size_t l4len)
{
	uint8_t h[60] = {0};
	int words = s->ihl_words ? s->ihl_words : 5;

	if (s->v6) {
		h[0] = 0x60;
		h[4] = (uint8_t)(l4len >> 8), h[5] = (uint8_t)l4len;
		h[6] = (uint8_t)(s->proto ? s->proto : 17), h[7] = 64;
		inet_pton(AF_INET6, s->src ? s->src : "fd00::2", h + 8);
		inet_pton(AF_INET6, "fd00::1", h + 24);
		put(f, h, 40);
		return;
	}
	h[0] = (uint8_t)(0x40 | words);
	size_t tot = (size_t)words * 4 + l4len;
	h[2] = (uint8_t)(tot >> 8), h[3] = (uint8_t)tot;
	h[6] = (uint8_t)(s->frag >> 8), h[7] = (uint8_t)s->frag;
	h[8] = 64, h[9] = (uint8_t)(s->proto ? s->proto : 17);
	inet_pton(AF_INET, s->src ? s->src : "10.77.0.2", h + 12);
	inet_pton(AF_INET, "10.77.0.1", h + 16);
	put(f, h, (size_t)words * 4);
}

static struct frame build(const struct spec *s)
{
	struct frame f = {.len = 0};

	eth(&f, s);
	ip(&f, s, 8 + s->plen);
	put16(&f, 40000);
	put16(&f, s->dport);
	put16(&f, (uint16_t)(s->bad_udp_len ? 4 : 8 + s->plen));
	put16(&f, 0);
	put(&f, s->payload, s->plen);
	return f;
}

static const uint8_t tly1[40] = "TLY1\0\0\1\0\1\0\0\0\0\0\0\0\1\0\0\0\0\0\0\0";
static const uint8_t badmagic[40] = "TLY2";

static void counters(uint64_t out[TALLY_XDP_NCOUNTERS])
{
	assert_int_equal(tally_xdp_counters(&x, out), 0);
}

/* Run one frame; assert the action and that exactly the verdict's counter moved. */
static void expect(const struct frame *f, int action, int verdict)
{
	uint64_t before[TALLY_XDP_NCOUNTERS], after[TALLY_XDP_NCOUNTERS];
	struct xdp_md ctx = {.data_end = (uint32_t)f->len, .ingress_ifindex = (uint32_t)lo_index};
	uint8_t out[1600];
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f->b, .data_size_in = (uint32_t)f->len,
		    .data_out = out, .data_size_out = sizeof(out), .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx), .repeat = 1);

	counters(before);
	assert_int_equal(bpf_prog_test_run_opts(prog_fd, &o), 0);
	counters(after);
	if ((int)o.retval != action || after[verdict] != before[verdict] + 1)
		fail_msg("frame of %zu bytes: action %u (want %d), counter %s moved by %llu",
			 f->len, o.retval, action, tally_counter_names[TALLY_C_XDP_PASS + verdict],
			 (unsigned long long)(after[verdict] - before[verdict]));
	for (int i = 0; i < TALLY_XDP_NCOUNTERS; i++)
		if (i != verdict)
			assert_int_equal(after[i], before[i]);
}

static void expect_spec(const struct spec *s, int action, int verdict)
{
	struct frame f = build(s);

	expect(&f, action, verdict);
}

static int xsk_open(void)
{
	struct xsk_ring_prod fq;
	struct xsk_ring_cons cq, rx;
	struct xsk_socket_config cfg = {.rx_size = 64, .tx_size = 0,
					.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
					.bind_flags = XDP_COPY};
	struct xsk_umem_config ucfg = {.fill_size = 64, .comp_size = 64, .frame_size = 4096};
	int fd, zero = 0;

	umem_area = mmap(NULL, 64 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
	if (umem_area == MAP_FAILED || xsk_umem__create(&umem, umem_area, 64 * 4096, &fq, &cq,
						       &ucfg) != 0)
		return -1;
	if (xsk_socket__create(&xsk, "lo", 0, umem, &rx, NULL, &cfg) != 0)
		return -1;
	fd = xsk_socket__fd(xsk);
	return bpf_map_update_elem(x.xsks_fd, &zero, &fd, BPF_ANY);
}

static int setup(void **state)
{
	struct bpf_program *p;

	(void)state;
	obj = bpf_object__open_file(TALLY_XDP_OBJ_BUILD, NULL);
	if (libbpf_get_error(obj) || bpf_object__load(obj) != 0) {
		fprintf(stderr, "cannot load %s (root needed)\n", TALLY_XDP_OBJ_BUILD);
		return -1;
	}
	p = bpf_object__find_program_by_name(obj, TALLY_XDP_PROG);
	prog_fd = p ? bpf_program__fd(p) : -1;
	lo_index = (int)if_nametoindex("lo");
	if (prog_fd < 0 || tally_xdp_bind_object(&x, obj, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return tally_xdp_set_ports(&x, TLY1_PORT, STATSD_PORT, 1472);
}

static int teardown(void **state)
{
	(void)state;
	if (xsk)
		xsk_socket__delete(xsk);
	if (umem)
		xsk_umem__delete(umem);
	tally_xdp_close(&x);
	bpf_object__close(obj);
	return 0;
}

static void test_no_socket(void **state)
{
	struct spec s = {.dport = TLY1_PORT, .payload = tly1, .plen = sizeof(tly1)};

	(void)state;
	expect_spec(&s, XDP_DROP, V(XDP_DROP_NO_SOCKET));
	assert_int_equal(xsk_open(), 0);
	expect_spec(&s, XDP_REDIRECT, V(XDP_REDIRECT));
}

static void test_kernel_traffic_passes(void **state)
{
	struct frame arp = {.len = 0};
	static const uint8_t arp_body[28] = {0, 1, 8, 0, 6, 4, 0, 1};
	struct spec tcp = {.proto = 6, .dport = TLY1_PORT, .payload = tly1, .plen = 40};
	struct spec other = {.dport = 22, .payload = tly1, .plen = 40};
	struct spec ext6 = {.v6 = 1, .proto = 0, .dport = TLY1_PORT, .payload = tly1, .plen = 40};
	struct spec zero_port = {.dport = 0, .payload = tly1, .plen = 40};

	(void)state;
	put(&arp, (const uint8_t[12]){0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 2}, 12);
	put16(&arp, 0x0806);
	put(&arp, arp_body, sizeof(arp_body));
	expect(&arp, XDP_PASS, V(XDP_PASS));
	expect_spec(&tcp, XDP_PASS, V(XDP_PASS));
	expect_spec(&other, XDP_PASS, V(XDP_PASS));
	ext6.proto = 0; /* hop-by-hop options: an extension header */
	struct frame f = build(&ext6);
	f.b[14 + 6] = 0;
	expect(&f, XDP_PASS, V(XDP_PASS));
	expect_spec(&zero_port, XDP_PASS, V(XDP_PASS));
}

static void test_tly1_shape(void **state)
{
	struct spec s = {.dport = TLY1_PORT, .payload = tly1, .plen = 24};

	(void)state;
	expect_spec(&s, XDP_REDIRECT, V(XDP_REDIRECT)); /* a header alone reaches the parser */
	s.plen = 23;
	expect_spec(&s, XDP_DROP, V(XDP_DROP_SHORT));
	s.plen = 0;
	expect_spec(&s, XDP_DROP, V(XDP_DROP_SHORT));
	s.plen = 40, s.bad_udp_len = 1;
	expect_spec(&s, XDP_DROP, V(XDP_DROP_SHORT));
	s.bad_udp_len = 0, s.payload = badmagic;
	expect_spec(&s, XDP_DROP, V(XDP_DROP_MAGIC));
}

static void test_ip_versions_and_vlans(void **state)
{
	(void)state;
	for (int v6 = 0; v6 <= 1; v6++)
		for (int vlans = 0; vlans <= 2; vlans++) {
			struct spec s = {.v6 = v6, .vlans = vlans, .dport = TLY1_PORT,
					 .payload = tly1, .plen = 40};

			expect_spec(&s, XDP_REDIRECT, V(XDP_REDIRECT));
			s.payload = badmagic;
			expect_spec(&s, XDP_DROP, V(XDP_DROP_MAGIC));
		}
	struct spec three = {.vlans = 3, .dport = TLY1_PORT, .payload = badmagic, .plen = 40};
	struct spec opts = {.ihl_words = 15, .dport = TLY1_PORT, .payload = tly1, .plen = 40};

	/* A third tag is not parsed: the kernel gets the frame, never a worker. */
	expect_spec(&three, XDP_PASS, V(XDP_PASS));
	expect_spec(&opts, XDP_REDIRECT, V(XDP_REDIRECT));
	opts.payload = badmagic;
	expect_spec(&opts, XDP_DROP, V(XDP_DROP_MAGIC));
}

static void test_fragments(void **state)
{
	struct spec first = {.frag = 0x2000, .dport = TLY1_PORT, .payload = tly1, .plen = 40};
	struct spec later = {.frag = 0x0010, .dport = TLY1_PORT, .payload = tly1, .plen = 40};
	struct spec other = {.frag = 0x2000, .dport = 53, .payload = tly1, .plen = 40};

	(void)state;
	expect_spec(&first, XDP_DROP, V(XDP_DROP_FRAG));
	expect_spec(&later, XDP_PASS, V(XDP_PASS));
	expect_spec(&other, XDP_PASS, V(XDP_PASS));
}

/* Cut a good frame at every length: short of the UDP header it is the
 * kernel's; from there on it is a datagram too short for a TLY1 header.
 * From 14 bytes: the test run refuses less than an Ethernet header (-EINVAL),
 * as no driver hands XDP a frame shorter than that. */
static void test_truncated_everywhere(void **state)
{
	(void)state;
	for (int v6 = 0; v6 <= 1; v6++)
		for (int vlans = 0; vlans <= 2; vlans++) {
			struct spec s = {.v6 = v6, .vlans = vlans, .ihl_words = v6 ? 0 : 6,
					 .dport = TLY1_PORT, .payload = tly1, .plen = 40};
			struct frame full = build(&s);
			size_t udp_end = full.len - 40;

			for (size_t len = 14; len < udp_end + 24; len++) {
				struct frame f = full;

				f.len = len;
				if (len < udp_end)
					expect(&f, XDP_PASS, V(XDP_PASS));
				else
					expect(&f, XDP_DROP, V(XDP_DROP_SHORT));
			}
		}
}

static void test_statsd(void **state)
{
	static uint8_t big[1500];
	struct spec s = {.dport = STATSD_PORT, .payload = "a:1|c", .plen = 5};

	(void)state;
	memset(big, 'a', sizeof(big));
	expect_spec(&s, XDP_REDIRECT, V(XDP_REDIRECT));
	s.plen = 0;
	expect_spec(&s, XDP_DROP, V(XDP_DROP_STATSD_LEN));
	s.payload = big, s.plen = 1472;
	expect_spec(&s, XDP_REDIRECT, V(XDP_REDIRECT));
	s.plen = 1473;
	expect_spec(&s, XDP_DROP, V(XDP_DROP_STATSD_LEN));
	s.v6 = 1, s.plen = 1400;
	expect_spec(&s, XDP_REDIRECT, V(XDP_REDIRECT));
}

/* One port for both: the magic decides, as in the workers. */
static void test_shared_port(void **state)
{
	struct spec t = {.dport = 9000, .payload = tly1, .plen = 23};
	struct spec sd = {.dport = 9000, .payload = "TLY:1|c", .plen = 7};

	(void)state;
	assert_int_equal(tally_xdp_set_ports(&x, 9000, 9000, 1472), 0);
	expect_spec(&t, XDP_DROP, V(XDP_DROP_SHORT));
	t.plen = 40;
	expect_spec(&t, XDP_REDIRECT, V(XDP_REDIRECT));
	expect_spec(&sd, XDP_REDIRECT, V(XDP_REDIRECT));
	sd.plen = 0;
	expect_spec(&sd, XDP_DROP, V(XDP_DROP_STATSD_LEN));
	assert_int_equal(tally_xdp_set_ports(&x, TLY1_PORT, STATSD_PORT, 1472), 0);
}

static void test_acl(void **state)
{
	char list[8][TALLY_XDP_CIDR_MAX];
	struct spec in = {.src = "10.77.0.9", .dport = TLY1_PORT, .payload = tly1, .plen = 40};
	struct spec out = {.src = "10.78.0.9", .dport = TLY1_PORT, .payload = tly1, .plen = 40};
	struct spec v6 = {.v6 = 1, .src = "fd00::9", .dport = STATSD_PORT, .payload = "a:1|c",
			  .plen = 5};
	struct spec arp_like = {.src = "10.78.0.9", .dport = 22, .payload = tly1, .plen = 40};

	(void)state;
	expect_spec(&out, XDP_REDIRECT, V(XDP_REDIRECT)); /* empty list: everyone */
	assert_int_equal(tally_xdp_acl_add(&x, "10.77.0.200/24", err, sizeof(err)), 0);
	assert_int_equal(tally_xdp_acl_list(&x, list, 8), 1);
	assert_string_equal(list[0], "10.77.0.0/24");
	expect_spec(&in, XDP_REDIRECT, V(XDP_REDIRECT));
	expect_spec(&out, XDP_DROP, V(XDP_DROP_ACL));
	/* Denied before the shape check: a denied source's junk is an ACL drop. */
	out.payload = badmagic;
	expect_spec(&out, XDP_DROP, V(XDP_DROP_ACL));
	expect_spec(&arp_like, XDP_PASS, V(XDP_PASS)); /* the list guards Tally's ports only */
	expect_spec(&v6, XDP_DROP, V(XDP_DROP_ACL));
	assert_int_equal(tally_xdp_acl_add(&x, "fd00::/64", err, sizeof(err)), 0);
	expect_spec(&v6, XDP_REDIRECT, V(XDP_REDIRECT));
	v6.src = "fd01::9";
	expect_spec(&v6, XDP_DROP, V(XDP_DROP_ACL));
	assert_int_equal(tally_xdp_acl_list(&x, list, 8), 2);
	assert_int_equal(tally_xdp_acl_del(&x, "10.77.0.0/25", err, sizeof(err)), -ENOENT);
	assert_int_equal(tally_xdp_acl_add(&x, "10.77.0.0/33", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "prefix length"));
	assert_int_equal(tally_xdp_acl_add(&x, "bogus", err, sizeof(err)), -EINVAL);
	assert_int_equal(tally_xdp_acl_del(&x, "10.77.0.0/24", err, sizeof(err)), 0);
	assert_int_equal(tally_xdp_acl_del(&x, "fd00::/64", err, sizeof(err)), 0);
	assert_int_equal(tally_xdp_acl_list(&x, list, 8), 0);
	out.payload = tly1;
	expect_spec(&out, XDP_REDIRECT, V(XDP_REDIRECT)); /* empty again: everyone */
}

static void test_rate_limit(void **state)
{
	struct spec a = {.src = "10.77.0.30", .dport = TLY1_PORT, .payload = tly1, .plen = 40};
	struct spec b = {.src = "10.77.0.31", .dport = TLY1_PORT, .payload = tly1, .plen = 40};

	(void)state;
	assert_int_equal(tally_xdp_ratelimit_set(&x, 1, 3, err, sizeof(err)), 0);
	/* A burst of 3, then nothing until a second has passed (the test takes ms). */
	for (int i = 0; i < 3; i++)
		expect_spec(&a, XDP_REDIRECT, V(XDP_REDIRECT));
	expect_spec(&a, XDP_DROP, V(XDP_DROP_RATE));
	expect_spec(&a, XDP_DROP, V(XDP_DROP_RATE));
	expect_spec(&b, XDP_REDIRECT, V(XDP_REDIRECT)); /* buckets are per source */
	/* Junk is dropped for what it is and costs no token. */
	a.payload = badmagic;
	expect_spec(&a, XDP_DROP, V(XDP_DROP_MAGIC));
	assert_int_equal(tally_xdp_ratelimit_set(&x, 0, 0, err, sizeof(err)), 0);
	a.payload = tly1;
	expect_spec(&a, XDP_REDIRECT, V(XDP_REDIRECT));
	assert_int_equal(tally_xdp_ratelimit_set(&x, 1, 0, err, sizeof(err)), -ERANGE);
	assert_int_equal(tally_xdp_ratelimit_set(&x, TALLY_XDP_RATE_MAX + 1, 1, err, sizeof(err)),
			 -ERANGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_socket),
		cmocka_unit_test(test_kernel_traffic_passes),
		cmocka_unit_test(test_tly1_shape),
		cmocka_unit_test(test_ip_versions_and_vlans),
		cmocka_unit_test(test_fragments),
		cmocka_unit_test(test_truncated_everywhere),
		cmocka_unit_test(test_statsd),
		cmocka_unit_test(test_shared_port),
		cmocka_unit_test(test_acl),
		cmocka_unit_test(test_rate_limit),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
