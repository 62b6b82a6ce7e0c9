/* SPDX-License-Identifier: BSD-3-Clause */
/* epoll + timerfd event loop for the control thread (loop.h). */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

#include "loop.h"

int tally_loop_init(struct tally_loop *l)
{
	memset(l, 0, sizeof(*l));
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	return l->epfd < 0 ? -errno : 0;
}

void tally_loop_fini(struct tally_loop *l)
{
	for (unsigned i = 0; i < l->ntimers; i++)
		close(l->timers[i].fd);
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
	l->ntimers = 0;
}

static void on_timer(struct tally_loop *l, int fd, uint32_t events, void *arg)
{
	struct tally_loop_timer *t = arg;
	uint64_t n;

	(void)events;
	if (read(fd, &n, sizeof(n)) != sizeof(n) || n == 0)
		return;
	l->late += n - 1;
	l->ticks++;
	t->cb(l, t->arg);
}

int tally_loop_timer(struct tally_loop *l, unsigned period_ms, tally_loop_timer_cb cb, void *arg)
{
	struct itimerspec its = {
		.it_interval = {period_ms / 1000, (long)(period_ms % 1000) * 1000000},
		.it_value = {period_ms / 1000, (long)(period_ms % 1000) * 1000000},
	};
	struct tally_loop_timer *t;
	int fd, r;

	if (l->ntimers == TALLY_LOOP_MAX_TIMERS)
		return -ENOSPC;
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (timerfd_settime(fd, 0, &its, NULL) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	t = &l->timers[l->ntimers];
	*t = (struct tally_loop_timer){fd, cb, arg};
	l->timer_h[l->ntimers] = (struct tally_loop_handler){fd, on_timer, t};
	r = tally_loop_watch(l, &l->timer_h[l->ntimers], EPOLLIN);
	if (r < 0) {
		close(fd);
		return r;
	}
	l->ntimers++;
	return 0;
}

int tally_loop_watch(struct tally_loop *l, struct tally_loop_handler *h, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = h};

	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, h->fd, &ev) < 0 ? -errno : 0;
}

int tally_loop_rewatch(struct tally_loop *l, struct tally_loop_handler *h, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = h};

	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, h->fd, &ev) < 0 ? -errno : 0;
}

void tally_loop_unwatch(struct tally_loop *l, struct tally_loop_handler *h)
{
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, h->fd, NULL);
}

void tally_loop_once(struct tally_loop *l, int timeout_ms)
{
	struct epoll_event ev[32];
	int n = epoll_wait(l->epfd, ev, 32, timeout_ms);

	/* Timers first: a burst of client events must not delay a tick. */
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < n; i++) {
			struct tally_loop_handler *h = ev[i].data.ptr;
			int is_timer = h->cb == on_timer;

			if (is_timer == (pass == 0))
				h->cb(l, h->fd, ev[i].events, h->arg);
		}
}
