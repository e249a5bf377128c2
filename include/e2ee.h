/*
 * e2ee.h: Matrix end-to-end encryption for one account, as the Matrix
 * transport uses it: the bot's device (Olm account, one-time and fallback
 * keys, cross-signing), the device lists of every member of every encrypted
 * room (trust on first use of each device's ed25519 key), receiving (Olm
 * to-device messages, m.room_key, Megolm room events with the room, sender
 * and replay checks, events parked until their key arrives) and sending (an
 * outbound Megolm session per room, shared over Olm, rotated).
 *
 * State: every libolm object lives in store.h as a pickle under the pickle
 * key and is unpickled for each use, so a rolled-back transaction can never
 * leave memory ahead of the disk.  Each change is committed before anything
 * derived from it (a ciphertext, an uploaded key) can leave the process:
 * inside the caller's transaction when one is open (a sync batch), else in
 * one of its own.
 *
 * No HTTP: the transport asks for the next request of each kind
 * (e2ee_next) and hands back its answer (e2ee_done); retrying after a
 * network error asks again and gets the same request.  All libolm calls go
 * through crypto.h.  Must not know: curl, the loop, the router.
 *
 * The pure functions at the end (bytes in, values out) are what a peer or
 * the server controls first; tests and fuzzers call them directly.
 */
#ifndef KNEEBOT_E2EE_H
#define KNEEBOT_E2EE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "crypto.h"
#include "matrix.h"

struct store;
struct store_out;
struct e2ee;

#define E2EE_OTK_TARGET 50                   /* one-time keys kept on the server */
#define E2EE_HOUR_MS (3600 * 1000LL)
#define E2EE_AWAIT_MS (24 * E2EE_HOUR_MS)    /* how long an event waits for its key */
#define E2EE_ROTATION_MS 604800000LL         /* m.room.encryption defaults */
#define E2EE_ROTATION_MSGS 100

/* What the transport lends the engine. */
struct e2ee_hooks {
	void *arg;
	/* Fills n bytes of randomness (getrandom; a fixed stream in fuzzers). */
	void (*random)(void *arg, void *p, size_t n);
	/* The account password for user-interactive auth (caller wipes and frees), or -1 when none. */
	int (*password)(void *arg, char **out);
	/* A plain-language m.notice for a room (queued with the batch's replies, encrypted like them). */
	void (*notice)(void *arg, const char *room_id, const char *mention, const char *text);
	/* Test-only crash points (KNEEBOT_CRASH_POINT); may be NULL. */
	void (*crash_point)(const char *name);
};

struct e2ee_config {
	const char *name;                    /* the network, for log lines */
	const char *user_id, *device_id;
	struct crypto_pickle_key key;        /* copied */
	bool require_cross_signed;
	struct e2ee_hooks hooks;
};

enum e2ee_open_result {
	E2EE_OPEN_OK = 0,
	E2EE_OPEN_ERROR = -1,
	E2EE_OPEN_BAD_KEY = -2,   /* the pickle key does not open the stored account: lost or changed */
};

/*
 * Loads the account of c->device_id from the store, or creates it (and its
 * fallback key) and commits it.  State of another device id (an earlier
 * login) is forgotten first: its keys were not ours any more.
 */
int e2ee_open(struct store *st, const struct e2ee_config *c, int64_t now_ms, struct e2ee **out, struct buf *err);
void e2ee_free(struct e2ee *e);
/* Forgets all crypto state (a lost pickle key: the next login is a new device). */
int e2ee_forget_all(struct store *st);
const char *e2ee_device_id(const struct e2ee *e);
/* The device's ed25519 key, for admins to compare with what clients show. */
const char *e2ee_ed25519(const struct e2ee *e);
/* The same in groups of four characters, as clients show fingerprints. */
void e2ee_fingerprint(const struct e2ee *e, struct buf *out);

/* ---- a sync batch (inside its transaction) ---- */

/* To-device events, device list changes and key counts.  sent_ms: when that /sync was started. */
int e2ee_sync(struct e2ee *e, const struct mx_crypto *c, int64_t sent_ms, int64_t now_ms);
/* A room's m.room.encryption content: it is encrypted, with these rotation settings. */
int e2ee_room_encryption(struct e2ee *e, const char *room_id, const cJSON *content);
/* A member event (state or timeline) of a room the bot is in; membership NULL or "leave", "ban", ... */
int e2ee_member(struct e2ee *e, const char *room_id, const char *user_id, const char *membership, bool encrypted);
/* The bot left the room: its members and outbound session are forgotten. */
int e2ee_room_left(struct e2ee *e, const char *room_id);
/* A sync without since says nothing of device lists that changed before it: every list is queried again. */
int e2ee_outdate_all(struct e2ee *e);

