/* fuzz_responder.c: any bytes as a chat message, addressed or not, with and without context. */
#include <stdint.h>
#include <stdlib.h>

#include "kb.h"
#include "responder.h"

static struct kb *kb;
static struct responder *r;
static struct triage prior;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!kb) {
		struct buf err;
		buf_init(&err);
		const char *dir = getenv("KNEEBOT_RESPONSES");
		if (kb_load(dir ? dir : "responses", &kb, &err) < 0)
			abort();
		r = responder_new(kb);
	}
	bool addressed = size && (data[0] & 1);
	struct triage t;
	responder_judge(r, (const char *)data, size, addressed, size > 2 && (data[1] & 1) ? &prior : NULL, &t);
	struct budget irc = { 3, 400, false }, full = { 0, 0, true };
	struct buf text, html;
	buf_init(&text);
	buf_init(&html);
	responder_compose(r, &t, size && (data[0] & 2) ? &irc : &full, "!", &text, &html);
	buf_free(&text);
	buf_free(&html);
	prior = t;
	return 0;
}
