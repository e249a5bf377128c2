/*
 * e2ee.c: Matrix end-to-end encryption for one account (see e2ee.h).
 * libolm through crypto.h, state through store.h, no HTTP.
 *
 * The rules this file keeps, each against a hazard:
 * - a libolm object is unpickled from the store for each use and pickled
 *   back in the same transaction: after a rollback nothing in memory is
 *   ahead of the disk, so a ratchet step or a one-time key is never used
 *   twice;
 * - nothing derived from a state change (a to-device ciphertext, a room
 *   event, an uploaded key) is handed out before the change is committed:
 *   callers send only what the store holds (outbox, to_device_out) or
 *   what e2ee_next() builds from committed state;
 * - what peers and the server send is checked before it is used: keys
 *   are well-formed base64, payloads name us, room keys come only over
 *   Olm, Megolm sessions are found by (room, session id) and belong to
 *   the event's sender, a message index decrypts under one event id only.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "buf.h"
#include "crypto.h"
#include "e2ee.h"
#include "log.h"
#include "matrix.h"
#include "store.h"

#define QUERY_MAX_USERS 100
#define CLAIM_MAX_DEVICES 200
#define WANT_MAX 1024              /* devices waiting for a claim, at most */
#define RECENT_DECRYPTS 16
#define OLM_SESSIONS_TRIED 8       /* per peer device, most recently used first */
#define MARK_DUMMY "dummy"         /* curve25519 -> when we last opened a session to unwedge it */
#define MARK_WEDGED "wedged"       /* curve25519 -> (user) a session to that device needs replacing */
#define MARK_NO_OLM "no_olm"       /* user|device -> when m.no_olm was sent */
#define MARK_WITHHELD "withheld"   /* room -> when the m.unverified notice was posted */

/* The request of each kind in flight: what its answer applies to. */
enum keys_step { KS_NONE, KS_UPLOAD, KS_XSIGN, KS_SIGNATURE };

struct want {                  /* a device that needs an Olm session */
	char *user_id, *device_id;
	bool dummy;                /* to unwedge it: send m.dummy once the session exists */
};

struct query_user {
	char *user_id;
	int64_t generation;
};

struct e2ee {
	struct store *st;
	char *name, *user_id, *device_id;
	unsigned char *key;
	size_t key_len;
	bool require_cross_signed;
	struct e2ee_hooks hooks;
	char curve[CRYPTO_KEY_LEN], ed[CRYPTO_KEY_LEN];
	/* one-time keys on the server, from the last sync or upload; -1 unknown */
	long otk_count;
	bool fallback_known, fallback_unused;
	int64_t upload_done_ms;        /* a sync sent before this has stale counts */
	enum keys_step keys_step;
	bool fallback_in_flight;
	char *uia_session;             /* user-interactive auth of the cross-signing upload */
	bool xsign_gave_up;            /* no password, or the server refused: not again this run */
	struct query_user *query;      /* the users of the /keys/query in flight */
	size_t nquery;
	struct want *want;             /* devices waiting for a claimed one-time key */
	size_t nwant;
	struct want *claiming;         /* those in the /keys/claim in flight */
	size_t nclaiming;
	int64_t todev_id;              /* the to-device row in flight */
	struct { char id[256]; int64_t t_us; } recent[RECENT_DECRYPTS];
	unsigned nrecent;
	char err[CRYPTO_ERR_LEN];
};

/* ---------- small helpers ---------- */

static const cJSON *
jget(const cJSON *o, const char *key)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *
jstr(const cJSON *o, const char *key)
{
	const cJSON *v = jget(o, key);
	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

static const cJSON *
jobj(const cJSON *o, const char *key)
{
	const cJSON *v = jget(o, key);
	return cJSON_IsObject(v) ? v : NULL;
}

/* An unpadded base64 curve25519/ed25519 key or Megolm session id: 43 characters of the alphabet. */
static bool
is_key(const char *s)
{
	if (!s || strlen(s) != 43)
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '+' && *p != '/')
			return false;
	return true;
}

static bool
streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static char *
print_json(const cJSON *j)
{
	char *s = cJSON_PrintUnformatted(j);
	if (!s)
		fatalx(70, "out of memory printing JSON");
	return s;
}

/* Wipes every string of a tree that held a secret (a session key, a plaintext) before it is freed. */
static void
json_wipe(cJSON *j)
{
	for (cJSON *c = j; c; c = c->next) {
		if (cJSON_IsString(c) && c->valuestring)
			explicit_bzero(c->valuestring, strlen(c->valuestring));
		json_wipe(c->child);
	}
}

static struct crypto_pickle_key
pkey(const struct e2ee *e)
{
	return (struct crypto_pickle_key){ e->key, e->key_len };
}

static void
default_random(void *arg, void *p, size_t n)
{
	(void)arg;
	for (size_t got = 0; got < n;) {
		ssize_t r = getrandom((char *)p + got, n - got, 0);
		if (r > 0)
			got += (size_t)r;
	}
}

/* n random bytes (at least one allocated), from the hook. */
static unsigned char *
rnd(struct e2ee *e, size_t n)
{
	unsigned char *p = xmalloc(n ? n : 1);
	e->hooks.random(e->hooks.arg, p, n);
	return p;
}

static void
crash(struct e2ee *e, const char *point)
{
	if (e->hooks.crash_point)
		e->hooks.crash_point(point);
}

/* Opens a transaction unless the caller's is open (a sync batch). */
static bool
tx_begin(struct e2ee *e, bool *own)
{
	*own = !store_in_tx(e->st);
	return !*own || store_begin(e->st) == 0;
}

/* Commits (ok) or rolls back our own transaction; in the caller's, a failure is the caller's to roll back. */
static int
tx_end(struct e2ee *e, bool own, bool ok)
{
	if (!own)
		return ok ? 0 : -1;
	if (ok && store_commit(e->st) == 0)
		return 0;
	store_rollback(e->st);
	return -1;
}

static void
want_free(struct want *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].user_id);
		free(v[i].device_id);
	}
	free(v);
}

/* ---------- pure parts ---------- */

int
e2ee_olm_parse(const cJSON *content, const char *our_curve25519, struct e2ee_olm_msg *m, const char **why)
{
	memset(m, 0, sizeof *m);
	const cJSON *mine = jobj(jobj(content, "ciphertext"), our_curve25519);
	const cJSON *t = jget(mine, "type");
	*why = NULL;
	if (!streq(jstr(content, "algorithm"), CRYPTO_ALG_OLM))
		*why = "not m.olm.v1.curve25519-aes-sha2";
	else if (!is_key(m->sender_key = jstr(content, "sender_key")))
		*why = "no valid sender_key";
	else if (!mine)
		*why = "no ciphertext for this device";
	else if (!cJSON_IsNumber(t) || (t->valuedouble != 0 && t->valuedouble != 1))
		*why = "message type is neither 0 nor 1";
	else if (!(m->body = jstr(mine, "body")))
		*why = "no body";
	if (*why)
		return -1;
	m->type = (int)t->valuedouble;
	return 0;
}

int
e2ee_olm_payload_check(const char *plain, size_t n, const char *sender, const char *own_user,
	const char *own_ed25519, struct e2ee_olm_payload *p, const char **why)
{
	memset(p, 0, sizeof *p);
	cJSON *root = cJSON_ParseWithLength(plain, n);
	*why = NULL;
	if (!cJSON_IsObject(root))
		*why = "payload is not a JSON object";
	else if (!(p->type = jstr(root, "type")) || !(p->content = jobj(root, "content")))
		*why = "payload without type or content";
	else if (!streq(jstr(root, "sender"), sender))
		*why = "payload sender is not the event's sender";
	else if (!streq(jstr(root, "recipient"), own_user))
		*why = "payload recipient is not us";
	else if (!streq(jstr(jobj(root, "recipient_keys"), "ed25519"), own_ed25519))
		*why = "payload recipient_keys is not our ed25519 key";
	else if (!is_key(p->sender_ed25519 = jstr(jobj(root, "keys"), "ed25519")))
		*why = "payload without the sender's ed25519 key";
	if (*why) {
		cJSON_Delete(root);
		memset(p, 0, sizeof *p);
		return -1;
	}
	p->root = root;
	return 0;
}

int
e2ee_room_key_parse(const cJSON *content, struct e2ee_room_key *k, const char **why)
{
	*k = (struct e2ee_room_key){ jstr(content, "room_id"), jstr(content, "session_id"),
		jstr(content, "session_key") };
	*why = !streq(jstr(content, "algorithm"), CRYPTO_ALG_MEGOLM) ? "not m.megolm.v1.aes-sha2"
		: !k->room_id || k->room_id[0] != '!' ? "no room_id"
		: !is_key(k->session_id) ? "no valid session_id"
		: !k->session_key ? "no session_key" : NULL;
	return *why ? -1 : 0;
}

int
e2ee_withheld_parse(const cJSON *content, struct e2ee_withheld *w, const char **why)
{
	*w = (struct e2ee_withheld){ jstr(content, "room_id"), jstr(content, "session_id"), jstr(content, "code") };
	*why = !w->code ? "no code" : !w->room_id || w->room_id[0] != '!' ? "no room_id" : NULL;
	return *why ? -1 : 0;
}

int
e2ee_megolm_parse(const cJSON *content, struct e2ee_megolm_msg *m, const char **why)
{
	*m = (struct e2ee_megolm_msg){ jstr(content, "session_id"), jstr(content, "ciphertext"),
		jobj(content, "m.relates_to") };
	*why = !streq(jstr(content, "algorithm"), CRYPTO_ALG_MEGOLM) ? "not m.megolm.v1.aes-sha2"
		: !is_key(m->session_id) ? "no valid session_id"
		: !m->ciphertext ? "no ciphertext" : NULL;
	return *why ? -1 : 0;
}

cJSON *
e2ee_megolm_event(const char *plain, size_t n, const struct mx_event *ev, const char *room_id,
	const cJSON *clear_relates_to, const char **why)
{
	cJSON *p = cJSON_ParseWithLength(plain, n);
	const char *type = jstr(p, "type");
	cJSON *content = cJSON_GetObjectItemCaseSensitive(p, "content");
	*why = !cJSON_IsObject(p) ? "payload is not a JSON object"
		: !type || !cJSON_IsObject(content) ? "payload without type or content"
		: !streq(jstr(p, "room_id"), room_id) ? "payload room_id is not this room (moved from another room?)"
		: !ev->event_id || !ev->sender ? "event without event_id or sender" : NULL;
	if (*why) {
		cJSON_Delete(p);
		return NULL;
	}
	cJSON *out = cJSON_CreateObject();
	cJSON_AddStringToObject(out, "type", type);
	cJSON_AddItemToObject(out, "content", cJSON_DetachItemViaPointer(p, content));
	if (clear_relates_to) {
		cJSON_DeleteItemFromObjectCaseSensitive(content, "m.relates_to");
		cJSON_AddItemToObject(content, "m.relates_to", cJSON_Duplicate(clear_relates_to, true));
	}
	cJSON_AddStringToObject(out, "event_id", ev->event_id);
	cJSON_AddStringToObject(out, "sender", ev->sender);
	cJSON_AddStringToObject(out, "room_id", room_id);
	cJSON_AddNumberToObject(out, "origin_server_ts", (double)ev->ts_ms);
	const cJSON *uns = jobj(ev->raw, "unsigned");
	if (uns)
		cJSON_AddItemToObject(out, "unsigned", cJSON_Duplicate(uns, true));
	cJSON_Delete(p);
	return out;
}

/* ---------- the account ---------- */

