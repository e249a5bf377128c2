/*
 * e2ee_test.c: bot/e2ee.c without a server.  The pure parsers on good and
 * hostile input, then the engine against a peer made with crypto.h
 * (tests/fuzz/e2ee_cast.h): room keys over Olm, Megolm decryption with the
 * replay, room, sender and payload checks, events parked until their key,
 * the lower first index kept, withheld notices, sealing a reply (the key
 * shared over Olm first, m.relates_to outside the ciphertext), rotation when
 * a member leaves, and a wedged Olm session replaced with m.dummy.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/e2ee_cast.h"
#include "t.h"

static struct cast c;

/* ---------- pure parts ---------- */

static void
test_parsers(void)
{
	static const struct { const char *json; bool ok; const char *what; } olm_cases[] = {
		{ "{\"algorithm\":\"m.olm.v1.curve25519-aes-sha2\",\"sender_key\":\"%s\",\"ciphertext\":{\"%s\":{\"type\":0,\"body\":\"AwoA\"}}}",
			true, "a pre-key message for us" },
		{ "{\"algorithm\":\"m.megolm.v1.aes-sha2\",\"sender_key\":\"%s\",\"ciphertext\":{\"%s\":{\"type\":0,\"body\":\"x\"}}}",
			false, "Megolm is not Olm" },
		{ "{\"algorithm\":\"m.olm.v1.curve25519-aes-sha2\",\"sender_key\":\"%s\",\"ciphertext\":{\"%s\":{\"type\":2,\"body\":\"x\"}}}",
			false, "type 2" },
		{ "{\"algorithm\":\"m.olm.v1.curve25519-aes-sha2\",\"sender_key\":\"%s\",\"ciphertext\":{\"%s\":{\"type\":0.5,\"body\":\"x\"}}}",
			false, "type 0.5" },
		{ "{\"algorithm\":\"m.olm.v1.curve25519-aes-sha2\",\"sender_key\":\"%s\",\"ciphertext\":{\"%sX\":{\"type\":1,\"body\":\"x\"}}}",
			false, "for another device" },
		{ "{\"algorithm\":\"m.olm.v1.curve25519-aes-sha2\",\"sender_key\":\"%s\",\"ciphertext\":{\"%s\":{\"type\":1}}}",
			false, "no body" },
		{ "{\"algorithm\":\"m.olm.v1.curve25519-aes-sha2\",\"sender_key\":\"short%s\",\"ciphertext\":{\"%s\":{\"type\":1,\"body\":\"x\"}}}",
			false, "a malformed sender_key" },
	};
	const char *key = "JGLn/yafz74HB2AbPLYJWIVGnKAtqECOBf11yyXac2Y";
	for (size_t i = 0; i < sizeof olm_cases / sizeof olm_cases[0]; i++) {
		char buf[512];
		snprintf(buf, sizeof buf, olm_cases[i].json, key, key);
		cJSON *j = cJSON_Parse(buf);
		struct e2ee_olm_msg m;
		const char *why;
		int rc = e2ee_olm_parse(j, key, &m, &why);
		T_OK((rc == 0) == olm_cases[i].ok && (rc < 0 || (m.type == 0 && strcmp(m.body, "AwoA") == 0)),
			"Olm content: %s %s%s%s", olm_cases[i].what, olm_cases[i].ok ? "accepted" : "refused",
			rc < 0 ? ": " : "", rc < 0 ? why : "");
		cJSON_Delete(j);
	}

	static const struct { const char *json; const char *why; } payloads[] = {
		{ "{\"type\":\"m.room_key\",\"content\":{},\"sender\":\"@a:x\",\"recipient\":\"@b:x\",\"recipient_keys\":{\"ed25519\":\"%s\"},\"keys\":{\"ed25519\":\"%s\"}}", NULL },
		{ "{\"type\":\"m.room_key\",\"content\":{},\"sender\":\"@m:x\",\"recipient\":\"@b:x\",\"recipient_keys\":{\"ed25519\":\"%s\"},\"keys\":{\"ed25519\":\"%s\"}}", "sender" },
		{ "{\"type\":\"m.room_key\",\"content\":{},\"sender\":\"@a:x\",\"recipient\":\"@c:x\",\"recipient_keys\":{\"ed25519\":\"%s\"},\"keys\":{\"ed25519\":\"%s\"}}", "recipient is" },
		{ "{\"type\":\"m.room_key\",\"content\":{},\"sender\":\"@a:x\",\"recipient\":\"@b:x\",\"recipient_keys\":{\"ed25519\":\"x%s\"},\"keys\":{\"ed25519\":\"%s\"}}", "recipient_keys" },
		{ "{\"type\":\"m.room_key\",\"content\":{},\"sender\":\"@a:x\",\"recipient\":\"@b:x\",\"recipient_keys\":{\"ed25519\":\"%s\"},\"keys\":{\"ed\":\"%s\"}}", "ed25519 key" },
		{ "{\"type\":\"m.room_key\",\"content\":[],\"sender\":\"@a:x\",\"recipient\":\"@b:x\",\"recipient_keys\":{\"ed25519\":\"%s\"},\"keys\":{\"ed25519\":\"%s\"}}", "content" },
		{ "[\"%s\",\"%s\"]", "object" },
	};
	for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
		char buf[512];
		snprintf(buf, sizeof buf, payloads[i].json, key, key);
		struct e2ee_olm_payload p;
		const char *why;
		int rc = e2ee_olm_payload_check(buf, strlen(buf), "@a:x", "@b:x", key, &p, &why);
		T_OK(payloads[i].why ? rc < 0 && strstr(why, payloads[i].why) : rc == 0 && strcmp(p.type, "m.room_key") == 0,
			"Olm payload %zu: %s", i, payloads[i].why ? payloads[i].why : "sender, recipient and keys match");
		cJSON_Delete(p.root);
	}

	cJSON *rk = cJSON_Parse("{\"algorithm\":\"m.megolm.v1.aes-sha2\",\"room_id\":\"!r:x\",\"session_id\":"
		"\"JGLn/yafz74HB2AbPLYJWIVGnKAtqECOBf11yyXac2Y\",\"session_key\":\"AgAAAA\"}");
	struct e2ee_room_key k;
	const char *why;
	T_OK(e2ee_room_key_parse(rk, &k, &why) == 0 && strcmp(k.room_id, "!r:x") == 0, "a room key parses");
	cJSON_ReplaceItemInObject(rk, "room_id", cJSON_CreateString("#alias:x"));
	T_OK(e2ee_room_key_parse(rk, &k, &why) < 0, "a room key for an alias is refused");
	cJSON_Delete(rk);

	struct mx_event ev = { .event_id = "$e", .sender = "@a:x", .ts_ms = 5 };
	const char *plain = "{\"type\":\"m.room.message\",\"content\":{\"body\":\"hi\",\"m.relates_to\":{\"rel_type\":\"m.replace\"}},"
		"\"room_id\":\"!r:x\"}";
	cJSON *clear = cJSON_Parse("{\"m.in_reply_to\":{\"event_id\":\"$q\"}}");
	cJSON *out = e2ee_megolm_event(plain, strlen(plain), &ev, "!r:x", clear, &why);
	const cJSON *rel = cJSON_GetObjectItem(cJSON_GetObjectItem(out, "content"), "m.relates_to");
	T_OK(out && cJSON_GetObjectItem(rel, "m.in_reply_to") && !cJSON_GetObjectItem(rel, "rel_type"),
		"the cleartext m.relates_to wins over the payload's (spec: it is outside the encryption)");
	cJSON_Delete(out);
	out = e2ee_megolm_event(plain, strlen(plain), &ev, "!r:x", NULL, &why);
	rel = cJSON_GetObjectItem(cJSON_GetObjectItem(out, "content"), "m.relates_to");
	T_OK(out && cJSON_GetObjectItem(rel, "rel_type"), "without one, the payload's m.relates_to stays (nio sends it so)");
	cJSON_Delete(out);
	out = e2ee_megolm_event(plain, strlen(plain), &ev, "!other:x", clear, &why);
	T_OK(!out && strstr(why, "room_id"), "a payload for another room is refused");
	cJSON_Delete(clear);
}

