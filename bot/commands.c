/*
 * commands.c: the prefix commands.  A sorted table of {name, handler, flags}
 * found with bsearch; each handler renders from the knowledge base into
 * ctx->out, compactly when the transport has only a few lines (IRC) and in
 * full otherwise.  Admin commands act through bot.h.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bot.h"
#include "buf.h"
#include "commands.h"
#include "config.h"
#include "kb.h"
#include "log.h"
#include "text.h"
#include "transport.h"

#ifndef KNEEBOT_VERSION
#define KNEEBOT_VERSION "0.0.0"
#endif

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static bool
compact(const struct cmd_ctx *ctx)
{
	return ctx->budget && ctx->budget->max_lines > 0;
}

static void
line(struct cmd_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
line(struct cmd_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	if (ctx->out->len)
		buf_addc(ctx->out, '\n');
	va_start(ap, fmt);
	buf_vprintf(ctx->out, fmt, ap);
	va_end(ap);
}

static void
add_seeds(struct buf *b, unsigned seeds)
{
	buf_adds(b, "Sources: ");
	kb_seeds_format(seeds, b);
	buf_addc(b, '.');
}

/* Lower-cases s into out, folding '-', '_' and runs of spaces to one space. */
static void
normalise_name(const char *s, char *out, size_t cap)
{
	size_t o = 0;
	bool space = true;
	for (; *s && o + 1 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '-' || c == '_' || isspace(c)) {
			if (!space)
				out[o++] = ' ';
			space = true;
			continue;
		}
		if (c == '\'' )
			continue;   /* "runner's" and "runners" are the same name */
		out[o++] = (char)tolower(c);
		space = false;
	}
	while (o && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

static bool
name_eq(const char *a, const char *query)
{
	char na[256];
	normalise_name(a, na, sizeof na);
	if (strcmp(na, query) == 0)
		return true;
	/* "band walks" for "band walk", "clams" for "clam" */
	size_t n = strlen(query), m = strlen(na);
	return (n == m + 1 && query[n - 1] == 's' && strncmp(na, query, m) == 0) ||
		(m == n + 1 && na[m - 1] == 's' && strncmp(na, query, n) == 0);
}

/* The best edit distance between query and any of an entry's names. */
static unsigned
name_distance(const char *id, const char *name, const struct kb_list *aliases, const char *query)
{
	char n[256];
	unsigned best = 99;
	size_t qn = strlen(query);
	const char *cands[1 + 64];
	size_t nc = 0;
	cands[nc++] = id;
	cands[nc++] = name;
	for (size_t i = 0; i < aliases->n && nc < NELEM(cands); i++)
		cands[nc++] = aliases->v[i];
	for (size_t i = 0; i < nc; i++) {
		normalise_name(cands[i], n, sizeof n);
		unsigned d = text_edit_distance(query, qn, n, strlen(n), 8);
		if (d < best)
			best = d;
	}
	return best;
}

/* --- member commands --- */

static const struct kb_exercise *
find_exercise(const struct kb *kb, const char *query, unsigned *dist)
{
	const struct kb_exercise *best = NULL;
	unsigned bestd = 99;
	for (size_t i = 0; i < kb_exercise_count(kb); i++) {
		const struct kb_exercise *e = kb_exercise_at(kb, i);
		if (name_eq(e->id, query) || name_eq(e->name, query)) {
			*dist = 0;
			return e;
		}
		for (size_t j = 0; j < e->aliases.n; j++) {
			if (name_eq(e->aliases.v[j], query)) {
				*dist = 0;
				return e;
			}
		}
		unsigned d = name_distance(e->id, e->name, &e->aliases, query);
		if (d < bestd)
			bestd = d, best = e;
	}
	*dist = bestd;
	return best;
}

static void
closest_exercises(struct cmd_ctx *ctx, const char *query)
{
	const struct kb *kb = ctx->kb;
	size_t n = kb_exercise_count(kb);
	unsigned d[512];
	size_t idx[512];
	if (n > NELEM(d))
		n = NELEM(d);
	for (size_t i = 0; i < n; i++) {
		const struct kb_exercise *e = kb_exercise_at(kb, i);
		d[i] = name_distance(e->id, e->name, &e->aliases, query);
		idx[i] = i;
	}
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && d[idx[j]] < d[idx[j - 1]]; j--) {
			size_t x = idx[j];
			idx[j] = idx[j - 1];
			idx[j - 1] = x;
		}
	line(ctx, "I don't know the exercise \"%s\". Closest: ", query);
	for (size_t i = 0; i < n && i < 3; i++)
		buf_printf(ctx->out, "%s%s", i ? ", " : "", kb_exercise_at(kb, idx[i])->name);
	buf_printf(ctx->out, ". Try %sexercise NAME, or %sexercises for the list.", ctx->prefix, ctx->prefix);
}

