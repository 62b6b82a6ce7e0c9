/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control thread's event loop: epoll over non-blocking descriptors and
 * timerfd timers, as Redis's ae.c does. Periodic work (dedup generations every
 * 2 ms, the clock re-anchor, stop conditions) runs as timers and never waits on
 * a client: clients are non-blocking and served a piece at a time.
 *
 * A timer that fires late by whole periods (timerfd counts expirations) adds
 * the periods it missed to `late`: the ctl_late_ticks counter.
 */
#ifndef TALLY_LOOP_H
#define TALLY_LOOP_H

#include <stdint.h>

#define TALLY_LOOP_MAX_TIMERS 8

struct tally_loop;
/* A ready descriptor: events is epoll's mask. */
typedef void (*tally_loop_fd_cb)(struct tally_loop *l, int fd, uint32_t events, void *arg);
typedef void (*tally_loop_timer_cb)(struct tally_loop *l, void *arg);

struct tally_loop_timer {
	int fd;
	tally_loop_timer_cb cb;
	void *arg;
};

/* What the loop keeps per descriptor: epoll_event.data.ptr points here. */
struct tally_loop_handler {
	int fd;
	tally_loop_fd_cb cb;
	void *arg;
};

struct tally_loop {
	int epfd;
	unsigned ntimers;
	struct tally_loop_timer timers[TALLY_LOOP_MAX_TIMERS];
	struct tally_loop_handler timer_h[TALLY_LOOP_MAX_TIMERS];
	uint64_t late;  /* timer periods missed */
	uint64_t ticks; /* timer callbacks run */
};

/* 0 or a negative errno. */
int tally_loop_init(struct tally_loop *l);
void tally_loop_fini(struct tally_loop *l);
/* Call cb every period_ms. 0 or a negative errno. */
int tally_loop_timer(struct tally_loop *l, unsigned period_ms, tally_loop_timer_cb cb, void *arg);
/* Watch h->fd for events (EPOLLIN, EPOLLOUT...); h must live until removed. */
int tally_loop_watch(struct tally_loop *l, struct tally_loop_handler *h, uint32_t events);
int tally_loop_rewatch(struct tally_loop *l, struct tally_loop_handler *h, uint32_t events);
void tally_loop_unwatch(struct tally_loop *l, struct tally_loop_handler *h);
/* Wait up to timeout_ms and run what is ready. */
void tally_loop_once(struct tally_loop *l, int timeout_ms);

#endif
