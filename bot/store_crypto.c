/* store_crypto.c: the end-to-end encryption state of schema 3: accounts, sessions, devices, keys, marks. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "store.h"
#include "store_db.h"

/* Tables that hold what our device's identity keys made or were given (forgotten for a new device). */
static const char *const device_tables[] = {
	"olm_account", "olm_sessions", "megolm_out", "megolm_shared", "to_device_out", "crypto_marks",
};
/* The rest of the crypto state (forgotten too when the pickle key is lost). */
static const char *const crypto_tables[] = {
	"cross_signing", "tracked_users", "devices", "megolm_in", "awaiting_key",
};

/* Steps a SELECT of at most one row: 1 with the row read by fill, 0 none, -1 error. */
static int
one_row(struct store *s, sqlite3_stmt *st, void (*fill)(sqlite3_stmt *st, void *out), void *out, const char *what)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		fill(st, out);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		store_log_sql(s, what);
		return -1;
	}
	return rc == SQLITE_ROW;
}

/* Steps a SELECT into a malloc'd array of size-byte items (zeroed, then filled); *out may be NULL when *n is 0. */
static int
all_rows(struct store *s, sqlite3_stmt *st, size_t size, void (*fill)(sqlite3_stmt *st, void *item), void **out,
	size_t *n, const char *what)
{
	size_t cap = 0;
	char *v = NULL;
	int rc;
	*n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			v = xrealloc(v, cap * size);
		}
		memset(v + *n * size, 0, size);
		fill(st, v + (*n)++ * size);
	}
	sqlite3_reset(st);
	*out = v;
	if (rc != SQLITE_DONE) {
		store_log_sql(s, what);
		return -1;
	}
	return 0;
}

static void
fill_text0(sqlite3_stmt *st, void *out)
{
	*(char **)out = col_text(st, 0);
}

static void
fill_int0(sqlite3_stmt *st, void *out)
{
	*(int64_t *)out = sqlite3_column_int64(st, 0);
}

/* A statement with text parameters 1..n bound (NULLs allowed); NULL on a prepare error. */
static sqlite3_stmt *
stmt_texts(struct store *s, enum store_q q, int n, const char *const *v)
{
	sqlite3_stmt *st = store_stmt(s, q);
	for (int i = 0; st && i < n; i++)
		bind_text(st, i + 1, v[i]);
	return st;
}

#define TEXTS(...) (sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(const char *)), (const char *[]){ __VA_ARGS__ }

/* Runs a statement of text parameters that returns no rows. */
static int
exec_texts(struct store *s, enum store_q q, int n, const char *const *v, const char *what)
{
	sqlite3_stmt *st = stmt_texts(s, q, n, v);
	return st ? store_done(s, st, what) : -1;
}

int
store_crypto_forget(struct store *s, bool everything)
{
	char q[96];
	for (size_t i = 0; i < sizeof device_tables / sizeof device_tables[0]; i++) {
		snprintf(q, sizeof q, "DELETE FROM %s;", device_tables[i]);
		if (store_exec(s, q) < 0)
			return -1;
	}
	for (size_t i = 0; everything && i < sizeof crypto_tables / sizeof crypto_tables[0]; i++) {
		snprintf(q, sizeof q, "DELETE FROM %s;", crypto_tables[i]);
		if (store_exec(s, q) < 0)
			return -1;
	}
	/* everything we knew of others' devices is to be fetched again for the new device */
	return store_exec(s, "UPDATE tracked_users SET outdated = 1, generation = generation + 1;");
}

static void
fill_account(sqlite3_stmt *st, void *out)
{
	struct store_account *a = out;
	*a = (struct store_account){
		col_text(st, 0), col_text(st, 1), col_text(st, 2), col_text(st, 3),
		sqlite3_column_int(st, 4) != 0, sqlite3_column_int(st, 5) != 0,
		sqlite3_column_int64(st, 6), sqlite3_column_int64(st, 7),
	};
}

