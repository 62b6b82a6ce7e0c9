/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-dedup-sim: the dedup table's placement policies at its capacity
 * horizon, without the table's code: how many random memory lines a new event
 * id costs, and how many live ids a policy must evict (each eviction is a
 * duplicate that may later count twice). It is the measurement behind the
 * "one memory line per new event id" design note in perf/RESULTS.md.
 *
 * Model: buckets of W slots, a bucket's memory M bytes (its 64-byte line, plus
 * for tags its ids' lines elsewhere); B bytes per id of capacity, so C ids
 * get C * B / M buckets; a generation ends every C/8 inserts and ids of the
 * last 9 generations are live (as dataplane/dedup.c at full rate). No
 * cuckoo step: the evictions counted are the ones make_room must then save.
 *   two-choice   (the table until 2026-12): both buckets read for every id; the
 *                emptier takes it
 *   a-first      A takes the id while it has room, else B; A keeps an overflow
 *                mark (the generation of its last overflow) and a lookup reads B
 *                only while that mark is live. W-1 slots hold ids, one the mark.
 *   a-first-8    the same with all 8 slots for ids (the mark in spare bits)
 *   a-first-10   the same with 6-byte slots, 10 a line and a 4-byte mark: only
 *                40 fingerprint bits, so the table needs 2^24 buckets (1 GiB)
 *                for a (bucket, fingerprint) pair to name one id
 *   tags-30      the "fingerprinted slots, the full id checked only on
 *                a fingerprint hit": 30 two-byte tags and the mark in the line,
 *                each tag's 6 remaining id bytes in the bucket's id lines
 *                elsewhere, written when the tag is (a second line per new id)
 *   tags-15      the layout dataplane/dedup.c now has: 15 four-byte tag words
 *                (tag, role, generation) and the mark in the line, each slot's
 *                4-byte rest in the line beside it
 *
 * "lines touched" counts every line a new id reads or writes: what the memory
 * system moves, since a store to a line not cached reads it first.
 * Each policy is run at 16 (today's), 24 and 32 bytes per id.
 *
 *   tally-dedup-sim [--buckets N] [--rounds R] [--seed S]
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GENS 8
#define MAXW 32

struct sim {
	uint64_t nb, cap, rng;
	uint16_t *slot; /* generation of the id in it; 0 = empty */
	uint16_t *mark; /* a-first: generation of the bucket's last overflow */
	unsigned ways;
};

struct result {
	uint64_t lookups, two_lines, evictions;
};

struct policy {
	const char *name;
	unsigned ways, bucket_bytes; /* bucket_bytes: its line and its id lines elsewhere */
	bool a_first, id_elsewhere;
};

static uint64_t xr(struct sim *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return s->rng;
}

static bool live(uint16_t g, uint16_t cur) { return g != 0 && (uint16_t)(cur - g) <= GENS; }

static int free_slot(const struct sim *s, uint64_t b, uint16_t cur, unsigned *nfree)
{
	int first = -1;

	*nfree = 0;
	for (unsigned k = 0; k < s->ways; k++)
		if (!live(s->slot[b * MAXW + k], cur)) {
			first = first < 0 ? (int)k : first;
			(*nfree)++;
		}
	return first;
}

/* The oldest live slot of buckets a and b takes the id (an eviction). */
static void evict(struct sim *s, uint64_t a, uint64_t b, uint16_t cur)
{
	uint64_t at = a * MAXW;

	for (unsigned k = 0; k < s->ways; k++) {
		if ((uint16_t)(cur - s->slot[a * MAXW + k]) > (uint16_t)(cur - s->slot[at]))
			at = a * MAXW + k;
		if ((uint16_t)(cur - s->slot[b * MAXW + k]) > (uint16_t)(cur - s->slot[at]))
			at = b * MAXW + k;
	}
	s->slot[at] = cur;
}

static void insert_two_choice(struct sim *s, uint64_t a, uint64_t b, uint16_t cur,
			      struct result *r)
{
	unsigned fa, fb;
	int sa = free_slot(s, a, cur, &fa), sb = free_slot(s, b, cur, &fb);

	r->two_lines++;
	if (sa < 0 && sb < 0) {
		r->evictions++;
		evict(s, a, b, cur);
	} else if (fb > fa) {
		s->slot[b * MAXW + (unsigned)sb] = cur;
	} else {
		s->slot[a * MAXW + (unsigned)sa] = cur;
	}
}

static void insert_a_first(struct sim *s, uint64_t a, uint64_t b, uint16_t cur,
			   struct result *r)
{
	unsigned fa, fb;
	int sa = free_slot(s, a, cur, &fa), sb;

	r->two_lines += sa < 0 || live(s->mark[a], cur);
	if (sa >= 0) {
		s->slot[a * MAXW + (unsigned)sa] = cur;
		return;
	}
	s->mark[a] = cur;
	sb = free_slot(s, b, cur, &fb);
	if (sb >= 0) {
		s->slot[b * MAXW + (unsigned)sb] = cur;
		return;
	}
	r->evictions++;
	evict(s, a, b, cur);
}

/* bpi: bytes of table per id of capacity */
static struct result run(uint64_t nb, const struct policy *p, unsigned rounds, uint64_t seed,
			 unsigned bpi)
{
	struct sim s = {nb, nb * p->bucket_bytes / bpi, seed | 1, calloc(nb * MAXW, 2),
			calloc(nb, 2), p->ways};
	bool a_first = p->a_first;
	struct result r = {0};
	uint16_t gen = 1;

	if (s.slot == NULL || s.mark == NULL) {
		fprintf(stderr, "tally-dedup-sim: out of memory\n");
		exit(1);
	}
	/* warm up for half the rounds, measure the rest (rounds: capacities inserted) */
	for (uint64_t i = 0; i < s.cap * rounds; i++) {
		uint64_t a = xr(&s) % nb, b = (a + 1 + xr(&s) % (nb - 1)) % nb;
		struct result *into = i >= s.cap * rounds / 2 ? &r : &(struct result){0};

		if (i % (s.cap / GENS) == 0)
			gen = gen == UINT16_MAX ? 1 : (uint16_t)(gen + 1);
		into->lookups++;
		(a_first ? insert_a_first : insert_two_choice)(&s, a, b, gen, into);
	}
	free(s.slot);
	free(s.mark);
	return r;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {{"buckets", 1, 0, 'b'}, {"rounds", 1, 0, 'r'},
					   {"seed", 1, 0, 's'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
	uint64_t nb = 1 << 18, seed = 88172645463325252ULL;
	unsigned rounds = 40;
	int c;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 'b') nb = strtoull(optarg, NULL, 0);
		else if (c == 'r') rounds = (unsigned)strtoul(optarg, NULL, 0);
		else if (c == 's') seed = strtoull(optarg, NULL, 0);
		else {
			fprintf(c == 'h' ? stdout : stderr, "usage: tally-dedup-sim [--buckets N] "
				"[--rounds R] [--seed S]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (nb < 2 || rounds < 2) {
		fprintf(stderr, "tally-dedup-sim: --buckets >= 2, --rounds >= 2\n");
		return 2;
	}
	printf("policy        bytes/id   lines read/new id   lines touched/new id"
	       "   evictions per 1M inserts\n");
	static const struct policy p[] = {
		{"two-choice", 8, 64, false, false}, {"a-first", 7, 64, true, false},
		{"a-first-8", 8, 64, true, false},   {"a-first-10", 10, 64, true, false},
		{"tags-30", 30, 64 + 30 * 6, true, true}, {"tags-15", 15, 128, true, true}};
	for (unsigned bpi = 16; bpi <= 32; bpi += 8)
	for (unsigned i = 0; i < sizeof(p) / sizeof(p[0]); i++) {
		struct result r = run(nb, &p[i], rounds, seed, bpi);
		double read = 1.0 + (double)r.two_lines / (double)r.lookups;

		printf("%-13s %8u %19.3f %22.3f   %12.1f\n", p[i].name, bpi, read,
		       read + p[i].id_elsewhere, 1e6 * (double)r.evictions / (double)r.lookups);
	}
	return 0;
}
