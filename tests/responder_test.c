/* responder_test.c: reading (negation, tense, whose knee, typos, idioms), deciding, composing. */
#include "kb.h"
#include "responder.h"
#include "t.h"

static struct kb *kb;
static struct responder *r;

static int
flag_index(const char *id)
{
	for (int i = 0; i < KB_NREDFLAGS; i++)
		if (strcmp(kb_redflag_ids[i], id) == 0)
			return i;
	return -1;
}

static struct triage
judge(const char *text, int addressed)
{
	struct triage t;
	responder_judge(r, text, strlen(text), addressed, NULL, &t);
	return t;
}

static bool
has_flag(const struct triage *t, const char *id)
{
	return t->flags & (1u << flag_index(id));
}

static const char *
top(const struct triage *t)
{
	return t->nranked ? kb_condition_ids[t->ranked[0]] : "-";
}

static void
expect(const char *text, int addressed, bool reply, const char *cond, const char *flag, const char *why)
{
	struct triage t = judge(text, addressed);
	bool ok = (t.kind != TRIAGE_SILENT) == reply;
	if (cond)
		ok &= strcmp(top(&t), cond) == 0;
	if (flag && *flag == '!')
		ok &= !has_flag(&t, flag + 1);
	else if (flag)
		ok &= has_flag(&t, flag);
	T_OK(ok, "%s: \"%s\" (reply %d, top %s, flags %#x)", why, text, t.kind != TRIAGE_SILENT, top(&t), (unsigned)t.flags);
}

