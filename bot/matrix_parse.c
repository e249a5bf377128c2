/* matrix_parse.c: Matrix JSON to values: /sync walked, events judged, reply content, errors classified, backoff; pure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "buf.h"
#include "matrix.h"
#include "matrix_parse.h"

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 60000
#define RATE_DEFAULT_MS 5000
#define RATE_MAX_MS 3600000
#define CUT_NOTE "\n[cut: too long for one Matrix message]"

bool
matrix_event_parse(const cJSON *obj, bool state, struct mx_event *ev)
{
	memset(ev, 0, sizeof *ev);
	ev->type = jstr(obj, "type");
	if (!ev->type)
		return false;
	ev->raw = obj;
	ev->state = state;
	ev->event_id = jstr(obj, "event_id");
	ev->sender = jstr(obj, "sender");
	ev->state_key = jstr(obj, "state_key");
	ev->ts_ms = jint(obj, "origin_server_ts", 0);
	ev->redacted = jget(jobj(obj, "unsigned"), "redacted_because") != NULL;
	const cJSON *c = jobj(obj, "content");
	ev->content = c;
	ev->msgtype = jstr(c, "msgtype");
	ev->body = jstr(c, "body");
	ev->body_len = ev->body ? strlen(ev->body) : 0;
	const cJSON *rel = jobj(c, "m.relates_to");
	ev->rel_type = jstr(rel, "rel_type");
	ev->rel_event = jstr(rel, "event_id");
	ev->in_reply_to = jstr(jobj(rel, "m.in_reply_to"), "event_id");
	ev->mention_ids = jarr(jobj(c, "m.mentions"), "user_ids");
	ev->membership = jstr(c, "membership");
	ev->displayname = jstr(c, "displayname");
	return true;
}

struct walk {
	const struct mx_sync_visitor *v;
	void *arg;
	struct mx_sync_stats *st;
};

static void
walk_events(struct walk *w, const struct mx_room *r, const cJSON *arr, bool state)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, arr) {
		struct mx_event ev;
		if (!matrix_event_parse(e, state, &ev)) {
			w->st->skipped++;
			continue;
		}
		w->st->events++;
		if (w->v->event)
			w->v->event(w->arg, r, &ev);
	}
}

static void
walk_room(struct walk *w, const cJSON *room, enum mx_membership section)
{
	if (!room->string || !cJSON_IsObject(room)) {
		w->st->skipped++;
		return;
	}
	const cJSON *summary = jobj(room, "summary");
	const cJSON *tl = jobj(room, "timeline");
	struct mx_room r = {
		.id = room->string, .section = section,
		.joined = jint(summary, "m.joined_member_count", -1),
		.invited = jint(summary, "m.invited_member_count", -1),
		.limited = cJSON_IsTrue(jget(tl, "limited")),
		.prev_batch = jstr(tl, "prev_batch"),
		.timeline = jarr(tl, "events"),
	};
	w->st->rooms++;
	if (w->v->room)
		w->v->room(w->arg, &r);
	if (section == MX_INVITE) {
		walk_events(w, &r, jarr(jobj(room, "invite_state"), "events"), true);
	} else {
		walk_events(w, &r, jarr(jobj(room, "state"), "events"), true);
		walk_events(w, &r, r.timeline, false);
	}
	if (w->v->room_end)
		w->v->room_end(w->arg, &r);
}

/* Collects the strings of an array into a NULL-free list; non-strings are skipped. */
static size_t
string_list(const cJSON *arr, const char ***out)
{
	size_t n = 0, cap = (size_t)cJSON_GetArraySize(arr);
	const char **v = cap ? xcalloc(cap, sizeof *v) : NULL;
	const cJSON *e;
	cJSON_ArrayForEach(e, arr)
		if (cJSON_IsString(e) && n < cap)
			v[n++] = e->valuestring;
	*out = v;
	return n;
}

