/* fuzz_classify.c: any bytes as one --classify input line (JSON parsing and the answer). */
#include <stdint.h>
#include <stdlib.h>

#include "classify.h"
#include "kb.h"
#include "responder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kb *kb;
	static struct responder *r;
	if (!kb) {
		struct buf err;
		buf_init(&err);
		const char *dir = getenv("KNEEBOT_RESPONSES");
		if (kb_load(dir ? dir : "responses", &kb, &err) < 0)
			abort();
		r = responder_new(kb);
	}
	struct buf o;
	buf_init(&o);
	classify_line(r, "kneebot", (const char *)data, size, size & 1, &o);
	buf_free(&o);
	return 0;
}
