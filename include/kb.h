/*
 * kb.h: the knowledge base, loaded once from the INI files in responses/
 * (format in responses/README.md) and read-only afterwards, so the responder
 * and the commands may hold pointers into it for as long as it lives.
 * Every id it accepts comes from the taxonomy (shared/taxonomy.md); every
 * advice entry cites its seed documents.
 */
#ifndef KNEEBOT_KB_H
#define KNEEBOT_KB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Fixed by the taxonomy; ids are indexes into kb_*_ids[]. */
#define KB_NCONDITIONS 10
#define KB_NREDFLAGS 11
#define KB_NFACTORS 5
#define KB_NSEEDS 5

extern const char *const kb_condition_ids[KB_NCONDITIONS];
extern const char *const kb_redflag_ids[KB_NREDFLAGS];
extern const char *const kb_factor_ids[KB_NFACTORS];

struct kb_list {
	const char **v;
	size_t n;
};

enum kb_urgency { KB_URGENCY_SOON, KB_URGENCY_TODAY, KB_URGENCY_NOW };

struct kb_condition {
	const char *id, *name;
	struct kb_list aliases;
	unsigned seeds;           /* bit i: seed document 00i */
	const char *what;         /* what it may be, "could be" language */
	const char *signs;        /* typical signs */
	const char *sign;         /* the detail to name when no cue carries one */
	struct kb_list try_;      /* what to try now, most important first */
	struct kb_list exercises; /* exercise ids, first is the pointer */
	const char *footwear, *return_, *see;
};

struct kb_redflag {
	const char *id, *name;
	unsigned seeds;
	enum kb_urgency urgency;
	const char *warning;
};

struct kb_factor {
	const char *id, *name;
	unsigned seeds;
	const char *explain;
	struct kb_list try_;
	struct kb_list exercises;
};

struct kb_exercise {
	const char *id, *name;
	struct kb_list aliases;
	struct kb_list targets;   /* tags for "!exercises TARGET": hips, quads, vmo, ... */
	const char *muscles;
	struct kb_list steps;
	const char *dose;
	struct kb_list cautions;
	unsigned seeds;
};

struct kb_topic {
	const char *id, *title;
	struct kb_list lines;
	unsigned seeds;
};

struct kb_source {
	const char *id, *title, *about, *weight;
};

/* --- the matcher's data, compiled from lexicon.ini and cues.ini --- */

#define KB_TERM_NONE UINT32_MAX
#define KB_MAX_SLOTS 8

enum kb_slot_kind { KB_SLOT_TERMS, KB_SLOT_EXACT, KB_SLOT_NUMBER, KB_SLOT_CLASS, KB_SLOT_ANY };

struct kb_slot {
	uint8_t kind;      /* enum kb_slot_kind */
	uint8_t gap;       /* tokens that may come between the previous slot and this one */
	uint16_t nterms;
	uint32_t cls;      /* class index for KB_SLOT_CLASS */
	float min, max;    /* KB_SLOT_NUMBER: the value's range */
	const uint32_t *terms;   /* stems (KB_SLOT_TERMS) or exact words (KB_SLOT_EXACT) */
};

enum kb_target { KB_T_CONDITION, KB_T_REDFLAG, KB_T_FACTOR, KB_T_CLASS };

struct kb_cue {
	uint8_t target;    /* enum kb_target */
	uint8_t nslots;
	bool when_negated; /* "~": counts only when the match is negated */
	uint16_t index;    /* condition, flag, factor or class index */
	float weight;
	const struct kb_slot *slots;   /* nslots of them, owned by the KB; kept apart so cues stay small */
	const char *detail;   /* short phrase naming what was seen, or NULL */
	const char *file;
	int line;
};

/* Responder settings from lexicon.ini [settings]. */
struct kb_settings {
	float condition_min;    /* a condition is named at this score */
	float condition_ratio;  /* further conditions need this share of the best */
	float flag_min;         /* a red flag or factor is raised at this score */
	unsigned negation_window;
	unsigned typo_min_len;  /* shortest word corrected at one edit */
	unsigned typo_two_len;  /* shortest word corrected at two edits */
};

