/*
 * fuzz_kb.c: any bytes as one of the knowledge-base files (the first byte
 * picks which), the other files as shipped.  Errors are fine; crashes,
 * leaks and hangs are not.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kb.h"

static const char *const files[] = { "sources.ini", "conditions.ini", "redflags.ini", "factors.ini",
	"exercises.ini", "topics.ini", "lexicon.ini", "cues.ini" };
static char dir[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
setup(void)
{
	const char *src = getenv("KNEEBOT_RESPONSES");
	snprintf(dir, sizeof dir, "/tmp/fuzz_kb.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		char cmd[512];
		snprintf(cmd, sizeof cmd, "cp %s/%s %s/%s.orig", src ? src : "responses", files[i], dir, files[i]);
		if (system(cmd) != 0)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0])
		setup();
	if (size == 0)
		return 0;
	size_t which = data[0] % (sizeof files / sizeof files[0]);
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		char path[128], orig[160];
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		snprintf(orig, sizeof orig, "%s.orig", path);
		FILE *f = fopen(path, "w");
		if (!f)
			abort();
		if (i == which) {
			fwrite(data + 1, 1, size - 1, f);
		} else {
			FILE *o = fopen(orig, "r");
			char buf[65536];
			size_t n;
			while (o && (n = fread(buf, 1, sizeof buf, o)) > 0)
				fwrite(buf, 1, n, f);
			if (o)
				fclose(o);
		}
		fclose(f);
	}
	struct kb *kb = NULL;
	struct buf err;
	buf_init(&err);
	if (kb_load(dir, &kb, &err) == 0)
		kb_free(kb);
	buf_free(&err);
	return 0;
}
