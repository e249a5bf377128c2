/* text.c: untrusted bytes to normalised tokens; stemming and edit distance. */
#include <libstemmer.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "buf.h"
#include "text.h"

void
text_init(struct text *t)
{
	memset(t, 0, sizeof *t);
}

void
text_free(struct text *t)
{
	free(t->norm);
	free(t->toks);
	free(t->tmp);
	text_init(t);
}

static void
norm_reserve(struct text *t, size_t n)
{
	if (n + 1 > t->norm_cap) {
		t->norm_cap = n + 1 > 256 ? n + 1 : 256;
		t->norm = xrealloc(t->norm, t->norm_cap);
	}
}

/* Folds what utf8proc leaves alone but runners type: quotes, dashes, ellipses. */
static utf8proc_int32_t
fold_punct(utf8proc_int32_t c)
{
	switch (c) {
	case 0x2018: case 0x2019: case 0x201a: case 0x201b: case 0x2032: case 0x02bc: case 0x0060: case 0x00b4:
		return '\'';
	case 0x201c: case 0x201d: case 0x201e: case 0x201f: case 0x2033: case 0x00ab: case 0x00bb:
		return '"';
	case 0x2010: case 0x2011: case 0x2012: case 0x2013: case 0x2014: case 0x2015: case 0x2212:
		return '-';
	case 0x2026:
		return '.';
	}
	return c;
}

/*
 * What chat adds to ASCII: typographic punctuation and emoji.  These need no
 * Unicode normalisation, so a message with nothing else skips utf8proc.
 * Returns the ASCII replacement, 0 for "a space", or -1 for "needs utf8proc".
 */
static int
simple_fold(utf8proc_int32_t cp)
{
	utf8proc_int32_t f = fold_punct(cp);
	if (f != cp)
		return (int)f;
	if ((cp >= 0x1F000 && cp <= 0x1FAFF) || (cp >= 0x2600 && cp <= 0x27BF) || cp == 0xFE0F || cp == 0x200D ||
	    cp == 0x00A0 || cp == 0x2009 || cp == 0x202F)
		return 0;   /* emoji, their joiners and selectors, odd spaces: word breaks */
	return -1;
}

/*
 * Copies in[0..n) to t->tmp as valid UTF-8 with control characters and
 * invalid bytes as spaces, emoji and typographic punctuation folded; returns
 * whether what is left is pure ASCII.
 */
static bool
sanitise(struct text *t, const char *in, size_t n, size_t *outlen)
{
	if (n + 1 > t->tmp_cap) {
		t->tmp_cap = n + 1 > 256 ? n + 1 : 256;
		t->tmp = xrealloc(t->tmp, t->tmp_cap);
	}
	bool ascii = true;
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)in[i];
		if (c < 0x80) {
			t->tmp[o++] = (c < 0x20 && c != '\n') || c == 0x7f ? ' ' : (char)c;
			i++;
			continue;
		}
		utf8proc_int32_t cp;
		utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)in + i, (utf8proc_ssize_t)(n - i), &cp);
		if (l <= 0) {
			t->tmp[o++] = ' ';
			i++;
			continue;
		}
		int f = simple_fold(cp);
		if (f >= 0) {
			t->tmp[o++] = f ? (char)f : ' ';
			i += (size_t)l;
			continue;
		}
		ascii = false;
		memcpy(t->tmp + o, in + i, (size_t)l);
		o += (size_t)l;
		i += (size_t)l;
	}
	t->tmp[o] = '\0';
	*outlen = o;
	return ascii;
}

static void
normalise(struct text *t, const char *in, size_t n)
{
	if (n > TEXT_MAX_INPUT)
		n = utf8_cut(in, n, TEXT_MAX_INPUT);
	size_t len;
	bool ascii = sanitise(t, in, n, &len);
	norm_reserve(t, len * 2 + 4);
	if (ascii) {
		/* NFKC and case folding of ASCII are just lower-casing */
		for (size_t i = 0; i < len; i++) {
			char c = t->tmp[i];
			t->norm[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
		}
		t->norm_len = len;
		t->norm[len] = '\0';
		return;
	}
	utf8proc_uint8_t *mapped = NULL;
	utf8proc_ssize_t ml = utf8proc_map((const utf8proc_uint8_t *)t->tmp, (utf8proc_ssize_t)len, &mapped,
		UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD | UTF8PROC_IGNORE);
	if (ml < 0) {
		/* cannot happen on sanitised input; fall back to the raw text */
		free(mapped);
		memcpy(t->norm, t->tmp, len + 1);
		t->norm_len = len;
		return;
	}
	norm_reserve(t, (size_t)ml * 2 + 4);
	size_t o = 0;
	for (utf8proc_ssize_t i = 0; i < ml;) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t l = utf8proc_iterate(mapped + i, ml - i, &cp);
		if (l <= 0)
			break;
		cp = fold_punct(cp);
		o += (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)t->norm + o);
		i += l;
	}
	free(mapped);
	t->norm[o] = '\0';
	t->norm_len = o;
}

