/* e2ee_keys.c: our keys on the server: one-time and fallback keys, cross-signing and its signature. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "e2ee.h"
#include "e2ee_impl.h"
#include "log.h"
#include "store.h"

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
		unsigned char *r = e2ee_rnd(e, rl);
		rc = crypto_account_generate_otks(a, more, r, rl, e->err);
		free(r);
	}
	if (rc == 0 && new_fb) {
		size_t rl = crypto_fallback_random_len(a);
		unsigned char *r = e2ee_rnd(e, rl);
		rc = crypto_account_generate_fallback(a, r, rl, e->err);
		free(r);
		/* the used one stays for messages already on their way, an hour at most */
		row->forget_fallback_ms = now_ms + E2EE_HOUR_MS;
		log_info("%s: our fallback key was used: a new one replaces it", e->name);
	}
	if (rc == 0 && changed) {
		bool own;
		rc = e2ee_tx_begin(e, &own) ? e2ee_account_save(e, a, row) : -1;
		rc = e2ee_tx_end(e, own, rc == 0);
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
	struct crypto_account *a = e2ee_account_load(e, &row);
	if (!a)
		return -1;
	cJSON *body = cJSON_CreateObject();
	int rc = upload_body(e, a, &row, now_ms, body);
	if (rc < 0)
		log_warnx("%s: cannot prepare our keys for upload: %s", e->name, e->err);
	if (rc == 1) {
		char *s = e2ee_print_json(body);
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
			jstr_nonempty(j, "errcode") ? jstr_nonempty(j, "errcode") : "", jstr_nonempty(j, "error") ? jstr_nonempty(j, "error") : "");
	}
	struct store_account row;
	struct crypto_account *a = e2ee_account_load(e, &row);
	if (!a)
		return E2EE_DONE_BACKOFF;
	bool first = !row.keys_uploaded;
	/* refused too: retrying the same keys would be refused forever */
	crypto_account_mark_published(a);
	row.keys_uploaded = row.keys_uploaded || status == 200;
	bool own;
	int rc = e2ee_tx_begin(e, &own) ? e2ee_account_save(e, a, &row) : -1;
	rc = e2ee_tx_end(e, own, rc == 0);
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
		unsigned char *s1 = e2ee_rnd(e, CRYPTO_SEED_LEN), *s2 = e2ee_rnd(e, CRYPTO_SEED_LEN);
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
			rc = e2ee_tx_begin(e, &own) ? store_xsign_put(e->st, x) : -1;
		if (rc == 0)
			rc = e2ee_tx_end(e, own, true);
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
			e2ee_req_json(r, "/keys/device_signing/upload", body);
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
	if (status == 401 && offers_password(j) && jstr_nonempty(j, "session") && !e->uia_session) {
		/* servers before spec v1.11 (Synapse before 1.89) want the password even for the first keys */
		e->uia_session = xstrdup(jstr_nonempty(j, "session"));
		log_info("%s: the server asks for the password to publish cross-signing keys", e->name);
		return E2EE_DONE_OK;
	}
	free(e->uia_session);
	e->uia_session = NULL;
	if (status != 200) {
		log_warnx("%s: the server refused our cross-signing keys (%ld %s: %s)%s", e->name, status,
			jstr_nonempty(j, "errcode") ? jstr_nonempty(j, "errcode") : "", jstr_nonempty(j, "error") ? jstr_nonempty(j, "error") : "",
			status == 401 ? ": check password_file" : "");
		e->xsign_gave_up = true;
		return E2EE_DONE_OK;
	}
	struct store_xsign x;
	if (store_xsign_get(e->st, e->user_id, &x) != 1)
		return E2EE_DONE_BACKOFF;
	x.uploaded = true;
	bool own;
	int rc = e2ee_tx_begin(e, &own) ? store_xsign_put(e->st, &x) : -1;
	rc = e2ee_tx_end(e, own, rc == 0);
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
	if (rc == 0 && !(a = e2ee_account_load(e, &row)))
		rc = -1;
	if (rc == 0 && (crypto_device_keys(a, e->user_id, e->device_id, &dk, e->err) < 0
			|| crypto_signing_sign_json(ssk, dk, e->user_id, e->err) < 0))
		rc = -1;
	if (rc == 0) {
		cJSON *body = cJSON_CreateObject();
		cJSON_AddItemToObject(cJSON_AddObjectToObject(body, e->user_id), e->device_id, dk);
		dk = NULL;
		e2ee_req_json(r, "/keys/signatures/upload", body);
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
			jstr_nonempty(f, "errcode") ? jstr_nonempty(f, "errcode") : jstr_nonempty(j, "errcode") ? jstr_nonempty(j, "errcode") : "");
		e->xsign_gave_up = true;
		return E2EE_DONE_OK;
	}
	struct store_account row;
	if (e2ee_account_row(e, &row) < 0)
		return E2EE_DONE_BACKOFF;
	row.signed_by_us = true;
	bool own;
	int rc = e2ee_tx_begin(e, &own) ? store_account_put(e->st, &row) : -1;
	rc = e2ee_tx_end(e, own, rc == 0);
	store_account_free(&row);
	if (rc == 0)
		log_info("%s: device %s is cross-signed by our self-signing key", e->name, e->device_id);
	return rc == 0 ? E2EE_DONE_OK : E2EE_DONE_BACKOFF;
}

int
e2ee_keys_next(struct e2ee *e, int64_t now_ms, struct e2ee_req *r)
{
	struct store_account row;
	if (e2ee_account_row(e, &row) < 0)
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

enum e2ee_done_result
e2ee_keys_done(struct e2ee *e, long status, const cJSON *j, int64_t now_ms)
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
