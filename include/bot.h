/*
 * bot.h: the running bot.  Owns the config, the knowledge base, the responder,
 * the router and the transports, and swaps config and KB in one step on
 * reload (command or SIGHUP), connecting, dropping or restarting only the
 * networks whose sections changed.
 */
#ifndef KNEEBOT_BOT_H
#define KNEEBOT_BOT_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "event.h"

struct config;
struct kb;
struct loop;
struct transport;

struct bot;

struct bot *bot_new(struct loop *loop, struct config *config, struct kb *kb);
void bot_free(struct bot *bot);
/* Starts every configured transport, plus the console when asked. */
int bot_start(struct bot *bot, bool console, struct buf *err);
/* Re-reads config and KB; on any error keeps the old ones and explains in err. */
int bot_reload(struct bot *bot, struct buf *err);
/* Asks every transport to say goodbye, then stops the loop (bounded wait). */
void bot_quit(struct bot *bot, const char *reason);
void bot_status(struct bot *bot, struct buf *out);
bool bot_is_admin(const struct bot *bot, const struct event *ev);
bool bot_is_ignored(const struct bot *bot, const struct event *ev);
struct transport *bot_transport(struct bot *bot, const char *name);
const struct kb *bot_kb(const struct bot *bot);
const struct config *bot_config(const struct bot *bot);
struct loop *bot_loop(struct bot *bot);
int64_t bot_started_ms(const struct bot *bot);

/* Glob match for masks and ids: '*' any run, '?' one byte; case-insensitive when fold. */
bool glob_match(const char *pattern, const char *s, bool fold);

#endif