/* ---------- the engine ---------- */

static cJSON *
message(const char *body)
{
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "msgtype", "m.text");
	cJSON_AddStringToObject(m, "body", body);
	return m;
}

static enum e2ee_in
decrypt(const cJSON *event, const char *room, char **body)
{
	struct mx_event ev;
	cJSON *out = NULL;
	*body = NULL;
	if (!matrix_event_parse(event, false, &ev))
		return E2EE_IN_DROP;
	bool own = !store_in_tx(c.st);
	if (own && store_begin(c.st) < 0)
		return E2EE_IN_ERROR;
	enum e2ee_in r = e2ee_decrypt(c.bot, room, &ev, true, CAST_NOW, &out);
	if (own)
		store_commit(c.st);
	const cJSON *b = cJSON_GetObjectItem(cJSON_GetObjectItem(out, "content"), "body");
	if (cJSON_IsString(b))
		*body = xstrdup(b->valuestring);
	cJSON_Delete(out);
	return r;
}

/* Sends a to-device payload from Alice over Olm, committed. */
static int
olm_send(const char *type, cJSON *content, const char *recipient_ed)
{
	cJSON *ev = cast_olm_event(&c, type, content, recipient_ed), *arr = cJSON_CreateArray();
	cJSON_AddItemToArray(arr, ev);
	int rc = ev ? cast_sync(&c, arr, true) : -1;
	cJSON_Delete(arr);
	cJSON_Delete(content);
	return rc;
}