static void
show_exercise(struct cmd_ctx *ctx, const struct kb_exercise *e)
{
	struct buf *o = ctx->out;
	if (compact(ctx)) {
		line(ctx, "%s (works: %s).", e->name, e->muscles);
		line(ctx, "How:");
		for (size_t i = 0; i < e->steps.n; i++)
			buf_printf(o, " %zu) %s", i + 1, e->steps.v[i]);
		line(ctx, "Dose: %s Caution: %s ", e->dose, e->cautions.v[0]);
		add_seeds(o, e->seeds);
		return;
	}
	line(ctx, "%s", e->name);
	line(ctx, "Works: %s", e->muscles);
	for (size_t i = 0; i < e->steps.n; i++)
		line(ctx, "%zu. %s", i + 1, e->steps.v[i]);
	line(ctx, "Dose: %s", e->dose);
	for (size_t i = 0; i < e->cautions.n; i++)
		line(ctx, "Caution: %s", e->cautions.v[i]);
	line(ctx, "%s", "");
	add_seeds(o, e->seeds);
}

static void
cmd_exercise(struct cmd_ctx *ctx, const char *args)
{
	char q[256];
	normalise_name(args, q, sizeof q);
	if (!*q) {
		line(ctx, "Usage: %sexercise NAME, e.g. %sexercise band walk. %sexercises lists them.", ctx->prefix, ctx->prefix, ctx->prefix);
		return;
	}
	unsigned d;
	const struct kb_exercise *e = find_exercise(ctx->kb, q, &d);
	/* near-misses resolve when they are clearly one exercise: "band wlak" */
	size_t qn = strlen(q);
	unsigned allowed = qn >= 8 ? 2 : qn >= 4 ? 1 : 0;
	if (e && d <= allowed)
		show_exercise(ctx, e);
	else
		closest_exercises(ctx, q);
}

static const struct { const char *alias, *tag; } target_aliases[] = {
	{ "hip", "hips" }, { "glute", "glutes" }, { "bum", "glutes" }, { "quad", "quads" }, { "quadriceps", "quads" },
	{ "thigh", "quads" }, { "inner quad", "vmo" }, { "vastus medialis", "vmo" }, { "hamstring", "hamstrings" },
	{ "calf", "calves" }, { "it band", "it_band" }, { "itb", "it_band" }, { "iliotibial band", "it_band" },
	{ "abs", "core" }, { "hip flexor", "hip_flexors" }, { "hip flexors", "hip_flexors" }, { "foot", "feet" },
	{ "stability", "balance" },
};

