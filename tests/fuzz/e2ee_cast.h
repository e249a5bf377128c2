/*
 * e2ee_cast.h: a fixed cast for driving bot/e2ee.c without a server, shared
 * by tests/e2ee_test.c and the fuzz targets fuzz_e2ee_to_device.c and
 * fuzz_e2ee_event.c: the bot's engine on a store in a temp dir, its keys
 * "uploaded", and Alice, a peer made with crypto.h directly: her device
 * known to the bot through a /keys/query answer, an outbound Olm session to
 * one of the bot's one-time keys, an outbound Megolm session for the room.
 *
 * Randomness is a counter, so the same calls make the same keys in every
 * process: seeds written by one fuzzer run stay valid messages for the
 * next.  Deterministic randomness is for tests and fuzzers only.
 */
#ifndef KNEEBOT_E2EE_CAST_H
#define KNEEBOT_E2EE_CAST_H

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "crypto.h"
#include "e2ee.h"
#include "log.h"
#include "matrix.h"
#include "store.h"

#define CAST_BOT "@kneebot:example.org"
#define CAST_DEV "KNEEDEV"
#define CAST_ALICE "@alice:example.org"
#define CAST_ALICE_DEV "ALICEDEV"
#define CAST_ROOM "!club:example.org"
#define CAST_ROOM2 "!other:example.org"
#define CAST_NOW 1800000000000LL

struct cast {
	char dir[64];
	struct store *st;
	struct e2ee *bot;
	char bot_curve[CRYPTO_KEY_LEN], bot_ed[CRYPTO_KEY_LEN], bot_otk[CRYPTO_KEY_LEN];
	struct crypto_account *alice;
	char alice_curve[CRYPTO_KEY_LEN], alice_ed[CRYPTO_KEY_LEN];
	struct crypto_olm *alice_olm;          /* Alice -> bot */
	struct crypto_megolm_out *alice_megolm;
	char alice_session[CRYPTO_KEY_LEN];
	int notices;                           /* m.notice the engine asked to post */
	char err[CRYPTO_ERR_LEN];
};

static unsigned cast_counter;

static void
cast_random(void *arg, void *p, size_t n)
{
	(void)arg;
	for (size_t i = 0; i < n; i++)
		((unsigned char *)p)[i] = (unsigned char)(cast_counter++ * 167u + 13u);
}

static unsigned char *
cast_rnd(size_t n)
{
	unsigned char *p = xmalloc(n ? n : 1);
	cast_random(NULL, p, n);
	return p;
}

static void
cast_notice(void *arg, const char *room_id, const char *mention, const char *text)
{
	(void)room_id;
	(void)mention;
	(void)text;
	((struct cast *)arg)->notices++;
}

static int
cast_fail(struct cast *c, const char *what)
{
	fprintf(stderr, "e2ee cast: %s: %s\n", what, c->err);
	return -1;
}

/* The to-device events of a JSON array, handed to e2ee_sync in one transaction (committed or rolled back). */
static int
cast_sync(struct cast *c, const cJSON *events, bool commit)
{
	size_t cap = (size_t)cJSON_GetArraySize(events), n = 0;
	struct mx_to_device *td = xcalloc(cap + 1, sizeof *td);
	const cJSON *e;
	cJSON_ArrayForEach(e, events) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "type"), *s = cJSON_GetObjectItemCaseSensitive(e, "sender");
		if (cJSON_IsString(t) && cJSON_IsString(s) && n < cap)
			td[n++] = (struct mx_to_device){ t->valuestring, s->valuestring,
				cJSON_GetObjectItemCaseSensitive(e, "content") };
	}
	struct mx_crypto mc = { .to_device = td, .n_to_device = n, .otk_signed_curve25519 = 50, .fallback_known = true,
		.fallback_unused = true };
	int rc = store_begin(c->st);
	if (rc == 0)
		rc = e2ee_sync(c->bot, &mc, CAST_NOW, CAST_NOW);
	if (rc == 0 && commit)
		rc = store_commit(c->st);
	else
		store_rollback(c->st);
	free(td);
	return rc;
}

