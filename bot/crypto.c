/*
 * crypto.c: every libolm call of kneebot (see crypto.h).  libolm's rules,
 * each a hazard this file absorbs so callers never meet it:
 * - every size_t result is compared with olm_error();
 * - inputs are destroyed (base64-decoded in place) by decrypt, the inbound
 *   session calls, unpickle and ed25519_verify: each gets a fresh copy;
 * - outputs are not NUL-terminated: each is terminated here;
 * - random buffers are wiped after use.
 */
#include <olm/olm.h>
#include <olm/pk.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "canonjson.h"
#include "crypto.h"

/* --- errors and buffers --- */

__attribute__((format(printf, 2, 3))) static int
fail(char *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, CRYPTO_ERR_LEN, fmt, ap);
	va_end(ap);
	return -1;
}

static int
olm_fail(char *err, const char *call, const char *olm_error_name)
{
	return fail(err, "%s: %s", call, olm_error_name);
}

static int
check_key(struct crypto_pickle_key k, char *err)
{
	if (k.p == NULL || k.n < CRYPTO_PICKLE_KEY_MIN)
		return fail(err, "pickle key shorter than %d bytes", CRYPTO_PICKLE_KEY_MIN);
	return 0;
}

/* A NUL-terminated copy of s[0..n) for libolm to destroy. */
static char *
scratch(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static void
wipe_free(void *p, size_t n)
{
	if (p) {
		explicit_bzero(p, n);
		free(p);
	}
}

static void
wipe(void *p, size_t n)
{
	if (p && n)
		explicit_bzero(p, n);
}

/* base64 key or id of libolm (not NUL-terminated) into a fixed array. */
static int
copy_out(char *dst, size_t cap, const void *src, size_t n, const char *what, char *err)
{
	if (n >= cap)
		return fail(err, "%s: %zu bytes, expected fewer than %zu", what, n, cap);
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

static int
need_random(size_t have, size_t need, const char *what, char *err)
{
	if (have < need)
		return fail(err, "%s: %zu random bytes, needs %zu", what, have, need);
	return 0;
}

/* --- the four pickled libolm object kinds, driven through one table each --- */

struct olm_kind {
	const char *name;
	void *(*make)(void);
	void (*destroy)(void *o);
	size_t (*pickle_len)(void *o);
	size_t (*pickle)(void *o, const void *k, size_t kn, void *out, size_t n);
	size_t (*unpickle)(void *o, const void *k, size_t kn, void *in, size_t n);
	const char *(*error)(void *o);
};

#define OLM_KIND(X)                                                                          \
	static void *X##_make(void) { return olm_##X(xmalloc(olm_##X##_size())); }            \
	static void X##_destroy(void *o) { olm_clear_##X(o); free(o); }                         \
	static size_t X##_plen(void *o) { return olm_pickle_##X##_length(o); }                  \
	static size_t X##_pickle(void *o, const void *k, size_t kn, void *out, size_t n)       \
	{ return olm_pickle_##X(o, k, kn, out, n); }                                            \
	static size_t X##_unpickle(void *o, const void *k, size_t kn, void *in, size_t n)      \
	{ return olm_unpickle_##X(o, k, kn, in, n); }                                           \
	static const char *X##_error(void *o) { return olm_##X##_last_error(o); }               \
	static const struct olm_kind X##_kind = {                                               \
		#X, X##_make, X##_destroy, X##_plen, X##_pickle, X##_unpickle, X##_error,       \
	};

OLM_KIND(account)
OLM_KIND(session)
OLM_KIND(outbound_group_session)
OLM_KIND(inbound_group_session)

static int
pickle_object(const struct olm_kind *kind, void *o, struct crypto_pickle_key k, char **out, char *err)
{
	if (check_key(k, err) < 0)
		return -1;
	size_t n = kind->pickle_len(o);
	char *p = xmalloc(n + 1);
	size_t r = kind->pickle(o, k.p, k.n, p, n);
	if (r == olm_error()) {
		free(p);
		return fail(err, "pickle %s: %s", kind->name, kind->error(o));
	}
	p[r] = '\0';
	*out = p;
	return 0;
}

static void *
unpickle_object(const struct olm_kind *kind, const char *pickle, struct crypto_pickle_key k, char *err)
{
	if (check_key(k, err) < 0)
		return NULL;
	size_t n = strlen(pickle);
	char *copy = scratch(pickle, n);
	void *o = kind->make();
	size_t r = kind->unpickle(o, k.p, k.n, copy, n);
	wipe_free(copy, n);
	if (r == olm_error()) {
		fail(err, "unpickle %s: %s", kind->name, kind->error(o));
		kind->destroy(o);
		return NULL;
	}
	return o;
}

/* Random bytes a fresh object of a kind needs, asked of a throwaway one (libolm wants an object). */
static size_t
fresh_random_len(const struct olm_kind *kind, size_t (*len)(void *o))
{
	void *o = kind->make();
	size_t n = len(o);
	kind->destroy(o);
	return n;
}

struct crypto_account { OlmAccount *o; };
struct crypto_olm { OlmSession *o; };
struct crypto_megolm_out { OlmOutboundGroupSession *o; };
struct crypto_megolm_in { OlmInboundGroupSession *o; };
struct crypto_signing {
	OlmPkSigning *o;
	unsigned char seed[CRYPTO_SEED_LEN];
	char pub[CRYPTO_KEY_LEN];
};

/* --- randomness --- */

static size_t account_rlen(void *o) { return olm_create_account_random_length(o); }
static size_t session_rlen(void *o) { return olm_create_outbound_session_random_length(o); }
static size_t megolm_rlen(void *o) { return olm_init_outbound_group_session_random_length(o); }

size_t
crypto_account_random_len(void)
{
	return fresh_random_len(&account_kind, account_rlen);
}

size_t
crypto_otk_random_len(const struct crypto_account *a, size_t count)
{
	return olm_account_generate_one_time_keys_random_length(a->o, count);
}

size_t
crypto_fallback_random_len(const struct crypto_account *a)
{
	return olm_account_generate_fallback_key_random_length(a->o);
}

size_t
crypto_olm_outbound_random_len(void)
{
	return fresh_random_len(&session_kind, session_rlen);
}

size_t
crypto_olm_encrypt_random_len(const struct crypto_olm *s)
{
	return olm_encrypt_random_length(s->o);
}

size_t
crypto_megolm_out_random_len(void)
{
	return fresh_random_len(&outbound_group_session_kind, megolm_rlen);
}

/* --- Olm account --- */

int
crypto_account_create(void *rnd, size_t rnd_len, struct crypto_account **out, char *err)
{
	OlmAccount *o = account_make();
	size_t need = olm_create_account_random_length(o);
	int rc = need_random(rnd_len, need, "olm_create_account", err);
	if (rc == 0 && olm_create_account(o, rnd, rnd_len) == olm_error())
		rc = olm_fail(err, "olm_create_account", olm_account_last_error(o));
	wipe(rnd, rnd_len);
	if (rc < 0) {
		account_destroy(o);
		return -1;
	}
	*out = xmalloc(sizeof **out);
	(*out)->o = o;
	return 0;
}

int
crypto_account_pickle(struct crypto_account *a, struct crypto_pickle_key k, char **out, char *err)
{
	return pickle_object(&account_kind, a->o, k, out, err);
}

int
crypto_account_unpickle(const char *pickle, struct crypto_pickle_key k, struct crypto_account **out, char *err)
{
	OlmAccount *o = unpickle_object(&account_kind, pickle, k, err);
	if (o == NULL)
		return -1;
	*out = xmalloc(sizeof **out);
	(*out)->o = o;
	return 0;
}

void
crypto_account_free(struct crypto_account *a)
{
	if (a) {
		account_destroy(a->o);
		free(a);
	}
}

/* libolm's JSON output (not NUL-terminated) as a cJSON tree. */
static cJSON *
olm_json(const char *s, size_t n, const char *what, char *err)
{
	cJSON *j = cJSON_ParseWithLength(s, n);
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		fail(err, "%s: libolm returned no JSON object", what);
		return NULL;
	}
	return j;
}

static int
json_key(const cJSON *obj, const char *name, char dst[CRYPTO_KEY_LEN], const char *what, char *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!cJSON_IsString(v))
		return fail(err, "%s: no %s", what, name);
	return copy_out(dst, CRYPTO_KEY_LEN, v->valuestring, strlen(v->valuestring), what, err);
}

int
crypto_account_identity_keys(struct crypto_account *a, char curve25519[CRYPTO_KEY_LEN],
	char ed25519[CRYPTO_KEY_LEN], char *err)
{
	size_t n = olm_account_identity_keys_length(a->o);
	char *s = xmalloc(n);
	int rc = 0;
	size_t r = olm_account_identity_keys(a->o, s, n);
	if (r == olm_error())
		rc = olm_fail(err, "olm_account_identity_keys", olm_account_last_error(a->o));
	cJSON *j = rc == 0 ? olm_json(s, r, "olm_account_identity_keys", err) : NULL;
	if (j == NULL)
		rc = -1;
	if (rc == 0)
		rc = json_key(j, "curve25519", curve25519, "identity keys", err);
	if (rc == 0)
		rc = json_key(j, "ed25519", ed25519, "identity keys", err);
	cJSON_Delete(j);
	free(s);
	return rc;
}

int
crypto_account_sign(struct crypto_account *a, const void *msg, size_t n, char sig[CRYPTO_SIG_LEN], char *err)
{
	size_t len = olm_account_signature_length(a->o);
	if (len >= CRYPTO_SIG_LEN)
		return fail(err, "olm_account_sign: signature of %zu bytes", len);
	if (olm_account_sign(a->o, msg, n, sig, len) == olm_error())
		return olm_fail(err, "olm_account_sign", olm_account_last_error(a->o));
	sig[len] = '\0';
	return 0;
}

size_t
crypto_account_max_otks(const struct crypto_account *a)
{
	return olm_account_max_number_of_one_time_keys(a->o);
}

int
crypto_account_generate_otks(struct crypto_account *a, size_t count, void *rnd, size_t rnd_len, char *err)
{
	size_t need = olm_account_generate_one_time_keys_random_length(a->o, count);
	int rc = need_random(rnd_len, need, "olm_account_generate_one_time_keys", err);
	if (rc == 0 && olm_account_generate_one_time_keys(a->o, count, rnd, rnd_len) == olm_error())
		rc = olm_fail(err, "olm_account_generate_one_time_keys", olm_account_last_error(a->o));
	wipe(rnd, rnd_len);
	return rc;
}

/* {"curve25519": {id: key, ...}}, libolm's shape for one-time and fallback keys, into an array. */
static int
parse_key_map(const char *s, size_t n, const char *what, struct crypto_otk **keys, size_t *count, char *err)
{
	cJSON *j = olm_json(s, n, what, err);
	if (j == NULL)
		return -1;
	const cJSON *map = cJSON_GetObjectItemCaseSensitive(j, "curve25519");
	int rc = cJSON_IsObject(map) ? 0 : fail(err, "%s: no curve25519 map", what);
	*count = 0;
	*keys = xcalloc(rc == 0 ? (size_t)cJSON_GetArraySize(map) : 0, sizeof **keys);
	for (const cJSON *e = rc == 0 ? map->child : NULL; e && rc == 0; e = e->next) {
		struct crypto_otk *k = &(*keys)[*count];
		if (!cJSON_IsString(e))
			rc = fail(err, "%s: key is not a string", what);
		if (rc == 0)
			rc = copy_out(k->id, sizeof k->id, e->string, strlen(e->string), what, err);
		if (rc == 0)
			rc = copy_out(k->key, sizeof k->key, e->valuestring, strlen(e->valuestring), what, err);
		if (rc == 0)
			(*count)++;
	}
	cJSON_Delete(j);
	if (rc < 0) {
		free(*keys);
		*keys = NULL;
		*count = 0;
	}
	return rc;
}

int
crypto_account_unpublished_otks(struct crypto_account *a, struct crypto_otk **keys, size_t *n, char *err)
{
	size_t len = olm_account_one_time_keys_length(a->o);
	char *s = xmalloc(len);
	int rc;
	size_t r = olm_account_one_time_keys(a->o, s, len);
	if (r == olm_error())
		rc = olm_fail(err, "olm_account_one_time_keys", olm_account_last_error(a->o));
	else
		rc = parse_key_map(s, r, "olm_account_one_time_keys", keys, n, err);
	free(s);
	return rc;
}

void
crypto_account_mark_published(struct crypto_account *a)
{
	olm_account_mark_keys_as_published(a->o);
}

int
crypto_account_generate_fallback(struct crypto_account *a, void *rnd, size_t rnd_len, char *err)
{
	size_t need = olm_account_generate_fallback_key_random_length(a->o);
	int rc = need_random(rnd_len, need, "olm_account_generate_fallback_key", err);
	if (rc == 0 && olm_account_generate_fallback_key(a->o, rnd, rnd_len) == olm_error())
		rc = olm_fail(err, "olm_account_generate_fallback_key", olm_account_last_error(a->o));
	wipe(rnd, rnd_len);
	return rc;
}

int
crypto_account_unpublished_fallback(struct crypto_account *a, struct crypto_otk *fk, char *err)
{
	/* not olm_account_fallback_key(): deprecated, it returns a published key too */
	size_t len = olm_account_unpublished_fallback_key_length(a->o);
	char *s = xmalloc(len);
	struct crypto_otk *keys = NULL;
	size_t n = 0;
	int rc;
	size_t r = olm_account_unpublished_fallback_key(a->o, s, len);
	if (r == olm_error())
		rc = olm_fail(err, "olm_account_unpublished_fallback_key", olm_account_last_error(a->o));
	else
		rc = parse_key_map(s, r, "olm_account_unpublished_fallback_key", &keys, &n, err);
	if (rc == 0 && n > 0)
		*fk = keys[0];
	free(keys);
	free(s);
	return rc < 0 ? -1 : n > 0;
}

void
crypto_account_forget_old_fallback(struct crypto_account *a)
{
	olm_account_forget_old_fallback_key(a->o);
}

/* --- Olm sessions --- */

static struct crypto_olm *
olm_wrap(OlmSession *o)
{
	struct crypto_olm *s = xmalloc(sizeof *s);
	s->o = o;
	return s;
}

int
crypto_olm_outbound(struct crypto_account *a, const char *their_curve25519, const char *their_otk,
	void *rnd, size_t rnd_len, struct crypto_olm **out, char *err)
{
	OlmSession *o = session_make();
	int rc = need_random(rnd_len, olm_create_outbound_session_random_length(o), "olm_create_outbound_session", err);
	if (rc == 0 && olm_create_outbound_session(o, a->o, their_curve25519, strlen(their_curve25519),
			their_otk, strlen(their_otk), rnd, rnd_len) == olm_error())
		rc = olm_fail(err, "olm_create_outbound_session", olm_session_last_error(o));
	wipe(rnd, rnd_len);
	if (rc < 0) {
		session_destroy(o);
		return -1;
	}
	*out = olm_wrap(o);
	return 0;
}

/* Decrypts body into a new NUL-terminated buffer; a plaintext is never longer than its base64 ciphertext. */
static int
olm_decrypt_into(OlmSession *o, size_t type, const char *body, char **plain, size_t *plain_len, char *err)
{
	size_t n = strlen(body);
	char *copy = scratch(body, n);
	char *p = xmalloc(n + 1);
	size_t r = olm_decrypt(o, type, copy, n, p, n);
	free(copy);
	if (r == olm_error()) {
		wipe_free(p, n + 1);
		return olm_fail(err, "olm_decrypt", olm_session_last_error(o));
	}
	p[r] = '\0';
	*plain = p;
	*plain_len = r;
	return 0;
}

/*
 * 1 when pre-key message body from their_curve25519 belongs to session o;
 * unlike the session-creating _from call, this one guards a missing identity key.
 */
static int
olm_matches(OlmSession *o, const char *their_curve25519, const char *body, char *err)
{
	size_t n = strlen(body);
	char *copy = scratch(body, n);
	size_t r = olm_matches_inbound_session_from(o, their_curve25519, strlen(their_curve25519), copy, n);
	free(copy);
	if (r == olm_error())
		return olm_fail(err, "olm_matches_inbound_session_from", olm_session_last_error(o));
	return r == 1;
}

int
crypto_olm_inbound(struct crypto_account *a, const char *their_curve25519, const char *body,
	struct crypto_olm **out, char **plain, size_t *plain_len, char *err)
{
	OlmSession *o = session_make();
	size_t n = strlen(body);
	char *copy = scratch(body, n);
	int rc = 0;
	/*
	 * Not olm_create_inbound_session_from(): in libolm 3.2.13 it copies the
	 * message's identity key from NULL when the field is missing, a crash
	 * any to-device sender can cause (found by tests/fuzz/fuzz_crypto.c).
	 * The plain call demands the field; the sender key is checked after.
	 * Neither touches the account: the key is removed only after the decrypt.
	 */
	if (olm_create_inbound_session(o, a->o, copy, n) == olm_error())
		rc = olm_fail(err, "olm_create_inbound_session", olm_session_last_error(o));
	free(copy);
	if (rc == 0 && olm_matches(o, their_curve25519, body, err) != 1)
		rc = fail(err, "olm inbound session: pre-key message not from the sender's curve25519 key");
	if (rc == 0)
		rc = olm_decrypt_into(o, CRYPTO_OLM_PREKEY, body, plain, plain_len, err);
	if (rc == 0 && olm_remove_one_time_keys(a->o, o) == olm_error()) {
		rc = olm_fail(err, "olm_remove_one_time_keys", olm_account_last_error(a->o));
		wipe_free(*plain, *plain_len + 1);
		*plain = NULL;
	}
	if (rc < 0) {
		session_destroy(o);
		return -1;
	}
	*out = olm_wrap(o);
	return 0;
}

int
crypto_olm_matches_inbound(struct crypto_olm *s, const char *their_curve25519, const char *body, char *err)
{
	return olm_matches(s->o, their_curve25519, body, err);
}

int
crypto_olm_encrypt(struct crypto_olm *s, const void *plain, size_t n, void *rnd, size_t rnd_len,
	enum crypto_olm_type *type, char **body, char *err)
{
	int rc = need_random(rnd_len, olm_encrypt_random_length(s->o), "olm_encrypt", err);
	size_t t = olm_encrypt_message_type(s->o);   /* the type of the message encrypted next */
	size_t len = olm_encrypt_message_length(s->o, n);
	char *p = NULL;
	if (rc == 0 && (t == olm_error() || len == olm_error()))
		rc = olm_fail(err, "olm_encrypt_message_length", olm_session_last_error(s->o));
	if (rc == 0) {
		p = xmalloc(len + 1);
		if (olm_encrypt(s->o, plain, n, rnd, rnd_len, p, len) == olm_error())
			rc = olm_fail(err, "olm_encrypt", olm_session_last_error(s->o));
	}
	wipe(rnd, rnd_len);
	if (rc < 0) {
		free(p);
		return -1;
	}
	p[len] = '\0';
	*type = t == OLM_MESSAGE_TYPE_PRE_KEY ? CRYPTO_OLM_PREKEY : CRYPTO_OLM_MESSAGE;
	*body = p;
	return 0;
}

int
crypto_olm_decrypt(struct crypto_olm *s, enum crypto_olm_type type, const char *body,
	char **plain, size_t *plain_len, char *err)
{
	if (type != CRYPTO_OLM_PREKEY && type != CRYPTO_OLM_MESSAGE)
		return fail(err, "olm_decrypt: message type %d is neither 0 nor 1", (int)type);
	return olm_decrypt_into(s->o, (size_t)type, body, plain, plain_len, err);
}

int
crypto_olm_id(struct crypto_olm *s, char id[CRYPTO_KEY_LEN], char *err)
{
	char tmp[128];
	size_t n = olm_session_id_length(s->o);
	if (n > sizeof tmp)
		return fail(err, "olm_session_id: %zu bytes", n);
	size_t r = olm_session_id(s->o, tmp, n);
	if (r == olm_error())
		return olm_fail(err, "olm_session_id", olm_session_last_error(s->o));
	return copy_out(id, CRYPTO_KEY_LEN, tmp, r, "olm_session_id", err);
}

bool
crypto_olm_has_received(const struct crypto_olm *s)
{
	return olm_session_has_received_message(s->o) != 0;
}

int
crypto_olm_pickle(struct crypto_olm *s, struct crypto_pickle_key k, char **out, char *err)
{
	return pickle_object(&session_kind, s->o, k, out, err);
}

int
crypto_olm_unpickle(const char *pickle, struct crypto_pickle_key k, struct crypto_olm **out, char *err)
{
	OlmSession *o = unpickle_object(&session_kind, pickle, k, err);
	if (o == NULL)
		return -1;
	*out = olm_wrap(o);
	return 0;
}

void
crypto_olm_free(struct crypto_olm *s)
{
	if (s) {
		session_destroy(s->o);
		free(s);
	}
}

/* --- Megolm --- */

int
crypto_megolm_out_create(void *rnd, size_t rnd_len, struct crypto_megolm_out **out, char *err)
{
	OlmOutboundGroupSession *o = outbound_group_session_make();
	size_t need = olm_init_outbound_group_session_random_length(o);
	int rc = need_random(rnd_len, need, "olm_init_outbound_group_session", err);
	if (rc == 0 && olm_init_outbound_group_session(o, rnd, rnd_len) == olm_error())
		rc = olm_fail(err, "olm_init_outbound_group_session", olm_outbound_group_session_last_error(o));
	wipe(rnd, rnd_len);
	if (rc < 0) {
		outbound_group_session_destroy(o);
		return -1;
	}
	*out = xmalloc(sizeof **out);
	(*out)->o = o;
	return 0;
}

int
crypto_megolm_out_id(struct crypto_megolm_out *g, char id[CRYPTO_KEY_LEN], char *err)
{
	uint8_t tmp[128];
	size_t n = olm_outbound_group_session_id_length(g->o);
	if (n > sizeof tmp)
		return fail(err, "olm_outbound_group_session_id: %zu bytes", n);
	size_t r = olm_outbound_group_session_id(g->o, tmp, n);
	if (r == olm_error())
		return olm_fail(err, "olm_outbound_group_session_id", olm_outbound_group_session_last_error(g->o));
	return copy_out(id, CRYPTO_KEY_LEN, tmp, r, "olm_outbound_group_session_id", err);
}

uint32_t
crypto_megolm_out_index(struct crypto_megolm_out *g)
{
	return olm_outbound_group_session_message_index(g->o);
}

int
crypto_megolm_out_key(struct crypto_megolm_out *g, char **key, char *err)
{
	size_t n = olm_outbound_group_session_key_length(g->o);
	uint8_t *p = xmalloc(n + 1);
	size_t r = olm_outbound_group_session_key(g->o, p, n);
	if (r == olm_error()) {
		wipe_free(p, n + 1);
		return olm_fail(err, "olm_outbound_group_session_key", olm_outbound_group_session_last_error(g->o));
	}
	p[r] = '\0';
	*key = (char *)p;
	return 0;
}

int
crypto_megolm_out_encrypt(struct crypto_megolm_out *g, const void *plain, size_t n,
	char **ciphertext, uint32_t *index, char *err)
{
	uint32_t i = olm_outbound_group_session_message_index(g->o);
	size_t len = olm_group_encrypt_message_length(g->o, n);
	if (len == olm_error())
		return olm_fail(err, "olm_group_encrypt_message_length", olm_outbound_group_session_last_error(g->o));
	uint8_t *p = xmalloc(len + 1);
	size_t r = olm_group_encrypt(g->o, plain, n, p, len);
	if (r == olm_error()) {
		free(p);
		return olm_fail(err, "olm_group_encrypt", olm_outbound_group_session_last_error(g->o));
	}
	p[r] = '\0';
	*ciphertext = (char *)p;
	if (index)
		*index = i;
	return 0;
}

int
crypto_megolm_out_pickle(struct crypto_megolm_out *g, struct crypto_pickle_key k, char **out, char *err)
{
	return pickle_object(&outbound_group_session_kind, g->o, k, out, err);
}

int
crypto_megolm_out_unpickle(const char *pickle, struct crypto_pickle_key k, struct crypto_megolm_out **out,
	char *err)
{
	OlmOutboundGroupSession *o = unpickle_object(&outbound_group_session_kind, pickle, k, err);
	if (o == NULL)
		return -1;
	*out = xmalloc(sizeof **out);
	(*out)->o = o;
	return 0;
}

void
crypto_megolm_out_free(struct crypto_megolm_out *g)
{
	if (g) {
		outbound_group_session_destroy(g->o);
		free(g);
	}
}

int
crypto_megolm_in_create(const char *session_key, struct crypto_megolm_in **out, char *err)
{
	OlmInboundGroupSession *o = inbound_group_session_make();
	if (olm_init_inbound_group_session(o, (const uint8_t *)session_key, strlen(session_key)) == olm_error()) {
		olm_fail(err, "olm_init_inbound_group_session", olm_inbound_group_session_last_error(o));
		inbound_group_session_destroy(o);
		return -1;
	}
	*out = xmalloc(sizeof **out);
	(*out)->o = o;
	return 0;
}

int
crypto_megolm_in_id(struct crypto_megolm_in *g, char id[CRYPTO_KEY_LEN], char *err)
{
	uint8_t tmp[128];
	size_t n = olm_inbound_group_session_id_length(g->o);
	if (n > sizeof tmp)
		return fail(err, "olm_inbound_group_session_id: %zu bytes", n);
	size_t r = olm_inbound_group_session_id(g->o, tmp, n);
	if (r == olm_error())
		return olm_fail(err, "olm_inbound_group_session_id", olm_inbound_group_session_last_error(g->o));
	return copy_out(id, CRYPTO_KEY_LEN, tmp, r, "olm_inbound_group_session_id", err);
}

uint32_t
crypto_megolm_in_first_index(const struct crypto_megolm_in *g)
{
	return olm_inbound_group_session_first_known_index(g->o);
}

int
crypto_megolm_in_decrypt(struct crypto_megolm_in *g, const char *ciphertext, char **plain, size_t *plain_len,
	uint32_t *index, char *err)
{
	size_t n = strlen(ciphertext);
	uint8_t *copy = (uint8_t *)scratch(ciphertext, n);
	uint8_t *p = xmalloc(n + 1);
	uint32_t i = 0;
	size_t r = olm_group_decrypt(g->o, copy, n, p, n, &i);
	free(copy);
	if (r == olm_error()) {
		wipe_free(p, n + 1);
		return olm_fail(err, "olm_group_decrypt", olm_inbound_group_session_last_error(g->o));
	}
	p[r] = '\0';
	*plain = (char *)p;
	*plain_len = r;
	*index = i;
	return 0;
}

int
crypto_megolm_in_pickle(struct crypto_megolm_in *g, struct crypto_pickle_key k, char **out, char *err)
{
	return pickle_object(&inbound_group_session_kind, g->o, k, out, err);
}

int
crypto_megolm_in_unpickle(const char *pickle, struct crypto_pickle_key k, struct crypto_megolm_in **out,
	char *err)
{
	OlmInboundGroupSession *o = unpickle_object(&inbound_group_session_kind, pickle, k, err);
	if (o == NULL)
		return -1;
	*out = xmalloc(sizeof **out);
	(*out)->o = o;
	return 0;
}

void
crypto_megolm_in_free(struct crypto_megolm_in *g)
{
	if (g) {
		inbound_group_session_destroy(g->o);
		free(g);
	}
}

/* --- ed25519 --- */

int
crypto_ed25519_verify(const char *ed25519, const void *msg, size_t n, const char *sig, char *err)
{
	OlmUtility *u = olm_utility(xmalloc(olm_utility_size()));
	size_t sn = strlen(sig);
	char *copy = scratch(sig, sn);   /* libolm decodes the signature in place */
	int rc = 0;
	if (olm_ed25519_verify(u, ed25519, strlen(ed25519), msg, n, copy, sn) == olm_error())
		rc = olm_fail(err, "olm_ed25519_verify", olm_utility_last_error(u));
	free(copy);
	olm_clear_utility(u);
	free(u);
	return rc;
}

/* --- cross-signing keys --- */

int
crypto_signing_from_seed(void *seed, size_t seed_len, struct crypto_signing **out, char *err)
{
	if (seed_len != CRYPTO_SEED_LEN || olm_pk_signing_seed_length() != CRYPTO_SEED_LEN) {
		wipe(seed, seed_len);
		return fail(err, "olm_pk_signing_key_from_seed: seed of %zu bytes, needs %d", seed_len,
			CRYPTO_SEED_LEN);
	}
	struct crypto_signing *s = xcalloc(1, sizeof *s);
	s->o = olm_pk_signing(xmalloc(olm_pk_signing_size()));
	memcpy(s->seed, seed, CRYPTO_SEED_LEN);
	wipe(seed, seed_len);
	size_t pn = olm_pk_signing_public_key_length();
	if (pn >= CRYPTO_KEY_LEN ||
			olm_pk_signing_key_from_seed(s->o, s->pub, pn, s->seed, CRYPTO_SEED_LEN) == olm_error()) {
		olm_fail(err, "olm_pk_signing_key_from_seed", olm_pk_signing_last_error(s->o));
		crypto_signing_free(s);
		return -1;
	}
	s->pub[pn] = '\0';
	*out = s;
	return 0;
}

void
crypto_signing_public(const struct crypto_signing *s, char pub[CRYPTO_KEY_LEN])
{
	memcpy(pub, s->pub, CRYPTO_KEY_LEN);
}

int
crypto_signing_sign(struct crypto_signing *s, const void *msg, size_t n, char sig[CRYPTO_SIG_LEN], char *err)
{
	size_t len = olm_pk_signature_length();
	if (len >= CRYPTO_SIG_LEN)
		return fail(err, "olm_pk_sign: signature of %zu bytes", len);
	if (olm_pk_sign(s->o, msg, n, (uint8_t *)sig, len) == olm_error())
		return olm_fail(err, "olm_pk_sign", olm_pk_signing_last_error(s->o));
	sig[len] = '\0';
	return 0;
}

/*
 * libolm pickles no signing key.  A PkDecryption pickle is its one
 * authenticated encryption of 32 caller bytes under the pickle key, so the
 * ed25519 seed travels as that object's "private key" (never used for
 * curve25519).  vodozemac imports the same pickle, so a backend swap keeps
 * the cross-signing identity.
 */
static OlmPkDecryption *
pk_make(void)
{
	return olm_pk_decryption(xmalloc(olm_pk_decryption_size()));
}

static void
pk_destroy(OlmPkDecryption *d)
{
	olm_clear_pk_decryption(d);
	free(d);
}

int
crypto_signing_pickle(struct crypto_signing *s, struct crypto_pickle_key k, char **out, char *err)
{
	if (check_key(k, err) < 0)
		return -1;
	OlmPkDecryption *d = pk_make();
	char pub[128];
	char *p = NULL;
	int rc = 0;
	if (olm_pk_private_key_length() != CRYPTO_SEED_LEN || olm_pk_key_length() > sizeof pub ||
			olm_pk_key_from_private(d, pub, olm_pk_key_length(), s->seed, CRYPTO_SEED_LEN) == olm_error())
		rc = olm_fail(err, "olm_pk_key_from_private", olm_pk_decryption_last_error(d));
	size_t n = olm_pickle_pk_decryption_length(d);
	if (rc == 0) {
		p = xmalloc(n + 1);
		if (olm_pickle_pk_decryption(d, k.p, k.n, p, n) == olm_error())
			rc = olm_fail(err, "olm_pickle_pk_decryption", olm_pk_decryption_last_error(d));
	}
	pk_destroy(d);
	if (rc < 0) {
		free(p);
		return -1;
	}
	p[n] = '\0';
	*out = p;
	return 0;
}

int
crypto_signing_unpickle(const char *pickle, struct crypto_pickle_key k, struct crypto_signing **out, char *err)
{
	if (check_key(k, err) < 0)
		return -1;
	OlmPkDecryption *d = pk_make();
	size_t n = strlen(pickle);
	char *copy = scratch(pickle, n);
	char pub[128];
	unsigned char seed[CRYPTO_SEED_LEN];
	int rc = 0;
	if (olm_pk_key_length() > sizeof pub ||
			olm_unpickle_pk_decryption(d, k.p, k.n, copy, n, pub, olm_pk_key_length()) == olm_error())
		rc = olm_fail(err, "unpickle signing key", olm_pk_decryption_last_error(d));
	else if (olm_pk_get_private_key(d, seed, sizeof seed) == olm_error())
		rc = olm_fail(err, "olm_pk_get_private_key", olm_pk_decryption_last_error(d));
	free(copy);
	pk_destroy(d);
	if (rc == 0)
		rc = crypto_signing_from_seed(seed, sizeof seed, out, err);
	wipe(seed, sizeof seed);
	return rc;
}

void
crypto_signing_free(struct crypto_signing *s)
{
	if (s) {
		olm_clear_pk_signing(s->o);
		free(s->o);
		wipe_free(s, sizeof *s);
	}
}

/* --- signed JSON --- */

/* Something that signs bytes: the account (device key) or a cross-signing key. */
struct signer {
	int (*sign)(void *ctx, const void *msg, size_t n, char sig[CRYPTO_SIG_LEN], char *err);
	void *ctx;
};

static int
account_signer(void *ctx, const void *msg, size_t n, char sig[CRYPTO_SIG_LEN], char *err)
{
	return crypto_account_sign(ctx, msg, n, sig, err);
}

static int
signing_signer(void *ctx, const void *msg, size_t n, char sig[CRYPTO_SIG_LEN], char *err)
{
	return crypto_signing_sign(ctx, msg, n, sig, err);
}

/* obj[key] as an object, created when missing; NULL when it holds something else. */
static cJSON *
child_object(cJSON *obj, const char *key)
{
	cJSON *c = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (c == NULL)
		c = cJSON_AddObjectToObject(obj, key);
	return cJSON_IsObject(c) ? c : NULL;
}

static int
sign_json(struct signer sg, cJSON *obj, const char *user_id, const char *key_id, char *err)
{
	struct buf b;
	char sig[CRYPTO_SIG_LEN], name[CRYPTO_ERR_LEN];
	buf_init(&b);
	int rc = canonjson_signable(obj, &b, err);
	if (rc == 0)
		rc = sg.sign(sg.ctx, b.s, b.len, sig, err);
	buf_free(&b);
	if (rc < 0)
		return -1;
	cJSON *sigs = child_object(obj, "signatures");
	cJSON *mine = sigs ? child_object(sigs, user_id) : NULL;
	if (mine == NULL)
		return fail(err, "sign JSON: \"signatures\" is not an object of objects");
	snprintf(name, sizeof name, "ed25519:%s", key_id);
	cJSON_DeleteItemFromObjectCaseSensitive(mine, name);
	cJSON_AddStringToObject(mine, name, sig);
	return 0;
}

int
crypto_account_sign_json(struct crypto_account *a, cJSON *obj, const char *user_id, const char *device_id,
	char *err)
{
	return sign_json((struct signer){ account_signer, a }, obj, user_id, device_id, err);
}

int
crypto_signing_sign_json(struct crypto_signing *s, cJSON *obj, const char *user_id, char *err)
{
	return sign_json((struct signer){ signing_signer, s }, obj, user_id, s->pub, err);
}

int
crypto_verify_json(const cJSON *obj, const char *user_id, const char *key_id, const char *ed25519, char *err)
{
	char name[CRYPTO_ERR_LEN];
	snprintf(name, sizeof name, "ed25519:%s", key_id);
	const cJSON *sigs = cJSON_GetObjectItemCaseSensitive(obj, "signatures");
	const cJSON *by = cJSON_GetObjectItemCaseSensitive(sigs, user_id);
	const cJSON *sig = cJSON_GetObjectItemCaseSensitive(by, name);
	if (!cJSON_IsString(sig))
		return fail(err, "verify JSON: no signature %.64s by %.128s", name, user_id);
	struct buf b;
	buf_init(&b);
	int rc = canonjson_signable(obj, &b, err);
	if (rc == 0)
		rc = crypto_ed25519_verify(ed25519, b.s, b.len, sig->valuestring, err);
	buf_free(&b);
	return rc;
}

/* --- key objects --- */

int
crypto_device_keys(struct crypto_account *a, const char *user_id, const char *device_id, cJSON **out,
	char *err)
{
	char curve[CRYPTO_KEY_LEN], ed[CRYPTO_KEY_LEN], name[CRYPTO_ERR_LEN];
	if (crypto_account_identity_keys(a, curve, ed, err) < 0)
		return -1;
	static const char *const algorithms[] = { CRYPTO_ALG_OLM, CRYPTO_ALG_MEGOLM };
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "user_id", user_id);
	cJSON_AddStringToObject(o, "device_id", device_id);
	cJSON_AddItemToObject(o, "algorithms", cJSON_CreateStringArray(algorithms, 2));
	cJSON *keys = cJSON_AddObjectToObject(o, "keys");
	snprintf(name, sizeof name, "curve25519:%s", device_id);
	cJSON_AddStringToObject(keys, name, curve);
	snprintf(name, sizeof name, "ed25519:%s", device_id);
	cJSON_AddStringToObject(keys, name, ed);
	if (crypto_account_sign_json(a, o, user_id, device_id, err) < 0) {
		cJSON_Delete(o);
		return -1;
	}
	*out = o;
	return 0;
}

