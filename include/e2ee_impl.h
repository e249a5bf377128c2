/*
 * e2ee_impl.h: what the parts of the encryption engine (bot/e2ee*.c) share
 * and nothing else may include: struct e2ee, the helpers for its state
 * (store transactions, the pickle key, randomness, secret wiping), the
 * lenient JSON accessors, and the request builders of each kind that
 * e2ee.c dispatches to.  Knows libolm only through crypto.h and the store
 * only through store.h; no HTTP, no transport.
 */
#ifndef KNEEBOT_E2EE_IMPL_H
#define KNEEBOT_E2EE_IMPL_H

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "e2ee.h"
#include "json.h"
#include "store.h"

#define RECENT_DECRYPTS 16
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

/* ---- small helpers (e2ee.c), the tiny ones inline ---- */

/* An unpadded base64 curve25519/ed25519 key or Megolm session id: 43 characters of the alphabet. */
static inline bool
is_key(const char *s)
{
	if (!s || strlen(s) != 43)
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '+' && *p != '/')
			return false;
	return true;
}

static inline bool
streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static inline struct crypto_pickle_key
pkey(const struct e2ee *e)
{
	return (struct crypto_pickle_key){ e->key, e->key_len };
}

static inline void
crash(struct e2ee *e, const char *point)
{
	if (e->hooks.crash_point)
		e->hooks.crash_point(point);
}

char *e2ee_print_json(const cJSON *j);
/* Wipes every string of a tree that held a secret (a session key, a plaintext) before it is freed. */
void e2ee_json_wipe(cJSON *j);
/* n random bytes (at least one allocated), from the hook. */
unsigned char *e2ee_rnd(struct e2ee *e, size_t n);
/* Opens a transaction unless the caller's is open (a sync batch). */
bool e2ee_tx_begin(struct e2ee *e, bool *own);
/* Commits (ok) or rolls back our own transaction; in the caller's, a failure is the caller's to roll back. */
int e2ee_tx_end(struct e2ee *e, bool own, bool ok);
void e2ee_want_free(struct want *v, size_t n);

/* ---- the account (e2ee.c) ---- */

/* Our account's row, not unpickled; -1 when it is missing (logged) or the store fails. */
int e2ee_account_row(struct e2ee *e, struct store_account *row);
/* The account, unpickled; row holds its stored flags.  NULL after logging why. */
struct crypto_account *e2ee_account_load(struct e2ee *e, struct store_account *row);
/* Pickles a into row and writes row: the caller commits before anything derived from a leaves. */
int e2ee_account_save(struct e2ee *e, struct crypto_account *a, struct store_account *row);

/* ---- requests: e2ee.c asks the part of each kind ---- */

/* path and body (printed from body) into r. */
void e2ee_req_json(struct e2ee_req *r, const char *path, cJSON *body);
/* e2ee_keys.c */
int e2ee_keys_next(struct e2ee *e, int64_t now_ms, struct e2ee_req *r);
enum e2ee_done_result e2ee_keys_done(struct e2ee *e, long status, const cJSON *j, int64_t now_ms);
/* e2ee_devices.c */
int e2ee_query_next(struct e2ee *e, struct e2ee_req *r);
enum e2ee_done_result e2ee_query_done(struct e2ee *e, long status, const cJSON *j);
/* e2ee_send.c */
int e2ee_claim_next(struct e2ee *e, struct e2ee_req *r);
enum e2ee_done_result e2ee_claim_done(struct e2ee *e, long status, const cJSON *j, int64_t now_ms);
int e2ee_todev_next(struct e2ee *e, struct e2ee_req *r);
enum e2ee_done_result e2ee_todev_done(struct e2ee *e, long status, const cJSON *j);

/* ---- device lists (e2ee_devices.c) ---- */

/* Tracks user_id's devices (outdated, so queried) unless they are tracked already. */
int e2ee_track(struct e2ee *e, const char *user_id);
/* A device_lists change: outdated, and a /keys/query in flight for the user no longer clears that. */
int e2ee_outdate(struct e2ee *e, const char *user_id);

#endif
