/*
 * responder.c: a chat message to triage, and triage to an answer.  No I/O.
 * Reading is four passes over the tokens: idioms are blanked, word classes
 * marked, clauses found, then the cues of cues.ini are matched and weighed
 * according to negation, tense and whose knee it is.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "kb.h"
#include "responder.h"
#include "text.h"

#define WCACHE_SIZE 8192u      /* surface word -> term; a power of two */
#define WCACHE_WORD 19         /* longer words are looked up each time: rare, and it keeps entries at 32 bytes */

struct wcache {
	uint32_t hash;
	uint32_t term, exact;
	uint8_t len;
	char word[WCACHE_WORD];
};

struct clause {
	bool past;     /* speaks of the past or of something resolved */
	bool third;    /* about someone else's knee */
	bool current;  /* says "now", "today", "diagnosed": never made past */
	bool body;     /* names the knee or the Achilles */
	bool leg;      /* names another part of the leg */
	bool breaker;  /* opened by "but", "though": earlier clauses are another thought */
	uint16_t sentence;
};

/* Class indexes the responder gives meaning to (see responses/README.md). */
enum { C_NEGATOR, C_BREAKER, C_PAST, C_RESOLVED, C_CURRENT, C_THIRD, C_SELF, C_ASK, C_THANKS, C_GREETING, C_IDIOM,
	C_BODY, C_SYMPTOM, C_COUNT };
static const char *const class_names[C_COUNT] = {
	"negator", "breaker", "past", "resolved", "current", "third", "self", "ask", "thanks", "greeting", "idiom",
	"body", "symptom",
};

struct responder {
	const struct kb *kb;
	struct stemmer *stemmer;
	struct text text;
	size_t cap;
	uint32_t *term;
	uint32_t *exact;       /* the word as written, for "=popped" slots */
	uint64_t *cls;
	uint16_t *clause;
	uint16_t *sentence;
	uint8_t *covered;      /* part of a counted red-flag match */
	struct clause *clauses;
	uint32_t *cue_gen;     /* cue counted in this message when == gen */
	uint32_t *verdict;     /* gen << 1 | viable, once known for this message */
	uint64_t *present;     /* terms in this message, one bit each */
	size_t present_words;
	uint64_t present_cls;  /* classes in this message */
	uint32_t gen;
	struct buf *trace;
	int c[C_COUNT];
	int c_leg;             /* the rest of the leg: enough for a red flag */
	int c_other;           /* joints away from the leg */
	struct wcache cache[WCACHE_SIZE];
};

#define HAS(r, i, k) (((r)->cls[i] >> (r)->c[k]) & 1u)

struct responder *
responder_new(const struct kb *kb)
{
	struct responder *r = xcalloc(1, sizeof *r);
	r->kb = kb;
	r->stemmer = stemmer_new();
	text_init(&r->text);
	for (int k = 0; k < C_COUNT; k++)
		r->c[k] = kb_class_index(kb, class_names[k]);   /* kb_load guarantees them */
	r->c_leg = kb_class_index(kb, "leg");
	r->c_other = kb_class_index(kb, "otherjoint");
	r->cue_gen = xcalloc(kb_cue_count(kb) + 1, sizeof *r->cue_gen);
	r->verdict = xcalloc(kb_cue_count(kb) + 1, sizeof *r->verdict);
	r->present_words = kb_term_count(kb) / 64 + 1;
	r->present = xcalloc(r->present_words, sizeof *r->present);
	return r;
}

void
responder_free(struct responder *r)
{
	if (!r)
		return;
	stemmer_free(r->stemmer);
	text_free(&r->text);
	free(r->term);
	free(r->exact);
	free(r->cls);
	free(r->clause);
	free(r->sentence);
	free(r->covered);
	free(r->clauses);
	free(r->cue_gen);
	free(r->verdict);
	free(r->present);
	free(r);
}

void
responder_trace(struct responder *r, struct buf *trace)
{
	r->trace = trace;
}

const struct kb *
responder_kb(const struct responder *r)
{
	return r->kb;
}

