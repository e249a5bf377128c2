/*
 * store.h: the durable state of one network in SQLite: login, sync position,
 * the events already handled, rooms, and the outbox of requests that must go
 * out exactly once.  WAL with synchronous=FULL (a committed answer survives a
 * power cut), files mode 0600, one process per store (flock on NAME.lock).
 * The schema is versioned with PRAGMA user_version; a new table (the crypto
 * state next) is one more entry in store.c's migrations[].  Knows nothing of
 * HTTP; the Matrix words here are only the names of what it keeps.
 *
 * Strings returned in structs are owned by the struct (free with *_free).
 * Every function returns -1 on an SQLite error, after logging it.
 */
#ifndef KNEEBOT_STORE_H
#define KNEEBOT_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

#define STORE_VERSION 2

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

#endif