static int
account_row(struct e2ee *e, struct store_account *row)
{
	memset(row, 0, sizeof *row);
	int rc = store_account_get(e->st, e->device_id, row);
	if (rc == 0)
		log_warnx("%s: the Olm account of device %s is missing from the store", e->name, e->device_id);
	return rc == 1 ? 0 : -1;
}

/* The account, unpickled; row holds its stored flags.  NULL after logging why. */
static struct crypto_account *
account_load(struct e2ee *e, struct store_account *row)
{
	struct crypto_account *a;
	if (account_row(e, row) < 0)
		return NULL;
	if (crypto_account_unpickle(row->pickle, pkey(e), &a, e->err) < 0) {
		log_warnx("%s: cannot open the Olm account: %s", e->name, e->err);
		store_account_free(row);
		return NULL;
	}
	return a;
}

/* Pickles a into row and writes row: the caller commits before anything derived from a leaves. */
static int
account_save(struct e2ee *e, struct crypto_account *a, struct store_account *row)
{
	char *p;
	if (crypto_account_pickle(a, pkey(e), &p, e->err) < 0) {
		log_warnx("%s: cannot pickle the Olm account: %s", e->name, e->err);
		return -1;
	}
	free(row->pickle);
	row->pickle = p;
	return store_account_put(e->st, row);
}

/* A new account for our device id with a fallback key; identity keys into e. */
static int
account_create(struct e2ee *e, int64_t now_ms)
{
	struct crypto_account *a;
	size_t n = crypto_account_random_len();
	unsigned char *r = rnd(e, n);
	int rc = crypto_account_create(r, n, &a, e->err);
	free(r);
	if (rc < 0)
		return -1;
	n = crypto_fallback_random_len(a);
	r = rnd(e, n);
	rc = crypto_account_generate_fallback(a, r, n, e->err);
	free(r);
	if (rc == 0)
		rc = crypto_account_identity_keys(a, e->curve, e->ed, e->err);
	struct store_account row = { .device_id = e->device_id, .curve25519 = e->curve, .ed25519 = e->ed,
		.created_ms = now_ms };
	char *p = NULL;
	if (rc == 0)
		rc = crypto_account_pickle(a, pkey(e), &p, e->err);
	row.pickle = p;
	if (rc == 0)
		rc = store_account_put(e->st, &row);
	free(p);
	crypto_account_free(a);
	if (rc == 0)
		log_notice("%s: created the Olm account of device %s", e->name, e->device_id);
	return rc;
}

/* The stored account opens with our key and its identity keys are what the row says. */
static int
account_check(struct e2ee *e, struct store_account *row)
{
	struct crypto_account *a;
	if (crypto_account_unpickle(row->pickle, pkey(e), &a, e->err) < 0)
		return strstr(e->err, "BAD_ACCOUNT_KEY") ? E2EE_OPEN_BAD_KEY : E2EE_OPEN_ERROR;
	int rc = crypto_account_identity_keys(a, e->curve, e->ed, e->err);
	crypto_account_free(a);
	if (rc < 0 || strcmp(e->curve, row->curve25519) != 0 || strcmp(e->ed, row->ed25519) != 0) {
		snprintf(e->err, sizeof e->err, "the account's identity keys differ from the stored ones");
		return E2EE_OPEN_ERROR;
	}
	return E2EE_OPEN_OK;
}

static int
open_account(struct e2ee *e, int64_t now_ms)
{
	int others = store_account_others(e->st, e->device_id);
	if (others < 0)
		return E2EE_OPEN_ERROR;
	if (others > 0) {
		log_notice("%s: device %s is new: forgetting the Olm sessions and outbound keys of the previous device",
			e->name, e->device_id);
		if (store_crypto_forget(e->st, false) < 0)
			return E2EE_OPEN_ERROR;
	}
	struct store_account row;
	int rc = store_account_get(e->st, e->device_id, &row);
	if (rc < 0)
		return E2EE_OPEN_ERROR;
	if (rc == 0)
		return account_create(e, now_ms) == 0 ? E2EE_OPEN_OK : E2EE_OPEN_ERROR;
	rc = account_check(e, &row);
	store_account_free(&row);
	return rc;
}

int
e2ee_open(struct store *st, const struct e2ee_config *c, int64_t now_ms, struct e2ee **out, struct buf *err)
{
	if (c->key.n < CRYPTO_PICKLE_KEY_MIN) {
		buf_printf(err, "the pickle key is %zu bytes; it needs at least %d", c->key.n, CRYPTO_PICKLE_KEY_MIN);
		return E2EE_OPEN_ERROR;
	}
	struct e2ee *e = xcalloc(1, sizeof *e);
	e->st = st;
	e->name = xstrdup(c->name);
	e->user_id = xstrdup(c->user_id);
	e->device_id = xstrdup(c->device_id);
	e->key = xmalloc(c->key.n);
	memcpy(e->key, c->key.p, c->key.n);
	e->key_len = c->key.n;
	e->require_cross_signed = c->require_cross_signed;
	e->hooks = c->hooks;
	if (!e->hooks.random)
		e->hooks.random = default_random;
	e->otk_count = -1;
	bool own;
	int rc = tx_begin(e, &own) ? open_account(e, now_ms) : E2EE_OPEN_ERROR;
	if (tx_end(e, own, rc == E2EE_OPEN_OK) < 0 && rc == E2EE_OPEN_OK)
		rc = E2EE_OPEN_ERROR;
	if (rc != E2EE_OPEN_OK) {
		buf_printf(err, "%s", rc == E2EE_OPEN_BAD_KEY ? "the pickle key does not open the stored Olm account"
			: *e->err ? e->err : "cannot read or write the encryption state");
		e2ee_free(e);
		return rc;
	}
	*out = e;
	return E2EE_OPEN_OK;
}

void
e2ee_free(struct e2ee *e)
{
	if (!e)
		return;
	explicit_bzero(e->key, e->key_len);
	free(e->key);
	free(e->name);
	free(e->user_id);
	free(e->device_id);
	free(e->uia_session);
	for (size_t i = 0; i < e->nquery; i++)
		free(e->query[i].user_id);
	free(e->query);
	want_free(e->want, e->nwant);
	want_free(e->claiming, e->nclaiming);
	free(e);
}

int
e2ee_forget_all(struct store *st)
{
	bool own = !store_in_tx(st);
	if (own && store_begin(st) < 0)
		return -1;
	if (store_crypto_forget(st, true) < 0) {
		if (own)
			store_rollback(st);
		return -1;
	}
	return own ? store_commit(st) : 0;
}

const char *
e2ee_device_id(const struct e2ee *e)
{
	return e->device_id;
}

const char *
e2ee_ed25519(const struct e2ee *e)
{
	return e->ed;
}

void
e2ee_fingerprint(const struct e2ee *e, struct buf *out)
{
	for (size_t i = 0; e->ed[i]; i++) {
		if (i && i % 4 == 0)
			buf_addc(out, ' ');
		buf_addc(out, e->ed[i]);
	}
}

/* ---------- uploading our keys ---------- */

/* The server's count of our one-time keys is known and below the target (or nothing was ever uploaded). */
static size_t
otks_missing(const struct e2ee *e, const struct store_account *row, size_t unpublished)
{
	long have = !row->keys_uploaded ? 0 : e->otk_count;
	if (have < 0 || (size_t)have + unpublished >= E2EE_OTK_TARGET)
		return 0;
	return E2EE_OTK_TARGET - (size_t)have - unpublished;
}

/* Generates what the server lacks (committed before the request is built), then the upload body. */
static int
upload_body(struct e2ee *e, struct crypto_account *a, struct store_account *row, int64_t now_ms, cJSON *body)
{
	struct crypto_otk *otks = NULL, fb;
	size_t n = 0;
	int rc = crypto_account_unpublished_otks(a, &otks, &n, e->err);
	free(otks);
	int have_fb = rc == 0 ? crypto_account_unpublished_fallback(a, &fb, e->err) : -1;
	if (rc < 0 || have_fb < 0)
		return -1;
	size_t more = otks_missing(e, row, n);
	bool new_fb = row->keys_uploaded && e->fallback_known && !e->fallback_unused && !have_fb;
	bool changed = more || new_fb;
	if (more) {
		size_t rl = crypto_otk_random_len(a, more);
		unsigned char *r = rnd(e, rl);
		rc = crypto_account_generate_otks(a, more, r, rl, e->err);
		free(r);
	}
	if (rc == 0 && new_fb) {
		size_t rl = crypto_fallback_random_len(a);
		unsigned char *r = rnd(e, rl);
		rc = crypto_account_generate_fallback(a, r, rl, e->err);
		free(r);
		/* the used one stays for messages already on their way, an hour at most */
		row->forget_fallback_ms = now_ms + E2EE_HOUR_MS;
		log_info("%s: our fallback key was used: a new one replaces it", e->name);
	}
	if (rc == 0 && changed) {
		bool own;
		rc = tx_begin(e, &own) ? account_save(e, a, row) : -1;
		rc = tx_end(e, own, rc == 0);
	}
	cJSON *dk = NULL, *ok = NULL, *fk = NULL;
	if (rc == 0 && !row->keys_uploaded && crypto_device_keys(a, e->user_id, e->device_id, &dk, e->err) < 0)
		rc = -1;
	if (rc == 0 && crypto_otk_objects(a, e->user_id, e->device_id, &ok, e->err) < 0)
		rc = -1;
	if (rc == 0 && crypto_fallback_object(a, e->user_id, e->device_id, &fk, e->err) < 0)
		rc = -1;
	if (rc < 0) {
		cJSON_Delete(dk);
		cJSON_Delete(ok);
		cJSON_Delete(fk);
		return -1;
	}
	if (!dk && !cJSON_GetArraySize(ok) && !cJSON_GetArraySize(fk)) {
		cJSON_Delete(ok);
		cJSON_Delete(fk);
		return 0;
	}
	if (dk)
		cJSON_AddItemToObject(body, "device_keys", dk);
	cJSON_AddItemToObject(body, "one_time_keys", ok);
	e->fallback_in_flight = cJSON_GetArraySize(fk) > 0;
	cJSON_AddItemToObject(body, "fallback_keys", fk);
	return 1;
}

static int
upload_next(struct e2ee *e, int64_t now_ms, struct e2ee_req *r)
{
	struct store_account row;
	struct crypto_account *a = account_load(e, &row);
	if (!a)
		return -1;
	cJSON *body = cJSON_CreateObject();
	int rc = upload_body(e, a, &row, now_ms, body);
	if (rc < 0)
		log_warnx("%s: cannot prepare our keys for upload: %s", e->name, e->err);
	if (rc == 1) {
		char *s = print_json(body);
		buf_adds(&r->path, "/keys/upload");
		buf_adds(&r->body, s);
		free(s);
		e->keys_step = KS_UPLOAD;
	}
	cJSON_Delete(body);
	crypto_account_free(a);
	store_account_free(&row);
	return rc;
}

