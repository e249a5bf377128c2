/* text_test.c: normalisation, tokens, stems and edit distance on awkward input. */
#include "t.h"
#include "text.h"

static struct text t;

static const char *
tok(size_t i)
{
	static char b[64];
	if (i >= t.ntoks)
		return "(none)";
	snprintf(b, sizeof b, "%.*s", (int)t.toks[i].len, t.norm + t.toks[i].off);
	return b;
}

static int
kinds(const char *in, const char *want)
{
	text_analyse(&t, in, strlen(in));
	char got[256] = "";
	for (size_t i = 0; i < t.ntoks && i < 250; i++)
		got[i] = "wn,.?"[t.toks[i].kind], got[i + 1] = '\0';
	return T_OK(strcmp(got, want) == 0, "tokens of \"%s\": %s (want %s)", in, got, want);
}

int
main(void)
{
	text_init(&t);
	text_analyse(&t, "KNEE\xe2\x80\x99s Sore", strlen("KNEE\xe2\x80\x99s Sore"));
	T_OK(t.ntoks == 2 && strcmp(tok(0), "knee") == 0 && strcmp(tok(1), "sore") == 0, "curly apostrophe and 's folded, case folded");
	text_analyse(&t, "can't", 5);
	T_STREQ(tok(0), "can't", "an inner apostrophe stays in the word");
	text_analyse(&t, "\xef\xbc\xab\xef\xbd\x8e\xef\xbd\x85\xef\xbd\x85", 12);
	T_STREQ(tok(0), "knee", "full-width letters become ASCII through NFKC");
	text_analyse(&t, "Stra\xc3\x9f" "e", 7);
	T_STREQ(tok(0), "strasse", "case folding expands \xc3\x9f");
	text_analyse(&t, "e\xcc\x81t\xc3\xa9", 6);
	T_OK(t.ntoks == 1 && strcmp(tok(0), "\xc3\xa9t\xc3\xa9") == 0, "combining accent composed (NFC within NFKC)");
	kinds("knee-deep in it", "wwww");
	kinds("sore, then - worse. why? ok!", "w,w,w.w?w.");
	kinds("38.6 and 9/10 and 50k", "nwnwn");
	kinds("pain 😭😭 on stairs", "www");
	kinds("it hurts (a lot) today", "wwwww");
	char bad[] = { 'k', 'n', (char)0xff, 'e', 'e', 0, 'x', (char)0xc3, '(', '\n', 'o', 'k' };
	text_analyse(&t, bad, sizeof bad);
	T_OK(t.ntoks >= 3, "invalid bytes and a NUL are separators, not the end (%zu tokens)", t.ntoks);
	size_t n = 1 << 20;
	char *big = malloc(n);
	for (size_t i = 0; i < n; i++)
		big[i] = "knee "[i % 5];
	text_analyse(&t, big, n);
	T_OK(t.norm_len <= TEXT_MAX_INPUT && t.ntoks <= TEXT_MAX_TOKENS, "a 1 MiB message is cut to %d bytes and %d tokens", TEXT_MAX_INPUT, TEXT_MAX_TOKENS);
	memset(big, 0x80, n);
	text_analyse(&t, big, n);
	T_OK(t.ntoks == 0, "a megabyte of stray continuation bytes yields nothing");
	free(big);

	struct stemmer *s = stemmer_new();
	char out[64];
	stemmer_stem(s, "swelling", 8, out, sizeof out);
	T_STREQ(out, "swell", "stem of swelling");
	stemmer_stem(s, "knees", 5, out, sizeof out);
	T_STREQ(out, "knee", "stem of knees");
	stemmer_free(s);

	T_OK(text_edit_distance("menicus", 7, "meniscus", 8, 2) == 1, "menicus is one edit from meniscus");
	T_OK(text_edit_distance("patela", 6, "patella", 7, 2) == 1, "patela is one edit from patella");
	T_OK(text_edit_distance("kneee", 5, "knee", 4, 2) == 1, "one insertion");
	T_OK(text_edit_distance("ahcilles", 8, "achilles", 8, 2) == 1, "a transposition is one edit");
	T_OK(text_edit_distance("stairs", 6, "meniscus", 8, 2) == 3, "far words report max+1");
	text_free(&t);
	T_EXIT();
}
