/* loop.c: poll() over registered fds, monotonic timers, signals via a self-pipe. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "loop.h"

struct fdreg {
	int fd;
	short events;
	uint64_t gen;      /* tells a re-registered fd number from the one polled */
	loop_fd_cb cb;
	void *arg;
};

struct timer {
	uint64_t id;
	int64_t due_ms;
	uint64_t turn;     /* the turn it last ran in, so a 0 ms repeat waits a turn */
	loop_timer_cb cb;
	void *arg;
};

struct loop {
	struct fdreg *fds;
	size_t nfds, capfds;
	struct pollfd *pfds;
	uint64_t *pgen;
	size_t cappfds;
	struct timer *timers;
	size_t ntimers, captimers;
	uint64_t next_id, next_gen, turn;
	bool stop;
	int sigpipe[2];
	struct { loop_signal_cb cb; void *arg; } sigs[NSIG];
};

/* The signal handler writes here; one loop per process owns signals. */
static int signal_fd = -1;

int64_t
loop_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
loop_now_ms(void)
{
	return loop_now_us() / 1000;
}

static void
on_signal(int signo)
{
	int e = errno;
	unsigned char c = (unsigned char)signo;
	if (signal_fd >= 0 && write(signal_fd, &c, 1) < 0) {
		/* pipe full: a signal of each kind is already pending */
	}
	errno = e;
}

static void
drain_signals(struct loop *loop, int fd, short revents, void *arg)
{
	(void)revents, (void)arg;
	unsigned char sigs[64];
	ssize_t n;
	while ((n = read(fd, sigs, sizeof sigs)) > 0)
		for (ssize_t i = 0; i < n; i++)
			if (sigs[i] < NSIG && loop->sigs[sigs[i]].cb)
				loop->sigs[sigs[i]].cb(loop, sigs[i], loop->sigs[sigs[i]].arg);
}

struct loop *
loop_new(void)
{
	struct loop *loop = xcalloc(1, sizeof *loop);
	loop->next_id = 1;
	loop->sigpipe[0] = loop->sigpipe[1] = -1;
	return loop;
}

void
loop_free(struct loop *loop)
{
	if (!loop)
		return;
	if (loop->sigpipe[0] >= 0) {
		for (int s = 1; s < NSIG; s++)
			if (loop->sigs[s].cb)
				signal(s, SIG_DFL);
		signal_fd = -1;
		close(loop->sigpipe[0]);
		close(loop->sigpipe[1]);
	}
	free(loop->fds);
	free(loop->pfds);
	free(loop->pgen);
	free(loop->timers);
	free(loop);
}

static struct fdreg *
find_fd(struct loop *loop, int fd)
{
	for (size_t i = 0; i < loop->nfds; i++)
		if (loop->fds[i].fd == fd)
			return &loop->fds[i];
	return NULL;
}

int
loop_fd_add(struct loop *loop, int fd, short events, loop_fd_cb cb, void *arg)
{
	if (fd < 0)
		return -1;
	struct fdreg *r = find_fd(loop, fd);
	if (!r) {
		if (loop->nfds == loop->capfds) {
			loop->capfds = loop->capfds ? loop->capfds * 2 : 16;
			loop->fds = xrealloc(loop->fds, loop->capfds * sizeof *loop->fds);
		}
		r = &loop->fds[loop->nfds++];
	}
	r->fd = fd;
	r->events = events;
	r->gen = ++loop->next_gen;
	r->cb = cb;
	r->arg = arg;
	return 0;
}

void
loop_fd_events(struct loop *loop, int fd, short events)
{
	struct fdreg *r = find_fd(loop, fd);
	if (r)
		r->events = events;
}

void
loop_fd_del(struct loop *loop, int fd)
{
	for (size_t i = 0; i < loop->nfds; i++) {
		if (loop->fds[i].fd == fd) {
			loop->fds[i] = loop->fds[--loop->nfds];
			return;
		}
	}
}

uint64_t
loop_timer_add(struct loop *loop, int64_t delay_ms, loop_timer_cb cb, void *arg)
{
	if (loop->ntimers == loop->captimers) {
		loop->captimers = loop->captimers ? loop->captimers * 2 : 16;
		loop->timers = xrealloc(loop->timers, loop->captimers * sizeof *loop->timers);
	}
	struct timer *t = &loop->timers[loop->ntimers++];
	t->id = loop->next_id++;
	t->due_ms = loop_now_ms() + (delay_ms > 0 ? delay_ms : 0);
	t->turn = delay_ms > 0 ? 0 : loop->turn;   /* 0 ms: next turn, not this one */
	t->cb = cb;
	t->arg = arg;
	return t->id;
}

