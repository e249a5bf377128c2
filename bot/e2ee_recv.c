/* e2ee_recv.c: receiving: Olm to-device messages and room keys, Megolm room events decrypted or parked. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "e2ee.h"
#include "e2ee_impl.h"
#include "log.h"
#include "matrix.h"
#include "store.h"

#define OLM_SESSIONS_TRIED 8       /* per peer device, most recently used first */

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
	return store_mark_set(e->st, MARK_WEDGED, sender_key, sender, now_ms) < 0 || e2ee_track(e, sender) < 0 ? -1 : 0;
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
	struct crypto_account *a = e2ee_account_load(e, &row);
	struct crypto_olm *s = NULL;
	if (!a)
		return -1;
	int rc = 0;
	if (crypto_olm_inbound(a, m->sender_key, m->body, &s, plain, len, e->err) == 0) {
		char id[CRYPTO_KEY_LEN], *p = NULL;
		rc = crypto_olm_id(s, id, e->err) == 0 && crypto_olm_pickle(s, pkey(e), &p, e->err) == 0 ? 0 : -1;
		struct store_olm o = { id, (char *)m->sender_key, p, now_ms, now_ms };
		if (rc == 0)
			rc = store_olm_put(e->st, &o) < 0 || e2ee_account_save(e, a, &row) < 0 ? -1 : 0;
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
	return e2ee_track(e, sender) < 0 || e2ee_outdate(e, sender) < 0 ? -1 : 0;
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
	e2ee_json_wipe(p.root);   /* it carried a session key */
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
		rc = e2ee_outdate(e, c->changed[i]);
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

/* ---------- decrypting room events ---------- */

static enum e2ee_in
park(struct e2ee *e, const char *room_id, const struct mx_event *ev, const char *session_id, bool answer,
	int64_t now_ms, const char *why)
{
	char *json = e2ee_print_json(ev->raw);
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
		r = e2ee_track(e, ev->sender) < 0 ? E2EE_IN_ERROR
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
