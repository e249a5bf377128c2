/*
 * store.h: the durable state of one network in SQLite: login, sync position,
 * the events already handled, rooms, and the outbox of requests that must go
 * out exactly once.  WAL with synchronous=FULL (a committed answer survives a
 * power cut), files mode 0600, one process per store (flock on NAME.lock).
 * The schema is versioned with PRAGMA user_version; a new table is one more
 * entry in store.c's migrations[].  Knows nothing of HTTP or libolm; the
 * Matrix words here are only the names of what it keeps.
 *
 * Strings returned in structs are owned by the struct (free with *_free;
 * for arrays, store_X_free(v, n) frees the items and the caller free()s v).
 * Getters of one row return 1 (found), 0 (none) or -1.  Every function
 * returns -1 on an SQLite error, after logging it.
 */
#ifndef KNEEBOT_STORE_H
#define KNEEBOT_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

#define STORE_VERSION 4

enum store_open_result {
	STORE_OK = 0,
	STORE_ERROR = -1,
	STORE_LOCKED_HERE = -2,   /* this process holds it already (a reload): retry soon */
};

struct store;

/*
 * Opens (creating dir 0700 and files 0600 when missing) dir/NAME.db, locked
 * through dir/NAME.lock, and migrates it to STORE_VERSION.  On error err says
 * why: another process holds the lock, the file is newer than this program,
 * or SQLite failed.
 */
int store_open(const char *dir, const char *name, struct store **out, struct buf *err);
void store_close(struct store *s);
const char *store_path(const struct store *s);
int store_version(struct store *s);

/* One transaction at a time (BEGIN IMMEDIATE ... COMMIT). */
int store_begin(struct store *s);
int store_commit(struct store *s);
void store_rollback(struct store *s);
bool store_in_tx(const struct store *s);

/* Key/value settings: homeserver, user_id, device_id, access_token, next_batch, ... */
char *store_meta_get(struct store *s, const char *key);   /* NULL when unset; caller frees */
int store_meta_set(struct store *s, const char *key, const char *value);   /* NULL deletes */

/* Events already dealt with, so that none is answered twice. */
enum store_event_state {
	STORE_EV_UNKNOWN = 0,
	STORE_EV_HANDLED = 1,   /* someone else's, dispatched or deliberately skipped */
	STORE_EV_OWN = 2,       /* sent by the bot: a reply to it addresses the bot */
};
int store_event_state(struct store *s, const char *event_id);
int store_event_put(struct store *s, const char *event_id, const char *room_id, int state, int64_t ts_ms);
int store_event_prune(struct store *s, int64_t before_ms);

/* Rooms the account is in or invited to (schema 2). */
struct store_room {
	char *room_id;
	char *membership;       /* "join", "invite", "leave" */
	long joined, invited;   /* member counts, -1 when not known yet */
	bool encrypted;         /* m.room.encryption seen: stays encrypted */
};
int store_room_put(struct store *s, const struct store_room *r);
int store_room_delete(struct store *s, const char *room_id);
/* Calls cb for every room; stops early when cb returns non-zero. */
int store_room_each(struct store *s, int (*cb)(const struct store_room *r, void *arg), void *arg);
void store_room_free(struct store_room *r);

/*
 * The outbox: requests queued inside the transaction that decided them and
 * sent after its COMMIT, in id order.  A retry reuses txn_id, so the server
 * drops a second copy.
 */
struct store_out {
	int64_t id;
	char *txn_id;
	char *kind;             /* "send", "join", "leave" */
	char *room_id;          /* room id, or an alias to join */
	char *event_type;       /* "send": m.room.message (m.room.encrypted once sealed) */
	char *content;          /* "send": the event content as JSON */
	char *reply_to;         /* the event answered, for the read receipt; may be NULL */
	int64_t created_ms;     /* wall clock */
	long attempts;
	bool sealed;            /* content is final (encrypted where it must be) */
};
int store_out_add(struct store *s, struct store_out *o);   /* sets o->id */
/* The first row with id > after_id: 1 found, 0 none. */
int store_out_next(struct store *s, int64_t after_id, struct store_out *o);
int store_out_attempt(struct store *s, int64_t id);
/* Replaces type and content (encryption), marking the row sealed. */
int store_out_seal(struct store *s, int64_t id, const char *event_type, const char *content);
int store_out_delete(struct store *s, int64_t id);
/* Deletes rows created before before_ms; returns how many, or -1. */
int store_out_expire(struct store *s, int64_t before_ms);
int store_out_count(struct store *s);
void store_out_free(struct store_out *o);