/* {"signed_curve25519:ID": {key, [fallback: true,] signatures}} for each key into map. */
static int
add_signed_keys(struct crypto_account *a, const struct crypto_otk *keys, size_t n, bool fallback,
	const char *user_id, const char *device_id, cJSON *map, char *err)
{
	char name[CRYPTO_KEY_ID_LEN + 32];
	for (size_t i = 0; i < n; i++) {
		cJSON *k = cJSON_CreateObject();
		cJSON_AddStringToObject(k, "key", keys[i].key);
		if (fallback)
			cJSON_AddTrueToObject(k, "fallback");
		if (crypto_account_sign_json(a, k, user_id, device_id, err) < 0) {
			cJSON_Delete(k);
			return -1;
		}
		snprintf(name, sizeof name, "signed_curve25519:%s", keys[i].id);
		cJSON_AddItemToObject(map, name, k);
	}
	return 0;
}

int
crypto_otk_objects(struct crypto_account *a, const char *user_id, const char *device_id, cJSON **out,
	char *err)
{
	struct crypto_otk *keys;
	size_t n;
	if (crypto_account_unpublished_otks(a, &keys, &n, err) < 0)
		return -1;
	cJSON *map = cJSON_CreateObject();
	int rc = add_signed_keys(a, keys, n, false, user_id, device_id, map, err);
	free(keys);
	if (rc < 0) {
		cJSON_Delete(map);
		return -1;
	}
	*out = map;
	return 0;
}

int
crypto_fallback_object(struct crypto_account *a, const char *user_id, const char *device_id, cJSON **out,
	char *err)
{
	struct crypto_otk fk;
	int have = crypto_account_unpublished_fallback(a, &fk, err);
	if (have < 0)
		return -1;
	cJSON *map = cJSON_CreateObject();
	if (add_signed_keys(a, &fk, (size_t)have, true, user_id, device_id, map, err) < 0) {
		cJSON_Delete(map);
		return -1;
	}
	*out = map;
	return 0;
}

int
crypto_signing_key_object(const struct crypto_signing *s, const char *user_id, const char *usage,
	struct crypto_signing *signer, cJSON **out, char *err)
{
	char name[CRYPTO_KEY_LEN + 16];
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "user_id", user_id);
	cJSON_AddItemToObject(o, "usage", cJSON_CreateStringArray(&usage, 1));
	snprintf(name, sizeof name, "ed25519:%s", s->pub);
	cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "keys"), name, s->pub);
	if (signer && crypto_signing_sign_json(signer, o, user_id, err) < 0) {
		cJSON_Delete(o);
		return -1;
	}
	*out = o;
	return 0;
}
