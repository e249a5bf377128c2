/* e2ee_devices.c: the device lists of the members of encrypted rooms, pinned on first use. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "e2ee.h"
#include "e2ee_impl.h"
#include "log.h"
#include "store.h"

#define QUERY_MAX_USERS 100

int
e2ee_track(struct e2ee *e, const char *user_id)
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

int
e2ee_outdate(struct e2ee *e, const char *user_id)
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

int
e2ee_query_next(struct e2ee *e, struct e2ee_req *r)
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
	e2ee_req_json(r, "/keys/query", body);
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
	if (!streq(jstr_nonempty(k, "user_id"), user) || !has_usage || cJSON_GetArraySize(keys) != 1)
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
	const char *curve = jstr_nonempty(jobj(obj, "keys"), name);
	snprintf(name, sizeof name, "ed25519:%s", dev);
	const char *ed = jstr_nonempty(jobj(obj, "keys"), name);
	if (!streq(jstr_nonempty(obj, "user_id"), user) || !streq(jstr_nonempty(obj, "device_id"), dev) || !is_key(curve)
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

enum e2ee_done_result
e2ee_query_done(struct e2ee *e, long status, const cJSON *j)
{
	if (status != 200) {
		log_warnx("%s: /keys/query refused (%ld %s)", e->name, status, jstr_nonempty(j, "errcode") ? jstr_nonempty(j, "errcode") : "");
		query_clear(e);
		return E2EE_DONE_BACKOFF;
	}
	bool own;
	int rc = e2ee_tx_begin(e, &own) ? 0 : -1;
	for (size_t i = 0; i < e->nquery && rc == 0; i++)
		rc = query_user(e, &e->query[i], j);
	rc = e2ee_tx_end(e, own, rc == 0);
	query_clear(e);
	return rc == 0 ? E2EE_DONE_OK : E2EE_DONE_BACKOFF;
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
	if (!streq(jstr_nonempty(content, "algorithm"), CRYPTO_ALG_MEGOLM))
		log_warnx("%s: %s asks for encryption with %.64s; the bot uses %s there", e->name, room_id,
			jstr_nonempty(content, "algorithm") ? jstr_nonempty(content, "algorithm") : "no algorithm", CRYPTO_ALG_MEGOLM);
	char **users;
	size_t nu;
	if (store_room_enc_put(e->st, room_id, rot_ms, rot_n) < 0 || store_member_list(e->st, room_id, &users, &nu) < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < nu && rc == 0; i++)
		rc = e2ee_track(e, users[i]);
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
		return encrypted ? e2ee_track(e, user_id) : 0;
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
e2ee_outdate_all(struct e2ee *e)
{
	return store_tracked_outdate_all(e->st);
}

int
e2ee_room_left(struct e2ee *e, const char *room_id)
{
	return store_member_forget_room(e->st, room_id) < 0 || store_megolm_out_delete(e->st, room_id) < 0 ? -1 : 0;
}
