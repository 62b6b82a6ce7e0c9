/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The spool tests' batches: the content of batch seq n is a pure function of
 * n, so the test and the crash helper (a separate process) agree on what a
 * record must decode to without sharing anything but the seq.
 */
#ifndef TALLY_SPOOL_BATCH_H
#define TALLY_SPOOL_BATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"

/* Fill b (set up with tally_batch_init, or zeroed) with batch seq n. */
static inline void spool_test_batch(struct tally_batch *b, uint64_t n)
{
	tally_batch_free(b);
	tally_batch_init(b, "app-test", 1000);
	b->seq = n;
	for (uint64_t i = 0; i < 1 + n % 5; i++) {
		char key[48];
		int len = snprintf(key, sizeof(key), "key.%llu.%llu", (unsigned long long)n,
				   (unsigned long long)i);

		tally_batch_add(b, (const uint8_t *)key, (uint8_t)len, (int64_t)(n * 1000),
				n + i, (double)n * 1.5, -(double)i, (double)n, (double)i);
	}
}

/* Does b hold exactly batch seq n? */
static inline bool spool_test_batch_is(const struct tally_batch *b, uint64_t n)
{
	struct tally_batch want = {0};
	size_t len = tally_batch_encoded_size(b);
	uint8_t *x, *y;
	bool same;

	spool_test_batch(&want, n);
	if (len != tally_batch_encoded_size(&want)) {
		tally_batch_free(&want);
		return false;
	}
	x = malloc(len);
	y = malloc(len);
	tally_batch_encode(b, x);
	tally_batch_encode(&want, y);
	same = memcmp(x, y, len) == 0;
	free(x);
	free(y);
	tally_batch_free(&want);
	return same;
}

#endif
