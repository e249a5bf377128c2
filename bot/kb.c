/* kb.c: loads responses/ once, validates all of it, and is read-only afterwards. */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "kb.h"
#include "text.h"

/* Fixed by shared/taxonomy.md; tests/kb_test.c checks them against it. */
const char *const kb_condition_ids[KB_NCONDITIONS] = {
	"pfps", "mcl", "meniscus", "pes_anserine", "itbs", "acl", "osteoarthritis",
	"rheumatoid_arthritis", "overload", "achilles",
};
const char *const kb_redflag_ids[KB_NREDFLAGS] = {
	"cannot_bear_weight", "pop", "rapid_swelling", "locking", "giving_way", "severe_pain",
	"numbness", "deformity", "fever", "calf_discoloration", "not_improving",
};
const char *const kb_factor_ids[KB_NFACTORS] = {
	"hip_weakness", "overpronation", "crossover_gait", "tightness", "training_error",
};

static const char *const exercise_targets[] = {
	"hips", "glutes", "quads", "vmo", "hamstrings", "calves", "it_band", "core", "hip_flexors", "feet", "balance",
};
static const char *const required_topics[] = {
	"rice", "return", "shoes", "crosstrain", "about", "disclaimer", "clarify", "hint", "redflags",
};
/* Classes the responder gives meaning to; their words are not typo targets. */
static const char *const function_classes[] = {
	"negator", "breaker", "past", "resolved", "current", "third", "self", "ask", "thanks", "greeting", "idiom",
};
static const char *const required_classes[] = {
	"negator", "breaker", "past", "resolved", "current", "third", "self", "ask", "thanks", "greeting", "idiom",
	"body", "leg", "symptom",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define GAP_WORDS 4
#define GAP_WIDE 12
#define MAX_ENTRIES 512

enum fkind { FT_STR, FT_LIST, FT_CLIST, FT_SEEDS, FT_URGENCY };

struct field {
	const char *key;
	enum fkind kind;
	size_t off;
	bool required;
};

#define F(type, key, kind, member, req) { key, kind, offsetof(type, member), req }
static const struct field condition_fields[] = {
	F(struct kb_condition, "name", FT_STR, name, true),
	F(struct kb_condition, "aliases", FT_CLIST, aliases, true),
	F(struct kb_condition, "seeds", FT_SEEDS, seeds, true),
	F(struct kb_condition, "what", FT_STR, what, true),
	F(struct kb_condition, "signs", FT_STR, signs, true),
	F(struct kb_condition, "sign", FT_STR, sign, true),
	F(struct kb_condition, "try", FT_LIST, try_, true),
	F(struct kb_condition, "exercises", FT_CLIST, exercises, true),
	F(struct kb_condition, "footwear", FT_STR, footwear, false),
	F(struct kb_condition, "return", FT_STR, return_, false),
	F(struct kb_condition, "see", FT_STR, see, true),
	{ NULL, 0, 0, false },
};
static const struct field redflag_fields[] = {
	F(struct kb_redflag, "name", FT_STR, name, true),
	F(struct kb_redflag, "urgency", FT_URGENCY, urgency, true),
	F(struct kb_redflag, "warning", FT_STR, warning, true),
	F(struct kb_redflag, "seeds", FT_SEEDS, seeds, true),
	{ NULL, 0, 0, false },
};
static const struct field factor_fields[] = {
	F(struct kb_factor, "name", FT_STR, name, true),
	F(struct kb_factor, "explain", FT_STR, explain, true),
	F(struct kb_factor, "try", FT_LIST, try_, true),
	F(struct kb_factor, "exercises", FT_CLIST, exercises, false),
	F(struct kb_factor, "seeds", FT_SEEDS, seeds, true),
	{ NULL, 0, 0, false },
};
static const struct field exercise_fields[] = {
	F(struct kb_exercise, "name", FT_STR, name, true),
	F(struct kb_exercise, "aliases", FT_CLIST, aliases, true),
	F(struct kb_exercise, "targets", FT_CLIST, targets, true),
	F(struct kb_exercise, "muscles", FT_STR, muscles, true),
	F(struct kb_exercise, "step", FT_LIST, steps, true),
	F(struct kb_exercise, "dose", FT_STR, dose, true),
	F(struct kb_exercise, "caution", FT_LIST, cautions, true),
	F(struct kb_exercise, "seeds", FT_SEEDS, seeds, true),
	{ NULL, 0, 0, false },
};
static const struct field topic_fields[] = {
	F(struct kb_topic, "title", FT_STR, title, true),
	F(struct kb_topic, "line", FT_LIST, lines, true),
	F(struct kb_topic, "seeds", FT_SEEDS, seeds, true),
	{ NULL, 0, 0, false },
};
static const struct field source_fields[] = {
	F(struct kb_source, "title", FT_STR, title, true),
	F(struct kb_source, "about", FT_STR, about, true),
	F(struct kb_source, "weight", FT_STR, weight, true),
	{ NULL, 0, 0, false },
};
#undef F

/* Where an entry was declared and which of its keys have been set. */
struct entry {
	const char *file;
	int line;
	unsigned set;
	bool seen;
};

/* A pattern as written, compiled once every class is known. */
struct rawcue {
	const char *text;
	const char *file;
	int line;
	uint8_t target;
	uint16_t index;
	bool has_weight;
};

struct word {
	const char *word;
	uint32_t term;
};

struct kb {
	char *dir;
	struct kb_condition cond[KB_NCONDITIONS];
	struct entry cond_e[KB_NCONDITIONS];
	struct kb_redflag flag[KB_NREDFLAGS];
	struct entry flag_e[KB_NREDFLAGS];
	struct kb_factor factor[KB_NFACTORS];
	struct entry factor_e[KB_NFACTORS];
	struct kb_source source[KB_NSEEDS];
	struct entry source_e[KB_NSEEDS];
	struct kb_exercise *ex;
	struct entry *ex_e;
	size_t nex, capex;
	struct kb_topic *topic;
	struct entry *topic_e;
	size_t ntopic, captopic;
	struct kb_settings settings;
	unsigned settings_set;

	/* vocabulary: stems interned to term ids */
	char **terms;
	size_t nterms, capterms;
	uint32_t *thash;       /* open addressing, term id + 1, 0 = empty */
	size_t thash_cap;
	struct word *words;
	size_t nwords, capwords;
	uint32_t word_first[257];  /* words[word_first[c] .. word_first[c+1]) start with byte c */

	char *classes[KB_MAX_CLASSES];
	struct entry class_e[KB_MAX_CLASSES];
	size_t nclasses;

	bool needs[3][KB_NREDFLAGS];   /* [target][index]: needs = complaint */

	struct rawcue *raw;
	size_t nraw, capraw;
	struct kb_cue *cues;
	size_t ncues;

	/* first-slot index per pass: cues that can start at a term, a number or a class */
	struct kb_index idx[KB_NPASSES];
	uint64_t *term_classes;     /* one-word class members, folded per term */

	void **allocs;         /* every string and array owned by the KB */
	size_t nallocs, capallocs;
	struct stemmer *stemmer;
	struct text scratch;
};

/* The parse state of one file. */
struct loadctx {
	struct kb *kb;
	struct buf *err;
	const char *file;      /* name relative to the KB dir, owned by kb */
	int role;
	int line;              /* current line, kept by the reader */
	FILE *fp;
	char section[128];     /* last section seen, to detect a new one */
	void *obj;             /* the entry the section fills */
	struct entry *ent;
	const struct field *fields;
	int kind;              /* what the current section is */
	int errors;
	bool midline;          /* the reader stopped inside a long line */
};

enum role { R_SOURCES, R_CONDITIONS, R_REDFLAGS, R_FACTORS, R_EXERCISES, R_TOPICS, R_LEXICON, R_CUES };
static const char *const role_files[] = {
	"sources.ini", "conditions.ini", "redflags.ini", "factors.ini", "exercises.ini", "topics.ini", "lexicon.ini", "cues.ini",
};

enum skind { S_NONE, S_SOURCE, S_CONDITION, S_REDFLAG, S_FACTOR, S_EXERCISE, S_TOPIC, S_SETTINGS, S_CLASS, S_CUES };

static void *
own(struct kb *kb, void *p)
{
	if (kb->nallocs == kb->capallocs) {
		kb->capallocs = kb->capallocs ? kb->capallocs * 2 : 256;
		kb->allocs = xrealloc(kb->allocs, kb->capallocs * sizeof *kb->allocs);
	}
	kb->allocs[kb->nallocs++] = p;
	return p;
}

static char *
own_str(struct kb *kb, const char *s, size_t n)
{
	return own(kb, xstrndup(s, n));
}

static void
lerr(struct loadctx *lc, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
lerr(struct loadctx *lc, int line, const char *fmt, ...)
{
	va_list ap;
	if (line > 0)
		buf_printf(lc->err, "%s/%s:%d: ", lc->kb->dir, lc->file, line);
	else
		buf_printf(lc->err, "%s/%s: ", lc->kb->dir, lc->file);
	va_start(ap, fmt);
	buf_vprintf(lc->err, fmt, ap);
	va_end(ap);
	buf_addc(lc->err, '\n');
	lc->errors++;
}

static int
find_id(const char *const *ids, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(ids[i], id) == 0)
			return (int)i;
	return -1;
}

static bool
valid_id(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_'))
			return false;
	return true;
}

static void
list_add(struct kb *kb, struct kb_list *l, const char *s, size_t n)
{
	l->v = xrealloc(l->v, (l->n + 1) * sizeof *l->v);
	l->v[l->n++] = own_str(kb, s, n);
}

static void
trim(const char **s, size_t *n)
{
	while (*n && isspace((unsigned char)**s))
		(*s)++, (*n)--;
	while (*n && isspace((unsigned char)(*s)[*n - 1]))
		(*n)--;
}

static int
parse_seeds(const char *v, unsigned *out)
{
	unsigned mask = 0;
	const char *p = v;
	while (*p) {
		const char *q = strchr(p, ',');
		size_t n = q ? (size_t)(q - p) : strlen(p);
		const char *s = p;
		trim(&s, &n);
		if (n != 3 || s[0] != '0' || s[1] != '0' || s[2] < '0' || s[2] >= '0' + KB_NSEEDS)
			return -1;
		mask |= 1u << (s[2] - '0');
		if (!q)
			break;
		p = q + 1;
	}
	*out = mask;
	return mask ? 0 : -1;
}

static void
set_field(struct loadctx *lc, const char *key, const char *value)
{
	const struct field *f = lc->fields;
	int i = 0;
	for (; f->key; f++, i++)
		if (strcmp(f->key, key) == 0)
			break;
	if (!f->key) {
		lerr(lc, lc->line, "unknown key '%s' in [%s]", key, lc->section);
		return;
	}
	if (f->kind != FT_LIST && (lc->ent->set & (1u << i))) {
		lerr(lc, lc->line, "'%s' given twice in [%s]", key, lc->section);
		return;
	}
	lc->ent->set |= 1u << i;
	char *base = lc->obj;
	size_t vn = strlen(value);
	if (vn == 0 && f->kind != FT_CLIST) {
		lerr(lc, lc->line, "'%s' is empty", key);
		return;
	}
	switch (f->kind) {
	case FT_STR:
		*(const char **)(base + f->off) = own_str(lc->kb, value, vn);
		break;
	case FT_LIST:
		list_add(lc->kb, (struct kb_list *)(base + f->off), value, vn);
		break;
	case FT_CLIST: {
		struct kb_list *l = (struct kb_list *)(base + f->off);
		for (const char *p = value; *p;) {
			const char *q = strchr(p, ',');
			size_t n = q ? (size_t)(q - p) : strlen(p);
			const char *s = p;
			trim(&s, &n);
			if (n)
				list_add(lc->kb, l, s, n);
			else if (q)
				lerr(lc, lc->line, "empty item in '%s'", key);
			if (!q)
				break;
			p = q + 1;
		}
		break;
	}
	case FT_SEEDS:
		if (parse_seeds(value, (unsigned *)(base + f->off)) < 0)
			lerr(lc, lc->line, "'%s': seeds are 000 to 00%d, comma separated", value, KB_NSEEDS - 1);
		break;
	case FT_URGENCY: {
		enum kb_urgency *u = (enum kb_urgency *)(base + f->off);
		if (strcmp(value, "now") == 0) *u = KB_URGENCY_NOW;
		else if (strcmp(value, "today") == 0) *u = KB_URGENCY_TODAY;
		else if (strcmp(value, "soon") == 0) *u = KB_URGENCY_SOON;
		else lerr(lc, lc->line, "urgency '%s': use now, today or soon", value);
		break;
	}
	}
}

static void
add_raw(struct loadctx *lc, const char *text, uint8_t target, uint16_t index, bool weighted)
{
	struct kb *kb = lc->kb;
	if (kb->nraw == kb->capraw) {
		kb->capraw = kb->capraw ? kb->capraw * 2 : 256;
		kb->raw = xrealloc(kb->raw, kb->capraw * sizeof *kb->raw);
	}
	kb->raw[kb->nraw++] = (struct rawcue){ own_str(kb, text, strlen(text)), lc->file, lc->line, target, index, weighted };
}

/* Opens a new section: works out what it is and which entry it fills. */
static void
open_section(struct loadctx *lc, const char *section)
{
	struct kb *kb = lc->kb;
	snprintf(lc->section, sizeof lc->section, "%s", section);
	lc->obj = NULL;
	lc->ent = NULL;
	lc->fields = NULL;
	lc->kind = S_NONE;
	char kind[32], id[96];
	if (strcmp(section, "settings") == 0 && lc->role == R_LEXICON) {
		lc->kind = S_SETTINGS;
		return;
	}
	if (sscanf(section, "%31s %95s", kind, id) != 2 || strchr(section, ' ') != strrchr(section, ' ')) {
		lerr(lc, lc->line, "section [%s]: expected [kind id]", section);
		return;
	}
	static const struct { int role; const char *kind; int skind; } kinds[] = {
		{ R_SOURCES, "source", S_SOURCE }, { R_CONDITIONS, "condition", S_CONDITION },
		{ R_REDFLAGS, "redflag", S_REDFLAG }, { R_FACTORS, "factor", S_FACTOR },
		{ R_EXERCISES, "exercise", S_EXERCISE }, { R_TOPICS, "topic", S_TOPIC },
		{ R_LEXICON, "class", S_CLASS }, { R_CUES, "condition", S_CUES },
		{ R_CUES, "redflag", S_CUES }, { R_CUES, "factor", S_CUES },
	};
	int sk = S_NONE;
	for (size_t i = 0; i < NELEM(kinds); i++)
		if (kinds[i].role == lc->role && strcmp(kinds[i].kind, kind) == 0)
			sk = kinds[i].skind;
	if (sk == S_NONE) {
		lerr(lc, lc->line, "section [%s] does not belong in %s", section, lc->file);
		return;
	}
	int i;
	switch (sk) {
	case S_SOURCE:
		if (strlen(id) != 3 || strncmp(id, "00", 2) != 0 || id[2] < '0' || id[2] >= '0' + KB_NSEEDS) {
			lerr(lc, lc->line, "unknown source '%s' (000 to 00%d)", id, KB_NSEEDS - 1);
			return;
		}
		i = id[2] - '0';
		kb->source[i].id = own_str(kb, id, 3);
		lc->obj = &kb->source[i];
		lc->ent = &kb->source_e[i];
		lc->fields = source_fields;
		break;
	case S_CONDITION:
	case S_REDFLAG:
	case S_FACTOR: {
		const char *const *ids = sk == S_CONDITION ? kb_condition_ids : sk == S_REDFLAG ? kb_redflag_ids : kb_factor_ids;
		size_t n = sk == S_CONDITION ? KB_NCONDITIONS : sk == S_REDFLAG ? KB_NREDFLAGS : KB_NFACTORS;
		if ((i = find_id(ids, n, id)) < 0) {
			lerr(lc, lc->line, "'%s' is not a taxonomy %s id", id, kind);
			return;
		}
		if (sk == S_CONDITION) {
			kb->cond[i].id = ids[i];
			lc->obj = &kb->cond[i], lc->ent = &kb->cond_e[i], lc->fields = condition_fields;
		} else if (sk == S_REDFLAG) {
			kb->flag[i].id = ids[i];
			lc->obj = &kb->flag[i], lc->ent = &kb->flag_e[i], lc->fields = redflag_fields;
		} else {
			kb->factor[i].id = ids[i];
			lc->obj = &kb->factor[i], lc->ent = &kb->factor_e[i], lc->fields = factor_fields;
		}
		break;
	}
	case S_EXERCISE:
	case S_TOPIC: {
		if (!valid_id(id)) {
			lerr(lc, lc->line, "id '%s': use lower case letters, digits and _", id);
			return;
		}
		bool ex = sk == S_EXERCISE;
		size_t n = ex ? kb->nex : kb->ntopic;
		for (size_t j = 0; j < n; j++) {
			const char *other = ex ? kb->ex[j].id : kb->topic[j].id;
			if (strcmp(other, id) == 0) {
				lerr(lc, lc->line, "[%s] already defined at line %d", section, ex ? kb->ex_e[j].line : kb->topic_e[j].line);
				return;
			}
		}
		if (n >= MAX_ENTRIES) {
			lerr(lc, lc->line, "too many entries");
			return;
		}
		if (ex) {
			if (kb->nex == kb->capex) {
				kb->capex = kb->capex ? kb->capex * 2 : 32;
				kb->ex = xrealloc(kb->ex, kb->capex * sizeof *kb->ex);
				kb->ex_e = xrealloc(kb->ex_e, kb->capex * sizeof *kb->ex_e);
			}
			memset(&kb->ex[kb->nex], 0, sizeof *kb->ex);
			memset(&kb->ex_e[kb->nex], 0, sizeof *kb->ex_e);
			kb->ex[kb->nex].id = own_str(kb, id, strlen(id));
			lc->obj = &kb->ex[kb->nex], lc->ent = &kb->ex_e[kb->nex], lc->fields = exercise_fields;
			kb->nex++;
		} else {
			if (kb->ntopic == kb->captopic) {
				kb->captopic = kb->captopic ? kb->captopic * 2 : 16;
				kb->topic = xrealloc(kb->topic, kb->captopic * sizeof *kb->topic);
				kb->topic_e = xrealloc(kb->topic_e, kb->captopic * sizeof *kb->topic_e);
			}
			memset(&kb->topic[kb->ntopic], 0, sizeof *kb->topic);
			memset(&kb->topic_e[kb->ntopic], 0, sizeof *kb->topic_e);
			kb->topic[kb->ntopic].id = own_str(kb, id, strlen(id));
			lc->obj = &kb->topic[kb->ntopic], lc->ent = &kb->topic_e[kb->ntopic], lc->fields = topic_fields;
			kb->ntopic++;
		}
		break;
	}
	case S_CLASS:
		if (!valid_id(id)) {
			lerr(lc, lc->line, "class '%s': use lower case letters, digits and _", id);
			return;
		}
		for (size_t j = 0; j < kb->nclasses; j++) {
			if (strcmp(kb->classes[j], id) == 0) {
				lerr(lc, lc->line, "[class %s] already defined at line %d", id, kb->class_e[j].line);
				return;
			}
		}
		if (kb->nclasses >= KB_MAX_CLASSES) {
			lerr(lc, lc->line, "more than %d classes", KB_MAX_CLASSES);
			return;
		}
		kb->class_e[kb->nclasses] = (struct entry){ lc->file, lc->line, 0, true };
		kb->classes[kb->nclasses++] = own_str(kb, id, strlen(id));
		lc->kind = S_CLASS;
		lc->obj = (void *)(uintptr_t)(kb->nclasses - 1);
		return;
	case S_CUES: {
		int t = strcmp(kind, "condition") == 0 ? KB_T_CONDITION : strcmp(kind, "redflag") == 0 ? KB_T_REDFLAG : KB_T_FACTOR;
		const char *const *ids = t == KB_T_CONDITION ? kb_condition_ids : t == KB_T_REDFLAG ? kb_redflag_ids : kb_factor_ids;
		size_t n = t == KB_T_CONDITION ? KB_NCONDITIONS : t == KB_T_REDFLAG ? KB_NREDFLAGS : KB_NFACTORS;
		if ((i = find_id(ids, n, id)) < 0) {
			lerr(lc, lc->line, "'%s' is not a taxonomy %s id", id, kind);
			return;
		}
		lc->kind = S_CUES;
		lc->obj = (void *)(uintptr_t)((unsigned)t << 16 | (unsigned)i);
		return;
	}
	}
	if (lc->ent->seen) {
		lerr(lc, lc->line, "[%s] already defined at line %d", section, lc->ent->line);
		lc->obj = NULL;
		lc->ent = NULL;
		return;
	}
	lc->kind = sk;
	*lc->ent = (struct entry){ lc->file, lc->line, 0, true };
}

static void
set_setting(struct loadctx *lc, const char *key, const char *value)
{
	static const struct { const char *key; bool integer; double min, max; size_t off; } keys[] = {
		{ "condition_min", false, 0.1, 100, offsetof(struct kb_settings, condition_min) },
		{ "condition_ratio", false, 0.0, 1.0, offsetof(struct kb_settings, condition_ratio) },
		{ "flag_min", false, 0.1, 100, offsetof(struct kb_settings, flag_min) },
		{ "negation_window", true, 1, 12, offsetof(struct kb_settings, negation_window) },
		{ "typo_min_len", true, 3, 40, offsetof(struct kb_settings, typo_min_len) },
		{ "typo_two_len", true, 3, 40, offsetof(struct kb_settings, typo_two_len) },
	};
	for (size_t i = 0; i < NELEM(keys); i++) {
		if (strcmp(keys[i].key, key) != 0)
			continue;
		char *end;
		errno = 0;
		double d = strtod(value, &end);
		if (errno || end == value || *end || !isfinite(d) || d < keys[i].min || d > keys[i].max ||
		    (keys[i].integer && d != floor(d))) {
			lerr(lc, lc->line, "%s = '%s': expected a %s from %g to %g", key, value,
				keys[i].integer ? "whole number" : "number", keys[i].min, keys[i].max);
			return;
		}
		if (lc->kb->settings_set & (1u << i)) {
			lerr(lc, lc->line, "'%s' given twice", key);
			return;
		}
		lc->kb->settings_set |= 1u << i;
		char *p = (char *)&lc->kb->settings + keys[i].off;
		if (keys[i].integer)
			*(unsigned *)p = (unsigned)d;
		else
			*(float *)p = (float)d;
		return;
	}
	lerr(lc, lc->line, "unknown setting '%s'", key);
}

static int
on_value(void *user, const char *section, const char *name, const char *value)
{
	struct loadctx *lc = user;
	if (strcmp(section, lc->section) != 0)
		open_section(lc, section);
	if (!*section) {
		lerr(lc, lc->line, "'%s' outside any section", name);
		return 1;
	}
	switch (lc->kind) {
	case S_NONE:
		return 1;   /* the section's error has been reported */
	case S_SETTINGS:
		set_setting(lc, name, value);
		return 1;
	case S_CLASS:
		if (strcmp(name, "words") == 0) {
			/* each word is a one-word phrase */
			char *dup = xstrdup(value);
			for (char *w = strtok(dup, " \t"); w; w = strtok(NULL, " \t"))
				add_raw(lc, w, KB_T_CLASS, (uint16_t)(uintptr_t)lc->obj, false);
			free(dup);
		} else if (strcmp(name, "phrase") == 0) {
			add_raw(lc, value, KB_T_CLASS, (uint16_t)(uintptr_t)lc->obj, false);
		} else {
			lerr(lc, lc->line, "unknown key '%s' in [%s] (words or phrase)", name, section);
		}
		return 1;
	case S_CUES: {
		unsigned v = (unsigned)(uintptr_t)lc->obj;
		if (strcmp(name, "needs") == 0) {
			if (strcmp(value, "complaint") != 0)
				lerr(lc, lc->line, "needs = '%s': the only condition is 'complaint'", value);
			else
				lc->kb->needs[v >> 16][v & 0xffff] = true;
			return 1;
		}
		if (strcmp(name, "cue") != 0) {
			lerr(lc, lc->line, "unknown key '%s' in [%s] (cue or needs)", name, section);
			return 1;
		}
		add_raw(lc, value, (uint8_t)(v >> 16), (uint16_t)(v & 0xffff), true);
		return 1;
	}
	default:
		if (lc->obj)
			set_field(lc, name, value);
		return 1;
	}
}

/* fgets for inih that also keeps the line number of what inih is handling. */
static char *
read_line(char *str, int num, void *stream)
{
	struct loadctx *lc = stream;
	if (!fgets(str, num, lc->fp))
		return NULL;
	size_t n = strlen(str);
	if (!lc->midline)
		lc->line++;
	lc->midline = n > 0 && str[n - 1] != '\n';
	return str;
}

static void
load_file(struct kb *kb, int role, struct buf *err, int *errors)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", kb->dir, role_files[role]);
	struct loadctx lc = { .kb = kb, .err = err, .file = role_files[role], .role = role };
	lc.fp = fopen(path, "r");
	if (!lc.fp) {
		lerr(&lc, 0, "cannot open: %s", strerror(errno));
		*errors += lc.errors;
		return;
	}
	lc.section[0] = '\0';
	ini_allow_inline_comments = false;
	ini_allow_multiline = false;
	ini_max_line = 4096;
	int r = ini_parse_stream(read_line, &lc, on_value, &lc);
	fclose(lc.fp);
	if (r > 0)
		lerr(&lc, r, "syntax error: expected [kind id], key = value, or a comment");
	else if (r < 0)
		lerr(&lc, 0, "cannot parse (%d)", r);
	*errors += lc.errors;
}

