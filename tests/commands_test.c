/* commands_test.c: every member command answers from the KB; near-misses resolve; admin refused. */
#include "commands.h"
#include "config.h"
#include "kb.h"
#include "log.h"
#include "t.h"

static struct kb *kb;
static struct buf out;

static const char *
run(const char *line, bool compact, bool admin, bool *allowed)
{
	static const struct budget irc = { 3, 400, false }, full = { 0, 0, true };
	struct event ev = { .sender = "alice", .room = "#club", .text = line, .text_len = strlen(line) };
	buf_clear(&out);
	struct cmd_ctx ctx = { .ev = &ev, .kb = kb, .budget = compact ? &irc : &full, .prefix = "!", .admin = admin, .out = &out };
	bool ok = commands_run(&ctx, line);
	if (allowed)
		*allowed = ok;
	return out.s ? out.s : "";
}

static unsigned
lines(const char *s)
{
	unsigned n = *s != 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

int
main(void)
{
	log_init(LOG_LVL_ERR, "commands_test");
	struct buf err;
	buf_init(&err);
	buf_init(&out);
	if (kb_load(t_responses(), &kb, &err) < 0)
		return 1;
	for (size_t i = 1; i < command_count(); i++)
		T_OK(strcmp(command_at(i - 1)->name, command_at(i)->name) < 0, "table sorted for bsearch at %s", command_at(i)->name);
	static const char *const member[] = { "help", "help exercise", "exercises", "exercises hips", "exercises it band",
		"exercises vmo", "exercises core", "exercises calves", "exercises quads", "redflags", "rice", "return", "shoes",
		"crosstrain", "condition itbs", "condition runner's knee", "sources", "about" };
	for (size_t i = 0; i < sizeof member / sizeof member[0]; i++) {
		const char *o = run(member[i], false, false, NULL);
		T_OK(strlen(o) > 20 && !strstr(o, "No command") && !strstr(o, "don't know") && !strstr(o, "No exercises"),
			"!%s answers (%zu bytes)", member[i], strlen(o));
		o = run(member[i], true, false, NULL);
		T_OK(lines(o) <= 6, "!%s compact for IRC (%u lines)", member[i], lines(o));
	}
	T_OK(strstr(run("exercise band walk", false, false, NULL), "Dose:") != NULL, "!exercise band walk: steps and dose");
	T_OK(strstr(run("exercise band walks", false, false, NULL), "band walk") != NULL, "a plural resolves");
	T_OK(strstr(run("exercise clams", false, false, NULL), "side-lying leg raise") != NULL, "an alias resolves (clams)");
	T_OK(strstr(run("exercise tke", false, false, NULL), "terminal knee extension") != NULL, "an abbreviation resolves (tke)");
	T_OK(strstr(run("exercise band wlak", false, false, NULL), "Dose:") != NULL, "a near-miss resolves (band wlak)");
	const char *o = run("exercise moonwalk", false, false, NULL);
	T_OK(strstr(o, "Closest:") && strstr(o, ", ") , "an unknown exercise lists the closest three");
	T_OK(strstr(run("frobnicate", false, false, NULL), "Try !help") != NULL, "an unknown command gets a hint, not silence");
	T_OK(strstr(run("redflags", false, false, NULL), "Now:") != NULL, "!redflags grouped by urgency");
	bool allowed = true;
	o = run("reload", false, false, &allowed);
	T_OK(!allowed && strstr(o, "admins"), "a non-admin's !reload is refused with one line");
	o = run("status", false, false, &allowed);
	T_OK(!allowed, "a non-admin's !status is refused");
	T_OK(!strstr(run("help", false, false, NULL), "!reload"), "help does not list admin commands to members");
	kb_free(kb);
	buf_free(&out);
	buf_free(&err);
	T_EXIT();
}
