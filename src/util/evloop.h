/*
 * A small epoll event loop: one per reactor thread. File descriptors with a
 * callback, a once-a-second tick for timeouts, and deferred calls that run
 * after the current event (so completions never re-enter their caller).
 */
#ifndef UTIL_EVLOOP_H
#define UTIL_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

struct ev_loop;
struct ev_handler;

typedef void (*ev_fd_cb)(struct ev_handler *h, uint32_t events);
typedef void (*ev_call_cb)(void *arg);

/* Embed in the object that owns the fd. */
struct ev_handler {
	int fd;
	ev_fd_cb cb;
	void *arg;
};

struct ev_loop *ev_loop_new(void);
void ev_loop_free(struct ev_loop *loop);

int ev_add(struct ev_loop *loop, struct ev_handler *h, uint32_t events);
int ev_mod(struct ev_loop *loop, struct ev_handler *h, uint32_t events);
void ev_del(struct ev_loop *loop, struct ev_handler *h);

/* Runs cb(arg) once a second while the loop runs. Up to 16 ticks. */
int ev_tick_add(struct ev_loop *loop, ev_call_cb cb, void *arg);

/* Runs cb(arg) after the current callback returns, in FIFO order.
 * Uses a ring of fixed size: callers must not queue without bound. */
int ev_defer(struct ev_loop *loop, ev_call_cb cb, void *arg);

/* Runs until ev_loop_stop(). */
void ev_loop_run(struct ev_loop *loop);
void ev_loop_stop(struct ev_loop *loop);
bool ev_loop_stopping(const struct ev_loop *loop);

/* Monotonic milliseconds. */
uint64_t ev_now_ms(void);

#endif
