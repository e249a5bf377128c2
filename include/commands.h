/*
 * commands.h: what members type after the prefix ("!exercise band walk").
 * A sorted table of {name, handler, flags}, found with bsearch; every handler
 * writes its answer into ctx->out within ctx->budget and never sends.
 */
#ifndef KNEEBOT_COMMANDS_H
#define KNEEBOT_COMMANDS_H

#include <stdbool.h>

#include "buf.h"
#include "event.h"

struct bot;
struct config;
struct kb;

enum command_flags {
	CMD_ADMIN = 1 << 0,   /* only for identities listed in admins */
	CMD_HIDDEN = 1 << 1,  /* not listed by help */
};

struct cmd_ctx {
	const struct event *ev;
	const struct kb *kb;
	const struct config *config;
	const struct budget *budget;
	const char *prefix;
	struct bot *bot;
	bool admin;
	struct buf *out;   /* plain text, '\n' between lines */
	unsigned flags;    /* reply flags to set (REPLY_REDFLAG ...) */
};

struct command {
	const char *name;
	void (*handler)(struct cmd_ctx *ctx, const char *args);
	unsigned flags;
	const char *usage;    /* "exercise NAME" */
	const char *summary;  /* one line */
	const char *example;  /* "exercise band walk" */
};

const struct command *command_find(const char *name);
size_t command_count(void);
const struct command *command_at(size_t i);
/*
 * Runs line (the text after the prefix).  Returns false when the command is
 * admin-only and ctx->admin is false (ctx->out then holds the refusal).
 */
bool commands_run(struct cmd_ctx *ctx, const char *line);

#endif