static enum e2ee_done_result
upload_done(struct e2ee *e, long status, const cJSON *j, int64_t now_ms)
{
	if (status != 200) {
		/* a reused key id with new content: our state went back in time (a restored backup) */
		log_err("%s: the server refused our keys (%ld %s: %s); a refused one-time key id means the "
			"encryption state was restored from a backup: start over with a new device", e->name, status,
			jstr(j, "errcode") ? jstr(j, "errcode") : "", jstr(j, "error") ? jstr(j, "error") : "");
	}
	struct store_account row;
	struct crypto_account *a = account_load(e, &row);
	if (!a)
		return E2EE_DONE_BACKOFF;
	bool first = !row.keys_uploaded;
	/* refused too: retrying the same keys would be refused forever */
	crypto_account_mark_published(a);
	row.keys_uploaded = row.keys_uploaded || status == 200;
	bool own;
	int rc = tx_begin(e, &own) ? account_save(e, a, &row) : -1;
	rc = tx_end(e, own, rc == 0);
	crypto_account_free(a);
	store_account_free(&row);
	if (rc < 0)
		return E2EE_DONE_BACKOFF;
	const cJSON *n = jget(jobj(j, "one_time_key_counts"), "signed_curve25519");
	if (status == 200) {
		e->otk_count = cJSON_IsNumber(n) ? (long)n->valuedouble : 0;
		e->upload_done_ms = now_ms;
		e->fallback_unused |= e->fallback_in_flight;
	}
	e->fallback_in_flight = false;
	if (first && status == 200)
		log_info("%s: device keys of %s uploaded", e->name, e->device_id);
	log_debug("%s: %ld one-time keys on the server", e->name, e->otk_count);
	return status == 200 ? E2EE_DONE_OK : E2EE_DONE_BACKOFF;
}

/* Our cross-signing keys, created (and committed) on first use. */
static int
xsign_load(struct e2ee *e, struct store_xsign *x, struct crypto_signing **master, struct crypto_signing **ssk)
{
	int rc = store_xsign_get(e->st, e->user_id, x);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		unsigned char *s1 = rnd(e, CRYPTO_SEED_LEN), *s2 = rnd(e, CRYPTO_SEED_LEN);
		char *p1 = NULL, *p2 = NULL;
		rc = crypto_signing_from_seed(s1, CRYPTO_SEED_LEN, master, e->err) == 0
			&& crypto_signing_from_seed(s2, CRYPTO_SEED_LEN, ssk, e->err) == 0
			&& crypto_signing_pickle(*master, pkey(e), &p1, e->err) == 0
			&& crypto_signing_pickle(*ssk, pkey(e), &p2, e->err) == 0 ? 0 : -1;
		free(s1);
		free(s2);
		*x = (struct store_xsign){ xstrdup(e->user_id), p1, p2, false };
		bool own;
		if (rc == 0)
			rc = tx_begin(e, &own) ? store_xsign_put(e->st, x) : -1;
		if (rc == 0)
			rc = tx_end(e, own, true);
		if (rc == 0)
			log_info("%s: created cross-signing keys for %s", e->name, e->user_id);
		return rc;
	}
	rc = crypto_signing_unpickle(x->master, pkey(e), master, e->err) == 0
		&& crypto_signing_unpickle(x->self_signing, pkey(e), ssk, e->err) == 0 ? 0 : -1;
	return rc;
}

/* The user-interactive auth answer: m.login.password with the configured password. */
static int
add_uia(struct e2ee *e, cJSON *body)
{
	char *pw;
	if (!e->hooks.password || e->hooks.password(e->hooks.arg, &pw) < 0) {
		log_warnx("%s: the server wants the account password to publish cross-signing keys, and there is "
			"no password_file: other users' clients may not share room keys with this device", e->name);
		return -1;
	}
	cJSON *a = cJSON_AddObjectToObject(body, "auth");
	cJSON_AddStringToObject(a, "type", "m.login.password");
	cJSON *id = cJSON_AddObjectToObject(a, "identifier");
	cJSON_AddStringToObject(id, "type", "m.id.user");
	cJSON_AddStringToObject(id, "user", e->user_id);
	cJSON_AddStringToObject(a, "password", pw);
	cJSON_AddStringToObject(a, "session", e->uia_session);
	explicit_bzero(pw, strlen(pw));
	free(pw);
	return 0;
}

static void
req_json(struct e2ee_req *r, const char *path, cJSON *body)
{
	char *s = print_json(body);
	buf_adds(&r->path, path);
	buf_adds(&r->body, s);
	explicit_bzero(s, strlen(s));   /* it may hold the password */
	free(s);
}

static int
xsign_next(struct e2ee *e, struct e2ee_req *r)
{
	struct store_xsign x = { 0 };
	struct crypto_signing *master = NULL, *ssk = NULL;
	int rc = xsign_load(e, &x, &master, &ssk);
	cJSON *mk = NULL, *sk = NULL, *body = NULL;
	if (rc == 0 && !x.uploaded) {
		rc = crypto_signing_key_object(master, e->user_id, "master", NULL, &mk, e->err) == 0
			&& crypto_signing_key_object(ssk, e->user_id, "self_signing", master, &sk, e->err) == 0 ? 1 : -1;
		body = cJSON_CreateObject();
		if (mk)
			cJSON_AddItemToObject(body, "master_key", mk);
		if (sk)
			cJSON_AddItemToObject(body, "self_signing_key", sk);
		if (rc == 1 && e->uia_session && add_uia(e, body) < 0) {
			e->xsign_gave_up = true;
			rc = 0;
		}
		if (rc == 1) {
			req_json(r, "/keys/device_signing/upload", body);
			e->keys_step = KS_XSIGN;
		}
	}
	if (rc < 0)
		log_warnx("%s: cannot prepare cross-signing keys: %s", e->name, e->err);
	cJSON_Delete(body);
	crypto_signing_free(master);
	crypto_signing_free(ssk);
	store_xsign_free(&x);
	return rc;
}

static bool
offers_password(const cJSON *j)
{
	const cJSON *f, *s;
	cJSON_ArrayForEach(f, jget(j, "flows"))
		cJSON_ArrayForEach(s, jget(f, "stages"))
			if (cJSON_IsString(s) && strcmp(s->valuestring, "m.login.password") == 0)
				return true;
	return false;
}

static enum e2ee_done_result
xsign_done(struct e2ee *e, long status, const cJSON *j)
{
	if (status == 401 && offers_password(j) && jstr(j, "session") && !e->uia_session) {
		/* servers before spec v1.11 (Synapse before 1.89) want the password even for the first keys */
		e->uia_session = xstrdup(jstr(j, "session"));
		log_info("%s: the server asks for the password to publish cross-signing keys", e->name);
		return E2EE_DONE_OK;
	}
	free(e->uia_session);
	e->uia_session = NULL;
	if (status != 200) {
		log_warnx("%s: the server refused our cross-signing keys (%ld %s: %s)%s", e->name, status,
			jstr(j, "errcode") ? jstr(j, "errcode") : "", jstr(j, "error") ? jstr(j, "error") : "",
			status == 401 ? ": check password_file" : "");
		e->xsign_gave_up = true;
		return E2EE_DONE_OK;
	}
	struct store_xsign x;
	if (store_xsign_get(e->st, e->user_id, &x) != 1)
		return E2EE_DONE_BACKOFF;
	x.uploaded = true;
	bool own;
	int rc = tx_begin(e, &own) ? store_xsign_put(e->st, &x) : -1;
	rc = tx_end(e, own, rc == 0);
	store_xsign_free(&x);
	if (rc == 0)
		log_info("%s: cross-signing keys published", e->name);
	return rc == 0 ? E2EE_DONE_OK : E2EE_DONE_BACKOFF;
}

/* Our device keys signed by our self-signing key, for /keys/signatures/upload. */
static int
signature_next(struct e2ee *e, struct e2ee_req *r)
{
	struct store_xsign x = { 0 };
	struct crypto_signing *master = NULL, *ssk = NULL;
	struct store_account row;
	struct crypto_account *a = NULL;
	cJSON *dk = NULL;
	int rc = xsign_load(e, &x, &master, &ssk);
	if (rc == 0 && !(a = account_load(e, &row)))
		rc = -1;
	if (rc == 0 && (crypto_device_keys(a, e->user_id, e->device_id, &dk, e->err) < 0
			|| crypto_signing_sign_json(ssk, dk, e->user_id, e->err) < 0))
		rc = -1;
	if (rc == 0) {
		cJSON *body = cJSON_CreateObject();
		cJSON_AddItemToObject(cJSON_AddObjectToObject(body, e->user_id), e->device_id, dk);
		dk = NULL;
		req_json(r, "/keys/signatures/upload", body);
		cJSON_Delete(body);
		e->keys_step = KS_SIGNATURE;
		rc = 1;
	}
	if (rc < 0)
		log_warnx("%s: cannot sign our device with our self-signing key: %s", e->name, e->err);
	cJSON_Delete(dk);
	if (a) {
		crypto_account_free(a);
		store_account_free(&row);
	}
	crypto_signing_free(master);
	crypto_signing_free(ssk);
	store_xsign_free(&x);
	return rc;
}

static enum e2ee_done_result
signature_done(struct e2ee *e, long status, const cJSON *j)
{
	const cJSON *f = jget(jobj(jobj(j, "failures"), e->user_id), e->device_id);
	if (status != 200 || f) {
		log_warnx("%s: the server refused the cross-signing signature of our device (%ld %s)", e->name, status,
			jstr(f, "errcode") ? jstr(f, "errcode") : jstr(j, "errcode") ? jstr(j, "errcode") : "");
		e->xsign_gave_up = true;
		return E2EE_DONE_OK;
	}
	struct store_account row;
	if (account_row(e, &row) < 0)
		return E2EE_DONE_BACKOFF;
	row.signed_by_us = true;
	bool own;
	int rc = tx_begin(e, &own) ? store_account_put(e->st, &row) : -1;
	rc = tx_end(e, own, rc == 0);
	store_account_free(&row);
	if (rc == 0)
		log_info("%s: device %s is cross-signed by our self-signing key", e->name, e->device_id);
	return rc == 0 ? E2EE_DONE_OK : E2EE_DONE_BACKOFF;
}

static int
keys_next(struct e2ee *e, int64_t now_ms, struct e2ee_req *r)
{
	struct store_account row;
	if (account_row(e, &row) < 0)
		return -1;
	bool uploaded = row.keys_uploaded, signed_by_us = row.signed_by_us;
	store_account_free(&row);
	e->keys_step = KS_NONE;
	int rc = upload_next(e, now_ms, r);
	if (rc != 0 || !uploaded || e->xsign_gave_up)
		return rc;
	rc = xsign_next(e, r);
	if (rc != 0 || e->xsign_gave_up || signed_by_us)
		return rc;
	return signature_next(e, r);
}

static enum e2ee_done_result
keys_done(struct e2ee *e, long status, const cJSON *j, int64_t now_ms)
{
	enum keys_step step = e->keys_step;
	e->keys_step = KS_NONE;
	switch (step) {
	case KS_UPLOAD:
		return upload_done(e, status, j, now_ms);
	case KS_XSIGN:
		return xsign_done(e, status, j);
	case KS_SIGNATURE:
		return signature_done(e, status, j);
	case KS_NONE:
		break;
	}
	return E2EE_DONE_OK;
}

/* ---------- device lists of the members of encrypted rooms ---------- */

static int
track(struct e2ee *e, const char *user_id)
{
	struct store_tracked t;
	int rc = store_tracked_get(e->st, user_id, &t);
	if (rc != 0) {
		if (rc == 1)
			store_tracked_free(&t, 1);
		return rc < 0 ? -1 : 0;
	}
	struct store_tracked n = { (char *)user_id, true, 0, NULL };
	return store_tracked_put(e->st, &n);
}

/* A device_lists change: outdated, and a /keys/query in flight for the user no longer clears that. */
static int
outdate(struct e2ee *e, const char *user_id)
{
	struct store_tracked t;
	int rc = store_tracked_get(e->st, user_id, &t);
	if (rc <= 0)
		return rc;
	t.outdated = true;
	t.generation++;
	rc = store_tracked_put(e->st, &t);
	store_tracked_free(&t, 1);
	return rc;
}