/* A word the KB does not know: the nearest KB word within one or two edits. */
static uint32_t
correct_typo(const struct responder *r, const char *w, size_t n)
{
	const struct kb_settings *st = kb_settings(r->kb);
	if (n < st->typo_min_len)
		return KB_TERM_NONE;
	unsigned max = n >= st->typo_two_len ? 2 : 1;
	uint32_t best = KB_TERM_NONE;
	unsigned bestd = max + 1;
	size_t from, to;
	kb_words_starting(r->kb, (unsigned char)w[0], &from, &to);
	for (size_t i = from; i < to; i++) {
		uint32_t term;
		const char *cand = kb_word_at(r->kb, i, &term);
		size_t cn = strlen(cand);
		/* typos rarely hit the first letter; requiring it keeps real words real */
		if (cand[0] != w[0] || cn < st->typo_min_len || (cn > n ? cn - n : n - cn) > max)
			continue;
		unsigned d = text_edit_distance(w, n, cand, cn, max);
		if (d < bestd) {
			bestd = d;
			best = term;
		}
	}
	return best;
}

/* A word's term: stemmed (numbers as written), else the nearest KB word; cached with its exact term. */
static uint32_t
lookup_word(struct responder *r, const char *w, size_t n, bool number, uint32_t *exact)
{
	uint32_t h = (uint32_t)hash_bytes(w, n);
	struct wcache *e = n <= WCACHE_WORD ? &r->cache[h & (WCACHE_SIZE - 1)] : NULL;
	if (e && e->len == n && e->hash == h && memcmp(e->word, w, n) == 0) {
		*exact = e->exact;
		return e->term;
	}
	char eq[TEXT_MAX_WORD + 2];
	eq[0] = '=';
	memcpy(eq + 1, w, n);
	*exact = kb_term(r->kb, eq, n + 1);
	uint32_t term;
	if (number) {
		term = kb_term(r->kb, w, n);
	} else {
		char stem[TEXT_MAX_WORD + 1];
		size_t sn = stemmer_stem(r->stemmer, w, n, stem, sizeof stem);
		term = kb_term(r->kb, stem, sn);
		if (term == KB_TERM_NONE)
			term = correct_typo(r, w, n);
	}
	if (e) {
		e->hash = h;
		e->len = (uint8_t)n;
		e->term = term;
		e->exact = *exact;
		memcpy(e->word, w, n);
	}
	return term;
}

static void
reserve(struct responder *r, size_t n)
{
	if (n <= r->cap)
		return;
	r->cap = n;
	r->term = xrealloc(r->term, n * sizeof *r->term);
	r->exact = xrealloc(r->exact, n * sizeof *r->exact);
	r->cls = xrealloc(r->cls, n * sizeof *r->cls);
	r->clause = xrealloc(r->clause, n * sizeof *r->clause);
	r->sentence = xrealloc(r->sentence, n * sizeof *r->sentence);
	r->covered = xrealloc(r->covered, n * sizeof *r->covered);
	r->clauses = xrealloc(r->clauses, (n + 1) * sizeof *r->clauses);
}

static bool
is_word(const struct responder *r, size_t i)
{
	return r->text.toks[i].kind <= TOK_NUM;
}

static bool
slot_ok(const struct responder *r, const struct kb_slot *s, size_t i)
{
	if (!is_word(r, i))
		return false;
	switch (s->kind) {
	case KB_SLOT_TERMS:
		if (r->term[i] == KB_TERM_NONE)
			return false;
		for (unsigned k = 0; k < s->nterms; k++)
			if (s->terms[k] == r->term[i])
				return true;
		return false;
	case KB_SLOT_EXACT:
		for (unsigned k = 0; k < s->nterms; k++)
			if (s->terms[k] == r->exact[i])
				return true;
		return false;
	case KB_SLOT_NUMBER: {
		const struct tok *tk = &r->text.toks[i];
		if (tk->kind != TOK_NUM)
			return false;
		/* "52m", "70s", "38.6": the leading number */
		char num[32];
		size_t n = tk->len < sizeof num - 1 ? tk->len : sizeof num - 1;
		memcpy(num, r->text.norm + tk->off, n);
		num[n] = '\0';
		float v = strtof(num, NULL);
		return v >= s->min && v <= s->max;
	}
	case KB_SLOT_CLASS:
		return (r->cls[i] >> s->cls) & 1u;
	case KB_SLOT_ANY:
		return r->term[i] != KB_TERM_NONE || r->text.toks[i].kind == TOK_NUM || r->text.toks[i].len > 0;
	}
	return false;
}

