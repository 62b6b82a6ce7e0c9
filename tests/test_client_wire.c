/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libtally's TLY1 encoder, round-tripped through the dataplane's own parser
 * (tally_tly1_parse): every field of every event comes back as encoded, signed
 * datagrams verify under the right key and fail under another, a datagram
 * never grows past its capacity or 1024 events, keys TLY1 would reject are
 * refused before they can spoil a datagram, and TLA1 acks decode.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "counters.h"
#include "parse_tly1.h"
#include "tly1_enc.h"

static struct tally_event evs[TALLY_TLY1_MAX_COUNT];
static struct tally_evbuf out = {.ev = evs, .cap = TALLY_TLY1_MAX_COUNT};
static uint8_t buf[65536];

static int parse(uint32_t len, const struct tally_mac_keys *keys, struct tally_tly1_hdr *h)
{
	tally_evbuf_clear(&out);
	return tally_tly1_parse(buf, len, keys, &out, h);
}

static void test_round_trip(void **state)
{
	(void)state;
	struct tally_cl_dgram d;
	const char *keys[] = {"a", "api.hits", "ü.straße", "k,with \"quotes\"", "x"};
	int64_t values[] = {0, -1, INT64_MIN, INT64_MAX, 42};
	struct tally_tly1_hdr h;

	tally_cl_dgram_init(&d, buf, 1400, 0, 0x1122334455667788ULL, 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(tally_cl_dgram_add(&d, (const uint8_t *)keys[i], (uint8_t)strlen(keys[i]),
						    1000 + i, i == 0 ? 0 : 1700000000000ULL + i, values[i]), 0);
	tally_put_le64(buf + TALLY_TLY1_OFF_SEQ, 99);
	uint32_t len = tally_cl_dgram_seal(&d, NULL);
	assert_int_equal(parse(len, NULL, &h), TALLY_OK);
	assert_int_equal(h.count, 5);
	assert_int_equal(h.flags, TALLY_TLY1_F_ACK_REQ);
	assert_int_equal(h.sender_id, 0x1122334455667788ULL);
	assert_int_equal(h.batch_seq, 99);
	assert_int_equal(out.n, 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(evs[i].key_len, strlen(keys[i]));
		assert_memory_equal(evs[i].key, keys[i], strlen(keys[i]));
		assert_int_equal(evs[i].event_id, 1000 + i);
		assert_int_equal(evs[i].time_ms, i == 0 ? 0 : 1700000000000ULL + i);
		assert_true(evs[i].value == (double)values[i]);
	}
}

static void test_mac(void **state)
{
	(void)state;
	static struct tally_mac_keys keys;
	struct tally_cl_dgram d;
	uint8_t key[16];
	struct tally_tly1_hdr h;

	randombytes_buf(key, sizeof(key));
	memset(&keys, 0, sizeof(keys));
	keys.present[7] = true;
	memcpy(keys.key[7], key, 16);
	tally_cl_dgram_init(&d, buf, 400, 7, 5, 1);
	assert_int_equal(tally_cl_dgram_add(&d, (const uint8_t *)"signed", 6, 1, 2, 3), 0);
	uint32_t len = tally_cl_dgram_seal(&d, key);
	assert_int_equal(len, TALLY_TLY1_HDR_LEN + 25 + 6 + TALLY_TLY1_MAC_LEN);
	assert_int_equal(parse(len, &keys, &h), TALLY_OK);
	assert_int_equal(h.flags, TALLY_TLY1_F_ACK_REQ | TALLY_TLY1_F_MAC);
	assert_int_equal(h.key_id, 7);
	keys.key[7][0] ^= 1; /* another key: the appliance refuses it whole */
	assert_int_equal(parse(len, &keys, &h), TALLY_C_TLY1_MAC_BAD);
	assert_int_equal(out.n, 0);
}

/* Events go in until the next would pass cap (the MAC's room kept), and no
 * datagram holds more than 1024 events, whatever its capacity. */
static void test_capacity(void **state)
{
	(void)state;
	struct tally_cl_dgram d;
	int n = 0;

	tally_cl_dgram_init(&d, buf, 1400, 1, 5, 1);
	while (tally_cl_dgram_add(&d, (const uint8_t *)"0123456789", 10, (uint64_t)n + 1, 0, n) == 0)
		n++;
	assert_int_equal(n, (1400 - 24 - 16) / 35);
	assert_true(d.len + TALLY_TLY1_MAC_LEN <= 1400);
	uint8_t key[16] = {0};
	assert_true(tally_cl_dgram_seal(&d, key) <= 1400);

	tally_cl_dgram_init(&d, buf, sizeof(buf), 0, 5, 1);
	n = 0;
	while (tally_cl_dgram_add(&d, (const uint8_t *)"k", 1, (uint64_t)n + 1, 0, 1) == 0)
		n++;
	assert_int_equal(n, TALLY_TLY1_MAX_COUNT);
	assert_int_equal(parse(tally_cl_dgram_seal(&d, NULL), NULL, NULL), TALLY_OK);
	assert_int_equal(out.n, TALLY_TLY1_MAX_COUNT);
}

/* The encoder's key rule is the parser's: compare them on odd keys. */
static void test_keys(void **state)
{
	(void)state;
	const char *bad[] = {"", "a\0b", "\xc3", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff"};
	size_t bad_len[] = {0, 3, 1, 2, 3, 4, 1};
	char long_key[257];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(tally_cl_key_valid((const uint8_t *)bad[i], bad_len[i]));
		if (bad_len[i] == 0)
			continue;
		struct tally_cl_dgram d; /* the parser agrees: it rejects such a datagram */
		tally_cl_dgram_init(&d, buf, 1400, 0, 5, 1);
		assert_int_equal(tally_cl_dgram_add(&d, (const uint8_t *)bad[i], (uint8_t)bad_len[i], 1, 0, 0), 0);
		assert_int_not_equal(parse(tally_cl_dgram_seal(&d, NULL), NULL, NULL), TALLY_OK);
	}
	memset(long_key, 'k', sizeof(long_key));
	assert_true(tally_cl_key_valid((const uint8_t *)long_key, 255));
	assert_false(tally_cl_key_valid((const uint8_t *)long_key, 256));
	assert_true(tally_cl_key_valid((const uint8_t *)"\xf0\x9f\x98\x80", 4));
}

static void test_ack(void **state)
{
	(void)state;
	uint8_t a[TALLY_TLA1_LEN] = "TLA1";
	struct tally_cl_ack ack;

	a[4] = TALLY_ACK_OVERLOADED;
	tally_put_le64(a + 8, 77);
	tally_put_le64(a + 16, 1234);
	assert_int_equal(tally_cl_ack_decode(a, sizeof(a), &ack), 0);
	assert_int_equal(ack.status, TALLY_ACK_OVERLOADED);
	assert_int_equal(ack.sender_id, 77);
	assert_int_equal(ack.batch_seq, 1234);
	assert_int_equal(tally_cl_ack_decode(a, sizeof(a) - 1, &ack), -EBADMSG);
	a[3] = 'X';
	assert_int_equal(tally_cl_ack_decode(a, sizeof(a), &ack), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_mac),
		cmocka_unit_test(test_capacity),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_ack),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