static void
cmd_exercises(struct cmd_ctx *ctx, const char *args)
{
	const struct kb *kb = ctx->kb;
	char q[128];
	normalise_name(args, q, sizeof q);
	const char *tag = NULL;
	char tagbuf[128];
	if (*q) {
		snprintf(tagbuf, sizeof tagbuf, "%s", q);
		for (char *p = tagbuf; *p; p++)
			if (*p == ' ')
				*p = '_';
		tag = tagbuf;
		for (size_t i = 0; i < NELEM(target_aliases); i++)
			if (strcmp(q, target_aliases[i].alias) == 0)
				tag = target_aliases[i].tag;
	}
	size_t found = 0;
	struct buf list;
	buf_init(&list);
	for (size_t i = 0; i < kb_exercise_count(kb); i++) {
		const struct kb_exercise *e = kb_exercise_at(kb, i);
		bool match = !tag;
		for (size_t j = 0; tag && j < e->targets.n; j++)
			match |= strcmp(e->targets.v[j], tag) == 0;
		if (!match)
			continue;
		if (compact(ctx)) {
			buf_printf(&list, "%s%s", found ? ", " : "", e->name);
		} else {
			if (list.len)
				buf_addc(&list, '\n');
			buf_printf(&list, "- %s (", e->name);
			for (size_t j = 0; j < e->targets.n; j++)
				buf_printf(&list, "%s%s", j ? ", " : "", e->targets.v[j]);
			buf_addc(&list, ')');
		}
		found++;
	}
	if (!found) {
		line(ctx, "No exercises for \"%s\". Targets: hips, glutes, quads, vmo, hamstrings, calves, it band, core, hip flexors, feet, balance.", q);
	} else {
		line(ctx, "%s%s%s: ", tag ? "Exercises for " : "Exercises", tag ? q : "", compact(ctx) ? "" : "");
		if (!compact(ctx))
			buf_addc(ctx->out, '\n');
		buf_add(ctx->out, list.s, list.len);
		if (compact(ctx))
			buf_addc(ctx->out, '.');
		line(ctx, "Details: %sexercise NAME.", ctx->prefix);
	}
	buf_free(&list);
}

static void
cmd_redflags(struct cmd_ctx *ctx, const char *args)
{
	(void)args;
	const struct kb *kb = ctx->kb;
	static const char *const label[] = { "Within days", "Today", "Now" };
	const struct kb_topic *tp = kb_topic(kb, "redflags");
	line(ctx, "%s", tp->lines.v[0]);
	unsigned seeds = tp->seeds;
	for (int u = KB_URGENCY_NOW; u >= KB_URGENCY_SOON; u--) {
		bool any = false;
		for (unsigned f = 0; f < KB_NREDFLAGS; f++) {
			const struct kb_redflag *fl = kb_redflag(kb, f);
			if (fl->urgency != (enum kb_urgency)u)
				continue;
			seeds |= fl->seeds;
			if (compact(ctx)) {
				if (!any)
					line(ctx, "%s: ", label[u]);
				buf_printf(ctx->out, "%s%s", any ? ", " : "", fl->name);
			} else {
				if (!any)
					line(ctx, "%s:", label[u]);
				line(ctx, "- %s", fl->warning);
			}
			any = true;
		}
		if (any && compact(ctx))
			buf_addc(ctx->out, '.');
	}
	line(ctx, "%s", "");
	add_seeds(ctx->out, seeds);
	ctx->flags |= REPLY_REDFLAG;
}

static void
show_topic(struct cmd_ctx *ctx, const char *id)
{
	const struct kb_topic *tp = kb_topic(ctx->kb, id);
	if (!tp) {
		line(ctx, "Nothing on that in this knowledge base.");
		return;
	}
	line(ctx, "%s:", tp->title);
	for (size_t i = 0; i < tp->lines.n; i++) {
		if (compact(ctx))
			buf_printf(ctx->out, " %s", tp->lines.v[i]);
		else
			line(ctx, "- %s", tp->lines.v[i]);
	}
	if (tp->seeds) {
		buf_addc(ctx->out, compact(ctx) ? ' ' : '\n');
		add_seeds(ctx->out, tp->seeds);
	}
}

static void cmd_rice(struct cmd_ctx *ctx, const char *a) { (void)a; show_topic(ctx, "rice"); }
static void cmd_return(struct cmd_ctx *ctx, const char *a) { (void)a; show_topic(ctx, "return"); }
static void cmd_shoes(struct cmd_ctx *ctx, const char *a) { (void)a; show_topic(ctx, "shoes"); }
static void cmd_crosstrain(struct cmd_ctx *ctx, const char *a) { (void)a; show_topic(ctx, "crosstrain"); }