/*
 * Matches cue at token i; on success returns the last token and fills
 * slotpos (token of each slot).  Gaps stay inside the clause (when clauses
 * are known) and never cross a break.
 */
static long
match_at(const struct responder *r, const struct kb_cue *cue, size_t i, bool clauses_known, size_t *slotpos)
{
	if (!slot_ok(r, &cue->slots[0], i))
		return -1;
	size_t pos = i, n = r->text.ntoks;
	slotpos[0] = i;
	for (unsigned k = 1; k < cue->nslots; k++) {
		const struct kb_slot *s = &cue->slots[k];
		/* "..." spans the sentence (lists: "red, puffy and warm"); ".." stays in the clause */
		bool wide = s->gap > 4;
		bool found = false;
		for (size_t j = pos + 1; j <= pos + 1 + s->gap && j < n; j++) {
			enum tok_kind kind = r->text.toks[j].kind;
			if (wide && kind == TOK_COMMA)
				continue;
			if (!is_word(r, j) || (clauses_known && !wide && r->clause[j] != r->clause[i]) ||
			    (clauses_known && wide && r->sentence[j] != r->sentence[i]))
				break;
			if (slot_ok(r, s, j)) {
				pos = j;
				found = true;
				break;
			}
		}
		if (!found)
			return -1;
		slotpos[k] = pos;
	}
	return (long)pos;
}

/*
 * The cue lists that can start at token i in one pass: by its stem, by the
 * word as written, as a number, by each class it has.  Most tokens start
 * nothing and leave after a few bit tests.
 */
struct cue_lists {
	unsigned n;
	struct { const uint32_t *v; size_t n; } l[3 + KB_MAX_CLASSES];
};

static bool
has_term(const struct kb_index *x, uint32_t t)
{
	return t < x->nterms && ((x->term_bits[t >> 6] >> (t & 63)) & 1u);
}

static bool
lists_at(const struct responder *r, const struct kb_index *x, size_t i, struct cue_lists *out)
{
	uint32_t t = r->term[i], e = r->exact[i];
	uint64_t bits = r->cls[i] & x->class_bits;
	bool num = r->text.toks[i].kind == TOK_NUM && x->nnum;
	bool ht = has_term(x, t), he = has_term(x, e);
	if (!ht && !he && !bits && !num)
		return false;
	out->n = 0;
	if (ht)
		out->l[out->n].v = x->term_items + x->term_off[t], out->l[out->n++].n = x->term_off[t + 1] - x->term_off[t];
	if (he)
		out->l[out->n].v = x->term_items + x->term_off[e], out->l[out->n++].n = x->term_off[e + 1] - x->term_off[e];
	if (num)
		out->l[out->n].v = x->num_items, out->l[out->n++].n = x->nnum;
	for (; bits; bits &= bits - 1) {
		unsigned c = (unsigned)__builtin_ctzll(bits);
		out->l[out->n].v = x->class_items + x->class_off[c];
		out->l[out->n++].n = x->class_off[c + 1] - x->class_off[c];
	}
	return true;
}

/*
 * Can every slot of cue find something in this message?  Most candidate cues
 * start with a common word ("a pop", "the inside") and fail here, cheaply,
 * without a match attempt; the verdict is kept for the rest of the message.
 */