static void
query_clear(struct e2ee *e)
{
	for (size_t i = 0; i < e->nquery; i++)
		free(e->query[i].user_id);
	free(e->query);
	e->query = NULL;
	e->nquery = 0;
}

static int
query_next(struct e2ee *e, struct e2ee_req *r)
{
	if (!e->nquery) {   /* else a retry: the same users */
		struct store_tracked *v;
		size_t n;
		if (store_tracked_outdated(e->st, QUERY_MAX_USERS, &v, &n) < 0)
			return -1;
		e->query = n ? xcalloc(n, sizeof *e->query) : NULL;
		for (size_t i = 0; i < n; i++)
			e->query[i] = (struct query_user){ xstrdup(v[i].user_id), v[i].generation };
		e->nquery = n;
		store_tracked_free(v, n);
		free(v);
	}
	if (!e->nquery)
		return 0;
	cJSON *body = cJSON_CreateObject(), *dk = cJSON_AddObjectToObject(body, "device_keys");
	cJSON_AddNumberToObject(body, "timeout", 10000);
	for (size_t i = 0; i < e->nquery; i++)
		cJSON_AddArrayToObject(dk, e->query[i].user_id);
	req_json(r, "/keys/query", body);
	cJSON_Delete(body);
	return 1;
}

/* A cross-signing key object of user with usage and one ed25519 key, into out. */
static bool
single_key(const cJSON *k, const char *user, const char *usage, char out[CRYPTO_KEY_LEN])
{
	const cJSON *u, *keys = jobj(k, "keys");
	bool has_usage = false;
	cJSON_ArrayForEach(u, jget(k, "usage"))
		has_usage |= cJSON_IsString(u) && strcmp(u->valuestring, usage) == 0;
	if (!streq(jstr(k, "user_id"), user) || !has_usage || cJSON_GetArraySize(keys) != 1)
		return false;
	const cJSON *v = keys->child;
	if (!cJSON_IsString(v) || !is_key(v->valuestring) || strncmp(v->string, "ed25519:", 8) != 0
		|| strcmp(v->string + 8, v->valuestring) != 0)
		return false;
	memcpy(out, v->valuestring, CRYPTO_KEY_LEN);
	return true;
}

/* The user's self-signing key when their (first seen) master key signed it; NULL otherwise. */
static char *
self_signing_key(struct e2ee *e, struct store_tracked *t, const cJSON *j)
{
	const char *u = t->user_id;
	const cJSON *mk = jobj(jobj(j, "master_keys"), u), *sk = jobj(jobj(j, "self_signing_keys"), u);
	char master[CRYPTO_KEY_LEN], ssk[CRYPTO_KEY_LEN];
	if (!mk || !sk || !single_key(mk, u, "master", master) || !single_key(sk, u, "self_signing", ssk))
		return NULL;
	if (t->master && strcmp(t->master, master) != 0) {
		log_warnx("%s: %s shows a new master cross-signing key: not trusted (the first one stays pinned)",
			e->name, u);
		return NULL;
	}
	if (!t->master)
		t->master = xstrdup(master);
	if (crypto_verify_json(sk, u, master, master, e->err) < 0) {
		log_warnx("%s: the self-signing key of %s is not signed by their master key", e->name, u);
		return NULL;
	}
	return xstrdup(ssk);
}

