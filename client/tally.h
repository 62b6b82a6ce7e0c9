/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libtally: the producer side of Tally. Batches events into TLY1 datagrams
 * (shared/DESIGN.md) with ACK_REQ, keeps every datagram until a TLA1 ack
 * answers it, retransmits with exponential backoff and full jitter, spreads
 * keys over several appliances by consistent hashing and fails over to the
 * next appliance on the ring when one stops acking. client/README.md is the
 * manual: guarantees, memory bound, threads, error codes.
 *
 * Every function returns 0 (or a count) on success and a negative errno on
 * failure. A client is safe to use from any number of threads at once.
 */
#ifndef TALLY_CLIENT_H
#define TALLY_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#define TALLY_CLIENT_MAX_APPLIANCES 64

/* The library is built with hidden visibility: only these are exported. */
#define TALLY_API __attribute__((visibility("default")))

struct tally_client;

/* Options; tally_opts_init() fills the defaults (in brackets). */
struct tally_opts {
	const char *const *appliances; /* "host:port" or "[v6]:port", 1..64 of them */
	unsigned n_appliances;
	uint64_t max_unacked_bytes; /* memory for datagrams not yet acked [16 MiB] */
	uint32_t max_datagram;      /* UDP payload bytes of one datagram, 64..65507 [1400] */
	uint32_t linger_ms;         /* a partly filled datagram leaves after this [5] */
	uint32_t ack_timeout_ms;    /* no ack by then: lost [2000]; committed mode: more
				     * than the appliance's flush_interval_ms */
	uint32_t backoff_base_ms;   /* first retransmit's extra wait is below this [100] */
	uint32_t backoff_max_ms;    /* cap of the extra wait, doubling per attempt [5000] */
	uint32_t breaker_failures;  /* lost datagrams (no ack at all since) that open an
				     * appliance's breaker [3] */
	uint32_t breaker_open_ms;   /* how long an open breaker waits before a probe [2000] */
	uint32_t send_timeout_ms;   /* tally_send waits this long for room, then -ENOBUFS [1000] */
	uint32_t vnodes;            /* ring points per appliance [160] */
	uint8_t mac_key_id;         /* 1..255 with mac_key: sign every datagram [0: off] */
	const uint8_t *mac_key;     /* 16 bytes (SipHash-2-4-128), copied; NULL: no MAC */
	uint64_t sender_id;         /* TLY1 sender_id [0: random] */
	uint64_t id_base;           /* first event id the client assigns [0: random] */
};

/* One event. key: 1..255 bytes of UTF-8 without NUL (need not be NUL-terminated). */
struct tally_ev {
	const char *key;
	size_t key_len;
	int64_t value;
	uint64_t time_ms; /* event time, ms since the epoch; 0: now (stamped by tally_send) */
	uint64_t id;      /* event id; 0: the client assigns one */
};

/* Counters, all since tally_client_new; the unacked_* are gauges. */
struct tally_stats {
	uint64_t events_queued;     /* taken by tally_send */
	uint64_t events_sent;       /* in datagrams sent at least once */
	uint64_t events_acked;      /* in datagrams acked committed or accepted */
	uint64_t events_dropped;    /* in datagrams answered malformed or unauthenticated */
	uint64_t datagrams_sent;    /* first transmissions */
	uint64_t datagrams_acked;
	uint64_t datagrams_dropped;
	uint64_t acks_committed, acks_accepted;
	uint64_t acks_overloaded;   /* status 4: backed off and sent again */
	uint64_t acks_stale;        /* for a datagram no longer pending (a second ack) */
	uint64_t acks_bad;          /* not a TLA1 ack of this sender */
	uint64_t retransmits;       /* sends after the first, failovers included */
	uint64_t failovers;         /* datagrams moved to another appliance */
	uint64_t breaker_opens;
	uint64_t send_errors;       /* sendto failures (the datagram is retransmitted) */
	uint64_t send_waits;        /* tally_send calls that waited for room */
	uint64_t send_full;         /* tally_send calls that returned -ENOBUFS */
	uint64_t unacked_bytes, unacked_datagrams, unacked_events;
};

/* Appliance breaker states, as tally_appliance_state reports them. */
enum tally_breaker { TALLY_BREAKER_CLOSED, TALLY_BREAKER_OPEN, TALLY_BREAKER_HALF_OPEN };

TALLY_API void tally_opts_init(struct tally_opts *o);

/* Resolve the appliances, open one UDP socket each, start the background
 * thread. -EINVAL bad options, -EADDRNOTAVAIL an appliance does not resolve,
 * -ENOMEM, or a socket/thread error. */
TALLY_API int tally_client_new(const struct tally_opts *o, struct tally_client **out);

/* Queue one event. May block up to send_timeout_ms while max_unacked_bytes is
 * used up; then -ENOBUFS (nothing queued). -EINVAL bad key, -ESHUTDOWN after
 * tally_client_close began. *id_out (may be NULL) gets the event's id. */
TALLY_API int tally_send_ev(struct tally_client *c, const struct tally_ev *ev, uint64_t *id_out);

/* tally_send_ev with a NUL-terminated key, time now and an assigned id. */
TALLY_API int tally_send(struct tally_client *c, const char *key, int64_t value);

/* Send every partly filled datagram now and wait until everything queued so far
 * is acked (or dropped by an appliance's answer): 0, or -ETIMEDOUT. */
TALLY_API int tally_flush(struct tally_client *c, uint32_t timeout_ms);

/* A consistent copy of the counters. */
TALLY_API void tally_stats_get(struct tally_client *c, struct tally_stats *out);

/* Appliance i's name (as given) and breaker state; -ERANGE past the last. */
TALLY_API int tally_appliance_state(struct tally_client *c, unsigned i, const char **name,
			  enum tally_breaker *state);

/* tally_flush(timeout_ms), then stop the thread and free everything, acked or
 * not. Returns tally_flush's result. c is gone afterwards. */
TALLY_API int tally_client_close(struct tally_client *c, uint32_t timeout_ms);

#endif
