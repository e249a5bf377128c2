/*
 * loop.h: the one single-threaded event loop.  poll() over registered file
 * descriptors, one-shot or repeating timers on the monotonic clock, and
 * signals turned into flags through a self-pipe.  Transports register what
 * they want and are called back; none of them calls poll() itself.
 */
#ifndef KNEEBOT_LOOP_H
#define KNEEBOT_LOOP_H

#include <stdint.h>

struct loop;

/* revents is a mask of POLLIN, POLLOUT, POLLERR, POLLHUP. */
typedef void (*loop_fd_cb)(struct loop *loop, int fd, short revents, void *arg);
/* Returns the next delay in ms to repeat, or LOOP_STOP. */
typedef int64_t (*loop_timer_cb)(struct loop *loop, void *arg);
typedef void (*loop_signal_cb)(struct loop *loop, int signo, void *arg);

#define LOOP_STOP (-1)

struct loop *loop_new(void);
void loop_free(struct loop *loop);

/* One registration per fd; adding a registered fd replaces it. */
int loop_fd_add(struct loop *loop, int fd, short events, loop_fd_cb cb, void *arg);
void loop_fd_events(struct loop *loop, int fd, short events);
void loop_fd_del(struct loop *loop, int fd);

/* Returns a timer id (> 0).  A delay of 0 runs on the next turn. */
uint64_t loop_timer_add(struct loop *loop, int64_t delay_ms, loop_timer_cb cb, void *arg);
void loop_timer_del(struct loop *loop, uint64_t id);

/* The handler runs in the loop, never in signal context. */
int loop_signal(struct loop *loop, int signo, loop_signal_cb cb, void *arg);

/* Runs until loop_stop(); returns 0, or -1 when poll() fails for good. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);
/* Runs one turn, waiting at most max_wait_ms (tests and benches). */
void loop_once(struct loop *loop, int max_wait_ms);

int64_t loop_now_ms(void);   /* monotonic milliseconds */
int64_t loop_now_us(void);   /* monotonic microseconds */

#endif