/* --- vocabulary --- */

uint32_t
kb_term(const struct kb *kb, const char *stem, size_t n)
{
	if (!kb->thash_cap)
		return KB_TERM_NONE;
	size_t mask = kb->thash_cap - 1;
	for (size_t i = hash_bytes(stem, n) & mask;; i = (i + 1) & mask) {
		uint32_t v = kb->thash[i];
		if (!v)
			return KB_TERM_NONE;
		const char *t = kb->terms[v - 1];
		if (strncmp(t, stem, n) == 0 && t[n] == '\0')
			return v - 1;
	}
}

static uint32_t
intern(struct kb *kb, const char *stem, size_t n)
{
	uint32_t id = kb_term(kb, stem, n);
	if (id != KB_TERM_NONE)
		return id;
	if ((kb->nterms + 1) * 2 > kb->thash_cap) {
		size_t cap = kb->thash_cap ? kb->thash_cap * 2 : 1024;
		uint32_t *h = xcalloc(cap, sizeof *h);
		for (size_t t = 0; t < kb->nterms; t++) {
			size_t i = hash_bytes(kb->terms[t], strlen(kb->terms[t])) & (cap - 1);
			while (h[i])
				i = (i + 1) & (cap - 1);
			h[i] = (uint32_t)t + 1;
		}
		free(kb->thash);
		kb->thash = h;
		kb->thash_cap = cap;
	}
	if (kb->nterms == kb->capterms) {
		kb->capterms = kb->capterms ? kb->capterms * 2 : 512;
		kb->terms = xrealloc(kb->terms, kb->capterms * sizeof *kb->terms);
	}
	kb->terms[kb->nterms] = own_str(kb, stem, n);
	size_t i = hash_bytes(stem, n) & (kb->thash_cap - 1);
	while (kb->thash[i])
		i = (i + 1) & (kb->thash_cap - 1);
	kb->thash[i] = (uint32_t)kb->nterms + 1;
	return (uint32_t)kb->nterms++;
}

