/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helper of test_spool's crash test: appends batches to a spool and syncs each
 * one, printing its seq only once tally_spool_sync() said it is durable. The
 * test SIGKILLs it at a random moment and checks that every seq printed is in
 * the spool. Stops by itself after max records or 30 s, so it never lingers.
 *
 *   spool_crash DIR MAX_RECORDS
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "spool.h"
#include "spool_batch.h"

int main(int argc, char **argv)
{
	struct tally_batch b = {0};
	struct tally_spool *s;
	char err[256];
	long max;
	time_t end = time(NULL) + 30;

	if (argc != 3) {
		fprintf(stderr, "usage: spool_crash DIR MAX_RECORDS\n");
		return 2;
	}
	max = atol(argv[2]);
	s = tally_spool_open(argv[1], 1ULL << 30, 0, err, sizeof(err));
	if (s == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	tally_spool_set_segment_bytes(s, 8192); /* roll often */
	for (long i = 0; i < max && time(NULL) < end; i++) {
		uint64_t seq = 0;

		if (tally_spool_seq_reserve(s, &seq) != 0)
			return 1;
		spool_test_batch(&b, seq);
		if (tally_spool_append(s, &b) != 0 || tally_spool_sync(s) != 0) {
			fprintf(stderr, "%s\n", tally_spool_errmsg(s));
			return 1;
		}
		printf("%" PRIu64 "\n", seq);
		fflush(stdout);
	}
	tally_batch_free(&b);
	tally_spool_close(s);
	return 0;
}