/* A device no longer listed: deleted, and every room whose current key it holds rotates. */
static int
device_gone(struct e2ee *e, struct store_device *d)
{
	char **rooms;
	size_t n;
	d->deleted = true;
	if (store_device_put(e->st, d) < 0 || store_shared_rooms(e->st, d->user_id, d->device_id, &rooms, &n) < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = store_megolm_out_delete(e->st, rooms[i]) < 0 ? -1 : 0;
	log_info("%s: device %s of %s was deleted%s", e->name, d->device_id, d->user_id,
		n ? ": the room keys it held are rotated" : "");
	store_strv_free(rooms, n);
	return rc;
}

/* One device of a /keys/query answer: verified, pinned on first use, stored. */
static int
apply_device(struct e2ee *e, const char *user, const char *dev, const cJSON *obj, const char *ssk,
	const struct store_device *old)
{
	char name[512];
	snprintf(name, sizeof name, "curve25519:%s", dev);
	const char *curve = jstr(jobj(obj, "keys"), name);
	snprintf(name, sizeof name, "ed25519:%s", dev);
	const char *ed = jstr(jobj(obj, "keys"), name);
	if (!streq(jstr(obj, "user_id"), user) || !streq(jstr(obj, "device_id"), dev) || !is_key(curve)
		|| !is_key(ed) || crypto_verify_json(obj, user, dev, ed, e->err) < 0) {
		log_warnx("%s: device %.64s of %s: keys missing, malformed or not self-signed: ignored", e->name, dev, user);
		return 0;
	}
	if (streq(user, e->user_id) && streq(dev, e->device_id)) {
		if (!streq(ed, e->ed) || !streq(curve, e->curve))
			log_warnx("%s: the server shows other keys for our own device %s: ignored", e->name, dev);
		return 0;
	}
	if (old && (!streq(old->ed25519, ed) || !streq(old->curve25519, curve))) {
		log_warnx("%s: device %s of %s now shows other identity keys: refused, the first ones stay pinned",
			e->name, dev, user);
		return 0;
	}
	bool cross = ssk && crypto_verify_json(obj, user, ssk, ssk, e->err) == 0;
	struct store_device nd = { (char *)user, (char *)dev, (char *)ed, (char *)curve, cross, false };
	int verified, refused;
	if (store_device_put(e->st, &nd) < 0 || store_megolm_in_check(e->st, user, curve, ed, &verified, &refused) < 0)
		return -1;
	if (!old || old->deleted)
		log_info("%s: device %s of %s%s", e->name, dev, user, cross ? " (cross-signed)" : "");
	if (refused)
		log_warnx("%s: %d room keys claimed to come from device %s of %s with other keys: dropped", e->name,
			refused, dev, user);
	return 0;
}

static int
apply_devices(struct e2ee *e, const char *user, const cJSON *devs, const char *ssk)
{
	struct store_device *old;
	size_t nold;
	if (store_device_list(e->st, user, &old, &nold) < 0)
		return -1;
	bool *seen = xcalloc(nold + 1, sizeof *seen);
	int rc = 0;
	const cJSON *d;
	cJSON_ArrayForEach(d, devs) {
		size_t i = 0;
		while (i < nold && strcmp(old[i].device_id, d->string) != 0)
			i++;
		seen[i] = true;
		if ((rc = apply_device(e, user, d->string, d, ssk, i < nold ? &old[i] : NULL)) < 0)
			break;
	}
	for (size_t i = 0; rc == 0 && i < nold; i++)
		if (!seen[i] && !old[i].deleted)
			rc = device_gone(e, &old[i]);
	free(seen);
	store_device_free(old, nold);
	free(old);
	return rc;
}

static int
query_user(struct e2ee *e, const struct query_user *q, const cJSON *j)
{
	struct store_tracked t;
	int rc = store_tracked_get(e->st, q->user_id, &t);
	if (rc <= 0)
		return rc;   /* untracked meanwhile */
	const cJSON *devs = jobj(jobj(j, "device_keys"), q->user_id);
	if (!devs) {
		/* their server failed ("failures"): better an old list than a room that never answers */
		log_warnx("%s: no device list for %s in the answer; keeping the devices we knew", e->name, q->user_id);
	} else {
		char *ssk = self_signing_key(e, &t, j);
		rc = apply_devices(e, q->user_id, devs, ssk);
		free(ssk);
	}
	if (t.generation == q->generation)
		t.outdated = false;
	if (rc == 0)
		rc = store_tracked_put(e->st, &t);
	store_tracked_free(&t, 1);
	return rc;
}

static enum e2ee_done_result
query_done(struct e2ee *e, long status, const cJSON *j)
{
	if (status != 200) {
		log_warnx("%s: /keys/query refused (%ld %s)", e->name, status, jstr(j, "errcode") ? jstr(j, "errcode") : "");
		query_clear(e);
		return E2EE_DONE_BACKOFF;
	}
	bool own;
	int rc = tx_begin(e, &own) ? 0 : -1;
	for (size_t i = 0; i < e->nquery && rc == 0; i++)
		rc = query_user(e, &e->query[i], j);
	rc = tx_end(e, own, rc == 0);
	query_clear(e);
	return rc == 0 ? E2EE_DONE_OK : E2EE_DONE_BACKOFF;
}

/* ---------- receiving to-device messages ---------- */

/* A session with that device needs replacing (m.dummy), unless one was opened for it within the hour. */
static int
wedged(struct e2ee *e, const char *sender, const char *sender_key, int64_t now_ms)
{
	struct store_mark k;
	int rc = store_mark_get(e->st, MARK_DUMMY, sender_key, &k);
	store_mark_free(&k, 1);
	if (rc < 0)
		return -1;
	if (rc == 1 && now_ms - k.at_ms < E2EE_HOUR_MS) {
		log_info("%s: undecryptable Olm message from %s; a new session was opened within the hour", e->name,
			sender);
		return 0;
	}
	log_info("%s: undecryptable Olm message from %s: the session is wedged, a new one will be opened", e->name,
		sender);
	return store_mark_set(e->st, MARK_WEDGED, sender_key, sender, now_ms) < 0 || track(e, sender) < 0 ? -1 : 0;
}

/* Tries the peer's stored sessions, most recently used first; *matched: a pre-key message's session was found. */
static int
olm_try_sessions(struct e2ee *e, const struct e2ee_olm_msg *m, int64_t now_ms, char **plain, size_t *len,
	bool *matched)
{
	struct store_olm *v;
	size_t n;
	*matched = false;
	if (store_olm_list(e->st, m->sender_key, &v, &n) < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < n && i < OLM_SESSIONS_TRIED && !*plain && !*matched && rc == 0; i++) {
		struct crypto_olm *s;
		if (crypto_olm_unpickle(v[i].pickle, pkey(e), &s, e->err) < 0)
			continue;
		if (m->type == CRYPTO_OLM_PREKEY)
			*matched = crypto_olm_matches_inbound(s, m->sender_key, m->body, e->err) == 1;
		if ((m->type == CRYPTO_OLM_MESSAGE || *matched)
			&& crypto_olm_decrypt(s, (enum crypto_olm_type)m->type, m->body, plain, len, e->err) == 0) {
			char *p;
			rc = crypto_olm_pickle(s, pkey(e), &p, e->err);
			struct store_olm o = v[i];
			o.pickle = p;
			o.used_ms = now_ms;
			if (rc == 0)
				rc = store_olm_put(e->st, &o);
			free(p);
		}
		crypto_olm_free(s);
	}
	store_olm_free(v, n);
	free(v);
	return rc;
}

/* A new inbound session from a pre-key message; the one-time key it used goes only now (spec). */
static int
olm_new_inbound(struct e2ee *e, const struct e2ee_olm_msg *m, int64_t now_ms, char **plain, size_t *len)
{
	struct store_account row;
	struct crypto_account *a = account_load(e, &row);
	struct crypto_olm *s = NULL;
	if (!a)
		return -1;
	int rc = 0;
	if (crypto_olm_inbound(a, m->sender_key, m->body, &s, plain, len, e->err) == 0) {
		char id[CRYPTO_KEY_LEN], *p = NULL;
		rc = crypto_olm_id(s, id, e->err) == 0 && crypto_olm_pickle(s, pkey(e), &p, e->err) == 0 ? 0 : -1;
		struct store_olm o = { id, (char *)m->sender_key, p, now_ms, now_ms };
		if (rc == 0)
			rc = store_olm_put(e->st, &o) < 0 || account_save(e, a, &row) < 0 ? -1 : 0;
		free(p);
		crypto_olm_free(s);
		if (rc < 0) {
			explicit_bzero(*plain, *len);
			free(*plain);
			*plain = NULL;
		}
	} else {
		log_debug("%s: no new Olm session from the pre-key message: %s", e->name, e->err);
	}
	crypto_account_free(a);
	store_account_free(&row);
	return rc;
}

static int
room_key(struct e2ee *e, const char *sender, const char *sender_key, const char *ed, bool verified,
	const cJSON *content, int64_t now_ms)
{
	struct e2ee_room_key k;
	const char *why;
	struct crypto_megolm_in *g;
	char id[CRYPTO_KEY_LEN];
	if (e2ee_room_key_parse(content, &k, &why) < 0 || crypto_megolm_in_create(k.session_key, &g, e->err) < 0) {
		log_warnx("%s: room key from %s refused: %s", e->name, sender, why ? why : e->err);
		return 0;
	}
	int rc = 0;   /* -1 only when the store failed: a bad key is refused, not a reason to replay the batch */
	uint32_t first = crypto_megolm_in_first_index(g);
	struct store_megolm_in old = { 0 };
	char *elsewhere = NULL;
	if (crypto_megolm_in_id(g, id, e->err) < 0 || strcmp(id, k.session_id) != 0) {
		why = "its session_id is not the session's";
	} else if ((rc = store_megolm_in_get(e->st, k.room_id, k.session_id, &old)) == 1) {
		if (!streq(old.sender_key, sender_key) || !streq(old.sender, sender))
			why = "a key for a known session from another device";
		else if (first >= old.first_index)
			why = "already known from an earlier index";
	} else if (rc == 0 && (elsewhere = store_megolm_in_room_of(e->st, k.session_id))) {
		why = "the session belongs to another room";
	}
	char *p = NULL;
	if (rc >= 0 && !why && crypto_megolm_in_pickle(g, pkey(e), &p, e->err) < 0)
		why = e->err;
	if (rc >= 0 && !why) {
		struct store_megolm_in m = { (char *)k.room_id, (char *)k.session_id, (char *)sender, (char *)sender_key,
			(char *)ed, verified, first, p, now_ms };
		rc = store_megolm_in_put(e->st, &m);
		if (rc == 0)
			log_info("%s: room key for %s from %s (session %.8s, from index %u%s)", e->name, k.room_id, sender,
				k.session_id, first, verified ? "" : ", device not known yet");
	} else if (why) {
		log_info("%s: room key for %s from %s not kept: %s", e->name, k.room_id, sender, why);
	}
	free(p);
	free(elsewhere);
	store_megolm_in_free(&old);
	crypto_megolm_in_free(g);
	return rc < 0 ? -1 : 0;
}

/* The Olm payload's sender keys against the device we know for sender_key; true when it is known and matches. */
static int
olm_sender_device(struct e2ee *e, const char *sender, const char *sender_key, const char *ed, bool *verified)
{
	struct store_device d;
	int rc = store_device_by_curve(e->st, sender_key, &d);
	*verified = false;
	if (rc < 0)
		return -1;
	if (rc == 1 && !d.deleted) {
		bool ok = streq(d.user_id, sender) && streq(d.ed25519, ed);
		store_device_free(&d, 1);
		*verified = ok;
		return ok ? 0 : 1;
	}
	if (rc == 1)
		store_device_free(&d, 1);
	/* checked once /keys/query tells whose device that is (store_megolm_in_check) */
	return track(e, sender) < 0 || outdate(e, sender) < 0 ? -1 : 0;
}

static int
olm_event(struct e2ee *e, const struct mx_to_device *td, int64_t now_ms)
{
	struct e2ee_olm_msg m;
	const char *why;
	if (e2ee_olm_parse(td->content, e->curve, &m, &why) < 0 || strcmp(m.sender_key, e->curve) == 0) {
		log_debug("%s: to-device message from %s ignored: %s", e->name, td->sender, why ? why : "our own");
		return 0;
	}
	char *plain = NULL;
	size_t len = 0;
	bool matched;
	if (olm_try_sessions(e, &m, now_ms, &plain, &len, &matched) < 0)
		return -1;
	if (!plain && m.type == CRYPTO_OLM_PREKEY && !matched && olm_new_inbound(e, &m, now_ms, &plain, &len) < 0)
		return -1;
	if (!plain)
		return wedged(e, td->sender, m.sender_key, now_ms);
	struct e2ee_olm_payload p;
	int rc = e2ee_olm_payload_check(plain, len, td->sender, e->user_id, e->ed, &p, &why);
	explicit_bzero(plain, len);
	free(plain);
	if (rc < 0) {
		log_warnx("%s: Olm message from %s refused: %s", e->name, td->sender, why);
		return 0;
	}
	bool verified;
	rc = olm_sender_device(e, td->sender, m.sender_key, p.sender_ed25519, &verified);
	if (rc == 1)
		log_warnx("%s: Olm message from %s refused: its keys are not those of the sender's device", e->name,
			td->sender);
	else if (rc == 0 && strcmp(p.type, "m.room_key") == 0)
		rc = room_key(e, td->sender, m.sender_key, p.sender_ed25519, verified, p.content, now_ms);
	else if (rc == 0)
		log_debug("%s: Olm %s from %s", e->name, p.type, td->sender);
	json_wipe(p.root);   /* it carried a session key */
	cJSON_Delete(p.root);
	return rc < 0 ? -1 : 0;
}

/* A member's client refuses us keys; for m.unverified the room hears why, at most hourly. */
static int
withheld_event(struct e2ee *e, const struct mx_to_device *td, int64_t now_ms)
{
	struct e2ee_withheld w;
	const char *why;
	if (e2ee_withheld_parse(td->content, &w, &why) < 0) {
		log_debug("%s: m.room_key.withheld from %s ignored: %s", e->name, td->sender, why);
		return 0;
	}
	log_info("%s: %s withholds room keys in %s (%.40s)", e->name, td->sender, w.room_id, w.code);
	char *ours = store_member_get(e->st, w.room_id, e->user_id), *theirs = store_member_get(e->st, w.room_id,
		td->sender);
	bool member = streq(ours, "join") && theirs;
	free(ours);
	free(theirs);
	if (strcmp(w.code, "m.unverified") != 0 || !member || !e->hooks.notice)
		return 0;
	struct store_mark k;
	int rc = store_mark_get(e->st, MARK_WITHHELD, w.room_id, &k);
	store_mark_free(&k, 1);
	if (rc < 0 || (rc == 1 && now_ms - k.at_ms < E2EE_HOUR_MS))
		return rc < 0 ? -1 : 0;
	struct buf text, fp;
	buf_init(&text);
	buf_init(&fp);
	e2ee_fingerprint(e, &fp);
	buf_printf(&text, "I cannot read messages from %s in this room: their app only shares its encryption keys "
		"with verified devices, and it has not verified mine. To let me answer, verify my device %s "
		"(fingerprint %s), or allow sharing keys with unverified devices.", td->sender, e->device_id, fp.s);
	e->hooks.notice(e->hooks.arg, w.room_id, td->sender, text.s);
	buf_free(&text);
	buf_free(&fp);
	return store_mark_set(e->st, MARK_WITHHELD, w.room_id, td->sender, now_ms);
}

static int
to_device(struct e2ee *e, const struct mx_to_device *td, int64_t now_ms)
{
	if (strcmp(td->type, "m.room.encrypted") == 0)
		return olm_event(e, td, now_ms);
	if (strcmp(td->type, "m.room_key.withheld") == 0)
		return withheld_event(e, td, now_ms);
	if (strcmp(td->type, "m.room_key") == 0)
		log_warnx("%s: an unencrypted m.room_key from %s: refused (room keys come only over Olm)", e->name,
			td->sender);
	else
		log_debug("%s: to-device %.64s from %s ignored", e->name, td->type, td->sender);
	return 0;
}

int
e2ee_sync(struct e2ee *e, const struct mx_crypto *c, int64_t sent_ms, int64_t now_ms)
{
	int rc = 0;
	for (size_t i = 0; i < c->n_to_device && rc == 0; i++)
		rc = to_device(e, &c->to_device[i], now_ms);
	for (size_t i = 0; i < c->nchanged && rc == 0; i++)
		rc = outdate(e, c->changed[i]);
	for (size_t i = 0; i < c->nleft && rc == 0; i++)
		if (strcmp(c->left[i], e->user_id) != 0)
			rc = store_tracked_delete(e->st, c->left[i]);
	/* counts of a sync sent before our last upload answered are stale */
	if (sent_ms > e->upload_done_ms) {
		e->otk_count = c->otk_signed_curve25519;
		e->fallback_known = c->fallback_known;
		e->fallback_unused = c->fallback_unused;
	}
	return rc;
}

/* ---------- rooms and members ---------- */

int
e2ee_room_encryption(struct e2ee *e, const char *room_id, const cJSON *content)
{
	const cJSON *ms = jget(content, "rotation_period_ms"), *n = jget(content, "rotation_period_msgs");
	int64_t rot_ms = cJSON_IsNumber(ms) && ms->valuedouble >= 1 && ms->valuedouble < 9e15
		? (int64_t)ms->valuedouble : E2EE_ROTATION_MS;
	int64_t rot_n = cJSON_IsNumber(n) && n->valuedouble >= 1 && n->valuedouble < 9e15
		? (int64_t)n->valuedouble : E2EE_ROTATION_MSGS;
	if (!streq(jstr(content, "algorithm"), CRYPTO_ALG_MEGOLM))
		log_warnx("%s: %s asks for encryption with %.64s; the bot uses %s there", e->name, room_id,
			jstr(content, "algorithm") ? jstr(content, "algorithm") : "no algorithm", CRYPTO_ALG_MEGOLM);
	char **users;
	size_t nu;
	if (store_room_enc_put(e->st, room_id, rot_ms, rot_n) < 0 || store_member_list(e->st, room_id, &users, &nu) < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < nu && rc == 0; i++)
		rc = track(e, users[i]);
	store_strv_free(users, nu);
	return rc;
}

int
e2ee_member(struct e2ee *e, const char *room_id, const char *user_id, const char *membership, bool encrypted)
{
	bool in = streq(membership, "join") || streq(membership, "invite");
	if (in) {
		if (store_member_set(e->st, room_id, user_id, membership) < 0)
			return -1;
		return encrypted ? track(e, user_id) : 0;
	}
	char *was = store_member_get(e->st, room_id, user_id);
	bool member = was != NULL;
	free(was);
	if (!member)
		return 0;
	if (store_member_set(e->st, room_id, user_id, NULL) < 0)
		return -1;
	/* whoever leaves must not read what follows: a new session, not shared with them */
	int n = encrypted && strcmp(user_id, e->user_id) != 0 ? store_megolm_out_delete(e->st, room_id) : 0;
	if (n > 0)
		log_info("%s: %s left %s: its room key is rotated", e->name, user_id, room_id);
	return n < 0 ? -1 : 0;
}

int
e2ee_room_left(struct e2ee *e, const char *room_id)
{
	return store_member_forget_room(e->st, room_id) < 0 || store_megolm_out_delete(e->st, room_id) < 0 ? -1 : 0;
}

/* ---------- decrypting room events ---------- */

static enum e2ee_in
park(struct e2ee *e, const char *room_id, const struct mx_event *ev, const char *session_id, bool answer,
	int64_t now_ms, const char *why)
{
	char *json = print_json(ev->raw);
	struct store_awaiting a = { (char *)ev->event_id, (char *)room_id, (char *)session_id, json, now_ms, answer };
	int rc = store_awaiting_put(e->st, &a);
	free(json);
	log_info("%s: %s in %s waits: %s", e->name, ev->event_id, room_id, why);
	return rc < 0 ? E2EE_IN_ERROR : E2EE_IN_WAIT;
}

static enum e2ee_in
refuse(struct e2ee *e, const char *room_id, const struct mx_event *ev, const char *why)
{
	log_warnx("%s: encrypted event %.80s in %s from %s refused: %s", e->name, ev->event_id, room_id, ev->sender,
		why);
	store_awaiting_delete(e->st, ev->event_id);
	return E2EE_IN_DROP;
}

/* libolm has no replay check: a message index decrypts under one event id only. */
static const char *
replay_check(struct e2ee *e, const char *session_id, uint32_t index, const struct mx_event *ev, bool *failed)
{
	char *seen;
	int rc = store_megolm_index_get(e->st, session_id, index, &seen);
	const char *why = NULL;
	if (rc == 1 && strcmp(seen, ev->event_id) != 0)
		why = "a replay: its message index was already used by another event";
	else if (rc == 0 && store_megolm_index_put(e->st, session_id, index, ev->event_id, ev->ts_ms) < 0)
		rc = -1;
	*failed = rc < 0;
	free(seen);
	return why;
}

static enum e2ee_in
decrypt_with(struct e2ee *e, const char *room_id, const struct mx_event *ev, const struct e2ee_megolm_msg *mm,
	const struct store_megolm_in *s, cJSON **out)
{
	struct crypto_megolm_in *g;
	char *plain = NULL;
	size_t len = 0;
	uint32_t index;
	const char *why;
	bool failed = false;
	if (crypto_megolm_in_unpickle(s->pickle, pkey(e), &g, e->err) < 0)
		return refuse(e, room_id, ev, e->err);
	int rc = crypto_megolm_in_decrypt(g, mm->ciphertext, &plain, &len, &index, e->err);
	crypto_megolm_in_free(g);
	if (rc < 0)
		return refuse(e, room_id, ev, e->err);
	why = replay_check(e, mm->session_id, index, ev, &failed);
	if (!why && !failed)
		*out = e2ee_megolm_event(plain, len, ev, room_id, mm->relates_to, &why);
	explicit_bzero(plain, len);
	free(plain);
	if (failed)
		return E2EE_IN_ERROR;
	if (why)
		return refuse(e, room_id, ev, why);
	store_awaiting_delete(e->st, ev->event_id);
	return E2EE_IN_OK;
}

enum e2ee_in
e2ee_decrypt(struct e2ee *e, const char *room_id, const struct mx_event *ev, bool answer, int64_t now_ms,
	cJSON **out)
{
	struct e2ee_megolm_msg mm;
	const char *why;
	*out = NULL;
	if (strcmp(ev->type, "m.room.encrypted") != 0)
		return E2EE_IN_PLAIN;
	if (!ev->event_id || !ev->sender)
		return E2EE_IN_DROP;
	if (e2ee_megolm_parse(ev->content, &mm, &why) < 0)
		return refuse(e, room_id, ev, why);
	if (strcmp(ev->sender, e->user_id) == 0)
		return E2EE_IN_DROP;   /* our own: never answered, nothing to learn */
	struct store_megolm_in s;
	int rc = store_megolm_in_get(e->st, room_id, mm.session_id, &s);
	if (rc < 0)
		return E2EE_IN_ERROR;
	if (rc == 0) {
		char *other = store_megolm_in_room_of(e->st, mm.session_id);
		bool moved = other != NULL;
		free(other);
		return moved ? refuse(e, room_id, ev, "its session belongs to another room (moved ciphertext)")
			: park(e, room_id, ev, mm.session_id, answer, now_ms, "its room key has not arrived yet");
	}
	enum e2ee_in r;
	if (strcmp(s.sender, ev->sender) != 0)
		r = refuse(e, room_id, ev, "its session was shared by another user");
	else if (!s.verified)
		r = track(e, ev->sender) < 0 ? E2EE_IN_ERROR
			: park(e, room_id, ev, mm.session_id, answer, now_ms, "the sender's device keys are not known yet");
	else
		r = decrypt_with(e, room_id, ev, &mm, &s, out);
	store_megolm_in_free(&s);
	return r;
}

int
e2ee_ready(struct e2ee *e, e2ee_ready_cb cb, void *arg)
{
	struct store_awaiting *v;
	size_t n;
	if (store_awaiting_ready(e->st, &v, &n) < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		cJSON *ev = cJSON_Parse(v[i].event);
		if (ev)
			cb(arg, v[i].room_id, ev, v[i].answer);
		cJSON_Delete(ev);
		/* decrypted or refused by now: never offered twice */
		rc = store_awaiting_delete(e->st, v[i].event_id) < 0 ? -1 : 0;
	}
	store_awaiting_free(v, n);
	free(v);
	return rc;
}

/* ---------- sending ---------- */

static int64_t
mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* obj[key] as an object, added when missing. */
static cJSON *
obj_child(cJSON *obj, const char *key)
{
	cJSON *c = cJSON_GetObjectItemCaseSensitive(obj, key);
	return c ? c : cJSON_AddObjectToObject(obj, key);
}

static void
want_add(struct e2ee *e, const char *user_id, const char *device_id, bool dummy)
{
	for (size_t i = 0; i < e->nwant; i++) {
		if (strcmp(e->want[i].user_id, user_id) == 0 && strcmp(e->want[i].device_id, device_id) == 0) {
			e->want[i].dummy |= dummy;
			return;
		}
	}
	for (size_t i = 0; i < e->nclaiming; i++)
		if (strcmp(e->claiming[i].user_id, user_id) == 0 && strcmp(e->claiming[i].device_id, device_id) == 0)
			return;
	if (e->nwant >= WANT_MAX)
		return;
	e->want = xrealloc(e->want, (e->nwant + 1) * sizeof *e->want);
	e->want[e->nwant++] = (struct want){ xstrdup(user_id), xstrdup(device_id), dummy };
}

/* The Olm payload {type, content, sender, keys, recipient, ...} encrypted with s (changed) for d, into messages. */
static int
olm_wrap(struct e2ee *e, struct crypto_olm *s, const struct store_device *d, const char *type, const cJSON *content,
	cJSON *messages)
{
	cJSON *p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "type", type);
	cJSON_AddItemToObject(p, "content", cJSON_Duplicate(content, true));
	cJSON_AddStringToObject(p, "sender", e->user_id);
	cJSON_AddStringToObject(p, "sender_device", e->device_id);   /* nio wants it on m.dummy */
	cJSON_AddStringToObject(cJSON_AddObjectToObject(p, "keys"), "ed25519", e->ed);
	cJSON_AddStringToObject(p, "recipient", d->user_id);
	cJSON_AddStringToObject(cJSON_AddObjectToObject(p, "recipient_keys"), "ed25519", d->ed25519);
	char *plain = print_json(p);
	json_wipe(p);
	cJSON_Delete(p);
	size_t rl = crypto_olm_encrypt_random_len(s), n = strlen(plain);
	unsigned char *r = rnd(e, rl);
	enum crypto_olm_type t;
	char *body;
	int rc = crypto_olm_encrypt(s, plain, n, r, rl, &t, &body, e->err);
	free(r);
	explicit_bzero(plain, n);
	free(plain);
	if (rc < 0) {
		log_warnx("%s: cannot Olm-encrypt for device %s of %s: %s", e->name, d->device_id, d->user_id, e->err);
		return -1;
	}
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "algorithm", CRYPTO_ALG_OLM);
	cJSON_AddStringToObject(c, "sender_key", e->curve);
	cJSON *ct = cJSON_AddObjectToObject(cJSON_AddObjectToObject(c, "ciphertext"), d->curve25519);
	cJSON_AddNumberToObject(ct, "type", t);
	cJSON_AddStringToObject(ct, "body", body);
	free(body);
	cJSON_AddItemToObject(obj_child(messages, d->user_id), d->device_id, c);
	return 0;
}