static void
cmd_condition(struct cmd_ctx *ctx, const char *args)
{
	const struct kb *kb = ctx->kb;
	char q[256];
	normalise_name(args, q, sizeof q);
	if (!*q) {
		line(ctx, "Usage: %scondition NAME, e.g. %scondition runner's knee. Known: ", ctx->prefix, ctx->prefix);
		for (unsigned c = 0; c < KB_NCONDITIONS; c++)
			buf_printf(ctx->out, "%s%s", c ? ", " : "", kb_condition_ids[c]);
		buf_addc(ctx->out, '.');
		return;
	}
	const struct kb_condition *best = NULL;
	unsigned bestd = 99;
	for (unsigned c = 0; c < KB_NCONDITIONS; c++) {
		const struct kb_condition *k = kb_condition(kb, c);
		unsigned d = name_eq(k->id, q) || name_eq(k->name, q) ? 0 : name_distance(k->id, k->name, &k->aliases, q);
		for (size_t j = 0; d && j < k->aliases.n; j++)
			if (name_eq(k->aliases.v[j], q))
				d = 0;
		if (d < bestd)
			bestd = d, best = k;
	}
	size_t qn = strlen(q);
	if (!best || bestd > (qn >= 8 ? 2u : qn >= 4 ? 1u : 0u)) {
		line(ctx, "I don't know the condition \"%s\". Known: ", q);
		for (unsigned c = 0; c < KB_NCONDITIONS; c++)
			buf_printf(ctx->out, "%s%s", c ? ", " : "", kb_condition_ids[c]);
		buf_addc(ctx->out, '.');
		return;
	}
	const struct kb_exercise *ex = kb_exercise_find(kb, best->exercises.v[0]);
	if (compact(ctx)) {
		line(ctx, "%s Signs: %s", best->what, best->signs);
		line(ctx, "Helps: ");
		for (size_t i = 0; i < best->try_.n && i < 3; i++)
			buf_printf(ctx->out, "%s%s", i ? " " : "", best->try_.v[i]);
		line(ctx, "%s Exercise: %sexercise %s. ", best->see, ctx->prefix, ex ? ex->name : best->exercises.v[0]);
		add_seeds(ctx->out, best->seeds);
		return;
	}
	line(ctx, "%s", best->name);
	line(ctx, "%s", best->what);
	line(ctx, "Typical signs: %s", best->signs);
	line(ctx, "What helps:");
	for (size_t i = 0; i < best->try_.n; i++)
		line(ctx, "- %s", best->try_.v[i]);
	if (best->footwear)
		line(ctx, "Footwear: %s", best->footwear);
	if (best->return_)
		line(ctx, "Return to running: %s", best->return_);
	line(ctx, "When to see someone: %s", best->see);
	line(ctx, "Exercise: %sexercise %s", ctx->prefix, ex ? ex->name : best->exercises.v[0]);
	line(ctx, "%s", "");
	add_seeds(ctx->out, best->seeds);
}

static void
cmd_sources(struct cmd_ctx *ctx, const char *args)
{
	(void)args;
	line(ctx, "The advice comes from five documents, in our own words:");
	for (unsigned s = 0; s < KB_NSEEDS; s++) {
		const struct kb_source *src = kb_source(ctx->kb, s);
		if (compact(ctx))
			buf_printf(ctx->out, " %s %s.", src->id, src->title);
		else
			line(ctx, "%s: %s. %s (%s)", src->id, src->title, src->about, src->weight);
	}
}

static void
cmd_about(struct cmd_ctx *ctx, const char *args)
{
	(void)args;
	const struct kb_topic *tp = kb_topic(ctx->kb, "about");
	line(ctx, "kneebot %s:", KNEEBOT_VERSION);
	for (size_t i = 0; i < tp->lines.n; i++) {
		if (compact(ctx))
			buf_printf(ctx->out, " %s", tp->lines.v[i]);
		else
			line(ctx, "%s", tp->lines.v[i]);
	}
}

