/* SPDX-License-Identifier: BSD-3-Clause */
/* Traffic options shared by tally-gen and tally-pipeline (see gen_opts.h). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "gen_opts.h"
#include "wire.h"

#define POOL_DEFAULT (1u << 20)
#define POOL_DEFAULT_EVENTS (1u << 23) /* keeps the default pool under ~1 GB */
#define TLY1_KEY_PREFIX_LEN 6          /* "tally." */

int gen_opts_end(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0)
			return i;
	return argc;
}

int gen_num_u64(const char *s, uint64_t max, uint64_t *v)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || x > max)
		return -EINVAL;
	*v = x;
	return 0;
}

static int num_u32(const char *s, uint32_t *v)
{
	uint64_t x;

	if (gen_num_u64(s, UINT32_MAX, &x) != 0)
		return -EINVAL;
	*v = (uint32_t)x;
	return 0;
}

/* A finite number in [lo, hi]. */
int gen_num_f(const char *s, double lo, double hi, double *v)
{
	char *end;
	double x = strtod(s, &end);

	if (end == s || *end != '\0' || !isfinite(x) || x < lo || x > hi)
		return -EINVAL;
	*v = x;
	return 0;
}

static int pick(const char *s, const char *a, const char *b, bool *is_b)
{
	if (strcmp(s, a) != 0 && strcmp(s, b) != 0)
		return -EINVAL;
	*is_b = strcmp(s, b) == 0;
	return 0;
}

void gen_opts_defaults(struct gen_opts *o)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	*o = (struct gen_opts){.proto = GEN_TLY1, .keys = 1000, .per_dgram = 1, .flows = 16,
			       .mtu = 1500, .zipf_s = 1.1, .window_ms = 10000, .seed = 1,
			       .sender_id = 0x7a11, .time_ms = (uint64_t)now.tv_sec * 1000,
			       .stypes = {0, 1, 2, 3, 4}, .nstypes = 5};
}

/* "c,c,ms,s": key k takes the (k mod n)-th type of the list. */
static int stypes(struct gen_opts *o, const char *a)
{
	char buf[128], *save = NULL, *t;
	uint8_t n = 0;

	if (strlen(a) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, a);
	for (t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		uint8_t i = 0;

		while (i < 6 && strcmp(t, gen_statsd_types[i]) != 0)
			i++;
		if (i == 6 || n == GEN_STYPES_MAX)
			return -EINVAL;
		o->stypes[n++] = i;
	}
	if (n == 0)
		return -EINVAL;
	o->nstypes = n;
	return 0;
}

/* "ID:HEX32", ID 1..255, as tallyd's mac_keys entries. */
static int mac_key(const char *a, struct gen_opts *o)
{
	char *end;
	unsigned long id = strtoul(a, &end, 10);
	size_t n = 0;

	if (end == a || *end != ':' || id < 1 || id > 255 || strlen(end + 1) != 32 ||
	    sodium_hex2bin(o->mac_key, 16, end + 1, 32, NULL, &n, NULL) != 0 || n != 16)
		return -EINVAL;
	o->mac_id = (uint8_t)id;
	return 0;
}

int gen_opt_set(struct gen_opts *o, int code, const char *a)
{
	uint64_t x = 0;
	bool b;

	switch (code) {
	case GEN_O_PROTO: if (pick(a, "tly1", "statsd", &b)) return -EINVAL;
		o->proto = b ? GEN_STATSD : GEN_TLY1; return 0;
	case GEN_O_DIST: return pick(a, "uniform", "zipf", &o->zipf);
	case GEN_O_KEYS: return num_u32(a, &o->keys);
	case GEN_O_ZIPF_S: return gen_num_f(a, 0, 100, &o->zipf_s);
	case GEN_O_PER_DGRAM: return num_u32(a, &o->per_dgram);
	case GEN_O_KEY_LEN: return num_u32(a, &o->key_len);
	case GEN_O_DUP: return gen_num_f(a, 0, 1, &o->dup_rate);
	case GEN_O_BAD: return gen_num_f(a, 0, 1, &o->malformed_rate);
	case GEN_O_WINDOW: return gen_num_u64(a, UINT32_MAX, &o->window_ms);
	case GEN_O_TIME: return gen_num_u64(a, INT64_MAX / 2, &o->time_ms);
	case GEN_O_SPAN: return gen_num_u64(a, INT64_MAX / 4, &o->span_ms);
	case GEN_O_DST_PORT: if (gen_num_u64(a, UINT16_MAX, &x)) return -EINVAL;
		o->dst_port = (uint16_t)x; return 0;
	case GEN_O_FLOWS: return num_u32(a, &o->flows);
	case GEN_O_IPV6: return gen_num_f(a, 0, 1, &o->ipv6_share);
	case GEN_O_VLAN: return gen_num_f(a, 0, 1, &o->vlan_share);
	case GEN_O_MTU: return num_u32(a, &o->mtu);
	case GEN_O_POOL: return num_u32(a, &o->pool);
	case GEN_O_SEED: return gen_num_u64(a, UINT64_MAX, &o->seed);
	case GEN_O_SENDER: return gen_num_u64(a, UINT64_MAX, &o->sender_id);
	case GEN_O_ACK_REQ: o->ack_req = true; return 0;
	case GEN_O_STYPES: return stypes(o, a);
	case GEN_O_MAC_KEY: return mac_key(a, o);
	case GEN_O_PLAIN: o->statsd_plain = true; return 0;
	}
	return -EINVAL;
}

static uint32_t digits(uint32_t v)
{
	uint32_t d = 1;

	while (v >= 10) {
		v /= 10;
		d++;
	}
	return d;
}

