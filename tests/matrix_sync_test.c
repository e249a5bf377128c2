/*
 * matrix_sync_test.c: the pure parts of the Matrix transport.  A /sync
 * response walked in order (tests/matrix/sync_full.json against its
 * .expected trace), fields missing or of the wrong type, truncated at every
 * byte, huge and deeply nested; which messages are for the bot; the text
 * it judges; the reply it sends; how errors are classified and backed off.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "matrix.h"
#include "t.h"

#define OWN "@kneebot:localhost"

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct buf b;
	buf_init(&b);
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_add(&b, chunk, n);
	fclose(f);
	*len = b.len;
	return buf_take(&b);
}

/* ---- a visitor that writes down everything it is told ---- */

static const char *const sections[] = { "join", "invite", "leave" };

static void
t_crypto(void *arg, const struct mx_crypto *c)
{
	struct buf *o = arg;
	buf_printf(o, "crypto to_device=%zu", c->n_to_device);
	for (size_t i = 0; i < c->n_to_device; i++)
		buf_printf(o, " [%s from %s%s]", c->to_device[i].type, c->to_device[i].sender,
			c->to_device[i].content ? "" : " no content");
	buf_adds(o, " changed=");
	for (size_t i = 0; i < c->nchanged; i++)
		buf_printf(o, "%s%s", i ? "," : "", c->changed[i]);
	buf_adds(o, " left=");
	for (size_t i = 0; i < c->nleft; i++)
		buf_printf(o, "%s%s", i ? "," : "", c->left[i]);
	buf_printf(o, " otk=%ld fallback_known=%d unused=%d\n", c->otk_signed_curve25519, c->fallback_known,
		c->fallback_unused);
}

static void
t_room(void *arg, const struct mx_room *r)
{
	buf_printf(arg, "room %s %s joined=%ld invited=%ld limited=%d\n", sections[r->section], r->id, r->joined,
		r->invited, r->limited);
}

static const char *
s(const char *v)
{
	return v ? v : "-";
}

static void
t_event(void *arg, const struct mx_room *r, const struct mx_event *ev)
{
	(void)r;
	struct buf *o = arg;
	buf_printf(o, "  %s %s id=%s sender=%s ts=%lld", ev->state ? "state" : "timeline", ev->type, s(ev->event_id),
		s(ev->sender), (long long)ev->ts_ms);
	if (ev->state_key)
		buf_printf(o, " state_key=%s", ev->state_key);
	if (ev->membership)
		buf_printf(o, " membership=%s displayname=%s", ev->membership, s(ev->displayname));
	if (ev->msgtype || ev->body)
		buf_printf(o, " msgtype=%s body=\"%s\"", s(ev->msgtype), s(ev->body));
	if (ev->rel_type || ev->in_reply_to)
		buf_printf(o, " rel=%s:%s reply_to=%s", s(ev->rel_type), s(ev->rel_event), s(ev->in_reply_to));
	if (ev->mention_ids)
		buf_printf(o, " mentions=%d", cJSON_GetArraySize(ev->mention_ids));
	if (ev->redacted)
		buf_adds(o, " redacted");
	const char *skip = strcmp(ev->type, "m.room.message") == 0 ? matrix_event_skip(ev, OWN) : NULL;
	if (skip)
		buf_printf(o, " skip=\"%s\"", skip);
	buf_addc(o, '\n');
}

static void
t_room_end(void *arg, const struct mx_room *r)
{
	buf_printf(arg, "end %s\n", r->id);
}

static const struct mx_sync_visitor tracer = { t_crypto, t_room, t_event, t_room_end };

static int calls;
static void c_crypto(void *a, const struct mx_crypto *c) { (void)a, (void)c; calls++; }
static void c_room(void *a, const struct mx_room *r) { (void)a, (void)r; calls++; }
static void c_event(void *a, const struct mx_room *r, const struct mx_event *e) { (void)a, (void)r, (void)e; calls++; }
static const struct mx_sync_visitor counter = { c_crypto, c_room, c_event, NULL };

static int
parse(const char *json, struct buf *nb, struct mx_sync_stats *st, struct buf *err)
{
	calls = 0;
	buf_clear(err);
	return matrix_sync_parse(json, strlen(json), &counter, NULL, nb, st, err);
}

