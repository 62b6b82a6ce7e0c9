/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Dedup across restarts (dataplane/dgset.h, ctrlplane/committed.c): the
 * committed-datagram set, a batch's datagram list through the spool form and a
 * sink, and the rule that this appliance's datagram counts as committed only
 * when every lane holds its batch.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "batch.h"
#include "committed.h"
#include "dgset.h"
#include "sink.h"
#include "sink_writer.h"

static void test_dgset(void **st)
{
	struct tally_dgset *s = tally_dgset_create(1000);

	(void)st;
	assert_non_null(s);
	for (uint64_t i = 1; i <= 1000; i++)
		assert_true(tally_dgset_add(s, i % 7 + 1, i));
	assert_true(tally_dgset_add(s, 0, 5)); /* sender 0: never valid, not kept */
	assert_int_equal(s->n, 1000);
	for (uint64_t i = 1; i <= 1000; i++) {
		assert_true(tally_dgset_has(s, i % 7 + 1, i));
		assert_false(tally_dgset_has(s, i % 7 + 1, i + 100000));
	}
	tally_dgset_free(s);
}

static void make(struct tally_batch *b, uint64_t seq, unsigned ndg)
{
	tally_batch_init(b, "app", 10000);
	b->seq = seq;
	assert_int_equal(tally_batch_add(b, (const uint8_t *)"k", 1, 0, 3, 3, 1, 1, 1), 0);
	b->ndgrams = 0;
	for (unsigned i = 0; i < ndg; i++) {
		b->dgrams = realloc(b->dgrams, sizeof(*b->dgrams) * (i + 1));
		b->dgrams[b->ndgrams++] = (struct tally_dgid){42, seq * 100 + i};
		b->dgrams_cap = b->ndgrams;
	}
}

/* The spool's form keeps the list; a damaged list is an error, not a guess. */
static void test_batch_round_trip(void **st)
{
	struct tally_batch b, d;
	size_t n;
	uint8_t *buf;

	(void)st;
	make(&b, 7, 5);
	n = tally_batch_encoded_size(&b);
	buf = malloc(n + 1);
	assert_int_equal(tally_batch_encode(&b, buf), n);
	tally_batch_init(&d, "x", 1);
	assert_int_equal(tally_batch_decode(&d, buf, n), 0);
	assert_int_equal(d.ndgrams, 5);
	assert_int_equal(d.dgrams[4].seq, 704);
	assert_int_equal(d.dgrams[4].sender, 42);
	assert_int_equal(tally_batch_decode(&d, buf, n - 1), -EBADMSG);
	buf[n - 5 * 16 - 8] = 'X'; /* the list's magic */
	assert_int_equal(tally_batch_decode(&d, buf, n), -EBADMSG);
	tally_batch_free(&b);
	tally_batch_free(&d);
	free(buf);
}

static char dir[64];

static struct tally_sink *open_db(void *arg, char *err, size_t errlen)
{
	return tally_sink_sqlite_open(arg, 16, err, errlen);
}

/* Two lanes (shards): a datagram of this appliance counts only if both hold
 * its batch; another appliance's counts from any lane. */
static void test_lanes_intersect(void **st)
{
	struct tally_writer_opts o = {dir, 1 << 20, 0, 3, 1, 5, 20, 0};
	static struct tally_writer w;
	struct tally_dgset *set;
	struct tally_batch b;
	char err[256], db0[96], db1[96];

	(void)st;
	snprintf(dir, sizeof(dir), "/tmp/tally-test-committed-%d", getpid());
	snprintf(db0, sizeof(db0), "%s-0.db", dir);
	snprintf(db1, sizeof(db1), "%s-1.db", dir);
	unlink(db0), unlink(db1);
	tally_writer_init(&w, &o);
	assert_int_equal(tally_writer_add_lane(&w, "s0", open_db, db0, err, sizeof(err)), 0);
	assert_int_equal(tally_writer_add_lane(&w, "s1", open_db, db1, err, sizeof(err)), 0);
	for (unsigned i = 0; i < 2; i++)
		assert_non_null(w.lanes[i].sink = open_db(i ? db1 : db0, err, sizeof(err)));
	make(&b, 1, 2); /* batch 1 in both lanes */
	b.now_ms = 1000;
	assert_int_equal(w.lanes[0].sink->ops->write(w.lanes[0].sink, &b), TALLY_SINK_APPLIED);
	assert_int_equal(w.lanes[1].sink->ops->write(w.lanes[1].sink, &b), TALLY_SINK_APPLIED);
	tally_batch_free(&b);
	make(&b, 2, 2); /* batch 2 only in lane 0: a crash before lane 1 took it */
	b.now_ms = 1000;
	assert_int_equal(w.lanes[0].sink->ops->write(w.lanes[0].sink, &b), TALLY_SINK_APPLIED);
	tally_batch_free(&b);
	make(&b, 3, 1); /* another appliance's, in lane 1 only */
	snprintf(b.appliance, sizeof(b.appliance), "other");
	b.now_ms = 1000;
	assert_int_equal(w.lanes[1].sink->ops->write(w.lanes[1].sink, &b), TALLY_SINK_APPLIED);
	tally_batch_free(&b);

	set = NULL;
	assert_int_equal(tally_committed_load(w.lanes, 2, "app", false, 1, &set, err, sizeof(err)),
			 0);
	assert_non_null(set);
	assert_int_equal(set->n, 2);
	assert_true(tally_dgset_has(set, 42, 100) && tally_dgset_has(set, 42, 101));
	assert_false(tally_dgset_has(set, 42, 200));
	tally_dgset_free(set);
	set = NULL;
	assert_int_equal(tally_committed_load(w.lanes, 2, "app", true, 1, &set, err, sizeof(err)),
			 0);
	assert_int_equal(set->n, 1);
	assert_true(tally_dgset_has(set, 42, 300));
	tally_dgset_free(set);
	/* since_ms after every commit: nothing */
	set = NULL;
	assert_int_equal(tally_committed_load(w.lanes, 2, "app", false, 2000, &set, err,
					      sizeof(err)), 0);
	assert_null(set);
	for (unsigned i = 0; i < 2; i++)
		w.lanes[i].sink->ops->close(w.lanes[i].sink), w.lanes[i].sink = NULL;
	unlink(db0), unlink(db1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dgset),
		cmocka_unit_test(test_batch_round_trip),
		cmocka_unit_test(test_lanes_intersect),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