/* The bot's answer to one request kind, as the server would give it. */
static int
cast_answer(struct cast *c, enum e2ee_kind k, const char *answer, struct buf *body)
{
	struct e2ee_req r;
	e2ee_req_init(&r);
	int rc = e2ee_next(c->bot, k, CAST_NOW, &r);
	if (rc == 1 && body) {
		buf_clear(body);
		buf_add(body, r.body.s, r.body.len);
	}
	if (rc == 1 && e2ee_done(c->bot, k, 200, answer, strlen(answer), CAST_NOW) != E2EE_DONE_OK)
		rc = -1;
	e2ee_req_free(&r);
	return rc;
}

/* Alice's Olm to-device event (m.room.encrypted) carrying a payload of type with content. */
static cJSON *
cast_olm_event(struct cast *c, const char *type, const cJSON *content, const char *recipient_ed)
{
	cJSON *p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "type", type);
	cJSON_AddItemToObject(p, "content", cJSON_Duplicate(content, true));
	cJSON_AddStringToObject(p, "sender", CAST_ALICE);
	cJSON_AddStringToObject(p, "sender_device", CAST_ALICE_DEV);
	cJSON_AddStringToObject(cJSON_AddObjectToObject(p, "keys"), "ed25519", c->alice_ed);
	cJSON_AddStringToObject(p, "recipient", CAST_BOT);
	cJSON_AddStringToObject(cJSON_AddObjectToObject(p, "recipient_keys"), "ed25519",
		recipient_ed ? recipient_ed : c->bot_ed);
	char *plain = cJSON_PrintUnformatted(p), *body = NULL;
	cJSON_Delete(p);
	size_t rl = crypto_olm_encrypt_random_len(c->alice_olm);
	unsigned char *r = cast_rnd(rl);
	enum crypto_olm_type t;
	int rc = crypto_olm_encrypt(c->alice_olm, plain, strlen(plain), r, rl, &t, &body, c->err);
	free(r);
	free(plain);
	if (rc < 0)
		return NULL;
	cJSON *ev = cJSON_CreateObject(), *ct = cJSON_AddObjectToObject(ev, "content");
	cJSON_AddStringToObject(ev, "type", "m.room.encrypted");
	cJSON_AddStringToObject(ev, "sender", CAST_ALICE);
	cJSON_AddStringToObject(ct, "algorithm", CRYPTO_ALG_OLM);
	cJSON_AddStringToObject(ct, "sender_key", c->alice_curve);
	cJSON *mine = cJSON_AddObjectToObject(cJSON_AddObjectToObject(ct, "ciphertext"), c->bot_curve);
	cJSON_AddNumberToObject(mine, "type", t);
	cJSON_AddStringToObject(mine, "body", body);
	free(body);
	return ev;
}

/* The m.room_key content of an outbound Megolm session (from its current index) for room. */
static cJSON *
cast_room_key(struct cast *c, struct crypto_megolm_out *g, const char *room)
{
	char id[CRYPTO_KEY_LEN], *key;
	if (crypto_megolm_out_id(g, id, c->err) < 0 || crypto_megolm_out_key(g, &key, c->err) < 0)
		return NULL;
	cJSON *k = cJSON_CreateObject();
	cJSON_AddStringToObject(k, "algorithm", CRYPTO_ALG_MEGOLM);
	cJSON_AddStringToObject(k, "room_id", room);
	cJSON_AddStringToObject(k, "session_id", id);
	cJSON_AddStringToObject(k, "session_key", key);
	free(key);
	return k;
}

