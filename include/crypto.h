/*
 * crypto.h: Matrix end-to-end encryption primitives: the Olm account and
 * one-time keys, Olm sessions (to-device), Megolm sessions (room events),
 * ed25519 verification, cross-signing keys, and the signed key objects of
 * the spec.  Every libolm call of the project lives in crypto.c, so another
 * backend (vodozemac reads libolm pickles) replaces this file alone.
 *
 * Pickles in, pickles out: every object is (un)pickled with the caller's
 * pickle key (at least CRYPTO_PICKLE_KEY_MIN bytes, never a constant).  A
 * function marked "changes X" changes X's state: pickle X and commit it
 * before anything derived from the call (a ciphertext, an uploaded key)
 * leaves the process, or a crash reuses a ratchet step or a key.
 *
 * Randomness comes from the caller: a function taking (rnd, rnd_len) needs
 * at least the bytes its crypto_*_random_len() names, and wipes them.
 *
 * Errors: -1 and a one-line message in err[CRYPTO_ERR_LEN], with libolm's
 * error name (BAD_MESSAGE_MAC, BAD_ACCOUNT_KEY, UNKNOWN_MESSAGE_INDEX, ...)
 * when libolm failed.  Messages never contain keys or plaintext.
 *
 * Ownership: objects are freed (and wiped) with their *_free(); returned
 * char * (pickles, ciphertexts, plaintexts, session keys) and cJSON trees
 * belong to the caller (free(), cJSON_Delete()).  Plaintexts and session
 * keys are secrets: wipe them when done.
 *
 * Must not know: I/O of any kind (files, SQLite, HTTP, getrandom), Matrix
 * policy (which devices to trust, replay tables, rotation, retries).  In
 * particular libolm has no Megolm replay check: the caller keeps the
 * (session, message index) -> event id table.
 */
#ifndef KNEEBOT_CRYPTO_H
#define KNEEBOT_CRYPTO_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "canonjson.h"

#define CRYPTO_ERR_LEN CANONJSON_ERR_LEN
#define CRYPTO_PICKLE_KEY_MIN 32
#define CRYPTO_KEY_LEN 44       /* unpadded base64 of 32 bytes (key, session id) + NUL */
#define CRYPTO_SIG_LEN 87       /* unpadded base64 ed25519 signature + NUL */
#define CRYPTO_KEY_ID_LEN 16    /* one-time key id ("AAAAAQ") + NUL */
#define CRYPTO_SEED_LEN 32      /* cross-signing private key seed */

#define CRYPTO_ALG_OLM "m.olm.v1.curve25519-aes-sha2"
#define CRYPTO_ALG_MEGOLM "m.megolm.v1.aes-sha2"

enum crypto_olm_type { CRYPTO_OLM_PREKEY = 0, CRYPTO_OLM_MESSAGE = 1 };

/* The caller's pickle key; the bytes stay the caller's. */
struct crypto_pickle_key {
	const void *p;
	size_t n;
};

struct crypto_account;
struct crypto_olm;          /* an Olm session with one peer device */
struct crypto_megolm_out;   /* our outbound Megolm session for a room */
struct crypto_megolm_in;    /* an inbound Megolm session (from m.room_key) */
struct crypto_signing;      /* an ed25519 cross-signing key (master, self-signing) */

/* A one-time or fallback key as libolm lists it: id and curve25519 key. */
struct crypto_otk {
	char id[CRYPTO_KEY_ID_LEN];
	char key[CRYPTO_KEY_LEN];
};

/* --- randomness each call needs --- */
size_t crypto_account_random_len(void);
size_t crypto_otk_random_len(const struct crypto_account *a, size_t count);
size_t crypto_fallback_random_len(const struct crypto_account *a);
size_t crypto_olm_outbound_random_len(void);
size_t crypto_olm_encrypt_random_len(const struct crypto_olm *s);   /* 0 or 32: depends on the ratchet */
size_t crypto_megolm_out_random_len(void);

/* --- Olm account --- */
int crypto_account_create(void *rnd, size_t rnd_len, struct crypto_account **out, char *err);
int crypto_account_pickle(struct crypto_account *a, struct crypto_pickle_key k, char **out, char *err);
/* A wrong key fails with BAD_ACCOUNT_KEY; the pickle is not changed. */
int crypto_account_unpickle(const char *pickle, struct crypto_pickle_key k, struct crypto_account **out, char *err);
void crypto_account_free(struct crypto_account *a);
int crypto_account_identity_keys(struct crypto_account *a, char curve25519[CRYPTO_KEY_LEN],
	char ed25519[CRYPTO_KEY_LEN], char *err);
