/*
 * classify_bench.c: responder throughput on one core.  Messages are the
 * labelled texts plus variants made by shuffling their words, so the word
 * cache sees realistic churn rather than the same few hundred lines.
 * Prints figures; asserts nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "kb.h"
#include "loop.h"
#include "responder.h"

#ifndef MESSAGES
#define MESSAGES 200000
#endif
#define MAX_TEXTS 4096

static char *texts[MAX_TEXTS];
static size_t ntexts;

/* Pulls "text" values out of JSON lines without a JSON library: good enough for our files. */
static void
load(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	char line[65536];
	while (ntexts < MAX_TEXTS && fgets(line, sizeof line, f)) {
		char *p = strstr(line, "\"text\": \"");
		if (!p)
			continue;
		p += 9;
		char *q = p;
		while (*q && !(*q == '"' && q[-1] != '\\'))
			q++;
		texts[ntexts++] = strndup(p, (size_t)(q - p));
	}
	fclose(f);
}

static unsigned long long
rnd(void)
{
	static unsigned long long x = 88172645463325252ull;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

/* A new message from the words of two labelled ones. */
static char *
variant(void)
{
	const char *a = texts[rnd() % ntexts], *b = texts[rnd() % ntexts];
	char *words[256];
	size_t n = 0;
	char *ca = strdup(a), *cb = strdup(b);
	for (char *w = strtok(ca, " "); w && n < 128; w = strtok(NULL, " "))
		words[n++] = w;
	for (char *w = strtok(cb, " "); w && n < 256; w = strtok(NULL, " "))
		if (rnd() % 2)
			words[n++] = w;
	for (size_t i = n; i > 1; i--) {
		size_t j = rnd() % i;
		char *t = words[i - 1];
		words[i - 1] = words[j];
		words[j] = t;
	}
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += strlen(words[i]) + 1;
	char *out = malloc(len + 1), *o = out;
	for (size_t i = 0; i < n; i++)
		o += sprintf(o, "%s%s", i ? " " : "", words[i]);
	*o = '\0';
	free(ca);
	free(cb);
	return out;
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "responses";
	load("tests/corpus.jsonl");
	load("../shared/eval/dev.jsonl");
	if (!ntexts) {
		fprintf(stderr, "no labelled texts found\n");
		return 1;
	}
	struct buf err;
	buf_init(&err);
	struct kb *kb = NULL;
	int64_t best = INT64_MAX, total = 0;
	for (int i = 0; i < 20; i++) {
		int64_t t0 = loop_now_us();
		if (kb_load(dir, &kb, &err) < 0) {
			fprintf(stderr, "%s", err.s);
			return 1;
		}
		int64_t us = loop_now_us() - t0;
		total += us;
		if (us < best)
			best = us;
		if (i < 19)
			kb_free(kb);
	}
	printf("knowledge base load: %.2f ms mean, %.2f ms best (20 loads, %zu cues)\n",
		total / 20 / 1000.0, best / 1000.0, kb_cue_count(kb));

	size_t base = ntexts;
	char **msgs = malloc(MESSAGES * sizeof *msgs);
	size_t bytes = 0;
	for (size_t i = 0; i < MESSAGES; i++) {
		msgs[i] = i % 4 == 0 ? strdup(texts[i / 4 % base]) : variant();
		bytes += strlen(msgs[i]);
	}
	struct responder *r = responder_new(kb);
	struct triage t;
	unsigned replies = 0;
	int64_t t0 = loop_now_us();
	for (size_t i = 0; i < MESSAGES; i++) {
		responder_judge(r, msgs[i], strlen(msgs[i]), i % 3 == 0, NULL, &t);
		replies += t.kind != TRIAGE_SILENT;
	}
	int64_t us = loop_now_us() - t0;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("classification: %d messages (%zu labelled + shuffled variants, mean %zu bytes), %u answered\n",
		MESSAGES, base, bytes / MESSAGES, replies);
	printf("classification: %.2f us per message, %.0f messages per second (one core)\n",
		(double)us / MESSAGES, MESSAGES / (us / 1e6));
	printf("peak RSS (bench process, messages held in memory): %.1f MiB\n", ru.ru_maxrss / 1024.0);

	/* judged and composed, as the router does for every answer */
	struct budget irc = { 3, 400, false };
	struct buf text, html;
	buf_init(&text);
	buf_init(&html);
	t0 = loop_now_us();
	for (size_t i = 0; i < MESSAGES; i++) {
		responder_judge(r, msgs[i], strlen(msgs[i]), true, NULL, &t);
		buf_clear(&text);
		responder_compose(r, &t, &irc, "!", &text, &html);
	}
	us = loop_now_us() - t0;
	printf("judge + compose (IRC budget): %.2f us per message\n", (double)us / MESSAGES);
	for (size_t i = 0; i < MESSAGES; i++)
		free(msgs[i]);
	free(msgs);
	buf_free(&text);
	buf_free(&html);
	responder_free(r);
	kb_free(kb);
	return 0;
}
