/*
 * router.h: event -> command or responder -> reply -> the same transport.
 * The only module that knows both transports and the responder.  It applies
 * the ignore list, the per-person cooldown and the per-room cap, keeps the
 * short per-person memory, and counts what it sees (counts only, no text).
 */
#ifndef KNEEBOT_ROUTER_H
#define KNEEBOT_ROUTER_H

#include <stdint.h>

#include "event.h"

struct bot;
struct config;
struct responder;
struct router;

struct router_totals {
	uint64_t seen, replies, redflags, commands, held_back;
};

struct router *router_new(struct bot *bot);
void router_free(struct router *r);
/* Swaps in a new config and responder (reload); the old ones stay the caller's. */
void router_set(struct router *r, const struct config *c, struct responder *resp);
void router_dispatch(struct router *r, const struct event *ev);
const struct router_totals *router_totals(const struct router *r);
/* Drops memory and rate entries that have expired (called from a loop timer). */
void router_tick(struct router *r, int64_t now_ms);

#endif