static void
test_fixture(void)
{
	size_t len, elen;
	char *json = slurp("tests/matrix/sync_full.json", &len);
	char *want = slurp("tests/matrix/sync_full.expected", &elen);
	T_OK(json != NULL, "fixture tests/matrix/sync_full.json read");
	if (!json)
		return;
	struct buf trace, nb, err;
	buf_init(&trace);
	buf_init(&nb);
	buf_init(&err);
	struct mx_sync_stats st;
	int rc = matrix_sync_parse(json, len, &tracer, &trace, &nb, &st, &err);
	T_OK(rc == 0 && strcmp(nb.s, "s42_7_3") == 0, "the full sync response parses; next_batch read");
	T_OK(st.rooms == 4 && st.skipped == 4, "4 rooms; 4 malformed items skipped and counted (%zu, %zu)", st.rooms, st.skipped);
	bool same = want && strcmp(trace.s, want) == 0;
	T_OK(same, "the walk matches tests/matrix/sync_full.expected (crypto, invite, leave, join; state before timeline)");
	if (!same) {
		FILE *f = fopen("build/sync_full.got", "w");
		if (f) {
			fputs(trace.s, f);
			fclose(f);
			printf("# got written to build/sync_full.got\n");
		}
	}

	/* truncated at every byte: never a callback, always an error */
	size_t bad = 0, called = 0;
	for (size_t cut = 0; cut < len; cut++) {
		calls = 0;
		buf_clear(&err);
		if (matrix_sync_parse(json, cut, &counter, NULL, &nb, NULL, &err) == 0)
			bad++;
		called += calls != 0;
	}
	T_OK(bad == 0 && called == 0, "truncated at each of %zu bytes: an error every time, no callback (%zu, %zu)", len,
		bad, called);
	free(json);
	free(want);
	buf_free(&trace);
	buf_free(&nb);
	buf_free(&err);
}

