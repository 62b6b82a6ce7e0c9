/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Pool rendering for tally-gen (see gen_traffic.h). Frames: Ethernet, optional
 * 802.1Q tag, IPv4 (UDP checksum 0 = none) or IPv6 (checksum computed after the
 * ids are patched), UDP. Duplicates re-send an earlier valid event of the same
 * cycle; a malformed TLY1 datagram carries the ids of the next valid events, so
 * a parser that applied it partly would wrongly drop those later as duplicates.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gen_traffic.h"
#include "wire.h"

#define RECENT 256

static uint64_t rnd(struct gen_pool *p)
{
	uint64_t z = (p->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double unit(struct gen_pool *p) { return (double)(rnd(p) >> 11) / 9007199254740992.0; }

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
	double sum = 0;

	p->zipf_cdf = malloc(sizeof(double) * p->o.keys);
	if (p->zipf_cdf == NULL)
		return -1;
	for (uint32_t k = 0; k < p->o.keys; k++)
		sum += 1.0 / pow(k + 1, p->o.zipf_s);
	for (uint32_t k = 0; k < p->o.keys; k++)
		p->zipf_cdf[k] = (k ? p->zipf_cdf[k - 1] : 0) + 1.0 / pow(k + 1, p->o.zipf_s) / sum;
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
		fprintf(stderr, "tally-gen: out of memory building the pool\n");
		exit(1);
	}
	return a;
}

/* Event time of the n-th event of the pool, spread over [T, T + span). */
static uint64_t event_time(struct gen_pool *p, uint64_t n)
{
	uint64_t total = (uint64_t)p->o.pool * p->o.per_dgram;

	return p->o.time_ms + (p->o.span_ms ? (n % total) * p->o.span_ms / total : 0);
}

static uint16_t win_index(const struct gen_pool *p, uint64_t t)
{
	return (uint16_t)((t - t % p->o.window_ms - p->win0) / p->o.window_ms);
}

static void add_event(struct gen_pool *p, uint32_t key, uint64_t t, double v)
{
	p->ev = grow(p->ev, &p->ev_cap, p->nev + 1, sizeof(*p->ev));
	p->ev[p->nev++] = (struct gen_event){key, p->nframes, win_index(p, t), v};
}

static void add_patch(struct gen_pool *p, uint32_t off, uint64_t src)
{
	p->patch = grow(p->patch, &p->patch_cap, p->npatch + 1, sizeof(*p->patch));
	p->patch[p->npatch++] = (struct gen_patch){off, (uint32_t)src};
}


/* ---- frame headers ---- */

static const uint8_t mac_dst[6] = {0x02, 0, 0, 0, 0, 0x01}, mac_src[6] = {0x02, 0, 0, 0, 0, 0x02};

static void be16put(uint8_t *q, uint16_t v) { q[0] = (uint8_t)(v >> 8); q[1] = (uint8_t)v; }