/* Alice's Megolm room event in room (payload room_id payload_room), from session g. */
static cJSON *
cast_room_event(struct cast *c, struct crypto_megolm_out *g, const char *room, const char *payload_room,
	const char *event_id, const cJSON *msg)
{
	cJSON *p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "type", "m.room.message");
	cJSON_AddItemToObject(p, "content", cJSON_Duplicate(msg, true));
	cJSON_AddStringToObject(p, "room_id", payload_room);
	char *plain = cJSON_PrintUnformatted(p), *ct, id[CRYPTO_KEY_LEN];
	cJSON_Delete(p);
	int rc = crypto_megolm_out_encrypt(g, plain, strlen(plain), &ct, NULL, c->err);
	free(plain);
	if (rc < 0 || crypto_megolm_out_id(g, id, c->err) < 0)
		return NULL;
	cJSON *ev = cJSON_CreateObject(), *content = cJSON_AddObjectToObject(ev, "content");
	cJSON_AddStringToObject(ev, "type", "m.room.encrypted");
	cJSON_AddStringToObject(ev, "event_id", event_id);
	cJSON_AddStringToObject(ev, "sender", CAST_ALICE);
	cJSON_AddStringToObject(ev, "room_id", room);
	cJSON_AddNumberToObject(ev, "origin_server_ts", (double)CAST_NOW);
	cJSON_AddStringToObject(content, "algorithm", CRYPTO_ALG_MEGOLM);
	cJSON_AddStringToObject(content, "sender_key", c->alice_curve);
	cJSON_AddStringToObject(content, "device_id", CAST_ALICE_DEV);
	cJSON_AddStringToObject(content, "session_id", id);
	cJSON_AddStringToObject(content, "ciphertext", ct);
	free(ct);
	return ev;
}

static struct crypto_megolm_out *
cast_megolm(struct cast *c)
{
	struct crypto_megolm_out *g;
	size_t rl = crypto_megolm_out_random_len();
	unsigned char *r = cast_rnd(rl);
	int rc = crypto_megolm_out_create(r, rl, &g, c->err);
	free(r);
	return rc == 0 ? g : NULL;
}

/* Reads the bot's identity keys and its first one-time key from its upload request. */
static int
cast_upload(struct cast *c)
{
	struct buf body;
	buf_init(&body);
	int rc = cast_answer(c, E2EE_KEYS, "{\"one_time_key_counts\":{\"signed_curve25519\":50}}", &body);
	cJSON *j = rc == 1 ? cJSON_Parse(body.s) : NULL;
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "device_keys"), "keys");
	const cJSON *otks = cJSON_GetObjectItemCaseSensitive(j, "one_time_keys");
	const cJSON *cv = cJSON_GetObjectItemCaseSensitive(keys, "curve25519:" CAST_DEV);
	const cJSON *ed = cJSON_GetObjectItemCaseSensitive(keys, "ed25519:" CAST_DEV);
	const cJSON *otk = otks && otks->child ? cJSON_GetObjectItemCaseSensitive(otks->child, "key") : NULL;
	rc = cJSON_IsString(cv) && cJSON_IsString(ed) && cJSON_IsString(otk) ? 0 : -1;
	if (rc == 0) {
		snprintf(c->bot_curve, sizeof c->bot_curve, "%s", cv->valuestring);
		snprintf(c->bot_ed, sizeof c->bot_ed, "%s", ed->valuestring);
		snprintf(c->bot_otk, sizeof c->bot_otk, "%s", otk->valuestring);
	}
	cJSON_Delete(j);
	buf_free(&body);
	return rc;
}

/* Alice's device keys as the bot's /keys/query gets them. */
static int
cast_query(struct cast *c)
{
	cJSON *dk;
	if (crypto_device_keys(c->alice, CAST_ALICE, CAST_ALICE_DEV, &dk, c->err) < 0)
		return -1;
	cJSON *a = cJSON_CreateObject(), *d = cJSON_AddObjectToObject(a, "device_keys");
	cJSON_AddItemToObject(cJSON_AddObjectToObject(d, CAST_ALICE), CAST_ALICE_DEV, dk);
	cJSON_AddObjectToObject(d, CAST_BOT);
	char *s = cJSON_PrintUnformatted(a);
	cJSON_Delete(a);
	int rc = cast_answer(c, E2EE_QUERY, s, NULL);
	free(s);
	return rc == 1 ? 0 : -1;
}

