#include "util/evloop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

#define EV_MAX_EVENTS 128
#define EV_MAX_TICKS 16

struct ev_deferred {
	ev_call_cb cb;
	void *arg;
};

struct ev_loop {
	int epfd;
	bool stop;
	struct {
		ev_call_cb cb;
		void *arg;
	} ticks[EV_MAX_TICKS];
	int nticks;
	uint64_t next_tick_ms;
	/* deferred calls: a ring that grows when full (rarely, never in steady state) */
	struct ev_deferred *defer;
	size_t defer_cap, defer_head, defer_len;
};

uint64_t ev_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct ev_loop *ev_loop_new(void)
{
	struct ev_loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->defer_cap = 256;
	loop->defer = calloc(loop->defer_cap, sizeof(*loop->defer));
	if (loop->epfd < 0 || !loop->defer) {
		ev_loop_free(loop);
		return NULL;
	}
	return loop;
}

void ev_loop_free(struct ev_loop *loop)
{
	if (!loop)
		return;
	if (loop->epfd >= 0)
		close(loop->epfd);
	free(loop->defer);
	free(loop);
}

static int ev_ctl(struct ev_loop *loop, int op, struct ev_handler *h, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = h };

	if (epoll_ctl(loop->epfd, op, h->fd, &ev) < 0)
		return -errno;
	return 0;
}

int ev_add(struct ev_loop *loop, struct ev_handler *h, uint32_t events)
{
	return ev_ctl(loop, EPOLL_CTL_ADD, h, events);
}

int ev_mod(struct ev_loop *loop, struct ev_handler *h, uint32_t events)
{
	return ev_ctl(loop, EPOLL_CTL_MOD, h, events);
}

void ev_del(struct ev_loop *loop, struct ev_handler *h)
{
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, h->fd, NULL);
}

int ev_tick_add(struct ev_loop *loop, ev_call_cb cb, void *arg)
{
	if (loop->nticks == EV_MAX_TICKS)
		return -ENOSPC;
	loop->ticks[loop->nticks].cb = cb;
	loop->ticks[loop->nticks].arg = arg;
	loop->nticks++;
	return 0;
}

int ev_defer(struct ev_loop *loop, ev_call_cb cb, void *arg)
{
	if (loop->defer_len == loop->defer_cap) {
		size_t ncap = loop->defer_cap * 2;
		struct ev_deferred *n = calloc(ncap, sizeof(*n));

		if (!n)
			return -ENOMEM;
		for (size_t i = 0; i < loop->defer_len; i++)
			n[i] = loop->defer[(loop->defer_head + i) % loop->defer_cap];
		free(loop->defer);
		loop->defer = n;
		loop->defer_cap = ncap;
		loop->defer_head = 0;
	}
	size_t tail = (loop->defer_head + loop->defer_len) % loop->defer_cap;

	loop->defer[tail].cb = cb;
	loop->defer[tail].arg = arg;
	loop->defer_len++;
	return 0;
}

static void ev_run_deferred(struct ev_loop *loop)
{
	/* calls queued while running run in this same pass: completions chain */
	while (loop->defer_len) {
		struct ev_deferred d = loop->defer[loop->defer_head];

		loop->defer_head = (loop->defer_head + 1) % loop->defer_cap;
		loop->defer_len--;
		d.cb(d.arg);
	}
}

static void ev_run_ticks(struct ev_loop *loop)
{
	uint64_t now = ev_now_ms();

	if (now < loop->next_tick_ms)
		return;
	loop->next_tick_ms = now + 1000;
	for (int i = 0; i < loop->nticks; i++)
		loop->ticks[i].cb(loop->ticks[i].arg);
}

void ev_loop_run(struct ev_loop *loop)
{
	struct epoll_event events[EV_MAX_EVENTS];

	loop->stop = false;
	loop->next_tick_ms = ev_now_ms() + 1000;
	while (!loop->stop) {
		int timeout = loop->defer_len ? 0 : 250;
		int n = epoll_wait(loop->epfd, events, EV_MAX_EVENTS, timeout);

		if (n < 0 && errno != EINTR) {
			log_err("epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			struct ev_handler *h = events[i].data.ptr;

			h->cb(h, events[i].events);
		}
		/* after the whole batch: a deferred free never leaves a later
		 * event of the batch pointing at freed memory */
		ev_run_deferred(loop);
		ev_run_ticks(loop);
	}
	/* a tick that stopped the loop may have queued frees: run them */
	ev_run_deferred(loop);
}

void ev_loop_stop(struct ev_loop *loop)
{
	loop->stop = true;
}

bool ev_loop_stopping(const struct ev_loop *loop)
{
	return loop->stop;
}