static void
set_id(cJSON *ev, const char *id)
{
	cJSON_ReplaceItemInObject(ev, "event_id", cJSON_CreateString(id));
}

static int ready_seen;

static void
on_ready(void *arg, const char *room_id, const cJSON *event, bool answer)
{
	(void)arg;
	char *body = NULL;
	ready_seen += answer && strcmp(room_id, CAST_ROOM) == 0 && decrypt(event, room_id, &body) == E2EE_IN_OK
		&& body && strcmp(body, "late") == 0;
	free(body);
}

static void
test_receive(void)
{
	char *body;
	T_OK(olm_send("m.room_key", cast_room_key(&c, c.alice_megolm, CAST_ROOM), NULL) == 0,
		"a room key over an Olm pre-key message is taken");
	cJSON *m = message("my knee hurts"), *ev = cast_room_event(&c, c.alice_megolm, CAST_ROOM, CAST_ROOM, "$1", m);
	T_OK(decrypt(ev, CAST_ROOM, &body) == E2EE_IN_OK && body && strcmp(body, "my knee hurts") == 0,
		"a Megolm event decrypts with it");
	free(body);
	T_OK(decrypt(ev, CAST_ROOM, &body) == E2EE_IN_OK, "the same event again (redelivery) is no replay");
	free(body);
	set_id(ev, "$2");
	T_OK(decrypt(ev, CAST_ROOM, &body) == E2EE_IN_DROP, "the same ciphertext under another event id is refused (replay)");
	free(body);
	set_id(ev, "$3");
	T_OK(decrypt(ev, CAST_ROOM2, &body) == E2EE_IN_DROP, "the ciphertext moved to another room is refused");
	free(body);
	cJSON_Delete(ev);

	ev = cast_room_event(&c, c.alice_megolm, CAST_ROOM, CAST_ROOM, "$4", m);
	cJSON_ReplaceItemInObject(ev, "sender", cJSON_CreateString("@mallory:example.org"));
	T_OK(decrypt(ev, CAST_ROOM, &body) == E2EE_IN_DROP, "an event sent by someone else with Alice's session is refused");
	cJSON_Delete(ev);
	ev = cast_room_event(&c, c.alice_megolm, CAST_ROOM, CAST_ROOM2, "$5", m);
	T_OK(decrypt(ev, CAST_ROOM, &body) == E2EE_IN_DROP, "a payload naming another room is refused");
	cJSON_Delete(ev);
	cJSON_Delete(m);

	/* a second session whose key comes after its message */
	struct crypto_megolm_out *g2 = cast_megolm(&c);
	cJSON *key_early = cast_room_key(&c, g2, CAST_ROOM);
	m = message("late");
	ev = cast_room_event(&c, g2, CAST_ROOM, CAST_ROOM, "$late", m);
	cJSON_Delete(m);
	T_OK(decrypt(ev, CAST_ROOM, &body) == E2EE_IN_WAIT, "an event whose key has not come waits");
	T_OK(store_begin(c.st) == 0 && e2ee_ready(c.bot, on_ready, NULL) == 0 && store_commit(c.st) == 0 && ready_seen == 0,
		"... and is not offered before its key");
	cJSON *key_late = cast_room_key(&c, g2, CAST_ROOM);   /* from index 1 */
	T_OK(olm_send("m.room_key", key_late, NULL) == 0, "a key from a later index arrives");
	T_OK(olm_send("m.room_key", key_early, NULL) == 0, "then the same session's key from index 0");
	T_OK(store_begin(c.st) == 0 && e2ee_ready(c.bot, on_ready, NULL) == 0 && store_commit(c.st) == 0 && ready_seen == 1,
		"the waiting event (index 0) is decrypted once the lower index came");
	olm_send("m.room_key", cast_room_key(&c, g2, CAST_ROOM), NULL);
	T_OK(decrypt(ev, CAST_ROOM, &body) == E2EE_IN_OK && body && strcmp(body, "late") == 0,
		"a later copy of a known key does not replace the earlier one (index 0 still decrypts)");
	free(body);
	cJSON_Delete(ev);
	crypto_megolm_out_free(g2);

	/* keys that must not be taken */
	struct crypto_megolm_out *g3 = cast_megolm(&c);
	cJSON *arr = cJSON_CreateArray(), *plain = cJSON_CreateObject();
	cJSON_AddStringToObject(plain, "type", "m.room_key");
	cJSON_AddStringToObject(plain, "sender", CAST_ALICE);
	cJSON_AddItemToObject(plain, "content", cast_room_key(&c, g3, CAST_ROOM));
	cJSON_AddItemToArray(arr, plain);
	cast_sync(&c, arr, true);
	cJSON_Delete(arr);
	T_OK(olm_send("m.room_key", cast_room_key(&c, g3, CAST_ROOM), c.alice_ed) == 0, "an Olm payload for another recipient key");
	m = message("x");
	ev = cast_room_event(&c, g3, CAST_ROOM, CAST_ROOM, "$g3", m);
	T_OK(decrypt(ev, CAST_ROOM, &body) == E2EE_IN_WAIT, "... and an unencrypted m.room_key are not taken");
	cJSON_Delete(ev);
	cJSON_Delete(m);
	crypto_megolm_out_free(g3);

	cJSON *wh = cJSON_Parse("{\"algorithm\":\"m.megolm.v1.aes-sha2\",\"room_id\":\"" CAST_ROOM "\",\"code\":\"m.unverified\"}");
	arr = cJSON_CreateArray();
	for (int i = 0; i < 2; i++) {
		cJSON *w = cJSON_CreateObject();
		cJSON_AddStringToObject(w, "type", "m.room_key.withheld");
		cJSON_AddStringToObject(w, "sender", CAST_ALICE);
		cJSON_AddItemToObject(w, "content", cJSON_Duplicate(wh, true));
		cJSON_AddItemToArray(arr, w);
	}
	T_OK(cast_sync(&c, arr, true) == 0 && c.notices == 1, "two m.unverified withheld messages: one notice");
	cJSON_Delete(arr);
	cJSON_Delete(wh);
}

