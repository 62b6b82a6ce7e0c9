/* SPDX-License-Identifier: BSD-3-Clause */
/* Flush batches: building from worker tables, and the serialized form (batch.h). */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ack.h"
#include "batch.h"
#include "sketch.h"
#include "window.h"

#define BATCH_MAGIC "TLB1"
#define BATCH_VERSION 2
#define ROW_FIXED_V1 (1 + 8 * 6) /* key_len, win_start, count, sum, min, max, last */
#define ROW_FIXED (ROW_FIXED_V1 + 4) /* and blob_len */
#define DGRAMS_MAGIC "DGS1"

void tally_batch_init(struct tally_batch *b, const char *appliance, int64_t window_ms)
{
	memset(b, 0, sizeof(*b));
	snprintf(b->appliance, sizeof(b->appliance), "%s", appliance);
	b->window_ms = window_ms;
}

void tally_batch_free(struct tally_batch *b)
{
	free(b->rows);
	free(b->keys);
	free(b->dgrams);
	b->rows = NULL;
	b->keys = NULL;
	b->dgrams = NULL;
	b->ndgrams = b->dgrams_cap = 0;
	b->nrows = b->cap = 0;
	b->keys_used = b->keys_cap = 0;
}

void tally_batch_clear(struct tally_batch *b)
{
	b->nrows = 0;
	b->keys_used = 0;
	b->ndgrams = 0;
}

static int dgram_add(struct tally_batch *b, uint64_t sender, uint64_t seq)
{
	if (b->ndgrams == b->dgrams_cap) {
		uint32_t cap = b->dgrams_cap ? b->dgrams_cap * 2 : 256;
		void *p = realloc(b->dgrams, sizeof(*b->dgrams) * cap);

		if (p == NULL)
			return -ENOMEM;
		b->dgrams = p;
		b->dgrams_cap = cap;
	}
	b->dgrams[b->ndgrams++] = (struct tally_dgid){sender, seq};
	return 0;
}

int tally_batch_dgrams_from_acks(struct tally_batch *b)
{
	b->ndgrams = 0;
	for (const struct tally_acklist *l = b->acks; l != NULL; l = l->next)
		for (uint32_t i = 0; i < l->n; i++)
			if (dgram_add(b, l->a[i].sender_id, l->a[i].batch_seq) != 0)
				return -ENOMEM;
	return 0;
}

int tally_batch_copy_dgrams(struct tally_batch *b, const struct tally_batch *src)
{
	b->ndgrams = 0;
	for (uint32_t i = 0; i < src->ndgrams; i++)
		if (dgram_add(b, src->dgrams[i].sender, src->dgrams[i].seq) != 0)
			return -ENOMEM;
	return 0;
}

/* Room for n more arena bytes. */
static int grow_arena(struct tally_batch *b, size_t n)
{
	size_t cap = b->keys_cap ? b->keys_cap : 16384;
	void *p;

	if (b->keys_used + n <= b->keys_cap)
		return 0;
	while (cap < b->keys_used + n)
		cap *= 2;
	p = realloc(b->keys, cap);
	if (p == NULL)
		return -ENOMEM;
	b->keys = p;
	b->keys_cap = cap;
	return 0;
}

static int grow(struct tally_batch *b, size_t key_len)
{
	if (b->nrows == b->cap) {
		uint32_t cap = b->cap ? b->cap * 2 : 1024;
		void *p = realloc(b->rows, sizeof(*b->rows) * cap);

		if (p == NULL)
			return -ENOMEM;
		b->rows = p;
		b->cap = cap;
	}
	return grow_arena(b, key_len);
}

int tally_batch_add(struct tally_batch *b, const uint8_t *key, uint8_t key_len,
		    int64_t win_start, uint64_t count, double sum, double min, double max,
		    double last)
{
	struct tally_batch_row *r;

	if (grow(b, key_len) != 0)
		return -ENOMEM;
	r = &b->rows[b->nrows++];
	*r = (struct tally_batch_row){win_start, count, sum, min, max, last,
				      (uint32_t)b->keys_used, key_len, 0, 0};
	memcpy(b->keys + b->keys_used, key, key_len);
	b->keys_used += key_len;
	return 0;
}

int tally_batch_set_blob(struct tally_batch *b, const uint8_t *blob, uint32_t len)
{
	struct tally_batch_row *r;

	if (b->nrows == 0)
		return -EINVAL;
	if (grow_arena(b, len) != 0)
		return -ENOMEM;
	r = &b->rows[b->nrows - 1];
	memcpy(b->keys + b->keys_used, blob, len);
	r->blob_off = (uint32_t)b->keys_used;
	r->blob_len = len;
	b->keys_used += len;
	return 0;
}