/* Duplicates are dropped once all words are in (compile_all sorts them). */
static void
add_word(struct kb *kb, const char *w, size_t n, uint32_t term)
{
	if (kb->nwords == kb->capwords) {
		kb->capwords = kb->capwords ? kb->capwords * 2 : 256;
		kb->words = xrealloc(kb->words, kb->capwords * sizeof *kb->words);
	}
	kb->words[kb->nwords++] = (struct word){ own_str(kb, w, n), term };
}

/* --- patterns --- */

static int
class_find(const struct kb *kb, const char *name, size_t n)
{
	for (size_t i = 0; i < kb->nclasses; i++)
		if (strncmp(kb->classes[i], name, n) == 0 && kb->classes[i][n] == '\0')
			return (int)i;
	return -1;
}

static bool
is_function_class(const struct kb *kb, unsigned cls)
{
	for (size_t i = 0; i < NELEM(function_classes); i++)
		if (strcmp(kb->classes[cls], function_classes[i]) == 0)
			return true;
	return false;
}

/* Compiles one slot alternative ("swelling", or "=popped" for the word as written) to its term. */
static int
compile_word(struct kb *kb, const char *w, size_t n, bool typo_target, bool exact, uint32_t *term, char *why, size_t whylen)
{
	char tmp[TEXT_MAX_WORD + 1];
	if (n == 0 || n > TEXT_MAX_WORD) {
		snprintf(why, whylen, "bad word '%.*s'", (int)n, w);
		return -1;
	}
	text_analyse(&kb->scratch, w, n);
	if (kb->scratch.ntoks != 1 || kb->scratch.toks[0].kind > TOK_NUM) {
		snprintf(why, whylen, "'%.*s' is not one word (write separate slots, without hyphens)", (int)n, w);
		return -1;
	}
	const struct tok *t = &kb->scratch.toks[0];
	const char *s = kb->scratch.norm + t->off;
	size_t len;
	if (exact) {
		/* exact words live beside the stems, marked by a leading '=' */
		tmp[0] = '=';
		len = t->len < sizeof tmp - 1 ? t->len : sizeof tmp - 2;
		memcpy(tmp + 1, s, len);
		*term = intern(kb, tmp, len + 1);
		return 0;
	}
	if (t->kind == TOK_NUM) {
		*term = intern(kb, s, t->len);
		return 0;
	}
	len = stemmer_stem(kb->stemmer, s, t->len, tmp, sizeof tmp);
	*term = intern(kb, tmp, len);
	if (typo_target)
		add_word(kb, s, t->len, *term);
	return 0;
}