static bool
viable(struct responder *r, uint32_t ci, const struct kb_cue *cue, bool classes_final)
{
	if (r->verdict[ci] >> 1 == r->gen)
		return r->verdict[ci] & 1u;
	bool ok = true;
	for (unsigned k = 1; k < cue->nslots && ok; k++) {
		const struct kb_slot *sl = &cue->slots[k];
		if (sl->kind == KB_SLOT_TERMS || sl->kind == KB_SLOT_EXACT) {
			bool any = false;
			for (unsigned j = 0; j < sl->nterms && !any; j++)
				any = (r->present[sl->terms[j] >> 6] >> (sl->terms[j] & 63)) & 1u;
			ok = any;
		} else if (sl->kind == KB_SLOT_CLASS && classes_final) {
			ok = (r->present_cls >> sl->cls) & 1u;
		}
	}
	/* classes are still being marked in the class passes: decide again next time */
	if (classes_final || !ok)
		r->verdict[ci] = r->gen << 1 | ok;
	return ok;
}

/* Marks word classes; idioms first, whose words are then forgotten. */
static void
mark_classes(struct responder *r, enum kb_pass pass)
{
	bool idioms = pass == KB_PASS_IDIOM;
	const struct kb_index *x = kb_index(r->kb, pass);
	if (!x->entries)
		return;
	size_t slotpos[KB_MAX_SLOTS];
	size_t n = r->text.ntoks;
	struct cue_lists lists;
	for (size_t i = 0; i < n; i++) {
		if (!is_word(r, i) || !lists_at(r, x, i, &lists))
			continue;
		bool blank = false;
		for (unsigned li = 0; li < lists.n && !blank; li++)
		for (size_t k = 0; k < lists.l[li].n && !blank; k++) {
			uint32_t ci = lists.l[li].v[k];
			const struct kb_cue *cue = &x->cues[ci];
			if (!idioms && !viable(r, ci, cue, false))
				continue;
			long end = match_at(r, cue, i, false, slotpos);
			if (end < 0)
				continue;
			for (size_t j = i; j <= (size_t)end; j++) {
				if (idioms) {
					r->term[j] = KB_TERM_NONE;
					r->exact[j] = KB_TERM_NONE;
					r->cls[j] = 0;
				} else {
					r->cls[j] |= 1ull << cue->index;
				}
			}
			if (!idioms)
				r->present_cls |= 1ull << cue->index;
			blank = idioms;   /* the token is blank now; its other cues are moot */
		}
	}
}

/*
 * Numbers clauses (a comma, a stop or a breaker word ends one) and sentences,
 * and decides for each clause whether it is past and whose knee it is about.
 * A resolving or past clause also reaches back over the earlier clauses of its
 * sentence ("swelled up after the marathon, never since") unless a breaker
 * stands between or the earlier clause says "now".
 */
static size_t
find_clauses(struct responder *r)
{
	size_t n = r->text.ntoks, c = 0;
	uint16_t sent = 0;
	bool self = false, third = false, after_self = false, past = false, resolved = false, opened = false;
	r->clauses[0] = (struct clause){ 0 };
	for (size_t i = 0; i <= n; i++) {
		bool stop = i < n && (r->text.toks[i].kind == TOK_STOP || r->text.toks[i].kind == TOK_QMARK);
		bool brk = i < n && is_word(r, i) && HAS(r, i, C_BREAKER);
		bool end = i == n || !is_word(r, i) || brk;
		if (!end) {
			r->clause[i] = (uint16_t)c;
			r->sentence[i] = sent;
			past |= HAS(r, i, C_PAST);
			resolved |= HAS(r, i, C_RESOLVED);
			r->clauses[c].current |= HAS(r, i, C_CURRENT);
			r->clauses[c].body |= HAS(r, i, C_BODY);
			if (r->c_leg >= 0)
				r->clauses[c].leg |= (r->cls[i] >> r->c_leg) & 1u;
			/* "my friend's knee": "my" then someone else is not the speaker's knee */
			if (HAS(r, i, C_THIRD) && !HAS(r, i, C_SELF)) {
				third = true;
				if (after_self)
					self = false;
			}
			after_self = HAS(r, i, C_SELF);
			if (after_self)
				self = true;
			continue;
		}
		struct clause *cl = &r->clauses[c];
		cl->third = third && !self;
		/* ", turned out to be a clot": a clause with no subject of its own is still about them */
		if (!third && !self && c > 0 && !opened && r->clauses[c - 1].sentence == sent && r->clauses[c - 1].third)
			cl->third = true;
		cl->past = resolved || (past && !cl->current);
		cl->sentence = sent;
		cl->breaker = opened;
		if (cl->past)
			for (size_t j = c; j-- > 0 && r->clauses[j].sentence == sent && !r->clauses[j + 1].breaker;)
				if (!r->clauses[j].current)
					r->clauses[j].past = true;
		if (i == n)
			break;
		r->clause[i] = (uint16_t)c;
		r->sentence[i] = sent;
		if (stop && sent < UINT16_MAX)
			sent++;
		if (c + 1 < UINT16_MAX && c < n)
			c++;
		r->clauses[c] = (struct clause){ 0 };
		self = third = after_self = past = resolved = false;
		opened = brk;
	}
	return c + 1;
}

