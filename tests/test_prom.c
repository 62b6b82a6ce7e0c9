/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The Prometheus exposition (prom.c) of hand-made snapshots: names from the
 * counter list (_total, gauges), drop reasons and workers as labels, label and
 * HELP escaping, histogram buckets cumulative with matching _count, every
 * family written whole with one HELP and TYPE, spool and breaker only when
 * present; and the histogram's bucket placement.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "prom.h"

static struct tally_snap snap;
static struct tally_buf out;

static int setup(void **state)
{
	(void)state;
	assert_int_equal(tally_snap_init(&snap, 2), 0);
	for (unsigned i = 0; i < 2; i++) {
		snap.w[i].id = i;
		snap.w[i].lcore = i + 1;
	}
	snap.version = "0.1.0";
	snprintf(snap.sink.name, sizeof(snap.sink.name), "sqlite");
	snprintf(snap.sink.state, sizeof(snap.sink.state), "up");
	memset(&out, 0, sizeof(out));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tally_snap_fini(&snap);
	tally_buf_free(&out);
	return 0;
}

static const char *format(void)
{
	tally_buf_free(&out);
	assert_int_equal(tally_prom_format(&snap, &out), 0);
	return out.p;
}

/* The whole line `line` is in the text. */
static void has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return;
	fail_msg("missing line: %s", line);
}

static void lacks(const char *text, const char *part)
{
	if (strstr(text, part) != NULL)
		fail_msg("unexpected: %s", part);
}

static void worker_counters_are_labelled(void **state)
{
	const char *t;

	(void)state;
	snap.w[0].v[TALLY_C_RX_PACKETS] = 5;
	snap.w[1].v[TALLY_C_RX_PACKETS] = 7;
	snap.v[TALLY_C_RX_PACKETS] = 12;
	snap.v[TALLY_C_FLUSH_BATCHES] = 3;
	t = format();
	has_line(t, "# TYPE tally_rx_packets_total counter");
	has_line(t, "tally_rx_packets_total{worker=\"0\"} 5");
	has_line(t, "tally_rx_packets_total{worker=\"1\"} 7");
	lacks(t, "tally_rx_packets_total 12"); /* no total beside the workers: sum() doubles */
	has_line(t, "tally_flush_batches_total 3");
	has_line(t, "tally_watchdog_stalls_total 0");
}

static void drop_reasons_are_labels(void **state)
{
	const char *t;

	(void)state;
	snap.w[1].v[TALLY_C_DROP_LATE] = 3;
	snap.w[0].v[TALLY_C_TLY1_BAD_MAGIC] = 2;
	snap.w[0].v[TALLY_C_STATSD_BAD_TYPE] = 4;
	t = format();
	has_line(t, "# TYPE tally_drops_total counter");
	has_line(t, "tally_drops_total{reason=\"late\",worker=\"1\"} 3");
	has_line(t, "tally_drops_total{reason=\"late\",worker=\"0\"} 0");
	has_line(t, "tally_drops_total{reason=\"tly1_bad_magic\",worker=\"0\"} 2");
	has_line(t, "tally_drops_total{reason=\"statsd_bad_type\",worker=\"0\"} 4");
	lacks(t, "tally_drop_late");
	lacks(t, "reason=\"tly1_datagrams\"");
	lacks(t, "reason=\"statsd_lines\"");
	has_line(t, "# TYPE tally_tly1_datagrams_total counter");
	has_line(t, "# TYPE tally_statsd_lines_total counter");
	assert_true(tally_counter_is_drop(TALLY_C_DROP_DUPLICATE));
	assert_false(tally_counter_is_drop(TALLY_C_EVENTS_ACCEPTED));
	assert_false(tally_counter_is_drop(TALLY_C_TLY1_ACK_UNSENT));
}

static void gauges(void **state)
{
	const char *t;

	(void)state;
	snap.v[TALLY_C_FLUSH_PENDING] = 1;
	snap.uptime_ms = 1500;
	snap.dedup_gen = 9;
	snap.w[1].health = TALLY_STALLED;
	t = format();
	has_line(t, "# TYPE tally_flush_pending gauge");
	has_line(t, "tally_flush_pending 1");
	lacks(t, "tally_flush_pending_total");
	has_line(t, "tally_uptime_seconds 1.5");
	has_line(t, "tally_dedup_generation 9");
	has_line(t, "tally_worker_up{worker=\"0\",lcore=\"1\"} 1");
	has_line(t, "tally_worker_up{worker=\"1\",lcore=\"2\"} 0");
	has_line(t, "tally_flusher_up 1");
	has_line(t, "tally_sink_up{sink=\"sqlite\"} 1");
	has_line(t, "tally_build_info{version=\"0.1.0\"} 1");
}