static void
push_tok(struct text *t, size_t off, size_t len, enum tok_kind kind)
{
	if (t->ntoks >= TEXT_MAX_TOKENS)
		return;
	/* collapse runs of breaks: the strongest wins */
	if (kind != TOK_WORD && kind != TOK_NUM && t->ntoks > 0) {
		struct tok *p = &t->toks[t->ntoks - 1];
		if (p->kind != TOK_WORD && p->kind != TOK_NUM) {
			if (kind > p->kind)
				p->kind = (uint8_t)kind;
			return;
		}
	}
	if (t->ntoks == t->toks_cap) {
		t->toks_cap = t->toks_cap ? t->toks_cap * 2 : 64;
		t->toks = xrealloc(t->toks, t->toks_cap * sizeof *t->toks);
	}
	if (len > TEXT_MAX_WORD)
		len = utf8_cut(t->norm + off, len, TEXT_MAX_WORD);
	t->toks[t->ntoks++] = (struct tok){ (uint32_t)off, (uint16_t)len, (uint8_t)kind };
}

/* Character classes for tokenising: a table for ASCII, utf8proc's categories beyond. */
enum { A_SEP, A_WORD, A_DIGIT, A_APOS, A_COMMA, A_STOP, A_QMARK, A_DASH, A_DOT, A_SLASH };
static unsigned char ascii_class[128];
static char ascii_lower[128];

static void
ascii_tables(void)
{
	for (int c = 0; c < 128; c++) {
		ascii_lower[c] = (c < 0x20 && c != '\n') || c == 0x7f ? ' ' : (c >= 'A' && c <= 'Z') ? (char)(c + 32) : (char)c;
		ascii_class[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ? A_WORD : (c >= '0' && c <= '9') ? A_DIGIT
			: c == '\'' ? A_APOS : c == ',' || c == ';' || c == ':' ? A_COMMA
			: c == '!' || c == '\n' ? A_STOP : c == '?' ? A_QMARK : c == '-' ? A_DASH
			: c == '.' ? A_DOT : c == '/' ? A_SLASH : A_SEP;
	}
}

static unsigned wide_class(const char *s, size_t n, size_t i, size_t *len);

/* The class of the character at s[i], its length in *len; ASCII inline, the rest out of line. */
static inline unsigned
char_class(const char *s, size_t n, size_t i, size_t *len)
{
	unsigned char c = (unsigned char)s[i];
	if (c < 0x80) {
		*len = 1;
		return ascii_class[c];
	}
	return wide_class(s, n, i, len);
}

static unsigned
wide_class(const char *s, size_t n, size_t i, size_t *len)
{
	utf8proc_int32_t cp;
	utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
	if (l <= 0) {
		*len = 1;
		return A_SEP;
	}
	*len = (size_t)l;
	utf8proc_category_t cat = utf8proc_category(cp);
	if (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO)
		return A_DIGIT;
	if ((cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
	    (cat >= UTF8PROC_CATEGORY_MN && cat <= UTF8PROC_CATEGORY_ME))
		return A_WORD;
	return A_SEP;   /* emoji and other symbols separate words */
}

static void
tokenise(struct text *t)
{
	const char *s = t->norm;
	size_t n = t->norm_len;
	t->ntoks = 0;
	if (!ascii_class['a'])
		ascii_tables();
	for (size_t i = 0; i < n && t->ntoks < TEXT_MAX_TOKENS;) {
		size_t l;
		unsigned k = char_class(s, n, i, &l);
		if (k == A_WORD || k == A_DIGIT) {
			size_t start = i;
			bool num = k == A_DIGIT;
			for (i += l; i < n; i += l) {
				unsigned c = char_class(s, n, i, &l);
				if (c == A_WORD || c == A_DIGIT)
					continue;
				/* inner apostrophes ("can't"), decimal points and slashes in numbers */
				size_t l2;
				unsigned next = i + l < n ? char_class(s, n, i + l, &l2) : A_SEP;
				bool next_word = next == A_WORD || next == A_DIGIT;
				if (next_word && (c == A_APOS || (num && (c == A_DOT || c == A_SLASH))))
					continue;
				break;
			}
			size_t len = i - start;
			/* "knee's", "mate's": the possessive or "is" adds nothing */
			if (len > 2 && s[start + len - 2] == '\'' && s[start + len - 1] == 's')
				len -= 2;
			push_tok(t, start, len, num ? TOK_NUM : TOK_WORD);
			continue;
		}
		switch (k) {
		case A_QMARK: push_tok(t, i, l, TOK_QMARK); break;
		case A_STOP: case A_DOT: push_tok(t, i, l, TOK_STOP); break;
		/* brackets do not end a clause: "years back (the pop was awful)" is one thought */
		case A_COMMA: push_tok(t, i, l, TOK_COMMA); break;
		case A_DASH:
			/* a spaced dash ends a clause; "knee-deep" just joins two words */
			if (i == 0 || s[i - 1] == ' ' || (i + 1 < n && s[i + 1] == ' '))
				push_tok(t, i, l, TOK_COMMA);
			break;
		default: break;
		}
		i += l;
	}
}

/* Plain ASCII (the common case, also after folding emoji and quotes): lower-cased, no utf8proc. */
static bool
fold_ascii(struct text *t, const char *in, size_t n)
{
	if (!ascii_class['a'])
		ascii_tables();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)in[i] >= 0x80)
			return false;
	norm_reserve(t, n + 1);
	for (size_t i = 0; i < n; i++)
		t->norm[i] = ascii_lower[(unsigned char)in[i]];
	t->norm[n] = '\0';
	t->norm_len = n;
	return true;
}

