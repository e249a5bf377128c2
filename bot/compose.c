/*
 * compose.c: triage to words.  Red-flag warnings always come first, then the
 * likeliest conditions in "could be" language with the detail that points to
 * each, two to four actions, one exercise pointer, and a one-line "not a
 * diagnosis" note with the sources.  A budget of a few lines (IRC) packs all
 * of that into short lines; an unlimited one (console, Matrix) lays it out,
 * as HTML too when asked.  No I/O.
 */
#include <string.h>

#include "buf.h"
#include "kb.h"
#include "responder.h"

#define MIN_ACTIONS 2
#define MAX_ACTIONS 4
#define MAX_SHOWN 2       /* conditions named in an answer */

static const char *const urgency_label[] = { "soon", "today", "now" };

/* Red flags, most urgent first. */
static unsigned
order_flags(uint32_t flags, const struct kb *kb, unsigned *out)
{
	unsigned n = 0;
	for (int u = KB_URGENCY_NOW; u >= KB_URGENCY_SOON; u--)
		for (unsigned f = 0; f < KB_NREDFLAGS; f++)
			if ((flags & (1u << f)) && kb_redflag(kb, f)->urgency == (enum kb_urgency)u)
				out[n++] = f;
	return n;
}

static const char *
detail_of(const struct triage *t, const struct kb *kb, unsigned c)
{
	const struct kb_cue *cue = t->best[c];
	return cue && cue->detail ? cue->detail : kb_condition(kb, c)->sign;
}

/* The actions to show: the best condition's, else the first raised factor's. */
static const struct kb_list *
actions_of(const struct triage *t, const struct kb *kb)
{
	if (t->nranked)
		return &kb_condition(kb, t->ranked[0])->try_;
	for (unsigned f = 0; f < KB_NFACTORS; f++)
		if (t->factors & (1u << f))
			return &kb_factor(kb, f)->try_;
	return NULL;
}

static const struct kb_exercise *
exercise_of(const struct triage *t, const struct kb *kb)
{
	const struct kb_list *l = NULL;
	if (t->nranked)
		l = &kb_condition(kb, t->ranked[0])->exercises;
	for (unsigned f = 0; (!l || !l->n) && f < KB_NFACTORS; f++)
		if (t->factors & (1u << f))
			l = &kb_factor(kb, f)->exercises;
	return l && l->n ? kb_exercise_find(kb, l->v[0]) : NULL;
}

static unsigned
seeds_of(const struct triage *t, const struct kb *kb, unsigned nshown)
{
	unsigned s = 0;
	for (unsigned f = 0; f < KB_NREDFLAGS; f++)
		if (t->flags & (1u << f))
			s |= kb_redflag(kb, f)->seeds;
	for (unsigned i = 0; i < nshown; i++)
		s |= kb_condition(kb, t->ranked[i])->seeds;
	for (unsigned f = 0; f < KB_NFACTORS; f++)
		if (t->factors & (1u << f))
			s |= kb_factor(kb, f)->seeds;
	return s;
}

static void
add_disclaimer(const struct kb *kb, unsigned seeds, struct buf *b)
{
	const struct kb_topic *d = kb_topic(kb, "disclaimer");
	buf_adds(b, d->lines.v[0]);
	if (seeds) {
		buf_adds(b, " Sources: ");
		kb_seeds_format(seeds, b);
		buf_addc(b, '.');
	}
}

/* Appends "Try: a; b; c." with as many actions (2 to 4) as fit in width. */
static void
add_actions(struct buf *b, const char *lead, const struct kb_list *l, size_t width)
{
	if (!l || !l->n)
		return;
	size_t start = b->len;
	unsigned n = l->n < MAX_ACTIONS ? (unsigned)l->n : MAX_ACTIONS;
	for (; n >= MIN_ACTIONS || n == l->n; n--) {
		b->len = start;
		if (b->s)   /* an empty buf has no storage yet */
			b->s[start] = '\0';
		buf_adds(b, lead);
		for (unsigned i = 0; i < n; i++) {
			const char *a = l->v[i];
			size_t an = strlen(a);
			if (an && a[an - 1] == '.')
				an--;   /* joined with "; ", the last one gets the full stop */
			if (i)
				buf_adds(b, "; ");
			buf_add(b, a, an);
		}
		buf_addc(b, '.');
		if (!width || b->len - start <= width || n <= MIN_ACTIONS || n == 1)
			return;
	}
}

static void
add_exercise(struct buf *b, const struct kb_exercise *ex, const char *prefix, bool flagged)
{
	if (!ex)
		return;
	buf_printf(b, "%s: %sexercise %s", flagged ? "Once it has been checked" : "Exercise",
		prefix, ex->name);
	buf_addc(b, '.');
}

