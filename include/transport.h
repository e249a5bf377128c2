/*
 * transport.h: what every network type (console, IRC, Matrix) offers the rest
 * of the bot.  A transport registers its fds and timers with the loop, turns
 * what it reads into struct event for router_dispatch(), and sends the
 * struct reply it is handed back.  A failing link marks itself down and
 * reconnects on its own timer; the other transports carry on.  A new network
 * type is one new file plus a line in bot/transport.c.
 */
#ifndef KNEEBOT_TRANSPORT_H
#define KNEEBOT_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "event.h"

struct bot;
struct loop;
struct router;
struct store;
struct transport;

struct transport_ops {
	/* Starts connecting; returns -1 with a message in err when it cannot even try. */
	int (*start)(struct transport *t, struct buf *err);
	/* Queues a reply; never blocks. */
	void (*send)(struct transport *t, const struct reply *r);
	/* Says goodbye (IRC QUIT) and flushes what it can without blocking the loop. */
	void (*stop)(struct transport *t, const char *reason);
	/* True once stop() has nothing left to flush. */
	bool (*stopped)(const struct transport *t);
	void (*destroy)(struct transport *t);
	/* One line for !status: "connected to irc.example.net, 3 channels". */
	void (*describe)(const struct transport *t, struct buf *out);
	/* Optional (NULL when the network has no such notion). */
	int (*join)(struct transport *t, const char *room, struct buf *err);
	int (*part)(struct transport *t, const char *room, struct buf *err);
	/*
	 * Optional: could this network take the changed section ns of config nc
	 * without reconnecting (say, only its channels changed)?  Pure; asked
	 * before a reload commits.
	 */
	bool (*compatible)(const struct transport *t, const struct config *nc, const struct conf_section *ns);
	/*
	 * Optional: the config was reloaded and this network's section is
	 * unchanged or compatible; t->config and t->conf already point at the
	 * new ones.  Apply what changed (join new channels, part removed ones).
	 */
	void (*reconfigure)(struct transport *t);
};

struct transport_stats {
	uint64_t seen, replies, redflags;
};

struct transport {
	const struct transport_ops *ops;
	const struct transport_kind *kind;
	char *name;                      /* section name; "console" for the console */
	/*
	 * Current config and this network's section.  Re-pointed on reload when
	 * the section is unchanged, so read them during callbacks only; copy what
	 * must be kept.
	 */
	const struct config *config;
	const struct conf_section *conf;
	struct loop *loop;
	struct router *router;
	struct budget budget;
	struct transport_stats stats;
	void *impl;
};

struct transport_env {
	struct loop *loop;
	struct router *router;
	const struct config *config;
	struct bot *bot;        /* only the console uses it: end of input quits */
};

struct transport_kind {
	const char *name;   /* the "irc" of [irc.NAME] */
	/* Checks a section, appending "file:line: message" lines to err; returns -1 on error. */
	int (*validate)(const struct config *c, const struct conf_section *s, struct buf *err);
	struct transport *(*create)(const struct transport_env *env, const struct conf_section *s, struct buf *err);
};

const struct transport_kind *transport_kind_find(const char *name);
/* Allocates the common part; the kind fills ops and impl. */
struct transport *transport_alloc(const struct transport_kind *kind, const struct transport_env *env,
	const struct conf_section *s, const char *name);
void transport_free_common(struct transport *t);

extern const struct transport_kind console_kind;

#endif
