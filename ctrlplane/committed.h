/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What this appliance (and the others writing to the same sink) committed:
 * the datagram lists of recent batches, read back into a committed-datagram
 * set (dataplane/dgset.h) so a producer's retransmit after a crash or a
 * failover is not counted twice.
 *
 * This appliance's own batches count once every lane holds the batch's part
 * (in its sink, or in its spool: both durable, both what an ack promised);
 * other appliances' once any lane holds them (their lanes are not ours to know).
 */
#ifndef TALLY_COMMITTED_H
#define TALLY_COMMITTED_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dgset.h"
#include "sink_writer.h"

/*
 * The datagrams of batches committed at or after since_ms: this appliance's
 * own (from every lane's sink and spool) when others is false, the other
 * appliances' (from the sinks) when true, added to *set (created if NULL).
 * Uses the lanes' sinks (opened if need be): call before the writer's thread
 * runs, or with lanes of one's own. 0, or a negative errno with err (a sink
 * that cannot answer: the caller decides).
 */
int tally_committed_load(struct tally_lane *lanes, unsigned nlanes, const char *appliance,
			 bool others, int64_t since_ms, struct tally_dgset **set, char *err,
			 size_t errlen);

/*
 * Failover: every refresh_ms a thread of its own (own sink connections) reads
 * what the other appliances committed in the last horizon_ms and offers the
 * control thread a new set (this appliance's from the start, while they are
 * within the horizon, and the others'), which it swaps into the workers'
 * params (tally_committed_take).
 */
struct tally_committed_refresher {
	struct tally_lane lanes[TALLY_SHARD_MAX];
	unsigned nlanes;
	const char *appliance;
	uint64_t horizon_ms, refresh_ms;
	const struct tally_dgset *own; /* read only; the control thread frees it */
	uint64_t own_until_ms;         /* tally_mono_ms(): own is past the horizon */
	struct tally_dgset *next;      /* ck_pr: offered, not yet taken */
	uint64_t refreshes, errors;    /* ck_pr */
	char last_err[320];
	int stop;                      /* ck_pr */
	pthread_t thread;
	bool running;
};

/* Copy the writer's lanes (names and openers, not connections) and start. */
int tally_committed_start(struct tally_committed_refresher *r, const struct tally_writer *w,
			  char *err, size_t errlen);
/* The newest offered set, or NULL (the control thread owns it from now on). */
struct tally_dgset *tally_committed_take(struct tally_committed_refresher *r);
void tally_committed_stop(struct tally_committed_refresher *r);

#endif