static uint16_t ip4_csum(const uint8_t *h)
{
	uint32_t s = 0;

	for (int i = 0; i < 20; i += 2)
		s += (uint32_t)(h[i] << 8 | h[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* Write L2-L4 headers for a payload of plen bytes; returns the header length. */
static uint32_t headers(struct gen_pool *p, uint8_t *q, uint32_t plen, bool v6, bool vlan,
			uint32_t flow, uint16_t *l4_off)
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
	if (v6) {
		memset(q + o, 0, 40);
		q[o] = 0x60;
		be16put(q + o + 4, (uint16_t)(plen + 8));
		q[o + 6] = 17;
		q[o + 7] = 64;
		q[o + 8] = 0x20; q[o + 9] = 0x01; q[o + 10] = 0x0d; q[o + 11] = 0xb8; q[o + 23] = 2;
		q[o + 24] = 0x20; q[o + 25] = 0x01; q[o + 26] = 0x0d; q[o + 27] = 0xb8; q[o + 39] = 1;
		o += 40;
	} else {
		uint8_t *h = q + o;

		memset(h, 0, 20);
		h[0] = 0x45;
		be16put(h + 2, (uint16_t)(20 + 8 + plen));
		h[8] = 64;
		h[9] = 17;
		h[12] = 192; h[13] = 0; h[14] = 2; h[15] = 2;   /* TEST-NET-1 */
		h[16] = 192; h[17] = 0; h[18] = 2; h[19] = 1;
		be16put(h + 10, ip4_csum(h));
		o += 20;
	}
	*l4_off = (uint16_t)o;
	be16put(q + o, (uint16_t)(10000 + flow % p->o.flows));
	be16put(q + o + 2, p->o.dst_port);
	be16put(q + o + 4, (uint16_t)(plen + 8));
	be16put(q + o + 6, 0);
	return o + 8;
}

/* ---- TLY1 payloads ---- */

struct recent { uint64_t src; uint32_t key; uint64_t t; int64_t v; };

static uint32_t tly1_key(char *dst, uint32_t k) { return (uint32_t)sprintf(dst, "tally.%08u", k); }

static uint32_t tly1_event(uint8_t *q, uint32_t key, uint64_t t, int64_t v)
{
	char kbuf[32];
	uint32_t kl = tly1_key(kbuf, key);

	tally_put_le64(q, 0);
	tally_put_le64(q + 8, t);
	tally_put_le64(q + 16, (uint64_t)v);
	q[24] = (uint8_t)kl;
	memcpy(q + 25, kbuf, kl);
	return 25 + kl;
}

static void tly1_header(struct gen_pool *p, uint8_t *q, uint16_t count)
{
	memcpy(q, TALLY_TLY1_MAGIC, 4);
	q[4] = q[5] = 0;
	tally_put_le16(q + 6, count);
	tally_put_le64(q + 8, p->o.sender_id);
	tally_put_le64(q + 16, p->nframes);
}

/* Valid datagram: fresh events and duplicates of recent valid ones. */
static uint32_t tly1_valid(struct gen_pool *p, uint8_t *q, struct recent *rc, uint64_t *nrc)
{
	uint32_t o = 24;

	tly1_header(p, q, (uint16_t)p->o.per_dgram);
	for (uint32_t i = 0; i < p->o.per_dgram; i++) {
		struct recent e;

		if (*nrc > 0 && unit(p) < p->o.dup_rate) {
			e = rc[rnd(p) % (*nrc < RECENT ? *nrc : RECENT)];
			p->dups_per_cycle++;
		} else {
			e = (struct recent){p->fresh++, draw_key(p), 0, (int64_t)(rnd(p) % 121) - 20};
			e.t = event_time(p, e.src);
			rc[(*nrc)++ % RECENT] = e;
			add_event(p, e.key, e.t, (double)e.v);
		}
		add_patch(p, o, e.src);
		o += tly1_event(q + o, e.key, e.t, e.v);
	}
	return o;
}

/* Malformed datagram of kind k, carrying the ids of the next fresh events. */
static uint32_t tly1_malformed(struct gen_pool *p, uint8_t *q, unsigned k)
{
	uint32_t o = 24, n = p->o.per_dgram, first = 24;

	tly1_header(p, q, (uint16_t)n);
	for (uint32_t i = 0; i < n; i++) {
		add_patch(p, o, p->fresh + i);
		o += tly1_event(q + o, draw_key(p), event_time(p, p->fresh + i), 1);
	}
	switch (k % 10) {
	case 0: q[0] = 'X'; break;                       /* bad magic */
	case 1: q[4] = 0x80; break;                      /* reserved flag */
	case 2: tally_put_le16(q + 6, 0); break;         /* count 0 */
	case 3: tally_put_le16(q + 6, (uint16_t)(n + 1)); break; /* truncated */
	case 4: memset(q + o, 0, 3); o += 3; break;      /* trailing bytes */
	case 5: q[first + 24] = 0; break;                /* zero key_len */
	case 6: q[first + 25] = 0xff; break;             /* invalid UTF-8 */
	case 7: tally_put_le64(q + 8, 0); break;         /* sender 0 */
	case 8: q[5] = 1; break;                         /* key_id without MAC */
	case 9: q[4] = TALLY_TLY1_F_MAC; q[5] = 1; break; /* MAC flag, no trailer */
	}
	p->malformed_per_cycle++;
	return o;
}

/* ---- StatsD payloads ---- */

static const char *const types[5] = {"c", "g", "ms", "h", "d"};

/* Canonical key of name index k: what tallyd must store. */
static uint32_t statsd_key(char *dst, uint32_t k)
{
	return (uint32_t)sprintf(dst, "metric.%06u|%s|#env:prod,host:h%02u,region:r%u", k,
				 types[k % 5], k % 32, k % 4);
}

/* One good line; fields and tags in a random order, sometimes a repeated tag. */
static uint32_t statsd_good(struct gen_pool *p, char *q, uint32_t k, uint64_t t, double *v)
{
	static const double rates[3] = {1, 0.5, 0.25};
	char tags[3][24], f[3][128];
	unsigned value = (unsigned)(rnd(p) % 100) + 1, r = (unsigned)(rnd(p) % 3), a, b;
	uint32_t n;

	sprintf(tags[0], "env:prod");
	sprintf(tags[1], "host:h%02u", k % 32);
	sprintf(tags[2], "region:r%u", k % 4);
	a = (unsigned)(rnd(p) % 3);
	b = (unsigned)(rnd(p) % 3);
	bool repeat = rnd(p) % 4 == 0; /* an exact repeat the canonical key drops */
	sprintf(f[0], "|#%s,%s,%s%s%s", tags[a], tags[(a + 1 + b % 2) % 3],
		tags[(a + 2 - b % 2) % 3], repeat ? "," : "", repeat ? tags[a] : "");
	sprintf(f[1], "|T%llu", (unsigned long long)(t / 1000));
	sprintf(f[2], "|@%g", rates[r]);
	bool rate = k % 5 == 0 ? r != 0 : rnd(p) % 8 == 0;
	a = (unsigned)(rnd(p) % 3);
	n = (uint32_t)sprintf(q, "metric.%06u:%u|%s%s%s%s\n", k, value, types[k % 5],
			      a == 0 ? f[0] : f[1], a == 0 ? f[1] : f[0], rate ? f[2] : "");
	*v = k % 5 == 0 ? value / rates[rate ? r : 0] : value;
	return n;
}

static uint32_t statsd_bad(uint32_t kind, char *q, uint32_t k)
{
	static const char *const fmt[7] = {
		"metric.%06u:1|x\n", "metric.%06u:abc|c\n", "metric.%06u:1|s\n",
		"metric.%06u:1|c|@2\n", "metric.%06u:+5|g\n", ":%u|c\n", "metric.%06u:1|c|#a|#b\n"};

	return (uint32_t)sprintf(q, fmt[kind % 7], k);
}

static uint32_t statsd_dgram(struct gen_pool *p, uint8_t *q, bool malformed)
{
	uint32_t o = 0;

	for (uint32_t i = 0; i < p->o.per_dgram; i++) {
		uint32_t k = draw_key(p);
		uint64_t t = event_time(p, p->fresh + i);
		double v;

		if (malformed && (i % 3 == 0)) {
			o += statsd_bad(p->bad_lines_per_cycle++, (char *)q + o, k);
			continue;
		}
		o += statsd_good(p, (char *)q + o, k, t, &v);
		add_event(p, k, t - t % 1000, v);
	}
	p->fresh += p->o.per_dgram;
	if (malformed)
		p->malformed_per_cycle++;
	return o;
}

/* ---- the pool ---- */

static int add_frame(struct gen_pool *p, struct recent *rc, uint64_t *nrc, bool *prev_bad)
{
	uint8_t *q;
	uint32_t plen, hlen, room = 70 + p->o.per_dgram * 300;
	bool v6 = unit(p) < p->o.ipv6_share, vlan = unit(p) < p->o.vlan_share;
	bool bad = !*prev_bad && unit(p) < p->o.malformed_rate;
	struct gen_frame *f;
	uint32_t dups0 = p->dups_per_cycle, bad0 = p->bad_lines_per_cycle;
	uint16_t l4;

	p->buf = grow(p->buf, &p->buf_cap, p->buf_used + room, 1);
	q = p->buf + p->buf_used;
	f = &p->frames[p->nframes];
	f->patch_first = (uint32_t)p->npatch;
	hlen = 14 + (vlan ? 4 : 0) + (v6 ? 40 : 20) + 8;
	if (p->o.proto == GEN_TLY1)
		plen = bad ? tly1_malformed(p, q + hlen, p->malformed_per_cycle)
			   : tly1_valid(p, q + hlen, rc, nrc);
	else
		plen = statsd_dgram(p, q + hlen, bad);
	headers(p, q, plen, v6, vlan, p->nframes, &l4);
	if (hlen - 14 - (vlan ? 4 : 0) + plen > p->o.mtu) {
		fprintf(stderr, "tally-gen: a datagram of %u events needs %u bytes of IP packet, "
			"above the MTU %u: send fewer events per datagram\n", p->o.per_dgram,
			hlen - 14 - (vlan ? 4 : 0) + plen, p->o.mtu);
		return -1;
	}
	*f = (struct gen_frame){p->buf_used, hlen + plen, f->patch_first,
				(uint16_t)(p->npatch - f->patch_first), l4,
				(uint16_t)(p->dups_per_cycle - dups0),
				(uint16_t)(p->bad_lines_per_cycle - bad0), v6, bad};
	p->buf_used += f->len;
	p->nframes++;
	*prev_bad = bad;
	return 0;
}

struct gen_pool *gen_pool_build(const struct gen_opts *o)
{
	struct gen_pool *p = calloc(1, sizeof(*p));
	struct recent *rc = calloc(RECENT, sizeof(*rc));
	uint64_t nrc = 0;
	bool prev_bad = false;

	if (p == NULL || rc == NULL)
		return NULL;
	p->o = *o;
	p->rng = o->seed * 0x2545f4914f6cdd1dULL + 1;
	p->id_base = (o->seed & 0xffff) << 44;
	p->win0 = o->time_ms - o->time_ms % o->window_ms;
	p->nwin = (uint32_t)((o->time_ms + o->span_ms) / o->window_ms - o->time_ms / o->window_ms + 1);
	p->frames = calloc(o->pool, sizeof(*p->frames));
	if (p->frames == NULL || (o->zipf && zipf_init(p) != 0))
		return NULL;
	for (uint32_t i = 0; i < o->pool; i++)
		if (add_frame(p, rc, &nrc, &prev_bad) != 0)
			return NULL;
	free(rc);
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

static uint16_t udp6_csum(const uint8_t *ip6, const uint8_t *udp, uint32_t len)
{
	uint32_t s = 17 + len;

	for (int i = 8; i < 40; i += 2)
		s += (uint32_t)(ip6[i] << 8 | ip6[i + 1]);
	for (uint32_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(udp[i] << 8 | udp[i + 1]);
	if (len & 1)
		s += (uint32_t)udp[len - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	s = (uint16_t)~s;
	return s == 0 ? 0xffff : (uint16_t)s;
}

void gen_frame_render(const struct gen_pool *p, uint32_t i, uint64_t cycle, uint8_t *dst)
{
	const struct gen_frame *f = &p->frames[i];
	uint64_t base = p->id_base + cycle * p->fresh + 1;
	uint32_t hoff = f->l4_off + 8;

	memcpy(dst, p->buf + f->off, f->len);
	for (uint32_t k = 0; k < f->npatch; k++) {
		const struct gen_patch *x = &p->patch[f->patch_first + k];

		tally_put_le64(dst + hoff + x->off, base + x->src);
	}
	if (f->ipv6) {
		uint8_t *u = dst + f->l4_off;

		u[6] = u[7] = 0;
		uint16_t c = udp6_csum(u - 40, u, f->len - f->l4_off);
		be16put(u + 6, c);
	}
}

/* ---- what was sent, and the expected totals ---- */

void gen_sent_counts(const struct gen_pool *p, uint64_t sent, uint64_t *events, uint64_t *valid,
		     uint64_t *dups, uint64_t *malformed, uint64_t *bad_lines)
{
	uint64_t cycles = sent / p->nframes, rest = sent % p->nframes, v = 0;

	*events = sent * p->o.per_dgram;
	for (uint64_t i = 0; i < p->nev && p->ev[i].frame < rest; i++)
		v++;
	*valid = cycles * p->nev + v;
	*dups = cycles * p->dups_per_cycle;
	*malformed = cycles * p->malformed_per_cycle;
	*bad_lines = cycles * p->bad_lines_per_cycle;
	for (uint64_t i = 0; i < rest; i++) {
		*dups += p->frames[i].dups;
		*malformed += p->frames[i].bad;
		*bad_lines += p->frames[i].bad_lines;
	}
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

static uint32_t key_text(const struct gen_pool *p, char *dst, uint32_t k)
{
	return p->o.proto == GEN_TLY1 ? tly1_key(dst, k) : statsd_key(dst, k);
}

int64_t gen_expected_write(const struct gen_pool *p, uint64_t sent, const char *path)
{
	uint64_t cycles = sent / p->nframes, rest = sent % p->nframes, n = (uint64_t)p->o.keys * p->nwin;
	struct agg *a = calloc(n, sizeof(*a));
	FILE *f = fopen(path, "w");
	int64_t rows = 0;
	char key[300];

	if (a == NULL || f == NULL)
		return -1;
	/* The pool's totals once per full cycle, then the last cycle's prefix. */
	for (uint64_t c = 0; c < cycles && c < 1; c++)
		for (uint64_t i = 0; i < p->nev; i++)
			agg_add(&a[(uint64_t)p->ev[i].key * p->nwin + p->ev[i].win], p->ev[i].v);
	for (uint64_t i = 0; cycles > 1 && i < n; i++) {
		a[i].count *= cycles;
		a[i].sum *= (double)cycles;
	}
	for (uint64_t i = 0; i < p->nev && p->ev[i].frame < rest; i++)
		agg_add(&a[(uint64_t)p->ev[i].key * p->nwin + p->ev[i].win], p->ev[i].v);
	fprintf(f, "key\twindow_start_ms\twindow_ms\tcount\tsum\tmin\tmax\n");
	for (uint64_t i = 0; i < n; i++) {
		if (a[i].count == 0)
			continue;
		key_text(p, key, (uint32_t)(i / p->nwin));
		fprintf(f, "%s\t%llu\t%llu\t%llu\t%.17g\t%.17g\t%.17g\n", key,
			(unsigned long long)(p->win0 + (i % p->nwin) * p->o.window_ms),
			(unsigned long long)p->o.window_ms, (unsigned long long)a[i].count, a[i].sum,
			a[i].min, a[i].max);
		rows++;
	}
	free(a);
	return fclose(f) == 0 ? rows : -1;
}
