/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tallyd's diagnostics: one call, tally_log(LEVEL, fmt, ...), with syslog's
 * levels, to stderr (the format tests and people read: the message as given),
 * to the journal (sd_journal_send, with the priority and the call site) or to
 * syslog(3). Never called per packet. Each call site has its own rate limit
 * (a token bucket: TALLY_LOG_BURST messages, refilled over
 * TALLY_LOG_INTERVAL_MS), so a fault that repeats cannot flood the log: what
 * the bucket refuses is counted and reported once as "suppressed K messages".
 */
#ifndef TALLY_LOG_H
#define TALLY_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

/* The levels are syslog's: LOG_ERR (3) .. LOG_DEBUG (7). */
enum tally_log_target {
	TALLY_LOG_AUTO,   /* the journal if stderr is connected to it, else stderr */
	TALLY_LOG_STDERR,
	TALLY_LOG_JOURNAL,
	TALLY_LOG_SYSLOG,
};

#define TALLY_LOG_BURST 10          /* messages a call site may send at once */
#define TALLY_LOG_INTERVAL_MS 10000 /* ... and again after this long */

/* One call site's bucket (a static in the tally_log macro). */
struct tally_log_site {
	const char *file;
	int line;
	uint64_t refill_ms;  /* when the bucket was last full */
	uint32_t tokens;
	uint64_t suppressed; /* refused since the last report */
	bool known;          /* on the list tally_log_tick walks */
	bool unlimited;      /* tally_log_always: never cut */
	struct tally_log_site *next;
};

/* "err", "warning", "notice", "info", "debug" -> LOG_ERR..LOG_DEBUG; -1 if none. */
int tally_log_level_parse(const char *name);
/* "auto", "stderr", "journal", "syslog" -> the target; -1 if none. */
int tally_log_target_parse(const char *name);
/* Set the threshold and the target (any thread; takes effect at the next
 * message). Messages above level are dropped before formatting. */
void tally_log_setup(int level, enum tally_log_target target);
int tally_log_get_level(void);
/* Would a message at level be written? (a cheap test before costly formatting) */
bool tally_log_enabled(int level);

/* The call tally_log expands to; site rate-limits this call site. */
void tally_log_at(struct tally_log_site *site, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Report "suppressed K messages" for each site whose interval has passed
 * since it refused one (the control loop calls it every second). */
void tally_log_tick(void);

/* Tests: the clock the buckets use (0 = CLOCK_MONOTONIC) and where stderr
 * output goes (NULL = stderr). */
void tally_log_test_hooks(uint64_t (*now_ms)(void), void *stream);

#define tally_log(level, ...)                                              \
	do {                                                               \
		static struct tally_log_site tally_site_ = {__FILE__, __LINE__, \
							    0, 0, 0, false, false, NULL}; \
		tally_log_at(&tally_site_, (level), __VA_ARGS__);           \
	} while (0)

/* Not rate-limited: the record of what an operator did (a config change, a
 * rules reload, a drain). Only root or tallyd's user can cause these, one
 * control request each, and an audit trail with holes is worse than a long
 * one. Faults, and anything another user or the network can cause, use
 * tally_log. */
#define tally_log_always(level, ...)                                       \
	do {                                                               \
		static struct tally_log_site tally_site_ = {__FILE__, __LINE__, \
							    0, 0, 0, false, true, NULL}; \
		tally_log_at(&tally_site_, (level), __VA_ARGS__);           \
	} while (0)

#endif
