/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-send: events from standard input (CSV key,value[,time_ms[,id]] or JSON
 * lines) to Tally appliances through libtally, with acks, retransmits and
 * failover; a summary at the end, exit status 1 if any event was not acked.
 * client/README.md is its manual.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "line.h"
#include "tally.h"

#define EXIT_NOT_ACKED 1
#define EXIT_USAGE 2
#define EXIT_BAD_LINES 3

struct cli {
	struct tally_opts o;
	const char *apps[TALLY_CLIENT_MAX_APPLIANCES];
	uint8_t mac_key[16];
	enum tally_line_fmt fmt;
	uint32_t flush_timeout_ms;
	uint64_t show_errors;
};

struct tally_counts {
	uint64_t lines, events_read, rejected;
	uint64_t reasons[TALLY_LINE_NREASONS];
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tally-send --appliance HOST:PORT [--appliance HOST:PORT ...] [options] < events\n"
		"  input lines: key,value[,time_ms[,id]] (CSV; a key may be \"quoted\")\n"
		"           or {\"key\":\"k\",\"value\":1,\"time\":1700000000000,\"id\":42}\n"
		"  --format auto|csv|json   auto: a line starting with { is JSON (default auto)\n"
		"  --ack-timeout MS         no ack by then: the datagram is lost, resent (2000)\n"
		"  --max-unacked BYTES      memory for unacked datagrams (16777216)\n"
		"  --mac-key ID:HEX32       sign datagrams (SipHash-2-4-128, key id 1..255)\n"
		"  --max-datagram BYTES     UDP payload of one datagram (1400)\n"
		"  --linger MS              a partly filled datagram leaves after this (5)\n"
		"  --breaker-open MS        an appliance that stopped acking rests this long (2000)\n"
		"  --send-timeout MS        give up when no memory frees for this long (30000)\n"
		"  --flush-timeout MS       wait this long for the last acks (30000)\n"
		"  --show-errors N          print the first N bad lines (20)\n"
		"exit: 0 all acked, 1 some event not acked, 2 usage, 3 all acked but bad lines\n");
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_mac(struct cli *c, const char *s)
{
	uint64_t id;
	char idbuf[8];
	const char *colon = strchr(s, ':');
	size_t n = colon != NULL ? (size_t)(colon - s) : 0, bin = 0;

	if (colon == NULL || n == 0 || n >= sizeof(idbuf) || strlen(colon + 1) != 32)
		return -EINVAL;
	memcpy(idbuf, s, n);
	idbuf[n] = '\0';
	if (parse_u64(idbuf, 1, 255, &id) != 0 ||
	    sodium_hex2bin(c->mac_key, 16, colon + 1, 32, NULL, &bin, NULL) != 0 || bin != 16)
		return -EINVAL;
	c->o.mac_key_id = (uint8_t)id;
	c->o.mac_key = c->mac_key;
	return 0;
}

enum { O_FORMAT = 1, O_ACK_TIMEOUT, O_MAX_UNACKED, O_MAC, O_MAX_DGRAM, O_LINGER,
       O_BREAKER, O_SEND_TIMEOUT, O_FLUSH_TIMEOUT, O_SHOW };

