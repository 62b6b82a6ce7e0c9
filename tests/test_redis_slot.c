/* SPDX-License-Identifier: BSD-3-Clause */
/* Redis sinks without a server: CRC16 and slots (Redis's documented vector and
 * keys checked against CLUSTER KEYSLOT), hash tags, per-slot marker tags, key
 * names, and the cut of a batch into (slot, chunk) calls a retry repeats. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis_common.h"

static void test_crc16(void **st)
{
	(void)st;
	assert_int_equal(tally_redis_crc16("123456789", 9), 0x31C3);
	/* redis-cli CLUSTER KEYSLOT (checked on a Redis 7.0 cluster) */
	assert_int_equal(tally_redis_keyslot("foo", 3), 12182);
	assert_int_equal(tally_redis_keyslot("hello", 5), 866);
	assert_int_equal(tally_redis_keyslot("tally:seq:tally", 15), 10730);
	assert_int_equal(tally_redis_keyslot("{user1000}.following", 20), 3443);
}

static void test_hash_tags(void **st)
{
	(void)st;
	/* the first {...} with something inside decides; {} and an unclosed { do not */
	assert_int_equal(tally_redis_keyslot("{user1000}.following", 20),
			 tally_redis_keyslot("user1000", 8));
	assert_int_equal(tally_redis_keyslot("a{b}{c}", 7), tally_redis_keyslot("b", 1));
	assert_int_equal(tally_redis_keyslot("a{}{c}", 6), tally_redis_crc16("a{}{c}", 6) % 16384);
	assert_int_equal(tally_redis_keyslot("a{bc", 4), tally_redis_crc16("a{bc", 4) % 16384);
}

static void test_slot_tags(void **st)
{
	char (*tags)[8] = calloc(TALLY_REDIS_SLOTS, 8);
	char m[200];

	(void)st;
	assert_int_equal(tally_redis_slot_tags(tags), 0);
	for (unsigned s = 0; s < TALLY_REDIS_SLOTS; s++) {
		size_t n = tally_redis_marker_key(m, sizeof(m), "tally:", "app", 42, (int)s, 3, tags[s]);

		assert_int_equal(tally_redis_keyslot(m, n), s);
	}
	assert_int_equal(strncmp(m, "tally:b:app:42:16383:3:{", 24), 0);
	free(tags);
}

static void test_key_names(void **st)
{
	char k[100];
	size_t n;

	(void)st;
	n = tally_redis_row_key(k, sizeof(k), "tally:", 10000, 1700000000000LL,
				(const uint8_t *)"a:b|c", 5);
	assert_int_equal(n, strlen("tally:c:10000:1700000000000:a:b|c"));
	assert_memory_equal(k, "tally:c:10000:1700000000000:a:b|c", n);
	n = tally_redis_marker_key(k, sizeof(k), "tally:", "app", 7, -1, 2, NULL);
	assert_string_equal(k, "tally:b:app:7:2");
	n = tally_redis_seq_key(k, sizeof(k), "p:", "app");
	assert_string_equal(k, "p:seq:app");
}

static void test_cut(void **st)
{
	struct tally_redis_call c[16];
	int slots[7] = {5, 5, 5, 9, 9, 12, 12};
	long n;

	(void)st;
	/* standalone: 2500 rows -> chunks 0, 1, 2 of 1000, 1000, 500 */
	n = tally_redis_cut(NULL, 2500, 1000, c, 16);
	assert_int_equal(n, 3);
	assert_int_equal(c[2].first, 2000);
	assert_int_equal(c[2].n, 500);
	assert_int_equal(c[2].chunk, 2);
	assert_int_equal(c[2].slot, -1);
	/* cluster: chunk numbers restart per slot, so a marker names the same rows on a retry */
	n = tally_redis_cut(slots, 7, 2, c, 16);
	assert_int_equal(n, 4);
	assert_int_equal(c[0].slot, 5);
	assert_int_equal(c[0].n, 2);
	assert_int_equal(c[1].slot, 5);
	assert_int_equal(c[1].chunk, 1);
	assert_int_equal(c[1].n, 1);
	assert_int_equal(c[2].slot, 9);
	assert_int_equal(c[2].chunk, 0);
	assert_int_equal(c[3].first, 5);
	/* an empty batch is one empty call: its marker still records the batch */
	assert_int_equal(tally_redis_cut(NULL, 0, 1000, c, 16), 1);
	assert_int_equal(c[0].n, 0);
	assert_int_equal(tally_redis_cut(slots, 7, 1, c, 3), -ENOSPC);
}

static void test_errors(void **st)
{
	(void)st;
	assert_int_equal(tally_redis_reply_errno("WRONGPASS invalid username-password pair"), -EACCES);
	assert_int_equal(tally_redis_reply_errno("NOAUTH Authentication required."), -EACCES);
	assert_int_equal(tally_redis_reply_errno("OOM command not allowed"), -ENOSPC);
	assert_int_equal(tally_redis_reply_errno("CLUSTERDOWN The cluster is down"), -EAGAIN);
	assert_int_equal(tally_redis_reply_errno("WRONGTYPE Operation against a key"), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc16),      cmocka_unit_test(test_hash_tags),
		cmocka_unit_test(test_slot_tags),  cmocka_unit_test(test_key_names),
		cmocka_unit_test(test_cut),        cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
