/*
 * router.c: event -> command or responder -> reply -> the same transport.
 * The one place that knows both the transports and the responder; it also
 * keeps the manners (ignore list, per-person cooldown, per-room cap) and the
 * short per-person memory.  It logs what it decides, never what was said.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "bot.h"
#include "buf.h"
#include "commands.h"
#include "config.h"
#include "log.h"
#include "loop.h"
#include "memory.h"
#include "ratelimit.h"
#include "responder.h"
#include "router.h"
#include "transport.h"

struct router {
	struct bot *bot;
	const struct config *config;
	struct responder *resp;
	struct memory *mem;
	struct roomcap *cap;
	struct router_totals totals;
	struct buf text, html;
};

struct router *
router_new(struct bot *bot)
{
	struct router *r = xcalloc(1, sizeof *r);
	r->bot = bot;
	r->mem = memory_new();
	r->cap = roomcap_new();
	buf_init(&r->text);
	buf_init(&r->html);
	return r;
}

void
router_free(struct router *r)
{
	if (!r)
		return;
	memory_free(r->mem);
	roomcap_free(r->cap);
	buf_free(&r->text);
	buf_free(&r->html);
	free(r);
}

void
router_set(struct router *r, const struct config *c, struct responder *resp)
{
	r->config = c;
	/* triage in memory points into the old KB's cues: forget it with the KB */
	if (r->resp && r->resp != resp) {
		memory_free(r->mem);
		r->mem = memory_new();
	}
	r->resp = resp;
}

const struct router_totals *
router_totals(const struct router *r)
{
	return &r->totals;
}

void
router_tick(struct router *r, int64_t now_ms)
{
	memory_expire(r->mem, now_ms, r->config->bot.memory_s * 1000);
	roomcap_expire(r->cap, now_ms);
}

static void
send_reply(struct router *r, const struct event *ev, unsigned flags)
{
	struct transport *t = ev->transport;
	if (!r->text.len)
		return;
	struct reply rep = { ev, r->text.s, r->html.len ? r->html.s : NULL, flags };
	t->ops->send(t, &rep);
	r->totals.replies++;
	t->stats.replies++;
}

/* The command after the prefix, or NULL when the text is not one. */
static const char *
command_text(const char *text, size_t len, const char *prefix)
{
	size_t pn = strlen(prefix);
	if (len <= pn || strncmp(text, prefix, pn) != 0)
		return NULL;
	/* "!!!" or "! " is excitement, not a command */
	return isalpha((unsigned char)text[pn]) ? text + pn : NULL;
}

static bool
room_allows(struct router *r, const struct event *ev)
{
	struct transport *t = ev->transport;
	/* the cap keeps shared rooms readable; private chats are paced by the transport's flood control */
	if (ev->is_private)
		return true;
	long max = conf_net_long(r->config, t->conf, "room_max_per_min", r->config->bot.room_max_per_min);
	if (roomcap_take(r->cap, t->name, ev->room ? ev->room : "", max, loop_now_ms()))
		return true;
	r->totals.held_back++;
	log_info("%s: room cap of %ld answers a minute reached; holding back", t->name, max);
	return false;
}

static void
run_command(struct router *r, const struct event *ev, const char *cmd, size_t len, const char *prefix)
{
	struct transport *t = ev->transport;
	if (!room_allows(r, ev))
		return;
	/* event text is counted, not terminated: the command table wants a string */
	char *line = xstrndup(cmd, len);
	buf_clear(&r->text);
	buf_clear(&r->html);
	struct cmd_ctx ctx = {
		.ev = ev, .kb = responder_kb(r->resp), .config = r->config, .budget = &t->budget,
		.prefix = prefix, .bot = r->bot, .admin = bot_is_admin(r->bot, ev), .out = &r->text,
	};
	r->totals.commands++;
	commands_run(&ctx, line);
	free(line);
	send_reply(r, ev, REPLY_COMMAND | ctx.flags);
}

static unsigned
popcount(uint32_t x)
{
	return (unsigned)__builtin_popcount(x);
}

void
router_dispatch(struct router *r, const struct event *ev)
{
	struct transport *t = ev->transport;
	r->totals.seen++;
	t->stats.seen++;
	if (bot_is_ignored(r->bot, ev)) {
		log_debug("%s: ignoring %s", t->name, ev->sender);
		return;
	}
	const char *text = ev->text;
	size_t len = ev->text_len;
	while (len && (*text == ' ' || *text == '\t'))
		text++, len--;
	const char *prefix = conf_net_get(r->config, t->conf, "prefix");
	if (!prefix)
		prefix = r->config->bot.prefix;
	const char *cmd = command_text(text, len, prefix);
	if (cmd) {
		run_command(r, ev, cmd, len - (size_t)(cmd - text), prefix);
		return;
	}

	bool addressed = ev->addressed || ev->is_private;
	const char *mode = conf_net_get(r->config, t->conf, "reply_mode");
	if (!addressed && mode && strcmp(mode, "addressed") == 0)
		return;
	int64_t now = loop_now_ms();
	int64_t ttl = r->config->bot.memory_s * 1000;
	int64_t cooldown = conf_net_long(r->config, t->conf, "cooldown_s", r->config->bot.cooldown_s) * 1000;
	const char *who = ev->account ? ev->account : ev->sender;
	struct memory_entry *m = memory_get(r->mem, t->name, ev->room, who, now, ttl);
	bool cooling = m && m->answered_ms && cooldown > 0 && now - m->answered_ms < cooldown;
	const struct triage *prior = m && (m->asked || cooling) ? &m->triage : NULL;

	struct triage tri;
	responder_judge(r->resp, text, len, addressed, prior, &tri);
	log_debug("%s: %s in %s: kind %d, %u conditions, flags %#x", t->name, ev->sender,
		ev->room ? ev->room : "-", (int)tri.kind, tri.nranked, (unsigned)tri.flags);
	if (tri.kind == TRIAGE_SILENT)
		return;

	/* ambient follow-ups within the cooldown are merged, unless they raise a new red flag */
	if (!addressed && cooling && !(tri.flags & ~m->triage.flags)) {
		m->triage = tri;
		m->updated_ms = now;
		r->totals.held_back++;
		return;
	}
	if (!room_allows(r, ev))
		return;

	buf_clear(&r->text);
	buf_clear(&r->html);
	responder_compose(r->resp, &tri, &t->budget, prefix, &r->text, &r->html);
	unsigned flags = tri.kind == TRIAGE_HINT ? 0 : REPLY_HEALTH;
	if (tri.flags) {
		flags |= REPLY_REDFLAG;
		r->totals.redflags += popcount(tri.flags);
		t->stats.redflags += popcount(tri.flags);
	}
	send_reply(r, ev, flags);

	int64_t answered = m ? m->answered_ms : 0;
	m = memory_put(r->mem, t->name, ev->room, who, now);
	m->triage = tri;
	m->asked = tri.kind == TRIAGE_CLARIFY;
	m->answered_ms = addressed ? answered : now;
}
