/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-micro: what each stage of the worker costs, in TSC cycles per
 * operation: frame parsing, TLY1 and StatsD parsing, UTF-8 checks, key and id
 * hashing, dedup insert of new ids and probe of duplicates, window-table
 * updates and row creation, at table sizes in and far beyond the caches, with
 * and without the prefetch-ahead the worker uses; and, off the per-packet path,
 * SQLite sink upserts per second; and the dedup design choice with two workers
 * (micro_steer.c); and the rules stage by pattern count, with and without
 * the decision cache (micro_rules.c). Every case checks its results, so a figure is
 * never for work that went wrong. TSC ticks are reference cycles at the TSC
 * frequency printed in the header, not core cycles under turbo.
 *
 *   tally-micro [--quick] [--rules (the rules cases only)] [--json FILE]
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "counters.h"
#include "micro.h"
#include "dedup.h"
#include "parse_statsd.h"
#include "parse_tly1.h"
#include "pkt.h"
#include "sink.h"
#include "window.h"

#define AHEAD 8 /* as the worker (TALLY_PREFETCH) */

static double tsc_hz;
static FILE *json;
static bool first_row = true;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void calibrate(void)
{
	double t0 = now_s();
	uint64_t c0 = __rdtsc();

	while (now_s() - t0 < 0.1)
		;
	tsc_hz = (double)(__rdtsc() - c0) / (now_s() - t0);
}

void micro_report(const char *stage, const char *cas, uint64_t ops, uint64_t cycles, size_t bytes)
{
	double cpo = (double)cycles / (double)ops;

	printf("%-8s %-52s %11llu %10.1f %8.2f %12zu\n", stage, cas, (unsigned long long)ops, cpo,
	       cpo / tsc_hz * 1e9, bytes);
	fflush(stdout);
	if (json)
		fprintf(json, "%s{\"stage\":\"%s\",\"case\":\"%s\",\"ops\":%llu,\"cycles_per_op\":%.2f,"
			"\"ns_per_op\":%.3f,\"bytes\":%zu}", first_row ? "[\n" : ",\n", stage, cas,
			(unsigned long long)ops, cpo, cpo / tsc_hz * 1e9, bytes);
	first_row = false;
}

