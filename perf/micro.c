/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-micro: what each stage costs, in TSC cycles per operation: TLY1 and
 * StatsD parsing, UTF-8 checks, key hashing, dedup insert and probe, window
 * table updates, at table sizes in and far beyond the caches, with and without
 * the prefetch-ahead the worker uses. TSC ticks are reference cycles at the
 * TSC frequency printed in the header, not core cycles under turbo.
 *
 *   tally-micro [--quick] [--json FILE]
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "counters.h"
#include "dedup.h"
#include "parse_statsd.h"
#include "parse_tly1.h"
#include "window.h"

#define AHEAD 8

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

static void report(const char *stage, const char *cas, uint64_t ops, uint64_t cycles, size_t bytes)
{
	double cpo = (double)cycles / (double)ops;

	printf("%-8s %-40s %12llu %10.1f %8.2f %12zu\n", stage, cas, (unsigned long long)ops, cpo,
	       cpo / tsc_hz * 1e9, bytes);
	if (json)
		fprintf(json, "%s{\"stage\":\"%s\",\"case\":\"%s\",\"ops\":%llu,\"cycles_per_op\":%.2f,"
			"\"ns_per_op\":%.3f,\"bytes\":%zu}", first_row ? "[\n" : ",\n", stage, cas,
			(unsigned long long)ops, cpo, cpo / tsc_hz * 1e9, bytes);
	first_row = false;
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
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
	char cas[64];
	uint64_t c0 = __rdtsc();

	for (uint64_t r = 0; r < reps; r++) {
		b.n = 0;
		if (tally_tly1_parse(d, len, NULL, &b, NULL) != TALLY_OK)
			abort();
	}
	snprintf(cas, sizeof(cas), "%u event(s)/datagram, %u-byte keys (per event)", n, klen);
	report("parse", cas, reps * n, __rdtsc() - c0, 0);
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
		len += (uint32_t)sprintf(d + len, "metric.%06d:%d|%s|#region:r%d,env:prod,host:h%02d|T1700000000\n",
					 i * 7919 % 100000, i, i % 2 ? "c" : "ms", i % 4, i % 32);
	c0 = __rdtsc();
	for (uint64_t r = 0; r < reps; r++) {
		b.n = 0;
		b.arena_used = 0;
		if (tally_statsd_parse((const uint8_t *)d, len, &b, ctr) != 20)
			abort();
	}
	report("parse", "StatsD, 20 lines with 3 tags (per line)", reps * 20, __rdtsc() - c0, 0);
}

static void bench_hash(uint64_t reps)
{
	const uint8_t key[25] = "tally.event.key.00000042";
	uint64_t c0 = __rdtsc(), acc = 0;

	for (uint64_t r = 0; r < reps; r++)
		acc += tally_key_hash(key, 25 - (uint32_t)(r & 1));
	report("hash", "XXH3 of a 24-25 byte key", reps, __rdtsc() - c0, acc & 1);
	c0 = __rdtsc();
	for (uint64_t r = 0; r < reps; r++)
		acc += tally_utf8_valid(key, 25);
	report("utf8", "25-byte ASCII key", reps, __rdtsc() - c0, acc & 1);
}