/* Queues {messages} (taken) as one to-device request: sent after the caller commits. */
static int
queue_to_device(struct e2ee *e, const char *type, cJSON *messages, const char *session_id, int64_t now_ms)
{
	unsigned char r[16];
	char txn[40] = "kbd";
	e->hooks.random(e->hooks.arg, r, sizeof r);
	for (size_t i = 0; i < sizeof r; i++)
		snprintf(txn + 3 + 2 * i, 3, "%02x", r[i]);
	cJSON *body = cJSON_CreateObject();
	cJSON_AddItemToObject(body, "messages", messages);
	char *s = print_json(body);
	cJSON_Delete(body);
	struct store_todev t = { 0, txn, (char *)type, s, (char *)session_id, now_ms };
	int rc = store_todev_add(e->st, &t);
	explicit_bzero(s, strlen(s));
	free(s);
	return rc;
}

/* Pickles s back into o and stores it. */
static int
olm_store(struct e2ee *e, struct crypto_olm *s, struct store_olm *o)
{
	char *p;
	if (crypto_olm_pickle(s, pkey(e), &p, e->err) < 0)
		return -1;
	char *old = o->pickle;
	o->pickle = p;
	int rc = store_olm_put(e->st, o);
	o->pickle = old;
	free(p);
	return rc;
}

/* One room's key, shared with the devices of its members inside one transaction. */
struct share {
	struct e2ee *e;
	const char *room_id;
	const struct store_megolm_out *out;
	char *session_key;            /* valid from index on; secret */
	uint32_t index;
	cJSON *messages;
	size_t nmsg;
	bool need_claim;
	int64_t now_ms;
};

/* No Olm session with d: claim a key for it, or, when a claim found none within the hour, withhold once. */
static int
share_no_session(struct share *sh, const struct store_device *d)
{
	struct e2ee *e = sh->e;
	struct buf key;
	struct store_mark k;
	buf_init(&key);
	buf_printf(&key, "%s|%s", d->user_id, d->device_id);
	int rc = store_mark_get(e->st, MARK_NO_OLM, key.s, &k);
	if (rc == 1 && sh->now_ms - k.at_ms < E2EE_HOUR_MS) {
		rc = store_shared_put(e->st, sh->out->session_id, d->user_id, d->device_id, -1);
		if (rc == 0 && !k.value) {
			cJSON *m = cJSON_CreateObject(), *c = cJSON_CreateObject();
			cJSON_AddStringToObject(c, "algorithm", CRYPTO_ALG_MEGOLM);
			cJSON_AddStringToObject(c, "room_id", sh->room_id);
			cJSON_AddStringToObject(c, "session_id", sh->out->session_id);
			cJSON_AddStringToObject(c, "sender_key", e->curve);
			cJSON_AddStringToObject(c, "code", "m.no_olm");
			cJSON_AddStringToObject(c, "reason", "Unable to establish a secure channel.");
			cJSON_AddItemToObject(obj_child(m, d->user_id), d->device_id, c);
			rc = queue_to_device(e, "m.room_key.withheld", m, NULL, sh->now_ms) < 0
				|| store_mark_set(e->st, MARK_NO_OLM, key.s, "sent", k.at_ms) < 0 ? -1 : 0;
		}
	} else if (rc == 0 || rc == 1) {
		want_add(e, d->user_id, d->device_id, false);
		sh->need_claim = true;
		rc = 0;
	}
	store_mark_free(&k, 1);
	buf_free(&key);
	return rc;
}