static bool
negated(const struct responder *r, size_t start, size_t end, const size_t *slotpos, unsigned nslots)
{
	unsigned window = kb_settings(r->kb)->negation_window;
	/* "won't straighten and I can't put weight on it": a negated phrase is not undone by a negator before it */
	for (unsigned k = 0; k < nslots; k++)
		if (HAS(r, slotpos[k], C_NEGATOR))
			return false;
	for (size_t j = start, k = 0; j-- > 0 && k < window; k++) {
		if (r->clause[j] != r->clause[start] || !is_word(r, j))
			break;
		if (HAS(r, j, C_NEGATOR))
			return true;
	}
	/* "knee isn't swollen" matched by "knee .. swollen": the gap holds the negator */
	for (size_t j = start + 1; j < end; j++) {
		bool slot = false;
		for (unsigned k = 0; k < nslots; k++)
			slot |= slotpos[k] == j;
		if (!slot && HAS(r, j, C_NEGATOR))
			return true;
	}
	return false;
}

static void
count_cue(const struct kb_cue *cue, struct triage *t)
{
	float *score;
	const struct kb_cue **best = NULL;
	switch (cue->target) {
	case KB_T_CONDITION:
		score = &t->score[cue->index];
		best = &t->best[cue->index];
		if (cue->weight > 0)
			t->evidence[cue->index]++;
		break;
	case KB_T_REDFLAG:
		score = &t->flag_score[cue->index];
		best = &t->flag_cue[cue->index];
		break;
	case KB_T_FACTOR:
		score = &t->factor_score[cue->index];
		break;
	default:
		return;
	}
	*score += cue->weight;
	if (best && cue->weight > 0 && (!*best || cue->weight > (*best)->weight || (!(*best)->detail && cue->detail)))
		*best = cue;
	t->cue_hits++;
}


struct reading {
	bool question, thanks, greeting, body, leg, symptom;
	bool denied, other;       /* the knee named only to deny it; a joint that is not the leg */
	uint16_t last_question;   /* 1 + the sentence of the last question, 0 if none */
	bool symptom_outside_flags;
	unsigned hits;
};

/* Someone else's knee is answered when a question follows it ("his knees ache - anything he can do?"). */
static bool
asked_about(const struct reading *rd, const struct clause *cl)
{
	return rd->last_question > cl->sentence;
}

