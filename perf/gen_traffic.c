/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Pool rendering and expected totals for tally-gen (see gen_traffic.h). Frames:
 * Ethernet, optional 802.1Q tag, IPv4 (UDP checksum 0 = none) or IPv6 (UDP
 * checksum computed at render time, after the ids are patched), UDP.
 *
 * Duplicates re-send the id, key, time and value of one of the last 256 valid
 * events of the same cycle, so whichever copy a receiver keeps, the totals are
 * the same. A malformed TLY1 datagram carries the ids of the next fresh events,
 * which are sent validly later: a parser that applied it partly (or let its ids
 * into the dedup table) would wrongly drop those later events as duplicates.
 * Malformed datagrams cycle through the rejection reasons; malformed StatsD
 * datagrams mix bad lines of every kind among good ones.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "counters.h"
#include "gen_traffic.h"
#include "wire.h"

#define RECENT 256
#define TLY1_KEY_PREFIX "tally."

/* TLY1 rejection reasons, in the order malformed datagrams cycle through them. */
static const enum tally_counter tly1_bad[] = {
	TALLY_C_TLY1_BAD_MAGIC, TALLY_C_TLY1_RESERVED_FLAGS, TALLY_C_TLY1_BAD_COUNT,
	TALLY_C_TLY1_TRUNCATED, TALLY_C_TLY1_TRAILING, TALLY_C_TLY1_ZERO_KEY,
	TALLY_C_TLY1_BAD_UTF8, TALLY_C_TLY1_ZERO_SENDER, TALLY_C_TLY1_KEYID_NO_MAC,
	TALLY_C_TLY1_MAC_MISSING};
#define TLY1_NBAD (sizeof(tly1_bad) / sizeof(tly1_bad[0]))

/* Bad StatsD lines (%u = name index) and the reason each is counted under. */
static const struct {
	const char *fmt;
	enum tally_counter reason;
} statsd_bad[] = {
	{"metric.%06u:1|x\n", TALLY_C_STATSD_BAD_TYPE},
	{"metric.%06u:abc|c\n", TALLY_C_STATSD_BAD_VALUE},
	{"metric.%06u:|s\n", TALLY_C_STATSD_BAD_SET},
	{"metric.%06u:1|c|@2\n", TALLY_C_STATSD_BAD_RATE},
	{"metric.%06u:+x|g\n", TALLY_C_STATSD_BAD_REL_GAUGE},
	{":%u|c\n", TALLY_C_STATSD_BAD_NAME},
	{"metric.%06u:1|c|#a|#b\n", TALLY_C_STATSD_BAD_FIELD},
};
#define STATSD_NBAD (sizeof(statsd_bad) / sizeof(statsd_bad[0]))

/* ---- randomness (splitmix64), keys, times ---- */

