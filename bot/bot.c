/*
 * bot.c: the running bot.  Owns config, knowledge base, responder, router and
 * transports.  Reload parses and validates everything new first, creates the
 * transports of new or changed networks, and only then swaps, so a broken
 * file leaves the running bot as it was.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <systemd/sd-daemon.h>

#include "bot.h"
#include "buf.h"
#include "config.h"
#include "kb.h"
#include "log.h"
#include "loop.h"
#include "responder.h"
#include "router.h"
#include "transport.h"

#define QUIT_GRACE_MS 3000     /* how long goodbyes may take before we leave anyway */
#define TICK_MS 30000

struct bot {
	struct loop *loop;
	struct config *config;
	struct kb *kb;
	struct responder *resp;
	struct router *router;
	struct transport **ts;
	size_t nts;
	struct transport **dying;   /* stopped, waiting to flush before destroy */
	size_t ndying;
	/* configs replaced by a reload while dying transports still read them */
	struct config **retired;
	size_t nretired;
	int64_t started_ms;
	int64_t quit_deadline;
	bool quitting;
	uint64_t tick, quit_timer, watchdog;
};

static void
add_transport(struct transport ***v, size_t *n, struct transport *t)
{
	*v = xrealloc(*v, (*n + 1) * sizeof **v);
	(*v)[(*n)++] = t;
}

static void
free_retired(struct bot *bot)
{
	for (size_t i = 0; i < bot->nretired; i++)
		config_free(bot->retired[i]);
	free(bot->retired);
	bot->retired = NULL;
	bot->nretired = 0;
}

static int64_t
on_tick(struct loop *loop, void *arg)
{
	(void)loop;
	struct bot *bot = arg;
	router_tick(bot->router, loop_now_ms());
	/* transports stopped by a reload are destroyed once they have flushed */
	for (size_t i = 0; i < bot->ndying;) {
		struct transport *t = bot->dying[i];
		if (t->ops->stopped(t)) {
			t->ops->destroy(t);
			bot->dying[i] = bot->dying[--bot->ndying];
		} else {
			i++;
		}
	}
	if (!bot->ndying)
		free_retired(bot);
	return bot->ndying ? 200 : TICK_MS;
}

static int64_t
on_watchdog(struct loop *loop, void *arg)
{
	(void)loop, (void)arg;
	sd_notify(0, "WATCHDOG=1");
	uint64_t usec = 0;
	sd_watchdog_enabled(0, &usec);
	return usec ? (int64_t)(usec / 2000) : LOOP_STOP;
}

struct bot *
bot_new(struct loop *loop, struct config *config, struct kb *kb)
{
	struct bot *bot = xcalloc(1, sizeof *bot);
	bot->loop = loop;
	bot->config = config;
	bot->kb = kb;
	bot->resp = responder_new(kb);
	bot->router = router_new(bot);
	router_set(bot->router, config, bot->resp);
	bot->started_ms = loop_now_ms();
	bot->tick = loop_timer_add(loop, TICK_MS, on_tick, bot);
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) > 0 && usec)
		bot->watchdog = loop_timer_add(loop, (int64_t)(usec / 2000), on_watchdog, bot);
	return bot;
}

void
bot_free(struct bot *bot)
{
	if (!bot)
		return;
	for (size_t i = 0; i < bot->nts; i++)
		bot->ts[i]->ops->destroy(bot->ts[i]);
	for (size_t i = 0; i < bot->ndying; i++)
		bot->dying[i]->ops->destroy(bot->dying[i]);
	free(bot->ts);
	free(bot->dying);
	free_retired(bot);
	loop_timer_del(bot->loop, bot->tick);
	if (bot->quit_timer)
		loop_timer_del(bot->loop, bot->quit_timer);
	if (bot->watchdog)
		loop_timer_del(bot->loop, bot->watchdog);
	router_free(bot->router);
	responder_free(bot->resp);
	kb_free(bot->kb);
	config_free(bot->config);
	free(bot);
}

static struct transport *
create(struct bot *bot, const struct config *c, const struct conf_section *s, struct buf *err)
{
	const struct transport_kind *k = transport_kind_find(s->kind);
	struct transport_env env = { bot->loop, bot->router, c, bot };
	return k ? k->create(&env, s, err) : NULL;
}

int
bot_start(struct bot *bot, bool console, struct buf *err)
{
	for (size_t i = 0; i < bot->config->nnets; i++) {
		const struct conf_section *s = &bot->config->nets[i];
		struct transport *t = create(bot, bot->config, s, err);
		if (!t)
			return -1;
		add_transport(&bot->ts, &bot->nts, t);
		if (t->ops->start(t, err) < 0)
			return -1;
		log_info("%s: %s network started", t->name, s->kind);
	}
	if (console) {
		struct transport_env env = { bot->loop, bot->router, bot->config, bot };
		struct transport *t = console_kind.create(&env, NULL, err);
		add_transport(&bot->ts, &bot->nts, t);
		t->ops->start(t, err);
	}
	sd_notify(0, "READY=1\nSTATUS=running");
	return 0;
}