static int
compile_cue(struct kb *kb, const struct rawcue *rc, struct kb_cue *cue, char *why, size_t whylen)
{
	struct kb_slot slots[KB_MAX_SLOTS];
	memset(slots, 0, sizeof slots);
	memset(cue, 0, sizeof *cue);
	cue->target = rc->target;
	cue->index = rc->index;
	cue->file = rc->file;
	cue->line = rc->line;
	cue->weight = 1;
	const char *p = rc->text;
	const char *detail = strstr(p, "=>");
	size_t plen = detail ? (size_t)(detail - p) : strlen(p);
	if (detail) {
		const char *d = detail + 2;
		size_t dn = strlen(d);
		trim(&d, &dn);
		if (!dn) {
			snprintf(why, whylen, "empty detail after '=>'");
			return -1;
		}
		cue->detail = own_str(kb, d, dn);
	}
	char *spec = xstrndup(p, plen);
	char *save = NULL;
	char *tok = strtok_r(spec, " \t", &save);
	int rv = -1;
	if (rc->has_weight) {
		char *end;
		float w = tok ? strtof(tok, &end) : 0;
		if (!tok || end == tok || *end || !isfinite(w) || w < -10 || w > 10 || w == 0) {
			snprintf(why, whylen, "cue must start with a weight from -10 to 10, not 0");
			goto out;
		}
		cue->weight = w;
		tok = strtok_r(NULL, " \t", &save);
	}
	bool typo = rc->target != KB_T_CLASS || !is_function_class(kb, rc->index);
	unsigned gap = 0;
	for (; tok; tok = strtok_r(NULL, " \t", &save)) {
		if (cue->nslots == 0 && gap == 0 && tok[0] == '~') {
			cue->when_negated = true;
			tok++;
			if (!*tok)
				continue;
		}
		if (strcmp(tok, "..") == 0 || strcmp(tok, "...") == 0) {
			if (cue->nslots == 0 || gap) {
				snprintf(why, whylen, "'%s' must stand between two words", tok);
				goto out;
			}
			gap = tok[2] ? GAP_WIDE : GAP_WORDS;
			continue;
		}
		if (cue->nslots == KB_MAX_SLOTS) {
			snprintf(why, whylen, "more than %d words", KB_MAX_SLOTS);
			goto out;
		}
		struct kb_slot *sl = &slots[cue->nslots];
		sl->gap = (uint8_t)gap;
		gap = 0;
		if (tok[0] == '#') {
			/* "#" any number, "#45-110" one in that range */
			sl->kind = KB_SLOT_NUMBER;
			sl->min = -1e30f;
			sl->max = 1e30f;
			if (tok[1]) {
				char *end;
				sl->min = strtof(tok + 1, &end);
				if (*end != '-' || end == tok + 1) {
					snprintf(why, whylen, "'%s': a number range is #MIN-MAX", tok);
					goto out;
				}
				char *end2;
				sl->max = strtof(end + 1, &end2);
				if (*end2 || end2 == end + 1 || sl->max < sl->min) {
					snprintf(why, whylen, "'%s': a number range is #MIN-MAX", tok);
					goto out;
				}
			}
		} else if (strcmp(tok, "*") == 0) {
			if (cue->nslots == 0) {
				snprintf(why, whylen, "a pattern cannot start with '*'");
				goto out;
			}
			sl->kind = KB_SLOT_ANY;
		} else if (tok[0] == '@') {
			int c = class_find(kb, tok + 1, strlen(tok + 1));
			if (c < 0) {
				snprintf(why, whylen, "unknown class '%s'", tok);
				goto out;
			}
			if (rc->target == KB_T_CLASS && (unsigned)c == rc->index) {
				snprintf(why, whylen, "class '%s' refers to itself", tok);
				goto out;
			}
			sl->kind = KB_SLOT_CLASS;
			sl->cls = (uint32_t)c;
		} else {
			uint32_t terms[32];
			unsigned n = 0;
			bool exact = tok[0] == '=';
			if (exact && !*++tok) {
				snprintf(why, whylen, "'=' must be followed by words");
				goto out;
			}
			for (char *a = tok; *a;) {
				char *bar = strchr(a, '|');
				size_t an = bar ? (size_t)(bar - a) : strlen(a);
				if (n == NELEM(terms)) {
					snprintf(why, whylen, "more than %zu alternatives", NELEM(terms));
					goto out;
				}
				if (compile_word(kb, a, an, typo && !exact, exact, &terms[n], why, whylen) < 0)
					goto out;
				n++;
				if (!bar)
					break;
				a = bar + 1;
			}
			sl->kind = exact ? KB_SLOT_EXACT : KB_SLOT_TERMS;
			sl->nterms = (uint16_t)n;
			uint32_t *t = own(kb, xmalloc(n * sizeof *t));
			memcpy(t, terms, n * sizeof *t);
			sl->terms = t;
		}
		cue->nslots++;
	}
	if (gap) {
		snprintf(why, whylen, "'..' must stand between two words");
		goto out;
	}
	if (cue->nslots == 0) {
		snprintf(why, whylen, "empty pattern");
		goto out;
	}
	struct kb_slot *kept = own(kb, xmalloc(cue->nslots * sizeof *kept));
	memcpy(kept, slots, cue->nslots * sizeof *kept);
	cue->slots = kept;
	rv = 0;
out:
	free(spec);
	return rv;
}