/* The bot's to-device body for Alice, decrypted with her outbound session (it has our reply ratchet). */
static cJSON *
alice_reads(const char *body)
{
	cJSON *j = cJSON_Parse(body);
	const cJSON *msg = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "messages"), CAST_ALICE),
		CAST_ALICE_DEV);
	const cJSON *ct = cJSON_GetObjectItem(cJSON_GetObjectItem(msg, "ciphertext"), c.alice_curve);
	const cJSON *t = cJSON_GetObjectItem(ct, "type"), *b = cJSON_GetObjectItem(ct, "body");
	char *plain = NULL;
	size_t n;
	cJSON *p = NULL;
	if (cJSON_IsNumber(t) && cJSON_IsString(b) && crypto_olm_decrypt(c.alice_olm, (enum crypto_olm_type)t->valueint,
			b->valuestring, &plain, &n, c.err) == 0)
		p = cJSON_Parse(plain);
	free(plain);
	cJSON_Delete(j);
	return p;
}

static enum e2ee_seal
seal(struct store_out *o)
{
	store_out_free(o);
	if (store_out_next(c.st, 0, o) != 1)
		return E2EE_SEAL_DROP;
	return e2ee_seal(c.bot, o, CAST_NOW);
}

static void
test_send(void)
{
	struct store_out o = {
		.txn_id = "kbtest1", .kind = "send", .room_id = CAST_ROOM, .event_type = "m.room.message",
		.content = "{\"msgtype\":\"m.notice\",\"body\":\"Ice it.\",\"m.relates_to\":{\"m.in_reply_to\":"
			"{\"event_id\":\"$1\"}},\"m.mentions\":{\"user_ids\":[\"" CAST_ALICE "\"]}}",
		.created_ms = CAST_NOW,
	};
	T_OK(store_out_add(c.st, &o) == 0, "an answer queued");
	memset(&o, 0, sizeof o);
	T_OK(seal(&o) == E2EE_SEAL_WAIT, "sealing waits while the room key goes to Alice's device");
	struct buf body;
	buf_init(&body);
	T_OK(cast_answer(&c, E2EE_TO_DEVICE, "{}", &body) == 1 && strstr(body.s, CAST_ALICE_DEV),
		"the room key goes out as one to-device request");
	cJSON *p = alice_reads(body.s);
	const cJSON *ct = cJSON_GetObjectItem(p, "content");
	const char *sk = cJSON_GetStringValue(cJSON_GetObjectItem(ct, "session_key"));
	const char *sid = cJSON_GetStringValue(cJSON_GetObjectItem(ct, "session_id"));
	T_OK(p && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(p, "type")), "m.room_key") == 0 && sk
		&& strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(ct, "room_id")), CAST_ROOM) == 0
		&& strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(p, "keys"), "ed25519")), c.bot_ed) == 0,
		"Alice decrypts an m.room_key for the room, with the bot's ed25519 key");
	struct crypto_megolm_in *in = NULL;
	if (sk)
		crypto_megolm_in_create(sk, &in, c.err);
	T_OK(seal(&o) == E2EE_SEAL_READY && o.sealed && strcmp(o.event_type, "m.room.encrypted") == 0,
		"once it is sent, the answer is sealed");
	struct store_out stored = { 0 };
	T_OK(store_out_next(c.st, 0, &stored) == 1 && stored.sealed && strcmp(stored.content, o.content) == 0,
		"... and the ciphertext is stored under the same txnId before any PUT");
	store_out_free(&stored);
	cJSON *sealed = cJSON_Parse(o.content);
	const char *cipher = cJSON_GetStringValue(cJSON_GetObjectItem(sealed, "ciphertext"));
	char *plain = NULL;
	size_t n;
	uint32_t idx;
	T_OK(in && cipher && crypto_megolm_in_decrypt(in, cipher, &plain, &n, &idx, c.err) == 0 && idx == 0,
		"Alice decrypts the answer with that key");
	cJSON *pl = plain ? cJSON_Parse(plain) : NULL;
	const cJSON *pc = cJSON_GetObjectItem(pl, "content");
	T_OK(pl && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(pl, "room_id")), CAST_ROOM) == 0
		&& cJSON_GetObjectItem(pc, "m.mentions") && !cJSON_GetObjectItem(pc, "m.relates_to")
		&& cJSON_GetObjectItem(sealed, "m.relates_to"),
		"room_id and m.mentions inside, m.relates_to outside the ciphertext");
	char *first_session = xstrdup(cJSON_GetStringValue(cJSON_GetObjectItem(sealed, "session_id")));
	T_OK(sid && strcmp(first_session, sid) == 0, "the shared session is the one used");
	free(plain);
	cJSON_Delete(pl);
	cJSON_Delete(sealed);
	cJSON_Delete(p);
	crypto_megolm_in_free(in);
	store_out_delete(c.st, o.id);
	store_out_free(&o);

	/* a member comes and goes: the key rotates */
	store_begin(c.st);
	e2ee_member(c.bot, CAST_ROOM, "@carol:example.org", "join", true);
	e2ee_member(c.bot, CAST_ROOM, "@carol:example.org", "leave", true);
	store_commit(c.st);
	cast_answer(&c, E2EE_QUERY, "{\"device_keys\":{\"@carol:example.org\":{}}}", NULL);
	o = (struct store_out){ .txn_id = "kbtest2", .kind = "send", .room_id = CAST_ROOM, .event_type = "m.room.message",
		.content = "{\"msgtype\":\"m.notice\",\"body\":\"Rest.\"}", .created_ms = CAST_NOW };
	store_out_add(c.st, &o);
	memset(&o, 0, sizeof o);
	enum e2ee_seal r = seal(&o);
	if (r == E2EE_SEAL_WAIT && cast_answer(&c, E2EE_TO_DEVICE, "{}", &body) == 1)
		cJSON_Delete(alice_reads(body.s));
	r = r == E2EE_SEAL_WAIT ? seal(&o) : r;
	sealed = r == E2EE_SEAL_READY ? cJSON_Parse(o.content) : NULL;
	T_OK(sealed && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(sealed, "session_id")), first_session) != 0,
		"a member who left: the next answer uses a new room key");
	cJSON_Delete(sealed);
	store_out_delete(c.st, o.id);
	store_out_free(&o);
	free(first_session);
	buf_free(&body);
}