static int
share_over(struct share *sh, const struct store_device *d, struct store_olm *o)
{
	struct e2ee *e = sh->e;
	struct crypto_olm *s;
	if (crypto_olm_unpickle(o->pickle, pkey(e), &s, e->err) < 0) {
		log_warnx("%s: cannot open the Olm session with %s %s: %s", e->name, d->user_id, d->device_id, e->err);
		return 0;
	}
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "algorithm", CRYPTO_ALG_MEGOLM);
	cJSON_AddStringToObject(c, "room_id", sh->room_id);
	cJSON_AddStringToObject(c, "session_id", sh->out->session_id);
	cJSON_AddStringToObject(c, "session_key", sh->session_key);
	int rc = olm_wrap(e, s, d, "m.room_key", c, sh->messages);
	json_wipe(c);
	cJSON_Delete(c);
	if (rc == 0)
		rc = olm_store(e, s, o) < 0
			|| store_shared_put(e->st, sh->out->session_id, d->user_id, d->device_id, sh->index) < 0 ? -1 : 0;
	crypto_olm_free(s);
	sh->nmsg += rc == 0;
	return rc;
}

static int
share_device(struct share *sh, const struct store_device *d)
{
	struct e2ee *e = sh->e;
	int64_t index;
	int rc = store_shared_get(e->st, sh->out->session_id, d->user_id, d->device_id, &index);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	struct store_olm *v;
	size_t n;
	if (store_olm_list(e->st, d->curve25519, &v, &n) < 0)
		return -1;
	rc = n ? share_over(sh, d, &v[0]) : share_no_session(sh, d);
	store_olm_free(v, n);
	free(v);
	return rc;
}

/* Whether the room key goes to d at all. */
static bool
share_with(const struct e2ee *e, const struct store_device *d)
{
	if (d->deleted || (strcmp(d->user_id, e->user_id) == 0 && strcmp(d->device_id, e->device_id) == 0))
		return false;
	return d->cross_signed || !e->require_cross_signed;
}

static int
share_users(struct share *sh, char **users, size_t nu)
{
	int rc = 0;
	for (size_t i = 0; i < nu && rc == 0; i++) {
		struct store_device *v;
		size_t n;
		if (store_device_list(sh->e->st, users[i], &v, &n) < 0)
			return -1;
		for (size_t j = 0; j < n && rc == 0; j++)
			if (share_with(sh->e, &v[j]))
				rc = share_device(sh, &v[j]);
		store_device_free(v, n);
		free(v);
	}
	return rc;
}

/* Shares the room key with every device that lacks it: READY once all have it (their to-device sent). */
static enum e2ee_seal
share(struct e2ee *e, const char *room_id, char **users, size_t nu, const struct store_megolm_out *out,
	struct crypto_megolm_out *g, int64_t now_ms)
{
	int64_t t0 = mono_us();
	struct share sh = { e, room_id, out, NULL, crypto_megolm_out_index(g), cJSON_CreateObject(), 0, false, now_ms };
	if (crypto_megolm_out_key(g, &sh.session_key, e->err) < 0) {
		cJSON_Delete(sh.messages);
		return E2EE_SEAL_WAIT;
	}
	bool own;
	int rc = tx_begin(e, &own) ? share_users(&sh, users, nu) : -1;
	if (rc == 0 && sh.nmsg) {
		rc = queue_to_device(e, "m.room.encrypted", sh.messages, out->session_id, now_ms);
		sh.messages = NULL;
		crash(e, "share-before-commit");
	}
	rc = tx_end(e, own, rc == 0);
	cJSON_Delete(sh.messages);
	explicit_bzero(sh.session_key, strlen(sh.session_key));
	free(sh.session_key);
	if (rc == 0 && sh.nmsg)
		log_debug("%s: room key of %s shared with %zu devices in %lld us (Olm encrypt and commit)", e->name,
			room_id, sh.nmsg, (long long)(mono_us() - t0));
	if (rc < 0 || sh.need_claim)
		return E2EE_SEAL_WAIT;
	int pending = store_todev_pending(e->st, out->session_id);
	return pending == 0 ? E2EE_SEAL_READY : E2EE_SEAL_WAIT;
}

/* The room's outbound session: the stored one, or a new one (committed) when none or due for rotation. */
static int
outbound(struct e2ee *e, const char *room_id, int64_t now_ms, struct store_megolm_out *m, struct crypto_megolm_out **g)
{
	int64_t rot_ms, rot_n;
	if (store_room_enc_get(e->st, room_id, &rot_ms, &rot_n) <= 0) {
		rot_ms = E2EE_ROTATION_MS;
		rot_n = E2EE_ROTATION_MSGS;
	}
	*g = NULL;
	int rc = store_megolm_out_get(e->st, room_id, m);
	if (rc < 0)
		return -1;
	if (rc == 1 && crypto_megolm_out_unpickle(m->pickle, pkey(e), g, e->err) < 0)
		log_warnx("%s: cannot open the room key of %s (%s): a new one replaces it", e->name, room_id, e->err);
	if (*g && (now_ms - m->created_ms >= rot_ms || crypto_megolm_out_index(*g) >= (uint64_t)rot_n)) {
		log_info("%s: the room key of %s is rotated (%lld messages or %lld ms reached)", e->name, room_id,
			(long long)rot_n, (long long)rot_ms);
		crypto_megolm_out_free(*g);
		*g = NULL;
	}
	if (*g)
		return 0;
	store_megolm_out_free(m);
	size_t rl = crypto_megolm_out_random_len();
	unsigned char *r = rnd(e, rl);
	char id[CRYPTO_KEY_LEN], *p = NULL;
	rc = crypto_megolm_out_create(r, rl, g, e->err);
	free(r);
	if (rc == 0 && (crypto_megolm_out_id(*g, id, e->err) < 0 || crypto_megolm_out_pickle(*g, pkey(e), &p, e->err) < 0))
		rc = -1;
	*m = (struct store_megolm_out){ xstrdup(room_id), xstrdup(rc == 0 ? id : ""), p, now_ms };
	bool own;
	if (rc == 0)
		rc = tx_begin(e, &own) ? store_megolm_out_put(e->st, m) : -1;
	if (rc == 0)
		rc = tx_end(e, own, true);
	if (rc < 0) {
		crypto_megolm_out_free(*g);
		*g = NULL;
		return -1;
	}
	log_info("%s: new room key for %s (session %.8s)", e->name, room_id, id);
	return 0;
}

/* Every member's device list is known and current; else WAIT while /keys/query runs. */
static enum e2ee_seal
members_ready(struct e2ee *e, const char *room_id, char **users, size_t nu)
{
	if (!nu) {
		log_info("%s: no members of %s known yet: the answer waits", e->name, room_id);
		return E2EE_SEAL_WAIT;
	}
	bool own, wait = false;
	int rc = tx_begin(e, &own) ? 0 : -1;
	for (size_t i = 0; i < nu && rc == 0; i++) {
		struct store_tracked t;
		int got = store_tracked_get(e->st, users[i], &t);
		if (got == 1)
			wait |= t.outdated;
		else
			wait = true;
		if (got == 1)
			store_tracked_free(&t, 1);
		rc = got < 0 ? -1 : got == 0 ? track(e, users[i]) : 0;
	}
	rc = tx_end(e, own, rc == 0);
	return rc < 0 || wait ? E2EE_SEAL_WAIT : E2EE_SEAL_READY;
}

static void
reply_delay(struct e2ee *e, const char *reply_to)
{
	for (unsigned i = 0; reply_to && i < RECENT_DECRYPTS; i++) {
		if (e->recent[i].t_us && strcmp(e->recent[i].id, reply_to) == 0) {
			log_debug("%s: reply to %s encrypted %lld us after its decryption began", e->name, reply_to,
				(long long)(mono_us() - e->recent[i].t_us));
			e->recent[i].t_us = 0;
		}
	}
}

void
e2ee_note_decrypt(struct e2ee *e, const char *event_id, int64_t t_us)
{
	unsigned i = e->nrecent++ % RECENT_DECRYPTS;
	snprintf(e->recent[i].id, sizeof e->recent[i].id, "%s", event_id);
	e->recent[i].t_us = t_us;
}

/* Megolm-encrypts the row's content (m.relates_to stays outside: spec), stores and commits it. */
static enum e2ee_seal
encrypt_row(struct e2ee *e, struct store_out *o, struct store_megolm_out *m, struct crypto_megolm_out *g)
{
	cJSON *content = cJSON_Parse(o->content);
	if (!cJSON_IsObject(content)) {
		cJSON_Delete(content);
		log_warnx("%s: queued answer for %s is not a JSON object: dropped", e->name, o->room_id);
		return E2EE_SEAL_DROP;
	}
	cJSON *rel = cJSON_DetachItemFromObjectCaseSensitive(content, "m.relates_to");
	cJSON *p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "type", o->event_type);
	cJSON_AddItemToObject(p, "content", content);
	cJSON_AddStringToObject(p, "room_id", o->room_id);
	char *plain = print_json(p), *ct = NULL, *pickle = NULL;
	json_wipe(p);
	cJSON_Delete(p);
	size_t n = strlen(plain);
	int rc = crypto_megolm_out_encrypt(g, plain, n, &ct, NULL, e->err);
	explicit_bzero(plain, n);
	free(plain);
	if (rc == 0)
		rc = crypto_megolm_out_pickle(g, pkey(e), &pickle, e->err);
	cJSON *sealed = cJSON_CreateObject();
	cJSON_AddStringToObject(sealed, "algorithm", CRYPTO_ALG_MEGOLM);
	cJSON_AddStringToObject(sealed, "sender_key", e->curve);   /* deprecated, but nio 0.20 requires it */
	cJSON_AddStringToObject(sealed, "device_id", e->device_id);
	cJSON_AddStringToObject(sealed, "session_id", m->session_id);
	cJSON_AddStringToObject(sealed, "ciphertext", ct ? ct : "");
	if (rel)
		cJSON_AddItemToObject(sealed, "m.relates_to", rel);
	char *s = print_json(sealed);
	cJSON_Delete(sealed);
	free(ct);
	free(m->pickle);
	m->pickle = pickle;
	bool own;
	if (rc == 0)
		rc = tx_begin(e, &own) ? 0 : -1;
	if (rc == 0) {
		rc = store_megolm_out_put(e->st, m) < 0 || store_out_seal(e->st, o->id, "m.room.encrypted", s) < 0 ? -1 : 0;
		crash(e, "seal-before-commit");
		rc = tx_end(e, own, rc == 0);
	}
	if (rc < 0) {
		free(s);
		log_warnx("%s: cannot encrypt the answer for %s: %s", e->name, o->room_id, *e->err ? e->err : "store error");
		return E2EE_SEAL_WAIT;
	}
	explicit_bzero(o->content, strlen(o->content));
	free(o->content);
	o->content = s;
	free(o->event_type);
	o->event_type = xstrdup("m.room.encrypted");
	o->sealed = true;
	reply_delay(e, o->reply_to);
	return E2EE_SEAL_READY;
}