struct kb;

/*
 * Loads every file of dir.  On error returns -1 and appends one
 * "file:line: message" line per problem to err (all of them, not just the
 * first).  The KB is immutable afterwards.
 */
int kb_load(const char *dir, struct kb **out, struct buf *err);
void kb_free(struct kb *kb);

const struct kb_condition *kb_condition(const struct kb *kb, unsigned i);
const struct kb_redflag *kb_redflag(const struct kb *kb, unsigned i);
const struct kb_factor *kb_factor(const struct kb *kb, unsigned i);
size_t kb_exercise_count(const struct kb *kb);
const struct kb_exercise *kb_exercise_at(const struct kb *kb, size_t i);
const struct kb_exercise *kb_exercise_find(const struct kb *kb, const char *id);
size_t kb_topic_count(const struct kb *kb);
const struct kb_topic *kb_topic_at(const struct kb *kb, size_t i);
const struct kb_topic *kb_topic(const struct kb *kb, const char *id);
const struct kb_source *kb_source(const struct kb *kb, unsigned seed);
const struct kb_settings *kb_settings(const struct kb *kb);
const char *kb_dir(const struct kb *kb);

/* Matcher access. */
size_t kb_cue_count(const struct kb *kb);
const struct kb_cue *kb_cue_at(const struct kb *kb, size_t i);
/*
 * The cues each reading pass needs, indexed by what their first slot can
 * match, so a pass never walks another pass's cues.
 */
enum kb_pass {
	KB_PASS_IDIOM,    /* idiom phrases: their words are blanked first */
	KB_PASS_CLASS,    /* class phrases made of words */
	KB_PASS_CLASS2,   /* class phrases that use other classes: a second pass */
	KB_PASS_SCORE,    /* condition, red-flag and factor cues */
	KB_NPASSES
};
/* A pass's first-slot index, read-only; the responder walks it inline on its hot path. */
#define KB_MAX_CLASSES 64
struct kb_index {
	const uint32_t *term_off, *term_items;   /* cues of term t: term_items[term_off[t] .. term_off[t+1]) */
	const uint32_t *num_items;
	size_t nnum;
	uint32_t class_off[KB_MAX_CLASSES + 1];
	const uint32_t *class_items;
	const uint64_t *term_bits;   /* terms that start a cue, one bit each */
	const struct kb_cue *cues;   /* all cues, so the hot path need not call kb_cue_at() */
	uint64_t class_bits;         /* classes that start a cue */
	size_t entries, nterms;
};
const struct kb_index *kb_index(const struct kb *kb, enum kb_pass pass);
/*
 * The classes a term belongs to as a single word (class phrases of one word
 * are folded in here at load time instead of being matched message by
 * message); indexed by term, kb_term_count() entries.
 */
const uint64_t *kb_term_classes(const struct kb *kb);
/* Stem to term id, or KB_TERM_NONE. */
uint32_t kb_term(const struct kb *kb, const char *stem, size_t n);
const char *kb_term_text(const struct kb *kb, uint32_t term);
/* Surface words of the vocabulary, for typo correction. */
size_t kb_word_count(const struct kb *kb);
/* The words beginning with byte c are kb_word_at(from .. to-1) (the list is sorted). */
void kb_words_starting(const struct kb *kb, unsigned char c, size_t *from, size_t *to);
size_t kb_term_count(const struct kb *kb);
const char *kb_word_at(const struct kb *kb, size_t i, uint32_t *term);
int kb_class_index(const struct kb *kb, const char *name);
/* True when cues.ini says "needs = complaint": raised only beside another knee or leg symptom. */
bool kb_needs_complaint(const struct kb *kb, enum kb_target target, unsigned index);
size_t kb_class_count(const struct kb *kb);
const char *kb_class_name(const struct kb *kb, size_t i);

/* "002, 004" into buf from a seed mask. */
void kb_seeds_format(unsigned seeds, struct buf *b);

#endif