static void
match_cues(struct responder *r, struct reading *rd, struct triage *t)
{
	size_t slotpos[KB_MAX_SLOTS];
	size_t n = r->text.ntoks;
	const struct kb_index *x = kb_index(r->kb, KB_PASS_SCORE);
	struct cue_lists lists;
	for (size_t i = 0; i < n; i++) {
		if (!is_word(r, i) || !lists_at(r, x, i, &lists))
			continue;
		for (unsigned li = 0; li < lists.n; li++)
		for (size_t k = 0; k < lists.l[li].n; k++) {
			uint32_t ci = lists.l[li].v[k];
			const struct kb_cue *cue = &x->cues[ci];
			if (r->cue_gen[ci] == r->gen || !viable(r, ci, cue, true))
				continue;
			long end = match_at(r, cue, i, true, slotpos);
			if (end < 0)
				continue;
			const struct clause *cl = &r->clauses[r->clause[i]];
			bool neg = negated(r, i, (size_t)end, slotpos, cue->nslots);
			bool current = !cl->past && (!cl->third || asked_about(rd, cl));
			bool counts = cue->when_negated ? neg && !cl->past : !neg && current;
			if (!counts)
				continue;
			r->cue_gen[ci] = r->gen;   /* a cue counts once per message */
			count_cue(cue, t);
			if (r->trace) {
				static const char *const what[] = { "condition", "redflag", "factor" };
				const char *const *ids = cue->target == KB_T_CONDITION ? kb_condition_ids
					: cue->target == KB_T_REDFLAG ? kb_redflag_ids : kb_factor_ids;
				buf_printf(r->trace, "%s:%d %+.1f %s %s\n", cue->file, cue->line, (double)cue->weight,
					what[cue->target], ids[cue->index]);
			}
			if (cue->target == KB_T_REDFLAG)
				for (size_t j = i; j <= (size_t)end; j++)
					r->covered[j] = 1;
		}
	}
}


static void
read_message(struct responder *r, struct reading *rd)
{
	size_t n = r->text.ntoks;
	size_t none[1] = { 0 };
	for (size_t i = 0; i < n; i++) {
		bool ask = r->text.toks[i].kind == TOK_QMARK || (is_word(r, i) && HAS(r, i, C_ASK));
		if (ask) {
			rd->question = true;
			rd->last_question = (uint16_t)(r->sentence[i] + 1);
		}
		if (!is_word(r, i))
			continue;
		rd->thanks |= HAS(r, i, C_THANKS);
		rd->greeting |= HAS(r, i, C_GREETING);
		/*
		 * The knee is the topic wherever it is named, even in a past clause
		 * ("ACL reconstructed years ago... last night it buckled"), but not
		 * when denied ("not my knee this time, my shoulder").
		 */
		if (HAS(r, i, C_BODY)) {
			if (negated(r, i, i, none, 0))
				rd->denied = true;
			else
				rd->body = true;
		}
		if (r->c_leg >= 0 && ((r->cls[i] >> r->c_leg) & 1u))
			rd->leg = true;
		if (r->c_other >= 0 && ((r->cls[i] >> r->c_other) & 1u))
			rd->other = true;
	}
	/* "not the inner knee, the outside" is still the knee; "not my knee, my shoulder" is not */
	if (rd->denied && !rd->body && !rd->leg && !rd->other)
		rd->body = true;
	/*
	 * A symptom counts when it is current, the speaker's (or asked about),
	 * not denied, and not plainly about another part of the leg ("legs stiff
	 * as boards but knees happy").
	 */
	bool any = false;
	for (size_t i = 0; i < n; i++) {
		if (!is_word(r, i))
			continue;
		const struct clause *cl = &r->clauses[r->clause[i]];
		if (HAS(r, i, C_SYMPTOM) && !cl->past && (!cl->third || asked_about(rd, cl)) &&
		    (cl->body || !cl->leg) && !negated(r, i, i, none, 0))
			any = true;
	}
	rd->symptom = any;
}

/* After cues: is there a current symptom that is not itself a red-flag match? */
static bool
symptom_outside_flags(const struct responder *r, const struct reading *rd)
{
	size_t none[1] = { 0 };
	for (size_t i = 0; i < r->text.ntoks; i++) {
		if (!is_word(r, i) || r->covered[i] || !HAS(r, i, C_SYMPTOM))
			continue;
		const struct clause *cl = &r->clauses[r->clause[i]];
		if (!cl->past && (!cl->third || asked_about(rd, cl)) && !negated(r, i, i, none, 0))
			return true;
	}
	return false;
}