static void cmd_help(struct cmd_ctx *ctx, const char *args);

/* --- admin commands --- */

static void
cmd_reload(struct cmd_ctx *ctx, const char *args)
{
	(void)args;
	struct buf err;
	buf_init(&err);
	if (bot_reload(ctx->bot, &err) == 0) {
		line(ctx, "Reloaded the config and the knowledge base.");
	} else {
		/* the admin needs the file and line; they are not secrets */
		line(ctx, "Reload failed, still running on the old config:");
		char *save = NULL;
		unsigned n = 0;
		for (char *l = strtok_r(err.s ? err.s : (char *)"", "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			if (++n > 5) {
				line(ctx, "(and more; run kneebot --check-config)");
				break;
			}
			line(ctx, "%s", l);
		}
	}
	buf_free(&err);
}

static void
cmd_status(struct cmd_ctx *ctx, const char *args)
{
	(void)args;
	struct buf b;
	buf_init(&b);
	bot_status(ctx->bot, &b);
	if (compact(ctx)) {
		for (char *p = b.s; p && *p; p++)
			if (*p == '\n')
				*p = ' ';
	}
	line(ctx, "%s", b.s ? b.s : "");
	buf_free(&b);
}

static void
room_command(struct cmd_ctx *ctx, const char *args, bool join)
{
	char net[128], room[512];
	struct transport *t = ctx->ev->transport;
	int n = sscanf(args, "%127s %511[^\n]", net, room);
	if (n == 2 && bot_transport(ctx->bot, net)) {
		t = bot_transport(ctx->bot, net);
	} else if (n >= 1) {
		snprintf(room, sizeof room, "%s", args);
		/* "#club key": keep the key with the channel */
	} else {
		line(ctx, "Usage: %s%s [NETWORK] ROOM", ctx->prefix, join ? "join" : "part");
		return;
	}
	int (*op)(struct transport *, const char *, struct buf *) = join ? t->ops->join : t->ops->part;
	if (!op) {
		line(ctx, "%s cannot %s rooms.", t->name, join ? "join" : "leave");
		return;
	}
	struct buf err;
	buf_init(&err);
	if (op(t, room, &err) == 0)
		line(ctx, "%s %s on %s.", join ? "Joining" : "Leaving", room, t->name);
	else
		line(ctx, "Cannot %s %s on %s: %s", join ? "join" : "leave", room, t->name, err.s ? err.s : "failed");
	buf_free(&err);
}

static void cmd_join(struct cmd_ctx *ctx, const char *args) { room_command(ctx, args, true); }
static void cmd_part(struct cmd_ctx *ctx, const char *args) { room_command(ctx, args, false); }

/* Sorted by name for bsearch. */
static const struct command commands[] = {
	{ "about", cmd_about, 0, "about", "what kneebot is, that it is not a diagnosis, its version", "about" },
	{ "condition", cmd_condition, 0, "condition ID-or-NAME", "what a condition is, its signs and what helps", "condition runner's knee" },
	{ "crosstrain", cmd_crosstrain, 0, "crosstrain", "keeping fit while the knee recovers", "crosstrain" },
	{ "exercise", cmd_exercise, 0, "exercise NAME", "steps, dose, muscles and cautions for one exercise", "exercise band walk" },
	{ "exercises", cmd_exercises, 0, "exercises [TARGET]", "the exercise list, or those for hips, quads, vmo, calves, it band, core", "exercises hips" },
	{ "help", cmd_help, 0, "help [COMMAND]", "the commands, or how to use one", "help exercise" },
	{ "join", cmd_join, CMD_ADMIN, "join [NETWORK] ROOM", "join a channel or room (admins)", "join #club" },
	{ "leave", cmd_part, CMD_ADMIN, "leave [NETWORK] ROOM", "leave a room (admins)", "leave !abc:example.org" },
	{ "part", cmd_part, CMD_ADMIN, "part [NETWORK] ROOM", "leave a channel (admins)", "part #club" },
	{ "redflags", cmd_redflags, 0, "redflags", "the signs that mean stop and get examined, by urgency", "redflags" },
	{ "reload", cmd_reload, CMD_ADMIN, "reload", "re-read the config and the knowledge base (admins)", "reload" },
	{ "return", cmd_return, 0, "return", "rules for returning to running", "return" },
	{ "rice", cmd_rice, 0, "rice", "rest, ice, compression, elevation, with timings", "rice" },
	{ "shoes", cmd_shoes, 0, "shoes", "footwear and orthotics", "shoes" },
	{ "sources", cmd_sources, 0, "sources", "the documents the advice comes from", "sources" },
	{ "status", cmd_status, CMD_ADMIN, "status", "uptime, networks, counts (admins)", "status" },
};