/* A row's sketch, encoded straight into the arena. */
static int add_sketch(struct tally_batch *b, const struct tally_sketch *s)
{
	struct tally_batch_row *r = &b->rows[b->nrows - 1];

	if (grow_arena(b, TALLY_SKETCH_BLOB_MAX) != 0)
		return -ENOMEM;
	r->blob_off = (uint32_t)b->keys_used;
	r->blob_len = (uint32_t)tally_sketch_encode(s, b->keys + b->keys_used);
	b->keys_used += r->blob_len;
	return 0;
}

int tally_batch_add_wtab(struct tally_batch *b, const struct tally_wtab *t)
{
	for (uint32_t i = 0; i < tally_wtab_rows(t); i++) {
		const struct tally_row *r = tally_wtab_row(t, i);
		const struct tally_sketch *s = tally_wtab_sketch(t, t->used[i]);

		if (tally_batch_add(b, tally_wtab_key(t, r), r->key_len, r->win_start, r->count,
				    r->sum, r->min, r->max, r->last) != 0)
			return -ENOMEM;
		if (s != NULL && add_sketch(b, s) != 0)
			return -ENOMEM;
	}
	return 0;
}

uint64_t tally_batch_events(const struct tally_batch *b)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < b->nrows; i++)
		n += b->rows[i].count;
	return n;
}

/* keys_used counts keys and blobs: each row's bytes in the arena are written once. */
size_t tally_batch_encoded_size(const struct tally_batch *b)
{
	return 4 + 2 + 2 + strlen(b->appliance) + 8 + 8 + 4 + (size_t)b->nrows * ROW_FIXED +
	       b->keys_used + (b->ndgrams ? 4 + 4 + (size_t)b->ndgrams * 16 : 0);
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
	return p + 8;
}

static uint8_t *putd(uint8_t *p, double d)
{
	uint64_t v;

	memcpy(&v, &d, 8);
	return put64(p, v);
}

size_t tally_batch_encode(const struct tally_batch *b, uint8_t *out)
{
	uint16_t alen = (uint16_t)strlen(b->appliance), v16;
	uint32_t n32 = htole32(b->nrows);
	uint8_t *p = out;

	memcpy(p, BATCH_MAGIC, 4), p += 4;
	v16 = htole16(BATCH_VERSION), memcpy(p, &v16, 2), p += 2;
	v16 = htole16(alen), memcpy(p, &v16, 2), p += 2;
	memcpy(p, b->appliance, alen), p += alen;
	p = put64(p, b->seq);
	p = put64(p, (uint64_t)b->window_ms);
	memcpy(p, &n32, 4), p += 4;
	for (uint32_t i = 0; i < b->nrows; i++) {
		const struct tally_batch_row *r = &b->rows[i];

		*p++ = r->key_len;
		memcpy(p, tally_batch_key(b, r), r->key_len), p += r->key_len;
		p = put64(p, (uint64_t)r->win_start);
		p = put64(p, r->count);
		p = putd(p, r->sum), p = putd(p, r->min), p = putd(p, r->max), p = putd(p, r->last);
		n32 = htole32(r->blob_len);
		memcpy(p, &n32, 4), p += 4;
		if (r->blob_len != 0)
			memcpy(p, tally_batch_blob(b, r), r->blob_len), p += r->blob_len;
	}
	if (b->ndgrams) {
		n32 = htole32(b->ndgrams);
		memcpy(p, DGRAMS_MAGIC, 4), p += 4;
		memcpy(p, &n32, 4), p += 4;
		for (uint32_t i = 0; i < b->ndgrams; i++)
			p = put64(put64(p, b->dgrams[i].sender), b->dgrams[i].seq);
	}
	return (size_t)(p - out);
}

size_t tally_batch_dgrams_pack(const struct tally_batch *b, uint8_t *out)
{
	uint8_t *p = out;

	for (uint32_t i = 0; i < b->ndgrams; i++)
		p = put64(put64(p, b->dgrams[i].sender), b->dgrams[i].seq);
	return (size_t)(p - out);
}

int tally_dgrams_unpack(const uint8_t *blob, size_t len,
			void (*fn)(void *arg, uint64_t sender, uint64_t seq), void *arg)
{
	if (len % 16 != 0)
		return -EBADMSG;
	for (size_t i = 0; i < len; i += 16) {
		uint64_t sender, seq;

		memcpy(&sender, blob + i, 8);
		memcpy(&seq, blob + i + 8, 8);
		fn(arg, le64toh(sender), le64toh(seq));
	}
	return 0;
}