/* True when slot term j repeats an earlier alternative ("swell|swelling"). */
static bool
dup_term(const struct kb_slot *s, unsigned j)
{
	for (unsigned k = 0; k < j; k++)
		if (s->terms[k] == s->terms[j])
			return true;
	return false;
}

/* A one-word class member (not an idiom, which blanks instead): folded into term_classes. */
static bool
folded(const struct kb *kb, const struct kb_cue *c)
{
	return c->target == KB_T_CLASS && c->nslots == 1 && strcmp(kb->classes[c->index], "idiom") != 0 &&
		(c->slots[0].kind == KB_SLOT_TERMS || c->slots[0].kind == KB_SLOT_EXACT);
}

/* Which reading pass a cue belongs to (KB_NPASSES: none, it is folded). */
static enum kb_pass
cue_pass(const struct kb *kb, const struct kb_cue *c)
{
	if (folded(kb, c))
		return KB_NPASSES;
	if (c->target != KB_T_CLASS)
		return KB_PASS_SCORE;
	if (strcmp(kb->classes[c->index], "idiom") == 0)
		return KB_PASS_IDIOM;
	for (unsigned i = 0; i < c->nslots; i++)
		if (c->slots[i].kind == KB_SLOT_CLASS)
			return KB_PASS_CLASS2;
	return KB_PASS_CLASS;
}