void
loop_timer_del(struct loop *loop, uint64_t id)
{
	for (size_t i = 0; i < loop->ntimers; i++) {
		if (loop->timers[i].id == id) {
			loop->timers[i] = loop->timers[--loop->ntimers];
			return;
		}
	}
}

int
loop_signal(struct loop *loop, int signo, loop_signal_cb cb, void *arg)
{
	if (signo <= 0 || signo >= NSIG)
		return -1;
	if (loop->sigpipe[0] < 0) {
		if (pipe2(loop->sigpipe, O_CLOEXEC | O_NONBLOCK) < 0)
			return -1;
		signal_fd = loop->sigpipe[1];
		loop_fd_add(loop, loop->sigpipe[0], POLLIN, drain_signals, NULL);
	}
	loop->sigs[signo].cb = cb;
	loop->sigs[signo].arg = arg;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	return sigaction(signo, &sa, NULL);
}

/* Runs every timer due by now once; returns ms until the next one, or -1. */
static int64_t
run_timers(struct loop *loop)
{
	int64_t now = loop_now_ms();
	for (;;) {
		struct timer *due = NULL;
		for (size_t i = 0; i < loop->ntimers; i++) {
			struct timer *t = &loop->timers[i];
			if (t->due_ms <= now && t->turn != loop->turn && (!due || t->due_ms < due->due_ms))
				due = t;
		}
		if (!due || loop->stop)
			break;
		uint64_t id = due->id;
		due->turn = loop->turn;
		loop_timer_cb cb = due->cb;
		void *arg = due->arg;
		int64_t next = cb(loop, arg);
		/* the callback may have added or deleted timers: find ours again */
		for (size_t i = 0; i < loop->ntimers; i++) {
			if (loop->timers[i].id != id)
				continue;
			if (next < 0)
				loop->timers[i] = loop->timers[--loop->ntimers];
			else
				loop->timers[i].due_ms = loop_now_ms() + next;
			break;
		}
	}
	int64_t wait = -1;
	now = loop_now_ms();
	for (size_t i = 0; i < loop->ntimers; i++) {
		int64_t d = loop->timers[i].due_ms - now;
		if (loop->timers[i].turn == loop->turn && d <= 0)
			d = 0;   /* a 0 ms repeat: poll without waiting, run it next turn */
		if (d < 0)
			d = 0;
		if (wait < 0 || d < wait)
			wait = d;
	}
	return wait;
}

void
loop_once(struct loop *loop, int max_wait_ms)
{
	loop->turn++;
	int64_t wait = run_timers(loop);
	if (loop->stop)
		return;
	if (max_wait_ms >= 0 && (wait < 0 || wait > max_wait_ms))
		wait = max_wait_ms;
	if (loop->nfds > loop->cappfds) {
		loop->cappfds = loop->nfds;
		loop->pfds = xrealloc(loop->pfds, loop->cappfds * sizeof *loop->pfds);
		loop->pgen = xrealloc(loop->pgen, loop->cappfds * sizeof *loop->pgen);
	}
	size_t n = loop->nfds;
	for (size_t i = 0; i < n; i++) {
		loop->pfds[i].fd = loop->fds[i].fd;
		loop->pfds[i].events = loop->fds[i].events;
		loop->pfds[i].revents = 0;
		loop->pgen[i] = loop->fds[i].gen;
	}
	int r = poll(loop->pfds, n, wait > INT32_MAX ? INT32_MAX : (int)wait);
	if (r < 0) {
		if (errno != EINTR)
			log_warn("poll");
		return;
	}
	for (size_t i = 0; i < n && r > 0 && !loop->stop; i++) {
		if (!loop->pfds[i].revents)
			continue;
		r--;
		/* an earlier callback may have removed or replaced this registration */
		struct fdreg *reg = find_fd(loop, loop->pfds[i].fd);
		if (!reg || reg->gen != loop->pgen[i])
			continue;
		reg->cb(loop, reg->fd, loop->pfds[i].revents, reg->arg);
	}
}

int
loop_run(struct loop *loop)
{
	loop->stop = false;
	while (!loop->stop)
		loop_once(loop, -1);
	return 0;
}

void
loop_stop(struct loop *loop)
{
	loop->stop = true;
}