static void
test_wedged(void)
{
	cJSON *junk = cJSON_CreateObject(), *ct = cJSON_AddObjectToObject(junk, "content"), *arr = cJSON_CreateArray();
	cJSON_AddStringToObject(junk, "type", "m.room.encrypted");
	cJSON_AddStringToObject(junk, "sender", CAST_ALICE);
	cJSON_AddStringToObject(ct, "algorithm", CRYPTO_ALG_OLM);
	cJSON_AddStringToObject(ct, "sender_key", c.alice_curve);
	cJSON *mine = cJSON_AddObjectToObject(cJSON_AddObjectToObject(ct, "ciphertext"), c.bot_curve);
	cJSON_AddNumberToObject(mine, "type", 1);
	cJSON_AddStringToObject(mine, "body", "AwogAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	cJSON_AddItemToArray(arr, junk);
	struct buf body;
	buf_init(&body);
	T_OK(cast_sync(&c, arr, true) == 0, "an undecryptable Olm message: the session is wedged");
	size_t rl = crypto_otk_random_len(c.alice, 1);
	unsigned char *r = cast_rnd(rl);
	cJSON *otks = NULL;
	crypto_account_generate_otks(c.alice, 1, r, rl, c.err);
	free(r);
	crypto_otk_objects(c.alice, CAST_ALICE, CAST_ALICE_DEV, &otks, c.err);
	cJSON *ans = cJSON_CreateObject();
	cJSON_AddItemToObject(cJSON_AddObjectToObject(cJSON_AddObjectToObject(ans, "one_time_keys"), CAST_ALICE),
		CAST_ALICE_DEV, otks);
	char *s = cJSON_PrintUnformatted(ans);
	T_OK(cast_answer(&c, E2EE_CLAIM, s, &body) == 1 && strstr(body.s, CAST_ALICE_DEV),
		"... a one-time key of that device is claimed");
	T_OK(cast_answer(&c, E2EE_TO_DEVICE, "{}", &body) == 1, "... a new session announced with a to-device message");
	cJSON *j = cJSON_Parse(body.s);
	const cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "messages"), CAST_ALICE),
		CAST_ALICE_DEV);
	const cJSON *b = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(m, "ciphertext"), c.alice_curve), "body");
	struct crypto_olm *in = NULL;
	char *plain = NULL;
	size_t n;
	int rc = cJSON_IsString(b) ? crypto_olm_inbound(c.alice, c.bot_curve, b->valuestring, &in, &plain, &n, c.err) : -1;
	cJSON *p = rc == 0 ? cJSON_Parse(plain) : NULL;
	T_OK(p && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(p, "type")), "m.dummy") == 0
		&& cJSON_GetStringValue(cJSON_GetObjectItem(p, "sender_device")),
		"... which is m.dummy (with sender_device) on a new Olm session Alice opens");
	T_OK(cast_sync(&c, arr, true) == 0 && cast_answer(&c, E2EE_CLAIM, s, NULL) == 0,
		"another undecryptable message within the hour: no second new session");
	cJSON_Delete(p);
	free(plain);
	crypto_olm_free(in);
	cJSON_Delete(j);
	free(s);
	cJSON_Delete(ans);
	cJSON_Delete(arr);
	buf_free(&body);
}