static void
build_index(struct kb *kb, enum kb_pass pass)
{
	struct kb_index *x = &kb->idx[pass];
	size_t *count = xcalloc(kb->nterms + 1, sizeof *count);
	size_t ccount[KB_MAX_CLASSES] = { 0 };
	size_t total = 0, ctotal = 0;
	x->nnum = 0;
	for (size_t i = 0; i < kb->ncues; i++) {
		const struct kb_slot *s = &kb->cues[i].slots[0];
		if (cue_pass(kb, &kb->cues[i]) != pass)
			continue;
		if (s->kind == KB_SLOT_TERMS || s->kind == KB_SLOT_EXACT) {
			for (unsigned j = 0; j < s->nterms; j++)
				if (!dup_term(s, j))
					count[s->terms[j]]++, total++;
		} else if (s->kind == KB_SLOT_NUMBER) {
			x->nnum++;
		} else if (s->kind == KB_SLOT_CLASS) {
			ccount[s->cls]++, ctotal++;
		}
	}
	uint32_t *term_off = own(kb, xcalloc(kb->nterms + 1, sizeof *term_off));
	uint32_t *term_items = own(kb, xcalloc(total + 1, sizeof *term_items));
	uint32_t *num_items = own(kb, xcalloc(x->nnum + 1, sizeof *num_items));
	uint32_t *class_items = own(kb, xcalloc(ctotal + 1, sizeof *class_items));
	uint64_t *term_bits = own(kb, xcalloc(kb->nterms / 64 + 1, sizeof *term_bits));
	x->term_off = term_off;
	x->term_items = term_items;
	x->num_items = num_items;
	x->class_items = class_items;
	x->term_bits = term_bits;
	x->cues = kb->cues;
	x->nterms = kb->nterms;
	size_t acc = 0;
	for (size_t t = 0; t < kb->nterms; t++) {
		term_off[t] = (uint32_t)acc;
		acc += count[t];
		count[t] = term_off[t];
	}
	term_off[kb->nterms] = (uint32_t)acc;
	acc = 0;
	size_t cpos[KB_MAX_CLASSES];
	for (size_t c = 0; c < KB_MAX_CLASSES; c++) {
		x->class_off[c] = (uint32_t)acc;
		cpos[c] = acc;
		acc += ccount[c];
	}
	x->class_off[KB_MAX_CLASSES] = (uint32_t)acc;
	x->class_bits = 0;
	x->entries = total + ctotal + x->nnum;
	for (size_t t = 0; t < kb->nterms; t++)
		if (term_off[t + 1] > term_off[t])
			term_bits[t >> 6] |= 1ull << (t & 63);
	for (size_t c = 0; c < KB_MAX_CLASSES; c++)
		if (ccount[c])
			x->class_bits |= 1ull << c;
	size_t npos = 0;
	for (size_t i = 0; i < kb->ncues; i++) {
		const struct kb_slot *s = &kb->cues[i].slots[0];
		if (cue_pass(kb, &kb->cues[i]) != pass)
			continue;
		if (s->kind == KB_SLOT_TERMS || s->kind == KB_SLOT_EXACT) {
			for (unsigned j = 0; j < s->nterms; j++)
				if (!dup_term(s, j))
					term_items[count[s->terms[j]]++] = (uint32_t)i;
		} else if (s->kind == KB_SLOT_NUMBER) {
			num_items[npos++] = (uint32_t)i;
		} else if (s->kind == KB_SLOT_CLASS) {
			class_items[cpos[s->cls]++] = (uint32_t)i;
		}
	}
	free(count);
}