static void
test_malformed(void)
{
	struct buf nb, err;
	buf_init(&nb);
	buf_init(&err);
	struct mx_sync_stats st;
	static const struct { const char *json, *why; } bad[] = {
		{ "", "empty input" },
		{ "null", "null" },
		{ "[]", "an array" },
		{ "{}", "no next_batch" },
		{ "{\"next_batch\": 5}", "next_batch a number" },
		{ "{\"next_batch\": \"\"}", "next_batch empty" },
		{ "{\"next_batch\": \"s1\"", "cut before the brace" },
		{ "{\"next_batch\": \"s1\"} trailing", "trailing garbage is ignored, so this one is fine" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = parse(bad[i].json, &nb, &st, &err);
		bool want_ok = i == sizeof bad / sizeof bad[0] - 1;
		T_OK(want_ok ? rc == 0 : rc < 0 && err.len > 0 && calls == 0, "%s: %s", bad[i].why,
			want_ok ? "accepted" : "rejected with a reason");
	}
	static const char *const odd[] = {
		"{\"next_batch\":\"s\",\"rooms\":null,\"to_device\":[],\"device_lists\":\"x\"}",
		"{\"next_batch\":\"s\",\"rooms\":{\"join\":[1,2,3],\"invite\":{\"!a:b\":5}}}",
		"{\"next_batch\":\"s\",\"rooms\":{\"join\":{\"!a:b\":{\"timeline\":{\"events\":[null,1,\"x\",[],{\"type\":7}]}}}}}",
		("{\"next_batch\":\"s\",\"rooms\":{\"join\":{\"!a:b\":{\"timeline\":{\"events\":[{\"type\":\"m.room.message\","
		"\"content\":{\"body\":7,\"msgtype\":[],\"m.relates_to\":\"x\",\"m.mentions\":{\"user_ids\":\"x\"}},"
		"\"origin_server_ts\":1e300,\"event_id\":{}}]}}}}}"),
		("{\"next_batch\":\"s\",\"device_one_time_keys_count\":{\"signed_curve25519\":\"many\"},"
		"\"device_unused_fallback_key_types\":[1,null]}"),
	};
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
		T_OK(parse(odd[i], &nb, &st, &err) == 0, "wrong types in place %zu: parsed, odd parts skipped", i + 1);

	/* 3000 nested arrays: cJSON's nesting limit, not our stack */
	struct buf deep;
	buf_init(&deep);
	buf_adds(&deep, "{\"next_batch\":\"s\",\"x\":");
	for (int i = 0; i < 3000; i++)
		buf_addc(&deep, '[');
	for (int i = 0; i < 3000; i++)
		buf_addc(&deep, ']');
	buf_addc(&deep, '}');
	T_OK(parse(deep.s, &nb, &st, &err) < 0, "3000 levels of nesting: refused, no crash");
	buf_free(&deep);
	buf_free(&nb);
	buf_free(&err);
}

static void
test_huge(void)
{
	/* about 24 MB: 300 rooms of 50 events with 1.5 KiB bodies */
	struct buf j, nb, err;
	buf_init(&j);
	buf_init(&nb);
	buf_init(&err);
	char body[1536];
	memset(body, 'k', sizeof body - 1);
	body[sizeof body - 1] = '\0';
	buf_adds(&j, "{\"next_batch\":\"big\",\"rooms\":{\"join\":{");
	for (int r = 0; r < 300; r++) {
		buf_printf(&j, "%s\"!r%d:x\":{\"timeline\":{\"events\":[", r ? "," : "", r);
		for (int e = 0; e < 50; e++)
			buf_printf(&j, "%s{\"type\":\"m.room.message\",\"event_id\":\"$%d_%d\",\"sender\":\"@a:x\","
				"\"origin_server_ts\":1,\"content\":{\"msgtype\":\"m.text\",\"body\":\"%s\"}}", e ? "," : "", r, e, body);
		buf_adds(&j, "]}}");
	}
	buf_adds(&j, "}}}");
	struct mx_sync_stats st;
	calls = 0;
	int rc = matrix_sync_parse(j.s, j.len, &counter, NULL, &nb, &st, &err);
	T_OK(rc == 0 && st.rooms == 300 && st.events == 15000, "a %zu MB response: 300 rooms, 15000 events", j.len >> 20);
	buf_free(&j);
	buf_free(&nb);
	buf_free(&err);
}

/* Parses one event from JSON for the tests below; the tree is the caller's. */
static cJSON *
event(const char *json, struct mx_event *ev)
{
	cJSON *j = cJSON_Parse(json);
	matrix_event_parse(j, false, ev);
	return j;
}

static void
test_skip_and_text(void)
{
	static const struct { const char *json, *want; } cases[] = {
		{ "{\"type\":\"m.room.message\",\"event_id\":\"$1\",\"sender\":\"@a:x\",\"content\":{\"msgtype\":\"m.text\",\"body\":\"hi\"}}", NULL },
		{ "{\"type\":\"m.room.message\",\"event_id\":\"$1\",\"sender\":\"@a:x\",\"content\":{\"msgtype\":\"m.notice\",\"body\":\"hi\"}}", "a notice" },
		{ "{\"type\":\"m.room.message\",\"event_id\":\"$1\",\"sender\":\"" OWN "\",\"content\":{\"msgtype\":\"m.text\",\"body\":\"hi\"}}", "our own" },
		{ "{\"type\":\"m.room.message\",\"event_id\":\"$1\",\"sender\":\"@a:x\",\"content\":{\"msgtype\":\"m.text\",\"body\":\"* hi\",\"m.relates_to\":{\"rel_type\":\"m.replace\",\"event_id\":\"$0\"}}}", "an edit" },
		{ "{\"type\":\"m.room.message\",\"event_id\":\"$1\",\"sender\":\"@a:x\",\"content\":{},\"unsigned\":{\"redacted_because\":{}}}", "redacted" },
		{ "{\"type\":\"m.room.message\",\"event_id\":\"$1\",\"sender\":\"@a:x\",\"content\":{\"msgtype\":\"m.image\",\"body\":\"knee.jpg\"}}", "not text" },
		{ "{\"type\":\"m.room.message\",\"event_id\":\"$1\",\"sender\":\"@a:x\",\"content\":{\"msgtype\":\"m.emote\",\"body\":\"limps\"}}", "an emote" },
		{ "{\"type\":\"m.room.message\",\"sender\":\"@a:x\",\"content\":{\"msgtype\":\"m.text\",\"body\":\"hi\"}}", "malformed" },
		{ "{\"type\":\"m.room.redaction\",\"event_id\":\"$1\",\"sender\":\"@a:x\",\"content\":{}}", "not a message" },
		{ "{\"type\":\"m.room.message\",\"event_id\":\"$1\",\"sender\":\"@a:x\",\"content\":{\"msgtype\":\"m.text\"}}", "no msgtype or body" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct mx_event ev;
		cJSON *j = event(cases[i].json, &ev);
		const char *why = matrix_event_skip(&ev, OWN);
		bool ok = cases[i].want ? why && strncmp(why, cases[i].want, strlen(cases[i].want)) == 0 : why == NULL;
		T_OK(ok, "skip case %zu: %s", i + 1, cases[i].want ? cases[i].want : "answerable m.text");
		cJSON_Delete(j);
	}

	const char *names[] = { OWN, "Kneebot", "kneebot" };
	static const struct { const char *json, *text; bool addressed; const char *what; } texts[] = {
		{ "{\"type\":\"m.room.message\",\"content\":{\"body\":\"my knee hurts\"}}", "my knee hurts", false, "plain" },
		{ "{\"type\":\"m.room.message\",\"content\":{\"body\":\"Kneebot: my knee hurts\"}}", "my knee hurts", true, "display name first" },
		{ "{\"type\":\"m.room.message\",\"content\":{\"body\":\"" OWN " my knee\"}}", "my knee", true, "full user id first" },
		{ "{\"type\":\"m.room.message\",\"content\":{\"body\":\"hey @kneebot what is ITBS?\"}}", "hey  what is ITBS?", true, "an @mention inside (address_strip leaves the space)" },
		{ "{\"type\":\"m.room.message\",\"content\":{\"body\":\"kneebotting is fun\"}}", "kneebotting is fun", false, "the name inside a word" },
		{ "{\"type\":\"m.room.message\",\"content\":{\"body\":\"what now\",\"m.mentions\":{\"user_ids\":[\"@x:y\",\"" OWN "\"]}}}", "what now", true, "m.mentions lists the bot" },
		{ "{\"type\":\"m.room.message\",\"content\":{\"body\":\"> <@a:x> quoted\\n> more\\n\\nthe reply\",\"m.relates_to\":{\"m.in_reply_to\":{\"event_id\":\"$q\"}}}}", "the reply", false, "reply fallback stripped" },
		{ "{\"type\":\"m.room.message\",\"content\":{\"body\":\"> just a quote I typed\\nand text\"}}", "> just a quote I typed\nand text", false, "a quote without a reply is kept" },
		{ "{\"type\":\"m.room.message\",\"content\":{\"body\":\"> only quote\",\"m.relates_to\":{\"m.in_reply_to\":{\"event_id\":\"$q\"}}}}", "> only quote", false, "a reply that is all quote keeps it" },
	};
	struct buf out;
	buf_init(&out);
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		struct mx_event ev;
		cJSON *j = event(texts[i].json, &ev);
		bool a = matrix_event_text(&ev, OWN, names, 3, &out);
		if (!T_OK(a == texts[i].addressed && strcmp(out.s, texts[i].text) == 0, "text: %s", texts[i].what))
			printf("# got addressed=%d '%s'\n", a, out.s);
		cJSON_Delete(j);
	}
	buf_free(&out);
}

static void
test_reply(void)
{
	struct buf out;
	buf_init(&out);
	struct mx_reply r = { "Line one \"quoted\"\n- two\tthree", "<p>Line one</p><ul><li>two</li></ul>", "$q", "@alice:x", NULL };
	matrix_reply_content(&r, &out);
	cJSON *j = cJSON_Parse(out.s);
	const cJSON *rel = cJSON_GetObjectItemCaseSensitive(j, "m.relates_to");
	const cJSON *irt = cJSON_GetObjectItemCaseSensitive(rel, "m.in_reply_to");
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "m.mentions"), "user_ids");
	T_OK(j && strcmp(cJSON_GetObjectItemCaseSensitive(j, "msgtype")->valuestring, "m.notice") == 0
		&& strcmp(cJSON_GetObjectItemCaseSensitive(j, "body")->valuestring, r.text) == 0
		&& strcmp(cJSON_GetObjectItemCaseSensitive(j, "format")->valuestring, "org.matrix.custom.html") == 0
		&& strcmp(cJSON_GetObjectItemCaseSensitive(j, "formatted_body")->valuestring, r.html) == 0,
		"reply: m.notice with body and HTML formatted_body");
	T_OK(irt && strcmp(cJSON_GetObjectItemCaseSensitive(irt, "event_id")->valuestring, "$q") == 0
		&& !cJSON_GetObjectItemCaseSensitive(rel, "rel_type") && cJSON_GetArraySize(ids) == 1
		&& strcmp(cJSON_GetArrayItem(ids, 0)->valuestring, "@alice:x") == 0,
		"reply: m.in_reply_to the question, m.mentions the asker");
	cJSON_Delete(j);

	r.thread_root = "$root";
	matrix_reply_content(&r, &out);
	j = cJSON_Parse(out.s);
	rel = cJSON_GetObjectItemCaseSensitive(j, "m.relates_to");
	T_OK(strcmp(cJSON_GetObjectItemCaseSensitive(rel, "rel_type")->valuestring, "m.thread") == 0
		&& strcmp(cJSON_GetObjectItemCaseSensitive(rel, "event_id")->valuestring, "$root") == 0
		&& cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(rel, "is_falling_back"))
		&& cJSON_GetObjectItemCaseSensitive(rel, "m.in_reply_to"), "reply in a thread stays in the thread");
	cJSON_Delete(j);

	/* 200 KB of text with quotes and multibyte characters: cut to fit, still valid */
	struct buf big;
	buf_init(&big);
	while (big.len < 200000)
		buf_adds(&big, "\"Kn\xc3\xa4\xe2\x80\x94 ice\"\n");
	struct mx_reply h = { big.s, big.s, "$q", "@alice:x", NULL };
	matrix_reply_content(&h, &out);
	j = cJSON_Parse(out.s);
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(j, "body");
	T_OK(out.len <= MX_MAX_CONTENT && j && cJSON_IsString(body) && utf8_valid(body->valuestring, strlen(body->valuestring))
		&& strstr(body->valuestring, "too long") && !cJSON_GetObjectItemCaseSensitive(j, "formatted_body"),
		"a 200 KB answer is cut to %zu bytes (limit %d), valid UTF-8, with a note", out.len, MX_MAX_CONTENT);
	cJSON_Delete(j);
	buf_free(&big);

	struct mx_reply bad = { "bad \xff\xfe bytes \xc3", NULL, "$q", NULL, NULL };
	matrix_reply_content(&bad, &out);
	j = cJSON_Parse(out.s);
	body = cJSON_GetObjectItemCaseSensitive(j, "body");
	T_OK(cJSON_IsString(body) && utf8_valid(body->valuestring, strlen(body->valuestring))
		&& strstr(body->valuestring, "\xef\xbf\xbd") && !cJSON_GetObjectItemCaseSensitive(j, "format"),
		"invalid UTF-8 in an answer becomes U+FFFD; no HTML when there is none");
	cJSON_Delete(j);
	buf_free(&out);
}