/* A network is untouched by reload when its section and what it inherits are the same. */
static bool
network_unchanged(const struct config *oldc, const struct config *newc, const struct conf_section *a,
	const struct conf_section *b)
{
	if (!conf_section_equal(a, b))
		return false;
	return conf_get(a, "nick") || strcmp(oldc->bot.nick, newc->bot.nick) == 0;
}

/* The running transport of section s, if any. */
static struct transport *
running(struct bot *bot, const struct conf_section *s)
{
	for (size_t i = 0; i < bot->nts; i++) {
		const struct conf_section *c = bot->ts[i]->conf;
		if (c && strcmp(c->kind, s->kind) == 0 && strcmp(c->name, s->name) == 0)
			return bot->ts[i];
	}
	return NULL;
}

/* Keeps running through the reload: unchanged, or changed in a way it can apply live. */
static bool
keeps_running(struct bot *bot, const struct config *nc, const struct conf_section *ns)
{
	struct transport *t = running(bot, ns);
	if (!t)
		return false;
	if (network_unchanged(bot->config, nc, t->conf, ns))
		return true;
	return t->ops->compatible && t->ops->compatible(t, nc, ns);
}

int
bot_reload(struct bot *bot, struct buf *err)
{
	char usec[64];
	snprintf(usec, sizeof usec, "RELOADING=1\nMONOTONIC_USEC=%lld", (long long)loop_now_us());
	sd_notify(0, usec);
	log_info("reloading %s", bot->config->path ? bot->config->path : "the built-in defaults");
	struct config *nc = NULL;
	struct kb *nkb = NULL;
	int rv = -1;
	struct transport **fresh = NULL;   /* new transports, one per new or changed section */
	size_t nfresh = 0;
	if (config_load(bot->config->path, &nc, err) < 0)
		goto out;
	if (kb_load(nc->bot.responses_dir, &nkb, err) < 0)
		goto out;
	for (size_t i = 0; i < nc->nnets; i++) {
		const struct conf_section *ns = &nc->nets[i];
		if (keeps_running(bot, nc, ns))
			continue;
		struct transport *t = create(bot, nc, ns, err);
		if (!t)
			goto out;
		add_transport(&fresh, &nfresh, t);
	}

	/* everything new is valid: swap in one step */
	struct transport **keep = NULL;
	size_t nkeep = 0;
	for (size_t i = 0; i < bot->nts; i++) {
		struct transport *t = bot->ts[i];
		const struct conf_section *ns = t->conf ? config_network(nc, t->conf->kind, t->conf->name) : NULL;
		if (!t->conf || (ns && keeps_running(bot, nc, ns))) {
			t->config = nc;
			t->conf = ns;
			if (t->ops->reconfigure)
				t->ops->reconfigure(t);
			add_transport(&keep, &nkeep, t);
			continue;
		}
		log_info("%s: %s by reload", t->name, ns ? "changed, reconnecting" : "removed");
		t->ops->stop(t, ns ? "reconnecting with a new configuration" : "removed from the configuration");
		add_transport(&bot->dying, &bot->ndying, t);
	}
	free(bot->ts);
	bot->ts = keep;
	bot->nts = nkeep;
	struct responder *nresp = responder_new(nkb);
	router_set(bot->router, nc, nresp);
	responder_free(bot->resp);
	kb_free(bot->kb);
	/* a transport stopped above may still read its old section while it says goodbye */
	if (bot->ndying) {
		bot->retired = xrealloc(bot->retired, (bot->nretired + 1) * sizeof *bot->retired);
		bot->retired[bot->nretired++] = bot->config;
	} else {
		config_free(bot->config);
	}
	bot->config = nc;
	bot->kb = nkb;
	bot->resp = nresp;
	nc = NULL;
	nkb = NULL;
	log_set_level(bot->config->bot.log_level);
	for (size_t i = 0; i < nfresh; i++) {
		struct transport *t = fresh[i];
		add_transport(&bot->ts, &bot->nts, t);
		if (t->ops->start(t, err) < 0)
			log_warnx("%s: cannot start: %s", t->name, err->s ? err->s : "");
		else
			log_info("%s: %s network started by reload", t->name, t->conf->kind);
	}
	nfresh = 0;
	if (bot->ndying) {
		loop_timer_del(bot->loop, bot->tick);
		bot->tick = loop_timer_add(bot->loop, 200, on_tick, bot);
	}
	log_info("reloaded: %zu network(s)", bot->config->nnets);
	rv = 0;
out:
	for (size_t i = 0; i < nfresh; i++)
		fresh[i]->ops->destroy(fresh[i]);
	free(fresh);
	if (rv < 0)
		log_warnx("reload failed, keeping the running configuration");
	kb_free(nkb);
	config_free(nc);
	sd_notify(0, "READY=1");
	return rv;
}

