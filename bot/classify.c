/*
 * classify.c: --classify.  JSON lines in, one JSON line out per input, in
 * order; each line judged alone.  A line that is not a JSON object with a
 * string "text" gets {"error": ...} and the run goes on.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "buf.h"
#include "classify.h"
#include "kb.h"
#include "responder.h"

static void
print_error(struct buf *o, const char *msg)
{
	buf_adds(o, "{\"error\": \"");
	buf_add_json(o, msg, strlen(msg));
	buf_adds(o, "\"}\n");
}

void
classify_line(struct responder *r, const char *nick, const char *line, size_t n, bool explain, struct buf *o)
{
	static const struct budget budget = { 0, 0, false };
	cJSON *j = cJSON_ParseWithLength(line, n);
	if (!j || !cJSON_IsObject(j)) {
		print_error(o, j ? "not a JSON object" : "malformed JSON");
		cJSON_Delete(j);
		return;
	}
	const cJSON *text = cJSON_GetObjectItemCaseSensitive(j, "text");
	const cJSON *addr = cJSON_GetObjectItemCaseSensitive(j, "addressed");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
	if (!cJSON_IsString(text)) {
		print_error(o, "\"text\" missing or not a string");
		cJSON_Delete(j);
		return;
	}
	if (addr && !cJSON_IsBool(addr)) {
		print_error(o, "\"addressed\" must be true or false");
		cJSON_Delete(j);
		return;
	}
	struct buf stripped, reply, html;
	buf_init(&stripped);
	buf_init(&reply);
	buf_init(&html);
	/* the bot's own name is not part of the question */
	bool named = address_strip(text->valuestring, strlen(text->valuestring), nick, &stripped);
	struct triage t;
	struct buf trace;
	buf_init(&trace);
	responder_trace(r, explain ? &trace : NULL);
	responder_judge(r, stripped.s, stripped.len, cJSON_IsTrue(addr) || (named && !addr), NULL, &t);
	responder_trace(r, NULL);
	responder_compose(r, &t, &budget, "!", &reply, &html);
	buf_adds(o, "{");
	if (cJSON_IsString(id)) {
		buf_adds(o, "\"id\": \"");
		buf_add_json(o, id->valuestring, strlen(id->valuestring));
		buf_adds(o, "\", ");
	}
	buf_printf(o, "\"reply\": %s, \"conditions\": [", t.kind != TRIAGE_SILENT ? "true" : "false");
	for (unsigned i = 0; i < t.nranked; i++)
		buf_printf(o, "%s\"%s\"", i ? ", " : "", kb_condition_ids[t.ranked[i]]);
	buf_adds(o, "], \"red_flags\": [");
	bool first = true;
	for (unsigned f = 0; f < KB_NREDFLAGS; f++) {
		if (t.flags & (1u << f)) {
			buf_printf(o, "%s\"%s\"", first ? "" : ", ", kb_redflag_ids[f]);
			first = false;
		}
	}
	buf_adds(o, "], \"text\": \"");
	buf_add_json(o, reply.s ? reply.s : "", reply.len);
	buf_adds(o, "\"");
	if (explain) {
		buf_adds(o, ", \"explain\": \"");
		buf_add_json(o, trace.s ? trace.s : "", trace.len);
		buf_adds(o, "\"");
	}
	buf_adds(o, "}\n");
	buf_free(&trace);
	buf_free(&stripped);
	buf_free(&reply);
	buf_free(&html);
	cJSON_Delete(j);
}

/*
 * Reads one line of at most CLASSIFY_MAX_LINE bytes into b; a longer one is
 * skipped to its end (memory stays bounded whatever the input) and reported.
 * Returns 0 at end of input, 1 for a line, -1 for a line too long.
 */
static int
read_line(FILE *in, struct buf *b)
{
	buf_clear(b);
	bool too_long = false, any = false;
	int c;
	while ((c = getc_unlocked(in)) != EOF) {   /* one reader: no locking per byte */
		any = true;
		if (c == '\n')
			break;
		if (b->len < CLASSIFY_MAX_LINE)
			buf_addc(b, (char)c);
		else
			too_long = true;
	}
	if (!any)
		return 0;
	return too_long ? -1 : 1;
}

int
classify_stream(struct responder *r, const char *nick, bool explain, FILE *in, FILE *out)
{
	struct buf line, o;
	buf_init(&line);
	buf_init(&o);
	int got;
	while ((got = read_line(in, &line)) != 0) {
		size_t len = line.len;
		while (len && line.s[len - 1] == '\r')
			len--;
		buf_clear(&o);
		if (got < 0)
			print_error(&o, "line longer than 1 MiB");
		else if (len == 0)
			print_error(&o, "empty line");
		else
			classify_line(r, nick, line.s, len, explain, &o);
		fwrite(o.s, 1, o.len, out);
	}
	buf_free(&line);
	buf_free(&o);
	return fflush(out) == 0 ? 0 : -1;
}