static void
test_classify(void)
{
	static const struct {
		long status;
		const char *body;
		int64_t header;
		enum mx_outcome want;
		int64_t retry;
		bool soft;
		const char *what;
	} cases[] = {
		{ 200, "{\"event_id\":\"$x\"}", -1, MX_OK, 0, false, "200" },
		{ 0, "", -1, MX_RETRY, 0, false, "transfer failed" },
		{ 502, "<html>bad gateway</html>", -1, MX_RETRY, 0, false, "502 with HTML" },
		{ 500, "{\"errcode\":\"M_UNKNOWN\",\"error\":\"x\"}", -1, MX_RETRY, 0, false, "500 M_UNKNOWN" },
		{ 429, "{\"errcode\":\"M_LIMIT_EXCEEDED\",\"retry_after_ms\":2000}", -1, MX_RATE, 2000, false, "429 retry_after_ms" },
		{ 429, "{\"errcode\":\"M_LIMIT_EXCEEDED\",\"retry_after_ms\":2000}", 5000, MX_RATE, 5000, false, "429: the larger of Retry-After and retry_after_ms" },
		{ 429, "{\"errcode\":\"M_LIMIT_EXCEEDED\",\"retry_after_ms\":9000}", 5000, MX_RATE, 9000, false, "429: the larger, the other way" },
		{ 429, "", -1, MX_RATE, 5000, false, "429 without a hint waits 5 s" },
		{ 429, "{\"retry_after_ms\":1e12}", -1, MX_RATE, 3600000, false, "429 absurd wait capped at an hour" },
		{ 400, "{\"errcode\":\"M_LIMIT_EXCEEDED\",\"retry_after_ms\":100}", -1, MX_RATE, 100, false, "M_LIMIT_EXCEEDED with another status" },
		{ 401, "{\"errcode\":\"M_UNKNOWN_TOKEN\",\"error\":\"x\",\"soft_logout\":true}", -1, MX_AUTH, 0, true, "401 soft logout" },
		{ 401, "{\"errcode\":\"M_UNKNOWN_TOKEN\",\"error\":\"x\"}", -1, MX_AUTH, 0, false, "401 hard logout" },
		{ 401, "{\"errcode\":\"M_MISSING_TOKEN\"}", -1, MX_AUTH, 0, false, "401 missing token" },
		{ 401, "{\"flows\":[]}", -1, MX_FAIL, 0, false, "401 interactive auth is not a logout" },
		{ 403, "{\"errcode\":\"M_FORBIDDEN\",\"error\":\"not in room\"}", -1, MX_FAIL, 0, false, "403" },
		{ 404, "not json", -1, MX_FAIL, 0, false, "404 without JSON" },
		{ 408, "", -1, MX_RETRY, 0, false, "408 timeout" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct mx_error e;
		matrix_classify(cases[i].status, cases[i].body, strlen(cases[i].body), cases[i].header, &e);
		T_OK(e.outcome == cases[i].want && e.retry_ms == cases[i].retry && e.soft_logout == cases[i].soft,
			"classify: %s", cases[i].what);
	}
	bool in_range = true;
	static const int64_t base[] = { 0, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000 };
	for (unsigned f = 1; f < 10; f++) {
		int64_t lo = matrix_backoff_ms(f, 0.0), hi = matrix_backoff_ms(f, 0.999999);
		in_range &= lo == base[f] * 8 / 10 && hi <= base[f] * 12 / 10 && hi >= base[f] * 119 / 100;
	}
	T_OK(in_range, "backoff 1 s doubling to 60 s, jitter within +-20 %%");
}

/* A /messages page read backwards: walked oldest first, with the token to go on from. */
static void
page_event(void *arg, const struct mx_room *r, const struct mx_event *ev)
{
	struct buf *seen = arg;
	buf_printf(seen, "%s%s@%s", seen->len ? "," : "", ev->event_id ? ev->event_id : "-", r->id);
}

static void
test_page(void)
{
	static const struct mx_sync_visitor v = { .event = page_event };
	struct buf seen, end, err;
	buf_init(&seen);
	buf_init(&end);
	buf_init(&err);
	const char *page = "{\"chunk\":[{\"type\":\"m.room.message\",\"event_id\":\"$3\"},7,"
		"{\"type\":\"m.room.message\",\"event_id\":\"$2\"},{\"no\":1},"
		"{\"type\":\"m.room.encrypted\",\"event_id\":\"$1\"}],\"start\":\"p9\",\"end\":\"p4\"}";
	struct mx_sync_stats st;
	long n = matrix_page_parse(page, strlen(page), "!r:x", &v, &seen, &end, &st, &err);
	T_OK(n == 5 && strcmp(seen.s, "$1@!r:x,$2@!r:x,$3@!r:x") == 0 && st.events == 3 && st.skipped == 2,
		"a page is walked oldest first as the room's timeline, odd entries skipped (%s)", seen.s);
	T_OK(strcmp(end.s, "p4") == 0, "the token to read on from");
	buf_clear(&seen);
	const char *last = "{\"chunk\":[],\"start\":\"p4\"}";
	T_OK(matrix_page_parse(last, strlen(last), "!r:x", &v, &seen, &end, NULL, &err) == 0 && end.len == 0,
		"the last page: no events, no end");
	static const char *const bad[] = { "", "[]", "{\"end\":\"p1\"}", "{\"chunk\":{}}", "{\"chunk\":[" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		buf_clear(&err);
		buf_clear(&seen);
		long rc = matrix_page_parse(bad[i], strlen(bad[i]), "!r:x", &v, &seen, &end, NULL, &err);
		T_OK(rc < 0 && err.len && seen.len == 0, "a bad page is refused with a reason before any event: '%s' (%s)",
			bad[i], err.len ? err.s : "");
	}
	buf_free(&seen);
	buf_free(&end);
	buf_free(&err);
}

int
main(void)
{
	log_init(LOG_LVL_WARN, "matrix_sync_test");
	test_fixture();
	test_malformed();
	test_huge();
	test_skip_and_text();
	test_reply();
	test_classify();
	test_page();
	T_EXIT();
}