static int64_t
on_quit_check(struct loop *loop, void *arg)
{
	struct bot *bot = arg;
	bool all = true;
	for (size_t i = 0; i < bot->nts; i++)
		all &= bot->ts[i]->ops->stopped(bot->ts[i]);
	for (size_t i = 0; i < bot->ndying; i++)
		all &= bot->dying[i]->ops->stopped(bot->dying[i]);
	if (all || loop_now_ms() >= bot->quit_deadline) {
		if (!all)
			log_warnx("some networks did not finish saying goodbye in time");
		bot->quit_timer = 0;
		loop_stop(loop);
		return LOOP_STOP;
	}
	return 20;
}

void
bot_quit(struct bot *bot, const char *reason)
{
	if (bot->quitting)
		return;
	bot->quitting = true;
	sd_notify(0, "STOPPING=1");
	log_info("quitting: %s", reason);
	for (size_t i = 0; i < bot->nts; i++)
		bot->ts[i]->ops->stop(bot->ts[i], reason);
	bot->quit_deadline = loop_now_ms() + QUIT_GRACE_MS;
	bot->quit_timer = loop_timer_add(bot->loop, 0, on_quit_check, bot);
}

void
bot_status(struct bot *bot, struct buf *out)
{
	int64_t up = (loop_now_ms() - bot->started_ms) / 1000;
	const struct router_totals *tot = router_totals(bot->router);
	buf_printf(out, "Up %lldd %02lld:%02lld:%02lld. Seen %llu messages, sent %llu replies, raised %llu red flags, held back %llu.",
		(long long)(up / 86400), (long long)(up / 3600 % 24), (long long)(up / 60 % 60), (long long)(up % 60),
		(unsigned long long)tot->seen, (unsigned long long)tot->replies,
		(unsigned long long)tot->redflags, (unsigned long long)tot->held_back);
	for (size_t i = 0; i < bot->nts; i++) {
		struct transport *t = bot->ts[i];
		buf_printf(out, "\n%s: ", t->name);
		t->ops->describe(t, out);
		buf_printf(out, "; seen %llu, replies %llu, red flags %llu.", (unsigned long long)t->stats.seen,
			(unsigned long long)t->stats.replies, (unsigned long long)t->stats.redflags);
	}
}

bool
glob_match(const char *p, const char *s, bool fold)
{
	const char *star = NULL, *ss = NULL;
	while (*s) {
		char pc = fold ? (char)tolower((unsigned char)*p) : *p;
		char sc = fold ? (char)tolower((unsigned char)*s) : *s;
		if (*p == '*') {
			star = p++;
			ss = s;
		} else if (*p && (*p == '?' || pc == sc)) {
			p++;
			s++;
		} else if (star) {
			p = star + 1;
			s = ++ss;
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

/*
 * Does ev come from one of the identities in list?  account:NAME (services
 * account, case-insensitive as IRC accounts are), mask:PATTERN (nick!user@host),
 * @user:server (a Matrix id, exact or a glob).  A bare nick never matches.
 */
static bool
identity_in(const char *list, const struct event *ev)
{
	char **v;
	size_t n = strv_split(list, &v);
	bool hit = false;
	for (size_t i = 0; i < n && !hit; i++) {
		const char *e = v[i];
		if (strncmp(e, "account:", 8) == 0)
			hit = ev->account && ev->account[0] != '@' && strcasecmp(ev->account, e + 8) == 0;
		else if (strncmp(e, "mask:", 5) == 0)
			hit = ev->mask && glob_match(e + 5, ev->mask, true);
		else if (e[0] == '@')
			hit = ev->account && ev->account[0] == '@' && glob_match(e, ev->account, false);
	}
	strv_free(v, n);
	return hit;
}

bool
bot_is_admin(const struct bot *bot, const struct event *ev)
{
	struct transport *t = ev->transport;
	if (t && t->kind == &console_kind)
		return true;   /* whoever holds the terminal runs the bot */
	const char *list = t ? conf_net_get(bot->config, t->conf, "admins") : bot->config->bot.admins;
	return list && identity_in(list, ev);
}

bool
bot_is_ignored(const struct bot *bot, const struct event *ev)
{
	struct transport *t = ev->transport;
	const char *list = t ? conf_net_get(bot->config, t->conf, "ignore") : bot->config->bot.ignore;
	return list && *list && identity_in(list, ev);
}

struct transport *
bot_transport(struct bot *bot, const char *name)
{
	for (size_t i = 0; i < bot->nts; i++)
		if (strcmp(bot->ts[i]->name, name) == 0)
			return bot->ts[i];
	return NULL;
}

const struct kb *bot_kb(const struct bot *bot) { return bot->kb; }
const struct config *bot_config(const struct bot *bot) { return bot->config; }
struct loop *bot_loop(struct bot *bot) { return bot->loop; }
int64_t bot_started_ms(const struct bot *bot) { return bot->started_ms; }