static void
walk_crypto(struct walk *w, const cJSON *root)
{
	const cJSON *td = jarr(jobj(root, "to_device"), "events");
	size_t cap = (size_t)cJSON_GetArraySize(td), n = 0;
	struct mx_to_device *tdv = cap ? xcalloc(cap, sizeof *tdv) : NULL;
	const cJSON *e;
	cJSON_ArrayForEach(e, td) {
		const char *type = jstr(e, "type"), *sender = jstr(e, "sender");
		if (!type || !sender || n >= cap) {
			w->st->skipped++;
			continue;
		}
		tdv[n++] = (struct mx_to_device){ type, sender, jobj(e, "content") };
	}
	const cJSON *dl = jobj(root, "device_lists");
	const cJSON *fb = jarr(root, "device_unused_fallback_key_types");
	struct mx_crypto c = {
		.to_device = tdv, .n_to_device = n,
		.otk_signed_curve25519 = jint(jobj(root, "device_one_time_keys_count"), "signed_curve25519", 0),
		.fallback_known = fb != NULL,
	};
	c.nchanged = string_list(jarr(dl, "changed"), &c.changed);
	c.nleft = string_list(jarr(dl, "left"), &c.left);
	cJSON_ArrayForEach(e, fb)
		c.fallback_unused |= cJSON_IsString(e) && strcmp(e->valuestring, "signed_curve25519") == 0;
	if (w->v->crypto)
		w->v->crypto(w->arg, &c);
	free(tdv);
	free(c.changed);
	free(c.left);
}

/* A server's answer as a JSON object, or NULL with the reason in err. */
static cJSON *
parse_object(const char *json, size_t len, struct buf *err)
{
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, false);
	if (!root) {
		size_t at = end && end >= json ? (size_t)(end - json) : 0;
		buf_printf(err, "not valid JSON (%zu bytes, error near byte %zu)", len, at);
		return NULL;
	}
	if (!cJSON_IsObject(root)) {
		buf_adds(err, "not a JSON object");
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

int
matrix_sync_parse(const char *json, size_t len, const struct mx_sync_visitor *v, void *arg,
	struct buf *next_batch, struct mx_sync_stats *stats, struct buf *err)
{
	struct mx_sync_stats dummy;
	struct walk w = { v, arg, stats ? stats : &dummy };
	memset(w.st, 0, sizeof *w.st);
	cJSON *root = parse_object(json, len, err);
	if (!root)
		return -1;
	const char *nb = jstr(root, "next_batch");
	if (!nb || !*nb) {
		buf_adds(err, "no next_batch");
		cJSON_Delete(root);
		return -1;
	}
	buf_clear(next_batch);
	buf_adds(next_batch, nb);
	walk_crypto(&w, root);
	const cJSON *rooms = jobj(root, "rooms");
	static const struct { const char *key; enum mx_membership m; } sections[] = {
		{ "invite", MX_INVITE }, { "leave", MX_LEAVE }, { "join", MX_JOIN },
	};
	for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
		const cJSON *room;
		cJSON_ArrayForEach(room, jobj(rooms, sections[i].key))
			walk_room(&w, room, sections[i].m);
	}
	cJSON_Delete(root);
	return 0;
}

long
matrix_page_parse(const char *json, size_t len, const char *room_id, const struct mx_sync_visitor *v,
	void *arg, struct buf *end, struct mx_sync_stats *stats, struct buf *err)
{
	struct mx_sync_stats dummy;
	struct mx_sync_stats *st = stats ? stats : &dummy;
	memset(st, 0, sizeof *st);
	cJSON *root = parse_object(json, len, err);
	if (!root)
		return -1;
	const cJSON *chunk = jarr(root, "chunk");
	if (!chunk) {
		buf_adds(err, "no chunk");
		cJSON_Delete(root);
		return -1;
	}
	const char *tok = jstr(root, "end");
	buf_clear(end);
	if (tok)
		buf_adds(end, tok);
	struct mx_room r = { .id = room_id, .section = MX_JOIN, .joined = -1, .invited = -1, .timeline = chunk };
	/* newest first on the wire: walked backwards, so answered in the order they were written */
	size_t n = 0, cap = (size_t)cJSON_GetArraySize(chunk);
	const cJSON **evs = cap ? xcalloc(cap, sizeof *evs) : NULL;
	const cJSON *e;
	cJSON_ArrayForEach(e, chunk)
		if (n < cap)
			evs[n++] = e;
	for (size_t i = n; i-- > 0;) {
		struct mx_event mev;
		if (!matrix_event_parse(evs[i], false, &mev)) {
			st->skipped++;
			continue;
		}
		st->events++;
		if (v->event)
			v->event(arg, &r, &mev);
	}
	free(evs);
	cJSON_Delete(root);
	return (long)n;
}