static int
cmp_command(const void *key, const void *elem)
{
	return strcasecmp(key, ((const struct command *)elem)->name);
}

const struct command *
command_find(const char *name)
{
	return bsearch(name, commands, NELEM(commands), sizeof commands[0], cmp_command);
}

size_t command_count(void) { return NELEM(commands); }
const struct command *command_at(size_t i) { return i < NELEM(commands) ? &commands[i] : NULL; }

static void
cmd_help(struct cmd_ctx *ctx, const char *args)
{
	char name[64];
	if (sscanf(args, "%63s", name) == 1) {
		const char *n = strncmp(name, ctx->prefix, strlen(ctx->prefix)) == 0 ? name + strlen(ctx->prefix) : name;
		const struct command *c = command_find(n);
		if (!c) {
			line(ctx, "No command \"%s\". %shelp lists them.", n, ctx->prefix);
			return;
		}
		line(ctx, "%s%s: %s. Example: %s%s", ctx->prefix, c->usage, c->summary, ctx->prefix, c->example);
		return;
	}
	line(ctx, "Commands:");
	for (size_t i = 0; i < NELEM(commands); i++) {
		const struct command *c = &commands[i];
		if ((c->flags & CMD_HIDDEN) || ((c->flags & CMD_ADMIN) && !ctx->admin))
			continue;
		if (compact(ctx))
			buf_printf(ctx->out, " %s%s", ctx->prefix, c->name);
		else
			line(ctx, "  %s%-22s %s", ctx->prefix, c->usage, c->summary);
	}
	line(ctx, "Or just tell me about your knee. %shelp COMMAND for one command.", ctx->prefix);
}

bool
commands_run(struct cmd_ctx *ctx, const char *text)
{
	char name[64];
	size_t n = 0;
	while (text[n] && !isspace((unsigned char)text[n]) && n + 1 < sizeof name) {
		name[n] = text[n];
		n++;
	}
	name[n] = '\0';
	const char *args = text + n;
	while (isspace((unsigned char)*args))
		args++;
	const struct command *c = command_find(name);
	if (!c) {
		line(ctx, "No command \"%s%s\". Try %shelp.", ctx->prefix, name, ctx->prefix);
		return true;
	}
	if ((c->flags & CMD_ADMIN) && !ctx->admin) {
		const struct event *ev = ctx->ev;
		log_notice("%s: refused admin command '%s' from %s (account %s, mask %s)",
			ev->transport ? ev->transport->name : "-", c->name, ev->sender ? ev->sender : "-",
			ev->account ? ev->account : "none", ev->mask ? ev->mask : "none");
		line(ctx, "Sorry, %s%s is for the bot's admins.", ctx->prefix, c->name);
		return false;
	}
	if (c->flags & CMD_ADMIN)
		log_info("%s: admin command '%s' from %s", ctx->ev->transport ? ctx->ev->transport->name : "-",
			c->name, ctx->ev->account ? ctx->ev->account : ctx->ev->sender);
	c->handler(ctx, args);
	return true;
}