/* A bounds-checked reader: every get fails once the buffer is exhausted. */
struct reader {
	const uint8_t *p, *end;
	int bad;
};

static const uint8_t *take(struct reader *r, size_t n)
{
	const uint8_t *p = r->p;

	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = 1;
		return NULL;
	}
	r->p += n;
	return p;
}

static uint64_t get64(struct reader *r)
{
	const uint8_t *p = take(r, 8);
	uint64_t v = 0;

	if (p != NULL)
		memcpy(&v, p, 8);
	return le64toh(v);
}

static double getd(struct reader *r)
{
	uint64_t v = get64(r);
	double d;

	memcpy(&d, &v, 8);
	return d;
}

static int decode_header(struct tally_batch *b, struct reader *r, uint32_t *nrows,
			 uint16_t *version)
{
	const uint8_t *m = take(r, 4), *v = take(r, 2), *l = take(r, 2), *app, *n;
	uint16_t ver = 0, alen = 0;

	if (r->bad || memcmp(m, BATCH_MAGIC, 4) != 0)
		return -EBADMSG;
	memcpy(&ver, v, 2), memcpy(&alen, l, 2);
	ver = le16toh(ver), alen = le16toh(alen);
	if ((ver != 1 && ver != BATCH_VERSION) || alen == 0 || alen >= TALLY_APPLIANCE_MAX)
		return -EBADMSG;
	*version = ver;
	app = take(r, alen);
	if (app == NULL)
		return -EBADMSG;
	memcpy(b->appliance, app, alen);
	b->appliance[alen] = '\0';
	b->seq = get64(r);
	b->window_ms = (int64_t)get64(r);
	n = take(r, 4);
	if (n == NULL)
		return -EBADMSG;
	memcpy(nrows, n, 4);
	*nrows = le32toh(*nrows);
	/* Each row is at least its fixed part + 1 bytes: a hostile count fails here. */
	if ((uint64_t)*nrows * ((ver == 1 ? ROW_FIXED_V1 : ROW_FIXED) + 1) >
	    (uint64_t)(r->end - r->p))
		return -EBADMSG;
	return 0;
}

/* The optional datagram list after the rows. */
static int decode_dgrams(struct tally_batch *b, struct reader *r)
{
	const uint8_t *m = take(r, 4), *n = take(r, 4);
	uint32_t cnt = 0;

	if (r->bad || memcmp(m, DGRAMS_MAGIC, 4) != 0)
		return -EBADMSG;
	memcpy(&cnt, n, 4);
	cnt = le32toh(cnt);
	if ((uint64_t)cnt * 16 != (uint64_t)(r->end - r->p))
		return -EBADMSG;
	for (uint32_t i = 0; i < cnt; i++) {
		uint64_t sender = get64(r), seq = get64(r);

		if (dgram_add(b, sender, seq) != 0)
			return -ENOMEM;
	}
	return 0;
}

/* A v2 row's u32 blob_len and blob, attached to the row just added. */
static int decode_blob(struct tally_batch *b, struct reader *r)
{
	const uint8_t *n = take(r, 4), *blob;
	uint32_t len = 0;

	if (n == NULL)
		return -EBADMSG;
	memcpy(&len, n, 4);
	len = le32toh(len);
	if (len == 0)
		return 0;
	if (len > TALLY_SKETCH_BLOB_MAX || (blob = take(r, len)) == NULL)
		return -EBADMSG;
	return tally_batch_set_blob(b, blob, len);
}

int tally_batch_decode(struct tally_batch *b, const uint8_t *in, size_t len)
{
	struct reader r = {in, in + len, 0};
	uint32_t nrows;
	uint16_t ver = 0;
	int rc;

	tally_batch_clear(b);
	rc = decode_header(b, &r, &nrows, &ver);
	for (uint32_t i = 0; rc == 0 && i < nrows; i++) {
		const uint8_t *kl = take(&r, 1), *key = kl ? take(&r, *kl) : NULL;
		int64_t win = (int64_t)get64(&r);
		uint64_t count = get64(&r);
		double sum = getd(&r), min = getd(&r), max = getd(&r), last = getd(&r);

		if (r.bad || *kl == 0)
			return -EBADMSG;
		rc = tally_batch_add(b, key, *kl, win, count, sum, min, max, last);
		if (rc == 0 && ver >= 2)
			rc = decode_blob(b, &r);
	}
	if (rc == 0 && r.p != r.end)
		rc = decode_dgrams(b, &r);
	if (rc == 0 && r.p != r.end)
		rc = -EBADMSG; /* trailing bytes: not a record this code wrote */
	return rc;
}