/* Key length, UDP port and pool size from the other options. */
static const char *derive(struct gen_opts *o, uint64_t datagrams)
{
	uint32_t need = TLY1_KEY_PREFIX_LEN + digits(o->keys ? o->keys - 1 : 0);
	uint64_t pool = datagrams;

	if (o->dst_port == 0)
		o->dst_port = o->proto == GEN_TLY1 ? 7000 : 8125;
	if (o->key_len == 0)
		o->key_len = need > 14 ? need : 14;
	else if (o->key_len < need || o->key_len > TALLY_KEY_MAX)
		return "--key-len is too short for --keys (\"tally.\" and the zero-padded key "
		       "index) or above 255";
	if (pool > POOL_DEFAULT)
		pool = POOL_DEFAULT;
	if (o->per_dgram && pool > POOL_DEFAULT_EVENTS / o->per_dgram)
		pool = POOL_DEFAULT_EVENTS / o->per_dgram;
	if (o->pool == 0)
		o->pool = (uint32_t)(pool ? pool : 1);
	return NULL;
}

static const char *check_tly1_size(const struct gen_opts *o)
{
	static char msg[200];
	uint32_t ev = gen_tly1_event_len(o), ip = (o->ipv6_share > 0 ? 40 : 20) + 8;
	uint32_t fit = o->mtu > ip + 24 ? (o->mtu - ip - 24) / ev : 0;

	if (o->proto != GEN_TLY1 || o->per_dgram <= fit)
		return NULL;
	snprintf(msg, sizeof(msg), "%u events of %u bytes do not fit in --mtu %u: at most %u "
		 "per datagram%s", o->per_dgram, ev, o->mtu, fit,
		 o->ipv6_share > 0 ? " over IPv6" : "");
	return msg;
}

static const char *check(const struct gen_opts *o)
{
	if (o->keys == 0) return "--keys must be at least 1";
	if (o->per_dgram == 0 || o->per_dgram > TALLY_TLY1_MAX_COUNT)
		return "--events-per-dgram must be 1..1024";
	if (o->window_ms == 0) return "--window-ms must be at least 1";
	if (o->proto == GEN_STATSD && o->window_ms % 1000)
		return "StatsD event times are whole seconds (|T): --window-ms must be a "
		       "multiple of 1000";
	if (o->flows == 0 || o->flows > 55536) return "--flows must be 1..55536";
	if (o->dup_rate >= 1 || o->malformed_rate >= 1)
		return "--dup-rate and --malformed-rate must be below 1";
	if (o->sender_id == 0) return "--sender-id 0 is invalid in TLY1";
	if (o->mtu < 100 || o->mtu > 65535) return "--mtu must be 100..65535";
	if (o->zipf && o->zipf_s <= 0) return "--zipf-s must be above 0";
	if (o->statsd_plain && o->proto != GEN_STATSD) return "--statsd-plain needs --proto statsd";
	return check_tly1_size(o);
}

const char *gen_opts_finish(struct gen_opts *o, uint64_t datagrams)
{
	const char *e = derive(o, datagrams);

	if (e == NULL)
		e = check(o);
	if (e == NULL && o->proto == GEN_STATSD && o->dup_rate > 0)
		fprintf(stderr, "note: StatsD lines have no ids; --dup-rate ignored\n");
	return e;
}

void gen_opts_usage(FILE *out)
{
	fprintf(out,
	"traffic:\n"
	"  --proto tly1|statsd     protocol (tly1)\n"
	"  --keys N                distinct TLY1 keys / StatsD names (1000)\n"
	"  --dist uniform|zipf     key distribution (uniform); --zipf-s S exponent (1.1)\n"
	"  --events-per-dgram N    TLY1 events or StatsD lines per datagram (1)\n"
	"  --key-len N             TLY1 key length, \"tally.\" + zero-padded index (14,\n"
	"                          more if --keys needs more digits)\n"
	"  --dup-rate F            fraction of TLY1 events re-sending an earlier event (0)\n"
	"  --malformed-rate F      fraction of malformed datagrams; StatsD: datagrams with\n"
	"                          bad lines among good ones (0)\n"
	"  --window-ms W           window of the expected totals (10000)\n"
	"  --time-ms T             base event time, ms (now, rounded down to a second)\n"
	"  --time-span-ms S        spread event times over [T, T+S) by position (0)\n"
	"  --dst-port P            UDP port (7000 for tly1, 8125 for statsd)\n"
	"  --statsd-types LIST     StatsD: key k has the (k mod n)-th type of LIST, from\n"
	"                          c g ms h d s (c,g,ms,h,d); e.g. c,c,c,c,g,g,ms,ms,ms,s\n"
	"                          is 40%% counters, 30%% timers, 10%% sets\n"
	"  --flows N               UDP source ports, for RSS (16)\n"
	"  --ipv6-share F          fraction of IPv6 frames (0)\n"
	"  --vlan-share F          fraction of frames with an 802.1Q tag (0)\n"
	"  --mtu N                 largest IP packet (1500)\n"
	"  --seed N                (1); --sender-id X  TLY1 sender_id (0x7a11)\n"
	"  --ack-req               set ACK_REQ on TLY1 datagrams (tallyd answers with TLA1 acks)\n"
	"  --mac-key ID:HEX32      sign valid TLY1 datagrams with this key (as tallyd's mac_keys);\n"
	"                          malformed ones stay unsigned, failing for their own reason\n"
	"  --statsd-plain          StatsD counters \"name:N|c\" only, no tags, |T or rate: what\n"
	"                          any StatsD server reads (no --expected: times are arrival)\n"
	"  --pool N                pre-rendered datagrams, sent in cycles with new ids\n"
	"                          (min(datagrams, %u, %u / events-per-dgram))\n",
	POOL_DEFAULT, POOL_DEFAULT_EVENTS);
}