int crypto_account_sign(struct crypto_account *a, const void *msg, size_t n, char sig[CRYPTO_SIG_LEN], char *err);
/* At most this many unpublished plus published keys; past it libolm silently drops the oldest. */
size_t crypto_account_max_otks(const struct crypto_account *a);
/* Changes a: count new unpublished one-time keys. */
int crypto_account_generate_otks(struct crypto_account *a, size_t count, void *rnd, size_t rnd_len, char *err);
/* The unpublished one-time keys (*keys malloc'd, *n may be 0). */
int crypto_account_unpublished_otks(struct crypto_account *a, struct crypto_otk **keys, size_t *n, char *err);
/* Changes a: every unpublished one-time key and the fallback key count as published. */
void crypto_account_mark_published(struct crypto_account *a);
/* Changes a: a new fallback key; the previous one stays usable until forgotten. */
int crypto_account_generate_fallback(struct crypto_account *a, void *rnd, size_t rnd_len, char *err);
/* The fallback key when generated and not yet published: 1 (in *fk), 0 when none. */
int crypto_account_unpublished_fallback(struct crypto_account *a, struct crypto_otk *fk, char *err);
/* Changes a: drops the fallback key that preceded the current one. */
void crypto_account_forget_old_fallback(struct crypto_account *a);

/* --- Olm sessions --- */
/* New session to a device from its curve25519 identity key and a claimed (verified) one-time key. */
int crypto_olm_outbound(struct crypto_account *a, const char *their_curve25519, const char *their_otk,
	void *rnd, size_t rnd_len, struct crypto_olm **out, char *err);
/*
 * A pre-key message (type 0) from the device with their_curve25519: a new
 * session, and its plaintext.  Only after the decrypt succeeded is the
 * one-time key it used removed from a ("changes a"; a fallback key stays);
 * on failure a is unchanged and nothing is returned (spec: never keep the
 * session or drop the key before a successful decrypt).  Try
 * crypto_olm_matches_inbound() on the peer's stored sessions first.
 */
int crypto_olm_inbound(struct crypto_account *a, const char *their_curve25519, const char *body,
	struct crypto_olm **out, char **plain, size_t *plain_len, char *err);
/* 1 when pre-key message body from their_curve25519 belongs to session s, 0 when not, -1 on error. */
int crypto_olm_matches_inbound(struct crypto_olm *s, const char *their_curve25519, const char *body, char *err);
/* Changes s: *body (base64) and *type are what goes into the to-device ciphertext. */
int crypto_olm_encrypt(struct crypto_olm *s, const void *plain, size_t n, void *rnd, size_t rnd_len,
	enum crypto_olm_type *type, char **body, char *err);
/* Changes s on success (a failed decrypt leaves it as it was).  *plain is NUL-terminated too. */
int crypto_olm_decrypt(struct crypto_olm *s, enum crypto_olm_type type, const char *body,
	char **plain, size_t *plain_len, char *err);
int crypto_olm_id(struct crypto_olm *s, char id[CRYPTO_KEY_LEN], char *err);
/* True once a message from the peer decrypted: our messages stop being pre-key messages. */
bool crypto_olm_has_received(const struct crypto_olm *s);
int crypto_olm_pickle(struct crypto_olm *s, struct crypto_pickle_key k, char **out, char *err);
int crypto_olm_unpickle(const char *pickle, struct crypto_pickle_key k, struct crypto_olm **out, char *err);
void crypto_olm_free(struct crypto_olm *s);

/* --- Megolm: our outbound session for a room --- */
int crypto_megolm_out_create(void *rnd, size_t rnd_len, struct crypto_megolm_out **out, char *err);
int crypto_megolm_out_id(struct crypto_megolm_out *g, char id[CRYPTO_KEY_LEN], char *err);
/* The index the next encrypt will use. */
uint32_t crypto_megolm_out_index(struct crypto_megolm_out *g);
/* The session_key of m.room_key (secret), valid from the current index on. */
int crypto_megolm_out_key(struct crypto_megolm_out *g, char **key, char *err);
/* Changes g: ciphertext (base64) of plain at *index (may be NULL). */
int crypto_megolm_out_encrypt(struct crypto_megolm_out *g, const void *plain, size_t n,
	char **ciphertext, uint32_t *index, char *err);