int
store_account_get(struct store *s, const char *device_id, struct store_account *a)
{
	sqlite3_stmt *st = stmt_texts(s, Q_ACC_GET, TEXTS(device_id));
	return st ? one_row(s, st, fill_account, a, "reading the account") : -1;
}

int
store_account_put(struct store *s, const struct store_account *a)
{
	sqlite3_stmt *st = stmt_texts(s, Q_ACC_PUT, TEXTS(a->device_id, a->pickle, a->curve25519, a->ed25519));
	if (!st)
		return -1;
	sqlite3_bind_int(st, 5, a->keys_uploaded);
	sqlite3_bind_int(st, 6, a->signed_by_us);
	sqlite3_bind_int64(st, 7, a->forget_fallback_ms);
	sqlite3_bind_int64(st, 8, a->created_ms);
	return store_done(s, st, "writing the account");
}

int
store_account_others(struct store *s, const char *device_id)
{
	sqlite3_stmt *st = stmt_texts(s, Q_ACC_OTHERS, TEXTS(device_id));
	int64_t n = 0;
	return st && one_row(s, st, fill_int0, &n, "reading accounts") >= 0 ? (int)n : -1;
}

void
store_account_free(struct store_account *a)
{
	free(a->device_id);
	free(a->pickle);
	free(a->curve25519);
	free(a->ed25519);
	memset(a, 0, sizeof *a);
}

static void
fill_xsign(sqlite3_stmt *st, void *out)
{
	struct store_xsign *x = out;
	*x = (struct store_xsign){ col_text(st, 0), col_text(st, 1), col_text(st, 2), sqlite3_column_int(st, 3) != 0 };
}

int
store_xsign_get(struct store *s, const char *user_id, struct store_xsign *x)
{
	sqlite3_stmt *st = stmt_texts(s, Q_XS_GET, TEXTS(user_id));
	return st ? one_row(s, st, fill_xsign, x, "reading cross-signing keys") : -1;
}

int
store_xsign_put(struct store *s, const struct store_xsign *x)
{
	sqlite3_stmt *st = stmt_texts(s, Q_XS_PUT, TEXTS(x->user_id, x->master, x->self_signing));
	if (!st)
		return -1;
	sqlite3_bind_int(st, 4, x->uploaded);
	return store_done(s, st, "writing cross-signing keys");
}

void
store_xsign_free(struct store_xsign *x)
{
	free(x->user_id);
	free(x->master);
	free(x->self_signing);
	memset(x, 0, sizeof *x);
}

static void
fill_olm(sqlite3_stmt *st, void *out)
{
	struct store_olm *o = out;
	*o = (struct store_olm){ col_text(st, 0), col_text(st, 1), col_text(st, 2), sqlite3_column_int64(st, 3),
		sqlite3_column_int64(st, 4) };
}

int
store_olm_list(struct store *s, const char *curve25519, struct store_olm **v, size_t *n)
{
	sqlite3_stmt *st = stmt_texts(s, Q_OLM_LIST, TEXTS(curve25519));
	*v = NULL;
	*n = 0;
	return st ? all_rows(s, st, sizeof **v, fill_olm, (void **)v, n, "reading Olm sessions") : -1;
}

int
store_olm_put(struct store *s, const struct store_olm *o)
{
	sqlite3_stmt *st = stmt_texts(s, Q_OLM_PUT, TEXTS(o->session_id, o->curve25519, o->pickle));
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 4, o->created_ms);
	sqlite3_bind_int64(st, 5, o->used_ms);
	return store_done(s, st, "writing an Olm session");
}

void
store_olm_free(struct store_olm *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].session_id);
		free(v[i].curve25519);
		free(v[i].pickle);
	}
}

static void
fill_tracked(sqlite3_stmt *st, void *out)
{
	struct store_tracked *t = out;
	*t = (struct store_tracked){ col_text(st, 0), sqlite3_column_int(st, 1) != 0, sqlite3_column_int64(st, 2),
		col_text(st, 3) };
}

int
store_tracked_get(struct store *s, const char *user_id, struct store_tracked *t)
{
	sqlite3_stmt *st = stmt_texts(s, Q_TR_GET, TEXTS(user_id));
	return st ? one_row(s, st, fill_tracked, t, "reading tracked users") : -1;
}