static int
cmp_word(const void *a, const void *b)
{
	return strcmp(((const struct word *)a)->word, ((const struct word *)b)->word);
}

static void
compile_all(struct kb *kb, struct buf *err, int *errors)
{
	kb->cues = own(kb, xcalloc(kb->nraw + 1, sizeof *kb->cues));
	kb->ncues = 0;
	for (size_t i = 0; i < kb->nraw; i++) {
		char why[256];
		if (compile_cue(kb, &kb->raw[i], &kb->cues[kb->ncues], why, sizeof why) < 0) {
			buf_printf(err, "%s/%s:%d: %s\n", kb->dir, kb->raw[i].file, kb->raw[i].line, why);
			(*errors)++;
			continue;
		}
		kb->ncues++;
	}
	for (int p = 0; p < KB_NPASSES; p++)
		build_index(kb, (enum kb_pass)p);
	kb->term_classes = own(kb, xcalloc(kb->nterms + 1, sizeof *kb->term_classes));
	for (size_t i = 0; i < kb->ncues; i++) {
		const struct kb_cue *c = &kb->cues[i];
		if (!folded(kb, c))
			continue;
		for (unsigned j = 0; j < c->slots[0].nterms; j++)
			kb->term_classes[c->slots[0].terms[j]] |= 1ull << c->index;
	}
	qsort(kb->words, kb->nwords, sizeof *kb->words, cmp_word);
	size_t u = 0;
	for (size_t i = 0; i < kb->nwords; i++)
		if (u == 0 || strcmp(kb->words[u - 1].word, kb->words[i].word) != 0)
			kb->words[u++] = kb->words[i];
	kb->nwords = u;
	size_t w = 0;
	for (unsigned c = 0; c <= 256; c++) {
		while (c < 256 && w < kb->nwords && (unsigned char)kb->words[w].word[0] < c)
			w++;
		kb->word_first[c] = (uint32_t)(c == 256 ? kb->nwords : w);
	}
}

/* --- whole-KB checks --- */

static void
missing(struct kb *kb, struct buf *err, int *errors, const char *file, const struct entry *e,
	const char *what, const struct field *fields)
{
	if (!e->seen) {
		buf_printf(err, "%s/%s: missing [%s]\n", kb->dir, file, what);
		(*errors)++;
		return;
	}
	int i = 0;
	for (const struct field *f = fields; f->key; f++, i++) {
		if (f->required && !(e->set & (1u << i))) {
			buf_printf(err, "%s/%s:%d: [%s] lacks '%s'\n", kb->dir, e->file, e->line, what, f->key);
			(*errors)++;
		}
	}
}

static void
check_exercise_refs(struct kb *kb, struct buf *err, int *errors, const struct entry *e, const char *what,
	const struct kb_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		if (!kb_exercise_find(kb, l->v[i])) {
			buf_printf(err, "%s/%s:%d: [%s] names unknown exercise '%s'\n", kb->dir, e->file, e->line, what, l->v[i]);
			(*errors)++;
		}
	}
}

static void
check_all(struct kb *kb, struct buf *err, int *errors)
{
	char what[128];
	for (int i = 0; i < KB_NSEEDS; i++) {
		snprintf(what, sizeof what, "source 00%d", i);
		missing(kb, err, errors, "sources.ini", &kb->source_e[i], what, source_fields);
	}
	for (int i = 0; i < KB_NCONDITIONS; i++) {
		snprintf(what, sizeof what, "condition %s", kb_condition_ids[i]);
		missing(kb, err, errors, "conditions.ini", &kb->cond_e[i], what, condition_fields);
		check_exercise_refs(kb, err, errors, &kb->cond_e[i], what, &kb->cond[i].exercises);
		if (kb->cond_e[i].seen && kb->cond[i].exercises.n == 0) {
			buf_printf(err, "%s/conditions.ini:%d: [%s] needs at least one exercise\n", kb->dir, kb->cond_e[i].line, what);
			(*errors)++;
		}
	}
	for (int i = 0; i < KB_NREDFLAGS; i++) {
		snprintf(what, sizeof what, "redflag %s", kb_redflag_ids[i]);
		missing(kb, err, errors, "redflags.ini", &kb->flag_e[i], what, redflag_fields);
	}
	for (int i = 0; i < KB_NFACTORS; i++) {
		snprintf(what, sizeof what, "factor %s", kb_factor_ids[i]);
		missing(kb, err, errors, "factors.ini", &kb->factor_e[i], what, factor_fields);
		check_exercise_refs(kb, err, errors, &kb->factor_e[i], what, &kb->factor[i].exercises);
	}
	for (size_t i = 0; i < kb->nex; i++) {
		snprintf(what, sizeof what, "exercise %s", kb->ex[i].id);
		missing(kb, err, errors, "exercises.ini", &kb->ex_e[i], what, exercise_fields);
		for (size_t j = 0; j < kb->ex[i].targets.n; j++) {
			if (find_id(exercise_targets, NELEM(exercise_targets), kb->ex[i].targets.v[j]) < 0) {
				buf_printf(err, "%s/exercises.ini:%d: [%s] unknown target '%s'\n", kb->dir, kb->ex_e[i].line,
					what, kb->ex[i].targets.v[j]);
				(*errors)++;
			}
		}
	}
	for (size_t i = 0; i < kb->ntopic; i++) {
		snprintf(what, sizeof what, "topic %s", kb->topic[i].id);
		missing(kb, err, errors, "topics.ini", &kb->topic_e[i], what, topic_fields);
	}
	for (size_t i = 0; i < NELEM(required_topics); i++) {
		if (!kb_topic(kb, required_topics[i])) {
			buf_printf(err, "%s/topics.ini: missing [topic %s]\n", kb->dir, required_topics[i]);
			(*errors)++;
		}
	}
	for (size_t i = 0; i < NELEM(required_classes); i++) {
		if (class_find(kb, required_classes[i], strlen(required_classes[i])) < 0) {
			buf_printf(err, "%s/lexicon.ini: missing [class %s]\n", kb->dir, required_classes[i]);
			(*errors)++;
		}
	}
	if (kb->settings_set != (1u << 6) - 1) {
		buf_printf(err, "%s/lexicon.ini: [settings] needs condition_min, condition_ratio, flag_min, negation_window, typo_min_len and typo_two_len\n", kb->dir);
		(*errors)++;
	}
	/* every taxonomy id needs something that can raise it */
	bool cond_cue[KB_NCONDITIONS] = { 0 }, flag_cue[KB_NREDFLAGS] = { 0 }, factor_cue[KB_NFACTORS] = { 0 };
	for (size_t i = 0; i < kb->ncues; i++) {
		const struct kb_cue *c = &kb->cues[i];
		if (c->weight <= 0)
			continue;
		if (c->target == KB_T_CONDITION) cond_cue[c->index] = true;
		else if (c->target == KB_T_REDFLAG) flag_cue[c->index] = true;
		else if (c->target == KB_T_FACTOR) factor_cue[c->index] = true;
	}
	for (int i = 0; i < KB_NCONDITIONS; i++)
		if (!cond_cue[i])
			buf_printf(err, "%s/cues.ini: no positive cue for [condition %s]\n", kb->dir, kb_condition_ids[i]), (*errors)++;
	for (int i = 0; i < KB_NREDFLAGS; i++)
		if (!flag_cue[i])
			buf_printf(err, "%s/cues.ini: no positive cue for [redflag %s]\n", kb->dir, kb_redflag_ids[i]), (*errors)++;
	for (int i = 0; i < KB_NFACTORS; i++)
		if (!factor_cue[i])
			buf_printf(err, "%s/cues.ini: no positive cue for [factor %s]\n", kb->dir, kb_factor_ids[i]), (*errors)++;
}