static const struct option long_opts[] = {
	{"appliance", required_argument, NULL, 'a'},
	{"format", required_argument, NULL, O_FORMAT},
	{"ack-timeout", required_argument, NULL, O_ACK_TIMEOUT},
	{"max-unacked", required_argument, NULL, O_MAX_UNACKED},
	{"mac-key", required_argument, NULL, O_MAC},
	{"max-datagram", required_argument, NULL, O_MAX_DGRAM},
	{"linger", required_argument, NULL, O_LINGER},
	{"breaker-open", required_argument, NULL, O_BREAKER},
	{"send-timeout", required_argument, NULL, O_SEND_TIMEOUT},
	{"flush-timeout", required_argument, NULL, O_FLUSH_TIMEOUT},
	{"show-errors", required_argument, NULL, O_SHOW},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* One numeric option into its field; every bound is the library's or a sane one. */
static int set_num(struct cli *c, int opt, const char *arg)
{
	uint64_t v;
	int r = parse_u64(arg, opt == O_SHOW || opt == O_LINGER ? 0 : 1,
			  opt == O_MAX_UNACKED ? UINT64_MAX / 2 : UINT32_MAX, &v);

	if (r != 0)
		return r;
	switch (opt) {
	case O_ACK_TIMEOUT: c->o.ack_timeout_ms = (uint32_t)v; break;
	case O_MAX_UNACKED: c->o.max_unacked_bytes = v; break;
	case O_MAX_DGRAM: c->o.max_datagram = (uint32_t)v; break;
	case O_LINGER: c->o.linger_ms = (uint32_t)v; break;
	case O_BREAKER: c->o.breaker_open_ms = (uint32_t)v; break;
	case O_SEND_TIMEOUT: c->o.send_timeout_ms = (uint32_t)v; break;
	case O_FLUSH_TIMEOUT: c->flush_timeout_ms = (uint32_t)v; break;
	default: c->show_errors = v;
	}
	return 0;
}

static int set_format(struct cli *c, const char *arg)
{
	if (strcmp(arg, "auto") == 0)
		c->fmt = TALLY_FMT_AUTO;
	else if (strcmp(arg, "csv") == 0)
		c->fmt = TALLY_FMT_CSV;
	else if (strcmp(arg, "json") == 0)
		c->fmt = TALLY_FMT_JSON;
	else
		return -EINVAL;
	return 0;
}

static int parse_args(struct cli *c, int argc, char **argv)
{
	int opt, r = 0;

	tally_opts_init(&c->o);
	c->o.send_timeout_ms = 30000;
	c->o.appliances = c->apps;
	c->flush_timeout_ms = 30000;
	c->show_errors = 20;
	while ((opt = getopt_long(argc, argv, "a:h", long_opts, NULL)) != -1) {
		if (opt == 'h') {
			usage(stdout);
			exit(0);
		} else if (opt == 'a') {
			if (c->o.n_appliances == TALLY_CLIENT_MAX_APPLIANCES) {
				fprintf(stderr, "tally-send: at most %d --appliance\n",
					TALLY_CLIENT_MAX_APPLIANCES);
				return -EINVAL;
			}
			c->apps[c->o.n_appliances++] = optarg;
			continue;
		} else if (opt == O_FORMAT) {
			r = set_format(c, optarg);
		} else if (opt == O_MAC) {
			r = parse_mac(c, optarg);
		} else if (opt == '?') {
			return -EINVAL;
		} else {
			r = set_num(c, opt, optarg);
		}
		if (r != 0) {
			fprintf(stderr, "tally-send: bad value for --%s: %s\n",
				long_opts[opt == O_MAC ? 4 : opt - O_FORMAT + 1].name,
				opt == O_MAC ? "(hidden)" : optarg);
			return r;
		}
	}
	if (optind != argc || c->o.n_appliances == 0) {
		fprintf(stderr, "tally-send: %s\n", optind != argc ? "unexpected argument" :
			"at least one --appliance HOST:PORT is needed");
		return -EINVAL;
	}
	return 0;
}

static void bad_line(const struct cli *c, struct tally_counts *n, enum tally_line_reason r)
{
	n->rejected++;
	n->reasons[r]++;
	if (n->rejected <= c->show_errors)
		fprintf(stderr, "tally-send: line %" PRIu64 ": %s\n", n->lines,
			tally_line_reason_str(r));
	else if (n->rejected == c->show_errors + 1)
		fprintf(stderr, "tally-send: further bad lines are counted, not shown\n");
}

/* Read and send every line; returns 0, or -ENOBUFS once sending gave up. */
static int pump(struct tally_client *tc, const struct cli *c, struct tally_counts *n)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int r = 0;

	while ((len = getline(&line, &cap, stdin)) >= 0) {
		struct tally_line_ev ev;
		enum tally_line_reason why;

		n->lines++;
		if (len > 0 && line[len - 1] == '\n')
			len--;
		why = tally_line_parse(line, (size_t)len, c->fmt, &ev);
		if (why == TALLY_LINE_EMPTY)
			continue;
		if (why != TALLY_LINE_OK) {
			bad_line(c, n, why);
			continue;
		}
		n->events_read++;
		struct tally_ev e = {ev.key, ev.key_len, ev.value, ev.time_ms, ev.id};
		r = tally_send_ev(tc, &e, NULL);
		if (r != 0) {
			fprintf(stderr, "tally-send: line %" PRIu64 ": cannot send: %s%s\n", n->lines,
				strerror(-r), r == -ENOBUFS ? " (no appliance acked for "
				"--send-timeout; giving up)" : "");
			break; /* the rest of the input stays unread */
		}
	}
	free(line);
	if (r == 0 && ferror(stdin)) {
		fprintf(stderr, "tally-send: reading standard input: %s\n", strerror(errno));
		r = -EIO;
	}
	return r;
}