int
store_tracked_put(struct store *s, const struct store_tracked *t)
{
	sqlite3_stmt *st = stmt_texts(s, Q_TR_PUT, TEXTS(t->user_id));
	if (!st)
		return -1;
	sqlite3_bind_int(st, 2, t->outdated);
	sqlite3_bind_int64(st, 3, t->generation);
	bind_text(st, 4, t->master);
	return store_done(s, st, "writing tracked users");
}

int
store_tracked_outdated(struct store *s, size_t max, struct store_tracked **v, size_t *n)
{
	sqlite3_stmt *st = store_stmt(s, Q_TR_OUTDATED);
	*v = NULL;
	*n = 0;
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, (int64_t)max);
	return all_rows(s, st, sizeof **v, fill_tracked, (void **)v, n, "reading outdated users");
}

int
store_tracked_delete(struct store *s, const char *user_id)
{
	return exec_texts(s, Q_TR_DEL, TEXTS(user_id), "untracking a user");
}

int
store_tracked_outdate_all(struct store *s)
{
	sqlite3_stmt *st = store_stmt(s, Q_TR_ALL_OUT);
	return st ? store_done(s, st, "marking every device list outdated") : -1;
}

void
store_tracked_free(struct store_tracked *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].user_id);
		free(v[i].master);
	}
}

static void
fill_device(sqlite3_stmt *st, void *out)
{
	struct store_device *d = out;
	*d = (struct store_device){ col_text(st, 0), col_text(st, 1), col_text(st, 2), col_text(st, 3),
		sqlite3_column_int(st, 4) != 0, sqlite3_column_int(st, 5) != 0 };
}

int
store_device_get(struct store *s, const char *user_id, const char *device_id, struct store_device *d)
{
	sqlite3_stmt *st = stmt_texts(s, Q_DEV_GET, TEXTS(user_id, device_id));
	return st ? one_row(s, st, fill_device, d, "reading devices") : -1;
}

int
store_device_by_curve(struct store *s, const char *curve25519, struct store_device *d)
{
	sqlite3_stmt *st = stmt_texts(s, Q_DEV_CURVE, TEXTS(curve25519));
	return st ? one_row(s, st, fill_device, d, "reading devices") : -1;
}

int
store_device_put(struct store *s, const struct store_device *d)
{
	sqlite3_stmt *st = stmt_texts(s, Q_DEV_PUT, TEXTS(d->user_id, d->device_id, d->ed25519, d->curve25519));
	if (!st)
		return -1;
	sqlite3_bind_int(st, 5, d->cross_signed);
	sqlite3_bind_int(st, 6, d->deleted);
	return store_done(s, st, "writing a device");
}

int
store_device_list(struct store *s, const char *user_id, struct store_device **v, size_t *n)
{
	sqlite3_stmt *st = stmt_texts(s, Q_DEV_LIST, TEXTS(user_id));
	*v = NULL;
	*n = 0;
	return st ? all_rows(s, st, sizeof **v, fill_device, (void **)v, n, "reading devices") : -1;
}

void
store_device_free(struct store_device *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].user_id);
		free(v[i].device_id);
		free(v[i].ed25519);
		free(v[i].curve25519);
	}
}

char *
store_member_get(struct store *s, const char *room_id, const char *user_id)
{
	sqlite3_stmt *st = stmt_texts(s, Q_MEM_GET, TEXTS(room_id, user_id));
	char *v = NULL;
	if (st)
		one_row(s, st, fill_text0, &v, "reading members");
	return v;
}

int
store_member_set(struct store *s, const char *room_id, const char *user_id, const char *membership)
{
	if (!membership)
		return exec_texts(s, Q_MEM_DEL, TEXTS(room_id, user_id), "writing members");
	return exec_texts(s, Q_MEM_PUT, TEXTS(room_id, user_id, membership), "writing members");
}

