/* e2ee_send.c: sending: outbound Megolm sessions shared over Olm, claimed one-time keys, to-device queue. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "crypto.h"
#include "e2ee.h"
#include "e2ee_impl.h"
#include "log.h"
#include "store.h"

#define CLAIM_MAX_DEVICES 200
#define WANT_MAX 1024              /* devices waiting for a claim, at most */

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
	char *plain = e2ee_print_json(p);
	e2ee_json_wipe(p);
	cJSON_Delete(p);
	size_t rl = crypto_olm_encrypt_random_len(s), n = strlen(plain);
	unsigned char *r = e2ee_rnd(e, rl);
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
	char *s = e2ee_print_json(body);
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
	e2ee_json_wipe(c);
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
	int rc = e2ee_tx_begin(e, &own) ? share_users(&sh, users, nu) : -1;
	if (rc == 0 && sh.nmsg) {
		rc = queue_to_device(e, "m.room.encrypted", sh.messages, out->session_id, now_ms);
		sh.messages = NULL;
		crash(e, "share-before-commit");
	}
	rc = e2ee_tx_end(e, own, rc == 0);
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
	unsigned char *r = e2ee_rnd(e, rl);
	char id[CRYPTO_KEY_LEN], *p = NULL;
	rc = crypto_megolm_out_create(r, rl, g, e->err);
	free(r);
	if (rc == 0 && (crypto_megolm_out_id(*g, id, e->err) < 0 || crypto_megolm_out_pickle(*g, pkey(e), &p, e->err) < 0))
		rc = -1;
	*m = (struct store_megolm_out){ xstrdup(room_id), xstrdup(rc == 0 ? id : ""), p, now_ms };
	bool own;
	if (rc == 0)
		rc = e2ee_tx_begin(e, &own) ? store_megolm_out_put(e->st, m) : -1;
	if (rc == 0)
		rc = e2ee_tx_end(e, own, true);
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
	int rc = e2ee_tx_begin(e, &own) ? 0 : -1;
	for (size_t i = 0; i < nu && rc == 0; i++) {
		struct store_tracked t;
		int got = store_tracked_get(e->st, users[i], &t);
		if (got == 1)
			wait |= t.outdated;
		else
			wait = true;
		if (got == 1)
			store_tracked_free(&t, 1);
		rc = got < 0 ? -1 : got == 0 ? e2ee_track(e, users[i]) : 0;
	}
	rc = e2ee_tx_end(e, own, rc == 0);
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
	char *plain = e2ee_print_json(p), *ct = NULL, *pickle = NULL;
	e2ee_json_wipe(p);
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
	char *s = e2ee_print_json(sealed);
	cJSON_Delete(sealed);
	free(ct);
	free(m->pickle);
	m->pickle = pickle;
	bool own;
	if (rc == 0)
		rc = e2ee_tx_begin(e, &own) ? 0 : -1;
	if (rc == 0) {
		rc = store_megolm_out_put(e->st, m) < 0 || store_out_seal(e->st, o->id, "m.room.encrypted", s) < 0 ? -1 : 0;
		crash(e, "seal-before-commit");
		rc = e2ee_tx_end(e, own, rc == 0);
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
	if (e2ee_account_row(e, &row) < 0)
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

int
e2ee_claim_next(struct e2ee *e, struct e2ee_req *r)
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
	e2ee_req_json(r, "/keys/claim", body);
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
	const char *otk = jstr_nonempty(k, "key");
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
		unsigned char *r = e2ee_rnd(e, rl);
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

enum e2ee_done_result
e2ee_claim_done(struct e2ee *e, long status, const cJSON *j, int64_t now_ms)
{
	if (status != 200)
		log_warnx("%s: /keys/claim refused (%ld %s)", e->name, status, jstr_nonempty(j, "errcode") ? jstr_nonempty(j, "errcode") : "");
	const cJSON *otks = status == 200 ? jobj(j, "one_time_keys") : NULL;
	int64_t t0 = mono_us();
	size_t made = 0;
	bool own;
	struct store_account row;
	/* outbound sessions read the account without changing it: unpickled once for all */
	struct crypto_account *a = e2ee_account_load(e, &row);
	int rc = a && e2ee_tx_begin(e, &own) ? 0 : -1;
	for (size_t i = 0; i < e->nclaiming && rc >= 0; i++) {
		rc = claimed(e, a, &e->claiming[i], jobj(jobj(otks, e->claiming[i].user_id), e->claiming[i].device_id),
			now_ms);
		made += rc == 1;
	}
	if (a) {
		rc = e2ee_tx_end(e, own, rc >= 0);
		crypto_account_free(a);
		store_account_free(&row);
	}
	if (rc == 0)
		log_debug("%s: claimed one-time keys of %zu devices: %zu new Olm sessions in %lld us (commit included)",
			e->name, e->nclaiming, made, (long long)(mono_us() - t0));
	e2ee_want_free(e->claiming, e->nclaiming);
	e->claiming = NULL;
	e->nclaiming = 0;
	return rc == 0 ? E2EE_DONE_OK : E2EE_DONE_BACKOFF;
}

/* ---------- to-device requests ---------- */

int
e2ee_todev_next(struct e2ee *e, struct e2ee_req *r)
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

enum e2ee_done_result
e2ee_todev_done(struct e2ee *e, long status, const cJSON *j)
{
	if (status != 200)
		log_warnx("%s: to-device message refused (%ld %s): dropped", e->name, status,
			jstr_nonempty(j, "errcode") ? jstr_nonempty(j, "errcode") : "");
	bool own;
	int rc = e2ee_tx_begin(e, &own) ? store_todev_delete(e->st, e->todev_id) : -1;
	rc = e2ee_tx_end(e, own, rc == 0);
	return rc == 0 ? E2EE_DONE_OK : E2EE_DONE_BACKOFF;
}