static void
rank(const struct kb *kb, struct triage *t)
{
	const struct kb_settings *st = kb_settings(kb);
	t->nranked = 0;
	float best = 0, total = 0;
	for (unsigned c = 0; c < KB_NCONDITIONS; c++) {
		if (t->score[c] > 0)
			total += t->score[c];
		if (t->score[c] > best)
			best = t->score[c];
	}
	if (best < st->condition_min)
		return;
	for (unsigned c = 0; c < KB_NCONDITIONS; c++)
		if (t->score[c] >= st->condition_min && t->score[c] >= best * st->condition_ratio)
			t->ranked[t->nranked++] = (uint8_t)c;
	/* best first; ties go to the taxonomy order */
	for (unsigned i = 1; i < t->nranked; i++)
		for (unsigned j = i; j > 0 && t->score[t->ranked[j]] > t->score[t->ranked[j - 1]]; j--) {
			uint8_t x = t->ranked[j];
			t->ranked[j] = t->ranked[j - 1];
			t->ranked[j - 1] = x;
		}
	if (t->nranked > 3)
		t->nranked = 3;
	for (unsigned i = 0; i < t->nranked; i++)
		t->confidence[i] = t->score[t->ranked[i]] / (total + st->condition_min);
}

/*
 * A red flag needs the knee or leg in the message; one marked "needs =
 * complaint" also needs something else wrong: another symptom, another red
 * flag, or a named condition ("foot gone numb" beside "knee locked").
 */
static void
raise_flags(const struct responder *r, struct triage *t, bool body, bool other_symptom, bool named)
{
	const struct kb_settings *st = kb_settings(r->kb);
	t->flags = 0;
	t->factors = 0;
	uint32_t needing = 0;
	for (unsigned f = 0; f < KB_NREDFLAGS; f++) {
		if (t->flag_score[f] < st->flag_min || !body)
			continue;
		if (kb_needs_complaint(r->kb, KB_T_REDFLAG, f))
			needing |= 1u << f;
		else
			t->flags |= 1u << f;
	}
	if (needing && (other_symptom || t->flags || named))
		t->flags |= needing;
	for (unsigned f = 0; f < KB_NFACTORS; f++)
		if (t->factor_score[f] >= st->flag_min)
			t->factors |= 1u << f;
}

/* For --explain: each word with its classes and clause, e.g. "knee[body](c0)". */
static void
trace_tokens(const struct responder *r)
{
	buf_adds(r->trace, "words:");
	for (size_t i = 0; i < r->text.ntoks; i++) {
		const struct tok *tk = &r->text.toks[i];
		if (!is_word(r, i)) {
			buf_printf(r->trace, " %.*s", (int)tk->len, r->text.norm + tk->off);
			continue;
		}
		buf_printf(r->trace, " %.*s", (int)tk->len, r->text.norm + tk->off);
		bool open = false;
		for (size_t c = 0; c < kb_class_count(r->kb); c++) {
			if (!((r->cls[i] >> c) & 1u))
				continue;
			buf_printf(r->trace, "%s%s", open ? "," : "[", kb_class_name(r->kb, c));
			open = true;
		}
		if (open)
			buf_addc(r->trace, ']');
		const struct clause *cl = &r->clauses[r->clause[i]];
		if (cl->past || cl->third)
			buf_printf(r->trace, "(%s%s)", cl->past ? "past" : "", cl->third ? "third" : "");
	}
	buf_addc(r->trace, '\n');
}

static void
merge_prior(struct triage *t, const struct triage *p)
{
	for (unsigned c = 0; c < KB_NCONDITIONS; c++) {
		t->score[c] += p->score[c];
		t->evidence[c] += p->evidence[c];
		if (!t->best[c] || (p->best[c] && p->best[c]->weight > t->best[c]->weight))
			t->best[c] = p->best[c];
	}
	for (unsigned f = 0; f < KB_NREDFLAGS; f++) {
		t->flag_score[f] += p->flag_score[f];
		if (!t->flag_cue[f])
			t->flag_cue[f] = p->flag_cue[f];
	}
	for (unsigned f = 0; f < KB_NFACTORS; f++)
		t->factor_score[f] += p->factor_score[f];
}