int
store_member_list(struct store *s, const char *room_id, char ***users, size_t *n)
{
	sqlite3_stmt *st = stmt_texts(s, Q_MEM_LIST, TEXTS(room_id));
	*users = NULL;
	*n = 0;
	return st ? all_rows(s, st, sizeof **users, fill_text0, (void **)users, n, "reading members") : -1;
}

int
store_member_forget_room(struct store *s, const char *room_id)
{
	return exec_texts(s, Q_MEM_ROOM_DEL, TEXTS(room_id), "forgetting members");
}

void
store_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
fill_room_enc(sqlite3_stmt *st, void *out)
{
	int64_t *v = out;
	v[0] = sqlite3_column_int64(st, 0);
	v[1] = sqlite3_column_int64(st, 1);
}

int
store_room_enc_get(struct store *s, const char *room_id, int64_t *rotation_ms, int64_t *rotation_msgs)
{
	int64_t v[2] = { 0, 0 };
	sqlite3_stmt *st = stmt_texts(s, Q_RENC_GET, TEXTS(room_id));
	int rc = st ? one_row(s, st, fill_room_enc, v, "reading room encryption") : -1;
	*rotation_ms = v[0];
	*rotation_msgs = v[1];
	return rc;
}

int
store_room_enc_put(struct store *s, const char *room_id, int64_t rotation_ms, int64_t rotation_msgs)
{
	sqlite3_stmt *st = stmt_texts(s, Q_RENC_PUT, TEXTS(room_id));
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 2, rotation_ms);
	sqlite3_bind_int64(st, 3, rotation_msgs);
	return store_done(s, st, "writing room encryption");
}

static void
fill_megolm_in(sqlite3_stmt *st, void *out)
{
	struct store_megolm_in *m = out;
	*m = (struct store_megolm_in){
		col_text(st, 0), col_text(st, 1), col_text(st, 2), col_text(st, 3), col_text(st, 4),
		sqlite3_column_int(st, 5) != 0, sqlite3_column_int64(st, 6), col_text(st, 7), sqlite3_column_int64(st, 8),
	};
}

int
store_megolm_in_get(struct store *s, const char *room_id, const char *session_id, struct store_megolm_in *m)
{
	sqlite3_stmt *st = stmt_texts(s, Q_MIN_GET, TEXTS(room_id, session_id));
	return st ? one_row(s, st, fill_megolm_in, m, "reading Megolm sessions") : -1;
}

char *
store_megolm_in_room_of(struct store *s, const char *session_id)
{
	sqlite3_stmt *st = stmt_texts(s, Q_MIN_ROOM_OF, TEXTS(session_id));
	char *v = NULL;
	if (st)
		one_row(s, st, fill_text0, &v, "reading Megolm sessions");
	return v;
}

int
store_megolm_in_put(struct store *s, const struct store_megolm_in *m)
{
	sqlite3_stmt *st = stmt_texts(s, Q_MIN_PUT, TEXTS(m->room_id, m->session_id, m->sender, m->sender_key,
		m->ed25519));
	if (!st)
		return -1;
	sqlite3_bind_int(st, 6, m->verified);
	sqlite3_bind_int64(st, 7, m->first_index);
	bind_text(st, 8, m->pickle);
	sqlite3_bind_int64(st, 9, m->received_ms);
	return store_done(s, st, "writing a Megolm session");
}

int
store_megolm_in_check(struct store *s, const char *sender, const char *sender_key, const char *ed25519,
	int *verified, int *refused)
{
	if (exec_texts(s, Q_MIN_VERIFY, TEXTS(sender, sender_key, ed25519), "verifying Megolm sessions") < 0)
		return -1;
	*verified = sqlite3_changes(s->db);
	if (exec_texts(s, Q_MIN_REFUSE, TEXTS(sender, sender_key, ed25519), "refusing Megolm sessions") < 0)
		return -1;
	*refused = sqlite3_changes(s->db);
	return 0;
}

void
store_megolm_in_free(struct store_megolm_in *m)
{
	free(m->room_id);
	free(m->session_id);
	free(m->sender);
	free(m->sender_key);
	free(m->ed25519);
	free(m->pickle);
	memset(m, 0, sizeof *m);
}