static int
cast_rooms(struct cast *c)
{
	static const char *const rooms[] = { CAST_ROOM, CAST_ROOM2 };
	cJSON *enc = cJSON_Parse("{\"algorithm\":\"m.megolm.v1.aes-sha2\"}");
	int rc = store_begin(c->st);
	for (size_t i = 0; i < 2 && rc == 0; i++)
		rc = e2ee_member(c->bot, rooms[i], CAST_BOT, "join", false) < 0
			|| e2ee_member(c->bot, rooms[i], CAST_ALICE, "join", false) < 0
			|| e2ee_room_encryption(c->bot, rooms[i], enc) < 0 ? -1 : 0;
	cJSON_Delete(enc);
	return rc == 0 ? store_commit(c->st) : (store_rollback(c->st), -1);
}

static void
cast_close(struct cast *c)
{
	static const char *const files[] = { "cast.db", "cast.db-wal", "cast.db-shm", "cast.lock" };
	e2ee_free(c->bot);
	store_close(c->st);
	crypto_olm_free(c->alice_olm);
	crypto_megolm_out_free(c->alice_megolm);
	crypto_account_free(c->alice);
	for (size_t i = 0; c->dir[0] && i < sizeof files / sizeof files[0]; i++) {
		char p[128];
		snprintf(p, sizeof p, "%s/%s", c->dir, files[i]);
		unlink(p);
	}
	if (c->dir[0])
		rmdir(c->dir);
	memset(c, 0, sizeof *c);
}

static int
cast_open(struct cast *c)
{
	static const unsigned char key[32] = "e2ee cast pickle key, 32 bytes!";
	memset(c, 0, sizeof *c);
	cast_counter = 0;
	snprintf(c->dir, sizeof c->dir, "/tmp/kneebot-e2ee-cast-XXXXXX");
	struct buf err;
	buf_init(&err);
	if (!mkdtemp(c->dir) || store_open(c->dir, "cast", &c->st, &err) != STORE_OK) {
		fprintf(stderr, "e2ee cast: no store: %s\n", err.s ? err.s : "mkdtemp");
		buf_free(&err);
		return -1;
	}
	struct e2ee_config cf = { "cast", CAST_BOT, CAST_DEV, { key, sizeof key }, false,
		{ c, cast_random, NULL, cast_notice, NULL } };
	if (e2ee_open(c->st, &cf, CAST_NOW, &c->bot, &err) != E2EE_OPEN_OK) {
		fprintf(stderr, "e2ee cast: %s\n", err.s);
		buf_free(&err);
		return -1;
	}
	buf_free(&err);
	size_t rl = crypto_account_random_len();
	unsigned char *r = cast_rnd(rl);
	int rc = crypto_account_create(r, rl, &c->alice, c->err);
	free(r);
	if (rc < 0 || crypto_account_identity_keys(c->alice, c->alice_curve, c->alice_ed, c->err) < 0)
		return cast_fail(c, "alice");
	if (cast_upload(c) < 0 || cast_rooms(c) < 0 || cast_query(c) < 0)
		return cast_fail(c, "bot keys, rooms or query");
	rl = crypto_olm_outbound_random_len();
	r = cast_rnd(rl);
	rc = crypto_olm_outbound(c->alice, c->bot_curve, c->bot_otk, r, rl, &c->alice_olm, c->err);
	free(r);
	if (rc < 0 || !(c->alice_megolm = cast_megolm(c)) || crypto_megolm_out_id(c->alice_megolm, c->alice_session, c->err) < 0)
		return cast_fail(c, "alice's sessions");
	return 0;
}

/* Fuzzers: quiet logs, the cast, removed again at exit. */
static inline void
cast_fuzz_open(struct cast *c, void (*close_at_exit)(void))
{
	log_init(LOG_LVL_ERR, "fuzz");
	if (cast_open(c) < 0)
		abort();
	atexit(close_at_exit);
}

/* Fuzzers: writes DIR/NAME with the JSON of item (taken), a seed of the corpus. */
static inline void
cast_seed(const char *dir, const char *name, cJSON *item)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	char *s = cJSON_PrintUnformatted(item);
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(s, f);
		fclose(f);
	}
	free(s);
	cJSON_Delete(item);
}

#endif
