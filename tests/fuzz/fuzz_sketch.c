/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target for sketch blobs (sketch.h), the bytes sinks read back from
 * a database or a spool: any input decodes to a sketch or to -EBADMSG, never a
 * read past its end; a blob that decodes encodes again to bytes that decode to
 * the same encoding (the form is canonical after one round).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sketch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tally_sketch s, t;
	static uint8_t a[TALLY_SKETCH_BLOB_MAX], b[TALLY_SKETCH_BLOB_MAX];
	size_t na, nb;

	if (tally_sketch_decode(&s, data, size) != 0)
		return 0;
	na = tally_sketch_encode(&s, a);
	if (tally_sketch_decode(&t, a, na) != 0)
		abort();
	nb = tally_sketch_encode(&t, b);
	if (na != nb || memcmp(a, b, na) != 0)
		abort();
	if (s.kind == TALLY_SK_DDS)
		(void)tally_dds_quantile(&s, 0.99);
	else
		(void)tally_hll_estimate(&s);
	return 0;
}