/*
 * Timeline gaps (schema 4): a limited sync left events between to (the
 * since token of that sync) and from (its prev_batch) unseen.  Noted in the
 * sync's own transaction, read back page by page from /messages, newest first.
 */
struct store_gap {
	int64_t id;
	char *room_id;
	char *from, *to;        /* /messages tokens: continue from, stop at */
	long pages;             /* pages read so far */
	int64_t created_ms;
};
int store_gap_add(struct store *s, const char *room_id, const char *from, const char *to, int64_t created_ms);
/* The oldest open gap: 1 found, 0 none. */
int store_gap_next(struct store *s, struct store_gap *g);
/* Read one more page: continue from `from` next time. */
int store_gap_move(struct store *s, int64_t id, const char *from);
int store_gap_delete(struct store *s, int64_t id);
void store_gap_free(struct store_gap *g);

/*
 * End-to-end encryption (schema 3).  Pickles are libolm objects encrypted
 * with the pickle key: the store never sees a key or a plaintext.  Callers
 * commit every change before anything derived from it leaves the process.
 */

/* The bot's Olm account for one device id: never replaced under that id. */
struct store_account {
	char *device_id, *pickle, *curve25519, *ed25519;
	bool keys_uploaded;           /* the server took its device keys */
	bool signed_by_us;            /* the self-signing key's signature of it is uploaded */
	int64_t forget_fallback_ms;   /* when the replaced fallback key may be forgotten; 0: none */
	int64_t created_ms;
};
int store_account_get(struct store *s, const char *device_id, struct store_account *a);
int store_account_put(struct store *s, const struct store_account *a);   /* pickle and flags; keys never change */
int store_account_others(struct store *s, const char *device_id);        /* accounts of other device ids */
void store_account_free(struct store_account *a);
/* Drops what our device's keys made (a new device): Olm, outbound Megolm, queued to-device; all with everything. */
int store_crypto_forget(struct store *s, bool everything);

/* Our cross-signing keys: seeds pickled with the pickle key. */
struct store_xsign {
	char *user_id, *master, *self_signing;
	bool uploaded;
};
int store_xsign_get(struct store *s, const char *user_id, struct store_xsign *x);
int store_xsign_put(struct store *s, const struct store_xsign *x);
void store_xsign_free(struct store_xsign *x);

/* Olm sessions with other devices, by their curve25519 key. */
struct store_olm {
	char *session_id, *curve25519, *pickle;
	int64_t created_ms, used_ms;
};
/* Most recently used first. */
int store_olm_list(struct store *s, const char *curve25519, struct store_olm **v, size_t *n);
int store_olm_put(struct store *s, const struct store_olm *o);
void store_olm_free(struct store_olm *v, size_t n);

/* Users whose device lists we follow (members of encrypted rooms). */
struct store_tracked {
	char *user_id;
	bool outdated;
	int64_t generation;   /* bumped by each device_lists change */
	char *master;         /* their master cross-signing key, first seen */
};
int store_tracked_get(struct store *s, const char *user_id, struct store_tracked *t);
int store_tracked_put(struct store *s, const struct store_tracked *t);
int store_tracked_outdated(struct store *s, size_t max, struct store_tracked **v, size_t *n);
int store_tracked_delete(struct store *s, const char *user_id);
int store_tracked_outdate_all(struct store *s);
void store_tracked_free(struct store_tracked *v, size_t n);

/* Devices of tracked users as /keys/query gave them and we verified them; ed25519 pinned. */
struct store_device {
	char *user_id, *device_id, *ed25519, *curve25519;
	bool cross_signed;    /* signed by its owner's self-signing key */
	bool deleted;         /* gone from the owner's device list */
};
int store_device_get(struct store *s, const char *user_id, const char *device_id, struct store_device *d);
int store_device_by_curve(struct store *s, const char *curve25519, struct store_device *d);
int store_device_put(struct store *s, const struct store_device *d);
int store_device_list(struct store *s, const char *user_id, struct store_device **v, size_t *n);
void store_device_free(struct store_device *v, size_t n);

/* Joined and invited members of rooms (NULL membership deletes). */
char *store_member_get(struct store *s, const char *room_id, const char *user_id);   /* caller frees */
int store_member_set(struct store *s, const char *room_id, const char *user_id, const char *membership);
int store_member_list(struct store *s, const char *room_id, char ***users, size_t *n);
int store_member_forget_room(struct store *s, const char *room_id);
void store_strv_free(char **v, size_t n);   /* frees the array too */

