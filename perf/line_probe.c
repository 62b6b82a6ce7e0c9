/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-line-probe: what a new event id's memory accesses cost on this
 * machine, for the dedup designs of perf/RESULTS.md ("Dedup: one memory line
 * per new event id?"), without the table's code. Each op is one new id: its
 * line(s) prefetched 8 ops ahead (--ahead), as the worker does, then read (the 8 slots
 * compared) and one slot written.
 *
 *   two     two random lines read, one written: today's two-choice table
 *   one     one random line read and written: the floor
 *   one+st  one line, plus a plain 4-byte store to a random line elsewhere
 *           (tags in the line, the id's rest elsewhere): the store reads its
 *           line first (read for ownership)
 *   one+nt  the same store non-temporal (movnti): no read for ownership
 *
 * The patterns run in turns, round after round, on one table and the same
 * random ids, so a slow spell of the VM moves all of them: compare the
 * per-round ratios to "two", whose medians are printed.
 *
 *   tally-line-probe [--mb M] [--ops N] [--rounds R] [--ahead K]
 */
#include <getopt.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <x86intrin.h>

#define MAX_AHEAD 64
#define NPAT 4

static const char *const pat_name[NPAT] = {"two", "one", "one+st", "one+nt"};

struct probe {
	uint64_t *tab;  /* lines of 8 slots */
	uint32_t *rest; /* the ids' other bytes, for one+st and one+nt */
	uint64_t lines, rest_n;
	unsigned ahead; /* ops whose lines are in flight */
};

static inline uint64_t xr(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* An op's places: two lines and a word elsewhere, all from one draw. */
struct op {
	uint64_t a, b, c;
};

static inline struct op draw(const struct probe *p, uint64_t *s)
{
	uint64_t x = xr(s);

	return (struct op){(x & 0xffffffff) % p->lines, (x >> 32) % p->lines,
			   (x * 0x9e3779b97f4a7c15ULL >> 20) % p->rest_n};
}

/* The 8 slots' scan the worker does, reduced to a value the compiler must keep. */
static inline uint64_t scan(const uint64_t *line, uint64_t id)
{
	uint64_t hit = 0;

	for (unsigned k = 0; k < 8; k++)
		hit |= (uint64_t)(line[k] == id) << k;
	return hit;
}

static uint64_t run(struct probe *p, unsigned pat, uint64_t ops, uint64_t seed, uint64_t *sink)
{
	struct op q[MAX_AHEAD];
	uint64_t s = seed, t0, acc = 0;

	for (unsigned i = 0; i < p->ahead; i++) {
		q[i] = draw(p, &s);
		_mm_prefetch((const char *)&p->tab[q[i].a * 8], _MM_HINT_T0);
		if (pat == 0)
			_mm_prefetch((const char *)&p->tab[q[i].b * 8], _MM_HINT_T0);
	}
	t0 = __rdtsc();
	for (uint64_t i = 0; i < ops; i++) {
		struct op o = q[i % p->ahead], n = draw(p, &s);
		uint64_t *la = &p->tab[o.a * 8], id = o.a ^ o.b ^ i;

		q[i % p->ahead] = n;
		_mm_prefetch((const char *)&p->tab[n.a * 8], _MM_HINT_T0);
		if (pat == 0)
			_mm_prefetch((const char *)&p->tab[n.b * 8], _MM_HINT_T0);
		acc += scan(la, id);
		if (pat == 0)
			acc += scan(&p->tab[o.b * 8], id);
		la[i & 7] = id;
		if (pat == 2)
			p->rest[o.c] = (uint32_t)id;
		else if (pat == 3)
			_mm_stream_si32((int *)&p->rest[o.c], (int)(uint32_t)id);
	}
	_mm_sfence();
	*sink += acc;
	return __rdtsc() - t0;
}

static void *table(size_t bytes)
{
	void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		return NULL;
	madvise(m, bytes, MADV_HUGEPAGE); /* as tallyd's tables */
	memset(m, 0, bytes);                 /* faulted in before any timing */
	return m;
}

static int cmp(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return (a > b) - (a < b);
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {{"mb", 1, 0, 'm'}, {"ops", 1, 0, 'n'},
					   {"rounds", 1, 0, 'r'}, {"ahead", 1, 0, 'a'},
					   {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
	uint64_t mb = 1024, ops = 4000000, sink = 0;
	unsigned rounds = 9, ahead = 8;
	int c;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 'm') mb = strtoull(optarg, NULL, 0);
		else if (c == 'n') ops = strtoull(optarg, NULL, 0);
		else if (c == 'r') rounds = (unsigned)strtoul(optarg, NULL, 0);
		else if (c == 'a') ahead = (unsigned)strtoul(optarg, NULL, 0);
		else {
			fprintf(c == 'h' ? stdout : stderr,
				"usage: tally-line-probe [--mb M] [--ops N] [--rounds R] [--ahead K]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (mb < 64 || ops < 1000 || rounds < 1 || rounds > 1000 || ahead < 1 || ahead > MAX_AHEAD) {
		fprintf(stderr, "tally-line-probe: --mb >= 64, --ops >= 1000, --rounds 1..1000, "
			"--ahead 1..%d\n", MAX_AHEAD);
		return 2;
	}
	struct probe p = {table(mb << 20), table(mb << 19), (mb << 20) / 64, (mb << 19) / 4, ahead};
	double cyc[NPAT][1000], ratio[NPAT][1000];

	if (p.tab == NULL || p.rest == NULL) {
		fprintf(stderr, "tally-line-probe: cannot map %llu MiB\n", (unsigned long long)mb * 3 / 2);
		return 1;
	}
	for (unsigned r = 0; r < rounds; r++) {
		for (unsigned k = 0; k < NPAT; k++)
			cyc[k][r] = (double)run(&p, k, ops, 0x9e3779b97f4a7c15ULL + r, &sink) / (double)ops;
		for (unsigned k = 0; k < NPAT; k++)
			ratio[k][r] = cyc[k][r] / cyc[0][r];
		printf("round %u", r);
		for (unsigned k = 0; k < NPAT; k++)
			printf(" %s %.1f", pat_name[k], cyc[k][r]);
		printf("\n");
	}
	printf("table_mb %llu rest_mb %llu ops %llu rounds %u ahead %u\n", (unsigned long long)mb,
	       (unsigned long long)mb / 2, (unsigned long long)ops, rounds, ahead);
	for (unsigned k = 0; k < NPAT; k++) {
		double r = median(ratio[k], rounds);

		printf("%-7s cycles_per_op %.1f ratio_to_two %.3f\n", pat_name[k],
		       median(cyc[k], rounds), r);
	}
	return sink == 42; /* keeps the scans */
}