/* Trust on first use: a device that shows other keys later, or keys it did not sign, is refused. */
static void
test_tofu(void)
{
	const char *changed[] = { CAST_ALICE };
	struct mx_crypto mc = { .changed = changed, .nchanged = 1, .otk_signed_curve25519 = 50 };
	store_begin(c.st);
	e2ee_sync(c.bot, &mc, CAST_NOW, CAST_NOW);
	store_commit(c.st);
	struct crypto_account *mallory;
	size_t rl = crypto_account_random_len();
	unsigned char *r = cast_rnd(rl);
	crypto_account_create(r, rl, &mallory, c.err);
	free(r);
	cJSON *dk, *bad;
	crypto_device_keys(mallory, CAST_ALICE, CAST_ALICE_DEV, &dk, c.err);
	crypto_device_keys(mallory, CAST_ALICE, "NEWDEV", &bad, c.err);
	cJSON_ReplaceItemInObject(bad, "device_id", cJSON_CreateString("NEWDEV2"));   /* no longer what it signed */
	cJSON *a = cJSON_CreateObject(), *u = cJSON_AddObjectToObject(cJSON_AddObjectToObject(a, "device_keys"), CAST_ALICE);
	cJSON_AddItemToObject(u, CAST_ALICE_DEV, dk);
	cJSON_AddItemToObject(u, "NEWDEV2", bad);
	char *s = cJSON_PrintUnformatted(a);
	struct store_device d;
	T_OK(cast_answer(&c, E2EE_QUERY, s, NULL) == 1 && store_device_get(c.st, CAST_ALICE, CAST_ALICE_DEV, &d) == 1
		&& strcmp(d.ed25519, c.alice_ed) == 0, "a device that shows other keys later is refused: the first stay pinned");
	store_device_free(&d, 1);
	T_OK(store_device_get(c.st, CAST_ALICE, "NEWDEV2", &d) == 0, "device keys that fail their self-signature are ignored");
	free(s);
	cJSON_Delete(a);
	crypto_account_free(mallory);
}