void
responder_judge(struct responder *r, const char *text, size_t n, bool addressed,
	const struct triage *prior, struct triage *t)
{
	memset(t, 0, sizeof *t);
	t->addressed = addressed;
	text_analyse(&r->text, text, n);
	size_t nt = r->text.ntoks;
	reserve(r, nt + 1);
	if (++r->gen >= UINT32_MAX >> 1) {
		size_t nc = kb_cue_count(r->kb) + 1;
		memset(r->cue_gen, 0, nc * sizeof *r->cue_gen);
		memset(r->verdict, 0, nc * sizeof *r->verdict);
		r->gen = 1;
	}
	memset(r->present, 0, r->present_words * sizeof *r->present);
	r->present_cls = 0;
	for (size_t i = 0; i < nt; i++) {
		const struct tok *tk = &r->text.toks[i];
		const char *w = r->text.norm + tk->off;
		r->cls[i] = 0;
		r->covered[i] = 0;
		r->exact[i] = KB_TERM_NONE;
		r->term[i] = tk->kind <= TOK_NUM ? lookup_word(r, w, tk->len, tk->kind == TOK_NUM, &r->exact[i]) : KB_TERM_NONE;
		if (r->term[i] != KB_TERM_NONE)
			r->present[r->term[i] >> 6] |= 1ull << (r->term[i] & 63);
		if (r->exact[i] != KB_TERM_NONE)
			r->present[r->exact[i] >> 6] |= 1ull << (r->exact[i] & 63);
	}
	mark_classes(r, KB_PASS_IDIOM);
	/* one-word class members come with the term; idiom words were blanked above */
	const uint64_t *tc = kb_term_classes(r->kb);
	for (size_t i = 0; i < nt; i++) {
		if (r->term[i] != KB_TERM_NONE)
			r->cls[i] |= tc[r->term[i]];
		if (r->exact[i] != KB_TERM_NONE)
			r->cls[i] |= tc[r->exact[i]];
		r->present_cls |= r->cls[i];
	}
	mark_classes(r, KB_PASS_CLASS);
	mark_classes(r, KB_PASS_CLASS2);   /* classes built from classes, one level deep */
	find_clauses(r);
	if (r->trace)
		trace_tokens(r);

	struct reading rd = { 0 };
	read_message(r, &rd);
	t->question = rd.question;
	match_cues(r, &rd, t);
	bool other = symptom_outside_flags(r, &rd);

	/* a reply to our question, or more of the same complaint, is read with what came before */
	bool followup = prior && (t->cue_hits > 0 || rd.symptom || rd.body);
	if (followup) {
		merge_prior(t, prior);
		rd.body = true;
		other = true;
	}
	rank(r->kb, t);
	const struct kb_settings *st = kb_settings(r->kb);
	bool named = t->nranked > 0;
	/*
	 * A strongly named condition is itself about the knee ("skiing crash,
	 * heard a pop, feels unstable"; "wear and tear, deep ache after runs");
	 * a weakly named one may be the red flag's own word ("the cork went pop").
	 */
	bool strong = named && t->score[t->ranked[0]] >= 2 * st->condition_min;
	raise_flags(r, t, rd.body || rd.leg || strong, other, named);
	/*
	 * A report of where and when without a pain word ("it's the outside now,
	 * six miles into every run") is a complaint when several separate cues
	 * agree, or when it asks about it; a bare name ("the ITB chapter") is not.
	 */
	bool described = strong && rd.body && (t->evidence[t->ranked[0]] >= 3 || rd.question);
	t->complaint = followup || (rd.symptom && (rd.body || strong)) || described;

	if (t->flags)
		t->kind = TRIAGE_ANSWER;
	else if (t->complaint)
		t->kind = t->nranked ? TRIAGE_ANSWER : TRIAGE_CLARIFY;
	else if (!addressed)
		t->kind = TRIAGE_SILENT;
	else if (rd.thanks && !rd.question)
		t->kind = TRIAGE_SILENT;
	else if (rd.question)
		t->kind = rd.body ? TRIAGE_CLARIFY : TRIAGE_HINT;
	else if (rd.greeting)
		t->kind = TRIAGE_HINT;
	else
		t->kind = TRIAGE_SILENT;
	/* what we will not answer carries no verdict */
	if (t->kind == TRIAGE_SILENT || t->kind == TRIAGE_HINT) {
		t->flags = 0;
		t->nranked = 0;
	}
}