int
store_megolm_index_get(struct store *s, const char *session_id, int64_t index, char **event_id)
{
	sqlite3_stmt *st = stmt_texts(s, Q_MIDX_GET, TEXTS(session_id));
	*event_id = NULL;
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 2, index);
	return one_row(s, st, fill_text0, event_id, "reading the Megolm index table");
}

int
store_megolm_index_put(struct store *s, const char *session_id, int64_t index, const char *event_id, int64_t ts_ms)
{
	sqlite3_stmt *st = stmt_texts(s, Q_MIDX_PUT, TEXTS(session_id));
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 2, index);
	bind_text(st, 3, event_id);
	sqlite3_bind_int64(st, 4, ts_ms);
	return store_done(s, st, "writing the Megolm index table");
}

static void
fill_megolm_out(sqlite3_stmt *st, void *out)
{
	struct store_megolm_out *m = out;
	*m = (struct store_megolm_out){ col_text(st, 0), col_text(st, 1), col_text(st, 2), sqlite3_column_int64(st, 3) };
}

int
store_megolm_out_get(struct store *s, const char *room_id, struct store_megolm_out *m)
{
	sqlite3_stmt *st = stmt_texts(s, Q_MOUT_GET, TEXTS(room_id));
	return st ? one_row(s, st, fill_megolm_out, m, "reading outbound Megolm sessions") : -1;
}

int
store_megolm_out_put(struct store *s, const struct store_megolm_out *m)
{
	sqlite3_stmt *st = stmt_texts(s, Q_MOUT_PUT, TEXTS(m->room_id, m->session_id, m->pickle));
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 4, m->created_ms);
	return store_done(s, st, "writing an outbound Megolm session");
}

int
store_megolm_out_delete(struct store *s, const char *room_id)
{
	if (exec_texts(s, Q_MOUT_DEL, TEXTS(room_id), "rotating an outbound Megolm session") < 0)
		return -1;
	return sqlite3_changes(s->db);
}

void
store_megolm_out_free(struct store_megolm_out *m)
{
	free(m->room_id);
	free(m->session_id);
	free(m->pickle);
	memset(m, 0, sizeof *m);
}

int
store_shared_get(struct store *s, const char *session_id, const char *user_id, const char *device_id,
	int64_t *index)
{
	sqlite3_stmt *st = stmt_texts(s, Q_SH_GET, TEXTS(session_id, user_id, device_id));
	return st ? one_row(s, st, fill_int0, index, "reading shared sessions") : -1;
}

int
store_shared_put(struct store *s, const char *session_id, const char *user_id, const char *device_id, int64_t index)
{
	sqlite3_stmt *st = stmt_texts(s, Q_SH_PUT, TEXTS(session_id, user_id, device_id));
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 4, index);
	return store_done(s, st, "writing shared sessions");
}

int
store_shared_rooms(struct store *s, const char *user_id, const char *device_id, char ***rooms, size_t *n)
{
	sqlite3_stmt *st = stmt_texts(s, Q_SH_ROOMS, TEXTS(user_id, device_id));
	*rooms = NULL;
	*n = 0;
	return st ? all_rows(s, st, sizeof **rooms, fill_text0, (void **)rooms, n, "reading shared sessions") : -1;
}

int
store_awaiting_put(struct store *s, const struct store_awaiting *a)
{
	sqlite3_stmt *st = stmt_texts(s, Q_AW_PUT, TEXTS(a->event_id, a->room_id, a->session_id, a->event));
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 5, a->received_ms);
	sqlite3_bind_int(st, 6, a->answer);
	return store_done(s, st, "parking an event");
}

int
store_awaiting_delete(struct store *s, const char *event_id)
{
	if (exec_texts(s, Q_AW_DEL, TEXTS(event_id), "unparking an event") < 0)
		return -1;
	return sqlite3_changes(s->db);
}

static void
fill_awaiting(sqlite3_stmt *st, void *out)
{
	struct store_awaiting *a = out;
	*a = (struct store_awaiting){ col_text(st, 0), col_text(st, 1), col_text(st, 2), col_text(st, 3),
		sqlite3_column_int64(st, 4), sqlite3_column_int(st, 5) != 0 };
}