const char *
matrix_event_skip(const struct mx_event *ev, const char *own_user)
{
	static const struct { const char *msgtype, *why; } not_text[] = {
		{ "m.notice", "a notice (bots never answer notices)" },
		{ "m.emote", "an emote" },
	};
	if (!ev->event_id || !ev->sender)
		return "malformed (no event_id or sender)";
	if (own_user && strcmp(ev->sender, own_user) == 0)
		return "our own";
	if (strcmp(ev->type, "m.room.message") != 0)
		return "not a message";
	if (ev->redacted)
		return "redacted";
	if (ev->rel_type && strcmp(ev->rel_type, "m.replace") == 0)
		return "an edit";
	if (!ev->msgtype || !ev->body)
		return "no msgtype or body";
	for (size_t i = 0; i < sizeof not_text / sizeof not_text[0]; i++)
		if (strcmp(ev->msgtype, not_text[i].msgtype) == 0)
			return not_text[i].why;
	if (strcmp(ev->msgtype, "m.text") != 0)
		return "not text";
	return NULL;
}

/* Length of the reply fallback at the start of body: "> " lines and the blank line after. */
static size_t
fallback_len(const char *body, size_t n)
{
	size_t i = 0;
	while (i < n && body[i] == '>') {
		const char *nl = memchr(body + i, '\n', n - i);
		if (!nl)
			return 0;   /* nothing but quote: keep it */
		i = (size_t)(nl - body) + 1;
	}
	if (i == 0)
		return 0;
	if (i < n && body[i] == '\n')
		i++;
	return i;
}

static bool
mentions(const cJSON *ids, const char *user)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, ids)
		if (cJSON_IsString(e) && user && strcmp(e->valuestring, user) == 0)
			return true;
	return false;
}

bool
matrix_event_text(const struct mx_event *ev, const char *own_user, const char *const *names,
	size_t nnames, struct buf *out)
{
	const char *body = ev->body ? ev->body : "";
	size_t n = ev->body ? ev->body_len : 0;
	if (ev->in_reply_to) {
		size_t skip = fallback_len(body, n);
		body += skip;
		n -= skip;
	}
	bool addressed = mentions(ev->mention_ids, own_user);
	struct buf a, b;
	buf_init(&a);
	buf_init(&b);
	buf_add(&a, body, n);
	/* longest names first (the full user id before its localpart) is the caller's order */
	for (size_t i = 0; i < nnames; i++) {
		if (!names[i] || !*names[i])
			continue;
		if (address_strip(a.s, a.len, names[i], &b)) {
			addressed = true;
			struct buf tmp = a;
			a = b;
			b = tmp;
		}
	}
	buf_clear(out);
	buf_add(out, a.s, a.len);
	buf_free(&a);
	buf_free(&b);
	return addressed;
}

/* Copies s with every invalid UTF-8 sequence replaced by U+FFFD: servers reject invalid JSON strings. */
static char *
valid_utf8(const char *s, size_t n)
{
	struct buf b;
	buf_init(&b);
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		size_t l = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
		if (i + l <= n && utf8_valid(s + i, l) && c != 0) {
			buf_add(&b, s + i, l);
			i += l;
		} else {
			buf_adds(&b, "\xef\xbf\xbd");
			i++;
		}
	}
	return buf_take(&b);
}

static void
reply_json(const struct mx_reply *r, const char *text, const char *html, struct buf *out)
{
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "msgtype", "m.notice");
	cJSON_AddStringToObject(c, "body", text);
	if (html) {
		cJSON_AddStringToObject(c, "format", "org.matrix.custom.html");
		cJSON_AddStringToObject(c, "formatted_body", html);
	}
	cJSON *rel = cJSON_AddObjectToObject(c, "m.relates_to");
	if (r->thread_root) {
		cJSON_AddStringToObject(rel, "rel_type", "m.thread");
		cJSON_AddStringToObject(rel, "event_id", r->thread_root);
		cJSON_AddBoolToObject(rel, "is_falling_back", false);
	}
	cJSON_AddStringToObject(cJSON_AddObjectToObject(rel, "m.in_reply_to"), "event_id", r->in_reply_to);
	cJSON *ids = cJSON_AddArrayToObject(cJSON_AddObjectToObject(c, "m.mentions"), "user_ids");
	if (r->mention)
		cJSON_AddItemToArray(ids, cJSON_CreateString(r->mention));
	char *s = cJSON_PrintUnformatted(c);
	cJSON_Delete(c);
	buf_clear(out);
	buf_adds(out, s);
	free(s);
}

