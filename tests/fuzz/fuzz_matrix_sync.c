/*
 * fuzz_matrix_sync.c: what kneebot does with the bytes of a /sync response
 * before any I/O: parse and walk it, decide for each message whether it is
 * for the bot, extract the text to judge, build the reply content from the
 * message's own bytes, and classify the bytes as an error body.  The same
 * bytes are also read as a /messages page (timeline gaps), whose events go
 * the same way.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "matrix.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t sink;

static void
on_crypto(void *arg, const struct mx_crypto *c)
{
	(void)arg;
	for (size_t i = 0; i < c->n_to_device; i++)
		sink += strlen(c->to_device[i].type) + strlen(c->to_device[i].sender);
	for (size_t i = 0; i < c->nchanged; i++)
		sink += strlen(c->changed[i]);
	for (size_t i = 0; i < c->nleft; i++)
		sink += strlen(c->left[i]);
}

static void
on_room(void *arg, const struct mx_room *r)
{
	(void)arg;
	sink += strlen(r->id) + (size_t)cJSON_GetArraySize(r->timeline);
}

static void
on_event(void *arg, const struct mx_room *r, const struct mx_event *ev)
{
	(void)r;
	struct buf *out = arg;
	static const char *const names[] = { "@kneebot:localhost", "Kneebot", "kneebot" };
	const char *why = matrix_event_skip(ev, names[0]);
	bool addressed = matrix_event_text(ev, names[0], names, 3, out);
	sink += out->len + addressed + (why ? strlen(why) : 0);
	if (!why && ev->body) {
		struct buf content;
		buf_init(&content);
		struct mx_reply rep = { ev->body, ev->body, ev->event_id, ev->sender, ev->rel_event };
		matrix_reply_content(&rep, &content);
		if (content.len > MX_MAX_CONTENT)
			__builtin_trap();   /* the size promise broken */
		buf_free(&content);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	if (!quiet) {
		log_init(LOG_LVL_ERR, "fuzz");
		quiet = true;
	}
	static const struct mx_sync_visitor v = { on_crypto, on_room, on_event, NULL };
	struct buf text, nb, err;
	buf_init(&text);
	buf_init(&nb);
	buf_init(&err);
	matrix_sync_parse((const char *)data, size, &v, &text, &nb, NULL, &err);
	buf_clear(&err);
	matrix_page_parse((const char *)data, size, "!gap:localhost", &v, &text, &nb, NULL, &err);
	struct mx_error e;
	matrix_classify(429, (const char *)data, size, -1, &e);
	buf_free(&text);
	buf_free(&nb);
	buf_free(&err);
	return 0;
}