/* A room's m.room.encryption rotation settings. */
int store_room_enc_get(struct store *s, const char *room_id, int64_t *rotation_ms, int64_t *rotation_msgs);
int store_room_enc_put(struct store *s, const char *room_id, int64_t rotation_ms, int64_t rotation_msgs);

/* Inbound Megolm sessions, by (room, session id); sender as Olm authenticated it. */
struct store_megolm_in {
	char *room_id, *session_id, *sender, *sender_key, *ed25519;
	bool verified;        /* sender_key and ed25519 are a device of sender per /keys/query */
	int64_t first_index;
	char *pickle;
	int64_t received_ms;
};
int store_megolm_in_get(struct store *s, const char *room_id, const char *session_id, struct store_megolm_in *m);
char *store_megolm_in_room_of(struct store *s, const char *session_id);   /* any room holding it, or NULL */
int store_megolm_in_put(struct store *s, const struct store_megolm_in *m);
/* A device of sender is (sender_key, ed25519): its sessions become verified, any others claiming the key go. */
int store_megolm_in_check(struct store *s, const char *sender, const char *sender_key, const char *ed25519,
	int *verified, int *refused);
void store_megolm_in_free(struct store_megolm_in *m);

/* (session, message index) -> event id: libolm has no replay check. */
int store_megolm_index_get(struct store *s, const char *session_id, int64_t index, char **event_id);
int store_megolm_index_put(struct store *s, const char *session_id, int64_t index, const char *event_id,
	int64_t ts_ms);

/* Our outbound Megolm session per room, and whom it was shared with. */
struct store_megolm_out {
	char *room_id, *session_id, *pickle;
	int64_t created_ms;
};
int store_megolm_out_get(struct store *s, const char *room_id, struct store_megolm_out *m);
int store_megolm_out_put(struct store *s, const struct store_megolm_out *m);
int store_megolm_out_delete(struct store *s, const char *room_id);   /* 1 when there was one */
void store_megolm_out_free(struct store_megolm_out *m);
/* index: the message index the key was shared from; -1 when withheld (no Olm session possible). */
int store_shared_get(struct store *s, const char *session_id, const char *user_id, const char *device_id,
	int64_t *index);
int store_shared_put(struct store *s, const char *session_id, const char *user_id, const char *device_id,
	int64_t index);
/* Rooms whose current outbound session the device got. */
int store_shared_rooms(struct store *s, const char *user_id, const char *device_id, char ***rooms, size_t *n);

/* Encrypted events waiting for their room key (ciphertext only). */
struct store_awaiting {
	char *event_id, *room_id, *session_id, *event;
	int64_t received_ms;
	bool answer;          /* it was new enough to answer when it arrived */
};
int store_awaiting_put(struct store *s, const struct store_awaiting *a);   /* kept when already there */
int store_awaiting_delete(struct store *s, const char *event_id);         /* 1 when it was there */
/* Those whose session is now known and verified. */
int store_awaiting_ready(struct store *s, struct store_awaiting **v, size_t *n);
int store_awaiting_expire(struct store *s, int64_t before_ms);
void store_awaiting_free(struct store_awaiting *v, size_t n);

/* Queued to-device requests (room keys, m.dummy, withheld), sent in id order after COMMIT. */
struct store_todev {
	int64_t id;
	char *txn_id, *event_type, *body;
	char *session_id;     /* the outbound Megolm session whose key it carries, or NULL */
	int64_t created_ms;
};
int store_todev_add(struct store *s, struct store_todev *t);   /* sets t->id */
int store_todev_next(struct store *s, struct store_todev *t);
int store_todev_delete(struct store *s, int64_t id);
int store_todev_pending(struct store *s, const char *session_id);   /* rows carrying that session's key */
void store_todev_free(struct store_todev *t);

/* Small timestamps: rate limits ("at most hourly") and pending work, by (what, key). */
struct store_mark {
	char *key, *value;
	int64_t at_ms;
};
int store_mark_get(struct store *s, const char *what, const char *key, struct store_mark *k);
int store_mark_set(struct store *s, const char *what, const char *key, const char *value, int64_t at_ms);
int store_mark_delete(struct store *s, const char *what, const char *key);
int store_mark_list(struct store *s, const char *what, struct store_mark **v, size_t *n);
void store_mark_free(struct store_mark *v, size_t n);

#endif