enum e2ee_seal
e2ee_seal(struct e2ee *e, struct store_out *o, int64_t now_ms)
{
	struct store_account row;
	if (account_row(e, &row) < 0)
		return E2EE_SEAL_WAIT;
	bool uploaded = row.keys_uploaded;
	store_account_free(&row);
	if (!uploaded)
		return E2EE_SEAL_WAIT;   /* members must be able to find our device first */
	char **users;
	size_t nu;
	if (store_member_list(e->st, o->room_id, &users, &nu) < 0)
		return E2EE_SEAL_WAIT;
	struct store_megolm_out m = { 0 };
	struct crypto_megolm_out *g = NULL;
	enum e2ee_seal r = members_ready(e, o->room_id, users, nu);
	if (r == E2EE_SEAL_READY && outbound(e, o->room_id, now_ms, &m, &g) < 0)
		r = E2EE_SEAL_WAIT;
	if (r == E2EE_SEAL_READY)
		r = share(e, o->room_id, users, nu, &m, g, now_ms);
	if (r == E2EE_SEAL_READY)
		r = encrypt_row(e, o, &m, g);
	crypto_megolm_out_free(g);
	store_megolm_out_free(&m);
	store_strv_free(users, nu);
	return r;
}

/* ---------- claiming one-time keys ---------- */

/* Devices whose Olm session is wedged and known to us: claim a key for a new session and m.dummy. */
static int
want_unwedge(struct e2ee *e)
{
	struct store_mark *v;
	size_t n;
	if (store_mark_list(e->st, MARK_WEDGED, &v, &n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct store_device d;
		if (store_device_by_curve(e->st, v[i].key, &d) != 1)
			continue;
		if (!d.deleted && streq(d.user_id, v[i].value))
			want_add(e, d.user_id, d.device_id, true);
		store_device_free(&d, 1);
	}
	store_mark_free(v, n);
	free(v);
	return 0;
}

static int
claim_next(struct e2ee *e, struct e2ee_req *r)
{
	if (!e->nclaiming) {   /* else a retry: the same devices */
		if (want_unwedge(e) < 0)
			return -1;
		size_t n = e->nwant < CLAIM_MAX_DEVICES ? e->nwant : CLAIM_MAX_DEVICES;
		if (!n)
			return 0;
		e->claiming = xcalloc(n, sizeof *e->claiming);
		memcpy(e->claiming, e->want, n * sizeof *e->want);
		e->nclaiming = n;
		memmove(e->want, e->want + n, (e->nwant - n) * sizeof *e->want);
		e->nwant -= n;
	}
	cJSON *body = cJSON_CreateObject(), *otk = cJSON_AddObjectToObject(body, "one_time_keys");
	cJSON_AddNumberToObject(body, "timeout", 10000);
	for (size_t i = 0; i < e->nclaiming; i++)
		cJSON_AddStringToObject(obj_child(otk, e->claiming[i].user_id), e->claiming[i].device_id,
			"signed_curve25519");
	req_json(r, "/keys/claim", body);
	cJSON_Delete(body);
	return 1;
}

/* The first signed_curve25519 key object of a claim answer for one device. */
static const cJSON *
claimed_key(const cJSON *keys)
{
	const cJSON *k;
	cJSON_ArrayForEach(k, keys)
		if (k->string && strncmp(k->string, "signed_curve25519:", 18) == 0 && cJSON_IsObject(k))
			return k;
	return NULL;
}

/* After the new session: m.dummy tells the device which session to use from now on. */
static int
send_dummy(struct e2ee *e, struct crypto_olm *s, const struct store_device *d, int64_t now_ms)
{
	cJSON *m = cJSON_CreateObject(), *empty = cJSON_CreateObject();
	int rc = olm_wrap(e, s, d, "m.dummy", empty, m);
	cJSON_Delete(empty);
	if (rc < 0) {
		cJSON_Delete(m);
		return -1;
	}
	log_info("%s: new Olm session with device %s of %s, announced with m.dummy", e->name, d->device_id, d->user_id);
	return queue_to_device(e, "m.room.encrypted", m, NULL, now_ms) < 0
		|| store_mark_set(e->st, MARK_DUMMY, d->curve25519, d->user_id, now_ms) < 0
		|| store_mark_delete(e->st, MARK_WEDGED, d->curve25519) < 0 ? -1 : 0;
}

/* A new outbound Olm session from a claimed one-time key whose signature verifies: 1, 0 when none, -1. */
static int
claimed(struct e2ee *e, struct crypto_account *a, const struct want *w, const cJSON *keys, int64_t now_ms)
{
	struct store_device d;
	int rc = store_device_get(e->st, w->user_id, w->device_id, &d);
	if (rc <= 0)
		return rc;
	const cJSON *k = claimed_key(keys);
	const char *otk = jstr(k, "key");
	struct buf mark;
	buf_init(&mark);
	buf_printf(&mark, "%s|%s", d.user_id, d.device_id);
	if (!is_key(otk) || crypto_verify_json(k, d.user_id, d.device_id, d.ed25519, e->err) < 0) {
		log_info("%s: no usable one-time key for device %s of %s%s", e->name, d.device_id, d.user_id,
			k ? " (bad signature)" : "");
		rc = store_mark_set(e->st, MARK_NO_OLM, mark.s, NULL, now_ms);
		if (rc == 0 && w->dummy)   /* tried: not again within the hour */
			rc = store_mark_set(e->st, MARK_DUMMY, d.curve25519, d.user_id, now_ms) < 0
				|| store_mark_delete(e->st, MARK_WEDGED, d.curve25519) < 0 ? -1 : 0;
	} else {
		struct crypto_olm *s = NULL;
		size_t rl = crypto_olm_outbound_random_len();
		unsigned char *r = rnd(e, rl);
		char id[CRYPTO_KEY_LEN];
		rc = crypto_olm_outbound(a, d.curve25519, otk, r, rl, &s, e->err) == 0
			&& crypto_olm_id(s, id, e->err) == 0 ? 0 : -1;
		free(r);
		if (rc == 0 && w->dummy)
			rc = send_dummy(e, s, &d, now_ms);
		struct store_olm o = { id, d.curve25519, NULL, now_ms, now_ms };
		if (rc == 0)
			rc = olm_store(e, s, &o) < 0 || store_mark_delete(e->st, MARK_NO_OLM, mark.s) < 0 ? -1 : 0;
		if (rc < 0)
			log_warnx("%s: no Olm session with device %s of %s: %s", e->name, d.device_id, d.user_id, e->err);
		else
			rc = 1;
		crypto_olm_free(s);
	}
	buf_free(&mark);
	store_device_free(&d, 1);
	return rc;
}

static enum e2ee_done_result
claim_done(struct e2ee *e, long status, const cJSON *j, int64_t now_ms)
{
	if (status != 200)
		log_warnx("%s: /keys/claim refused (%ld %s)", e->name, status, jstr(j, "errcode") ? jstr(j, "errcode") : "");
	const cJSON *otks = status == 200 ? jobj(j, "one_time_keys") : NULL;
	int64_t t0 = mono_us();
	size_t made = 0;
	bool own;
	struct store_account row;
	/* outbound sessions read the account without changing it: unpickled once for all */
	struct crypto_account *a = account_load(e, &row);
	int rc = a && tx_begin(e, &own) ? 0 : -1;
	for (size_t i = 0; i < e->nclaiming && rc >= 0; i++) {
		rc = claimed(e, a, &e->claiming[i], jobj(jobj(otks, e->claiming[i].user_id), e->claiming[i].device_id),
			now_ms);
		made += rc == 1;
	}
	if (a) {
		rc = tx_end(e, own, rc >= 0);
		crypto_account_free(a);
		store_account_free(&row);
	}
	if (rc == 0)
		log_debug("%s: claimed one-time keys of %zu devices: %zu new Olm sessions in %lld us (commit included)",
			e->name, e->nclaiming, made, (long long)(mono_us() - t0));
	want_free(e->claiming, e->nclaiming);
	e->claiming = NULL;
	e->nclaiming = 0;
	return rc == 0 ? E2EE_DONE_OK : E2EE_DONE_BACKOFF;
}

/* ---------- to-device requests ---------- */

static int
todev_next(struct e2ee *e, struct e2ee_req *r)
{
	struct store_todev t;
	int rc = store_todev_next(e->st, &t);
	if (rc <= 0)
		return rc;
	r->put = true;
	/* types and txn ids are ours: URL-safe as they are */
	buf_printf(&r->path, "/sendToDevice/%s/%s", t.event_type, t.txn_id);
	buf_adds(&r->body, t.body);
	e->todev_id = t.id;
	store_todev_free(&t);
	return 1;
}

static enum e2ee_done_result
todev_done(struct e2ee *e, long status, const cJSON *j)
{
	if (status != 200)
		log_warnx("%s: to-device message refused (%ld %s): dropped", e->name, status,
			jstr(j, "errcode") ? jstr(j, "errcode") : "");
	bool own;
	int rc = tx_begin(e, &own) ? store_todev_delete(e->st, e->todev_id) : -1;
	rc = tx_end(e, own, rc == 0);
	return rc == 0 ? E2EE_DONE_OK : E2EE_DONE_BACKOFF;
}

/* ---------- requests ---------- */

void
e2ee_req_init(struct e2ee_req *r)
{
	r->put = false;
	buf_init(&r->path);
	buf_init(&r->body);
}

/* A request body may hold the password (user-interactive auth): wiped before reuse or free. */
static void
body_wipe(struct buf *b)
{
	if (b->s)
		explicit_bzero(b->s, b->len);
}

void
e2ee_req_free(struct e2ee_req *r)
{
	body_wipe(&r->body);
	buf_free(&r->path);
	buf_free(&r->body);
}

int
e2ee_next(struct e2ee *e, enum e2ee_kind k, int64_t now_ms, struct e2ee_req *r)
{
	r->put = false;
	buf_clear(&r->path);
	body_wipe(&r->body);
	buf_clear(&r->body);
	switch (k) {
	case E2EE_KEYS:
		return keys_next(e, now_ms, r);
	case E2EE_QUERY:
		return query_next(e, r);
	case E2EE_CLAIM:
		return claim_next(e, r);
	case E2EE_TO_DEVICE:
		return todev_next(e, r);
	case E2EE_KINDS:
		break;
	}
	return 0;
}

enum e2ee_done_result
e2ee_done(struct e2ee *e, enum e2ee_kind k, long status, const char *body, size_t len, int64_t now_ms)
{
	cJSON *j = cJSON_ParseWithLength(body, len);
	enum e2ee_done_result r = E2EE_DONE_OK;
	switch (k) {
	case E2EE_KEYS:
		r = keys_done(e, status, j, now_ms);
		break;
	case E2EE_QUERY:
		r = query_done(e, status, j);
		break;
	case E2EE_CLAIM:
		r = claim_done(e, status, j, now_ms);
		break;
	case E2EE_TO_DEVICE:
		r = todev_done(e, status, j);
		break;
	case E2EE_KINDS:
		break;
	}
	cJSON_Delete(j);
	return r;
}

void
e2ee_housekeeping(struct e2ee *e, int64_t now_ms)
{
	bool own;
	if (!tx_begin(e, &own))
		return;
	int n = store_awaiting_expire(e->st, now_ms - E2EE_AWAIT_MS);
	if (n > 0)
		log_info("%s: %d encrypted messages whose room key never came in 24 hours: given up", e->name, n);
	struct store_account row;
	struct crypto_account *a = account_load(e, &row);
	int rc = n < 0 || !a ? -1 : 0;
	if (a && row.forget_fallback_ms && now_ms >= row.forget_fallback_ms) {
		crypto_account_forget_old_fallback(a);
		row.forget_fallback_ms = 0;
		rc = account_save(e, a, &row);
		log_info("%s: the replaced fallback key is forgotten", e->name);
	}
	if (a) {
		crypto_account_free(a);
		store_account_free(&row);
	}
	tx_end(e, own, rc == 0);
}