enum e2ee_in {
	E2EE_IN_PLAIN,   /* not encrypted: use the event as it is */
	E2EE_IN_OK,      /* decrypted into *out */
	E2EE_IN_WAIT,    /* parked until its key (or its sender's device) is known */
	E2EE_IN_DROP,    /* refused or undecryptable; logged */
	E2EE_IN_ERROR,   /* the store failed: the batch must be replayed */
};
/*
 * A timeline event of room_id.  m.room.encrypted is decrypted with every
 * check (session of this room and sender, verified device, message index
 * not seen under another event id, payload room id) into *out, a new event
 * object (type, content, event_id, sender, origin_server_ts, unsigned) the
 * caller frees; m.relates_to comes from the cleartext when it is there.
 * answer: whether the event is new enough to be answered once its key
 * comes (remembered while it is parked).
 */
enum e2ee_in e2ee_decrypt(struct e2ee *e, const char *room_id, const struct mx_event *ev, bool answer,
	int64_t now_ms, cJSON **out);

/* Parked events that can now be decrypted: cb for each, oldest first (they stay parked until decrypted). */
typedef void (*e2ee_ready_cb)(void *arg, const char *room_id, const cJSON *event, bool answer);
int e2ee_ready(struct e2ee *e, e2ee_ready_cb cb, void *arg);

/* ---- sending ---- */

enum e2ee_seal {
	E2EE_SEAL_READY,   /* o is sealed (encrypted, stored, committed) */
	E2EE_SEAL_WAIT,    /* keys are being fetched or shared: try again after progress */
	E2EE_SEAL_DROP,    /* cannot be sent encrypted: drop it */
};
/* Encrypts the outbox row o for its encrypted room; shares the room key first where needed. */
enum e2ee_seal e2ee_seal(struct e2ee *e, struct store_out *o, int64_t now_ms);
/* Notes when the decryption of an event began, so that its reply's sealing can log the delay (bench). */
void e2ee_note_decrypt(struct e2ee *e, const char *event_id, int64_t t_us);

/* ---- requests ---- */

enum e2ee_kind {
	E2EE_KEYS,        /* /keys/upload, cross-signing upload, signatures upload */
	E2EE_QUERY,       /* /keys/query */
	E2EE_CLAIM,       /* /keys/claim */
	E2EE_TO_DEVICE,   /* /sendToDevice */
	E2EE_KINDS
};

struct e2ee_req {
	bool put;              /* PUT, else POST */
	struct buf path;       /* under /_matrix/client/v3 */
	struct buf body;       /* JSON */
};
void e2ee_req_init(struct e2ee_req *r);
void e2ee_req_free(struct e2ee_req *r);
/* 1 with the next request of kind k in *r (cleared first), 0 when there is nothing to do, -1 on error. */
int e2ee_next(struct e2ee *e, enum e2ee_kind k, int64_t now_ms, struct e2ee_req *r);
enum e2ee_done_result {
	E2EE_DONE_OK,        /* applied: ask again */
	E2EE_DONE_BACKOFF,   /* not applied: ask again after a backoff */
};
/* The final answer (2xx or a 4xx refusal, never a retryable error) to the last request of kind k. */
enum e2ee_done_result e2ee_done(struct e2ee *e, enum e2ee_kind k, long status, const char *body, size_t len,
	int64_t now_ms);
/* Hourly: expires parked events, forgets the replaced fallback key when due. */
void e2ee_housekeeping(struct e2ee *e, int64_t now_ms);

/* ---- pure parts ---- */

/* An Olm m.room.encrypted to-device content, for our curve25519 key. */
struct e2ee_olm_msg {
	const char *sender_key, *body;
	int type;              /* 0 pre-key, 1 normal */
};
/* 0, or -1 with why (a static string). */
int e2ee_olm_parse(const cJSON *content, const char *our_curve25519, struct e2ee_olm_msg *m, const char **why);

/* A decrypted Olm payload; strings borrow from root (freed with cJSON_Delete). */
struct e2ee_olm_payload {
	cJSON *root;
	const char *type, *sender_ed25519;
	const cJSON *content;
};
/* Parses and checks sender, recipient and recipient_keys against ours (spec "m.olm.v1...": payload). */
int e2ee_olm_payload_check(const char *plain, size_t n, const char *sender, const char *own_user,
	const char *own_ed25519, struct e2ee_olm_payload *p, const char **why);

struct e2ee_room_key {
	const char *room_id, *session_id, *session_key;
};
int e2ee_room_key_parse(const cJSON *content, struct e2ee_room_key *k, const char **why);

struct e2ee_withheld {
	const char *room_id, *session_id, *code;
};
int e2ee_withheld_parse(const cJSON *content, struct e2ee_withheld *w, const char **why);

/* A Megolm m.room.encrypted room event content. */
struct e2ee_megolm_msg {
	const char *session_id, *ciphertext;
	const cJSON *relates_to;   /* the cleartext m.relates_to, or NULL */
};
int e2ee_megolm_parse(const cJSON *content, struct e2ee_megolm_msg *m, const char **why);
/*
 * The decrypted Megolm payload {type, content, room_id} of ev as the event
 * to dispatch, refused (NULL, why) unless its room_id is room_id and its
 * type and content are a string and an object.  The cleartext m.relates_to
 * (the spec keeps it outside the encryption) wins over one in the payload.
 */
cJSON *e2ee_megolm_event(const char *plain, size_t n, const struct mx_event *ev, const char *room_id,
	const cJSON *clear_relates_to, const char **why);

#endif