void
text_analyse(struct text *t, const char *in, size_t n)
{
	if (n > TEXT_MAX_INPUT)
		n = utf8_cut(in, n, TEXT_MAX_INPUT);
	size_t len;
	/* emoji and smart quotes fold to ASCII: utf8proc is for real letters */
	if (!fold_ascii(t, in, n) && !(sanitise(t, in, n, &len) && fold_ascii(t, t->tmp, len)))
		normalise(t, in, n);
	tokenise(t);
}

struct stemmer {
	struct sb_stemmer *sb;
};

struct stemmer *
stemmer_new(void)
{
	struct sb_stemmer *sb = sb_stemmer_new("english", "UTF_8");
	if (!sb)
		return NULL;
	struct stemmer *s = xmalloc(sizeof *s);
	s->sb = sb;
	return s;
}

void
stemmer_free(struct stemmer *s)
{
	if (!s)
		return;
	sb_stemmer_delete(s->sb);
	free(s);
}

size_t
stemmer_stem(struct stemmer *s, const char *word, size_t n, char *out, size_t cap)
{
	const sb_symbol *st = sb_stemmer_stem(s->sb, (const sb_symbol *)word, (int)n);
	size_t len = 0;
	if (st) {
		len = (size_t)sb_stemmer_length(s->sb);
	} else {
		st = (const sb_symbol *)word;   /* out of memory: use the word as is */
		len = n;
	}
	if (len >= cap)
		len = utf8_cut((const char *)st, len, cap - 1);
	memcpy(out, st, len);
	out[len] = '\0';
	return len;
}

unsigned
text_edit_distance(const char *a, size_t an, const char *b, size_t bn, unsigned max)
{
	if (an > TEXT_MAX_WORD || bn > TEXT_MAX_WORD)
		return max + 1;
	if ((an > bn ? an - bn : bn - an) > max)
		return max + 1;
	/* optimal string alignment: insertions, deletions, substitutions, transpositions */
	unsigned d[TEXT_MAX_WORD + 1][TEXT_MAX_WORD + 1];
	for (size_t i = 0; i <= an; i++)
		d[i][0] = (unsigned)i;
	for (size_t j = 0; j <= bn; j++)
		d[0][j] = (unsigned)j;
	for (size_t i = 1; i <= an; i++) {
		unsigned rowmin = UINT32_MAX;
		for (size_t j = 1; j <= bn; j++) {
			unsigned cost = a[i - 1] != b[j - 1];
			unsigned v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
			if (v < rowmin) rowmin = v;
		}
		if (rowmin > max)
			return max + 1;
	}
	return d[an][bn] > max ? max + 1 : d[an][bn];
}