static void labels_and_help_are_escaped(void **state)
{
	struct tally_buf b = {0};
	const char *t;

	(void)state;
	tally_buf_label(&b, "a\"b\\c\nd");
	assert_string_equal(b.p, "a\\\"b\\\\c\\nd");
	tally_buf_free(&b);
	snap.version = "1.0\"x\\y\n";
	snprintf(snap.sink.name, sizeof(snap.sink.name), "s\"q");
	t = format();
	has_line(t, "tally_build_info{version=\"1.0\\\"x\\\\y\\n\"} 1");
	has_line(t, "tally_sink_up{sink=\"s\\\"q\"} 1");
	/* HELP keeps its quotes (only \ and newline are escaped there). */
	has_line(t, "# HELP tally_drops_total frames, datagrams, lines or events dropped, by "
		 "reason (the unit is the reason's: see tallyctl stats)");
	has_line(t, "# HELP tally_tly1_datagrams_total TLY1 datagrams accepted");
}

static void histogram_is_cumulative(void **state)
{
	const char *t;

	(void)state;
	tally_hist_observe(&snap.sink_hist, 1000); /* 1 ms: the 0.001 bucket (le is <=) */
	tally_hist_observe(&snap.sink_hist, 500);
	tally_hist_observe(&snap.sink_hist, 1001); /* just above: 0.002 */
	tally_hist_observe(&snap.sink_hist, 4000);
	tally_hist_observe(&snap.sink_hist, 60000000); /* a minute: +Inf only */
	assert_int_equal(snap.sink_hist.count[0], 2);
	assert_int_equal(snap.sink_hist.count[1], 1);
	assert_int_equal(snap.sink_hist.count[TALLY_HIST_NBOUNDS], 1);
	t = format();
	has_line(t, "# TYPE tally_sink_write_duration_seconds histogram");
	has_line(t, "tally_sink_write_duration_seconds_bucket{le=\"0.001\"} 2");
	has_line(t, "tally_sink_write_duration_seconds_bucket{le=\"0.002\"} 3");
	has_line(t, "tally_sink_write_duration_seconds_bucket{le=\"0.005\"} 4");
	has_line(t, "tally_sink_write_duration_seconds_bucket{le=\"10\"} 4");
	has_line(t, "tally_sink_write_duration_seconds_bucket{le=\"+Inf\"} 5");
	has_line(t, "tally_sink_write_duration_seconds_count 5");
	has_line(t, "tally_sink_write_duration_seconds_sum 60.006501");
	has_line(t, "tally_flush_duration_seconds_count 0");
}

/* The family of a sample line: its name up to '{' or ' ', less the
 * histogram suffixes. */
static void family_of(const char *line, char *fam, size_t n)
{
	size_t len = strcspn(line, "{ ");
	static const char *const sfx[] = {"_bucket", "_sum", "_count"};

	snprintf(fam, n, "%.*s", (int)len, line);
	for (unsigned i = 0; i < 3; i++) {
		size_t sl = strlen(sfx[i]), fl = strlen(fam);

		if (fl > sl && strcmp(fam + fl - sl, sfx[i]) == 0 && strstr(line, "duration"))
			fam[fl - sl] = '\0';
	}
}

/* Every sample follows its own family's TYPE, and no TYPE comes twice. */
static void families_are_whole(void **state)
{
	char *text, *line, *save = NULL, cur[128] = "", fam[128];
	unsigned types = 0;

	(void)state;
	text = strdup(format());
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char needle[160];

			snprintf(cur, sizeof(cur), "%.*s", (int)strcspn(line + 7, " "), line + 7);
			snprintf(needle, sizeof(needle), "# TYPE %s ", cur);
			assert_non_null(strstr(out.p, needle));
			assert_null(strstr(strstr(out.p, needle) + 1, needle)); /* once */
			types++;
			continue;
		}
		if (line[0] == '#')
			continue;
		family_of(line, fam, sizeof(fam));
		if (strcmp(fam, cur) != 0)
			fail_msg("sample of %s under family %s: %s", fam, cur, line);
	}
	free(text);
	assert_true(types > 20);
}

static void spool_and_breaker_only_when_present(void **state)
{
	const char *t;

	(void)state;
	t = format();
	lacks(t, "tally_spool_full_alarm");
	lacks(t, "tally_sink_breaker");
	snap.sink.has_spool = true;
	snap.v[TALLY_C_SPOOL_RECORDS] = 4;
	snap.sink.spool.oldest_age_ms = 2500;
	snap.sink.spool.full_alarm = true;
	snprintf(snap.sink.breaker, sizeof(snap.sink.breaker), "open");
	snprintf(snap.sink.state, sizeof(snap.sink.state), "down");
	t = format();
	has_line(t, "tally_spool_records 4");
	has_line(t, "tally_spool_oldest_age_seconds 2.5");
	has_line(t, "tally_spool_full_alarm 1");
	has_line(t, "tally_sink_breaker{state=\"open\"} 1");
	has_line(t, "tally_sink_breaker{state=\"closed\"} 0");
	has_line(t, "tally_sink_up{sink=\"sqlite\"} 0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(worker_counters_are_labelled, setup, teardown),
		cmocka_unit_test_setup_teardown(drop_reasons_are_labels, setup, teardown),
		cmocka_unit_test_setup_teardown(gauges, setup, teardown),
		cmocka_unit_test_setup_teardown(labels_and_help_are_escaped, setup, teardown),
		cmocka_unit_test_setup_teardown(histogram_is_cumulative, setup, teardown),
		cmocka_unit_test_setup_teardown(families_are_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(spool_and_breaker_only_when_present, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