/* Fresh ids into a table of `cap`; with AHEAD-deep prefetch or without. */
static void bench_dedup(uint64_t cap, uint64_t ops, bool ahead)
{
	struct tally_dedup *d = tally_dedup_create(cap, 3600000);
	uint64_t c0, base = rnd();
	char cas[80];

	if (d == NULL)
		abort();
	/* warm: fill to the load the horizon keeps (9/16) */
	for (uint64_t i = 0; i < cap; i++)
		tally_dedup_insert(d, tally_dedup_ref(d, base - i - 1), tally_dedup_view(d));
	c0 = __rdtsc();
	for (uint64_t i = 0; i < ops; i++) {
		if (ahead)
			tally_dedup_prefetch(d, tally_dedup_ref(d, base + i + AHEAD));
		tally_dedup_insert(d, tally_dedup_ref(d, base + i), tally_dedup_view(d));
	}
	snprintf(cas, sizeof(cas), "insert new ids, capacity %lluM%s",
		 (unsigned long long)(cap >> 20), ahead ? ", prefetch 8 ahead" : "");
	report("dedup", cas, ops, __rdtsc() - c0, tally_dedup_bytes(d));
	c0 = __rdtsc();
	for (uint64_t i = 0; i < ops; i++) {
		if (ahead)
			tally_dedup_prefetch(d, tally_dedup_ref(d, base + i + AHEAD));
		if (tally_dedup_insert(d, tally_dedup_ref(d, base + i), tally_dedup_view(d)) != TALLY_DEDUP_DUP)
			abort();
	}
	snprintf(cas, sizeof(cas), "probe duplicates, capacity %lluM%s",
		 (unsigned long long)(cap >> 20), ahead ? ", prefetch 8 ahead" : "");
	report("dedup", cas, ops, __rdtsc() - c0, tally_dedup_bytes(d));
	tally_dedup_destroy(d);
}

/* Uniform keys over `keys` distinct ones; the worker's two passes when ahead. */
static void bench_window(uint32_t keys, uint64_t ops, bool ahead)
{
	struct tally_wtab *t = tally_wtab_create(keys + 1024);
	uint8_t (*kt)[16] = malloc((size_t)keys * 16);
	uint64_t *h = malloc(sizeof(uint64_t) * 32), c0;
	uint32_t idx[32];
	char cas[80];

	for (uint32_t k = 0; k < keys; k++)
		snprintf((char *)kt[k], 16, "k.%012u", k);
	for (uint32_t k = 0; k < keys; k++)
		tally_wtab_add(t, tally_row_hash(tally_key_hash(kt[k], 14), 0), kt[k], 14, 0, 1);
	c0 = __rdtsc();
	for (uint64_t i = 0; i < ops; i += 32) {
		for (int j = 0; j < 32; j++) {
			idx[j] = (uint32_t)(rnd() % keys);
			h[j] = tally_row_hash(tally_key_hash(kt[idx[j]], 14), 0);
			if (ahead)
				tally_wtab_prefetch(t, h[j]);
		}
		for (int j = 0; j < 32; j++) {
			tally_wtab_add(t, h[j], kt[idx[j]], 14, 0, 1);
		}
	}
	snprintf(cas, sizeof(cas), "add, %u keys uniform%s", keys, ahead ? ", batch of 32 prefetched" : "");
	report("window", cas, ops, __rdtsc() - c0, tally_wtab_bytes(t));
	tally_wtab_destroy(t);
	free(kt);
	free(h);
}

int main(int argc, char **argv)
{
	bool quick = false;
	uint64_t n;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--json") && i + 1 < argc)
			json = fopen(argv[++i], "w");
		else {
			fprintf(stderr, "usage: tally-micro [--quick] [--json FILE]\n");
			return 2;
		}
	}
	calibrate();
	n = quick ? 200000 : 5000000;
	printf("TSC %.3f GHz; cycles are TSC ticks%s\n", tsc_hz / 1e9, quick ? " (quick run)" : "");
	printf("%-8s %-40s %12s %10s %8s %12s\n", "stage", "case", "ops", "cycles/op", "ns/op", "bytes");
	bench_tly1(1, 25, n);
	bench_tly1(32, 14, n / 8);
	bench_statsd(n / 10);
	bench_hash(n);
	for (int a = 0; a < 2; a++) {
		bench_dedup(1 << 20, n, a);
		if (!quick)
			bench_dedup(64 << 20, n, a);
	}
	for (int a = 0; a < 2; a++) {
		bench_window(1024, n, a);
		bench_window(quick ? 100000 : 1 << 20, n, a);
		if (!quick)
			bench_window(10000000, n, a);
	}
	if (json) {
		fprintf(json, "\n]\n");
		fclose(json);
	}
	return 0;
}
