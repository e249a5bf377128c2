/* curl_loop.c: libcurl's multi interface on loop.c's fds and timers; the one place that bridge lives. */
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>

#include "curl_loop.h"
#include "loop.h"

struct curl_loop {
	struct loop *loop;
	CURLM *multi;
	uint64_t timer;
	int adopted;             /* a socket its owner watches itself, or -1 */
	curl_loop_cb progress;
	void *arg;
};

static void
on_fd(struct loop *loop, int fd, short revents, void *arg)
{
	(void)loop;
	struct curl_loop *cl = arg;
	int flags = (revents & POLLIN ? CURL_CSELECT_IN : 0) | (revents & POLLOUT ? CURL_CSELECT_OUT : 0) |
		(revents & (POLLERR | POLLHUP | POLLNVAL) ? CURL_CSELECT_ERR : 0);
	int running;
	curl_multi_socket_action(cl->multi, fd, flags, &running);
	cl->progress(cl->arg);
}

static int
on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	(void)easy, (void)socketp;
	struct curl_loop *cl = userp;
	if ((int)s == cl->adopted)
		return 0;
	if (what == CURL_POLL_REMOVE) {
		loop_fd_del(cl->loop, (int)s);
		return 0;
	}
	short ev = (short)((what & CURL_POLL_IN ? POLLIN : 0) | (what & CURL_POLL_OUT ? POLLOUT : 0));
	loop_fd_add(cl->loop, (int)s, ev, on_fd, cl);
	return 0;
}

static int64_t
on_timer(struct loop *loop, void *arg)
{
	(void)loop;
	struct curl_loop *cl = arg;
	cl->timer = 0;   /* ours ends now; curl may ask for a new one below */
	int running;
	curl_multi_socket_action(cl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	cl->progress(cl->arg);
	return LOOP_STOP;
}

static int
on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	struct curl_loop *cl = userp;
	if (cl->timer)
		loop_timer_del(cl->loop, cl->timer);
	cl->timer = 0;
	/* -1 deletes; 0 means "as soon as possible", which the loop runs next turn */
	if (timeout_ms >= 0)
		cl->timer = loop_timer_add(cl->loop, timeout_ms, on_timer, cl);
	return 0;
}

struct curl_loop *
curl_loop_new(struct loop *loop, curl_loop_cb progress, void *arg, struct buf *err)
{
	static bool global;
	if (!global && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		buf_printf(err, "cannot initialise libcurl");
		return NULL;
	}
	global = true;
	CURLM *multi = curl_multi_init();
	if (!multi) {
		buf_printf(err, "cannot create a libcurl multi handle");
		return NULL;
	}
	struct curl_loop *cl = xcalloc(1, sizeof *cl);
	*cl = (struct curl_loop){ .loop = loop, .multi = multi, .adopted = -1, .progress = progress, .arg = arg };
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, cl);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(multi, CURLMOPT_TIMERDATA, cl);
	return cl;
}

CURLM *
curl_loop_multi(const struct curl_loop *cl)
{
	return cl->multi;
}

void
curl_loop_adopt(struct curl_loop *cl, int fd)
{
	cl->adopted = fd;
}

void
curl_loop_free(struct curl_loop *cl)
{
	if (!cl)
		return;
	if (cl->timer)
		loop_timer_del(cl->loop, cl->timer);
	curl_multi_cleanup(cl->multi);
	free(cl);
}