void
matrix_reply_content(const struct mx_reply *r, struct buf *out)
{
	char *text = valid_utf8(r->text, strlen(r->text));
	char *html = r->html ? valid_utf8(r->html, strlen(r->html)) : NULL;
	reply_json(r, text, html, out);
	if (out->len > MX_MAX_CONTENT && html) {
		/* the plain body alone is still the whole answer */
		reply_json(r, text, NULL, out);
	}
	size_t keep = strlen(text);
	while (out->len > MX_MAX_CONTENT && keep > 0) {
		/* escaping may inflate the text: shrink in proportion, with a margin */
		keep = utf8_cut(text, keep, keep * (MX_MAX_CONTENT - 512) / out->len);
		struct buf cut;
		buf_init(&cut);
		buf_add(&cut, text, keep);
		buf_adds(&cut, CUT_NOTE);
		reply_json(r, cut.s, NULL, out);
		buf_free(&cut);
	}
	free(text);
	free(html);
}

void
matrix_classify(long status, const char *body, size_t len, int64_t retry_after_ms, struct mx_error *e)
{
	memset(e, 0, sizeof *e);
	e->status = status;
	cJSON *j = status && body ? cJSON_ParseWithLength(body, len) : NULL;
	const char *code = jstr(j, "errcode"), *msg = jstr(j, "error");
	snprintf(e->errcode, sizeof e->errcode, "%s", code ? code : "");
	snprintf(e->error, sizeof e->error, "%s", msg ? msg : "");
	e->soft_logout = cJSON_IsTrue(jget(j, "soft_logout"));
	int64_t body_ms = jint(j, "retry_after_ms", -1);
	cJSON_Delete(j);
	if (status == 0 || status >= 500 || status == 408) {
		e->outcome = MX_RETRY;
	} else if (status >= 200 && status < 300) {
		e->outcome = MX_OK;
	} else if (status == 429 || strcmp(e->errcode, "M_LIMIT_EXCEEDED") == 0) {
		e->outcome = MX_RATE;
		e->retry_ms = retry_after_ms > body_ms ? retry_after_ms : body_ms;
		if (e->retry_ms <= 0)
			e->retry_ms = RATE_DEFAULT_MS;
		if (e->retry_ms > RATE_MAX_MS)
			e->retry_ms = RATE_MAX_MS;
	} else if (status == 401 && (strcmp(e->errcode, "M_UNKNOWN_TOKEN") == 0
			|| strcmp(e->errcode, "M_MISSING_TOKEN") == 0)) {
		e->outcome = MX_AUTH;
	} else {
		e->outcome = MX_FAIL;
	}
}

int64_t
matrix_backoff_ms(unsigned failures, double rnd)
{
	int64_t d = BACKOFF_FIRST_MS;
	for (unsigned i = 1; i < failures && d < BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	return (int64_t)((double)d * (0.8 + 0.4 * rnd));
}

int
matrix_own_join_index(const cJSON *timeline, const char *user)
{
	int i = 0, at = -1;
	const cJSON *e;
	cJSON_ArrayForEach(e, timeline) {
		const char *type = jstr(e, "type"), *key = jstr(e, "state_key");
		const char *ms = jstr(jobj(e, "content"), "membership");
		const char *prev = jstr(jobj(jobj(e, "unsigned"), "prev_content"), "membership");
		if (type && key && ms && strcmp(type, "m.room.member") == 0 && strcmp(key, user) == 0
			&& strcmp(ms, "join") == 0 && !(prev && strcmp(prev, "join") == 0))
			at = i;
		if (type)
			i++;   /* matches the events walk_events hands on */
	}
	return at;
}