/* An event whose key never comes is given up after 24 hours. */
static void
test_expiry(void)
{
	struct crypto_megolm_out *g = cast_megolm(&c);
	cJSON *m = message("too late"), *ev = cast_room_event(&c, g, CAST_ROOM, CAST_ROOM, "$expired", m);
	char *body;
	T_OK(decrypt(ev, CAST_ROOM, &body) == E2EE_IN_WAIT, "an event waits for its key");
	e2ee_housekeeping(c.bot, CAST_NOW + E2EE_AWAIT_MS + 1000);
	olm_send("m.room_key", cast_room_key(&c, g, CAST_ROOM), NULL);
	int before = ready_seen;
	T_OK(store_begin(c.st) == 0 && e2ee_ready(c.bot, on_ready, NULL) == 0 && store_commit(c.st) == 0
		&& ready_seen == before, "... and is given up when its key comes after 24 hours");
	cJSON_Delete(ev);
	cJSON_Delete(m);
	crypto_megolm_out_free(g);
}

int
main(void)
{
	log_init(LOG_LVL_ERR, "e2ee_test");
	test_parsers();
	if (!T_OK(cast_open(&c) == 0, "the cast: the bot's engine, its keys, Alice's device and sessions"))
		T_EXIT();
	test_receive();
	test_send();
	test_wedged();
	test_tofu();
	test_expiry();
	cast_close(&c);
	T_EXIT();
}