static void summary(const struct tally_counts *n, const struct tally_stats *s)
{
	printf("lines_read          %" PRIu64 "\n", n->lines);
	printf("events_read         %" PRIu64 "\n", n->events_read);
	printf("events_sent         %" PRIu64 "\n", s->events_sent);
	printf("events_acked        %" PRIu64 "\n", s->events_acked);
	printf("events_dropped      %" PRIu64 "  (answered malformed/unauthenticated)\n",
	       s->events_dropped);
	printf("events_unacked      %" PRIu64 "\n", s->unacked_events);
	printf("events_unsent       %" PRIu64 "  (read, but no room freed within --send-timeout)\n",
	       n->events_read - s->events_queued);
	printf("datagrams_sent      %" PRIu64 "\n", s->datagrams_sent);
	printf("datagrams_acked     %" PRIu64 "\n", s->datagrams_acked);
	printf("retransmits         %" PRIu64 "\n", s->retransmits);
	printf("failovers           %" PRIu64 "\n", s->failovers);
	printf("breaker_opens       %" PRIu64 "\n", s->breaker_opens);
	printf("acks_committed      %" PRIu64 "\n", s->acks_committed);
	printf("acks_accepted       %" PRIu64 "\n", s->acks_accepted);
	printf("acks_overloaded     %" PRIu64 "\n", s->acks_overloaded);
	printf("acks_stale          %" PRIu64 "\n", s->acks_stale);
	printf("send_errors         %" PRIu64 "\n", s->send_errors);
	printf("rejected_lines      %" PRIu64 "\n", n->rejected);
	for (int r = TALLY_LINE_FIELDS; r < TALLY_LINE_NREASONS; r++)
		if (n->reasons[r] != 0)
			printf("rejected_%-11s %" PRIu64 "  (%s)\n", tally_line_reason_name(r),
			       n->reasons[r], tally_line_reason_str(r));
}

static const char *start_error(int r)
{
	if (r == -EINVAL)
		return "bad options (each --appliance HOST:PORT once, --max-datagram 320..65507, "
		       "--max-unacked at least one datagram, --ack-timeout above 0)";
	if (r == -EADDRNOTAVAIL)
		return "an --appliance host does not resolve";
	return strerror(-r);
}

int main(int argc, char **argv)
{
	struct cli c = {0};
	struct tally_counts n = {0};
	struct tally_client *tc;
	struct tally_stats s;

	if (parse_args(&c, argc, argv) != 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	int r = tally_client_new(&c.o, &tc);
	if (r != 0) {
		fprintf(stderr, "tally-send: cannot start the client: %s\n", start_error(r));
		return EXIT_USAGE;
	}
	int pr = pump(tc, &c, &n);
	r = tally_flush(tc, c.flush_timeout_ms);
	if (r != 0)
		fprintf(stderr, "tally-send: not every event was acked within --flush-timeout\n");
	tally_stats_get(tc, &s);
	tally_client_close(tc, 0);
	summary(&n, &s);
	if (pr != 0 || r != 0 || s.events_acked != n.events_read)
		return EXIT_NOT_ACKED;
	return n.rejected != 0 ? EXIT_BAD_LINES : 0;
}
