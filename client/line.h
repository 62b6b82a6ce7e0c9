/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-send's input lines: CSV `key,value[,time_ms[,id]]` or a JSON object
 * {"key":..,"value":..,"time":..,"id":..} per line. A bad line is a named
 * reason, never a crash; the caller counts it and shows its number.
 */
#ifndef TALLY_CL_LINE_H
#define TALLY_CL_LINE_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

enum tally_line_fmt { TALLY_FMT_AUTO, TALLY_FMT_CSV, TALLY_FMT_JSON };

/* Every outcome: OK, EMPTY (skipped, not an error), then the bad-line reasons. */
#define TALLY_LINE_REASONS(_) \
	_(OK, "ok") \
	_(EMPTY, "empty line") \
	_(FIELDS, "wrong number of fields (want key,value[,time_ms[,id]])") \
	_(QUOTE, "unterminated or misplaced quote") \
	_(KEY, "key empty, longer than 255 bytes, not UTF-8 or with a NUL") \
	_(VALUE, "value not a signed 64-bit integer") \
	_(TIME, "time_ms not an unsigned 64-bit integer") \
	_(ID, "id not an unsigned 64-bit integer") \
	_(JSON, "not a JSON object (or a number out of range, a repeated field)") \
	_(JSON_FIELD, "JSON: missing key or value, a field of the wrong type, or an unknown field")

enum tally_line_reason {
#define TALLY_LINE_ENUM(n, s) TALLY_LINE_##n,
	TALLY_LINE_REASONS(TALLY_LINE_ENUM)
#undef TALLY_LINE_ENUM
	TALLY_LINE_NREASONS
};

struct tally_line_ev {
	char key[TALLY_KEY_MAX + 1]; /* NUL-terminated copy; key_len is authoritative */
	size_t key_len;
	int64_t value;
	uint64_t time_ms, id; /* 0: not given */
};

/* Parse line[0..len) (no newline; a trailing \r is ignored). */
enum tally_line_reason tally_line_parse(const char *line, size_t len, enum tally_line_fmt fmt,
					struct tally_line_ev *ev);

const char *tally_line_reason_str(enum tally_line_reason r);
/* The reason's short name ("key", "value", ...), for summaries. */
const char *tally_line_reason_name(enum tally_line_reason r);

#endif
