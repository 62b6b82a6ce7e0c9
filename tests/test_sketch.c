/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The sketches (sketch.h) against exact answers computed here: quantiles of 1M
 * values from uniform, log-normal, bimodal and signed distributions within the
 * stated relative error at every quantile asked; HyperLogLog within 3 standard
 * errors (3 x 0.81%) at 1k, 100k and 10M distinct members (TALLY_HLL_BIG sets
 * the largest count, for slow builds); merges of 2 workers x 10 flushes through
 * the blob form equal one sketch of all values, byte for byte; the collapse
 * keeps the count and the high quantiles; corrupt blobs are refused.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sketch.h"

#define TEST_SEED 17
#include "test_rng.h"

#define N 1000000

static const double qs[] = {0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1};

static double unif(void)
{
	return ((double)(rnd() >> 11) + 0.5) / 9007199254740992.0;
}

static double gauss(void)
{
	return sqrt(-2 * log(unif())) * cos(2 * M_PI * unif());
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static struct tally_sketch *new_sketch(enum tally_sketch_kind k)
{
	struct tally_sketch *s = malloc(sizeof(*s));

	assert_non_null(s);
	tally_sketch_init(s, k);
	return s;
}

/* Every quantile asked within alpha of the exact value of rank floor(q (n - 1)). */
static void check_quantiles(const char *name, double *v, size_t n)
{
	struct tally_sketch *s = new_sketch(TALLY_SK_DDS);
	double worst = 0;

	for (size_t i = 0; i < n; i++)
		tally_dds_add(s, v[i]);
	qsort(v, n, sizeof(*v), cmp_d);
	assert_int_equal(tally_dds_count(s), n);
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		double exact = v[(size_t)floor(qs[i] * (double)(n - 1))];
		double est = tally_dds_quantile(s, qs[i]);
		double err = fabs(est - exact) / fabs(exact);

		if (err > TALLY_DDS_ALPHA * (1 + 1e-9))
			fail_msg("%s q=%g: exact %.17g, sketch %.17g, relative error %g", name,
				 qs[i], exact, est, err);
		worst = err > worst ? err : worst;
	}
	printf("# %s: worst relative error %.4f%% (bound %.2f%%)\n", name, worst * 100,
	       TALLY_DDS_ALPHA * 100);
	free(s);
}

static void test_quantiles(void **state)
{
	double *v = malloc(N * sizeof(*v));

	(void)state;
	assert_non_null(v);
	for (size_t i = 0; i < N; i++)
		v[i] = 1 + 999 * unif(); /* uniform 1..1000 ms */
	check_quantiles("uniform", v, N);
	for (size_t i = 0; i < N; i++)
		v[i] = exp(3 + 1.5 * gauss()); /* log-normal, median ~20 ms, long tail */
	check_quantiles("log-normal", v, N);
	for (size_t i = 0; i < N; i++)
		v[i] = below(10) < 7 ? 5 + gauss() * 0.5 + 3 : 800 + 100 * gauss();
	check_quantiles("bimodal", v, N);
	for (size_t i = 0; i < N; i++)
		v[i] = below(20) == 0 ? 0 : (below(2) ? 1 : -1) * exp(8 * unif() - 2);
	check_quantiles("signed with zeros", v, N);
	free(v);
}

/* Two workers, ten flushes: twenty sketches, each through its blob, folded into
 * one as the sink does; the same bytes as one sketch of every value. */
static void check_merge(enum tally_sketch_kind k, uint64_t seed)
{
	static uint8_t a[TALLY_SKETCH_BLOB_MAX], b[TALLY_SKETCH_BLOB_MAX];
	struct tally_sketch *all = new_sketch(k), *part = new_sketch(k);
	struct tally_sketch *sum = new_sketch(TALLY_SK_NONE);
	size_t la, lb;

	rng = seed;
	for (int flush = 0; flush < 10; flush++)
		for (int worker = 0; worker < 2; worker++) {
			tally_sketch_init(part, k);
			for (int i = 0; i < 50000; i++) {
				double v = exp(4 * gauss());
				uint64_t h = rnd();

				if (k == TALLY_SK_DDS)
					tally_dds_add(part, v), tally_dds_add(all, v);
				else
					tally_hll_add(part, h), tally_hll_add(all, h);
			}
			la = tally_sketch_encode(part, a);
			assert_int_equal(tally_sketch_merge_blob(sum, a, la), 0);
		}
	la = tally_sketch_encode(all, a);
	lb = tally_sketch_encode(sum, b);
	assert_int_equal(la, lb);
	assert_memory_equal(a, b, la);
	free(all), free(part), free(sum);
}