static void
add_line(struct buf *text, const char *s)
{
	if (text->len)
		buf_addc(text, '\n');
	buf_adds(text, s);
}

/* --- a few short lines (IRC) --- */

static void
compose_short(const struct kb *kb, const struct triage *t, const struct budget *bg, const char *prefix, struct buf *out)
{
	unsigned fl[KB_NREDFLAGS];
	unsigned nf = order_flags(t->flags, kb, fl);
	unsigned nshown = t->nranked < MAX_SHOWN ? t->nranked : MAX_SHOWN;
	size_t width = bg->line_bytes;
	struct buf line[3];
	for (int i = 0; i < 3; i++)
		buf_init(&line[i]);

	/* the warning: the most urgent sign in full, the others named */
	if (nf) {
		buf_printf(&line[0], "\xe2\x9a\xa0 %s", kb_redflag(kb, fl[0])->warning);
		for (unsigned i = 1; i < nf; i++) {
			const struct kb_redflag *f = kb_redflag(kb, fl[i]);
			if (width && line[0].len + strlen(f->warning) + 1 > width) {
				buf_printf(&line[0], "%s%s", i == 1 ? " Also: " : ", ", f->name);
			} else {
				buf_printf(&line[0], " %s", f->warning);
			}
		}
	}
	struct buf *cond = nf ? &line[1] : &line[0];
	for (unsigned i = 0; i < nshown; i++) {
		const struct kb_condition *c = kb_condition(kb, t->ranked[i]);
		buf_printf(cond, "%s%s (%s)", i ? ", or " : "Could be ", c->name, detail_of(t, kb, t->ranked[i]));
	}
	if (nshown)
		buf_addc(cond, '.');
	const struct kb_list *acts = actions_of(t, kb);
	if (nf) {
		/* with a red flag, only what to do until someone has looked at it */
		const struct kb_list *rice = &kb_topic(kb, "rice")->lines;
		if (line[1].len)
			buf_addc(&line[1], ' ');
		add_actions(&line[1], "Until then: ", rice, width ? width - (line[1].len < width ? line[1].len : width) : 0);
	} else if (acts) {
		add_actions(&line[1], "Try: ", acts, width);
	}
	add_exercise(&line[2], exercise_of(t, kb), prefix, nf > 0);
	if (line[2].len)
		buf_addc(&line[2], ' ');
	add_disclaimer(kb, seeds_of(t, kb, nshown), &line[2]);

	unsigned max = bg->max_lines ? bg->max_lines : 3;
	unsigned used = 0;
	for (int i = 0; i < 3; i++) {
		if (!line[i].len)
			continue;
		if (used + 1 > max) {
			/* out of lines: keep the warning, fold the rest into the last line */
			buf_adds(out, " ");
			buf_adds(out, line[i].s);
		} else {
			add_line(out, line[i].s);
			used++;
		}
	}
	for (int i = 0; i < 3; i++)
		buf_free(&line[i]);
}

/* --- laid out in full (console, Matrix) --- */

static void
html_list(struct buf *html, const struct kb_list *l, unsigned max)
{
	buf_adds(html, "<ul>");
	for (unsigned i = 0; i < l->n && i < max; i++) {
		buf_adds(html, "<li>");
		buf_add_html(html, l->v[i], strlen(l->v[i]));
		buf_adds(html, "</li>");
	}
	buf_adds(html, "</ul>");
}