static unsigned
count_lines(const char *s)
{
	unsigned n = *s ? 1 : 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void
test_compose(void)
{
	struct triage t = judge("heard a pop at netball, my knee blew up like a balloon and now it keeps giving way", 0);
	struct budget irc = { 3, 400, false }, full = { 0, 0, true };
	struct buf text, html;
	buf_init(&text);
	buf_init(&html);
	responder_compose(r, &t, &irc, "!", &text, &html);
	T_OK(count_lines(text.s) <= 3, "IRC budget: at most three lines (%u)", count_lines(text.s));
	T_OK(strncmp(text.s, "\xe2\x9a\xa0", 3) == 0, "the red-flag warning comes first");
	T_OK(strstr(text.s, "Sources: ") && strstr(text.s, "Not a diagnosis"), "the note and the sources are there");
	T_OK(!html.len, "no HTML unless the budget asks");
	buf_clear(&text);
	responder_compose(r, &t, &full, "!", &text, &html);
	T_OK(html.len && strstr(html.s, "<strong>") && strstr(html.s, "<ul>"), "HTML: warnings strong, advice as a list");
	T_OK(strstr(text.s, "Until someone has looked at it:") != NULL, "with a red flag the actions are what to do until seen");

	t = judge("dull ache behind my kneecap after sitting at my desk, worse on the stairs", 0);
	buf_clear(&text);
	buf_clear(&html);
	responder_compose(r, &t, &irc, "?", &text, &html);
	T_OK(strstr(text.s, "Could be runner's knee") != NULL, "'could be' language naming the condition");
	T_OK(strstr(text.s, "Try: ") != NULL, "concrete actions");
	T_OK(strstr(text.s, "?exercise ") != NULL, "one exercise pointer with the configured prefix");
	const char *p = text.s;
	bool fits = true;
	for (const char *nl; (nl = strchr(p, '\n')) || *p; p = nl ? nl + 1 : p + strlen(p)) {
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		fits &= len <= 512;
		if (!nl)
			break;
	}
	T_OK(fits, "every IRC line is short");
	buf_free(&text);
	buf_free(&html);
}

static void
test_followup(void)
{
	struct triage first, second;
	const char *a = "my knee hurts";
	responder_judge(r, a, strlen(a), true, NULL, &first);
	T_OK(first.kind == TRIAGE_CLARIFY, "a vague complaint gets the clarifying question");
	const char *b = "inside, just below the joint, worse on stairs";
	responder_judge(r, b, strlen(b), false, &first, &second);
	T_OK(second.kind == TRIAGE_ANSWER && second.nranked, "the answer to it is read with the first message (top %s)", top(&second));
	responder_judge(r, b, strlen(b), false, NULL, &second);
	T_OK(second.kind == TRIAGE_SILENT, "the same words alone, ambient, get silence");
	const char *c = "thanks!";
	responder_judge(r, c, strlen(c), false, &first, &second);
	T_OK(second.kind == TRIAGE_SILENT, "thanks after the question is not a follow-up");
}

static void
test_bad_input(void)
{
	char bad[] = "my knee \xff\xfe hurts \xc3\x28 on the st\x00irs";
	struct triage t;
	responder_judge(r, bad, sizeof bad - 1, false, NULL, &t);
	T_OK(t.kind != TRIAGE_SILENT, "invalid UTF-8 and a NUL are tolerated");
	size_t n = 65536;
	char *big = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		big[i] = "knee pain "[i % 10];
	big[n] = '\0';
	responder_judge(r, big, n, false, NULL, &t);
	T_OK(t.kind == TRIAGE_CLARIFY || t.kind == TRIAGE_ANSWER, "64 KiB of 'knee pain' is one complaint, not a crash");
	for (size_t i = 0; i < n; i++)
		big[i] = (char)(1 + (i * 7919) % 255);
	responder_judge(r, big, n, false, NULL, &t);
	T_OK(1, "64 KiB of control bytes and high bytes read without a crash");
	free(big);
	responder_judge(r, "", 0, true, NULL, &t);
	T_OK(t.kind == TRIAGE_SILENT, "an empty addressed message gets silence");
}

int
main(void)
{
	struct buf err;
	buf_init(&err);
	if (kb_load(t_responses(), &kb, &err) < 0) {
		T_OK(0, "knowledge base loads: %s", err.s);
		T_EXIT();
	}
	r = responder_new(kb);

	/* negation and scope */
	expect("front of my knee aches on stairs. no swelling, it's never given way", 0, true, "pfps", "!giving_way", "negated flags stay down");
	expect("twisted it, inner knee sore, it didn't pop and there's no swelling", 0, true, NULL, "!pop", "\"didn't pop\"");
	expect("pain on the outside of my knee, not the inside", 0, true, "itbs", NULL, "not the inside, the outside");
	expect("it's not the outside, it's the inside of my knee that hurts after I twisted it", 0, true, NULL, NULL, "the inside after all");
	expect("I can walk on it fine, no big swelling, inside of my knee sore after a tackle", 0, true, "mcl", "!cannot_bear_weight", "can walk: no flag");

	/* past, resolved, other people */
	expect("used to give way years ago at uni, nothing since. who's up for the relay?", 0, false, NULL, "!giving_way", "past and resolved");
	expect("my mate's knee gave way at parkrun last year", 0, false, NULL, "!giving_way", "someone else's story");
	expect("my husband's knee gave way at parkrun this morning, anything he should do?", 0, true, NULL, "giving_way", "someone else's knee with a question");
	expect("knees fine now, thanks", 0, false, NULL, NULL, "resolved chatter");
	expect("knee-deep in work, skipping the session", 0, false, NULL, NULL, "idiom");

	/* typos and spelling */
	expect("pretty sure I tore my menicus, clicking on the inside when I squat", 0, true, "meniscus", NULL, "menicus");
	expect("dull ache round my patela after the cinema", 0, true, "pfps", NULL, "patela");
	expect("physio thinks its bursitus, sore spot below the inner knee", 0, true, "pes_anserine", NULL, "bursitus");
	expect("KNEECAP ACHES GOING DOWNSTAIRS", 0, true, "pfps", NULL, "shouting");
	expect("knee\xe2\x80\x99s sore on the \xe2\x80\x9coutside\xe2\x80\x9d after long runs", 0, true, "itbs", NULL, "curly quotes");
	expect("\xef\xbd\x8b\xef\xbd\x8e\xef\xbd\x85\xef\xbd\x85 pain on the outside", 0, true, "itbs", NULL, "full-width letters through NFKC");

	/* red flags caught without a condition, and red flags never missed */
	expect("can't put any weight on my leg since I fell, knee throbbing", 0, true, NULL, "cannot_bear_weight", "no condition, a flag");
	expect("my calf below the sore knee has gone swollen and a bit purple", 0, true, NULL, "calf_discoloration", "calf discoloration");
	expect("toes numb from the cold at parkrun", 0, false, NULL, "!numbness", "cold toes are not a red flag");
	expect("had a fever all weekend so missed the long run", 0, false, NULL, "!fever", "a fever without the leg");

	/* addressed messages */
	expect("thanks, the band walks sorted it", 1, false, NULL, NULL, "addressed thanks");
	expect("what can you do?", 1, true, NULL, NULL, "an addressed question gets a hint");
	expect("my knee hurts", 1, true, NULL, NULL, "an addressed vague complaint gets the clarifying question");
	expect("is quiet today", 1, false, NULL, NULL, "an addressed remark gets silence");

	test_compose();
	test_followup();
	test_bad_input();
	responder_free(r);
	kb_free(kb);
	buf_free(&err);
	T_EXIT();
}