static uint64_t rnd(struct gen_pool *p)
{
	uint64_t z = (p->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double unit(struct gen_pool *p) { return (double)(rnd(p) >> 11) / 9007199254740992.0; }

/* Zipf: binary search of the CDF built once at start. */
static uint32_t draw_key(struct gen_pool *p)
{
	uint32_t lo = 0, hi;
	double u;

	if (!p->o.zipf)
		return (uint32_t)(rnd(p) % p->o.keys);
	u = unit(p);
	for (hi = p->o.keys - 1; lo < hi;) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (p->zipf_cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int zipf_init(struct gen_pool *p)
{
	double sum = 0, acc = 0;

	p->zipf_cdf = malloc(sizeof(double) * p->o.keys);
	if (p->zipf_cdf == NULL)
		return -ENOMEM;
	for (uint32_t k = 0; k < p->o.keys; k++)
		sum += pow(k + 1, -p->o.zipf_s);
	for (uint32_t k = 0; k < p->o.keys; k++) {
		acc += pow(k + 1, -p->o.zipf_s);
		p->zipf_cdf[k] = acc / sum;
	}
	p->zipf_cdf[p->o.keys - 1] = 1.0;
	return 0;
}

static void *grow(void *a, uint64_t *cap, uint64_t need, size_t elem)
{
	if (need <= *cap)
		return a;
	while (*cap < need)
		*cap = *cap ? *cap * 2 : 1024;
	a = realloc(a, *cap * elem);
	if (a == NULL) {
		fprintf(stderr, "tally-gen: out of memory building the pool (try a smaller --pool)\n");
		exit(1);
	}
	return a;
}

/* Time of the n-th event of the pool: spread over [T, T + span) by position. */
static uint64_t event_time(const struct gen_pool *p, uint64_t n)
{
	uint64_t total = (uint64_t)p->o.pool * p->o.per_dgram;

	return p->o.time_ms + (p->o.span_ms ? (n % total) * p->o.span_ms / total : 0);
}

static uint16_t win_index(const struct gen_pool *p, uint64_t t)
{
	return (uint16_t)((t - t % p->o.window_ms - p->win0) / p->o.window_ms);
}

static void add_event(struct gen_pool *p, uint32_t key, uint64_t t, int32_t v)
{
	p->ev = grow(p->ev, &p->ev_cap, p->nev + 1, sizeof(*p->ev));
	p->ev[p->nev++] = (struct gen_event){key, p->nframes, v, win_index(p, t), 0};
}

static void add_patch(struct gen_pool *p, uint32_t off, uint64_t src)
{
	p->patch = grow(p->patch, &p->patch_cap, p->npatch + 1, sizeof(*p->patch));
	p->patch[p->npatch++] = (struct gen_patch){off, (uint32_t)src};
}

/* ---- frame headers ---- */

static const uint8_t mac_dst[6] = {0x02, 0, 0, 0, 0, 0x01}, mac_src[6] = {0x02, 0, 0, 0, 0, 0x02};
static const uint8_t ip6_src[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 2};
static const uint8_t ip6_dst[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
static const uint8_t ip4_src[4] = {192, 0, 2, 2}, ip4_dst[4] = {192, 0, 2, 1}; /* TEST-NET-1 */

static void be16put(uint8_t *q, uint16_t v) { q[0] = (uint8_t)(v >> 8); q[1] = (uint8_t)v; }

static uint32_t csum_add(uint32_t s, const uint8_t *b, uint32_t len)
{
	for (uint32_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (len & 1)
		s += (uint32_t)b[len - 1] << 8;
	return s;
}

static uint16_t csum_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static uint32_t ip4_header(uint8_t *h, uint32_t plen)
{
	memset(h, 0, 20);
	h[0] = 0x45;
	be16put(h + 2, (uint16_t)(20 + 8 + plen));
	h[8] = 64;
	h[9] = 17;
	memcpy(h + 12, ip4_src, 4);
	memcpy(h + 16, ip4_dst, 4);
	be16put(h + 10, csum_fold(csum_add(0, h, 20)));
	return 20;
}

static uint32_t ip6_header(uint8_t *h, uint32_t plen)
{
	memset(h, 0, 40);
	h[0] = 0x60;
	be16put(h + 4, (uint16_t)(plen + 8));
	h[6] = 17;
	h[7] = 64;
	memcpy(h + 8, ip6_src, 16);
	memcpy(h + 24, ip6_dst, 16);
	return 40;
}

/* Write the L2-L4 headers for a payload of plen bytes; returns the UDP offset. */
static uint16_t headers(const struct gen_pool *p, uint8_t *q, uint32_t plen, bool v6,
			bool vlan, uint32_t frame)
{
	uint32_t o = 12;

	memcpy(q, mac_dst, 6);
	memcpy(q + 6, mac_src, 6);
	if (vlan) {
		be16put(q + o, 0x8100);
		be16put(q + o + 2, 100);
		o += 4;
	}
	be16put(q + o, v6 ? 0x86dd : 0x0800);
	o += 2;
	o += v6 ? ip6_header(q + o, plen) : ip4_header(q + o, plen);
	be16put(q + o, (uint16_t)(10000 + frame % p->o.flows));
	be16put(q + o + 2, p->o.dst_port);
	be16put(q + o + 4, (uint16_t)(plen + 8));
	be16put(q + o + 6, 0);
	return (uint16_t)o;
}

/* ---- TLY1 payloads ---- */

struct recent {
	uint64_t src, t;
	uint32_t key;
	int32_t v;
};

uint32_t gen_tly1_event_len(const struct gen_opts *o) { return TALLY_TLY1_EVT_FIXED + o->key_len; }

/* "tally." and the key index zero-padded to key_len bytes in all. */
static uint32_t tly1_key(const struct gen_opts *o, char *dst, uint32_t k)
{
	int digits = (int)(o->key_len - strlen(TLY1_KEY_PREFIX));

	return (uint32_t)sprintf(dst, TLY1_KEY_PREFIX "%0*u", digits, k);
}

static uint32_t tly1_event(const struct gen_pool *p, uint8_t *q, uint32_t key, uint64_t t,
			   int64_t v)
{
	char kbuf[TALLY_KEY_MAX + 16];
	uint32_t kl = tly1_key(&p->o, kbuf, key);

	tally_put_le64(q + TALLY_TLY1_EOFF_ID, 0); /* patched at render time */
	tally_put_le64(q + TALLY_TLY1_EOFF_TIME, t);
	tally_put_le64(q + TALLY_TLY1_EOFF_VALUE, (uint64_t)v);
	q[TALLY_TLY1_EOFF_KEYLEN] = (uint8_t)kl;
	memcpy(q + TALLY_TLY1_EOFF_KEY, kbuf, kl);
	return TALLY_TLY1_EVT_FIXED + kl;
}

static void tly1_header(const struct gen_pool *p, uint8_t *q, uint16_t count, bool signed_dgram)
{
	memcpy(q, TALLY_TLY1_MAGIC, 4);
	q[TALLY_TLY1_OFF_FLAGS] = p->o.ack_req ? TALLY_TLY1_F_ACK_REQ : 0;
	q[TALLY_TLY1_OFF_KEY_ID] = 0;
	if (signed_dgram) {
		q[TALLY_TLY1_OFF_FLAGS] |= TALLY_TLY1_F_MAC;
		q[TALLY_TLY1_OFF_KEY_ID] = p->o.mac_id;
	}
	tally_put_le16(q + TALLY_TLY1_OFF_COUNT, count);
	tally_put_le64(q + TALLY_TLY1_OFF_SENDER, p->o.sender_id);
	tally_put_le64(q + TALLY_TLY1_OFF_SEQ, 0); /* patched at render time */
}

/* Valid datagram: fresh events and duplicates of recent valid ones. */
static uint32_t tly1_valid(struct gen_pool *p, uint8_t *q, struct recent *rc, uint64_t *nrc)
{
	uint32_t o = TALLY_TLY1_HDR_LEN;

	tly1_header(p, q, (uint16_t)p->o.per_dgram, p->o.mac_id != 0);
	for (uint32_t i = 0; i < p->o.per_dgram; i++) {
		struct recent e;

		if (*nrc > 0 && unit(p) < p->o.dup_rate) {
			e = rc[rnd(p) % (*nrc < RECENT ? *nrc : RECENT)];
			p->dups_per_cycle++;
		} else {
			e = (struct recent){p->fresh, event_time(p, p->fresh), draw_key(p),
					    (int32_t)(rnd(p) % 121) - 20};
			p->fresh++;
			rc[(*nrc)++ % RECENT] = e;
			add_event(p, e.key, e.t, e.v);
		}
		add_patch(p, o, e.src);
		o += tly1_event(p, q + o, e.key, e.t, e.v);
	}
	return o + (p->o.mac_id ? TALLY_TLY1_MAC_LEN : 0); /* the MAC: at render time */
}

/* Break a well-formed datagram of n events (o bytes) in way `kind`; new length. */
static uint32_t tly1_break(uint8_t *q, uint32_t o, uint32_t n, enum tally_counter kind)
{
	uint8_t *ev0 = q + TALLY_TLY1_HDR_LEN;

	switch (kind) {
	case TALLY_C_TLY1_BAD_MAGIC: q[0] = 'X'; break;
	case TALLY_C_TLY1_RESERVED_FLAGS: q[TALLY_TLY1_OFF_FLAGS] = 0x80; break;
	case TALLY_C_TLY1_BAD_COUNT: tally_put_le16(q + TALLY_TLY1_OFF_COUNT, 0); break;
	case TALLY_C_TLY1_TRUNCATED: tally_put_le16(q + TALLY_TLY1_OFF_COUNT, (uint16_t)(n + 1)); break;
	case TALLY_C_TLY1_TRAILING: memset(q + o, 0, 3); return o + 3;
	case TALLY_C_TLY1_ZERO_KEY: ev0[TALLY_TLY1_EOFF_KEYLEN] = 0; break;
	case TALLY_C_TLY1_BAD_UTF8: ev0[TALLY_TLY1_EOFF_KEY] = 0xff; break;
	case TALLY_C_TLY1_ZERO_SENDER: tally_put_le64(q + TALLY_TLY1_OFF_SENDER, 0); break;
	case TALLY_C_TLY1_KEYID_NO_MAC: q[TALLY_TLY1_OFF_KEY_ID] = 1; break;
	case TALLY_C_TLY1_MAC_MISSING:
		q[TALLY_TLY1_OFF_FLAGS] = TALLY_TLY1_F_MAC;
		q[TALLY_TLY1_OFF_KEY_ID] = 1;
		break;
	default: break;
	}
	return o;
}

/* Malformed datagram carrying the ids of the next fresh (later valid) events. */
static uint32_t tly1_malformed(struct gen_pool *p, uint8_t *q)
{
	uint32_t o = TALLY_TLY1_HDR_LEN, n = p->o.per_dgram;

	tly1_header(p, q, (uint16_t)n, false);
	for (uint32_t i = 0; i < n; i++) {
		add_patch(p, o, p->fresh + i);
		o += tly1_event(p, q + o, draw_key(p), event_time(p, p->fresh + i), 1);
	}
	return tly1_break(q, o, n, tly1_bad[p->malformed_per_cycle++ % TLY1_NBAD]);
}

/* ---- StatsD payloads ---- */

const char *const gen_statsd_types[6] = {"c", "g", "ms", "h", "d", "s"};

static const char *stype(const struct gen_opts *o, uint32_t k)
{
	return gen_statsd_types[o->stypes[k % o->nstypes]];
}

/* Canonical key of name index k: what tallyd must store. */
static uint32_t statsd_key(const struct gen_opts *o, char *dst, uint32_t k)
{
	return (uint32_t)sprintf(dst, "metric.%06u|%s|#env:prod,host:h%02u,region:r%u", k,
				 stype(o, k), k % 32, k % 4);
}

/* "|#" and the three tags in a random order, sometimes with an exact repeat. */
static void statsd_tags(struct gen_pool *p, char *dst, uint32_t k)
{
	char t[3][24];
	unsigned a = (unsigned)(rnd(p) % 3), b = (unsigned)(rnd(p) % 2);
	bool repeat = rnd(p) % 4 == 0; /* the canonical key drops exact repeats */

	sprintf(t[0], "env:prod");
	sprintf(t[1], "host:h%02u", k % 32);
	sprintf(t[2], "region:r%u", k % 4);
	sprintf(dst, "|#%s,%s,%s%s%s", t[a], t[(a + 1 + b) % 3], t[(a + 2 - b) % 3],
		repeat ? "," : "", repeat ? t[a] : "");
}

/* One good line, its fields (tags, |T, maybe a rate) in a random order. */
static uint32_t statsd_good(struct gen_pool *p, char *q, uint32_t k, uint64_t t, int32_t *v)
{
	static const unsigned div[3] = {1, 2, 4}; /* rate 1, 0.5, 0.25 */
	char f[3][64];
	const char *order[3];
	unsigned value = (unsigned)(rnd(p) % 100) + 1, r = (unsigned)(rnd(p) % 3), nf = 2;
	const char *type = stype(&p->o, k);
	bool counter = type[0] == 'c', set = type[0] == 's';

	if (p->o.statsd_plain) {
		*v = (int32_t)value;
		return (uint32_t)sprintf(q, "metric.%06u:%u|c\n", k, value);
	}
	statsd_tags(p, f[0], k);
	sprintf(f[1], "|T%llu", (unsigned long long)(t / 1000));
	/* counters mostly sampled; other types now and then carry a rate, ignored */
	if (counter ? r != 0 : rnd(p) % 8 == 0)
		sprintf(f[nf++], "|@%g", 1.0 / div[r]);
	else
		r = 0;
	for (unsigned i = 0; i < nf; i++)
		order[i] = f[i];
	for (unsigned i = nf - 1; i > 0; i--) {
		unsigned j = (unsigned)(rnd(p) % (i + 1));
		const char *x = order[i];

		order[i] = order[j];
		order[j] = x;
	}
	/* a set's member is text (a user id); its row counts lines, v = 1 */
	*v = (int32_t)(counter ? value * div[r] : set ? 1 : value);
	return (uint32_t)sprintf(q, "metric.%06u:%s%u|%s%s%s%s\n", k, set ? "u" : "", value, type,
				 order[0], order[1], nf > 2 ? order[2] : "");
}

/* A malformed StatsD datagram has a bad line in every third place. */
static uint32_t statsd_dgram(struct gen_pool *p, uint8_t *q, bool malformed)
{
	uint32_t o = 0;

	for (uint32_t i = 0; i < p->o.per_dgram; i++) {
		uint32_t k = draw_key(p);
		uint64_t t = event_time(p, p->fresh + i);
		int32_t v;

		if (malformed && i % 3 == 0) {
			o += (uint32_t)sprintf((char *)q + o,
					       statsd_bad[p->bad_lines_per_cycle++ % STATSD_NBAD].fmt, k);
			continue;
		}
		o += statsd_good(p, (char *)q + o, k, t, &v);
		add_event(p, k, t - t % 1000, v);
	}
	p->fresh += p->o.per_dgram;
	p->malformed_per_cycle += malformed;
	return o;
}

/* ---- the pool ---- */

static int add_frame(struct gen_pool *p, struct recent *rc, uint64_t *nrc)
{
	bool v6 = unit(p) < p->o.ipv6_share, vlan = unit(p) < p->o.vlan_share;
	bool bad = unit(p) < p->o.malformed_rate;
	uint32_t l3 = 14 + (vlan ? 4 : 0), hlen = l3 + (v6 ? 40 : 20) + 8, plen;
	uint32_t patch0 = (uint32_t)p->npatch, dups0 = p->dups_per_cycle;
	uint32_t bad0 = p->bad_lines_per_cycle;
	uint8_t *q;

	p->buf = grow(p->buf, &p->buf_cap, p->buf_used + GEN_HDR_MAX + 64 +
		      (uint64_t)p->o.per_dgram * (TALLY_TLY1_EVT_FIXED + TALLY_KEY_MAX + 64), 1);
	q = p->buf + p->buf_used;
	if (p->o.proto == GEN_TLY1)
		plen = bad ? tly1_malformed(p, q + hlen) : tly1_valid(p, q + hlen, rc, nrc);
	else
		plen = statsd_dgram(p, q + hlen, bad);
	if (hlen - l3 + plen > p->o.mtu) {
		fprintf(stderr, "tally-gen: datagram %u of the pool (%u %s) is a %u-byte IP packet, "
			"above --mtu %u: send fewer --events-per-dgram\n", p->nframes,
			p->o.per_dgram, p->o.proto == GEN_TLY1 ? "events" : "lines",
			hlen - l3 + plen, p->o.mtu);
		return -EMSGSIZE;
	}
	p->frames[p->nframes] = (struct gen_frame){
		p->buf_used, hlen + plen, patch0, (uint16_t)(p->npatch - patch0),
		headers(p, q, plen, v6, vlan, p->nframes), (uint16_t)(p->dups_per_cycle - dups0),
		(uint16_t)(p->bad_lines_per_cycle - bad0), v6, bad,
		p->o.proto == GEN_TLY1 && !bad && p->o.mac_id != 0};
	p->buf_used += hlen + plen;
	p->nframes++;
	return 0;
}

static int pool_init(struct gen_pool *p, const struct gen_opts *o)
{
	p->o = *o;
	p->rng = o->seed * 0x2545f4914f6cdd1dULL + 1;
	/* seed-derived prefix in the high bits: runs with other seeds never collide */
	p->id_base = (o->seed & 0xfffff) << 43;
	p->win0 = o->time_ms - o->time_ms % o->window_ms;
	p->nwin = (uint32_t)((o->time_ms + o->span_ms) / o->window_ms - o->time_ms / o->window_ms + 1);
	if (p->nwin > UINT16_MAX) {
		fprintf(stderr, "tally-gen: --time-span-ms covers %u windows, at most %u\n",
			p->nwin, UINT16_MAX);
		return -EINVAL;
	}
	if ((uint64_t)o->pool * o->per_dgram > GEN_POOL_EVENTS_MAX) {
		fprintf(stderr, "tally-gen: the pool would hold more than %u events: lower --pool\n",
			GEN_POOL_EVENTS_MAX);
		return -EINVAL;
	}
	p->frames = calloc(o->pool, sizeof(*p->frames));
	if (p->frames == NULL || (o->zipf && zipf_init(p) != 0)) {
		fprintf(stderr, "tally-gen: out of memory for a pool of %u datagrams\n", o->pool);
		return -ENOMEM;
	}
	return 0;
}

struct gen_pool *gen_pool_build(const struct gen_opts *o)
{
	struct gen_pool *p = calloc(1, sizeof(*p));
	struct recent *rc = calloc(RECENT, sizeof(*rc));
	uint64_t nrc = 0;
	int r = p && rc ? pool_init(p, o) : -ENOMEM;

	for (uint32_t i = 0; r == 0 && i < o->pool; i++)
		r = add_frame(p, rc, &nrc);
	free(rc);
	if (r != 0) {
		if (r == -ENOMEM && p == NULL)
			fprintf(stderr, "tally-gen: out of memory\n");
		if (p != NULL)
			gen_pool_free(p);
		return NULL;
	}
	return p;
}

void gen_pool_free(struct gen_pool *p)
{
	free(p->buf);
	free(p->frames);
	free(p->patch);
	free(p->ev);
	free(p->zipf_cdf);
	free(p);
}

/* ---- sending ---- */

static uint16_t udp6_csum(const uint8_t *ip6, const uint8_t *udp, uint32_t len)
{
	uint16_t c = csum_fold(csum_add(csum_add(17 + len, ip6 + 8, 32), udp, len));

	return c == 0 ? 0xffff : c;
}

void gen_frame_render(const struct gen_pool *p, uint32_t i, uint64_t cycle, uint8_t *dst)
{
	const struct gen_frame *f = &p->frames[i];
	const struct gen_patch *x = &p->patch[f->patch_first];
	uint64_t base = p->id_base + cycle * p->fresh + 1;
	uint8_t *pl = dst + f->l4_off + 8;

	memcpy(dst, p->buf + f->off, f->len);
	for (uint32_t k = 0; k < f->npatch; k++)
		tally_put_le64(pl + x[k].off, base + x[k].src);
	if (p->o.proto == GEN_TLY1)
		tally_put_le64(pl + TALLY_TLY1_OFF_SEQ, cycle * p->nframes + i + 1);
	if (f->mac) { /* over the datagram with its ids and seq patched */
		uint32_t n = f->len - f->l4_off - 8 - TALLY_TLY1_MAC_LEN;

		crypto_shorthash_siphashx24(pl + n, pl, n, p->o.mac_key);
	}
	if (f->ipv6) {
		uint8_t *u = dst + f->l4_off;

		be16put(u + 6, 0);
		be16put(u + 6, udp6_csum(u - 40, u, f->len - f->l4_off));
	}
}

/* ---- what was sent, and the expected totals ---- */

/* Reasons of one frame's malformed datagram or bad lines; *nbad runs over frames. */
static void frame_reasons(const struct gen_pool *p, const struct gen_frame *f, uint64_t *nbad,
			  uint64_t *by_reason, uint64_t times)
{
	if (p->o.proto == GEN_TLY1) {
		if (f->bad)
			by_reason[tly1_bad[(*nbad)++ % TLY1_NBAD]] += times;
		return;
	}
	for (uint32_t j = 0; j < f->bad_lines; j++)
		by_reason[statsd_bad[(*nbad)++ % STATSD_NBAD].reason] += times;
}

void gen_sent_counts(const struct gen_pool *p, uint64_t sent, struct gen_sent *s)
{
	uint64_t cycles = sent / p->nframes, rest = sent % p->nframes, v = 0, nbad = 0;

	memset(s, 0, sizeof(*s));
	s->datagrams = sent;
	s->events = sent * p->o.per_dgram;
	for (uint64_t i = 0; i < p->nev && p->ev[i].frame < rest; i++)
		v++;
	s->valid = cycles * p->nev + v;
	s->dups = cycles * p->dups_per_cycle;
	s->malformed = cycles * p->malformed_per_cycle;
	s->bad_lines = cycles * p->bad_lines_per_cycle;
	for (uint32_t i = 0; cycles > 0 && i < p->nframes; i++)
		frame_reasons(p, &p->frames[i], &nbad, s->by_reason, cycles);
	nbad = 0;
	for (uint64_t i = 0; i < rest; i++) {
		s->dups += p->frames[i].dups;
		s->malformed += p->frames[i].bad;
		s->bad_lines += p->frames[i].bad_lines;
		frame_reasons(p, &p->frames[i], &nbad, s->by_reason, 1);
	}
	s->by_reason[TALLY_C_DROP_DUPLICATE] = s->dups;
}

struct agg {
	uint64_t count;
	double sum, min, max;
};

static void agg_add(struct agg *a, double v)
{
	if (a->count == 0 || v < a->min)
		a->min = v;
	if (a->count == 0 || v > a->max)
		a->max = v;
	a->count++;
	a->sum += v;
}

/* Per window of one key: the whole pool's events, and those of the prefix. */
struct win_agg {
	struct agg pool, prefix;
};

struct expect {
	const struct gen_pool *p;
	uint64_t cycles, rest;
	FILE *out;
	int64_t rows;
	struct win_agg *w; /* nwin entries, zero between keys */
	uint16_t *touched;
};

static int cmp_u16(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

/* Aggregate and write the rows of key k from its events ev[idx[0..n)]. */
static void expect_key(struct expect *x, uint32_t k, const uint32_t *idx, uint64_t n)
{
	const struct gen_pool *p = x->p;
	uint32_t nt = 0;
	char key[TALLY_KEY_MAX + 64];

	for (uint64_t i = 0; i < n; i++) {
		const struct gen_event *e = &p->ev[idx[i]];
		struct win_agg *w = &x->w[e->win];

		if (w->pool.count == 0)
			x->touched[nt++] = e->win;
		agg_add(&w->pool, e->v);
		if (e->frame < x->rest)
			agg_add(&w->prefix, e->v);
	}
	qsort(x->touched, nt, sizeof(*x->touched), cmp_u16);
	if (x->out != NULL && nt > 0 && p->o.proto == GEN_TLY1)
		tly1_key(&p->o, key, k);
	else if (x->out != NULL && nt > 0)
		statsd_key(&p->o, key, k);
	for (uint32_t i = 0; i < nt; i++) {
		struct win_agg *w = &x->w[x->touched[i]];
		const struct agg *mm = x->cycles ? &w->pool : &w->prefix;
		uint64_t count = x->cycles * w->pool.count + w->prefix.count;

		if (count > 0 && x->out != NULL)
			fprintf(x->out, "%s\t%llu\t%llu\t%llu\t%.17g\t%.17g\t%.17g\n", key,
				(unsigned long long)(p->win0 + x->touched[i] * p->o.window_ms),
				(unsigned long long)p->o.window_ms, (unsigned long long)count,
				(double)x->cycles * w->pool.sum + w->prefix.sum, mm->min, mm->max);
		x->rows += count > 0;
		memset(w, 0, sizeof(*w));
	}
}

/* Events grouped by key (a stable counting sort), so memory is O(keys + events). */
static uint32_t *group_by_key(const struct gen_pool *p, uint64_t **start)
{
	uint64_t *pos = calloc((uint64_t)p->o.keys + 1, sizeof(*pos));
	uint32_t *idx = malloc((p->nev ? p->nev : 1) * sizeof(*idx));

	if (pos == NULL || idx == NULL) {
		free(pos);
		free(idx);
		return NULL;
	}
	for (uint64_t i = 0; i < p->nev; i++)
		pos[p->ev[i].key + 1]++;
	for (uint32_t k = 0; k < p->o.keys; k++)
		pos[k + 1] += pos[k];
	for (uint64_t i = 0; i < p->nev; i++)
		idx[pos[p->ev[i].key]++] = (uint32_t)i;
	/* pos[k] is now the end of key k's group, the start of key k + 1's */
	*start = pos;
	return idx;
}

int64_t gen_expected_write(const struct gen_pool *p, uint64_t sent, const char *path)
{
	struct expect x = {p, sent / p->nframes, sent % p->nframes, NULL, 0,
			   calloc(p->nwin, sizeof(struct win_agg)), malloc(p->nwin * sizeof(uint16_t))};
	uint64_t *end = NULL;
	uint32_t *idx = group_by_key(p, &end);
	int r = 0;

	if (x.w == NULL || x.touched == NULL || idx == NULL)
		r = -ENOMEM;
	else if (path != NULL && (x.out = fopen(path, "w")) == NULL)
		r = -errno;
	if (x.out != NULL)
		fprintf(x.out, "key\twindow_start_ms\twindow_ms\tcount\tsum\tmin\tmax\n");
	for (uint32_t k = 0; r == 0 && k < p->o.keys; k++) {
		uint64_t b = k ? end[k - 1] : 0;

		expect_key(&x, k, idx + b, end[k] - b);
	}
	if (x.out != NULL && (ferror(x.out) | fclose(x.out)) != 0 && r == 0)
		r = -EIO;
	free(x.w);
	free(x.touched);
	free(idx);
	free(end);
	return r ? r : x.rows;
}
