/*
 * text.h: untrusted message bytes to tokens.  Invalid UTF-8, NULs and control
 * characters become spaces; the rest is NFKC-normalised and case-folded with
 * utf8proc, typographic quotes and dashes are folded to ASCII, and the result
 * is cut into words, numbers and clause breaks.  Time is linear in the input.
 * Knows nothing of the knowledge base.
 */
#ifndef KNEEBOT_TEXT_H
#define KNEEBOT_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Longest input analysed; a chat message past this is cut (still linear). */
#define TEXT_MAX_INPUT 16384
#define TEXT_MAX_TOKENS 4096
#define TEXT_MAX_WORD 48

enum tok_kind {
	TOK_WORD,     /* letters, possibly with inner apostrophes */
	TOK_NUM,      /* starts with a digit: "3", "38.6", "50k" */
	TOK_COMMA,    /* , ; : and spaced dashes: ends a clause */
	TOK_STOP,     /* . ! and line breaks: ends a sentence */
	TOK_QMARK,    /* ?: ends a sentence and marks a question */
};

struct tok {
	uint32_t off;   /* into text.norm */
	uint16_t len;
	uint8_t kind;   /* enum tok_kind */
};

/* Scratch space reused from message to message; owned by its user. */
struct text {
	char *norm;
	size_t norm_len, norm_cap;
	struct tok *toks;
	size_t ntoks, toks_cap;
	char *tmp;
	size_t tmp_cap;
};

void text_init(struct text *t);
void text_free(struct text *t);
/* Normalises in[0..n) into t->norm and tokenises it into t->toks. */
void text_analyse(struct text *t, const char *in, size_t n);

/* English stemmer (Snowball Porter2 via libstemmer), not thread-safe. */
struct stemmer;
struct stemmer *stemmer_new(void);
void stemmer_free(struct stemmer *s);
/* Stems word[0..n) into out (NUL-terminated, at most cap-1 bytes); returns its length. */
size_t stemmer_stem(struct stemmer *s, const char *word, size_t n, char *out, size_t cap);

/* Optimal string alignment distance between a and b, or max+1 when larger than max. */
unsigned text_edit_distance(const char *a, size_t an, const char *b, size_t bn, unsigned max);

#endif
