/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Diagnostics with levels and per-call-site rate limits (log.h). Logging is
 * rare (start-up, faults, config changes), so one mutex serialises every
 * message and every bucket: simple, and no thread that logs is a worker.
 *
 * Rate limit: each call site may write TALLY_LOG_BURST messages within
 * TALLY_LOG_INTERVAL_MS of the first of them; what comes after is counted,
 * not formatted. When the interval is over, the next message of that site (or
 * tally_log_tick, whichever comes first) writes one line "suppressed K
 * messages from FILE:LINE", and the site starts a new interval.
 *
 * Target: systemd documents that a service whose stderr is connected to the
 * journal finds "device:inode" of that stream in $JOURNAL_STREAM; then (and
 * with log_target = journal) messages go through sd_journal_send with their
 * PRIORITY and call site, so `journalctl -p warning` filters them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "log.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int threshold = LOG_INFO;
static enum tally_log_target target = TALLY_LOG_AUTO;
static bool syslog_open;
static struct tally_log_site *sites; /* every site that was ever rate-limited */
static uint64_t (*clock_hook)(void);
static FILE *stream_hook;

static const char *const level_names[] = {
	[LOG_ERR] = "err", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
	[LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};
static const char *const target_names[] = {
	[TALLY_LOG_AUTO] = "auto", [TALLY_LOG_STDERR] = "stderr",
	[TALLY_LOG_JOURNAL] = "journal", [TALLY_LOG_SYSLOG] = "syslog",
};

int tally_log_level_parse(const char *name)
{
	for (int i = LOG_ERR; i <= LOG_DEBUG; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

int tally_log_target_parse(const char *name)
{
	for (int i = 0; i < (int)(sizeof(target_names) / sizeof(target_names[0])); i++)
		if (strcmp(name, target_names[i]) == 0)
			return i;
	return -1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	if (clock_hook != NULL)
		return clock_hook();
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* $JOURNAL_STREAM names the stream stderr was given by systemd, if it still is. */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 ||
	    fstat(STDERR_FILENO, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void tally_log_setup(int level, enum tally_log_target t)
{
	pthread_mutex_lock(&lock);
	threshold = level;
	if (t == TALLY_LOG_AUTO)
		t = stderr_is_journal() ? TALLY_LOG_JOURNAL : TALLY_LOG_STDERR;
	target = t;
	pthread_mutex_unlock(&lock);
}

int tally_log_get_level(void)
{
	return __atomic_load_n(&threshold, __ATOMIC_RELAXED);
}

bool tally_log_enabled(int level)
{
	return level <= tally_log_get_level();
}

void tally_log_test_hooks(uint64_t (*clock)(void), void *stream)
{
	clock_hook = clock;
	stream_hook = stream;
}

/* The journal and syslog name the program themselves: drop our own prefix. */
static const char *bare(const char *msg)
{
	return strncmp(msg, "tallyd: ", 8) == 0 ? msg + 8 : msg;
}

/* The source file as people know it: __FILE__ is relative to the build dir. */
static const char *src_file(const struct tally_log_site *site)
{
	const char *f = site->file;

	while (strncmp(f, "../", 3) == 0)
		f += 3;
	return f;
}

/* Write one finished message (lock held). */
static void emit(const struct tally_log_site *site, int level, const char *msg)
{
	char line[16];
	enum tally_log_target t = target == TALLY_LOG_AUTO ? TALLY_LOG_STDERR : target;

	if (t == TALLY_LOG_JOURNAL) {
		snprintf(line, sizeof(line), "CODE_LINE=%d", site->line);
		if (sd_journal_send("MESSAGE=%s", bare(msg), "PRIORITY=%d", level,
				    "SYSLOG_IDENTIFIER=tallyd", "CODE_FILE=%s", src_file(site), line,
				    NULL) == 0)
			return;
		t = TALLY_LOG_STDERR; /* no journal after all: never lose the message */
	}
	if (t == TALLY_LOG_SYSLOG) {
		if (!syslog_open)
			openlog("tallyd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		syslog_open = true;
		syslog(level, "%s", bare(msg));
		return;
	}
	fprintf(stream_hook ? stream_hook : stderr, "%s\n", msg);
	fflush(stream_hook ? stream_hook : stderr);
}

/* The interval of a site that refused messages is over: say how many (lock held). */
static void report_suppressed(struct tally_log_site *site, int level)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "tallyd: suppressed %llu messages from %s:%d (more than %d "
		 "in %d s)", (unsigned long long)site->suppressed, src_file(site), site->line,
		 TALLY_LOG_BURST, TALLY_LOG_INTERVAL_MS / 1000);
	emit(site, level, msg);
	site->suppressed = 0;
}

/* May the site write one more? Starts a new interval when the last is over. */
static bool take_token(struct tally_log_site *site, int level, uint64_t now)
{
	if (site->unlimited)
		return true;
	if (!site->known) {
		site->known = true;
		site->next = sites;
		sites = site;
		site->refill_ms = now;
		site->tokens = TALLY_LOG_BURST;
	}
	if (now - site->refill_ms >= TALLY_LOG_INTERVAL_MS) {
		if (site->suppressed > 0)
			report_suppressed(site, level);
		site->refill_ms = now;
		site->tokens = TALLY_LOG_BURST;
	}
	if (site->tokens == 0) {
		site->suppressed++;
		return false;
	}
	site->tokens--;
	return true;
}

void tally_log_at(struct tally_log_site *site, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!tally_log_enabled(level))
		return;
	pthread_mutex_lock(&lock);
	if (take_token(site, level, now_ms())) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		msg[strcspn(msg, "\n")] = '\0'; /* one message, one line */
		emit(site, level, msg);
	}
	pthread_mutex_unlock(&lock);
}

void tally_log_tick(void)
{
	uint64_t now;

	pthread_mutex_lock(&lock);
	now = now_ms();
	for (struct tally_log_site *s = sites; s != NULL; s = s->next)
		if (s->suppressed > 0 && now - s->refill_ms >= TALLY_LOG_INTERVAL_MS) {
			report_suppressed(s, LOG_WARNING);
			s->refill_ms = now;
			s->tokens = TALLY_LOG_BURST;
		}
	pthread_mutex_unlock(&lock);
}