int
store_awaiting_ready(struct store *s, struct store_awaiting **v, size_t *n)
{
	sqlite3_stmt *st = store_stmt(s, Q_AW_READY);
	*v = NULL;
	*n = 0;
	return st ? all_rows(s, st, sizeof **v, fill_awaiting, (void **)v, n, "reading parked events") : -1;
}

int
store_awaiting_expire(struct store *s, int64_t before_ms)
{
	if (store_by_id(s, Q_AW_EXPIRE, before_ms, "expiring parked events") < 0)
		return -1;
	return sqlite3_changes(s->db);
}

void
store_awaiting_free(struct store_awaiting *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].event_id);
		free(v[i].room_id);
		free(v[i].session_id);
		free(v[i].event);
	}
}

int
store_todev_add(struct store *s, struct store_todev *t)
{
	sqlite3_stmt *st = stmt_texts(s, Q_TD_ADD, TEXTS(t->txn_id, t->event_type, t->body, t->session_id));
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 5, t->created_ms);
	if (store_done(s, st, "queueing a to-device message") < 0)
		return -1;
	t->id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

static void
fill_todev(sqlite3_stmt *st, void *out)
{
	struct store_todev *t = out;
	*t = (struct store_todev){ sqlite3_column_int64(st, 0), col_text(st, 1), col_text(st, 2), col_text(st, 3),
		col_text(st, 4), sqlite3_column_int64(st, 5) };
}

int
store_todev_next(struct store *s, struct store_todev *t)
{
	sqlite3_stmt *st = store_stmt(s, Q_TD_NEXT);
	return st ? one_row(s, st, fill_todev, t, "reading to-device messages") : -1;
}

int
store_todev_delete(struct store *s, int64_t id)
{
	return store_by_id(s, Q_TD_DEL, id, "deleting a to-device message");
}

int
store_todev_pending(struct store *s, const char *session_id)
{
	sqlite3_stmt *st = stmt_texts(s, Q_TD_PENDING, TEXTS(session_id));
	int64_t n = 0;
	return st && one_row(s, st, fill_int0, &n, "reading to-device messages") >= 0 ? (int)n : -1;
}

void
store_todev_free(struct store_todev *t)
{
	free(t->txn_id);
	free(t->event_type);
	if (t->body) {
		explicit_bzero(t->body, strlen(t->body));
		free(t->body);
	}
	free(t->session_id);
	memset(t, 0, sizeof *t);
}

static void
fill_mark(sqlite3_stmt *st, void *out)
{
	struct store_mark *k = out;
	*k = (struct store_mark){ col_text(st, 0), col_text(st, 1), sqlite3_column_int64(st, 2) };
}

int
store_mark_get(struct store *s, const char *what, const char *key, struct store_mark *k)
{
	sqlite3_stmt *st = stmt_texts(s, Q_MARK_GET, TEXTS(what, key));
	memset(k, 0, sizeof *k);
	return st ? one_row(s, st, fill_mark, k, "reading marks") : -1;
}

int
store_mark_set(struct store *s, const char *what, const char *key, const char *value, int64_t at_ms)
{
	sqlite3_stmt *st = stmt_texts(s, Q_MARK_SET, TEXTS(what, key, value));
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 4, at_ms);
	return store_done(s, st, "writing marks");
}

int
store_mark_delete(struct store *s, const char *what, const char *key)
{
	return exec_texts(s, Q_MARK_DEL, TEXTS(what, key), "deleting marks");
}

int
store_mark_list(struct store *s, const char *what, struct store_mark **v, size_t *n)
{
	sqlite3_stmt *st = stmt_texts(s, Q_MARK_LIST, TEXTS(what));
	*v = NULL;
	*n = 0;
	return st ? all_rows(s, st, sizeof **v, fill_mark, (void **)v, n, "reading marks") : -1;
}

void
store_mark_free(struct store_mark *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].key);
		free(v[i].value);
	}
}
