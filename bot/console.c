/*
 * console.c: stdin/stdout as a transport, to try the bot locally.  Each line
 * typed is a private message from the operator, who counts as an admin, and
 * goes through the same router as any network.  End of input quits the bot.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bot.h"
#include "buf.h"
#include "log.h"
#include "loop.h"
#include "router.h"
#include "transport.h"

#define CONSOLE_MAX_LINE 65536

struct console {
	struct buf in;
	bool tty, eof, stopped;
	struct bot *bot;
	char user[64];
};

static void
prompt(struct console *c)
{
	if (c->tty && !c->eof) {
		fputs("> ", stdout);
		fflush(stdout);
	}
}

static void
deliver(struct transport *t, const char *line, size_t n)
{
	struct console *c = t->impl;
	struct event ev = {
		.transport = t, .room = "console", .sender = c->user, .account = "console",
		.text = line, .text_len = n, .is_private = true, .addressed = true,
	};
	router_dispatch(t->router, &ev);
}

static void
on_stdin(struct loop *loop, int fd, short revents, void *arg)
{
	struct transport *t = arg;
	struct console *c = t->impl;
	(void)revents;
	char chunk[4096];
	ssize_t n = read(fd, chunk, sizeof chunk);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (c->in.len)
			deliver(t, c->in.s, c->in.len);
		buf_clear(&c->in);
		c->eof = true;
		loop_fd_del(loop, fd);
		if (c->bot)
			bot_quit(c->bot, "end of input");
		return;
	}
	buf_add(&c->in, chunk, (size_t)n);
	char *nl;
	while (c->in.len && (nl = memchr(c->in.s, '\n', c->in.len))) {
		size_t len = (size_t)(nl - c->in.s);
		size_t l = len;
		if (l && c->in.s[l - 1] == '\r')
			l--;
		deliver(t, c->in.s, l);
		memmove(c->in.s, nl + 1, c->in.len - len - 1);
		c->in.len -= len + 1;
		c->in.s[c->in.len] = '\0';
		prompt(c);
	}
	if (c->in.len > CONSOLE_MAX_LINE) {
		log_warnx("console: line longer than %d bytes, dropped", CONSOLE_MAX_LINE);
		buf_clear(&c->in);
	}
}

static int
console_start(struct transport *t, struct buf *err)
{
	(void)err;
	struct console *c = t->impl;
	int fl = fcntl(STDIN_FILENO, F_GETFL);
	if (fl >= 0)
		fcntl(STDIN_FILENO, F_SETFL, fl | O_NONBLOCK);
	loop_fd_add(t->loop, STDIN_FILENO, POLLIN, on_stdin, t);
	if (c->tty)
		printf("kneebot: tell me about your knee, or type !help. Ctrl-D quits.\n");
	prompt(c);
	return 0;
}

static void
console_send(struct transport *t, const struct reply *r)
{
	(void)t;
	fputs(r->text, stdout);
	fputc('\n', stdout);
	fflush(stdout);
}

static void
console_stop(struct transport *t, const char *reason)
{
	struct console *c = t->impl;
	(void)reason;
	if (!c->eof)
		loop_fd_del(t->loop, STDIN_FILENO);
	c->stopped = true;
}

static bool
console_stopped(const struct transport *t)
{
	return ((struct console *)t->impl)->stopped;
}

static void
console_destroy(struct transport *t)
{
	struct console *c = t->impl;
	int fl = fcntl(STDIN_FILENO, F_GETFL);
	if (fl >= 0)
		fcntl(STDIN_FILENO, F_SETFL, fl & ~O_NONBLOCK);
	buf_free(&c->in);
	free(c);
	transport_free_common(t);
}

static void
console_describe(const struct transport *t, struct buf *out)
{
	const struct console *c = t->impl;
	buf_printf(out, "console (%s)", c->eof ? "closed" : "open");
}

static const struct transport_ops console_ops = {
	.start = console_start,
	.send = console_send,
	.stop = console_stop,
	.stopped = console_stopped,
	.destroy = console_destroy,
	.describe = console_describe,
};

static struct transport *
console_create(const struct transport_env *env, const struct conf_section *s, struct buf *err)
{
	(void)err;
	struct transport *t = transport_alloc(&console_kind, env, s, "console");
	struct console *c = xcalloc(1, sizeof *c);
	buf_init(&c->in);
	c->tty = isatty(STDIN_FILENO);
	c->bot = env->bot;
	const char *u = getenv("USER");
	snprintf(c->user, sizeof c->user, "%s", u && *u ? u : "you");
	t->impl = c;
	t->ops = &console_ops;
	t->budget = (struct budget){ .max_lines = 0, .line_bytes = 0, .html = false };
	return t;
}

const struct transport_kind console_kind = {
	.name = "console",
	.validate = NULL,
	.create = console_create,
};