int
kb_load(const char *dir, struct kb **out, struct buf *err)
{
	struct kb *kb = xcalloc(1, sizeof *kb);
	kb->dir = xstrdup(dir);
	text_init(&kb->scratch);
	kb->stemmer = stemmer_new();
	if (!kb->stemmer) {
		buf_printf(err, "%s: cannot create the English stemmer\n", dir);
		kb_free(kb);
		return -1;
	}
	int errors = 0;
	for (int r = 0; r < (int)NELEM(role_files); r++)
		load_file(kb, r, err, &errors);
	if (errors == 0) {
		compile_all(kb, err, &errors);
		check_all(kb, err, &errors);
	}
	free(kb->raw);
	kb->raw = NULL;
	kb->nraw = 0;
	text_free(&kb->scratch);
	if (errors) {
		kb_free(kb);
		return -1;
	}
	*out = kb;
	return 0;
}

static void
free_list(struct kb_list *l)
{
	free(l->v);
}

void
kb_free(struct kb *kb)
{
	if (!kb)
		return;
	for (int i = 0; i < KB_NCONDITIONS; i++) {
		free_list(&kb->cond[i].aliases);
		free_list(&kb->cond[i].try_);
		free_list(&kb->cond[i].exercises);
	}
	for (int i = 0; i < KB_NFACTORS; i++) {
		free_list(&kb->factor[i].try_);
		free_list(&kb->factor[i].exercises);
	}
	for (size_t i = 0; i < kb->nex; i++) {
		free_list(&kb->ex[i].aliases);
		free_list(&kb->ex[i].targets);
		free_list(&kb->ex[i].steps);
		free_list(&kb->ex[i].cautions);
	}
	for (size_t i = 0; i < kb->ntopic; i++)
		free_list(&kb->topic[i].lines);
	for (size_t i = 0; i < kb->nallocs; i++)
		free(kb->allocs[i]);
	free(kb->allocs);
	free(kb->ex);
	free(kb->ex_e);
	free(kb->topic);
	free(kb->topic_e);
	free(kb->terms);
	free(kb->thash);
	free(kb->words);
	free(kb->raw);
	text_free(&kb->scratch);
	stemmer_free(kb->stemmer);
	free(kb->dir);
	free(kb);
}

/* --- accessors --- */

const struct kb_condition *kb_condition(const struct kb *kb, unsigned i) { return i < KB_NCONDITIONS ? &kb->cond[i] : NULL; }
const struct kb_redflag *kb_redflag(const struct kb *kb, unsigned i) { return i < KB_NREDFLAGS ? &kb->flag[i] : NULL; }
const struct kb_factor *kb_factor(const struct kb *kb, unsigned i) { return i < KB_NFACTORS ? &kb->factor[i] : NULL; }
size_t kb_exercise_count(const struct kb *kb) { return kb->nex; }
const struct kb_exercise *kb_exercise_at(const struct kb *kb, size_t i) { return i < kb->nex ? &kb->ex[i] : NULL; }
size_t kb_topic_count(const struct kb *kb) { return kb->ntopic; }
const struct kb_topic *kb_topic_at(const struct kb *kb, size_t i) { return i < kb->ntopic ? &kb->topic[i] : NULL; }
const struct kb_source *kb_source(const struct kb *kb, unsigned seed) { return seed < KB_NSEEDS ? &kb->source[seed] : NULL; }
const struct kb_settings *kb_settings(const struct kb *kb) { return &kb->settings; }
const char *kb_dir(const struct kb *kb) { return kb->dir; }
size_t kb_cue_count(const struct kb *kb) { return kb->ncues; }
const struct kb_cue *kb_cue_at(const struct kb *kb, size_t i) { return &kb->cues[i]; }
const char *kb_term_text(const struct kb *kb, uint32_t term) { return term < kb->nterms ? kb->terms[term] : NULL; }
size_t kb_word_count(const struct kb *kb) { return kb->nwords; }
size_t kb_term_count(const struct kb *kb) { return kb->nterms; }

void
kb_words_starting(const struct kb *kb, unsigned char c, size_t *from, size_t *to)
{
	*from = kb->word_first[c];
	*to = kb->word_first[c + 1];
}
size_t kb_class_count(const struct kb *kb) { return kb->nclasses; }
const char *kb_class_name(const struct kb *kb, size_t i) { return i < kb->nclasses ? kb->classes[i] : NULL; }

const char *
kb_word_at(const struct kb *kb, size_t i, uint32_t *term)
{
	*term = kb->words[i].term;
	return kb->words[i].word;
}

bool
kb_needs_complaint(const struct kb *kb, enum kb_target target, unsigned index)
{
	return target <= KB_T_FACTOR && index < KB_NREDFLAGS && kb->needs[target][index];
}

int
kb_class_index(const struct kb *kb, const char *name)
{
	return class_find(kb, name, strlen(name));
}

const struct kb_exercise *
kb_exercise_find(const struct kb *kb, const char *id)
{
	for (size_t i = 0; i < kb->nex; i++)
		if (strcmp(kb->ex[i].id, id) == 0)
			return &kb->ex[i];
	return NULL;
}

const struct kb_topic *
kb_topic(const struct kb *kb, const char *id)
{
	for (size_t i = 0; i < kb->ntopic; i++)
		if (strcmp(kb->topic[i].id, id) == 0)
			return &kb->topic[i];
	return NULL;
}

const struct kb_index *
kb_index(const struct kb *kb, enum kb_pass pass)
{
	return &kb->idx[pass];
}

const uint64_t *
kb_term_classes(const struct kb *kb)
{
	return kb->term_classes;
}

void
kb_seeds_format(unsigned seeds, struct buf *b)
{
	bool first = true;
	for (int i = 0; i < KB_NSEEDS; i++) {
		if (!(seeds & (1u << i)))
			continue;
		buf_printf(b, "%s00%d", first ? "" : ", ", i);
		first = false;
	}
}
