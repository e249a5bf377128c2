/* loop_test.c: timers in order, fd callbacks, signals through the self-pipe. */
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include "loop.h"
#include "t.h"

static int order[8], norder;

static int64_t
once(struct loop *loop, void *arg)
{
	(void)loop;
	order[norder++] = (int)(long)arg;
	return LOOP_STOP;
}

static int repeats;

static int64_t
again(struct loop *loop, void *arg)
{
	(void)arg;
	if (++repeats == 3)
		loop_stop(loop);
	return 1;
}

static char got[16];

static void
on_read(struct loop *loop, int fd, short revents, void *arg)
{
	(void)arg;
	T_OK(revents & POLLIN, "fd callback sees POLLIN");
	ssize_t n = read(fd, got, sizeof got - 1);
	got[n > 0 ? n : 0] = '\0';
	loop_fd_del(loop, fd);
	loop_stop(loop);
}

static int signalled;

static void
on_sig(struct loop *loop, int signo, void *arg)
{
	(void)arg;
	signalled = signo;
	loop_stop(loop);
}

static int64_t
deleter(struct loop *loop, void *arg)
{
	loop_timer_del(loop, *(uint64_t *)arg);   /* a later timer deleted by an earlier one */
	return LOOP_STOP;
}

int
main(void)
{
	struct loop *loop = loop_new();
	loop_timer_add(loop, 30, once, (void *)3L);
	loop_timer_add(loop, 10, once, (void *)1L);
	loop_timer_add(loop, 20, once, (void *)2L);
	int64_t t0 = loop_now_ms();
	while (norder < 3 && loop_now_ms() - t0 < 2000)
		loop_once(loop, 100);
	T_OK(norder == 3 && order[0] == 1 && order[1] == 2 && order[2] == 3, "timers fire in deadline order");

	loop_timer_add(loop, 0, again, NULL);
	loop_run(loop);
	T_OK(repeats == 3, "a repeating timer repeats until stopped");

	int p[2];
	T_OK(pipe(p) == 0, "pipe");
	loop_fd_add(loop, p[0], POLLIN, on_read, NULL);
	T_OK(write(p[1], "hello", 5) == 5, "write");
	loop_run(loop);
	T_STREQ(got, "hello", "fd callback reads what was written");
	close(p[0]);
	close(p[1]);

	uint64_t victim = 0;
	loop_timer_add(loop, 5, deleter, &victim);
	victim = loop_timer_add(loop, 6, once, (void *)9L);
	norder = 0;
	t0 = loop_now_ms();
	while (loop_now_ms() - t0 < 50)
		loop_once(loop, 10);
	T_OK(norder == 0, "a timer deleted by another never fires");

	loop_signal(loop, SIGUSR1, on_sig, NULL);
	raise(SIGUSR1);
	loop_run(loop);
	T_OK(signalled == SIGUSR1, "a signal reaches its handler through the loop");
	loop_free(loop);
	T_EXIT();
}