void micro_fail(const char *what)
{
	fprintf(stderr, "tally-micro: %s\n", what);
	exit(1);
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* ---- parsing ---- */

/* An Ethernet/IPv4/UDP frame around a payload of plen bytes (IP checksum set). */
static uint32_t udp_frame(uint8_t *f, uint32_t plen)
{
	uint32_t sum = 0;

	memset(f, 0, 42);
	f[12] = 0x08;
	f[14] = 0x45;
	f[16] = (uint8_t)((28 + plen) >> 8);
	f[17] = (uint8_t)(28 + plen);
	f[22] = 64;
	f[23] = 17;
	memcpy(f + 26, "\xc0\x00\x02\x02\xc0\x00\x02\x01", 8);
	for (int i = 14; i < 34; i += 2)
		sum += (uint32_t)(f[i] << 8 | f[i + 1]);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = ~((sum & 0xffff) + (sum >> 16)) & 0xffff;
	f[24] = (uint8_t)(sum >> 8);
	f[25] = (uint8_t)sum;
	f[36] = 7000 >> 8;
	f[37] = 7000 & 0xff;
	f[38] = (uint8_t)((8 + plen) >> 8);
	f[39] = (uint8_t)(8 + plen);
	return 42 + plen;
}

static void bench_frame(uint64_t reps)
{
	static uint8_t f[2048];
	static const uint16_t ports[2] = {7000, 8125};
	uint32_t len = udp_frame(f, 64);
	struct tally_udp u;
	uint64_t c0 = __rdtsc();

	for (uint64_t r = 0; r < reps; r++) {
		f[50] = (uint8_t)r; /* a payload byte: keep the loop honest */
		if (tally_pkt_parse(f, len, TALLY_CSUM_UNKNOWN, TALLY_CSUM_UNKNOWN, ports, 2, &u) !=
		    TALLY_OK)
			micro_fail("frame parse failed");
	}
	micro_report("frame", "Ethernet/IPv4/UDP, IP checksum in software", reps, __rdtsc() - c0, 0);
}

/* A TLY1 datagram of n events with keys of klen bytes. */
static uint32_t tly1_dgram(uint8_t *d, unsigned n, unsigned klen)
{
	uint32_t o = 24;

	memcpy(d, "TLY1", 4);
	d[4] = d[5] = 0;
	tally_put_le16(d + 6, (uint16_t)n);
	tally_put_le64(d + 8, 1);
	tally_put_le64(d + 16, 1);
	for (unsigned i = 0; i < n; i++) {
		tally_put_le64(d + o, i + 1);
		tally_put_le64(d + o + 8, 0);
		tally_put_le64(d + o + 16, 1);
		d[o + 24] = (uint8_t)klen;
		memset(d + o + 25, 'a' + (char)(i % 26), klen);
		o += 25 + klen;
	}
	return o;
}

static void bench_tly1(unsigned n, unsigned klen, uint64_t reps)
{
	static uint8_t d[9000];
	static struct tally_event ev[64];
	struct tally_evbuf b = {ev, 0, 64, NULL, 0, 0};
	uint32_t len = tly1_dgram(d, n, klen);
	char cas[80];
	uint64_t c0 = __rdtsc();

	for (uint64_t r = 0; r < reps; r++) {
		b.n = 0;
		if (tally_tly1_parse(d, len, NULL, &b, NULL) != TALLY_OK)
			micro_fail("TLY1 parse failed");
	}
	snprintf(cas, sizeof(cas), "TLY1, %u event(s) of %u-byte keys (per event)", n, klen);
	micro_report("parse", cas, reps * n, __rdtsc() - c0, 0);
}

static void bench_statsd(uint64_t reps)
{
	static char d[4096];
	static struct tally_event ev[1024];
	static uint8_t arena[4096];
	static uint64_t ctr[TALLY_C_MAX];
	struct tally_evbuf b = {ev, 0, 1024, arena, 0, sizeof(arena)};
	uint32_t len = 0;
	uint64_t c0;

	for (int i = 0; i < 20; i++)
		len += (uint32_t)sprintf(d + len, "metric.%06d:%d|%s|#region:r%d,env:prod,host:h%02d"
					 "|T1700000000%s\n", i * 7919 % 100000, i + 1,
					 i % 2 ? "c" : "ms", i % 4, i % 32, i % 3 ? "|@0.5" : "");
	c0 = __rdtsc();
	for (uint64_t r = 0; r < reps; r++) {
		b.n = 0;
		b.arena_used = 0;
		if (tally_statsd_parse((const uint8_t *)d, len, &b, ctr) != 20)
			micro_fail("StatsD parse failed");
	}
	micro_report("parse", "StatsD, 20 lines of 3 tags, |T, rates (per line)", reps * 20,
	       __rdtsc() - c0, 0);
}

static void bench_hash(uint64_t reps)
{
	const uint8_t key[25] = "tally.event.key.00000042";
	uint64_t c0 = __rdtsc(), acc = 0;

	for (uint64_t r = 0; r < reps; r++)
		acc += tally_key_hash(key + (r & 7), 14);
	micro_report("hash", "XXH3 of a 14-byte key", reps, __rdtsc() - c0, acc & 1);
	c0 = __rdtsc();
	for (uint64_t r = 0; r < reps; r++)
		acc += tally_dedup_hash(acc + r);
	micro_report("hash", "fmix64 of an event id", reps, __rdtsc() - c0, acc & 1);
	c0 = __rdtsc();
	for (uint64_t r = 0; r < reps; r++)
		acc += tally_utf8_valid(key + (r & 7), 14);
	micro_report("utf8", "14-byte ASCII key", reps, __rdtsc() - c0, acc & 1);
	c0 = __rdtsc();
	for (uint64_t r = 0; r < reps; r++)
		acc += tally_utf8_valid((const uint8_t *)"r\xc3\xa9gion.caf\xc3\xa9.\xe2\x82\xac.total", 24);
	micro_report("utf8", "24-byte key with 2- and 3-byte characters", reps, __rdtsc() - c0, acc & 1);
}

/* ---- dedup ---- */

/*
 * ops inserts of ids first + (i % span): new ids when span >= ops, else
 * duplicates. Generations move on as in tallyd (every capacity / GENS inserts),
 * so the table stays at the horizon's load.
 */
static void dedup_run(struct tally_dedup *d, uint64_t *inserted, uint64_t first,
		      uint64_t span, uint64_t ops, bool ahead, int expect, const char *cas)
{
	struct tally_dedup_view v = tally_dedup_view(d);
	uint64_t c0 = __rdtsc(), bad = 0;

	for (uint64_t i = 0; i < ops; i++) {
		if ((i & 1023) == 0 && expect == TALLY_DEDUP_NEW) {
			tally_dedup_tick(d, 1, *inserted, 0);
			v = tally_dedup_view(d);
		}
		if (ahead)
			tally_dedup_prefetch(d, tally_dedup_ref(d, first + (i + AHEAD) % span));
		bad += (int)tally_dedup_insert(d, tally_dedup_ref(d, first + i % span), v) != expect;
		*inserted += expect == TALLY_DEDUP_NEW;
	}
	if (bad)
		micro_fail("dedup gave a wrong answer (or evicted a live id early)");
	micro_report("dedup", cas, ops, __rdtsc() - c0, tally_dedup_bytes(d));
}

/*
 * A table at the load the horizon keeps: capacity ids over GENS + 1
 * generations. Then new ids, and duplicates of the newest ones.
 */
static void bench_dedup(uint64_t cap, uint64_t ops, bool ahead)
{
	struct tally_dedup *d = tally_dedup_create(cap, 3600000);
	uint64_t id = 1, inserted = 0, fill = cap + cap / TALLY_DEDUP_GENS;
	uint64_t recent = ops < cap / 2 ? ops : cap / 2;
	struct tally_dedup_view v;
	char cas[96];

	if (d == NULL)
		micro_fail("cannot allocate the dedup table");
	tally_dedup_set_writers(d, 1);
	for (; inserted < fill; inserted++, id++) {
		if ((inserted & 1023) == 0)
			tally_dedup_tick(d, 1, inserted, 0);
		v = tally_dedup_view(d);
		tally_dedup_insert(d, tally_dedup_ref(d, id), v);
	}
	snprintf(cas, sizeof(cas), "insert new ids, %lluM ids held%s",
		 (unsigned long long)(cap / 1000000), ahead ? ", prefetch 8 ahead" : "");
	dedup_run(d, &inserted, id, ops, ops, ahead, TALLY_DEDUP_NEW, cas);
	snprintf(cas, sizeof(cas), "probe duplicates, %lluM ids held%s",
		 (unsigned long long)(cap / 1000000), ahead ? ", prefetch 8 ahead" : "");
	dedup_run(d, &inserted, id + ops - recent, recent, ops, ahead, TALLY_DEDUP_DUP, cas);
	tally_dedup_destroy(d);
}

/* ---- window table ---- */

struct wkeys {
	uint8_t (*k)[16];
	uint32_t n;
};

static struct wkeys make_keys(uint32_t n)
{
	struct wkeys w = {malloc((size_t)n * 16), n};

	if (w.k == NULL)
		micro_fail("out of memory");
	for (uint32_t i = 0; i < n; i++)
		snprintf((char *)w.k[i], 16, "tally.%08u", i % 100000000u); /* 14 bytes */
	return w;
}

/* Adds to uniformly drawn keys, in batches of 32 as the worker sees them. */
static uint64_t window_adds(struct tally_wtab *t, const struct wkeys *k, uint64_t ops, bool ahead,
			    int *created)
{
	uint64_t h[32], c0 = __rdtsc(), cycles = 0;
	uint32_t idx[32];

	*created = 0;
	for (uint64_t i = 0; i < ops; i += 32) {
		for (int j = 0; j < 32; j++) {
			idx[j] = (uint32_t)(rnd() % k->n);
			h[j] = tally_row_hash(tally_key_hash(k->k[idx[j]], 14), 0);
			if (ahead && j < AHEAD)
				tally_wtab_prefetch(t, h[j]);
		}
		c0 = __rdtsc();
		for (int j = 0; j < 32; j++) {
			if (ahead && j + AHEAD < 32)
				tally_wtab_prefetch(t, h[j + AHEAD]);
			*created += tally_wtab_add(t, h[j], k->k[idx[j]], 14, 0, 1);
		}
		cycles += __rdtsc() - c0;
	}
	return cycles;
}

static void bench_window(uint32_t keys, uint64_t ops, bool ahead)
{
	struct tally_wtab *t = tally_wtab_create(keys + keys / 4 + 1024);
	struct wkeys k = make_keys(keys);
	uint64_t c0, cycles;
	char cas[96];
	int created;

	if (t == NULL)
		micro_fail("cannot allocate the window table");
	c0 = __rdtsc();
	for (uint32_t i = 0; i < keys; i++)
		tally_wtab_add(t, tally_row_hash(tally_key_hash(k.k[i], 14), 0), k.k[i], 14, 0, 1);
	if (!ahead && keys >= 1000000) {
		snprintf(cas, sizeof(cas), "create %u rows (14-byte keys, in key order)", keys);
		micro_report("window", cas, keys, __rdtsc() - c0, tally_wtab_bytes(t));
	}
	cycles = window_adds(t, &k, ops, ahead, &created);
	if (created != 0)
		micro_fail("window: an update created a row");
	snprintf(cas, sizeof(cas), "update, %u keys uniform%s", keys,
		 ahead ? ", batch of 32 prefetched" : "");
	micro_report("window", cas, ops, cycles, tally_wtab_bytes(t));
	tally_wtab_destroy(t);
	free(k.k);
}

/* ---- sink ---- */

static void bench_sink(uint32_t rows)
{
	char path[] = "/tmp/tally-micro.XXXXXX", db[64], err[256];
	struct tally_wtab *t = tally_wtab_create(rows);
	struct wkeys k = make_keys(rows);
	struct tally_sink *s;
	struct tally_batch bt;
	int fd = mkstemp(path);

	if (fd < 0 || t == NULL)
		micro_fail("sink bench: cannot set up");
	close(fd);
	unlink(path);
	snprintf(db, sizeof(db), "%s.db", path);
	for (uint32_t i = 0; i < rows; i++) {
		uint32_t j = (uint32_t)(((uint64_t)i * 2654435761u) % rows); /* arrival order */

		tally_wtab_add(t, tally_row_hash(tally_key_hash(k.k[j], 14), 0), k.k[j], 14, 0, 1);
	}
	s = tally_sink_sqlite_open(db, 256, err, sizeof(err));
	if (s == NULL)
		micro_fail(err);
	tally_batch_init(&bt, "micro", 10000);
	if (tally_batch_add_wtab(&bt, t) != 0)
		micro_fail("sink bench: out of memory");
	for (int b = 1; b <= 2; b++) {
		uint64_t c0 = __rdtsc();

		bt.seq = (uint64_t)b;
		if (s->ops->write(s, &bt) != TALLY_SINK_APPLIED)
			micro_fail(s->err);
		micro_report("sink", b == 1 ? "SQLite batch inserting new rows (per row)"
				      : "SQLite batch adding to existing rows (per row)",
		       rows, __rdtsc() - c0, 0);
	}
	s->ops->close(s);
	tally_batch_free(&bt);
	for (int i = 0; i < 3; i++) {
		char f[96];

		snprintf(f, sizeof(f), "%s%s", db, (const char *[]){"", "-wal", "-shm"}[i]);
		unlink(f);
	}
	tally_wtab_destroy(t);
	free(k.k);
}

int main(int argc, char **argv)
{
	bool quick = false, only_rules = false;
	uint64_t n;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--rules"))
			only_rules = true;
		else if (!strcmp(argv[i], "--json") && i + 1 < argc)
			json = fopen(argv[++i], "w");
		else {
			fprintf(stderr, "usage: tally-micro [--quick] [--rules] [--json FILE]\n");
			return 2;
		}
	}
	calibrate();
	n = quick ? 200000 : 4000000;
	printf("TSC %.3f GHz; cycles are TSC ticks%s\n", tsc_hz / 1e9, quick ? " (quick run)" : "");
	printf("%-8s %-52s %11s %10s %8s %12s\n", "stage", "case", "ops", "cycles/op", "ns/op",
	       "bytes");
	if (only_rules) {
		micro_rules(n);
		return 0;
	}
	bench_frame(n);
	bench_tly1(1, 14, n);
	bench_tly1(32, 14, n / 8);
	bench_statsd(n / 10);
	bench_hash(n);
	for (int a = 0; a < 2; a++) {
		bench_dedup(1000000, n, a);
		if (!quick)
			bench_dedup(50000000, n, a);
	}
	for (int a = 0; a < 2; a++) {
		bench_window(1024, n, a);
		bench_window(quick ? 100000 : 1000000, n, a);
		if (!quick)
			bench_window(10000000, n, a);
	}
	micro_dedup_two_workers(quick ? 8000000 : 50000000, n);
	micro_rules(n);
	bench_sink(quick ? 20000 : 200000);
	if (json) {
		fprintf(json, "\n]\n");
		fclose(json);
	}
	return 0;
}