static void
compose_full(const struct kb *kb, const struct triage *t, const char *prefix, struct buf *out, struct buf *html)
{
	unsigned fl[KB_NREDFLAGS];
	unsigned nf = order_flags(t->flags, kb, fl);
	unsigned nshown = t->nranked < MAX_SHOWN ? t->nranked : MAX_SHOWN;
	struct buf l;
	buf_init(&l);
	for (unsigned i = 0; i < nf; i++) {
		const struct kb_redflag *f = kb_redflag(kb, fl[i]);
		buf_clear(&l);
		buf_printf(&l, "\xe2\x9a\xa0 %s", f->warning);
		add_line(out, l.s);
		if (html) {
			buf_adds(html, "<p><strong>\xe2\x9a\xa0 ");
			buf_add_html(html, f->warning, strlen(f->warning));
			buf_printf(html, "</strong> (urgency: %s)</p>", urgency_label[f->urgency]);
		}
	}
	for (unsigned i = 0; i < nshown; i++) {
		const struct kb_condition *c = kb_condition(kb, t->ranked[i]);
		const char *d = detail_of(t, kb, t->ranked[i]);
		buf_clear(&l);
		buf_printf(&l, "%s%s What points to it: %s.", i ? "Or: " : "", c->what, d);
		add_line(out, l.s);
		if (html) {
			buf_adds(html, "<p>");
			if (i)
				buf_adds(html, "Or: ");
			buf_add_html(html, c->what, strlen(c->what));
			buf_adds(html, " <em>What points to it: ");
			buf_add_html(html, d, strlen(d));
			buf_adds(html, ".</em></p>");
		}
	}
	const struct kb_list *acts = nf ? &kb_topic(kb, "rice")->lines : actions_of(t, kb);
	if (acts && acts->n) {
		add_line(out, nf ? "Until someone has looked at it:" : "What to try now:");
		for (unsigned i = 0; i < acts->n && i < MAX_ACTIONS; i++) {
			buf_clear(&l);
			buf_printf(&l, "- %s", acts->v[i]);
			add_line(out, l.s);
		}
		if (html) {
			buf_adds(html, nf ? "<p>Until someone has looked at it:</p>" : "<p>What to try now:</p>");
			html_list(html, acts, MAX_ACTIONS);
		}
	}
	for (unsigned f = 0; f < KB_NFACTORS; f++) {
		if (!(t->factors & (1u << f)))
			continue;
		const struct kb_factor *fa = kb_factor(kb, f);
		buf_clear(&l);
		buf_printf(&l, "Worth knowing: %s", fa->explain);
		add_line(out, l.s);
		if (html) {
			buf_adds(html, "<p>Worth knowing: ");
			buf_add_html(html, fa->explain, strlen(fa->explain));
			buf_adds(html, "</p>");
		}
	}
	const struct kb_exercise *ex = exercise_of(t, kb);
	if (ex) {
		buf_clear(&l);
		add_exercise(&l, ex, prefix, nf > 0);
		add_line(out, l.s);
		if (html) {
			buf_adds(html, "<p>");
			buf_adds(html, nf ? "Once it has been checked: " : "Exercise: ");
			buf_adds(html, "<code>");
			buf_add_html(html, prefix, strlen(prefix));
			buf_adds(html, "exercise ");
			buf_add_html(html, ex->name, strlen(ex->name));
			buf_adds(html, "</code></p>");
		}
	}
	buf_clear(&l);
	add_disclaimer(kb, seeds_of(t, kb, nshown), &l);
	add_line(out, l.s);
	if (html) {
		buf_adds(html, "<p><em>");
		buf_add_html(html, l.s, l.len);
		buf_adds(html, "</em></p>");
	}
	buf_free(&l);
}

/* The clarifying question or the hint: a topic, plus any factor we noticed. */
static void
compose_topic(const struct kb *kb, const struct triage *t, const char *id, const struct budget *bg,
	struct buf *out, struct buf *html)
{
	const struct kb_topic *tp = kb_topic(kb, id);
	struct buf l;
	buf_init(&l);
	unsigned lines = 0, max = bg->max_lines;
	for (unsigned f = 0; f < KB_NFACTORS && t->kind == TRIAGE_CLARIFY; f++) {
		if (!(t->factors & (1u << f)))
			continue;
		const struct kb_factor *fa = kb_factor(kb, f);
		buf_clear(&l);
		buf_printf(&l, "%s %s", fa->explain, fa->try_.v[0]);
		add_line(out, l.s);
		lines++;
		if (html) {
			buf_adds(html, "<p>");
			buf_add_html(html, l.s, l.len);
			buf_adds(html, "</p>");
		}
		break;   /* one is enough before asking */
	}
	for (size_t i = 0; i < tp->lines.n; i++) {
		if (max && lines >= max) {
			/* fold what is left into the last line */
			buf_addc(out, ' ');
			buf_adds(out, tp->lines.v[i]);
		} else {
			add_line(out, tp->lines.v[i]);
			lines++;
		}
		if (html) {
			buf_adds(html, "<p>");
			buf_add_html(html, tp->lines.v[i], strlen(tp->lines.v[i]));
			buf_adds(html, "</p>");
		}
	}
	buf_free(&l);
}

void
responder_compose(const struct responder *r, const struct triage *t, const struct budget *bg,
	const char *prefix, struct buf *text, struct buf *html)
{
	const struct kb *kb = responder_kb(r);
	struct buf *h = bg->html ? html : NULL;
	switch (t->kind) {
	case TRIAGE_SILENT:
		return;
	case TRIAGE_ANSWER:
		if (bg->max_lines)
			compose_short(kb, t, bg, prefix, text);
		else
			compose_full(kb, t, prefix, text, h);
		return;
	case TRIAGE_CLARIFY:
		compose_topic(kb, t, "clarify", bg, text, h);
		return;
	case TRIAGE_HINT:
		compose_topic(kb, t, "hint", bg, text, h);
		return;
	}
}
