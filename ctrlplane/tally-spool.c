/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-spool: look into a spool directory (one endpoint's, e.g.
 * tally-spool/sqlite) while tallyd is stopped: what it holds, and every row of
 * it as TSV in tally-gen's expected-totals format, so an operator can see what
 * will be replayed, and a test can account for a record it corrupts.
 *   tally-spool DIR          one line per batch: seq, rows, events, age
 *   tally-spool DIR --rows [--seq N]
 *                            key, window_start_ms, window_ms, count, sum, min, max
 *                            (of every batch, or of batch N only)
 * Opening takes the spool's lock (so never while tallyd uses it) and reports
 * torn tails and corrupt records as tallyd would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spool.h"

static int print_batch(const struct tally_batch *b, int64_t appended_ms, void *arg)
{
	(void)arg;
	printf("seq %llu appliance %s window_ms %lld rows %u events %llu appended_ms %lld\n",
	       (unsigned long long)b->seq, b->appliance, (long long)b->window_ms, b->nrows,
	       (unsigned long long)tally_batch_events(b), (long long)appended_ms);
	return 0;
}

static int print_rows(const struct tally_batch *b, int64_t appended_ms, void *arg)
{
	const long long *only = arg;

	(void)appended_ms;
	if (*only >= 0 && (unsigned long long)*only != b->seq)
		return 0;
	for (uint32_t i = 0; i < b->nrows; i++) {
		const struct tally_batch_row *r = &b->rows[i];

		printf("%.*s\t%lld\t%lld\t%llu\t%.17g\t%.17g\t%.17g\n", r->key_len,
		       (const char *)tally_batch_key(b, r), (long long)r->win_start,
		       (long long)b->window_ms, (unsigned long long)r->count, r->sum, r->min, r->max);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct tally_spool_stats st;
	struct tally_spool *s;
	char err[512];
	int rows = argc >= 3 && strcmp(argv[2], "--rows") == 0;
	long long only = -1;

	if (argc == 5 && rows && strcmp(argv[3], "--seq") == 0)
		only = atoll(argv[4]);
	if (argc < 2 || (argc == 3 && !rows) || argc == 4 || argc > 5 || (argc == 5 && only < 0) ||
	    argv[1][0] == '-') {
		fprintf(stderr, "usage: tally-spool DIR [--rows [--seq N]]   "
			"(DIR: e.g. tally-spool/sqlite)\n");
		return 2;
	}
	s = tally_spool_open(argv[1], UINT64_MAX / 4, 0, err, sizeof(err));
	if (s == NULL) {
		fprintf(stderr, "tally-spool: %s\n", err);
		return 1;
	}
	tally_spool_stats(s, &st);
	if (rows)
		printf("key\twindow_start_ms\twindow_ms\tcount\tsum\tmin\tmax\n");
	if (tally_spool_walk(s, rows ? print_rows : print_batch, &only) != 0)
		fprintf(stderr, "tally-spool: %s\n", tally_spool_errmsg(s));
	fprintf(stderr, "tally-spool: %llu batches, %llu bytes; corrupt %llu, torn %llu%s%s\n",
		(unsigned long long)st.records, (unsigned long long)st.bytes,
		(unsigned long long)st.corrupt, (unsigned long long)st.torn,
		st.last_err[0] ? "; " : "", st.last_err);
	tally_spool_close(s);
	return 0;
}