int crypto_megolm_out_pickle(struct crypto_megolm_out *g, struct crypto_pickle_key k, char **out, char *err);
int crypto_megolm_out_unpickle(const char *pickle, struct crypto_pickle_key k, struct crypto_megolm_out **out,
	char *err);
void crypto_megolm_out_free(struct crypto_megolm_out *g);

/* --- Megolm: inbound sessions --- */
/* From an m.room_key's session_key; compare crypto_megolm_in_id() with its session_id. */
int crypto_megolm_in_create(const char *session_key, struct crypto_megolm_in **out, char *err);
int crypto_megolm_in_id(struct crypto_megolm_in *g, char id[CRYPTO_KEY_LEN], char *err);
uint32_t crypto_megolm_in_first_index(const struct crypto_megolm_in *g);
/*
 * Does not change g.  *index is the message index: the same ciphertext
 * decrypts again at the same index (no replay check in libolm), so the
 * caller refuses an index already seen under another event id.
 */
int crypto_megolm_in_decrypt(struct crypto_megolm_in *g, const char *ciphertext, char **plain, size_t *plain_len,
	uint32_t *index, char *err);
int crypto_megolm_in_pickle(struct crypto_megolm_in *g, struct crypto_pickle_key k, char **out, char *err);
int crypto_megolm_in_unpickle(const char *pickle, struct crypto_pickle_key k, struct crypto_megolm_in **out,
	char *err);
void crypto_megolm_in_free(struct crypto_megolm_in *g);

/* --- ed25519 --- */
/* 0 when sig (base64) is ed25519 key's signature of msg; -1 otherwise (BAD_MESSAGE_MAC: a wrong signature). */
int crypto_ed25519_verify(const char *ed25519, const void *msg, size_t n, const char *sig, char *err);

/* --- cross-signing keys --- */
/* A new key from CRYPTO_SEED_LEN random bytes (wiped), or a known seed in tests. */
int crypto_signing_from_seed(void *seed, size_t seed_len, struct crypto_signing **out, char *err);
void crypto_signing_public(const struct crypto_signing *s, char pub[CRYPTO_KEY_LEN]);
int crypto_signing_sign(struct crypto_signing *s, const void *msg, size_t n, char sig[CRYPTO_SIG_LEN], char *err);
/* The seed under the pickle key (a libolm PkDecryption pickle carrying it). */
int crypto_signing_pickle(struct crypto_signing *s, struct crypto_pickle_key k, char **out, char *err);
int crypto_signing_unpickle(const char *pickle, struct crypto_pickle_key k, struct crypto_signing **out, char *err);
void crypto_signing_free(struct crypto_signing *s);

/* --- signed JSON (spec appendix "Signing JSON") --- */
/* Adds signatures[user_id]["ed25519:" + device_id], signed by the account, to object obj. */
int crypto_account_sign_json(struct crypto_account *a, cJSON *obj, const char *user_id, const char *device_id,
	char *err);
/* Adds signatures[user_id]["ed25519:" + its public key], signed by s, to object obj. */
int crypto_signing_sign_json(struct crypto_signing *s, cJSON *obj, const char *user_id, char *err);
/* 0 when obj carries a valid signatures[user_id]["ed25519:" + key_id] by ed25519; -1 when missing or wrong. */
int crypto_verify_json(const cJSON *obj, const char *user_id, const char *key_id, const char *ed25519, char *err);

/* --- the key objects of /keys/upload and /keys/device_signing/upload --- */
/* device_keys: {user_id, device_id, algorithms, keys {curve25519:DEV, ed25519:DEV}, signatures}. */
int crypto_device_keys(struct crypto_account *a, const char *user_id, const char *device_id, cJSON **out,
	char *err);
/* one_time_keys: {"signed_curve25519:ID": {key, signatures}} for each unpublished key; {} when none. */
int crypto_otk_objects(struct crypto_account *a, const char *user_id, const char *device_id, cJSON **out,
	char *err);
/* fallback_keys: {"signed_curve25519:ID": {key, fallback: true, signatures}}; {} when none unpublished. */
int crypto_fallback_object(struct crypto_account *a, const char *user_id, const char *device_id, cJSON **out,
	char *err);
/*
 * A cross-signing key object {user_id, usage [usage], keys {"ed25519:PUB": PUB}},
 * signed by signer (the master key for "self_signing"; NULL leaves it unsigned).
 */
int crypto_signing_key_object(const struct crypto_signing *s, const char *user_id, const char *usage,
	struct crypto_signing *signer, cJSON **out, char *err);

#endif