static void test_merge(void **state)
{
	(void)state;
	check_merge(TALLY_SK_DDS, 1);
	check_merge(TALLY_SK_HLL, 2);
}

static void check_hll(uint64_t n)
{
	struct tally_sketch *s = new_sketch(TALLY_SK_HLL);
	double est, err, bound = 3 * 1.04 / sqrt(TALLY_HLL_M);

	/* repeats do not count: every member sent twice */
	for (uint64_t i = 0; i < n; i++) {
		uint64_t h = rnd();

		tally_hll_add(s, h);
		tally_hll_add(s, h);
	}
	est = tally_hll_estimate(s);
	err = fabs(est - (double)n) / (double)n;
	printf("# hll n=%llu: estimate %.0f, error %.3f%% (3 sigma %.2f%%)\n",
	       (unsigned long long)n, est, err * 100, bound * 100);
	if (err > bound)
		fail_msg("hll of %llu distinct: estimate %.1f", (unsigned long long)n, est);
	free(s);
}

static void test_hll(void **state)
{
	const char *big = getenv("TALLY_HLL_BIG");
	struct tally_sketch *s = new_sketch(TALLY_SK_HLL);

	(void)state;
	assert_true(tally_hll_estimate(s) == 0);
	free(s);
	check_hll(1000);
	check_hll(100000);
	check_hll(big != NULL ? strtoull(big, NULL, 10) : 10000000);
}

/* Values over a far wider range than the bins hold: the lowest collapse, the
 * count stays exact and the upper quantiles keep their guarantee. */
static void test_collapse(void **state)
{
	struct tally_sketch *s = new_sketch(TALLY_SK_DDS);
	double *v = malloc(100000 * sizeof(*v));

	(void)state;
	for (int i = 0; i < 100000; i++) {
		v[i] = exp(60 * unif() - 30); /* e^-30 .. e^30: ~3000 bins */
		tally_dds_add(s, v[i]);
	}
	qsort(v, 100000, sizeof(*v), cmp_d);
	assert_int_equal(tally_dds_count(s), 100000);
	assert_true(s->dds.pos.hi - s->dds.pos.lo < TALLY_DDS_BINS);
	for (double q = 0.7; q <= 1; q += 0.01) { /* above e^9.5: the bins kept */
		double exact = v[(size_t)floor(q * 99999)];

		assert_true(fabs(tally_dds_quantile(s, q) - exact) <= TALLY_DDS_ALPHA * 1.0000001 * exact);
	}
	free(v);
	free(s);
}

static void test_bad_blobs(void **state)
{
	static uint8_t blob[TALLY_SKETCH_BLOB_MAX];
	struct tally_sketch *s = new_sketch(TALLY_SK_DDS), *d = new_sketch(TALLY_SK_NONE);
	size_t n;

	(void)state;
	for (int i = 1; i <= 1000; i++)
		tally_dds_add(s, i);
	n = tally_sketch_encode(s, blob);
	assert_int_equal(tally_sketch_decode(d, blob, n), 0);
	assert_int_equal(tally_dds_count(d), 1000);
	for (size_t cut = 0; cut < n; cut++)
		assert_int_equal(tally_sketch_decode(d, blob, cut), -EBADMSG);
	blob[2] ^= 1; /* another alpha */
	assert_int_equal(tally_sketch_decode(d, blob, n), -EBADMSG);
	tally_sketch_init(s, TALLY_SK_HLL);
	tally_hll_add(s, 12345);
	n = tally_sketch_encode(s, blob);
	assert_int_equal(tally_sketch_decode(d, blob, n), 0);
	blob[n - 1] = 99; /* a register beyond 51 */
	assert_int_equal(tally_sketch_decode(d, blob, n), -EBADMSG);
	tally_sketch_init(d, TALLY_SK_DDS);
	assert_int_equal(tally_sketch_merge_blob(d, blob, n), -EINVAL);
	free(s), free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quantiles), cmocka_unit_test(test_merge),
		cmocka_unit_test(test_hll),       cmocka_unit_test(test_collapse),
		cmocka_unit_test(test_bad_blobs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
