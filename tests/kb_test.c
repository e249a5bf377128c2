/* kb_test.c: the repository's KB loads; the taxonomy ids match; broken files give file:line. */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kb.h"
#include "loop.h"
#include "t.h"

/* Copies responses/ to a temp dir, replacing one file's text. */
static char *
broken_copy(const char *file, const char *find, const char *replace)
{
	static char dir[256];
	snprintf(dir, sizeof dir, "/tmp/kb_test.XXXXXX");
	if (!mkdtemp(dir))
		return NULL;
	static const char *const files[] = { "sources.ini", "conditions.ini", "redflags.ini", "factors.ini",
		"exercises.ini", "topics.ini", "lexicon.ini", "cues.ini" };
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		char src[512], dst[512];
		snprintf(src, sizeof src, "%s/%s", t_responses(), files[i]);
		snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
		FILE *in = fopen(src, "r"), *out = fopen(dst, "w");
		if (!in || !out)
			return NULL;
		char line[8192];
		while (fgets(line, sizeof line, in)) {
			char *hit = strcmp(files[i], file) == 0 && find ? strstr(line, find) : NULL;
			if (hit) {
				fwrite(line, 1, (size_t)(hit - line), out);
				fputs(replace, out);
				fputs(hit + strlen(find), out);
				find = NULL;   /* the first occurrence only */
			} else {
				fputs(line, out);
			}
		}
		fclose(in);
		fclose(out);
	}
	return dir;
}

static void
expect_error(const char *what, const char *file, const char *find, const char *replace, const char *needle)
{
	char *dir = broken_copy(file, find, replace);
	struct kb *kb = NULL;
	struct buf err;
	buf_init(&err);
	int r = dir ? kb_load(dir, &kb, &err) : 0;
	T_OK(r < 0 && err.s && strstr(err.s, needle), "%s: rejected with '%s' (got: %.200s)", what, needle, err.s ? err.s : "");
	kb_free(kb);
	buf_free(&err);
	if (dir) {
		char cmd[300];
		snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
		if (system(cmd) != 0)
			perror("rm");
	}
}

/* The ids compiled into kb.c must be exactly those of shared/taxonomy.md. */
static void
check_taxonomy(void)
{
	FILE *f = fopen("../shared/taxonomy.md", "r");
	if (!f) {
		T_OK(1, "taxonomy: ../shared is not here, skipped");
		return;
	}
	char line[1024], section[64] = "";
	int seen = 0, matched = 0;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "## ", 3) == 0)
			snprintf(section, sizeof section, "%.60s", line + 3);
		char id[64];
		if (sscanf(line, "| `%63[a-z_]`", id) != 1)
			continue;
		seen++;
		const char *const *ids = strncmp(section, "Conditions", 10) == 0 ? kb_condition_ids
			: strncmp(section, "Red flags", 9) == 0 ? kb_redflag_ids : kb_factor_ids;
		size_t n = ids == kb_condition_ids ? KB_NCONDITIONS : ids == kb_redflag_ids ? KB_NREDFLAGS : KB_NFACTORS;
		for (size_t i = 0; i < n; i++)
			matched += strcmp(ids[i], id) == 0;
	}
	fclose(f);
	T_OK(seen == KB_NCONDITIONS + KB_NREDFLAGS + KB_NFACTORS && matched == seen,
		"taxonomy: %d ids in taxonomy.md, %d match kb.c", seen, matched);
}

int
main(void)
{
	struct kb *kb = NULL;
	struct buf err;
	buf_init(&err);
	int64_t t0 = loop_now_us();
	int r = kb_load(t_responses(), &kb, &err);
	int64_t us = loop_now_us() - t0;
	T_OK(r == 0, "the repository's knowledge base loads (%s)", err.s ? err.s : "no errors");
	if (r != 0)
		T_EXIT();
	printf("# knowledge base loaded in %lld us\n", (long long)us);
	for (unsigned c = 0; c < KB_NCONDITIONS; c++) {
		const struct kb_condition *k = kb_condition(kb, c);
		T_OK(k->seeds && k->try_.n >= 2 && kb_exercise_find(kb, k->exercises.v[0]),
			"condition %s: seeds, two or more actions, an exercise pointer", k->id);
	}
	for (unsigned f = 0; f < KB_NREDFLAGS; f++)
		T_OK(kb_redflag(kb, f)->warning && kb_redflag(kb, f)->seeds, "red flag %s has a warning and seeds", kb_redflag_ids[f]);
	T_OK(kb_exercise_count(kb) >= 11, "the catalogue has the exercises the documents name (%zu)", kb_exercise_count(kb));
	check_taxonomy();
	kb_free(kb);
	buf_free(&err);

	expect_error("an unknown condition id", "conditions.ini", "[condition pfps]", "[condition jumpers_knee]", "conditions.ini:");
	expect_error("a weight out of range", "cues.ini", "cue = 4 runner's", "cue = 40 runner's", "weight from -10 to 10");
	expect_error("a zero weight", "cues.ini", "cue = 4 runner's", "cue = 0 runner's", "cues.ini:");
	expect_error("a missing required key", "redflags.ini", "warning =", "warnung =", "unknown key 'warnung'");
	expect_error("an unknown class", "cues.ini", "@kneecap", "@kneecapp", "unknown class '@kneecapp'");
	expect_error("an unknown exercise", "conditions.ini", "exercises = ", "exercises = moonwalk, ", "unknown exercise 'moonwalk'");
	expect_error("a bad seed", "conditions.ini", "seeds = 0", "seeds = 9", "seeds are 000 to 004");
	expect_error("a syntax error", "topics.ini", "[topic rice]", "[topic rice]\nthis line has no equals sign", "topics.ini:");
	expect_error("a dangling '..'", "cues.ini", "cue = 4 runner's", "cue = 4 .. runner's", "must stand between two words");
	expect_error("an unknown urgency", "redflags.ini", "urgency = today", "urgency = whenever", "urgency 'whenever'");
	T_EXIT();
}
