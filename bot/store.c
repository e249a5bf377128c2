/*
 * store.c: SQLite state with a versioned schema.  Each entry of migrations[]
 * takes the file from version i to i + 1 in one transaction; never edit an
 * entry once released (tests/store/ keeps a saved file of every version and
 * store_test migrates each).  A crash leaves either the old or the new
 * version, never half of one.  Here: the schema, the SQL of every
 * statement, the connection, transactions, and the accessors of schemas 1
 * 2 and 4; those of schema 3 (end-to-end encryption) are in store_crypto.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "store.h"
#include "store_db.h"

static const char *const migrations[] = {
	/* 1: login, sync position, handled events, outbox */
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE events (event_id TEXT PRIMARY KEY, room_id TEXT NOT NULL,"
	" state INTEGER NOT NULL, ts_ms INTEGER NOT NULL);"
	"CREATE INDEX events_ts ON events (ts_ms);"
	"CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, txn_id TEXT NOT NULL UNIQUE,"
	" kind TEXT NOT NULL, room_id TEXT NOT NULL, event_type TEXT, content TEXT, reply_to TEXT,"
	" created_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
	" sealed INTEGER NOT NULL DEFAULT 0);",
	/* 2: rooms, for DMs, rooms the bot is alone in, and encrypted rooms */
	"CREATE TABLE rooms (room_id TEXT PRIMARY KEY, membership TEXT NOT NULL,"
	" joined INTEGER NOT NULL DEFAULT -1, invited INTEGER NOT NULL DEFAULT -1,"
	" encrypted INTEGER NOT NULL DEFAULT 0);",
	/* 3: end-to-end encryption; every pickle is encrypted with the pickle key */
	"CREATE TABLE olm_account (device_id TEXT PRIMARY KEY, pickle TEXT NOT NULL, curve25519 TEXT NOT NULL,"
	" ed25519 TEXT NOT NULL, keys_uploaded INTEGER NOT NULL DEFAULT 0, signed INTEGER NOT NULL DEFAULT 0,"
	" forget_fallback_ms INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL);"
	"CREATE TABLE cross_signing (user_id TEXT PRIMARY KEY, master TEXT NOT NULL, self_signing TEXT NOT NULL,"
	" uploaded INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE olm_sessions (session_id TEXT PRIMARY KEY, curve25519 TEXT NOT NULL, pickle TEXT NOT NULL,"
	" created_ms INTEGER NOT NULL, used_ms INTEGER NOT NULL);"
	"CREATE INDEX olm_sessions_peer ON olm_sessions (curve25519, used_ms);"
	"CREATE TABLE tracked_users (user_id TEXT PRIMARY KEY, outdated INTEGER NOT NULL DEFAULT 1,"
	" generation INTEGER NOT NULL DEFAULT 0, master TEXT);"
	"CREATE TABLE devices (user_id TEXT NOT NULL, device_id TEXT NOT NULL, ed25519 TEXT NOT NULL,"
	" curve25519 TEXT NOT NULL, cross_signed INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY (user_id, device_id));"
	"CREATE INDEX devices_curve ON devices (curve25519);"
	"CREATE TABLE members (room_id TEXT NOT NULL, user_id TEXT NOT NULL, membership TEXT NOT NULL,"
	" PRIMARY KEY (room_id, user_id));"
	"CREATE TABLE room_encryption (room_id TEXT PRIMARY KEY, rotation_ms INTEGER NOT NULL,"
	" rotation_msgs INTEGER NOT NULL);"
	"CREATE TABLE megolm_in (room_id TEXT NOT NULL, session_id TEXT NOT NULL, sender TEXT NOT NULL,"
	" sender_key TEXT NOT NULL, ed25519 TEXT NOT NULL, verified INTEGER NOT NULL DEFAULT 0,"
	" first_index INTEGER NOT NULL, pickle TEXT NOT NULL, received_ms INTEGER NOT NULL,"
	" PRIMARY KEY (room_id, session_id));"
	"CREATE INDEX megolm_in_session ON megolm_in (session_id);"
	"CREATE TABLE megolm_index (session_id TEXT NOT NULL, msg_index INTEGER NOT NULL, event_id TEXT NOT NULL,"
	" ts_ms INTEGER NOT NULL, PRIMARY KEY (session_id, msg_index));"
	"CREATE TABLE megolm_out (room_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, pickle TEXT NOT NULL,"
	" created_ms INTEGER NOT NULL);"
	"CREATE TABLE megolm_shared (session_id TEXT NOT NULL, user_id TEXT NOT NULL, device_id TEXT NOT NULL,"
	" msg_index INTEGER NOT NULL, PRIMARY KEY (session_id, user_id, device_id));"
	"CREATE TABLE awaiting_key (event_id TEXT PRIMARY KEY, room_id TEXT NOT NULL, session_id TEXT NOT NULL,"
	" event TEXT NOT NULL, received_ms INTEGER NOT NULL, answer INTEGER NOT NULL);"
	"CREATE TABLE to_device_out (id INTEGER PRIMARY KEY AUTOINCREMENT, txn_id TEXT NOT NULL UNIQUE,"
	" event_type TEXT NOT NULL, body TEXT NOT NULL, session_id TEXT, created_ms INTEGER NOT NULL);"
	"CREATE TABLE crypto_marks (what TEXT NOT NULL, key TEXT NOT NULL, value TEXT, at_ms INTEGER NOT NULL,"
	" PRIMARY KEY (what, key));",
	/* 4: timeline gaps (a limited sync) still to be read from /messages */
	"CREATE TABLE gaps (id INTEGER PRIMARY KEY AUTOINCREMENT, room_id TEXT NOT NULL, from_token TEXT NOT NULL,"
	" to_token TEXT NOT NULL, pages INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL);",
};

_Static_assert(sizeof migrations / sizeof migrations[0] == STORE_VERSION, "one migration per version");

static const char *const sql[Q_COUNT] = {
	[Q_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[Q_META_SET] = "INSERT INTO meta (key, value) VALUES (?1, ?2)"
		" ON CONFLICT (key) DO UPDATE SET value = excluded.value",
	[Q_META_DEL] = "DELETE FROM meta WHERE key = ?1",
	[Q_EV_GET] = "SELECT state FROM events WHERE event_id = ?1",
	[Q_EV_PUT] = "INSERT INTO events (event_id, room_id, state, ts_ms) VALUES (?1, ?2, ?3, ?4)"
		" ON CONFLICT (event_id) DO UPDATE SET state = max(state, excluded.state)",
	[Q_EV_PRUNE] = "DELETE FROM events WHERE ts_ms < ?1",
	[Q_ROOM_PUT] = "INSERT INTO rooms (room_id, membership, joined, invited, encrypted)"
		" VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (room_id) DO UPDATE SET"
		" membership = excluded.membership, joined = excluded.joined,"
		" invited = excluded.invited, encrypted = excluded.encrypted",
	[Q_ROOM_DEL] = "DELETE FROM rooms WHERE room_id = ?1",
	[Q_ROOM_ALL] = "SELECT room_id, membership, joined, invited, encrypted FROM rooms ORDER BY room_id",
	[Q_OUT_ADD] = "INSERT INTO outbox (txn_id, kind, room_id, event_type, content, reply_to, created_ms, sealed)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[Q_OUT_NEXT] = "SELECT id, txn_id, kind, room_id, event_type, content, reply_to, created_ms,"
		" attempts, sealed FROM outbox WHERE id > ?1 ORDER BY id LIMIT 1",
	[Q_OUT_ATTEMPT] = "UPDATE outbox SET attempts = attempts + 1 WHERE id = ?1",
	[Q_OUT_SEAL] = "UPDATE outbox SET event_type = ?2, content = ?3, sealed = 1 WHERE id = ?1",
	[Q_OUT_DEL] = "DELETE FROM outbox WHERE id = ?1",
	[Q_OUT_EXPIRE] = "DELETE FROM outbox WHERE created_ms < ?1",
	[Q_OUT_COUNT] = "SELECT count(*) FROM outbox",
	[Q_GAP_ADD] = "INSERT INTO gaps (room_id, from_token, to_token, created_ms) VALUES (?1, ?2, ?3, ?4)",
	[Q_GAP_NEXT] = "SELECT id, room_id, from_token, to_token, pages, created_ms FROM gaps ORDER BY id LIMIT 1",
	[Q_GAP_MOVE] = "UPDATE gaps SET from_token = ?2, pages = pages + 1 WHERE id = ?1",
	[Q_GAP_DEL] = "DELETE FROM gaps WHERE id = ?1",
	[Q_ACC_GET] = "SELECT device_id, pickle, curve25519, ed25519, keys_uploaded, signed, forget_fallback_ms,"
		" created_ms FROM olm_account WHERE device_id = ?1",
	[Q_ACC_PUT] = "INSERT INTO olm_account (device_id, pickle, curve25519, ed25519, keys_uploaded, signed,"
		" forget_fallback_ms, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (device_id)"
		" DO UPDATE SET pickle = excluded.pickle, keys_uploaded = excluded.keys_uploaded,"
		" signed = excluded.signed, forget_fallback_ms = excluded.forget_fallback_ms",
	[Q_ACC_OTHERS] = "SELECT count(*) FROM olm_account WHERE device_id != ?1",
	[Q_XS_GET] = "SELECT user_id, master, self_signing, uploaded FROM cross_signing WHERE user_id = ?1",
	[Q_XS_PUT] = "INSERT INTO cross_signing (user_id, master, self_signing, uploaded) VALUES (?1, ?2, ?3, ?4)"
		" ON CONFLICT (user_id) DO UPDATE SET master = excluded.master,"
		" self_signing = excluded.self_signing, uploaded = excluded.uploaded",
	[Q_OLM_LIST] = "SELECT session_id, curve25519, pickle, created_ms, used_ms FROM olm_sessions"
		" WHERE curve25519 = ?1 ORDER BY used_ms DESC, created_ms DESC",
	[Q_OLM_PUT] = "INSERT INTO olm_sessions (session_id, curve25519, pickle, created_ms, used_ms)"
		" VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (session_id) DO UPDATE SET pickle = excluded.pickle,"
		" used_ms = excluded.used_ms WHERE curve25519 = excluded.curve25519",
	[Q_TR_GET] = "SELECT user_id, outdated, generation, master FROM tracked_users WHERE user_id = ?1",
	[Q_TR_PUT] = "INSERT INTO tracked_users (user_id, outdated, generation, master) VALUES (?1, ?2, ?3, ?4)"
		" ON CONFLICT (user_id) DO UPDATE SET outdated = excluded.outdated,"
		" generation = excluded.generation, master = excluded.master",
	[Q_TR_OUTDATED] = "SELECT user_id, outdated, generation, master FROM tracked_users WHERE outdated != 0"
		" ORDER BY user_id LIMIT ?1",
	[Q_TR_DEL] = "DELETE FROM tracked_users WHERE user_id = ?1",
	[Q_TR_ALL_OUT] = "UPDATE tracked_users SET outdated = 1, generation = generation + 1",
	[Q_DEV_GET] = "SELECT user_id, device_id, ed25519, curve25519, cross_signed, deleted FROM devices"
		" WHERE user_id = ?1 AND device_id = ?2",
	[Q_DEV_CURVE] = "SELECT user_id, device_id, ed25519, curve25519, cross_signed, deleted FROM devices"
		" WHERE curve25519 = ?1 ORDER BY deleted LIMIT 1",
	[Q_DEV_PUT] = "INSERT INTO devices (user_id, device_id, ed25519, curve25519, cross_signed, deleted)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (user_id, device_id) DO UPDATE SET"
		" ed25519 = excluded.ed25519, curve25519 = excluded.curve25519,"
		" cross_signed = excluded.cross_signed, deleted = excluded.deleted",
	[Q_DEV_LIST] = "SELECT user_id, device_id, ed25519, curve25519, cross_signed, deleted FROM devices"
		" WHERE user_id = ?1 ORDER BY device_id",
	[Q_MEM_GET] = "SELECT membership FROM members WHERE room_id = ?1 AND user_id = ?2",
	[Q_MEM_PUT] = "INSERT INTO members (room_id, user_id, membership) VALUES (?1, ?2, ?3)"
		" ON CONFLICT (room_id, user_id) DO UPDATE SET membership = excluded.membership",
	[Q_MEM_DEL] = "DELETE FROM members WHERE room_id = ?1 AND user_id = ?2",
	[Q_MEM_LIST] = "SELECT user_id FROM members WHERE room_id = ?1 ORDER BY user_id",
	[Q_MEM_ROOM_DEL] = "DELETE FROM members WHERE room_id = ?1",
	[Q_RENC_GET] = "SELECT rotation_ms, rotation_msgs FROM room_encryption WHERE room_id = ?1",
	[Q_RENC_PUT] = "INSERT INTO room_encryption (room_id, rotation_ms, rotation_msgs) VALUES (?1, ?2, ?3)"
		" ON CONFLICT (room_id) DO UPDATE SET rotation_ms = excluded.rotation_ms,"
		" rotation_msgs = excluded.rotation_msgs",
	[Q_MIN_GET] = "SELECT room_id, session_id, sender, sender_key, ed25519, verified, first_index, pickle,"
		" received_ms FROM megolm_in WHERE room_id = ?1 AND session_id = ?2",
	[Q_MIN_ROOM_OF] = "SELECT room_id FROM megolm_in WHERE session_id = ?1 LIMIT 1",
	[Q_MIN_PUT] = "INSERT INTO megolm_in (room_id, session_id, sender, sender_key, ed25519, verified,"
		" first_index, pickle, received_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
		" ON CONFLICT (room_id, session_id) DO UPDATE SET verified = excluded.verified,"
		" first_index = excluded.first_index, pickle = excluded.pickle",
	[Q_MIN_VERIFY] = "UPDATE megolm_in SET verified = 1 WHERE sender = ?1 AND sender_key = ?2 AND ed25519 = ?3"
		" AND verified = 0",
	[Q_MIN_REFUSE] = "DELETE FROM megolm_in WHERE sender_key = ?2 AND (sender != ?1 OR ed25519 != ?3)",
	[Q_MIDX_GET] = "SELECT event_id FROM megolm_index WHERE session_id = ?1 AND msg_index = ?2",
	[Q_MIDX_PUT] = "INSERT INTO megolm_index (session_id, msg_index, event_id, ts_ms) VALUES (?1, ?2, ?3, ?4)",
	[Q_MOUT_GET] = "SELECT room_id, session_id, pickle, created_ms FROM megolm_out WHERE room_id = ?1",
	[Q_MOUT_PUT] = "INSERT INTO megolm_out (room_id, session_id, pickle, created_ms) VALUES (?1, ?2, ?3, ?4)"
		" ON CONFLICT (room_id) DO UPDATE SET session_id = excluded.session_id, pickle = excluded.pickle,"
		" created_ms = excluded.created_ms",
	[Q_MOUT_DEL] = "DELETE FROM megolm_out WHERE room_id = ?1",
	[Q_SH_GET] = "SELECT msg_index FROM megolm_shared WHERE session_id = ?1 AND user_id = ?2 AND device_id = ?3",
	[Q_SH_PUT] = "INSERT OR REPLACE INTO megolm_shared (session_id, user_id, device_id, msg_index)"
		" VALUES (?1, ?2, ?3, ?4)",
	[Q_SH_ROOMS] = "SELECT o.room_id FROM megolm_out o JOIN megolm_shared s ON s.session_id = o.session_id"
		" WHERE s.user_id = ?1 AND s.device_id = ?2 AND s.msg_index >= 0 ORDER BY o.room_id",
	[Q_AW_PUT] = "INSERT OR IGNORE INTO awaiting_key (event_id, room_id, session_id, event, received_ms, answer)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[Q_AW_DEL] = "DELETE FROM awaiting_key WHERE event_id = ?1",
	[Q_AW_READY] = "SELECT a.event_id, a.room_id, a.session_id, a.event, a.received_ms, a.answer"
		" FROM awaiting_key a JOIN megolm_in m ON m.room_id = a.room_id AND m.session_id = a.session_id"
		" WHERE m.verified != 0 ORDER BY a.received_ms, a.event_id",
	[Q_AW_EXPIRE] = "DELETE FROM awaiting_key WHERE received_ms < ?1",
	[Q_TD_ADD] = "INSERT INTO to_device_out (txn_id, event_type, body, session_id, created_ms)"
		" VALUES (?1, ?2, ?3, ?4, ?5)",
	[Q_TD_NEXT] = "SELECT id, txn_id, event_type, body, session_id, created_ms FROM to_device_out"
		" ORDER BY id LIMIT 1",
	[Q_TD_DEL] = "DELETE FROM to_device_out WHERE id = ?1",
	[Q_TD_PENDING] = "SELECT count(*) FROM to_device_out WHERE session_id = ?1",
	[Q_MARK_GET] = "SELECT key, value, at_ms FROM crypto_marks WHERE what = ?1 AND key = ?2",
	[Q_MARK_SET] = "INSERT INTO crypto_marks (what, key, value, at_ms) VALUES (?1, ?2, ?3, ?4)"
		" ON CONFLICT (what, key) DO UPDATE SET value = excluded.value, at_ms = excluded.at_ms",
	[Q_MARK_DEL] = "DELETE FROM crypto_marks WHERE what = ?1 AND key = ?2",
	[Q_MARK_LIST] = "SELECT key, value, at_ms FROM crypto_marks WHERE what = ?1 ORDER BY at_ms, key",
};

/*
 * Lock files held by this process: flock cannot tell us apart from another
 * process.  The pid tells a forked child, which holds nothing, from us.
 */
static char **held;
static size_t nheld;
static pid_t held_pid;

static bool
held_here(const char *path)
{
	for (size_t i = 0; i < nheld && held_pid == getpid(); i++)
		if (strcmp(held[i], path) == 0)
			return true;
	return false;
}

static void
held_drop(const char *path)
{
	for (size_t i = 0; i < nheld; i++) {
		if (strcmp(held[i], path) == 0) {
			free(held[i]);
			held[i] = held[--nheld];
			break;
		}
	}
	if (!nheld) {
		free(held);
		held = NULL;
	}
}

void
store_log_sql(struct store *s, const char *what)
{
	log_warnx("store %s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

int
store_exec(struct store *s, const char *q)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, q, NULL, NULL, &msg) != SQLITE_OK) {
		log_warnx("store %s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

sqlite3_stmt *
store_stmt(struct store *s, enum store_q q)
{
	if (!s->stmts[q] && sqlite3_prepare_v2(s->db, sql[q], -1, &s->stmts[q], NULL) != SQLITE_OK) {
		store_log_sql(s, "prepare");
		return NULL;
	}
	sqlite3_reset(s->stmts[q]);
	sqlite3_clear_bindings(s->stmts[q]);
	return s->stmts[q];
}

int
store_done(struct store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		store_log_sql(s, what);
		return -1;
	}
	return 0;
}

/* Creates path with mode 0600 (or tightens an existing file) before SQLite opens it. */
static int
create_private(const char *path, struct buf *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		buf_printf(err, "cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && (st.st_mode & 077)) {
		log_warnx("store %s was readable by others (mode %03o): now 600", path, (unsigned)(st.st_mode & 0777));
		fchmod(fd, 0600);
	}
	close(fd);
	return 0;
}

static int
take_lock(struct store *s, struct buf *err)
{
	if (held_here(s->lock_path)) {
		buf_printf(err, "%s is still in use by this process", s->path);
		return STORE_LOCKED_HERE;
	}
	s->lock_fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0) {
		buf_printf(err, "cannot create lock file %s: %s", s->lock_path, strerror(errno));
		return STORE_ERROR;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		buf_printf(err, "%s is in use by another kneebot process (lock %s held): "
			"two processes on one store would answer twice and fork its state",
			s->path, s->lock_path);
		close(s->lock_fd);
		s->lock_fd = -1;
		return STORE_ERROR;
	}
	if (held_pid != getpid()) {
		for (size_t i = 0; i < nheld; i++)
			free(held[i]);   /* inherited through fork: not ours */
		nheld = 0;
		held_pid = getpid();
	}
	held = xrealloc(held, (nheld + 1) * sizeof *held);
	held[nheld++] = xstrdup(s->lock_path);
	return STORE_OK;
}

static int
read_version(struct store *s)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	return v;
}

int
store_version(struct store *s)
{
	return read_version(s);
}

static int
migrate(struct store *s, struct buf *err)
{
	int v = read_version(s);
	if (v < 0) {
		buf_printf(err, "%s: not a readable SQLite database: %s", s->path, sqlite3_errmsg(s->db));
		return -1;
	}
	if (v > STORE_VERSION) {
		buf_printf(err, "%s has schema version %d, newer than this kneebot's %d: "
			"refusing to touch it (run the newer kneebot, or move the file away)", s->path, v, STORE_VERSION);
		return -1;
	}
	for (; v < STORE_VERSION; v++) {
		char pragma[64];
		snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d;", v + 1);
		if (store_exec(s, "BEGIN IMMEDIATE") < 0)
			goto fail;
		if (store_exec(s, migrations[v]) < 0 || store_exec(s, pragma) < 0 || store_exec(s, "COMMIT") < 0) {
			store_exec(s, "ROLLBACK");
			goto fail;
		}
		log_info("store %s: schema version %d", s->path, v + 1);
	}
	return 0;
fail:
	buf_printf(err, "%s: cannot migrate to schema version %d: %s", s->path, v + 1, sqlite3_errmsg(s->db));
	return -1;
}

static int
configure(struct store *s, struct buf *err)
{
	sqlite3_busy_timeout(s->db, 2000);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK)
		goto fail;
	const unsigned char *mode = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
	bool wal = mode && strcmp((const char *)mode, "wal") == 0;
	sqlite3_finalize(st);
	if (!wal) {
		buf_printf(err, "%s: cannot switch to WAL: %s", s->path, sqlite3_errmsg(s->db));
		return -1;
	}
	/* FULL: a COMMIT that let a reply or a sync position out must survive a power cut */
	if (store_exec(s, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;") < 0)
		goto fail;
	return 0;
fail:
	buf_printf(err, "%s: %s", s->path, sqlite3_errmsg(s->db));
	return -1;
}

int
store_open(const char *dir, const char *name, struct store **out, struct buf *err)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		buf_printf(err, "cannot create state directory %s: %s", dir, strerror(errno));
		return STORE_ERROR;
	}
	struct store *s = xcalloc(1, sizeof *s);
	s->lock_fd = -1;
	struct buf p;
	buf_init(&p);
	buf_printf(&p, "%s/%s.db", dir, name);
	s->path = buf_take(&p);
	buf_printf(&p, "%s/%s.lock", dir, name);
	s->lock_path = buf_take(&p);
	int rc = take_lock(s, err);
	if (rc != STORE_OK) {
		store_close(s);
		return rc;
	}
	if (create_private(s->path, err) < 0)
		goto fail;
	if (sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		buf_printf(err, "cannot open %s: %s", s->path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
		goto fail;
	}
	if (configure(s, err) < 0 || migrate(s, err) < 0)
		goto fail;
	*out = s;
	return STORE_OK;
fail:
	store_close(s);
	return STORE_ERROR;
}

void
store_close(struct store *s)
{
	if (!s)
		return;
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(s->stmts[i]);
	if (s->db) {
		if (s->in_tx)
			store_exec(s, "ROLLBACK");
		sqlite3_close(s->db);
	}
	if (s->lock_fd >= 0) {
		held_drop(s->lock_path);
		close(s->lock_fd);   /* releases the flock */
	}
	free(s->path);
	free(s->lock_path);
	free(s);
}

const char *
store_path(const struct store *s)
{
	return s->path;
}

int
store_begin(struct store *s)
{
	if (s->in_tx || store_exec(s, "BEGIN IMMEDIATE") < 0)
		return -1;
	s->in_tx = true;
	return 0;
}

int
store_commit(struct store *s)
{
	if (!s->in_tx)
		return -1;
	if (store_exec(s, "COMMIT") < 0) {
		store_rollback(s);
		return -1;
	}
	s->in_tx = false;
	return 0;
}

void
store_rollback(struct store *s)
{
	if (!s->in_tx)
		return;
	/* after some errors SQLite has rolled back already; that is fine */
	if (sqlite3_get_autocommit(s->db) == 0)
		store_exec(s, "ROLLBACK");
	s->in_tx = false;
}

bool
store_in_tx(const struct store *s)
{
	return s->in_tx;
}

char *
store_meta_get(struct store *s, const char *key)
{
	sqlite3_stmt *st = store_stmt(s, Q_META_GET);
	if (!st)
		return NULL;
	bind_text(st, 1, key);
	char *v = NULL;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		v = col_text(st, 0);
	else if (rc != SQLITE_DONE)
		store_log_sql(s, "reading meta");
	sqlite3_reset(st);
	return v;
}

int
store_meta_set(struct store *s, const char *key, const char *value)
{
	sqlite3_stmt *st = store_stmt(s, value ? Q_META_SET : Q_META_DEL);
	if (!st)
		return -1;
	bind_text(st, 1, key);
	if (value)
		bind_text(st, 2, value);
	return store_done(s, st, "writing meta");
}

int
store_event_state(struct store *s, const char *event_id)
{
	sqlite3_stmt *st = store_stmt(s, Q_EV_GET);
	if (!st)
		return -1;
	bind_text(st, 1, event_id);
	int rc = sqlite3_step(st);
	int state = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : STORE_EV_UNKNOWN;
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		store_log_sql(s, "reading events");
		return -1;
	}
	return state;
}

int
store_event_put(struct store *s, const char *event_id, const char *room_id, int state, int64_t ts_ms)
{
	sqlite3_stmt *st = store_stmt(s, Q_EV_PUT);
	if (!st)
		return -1;
	bind_text(st, 1, event_id);
	bind_text(st, 2, room_id ? room_id : "");
	sqlite3_bind_int(st, 3, state);
	sqlite3_bind_int64(st, 4, ts_ms);
	return store_done(s, st, "writing events");
}

int
store_event_prune(struct store *s, int64_t before_ms)
{
	sqlite3_stmt *st = store_stmt(s, Q_EV_PRUNE);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, before_ms);
	return store_done(s, st, "pruning events");
}

int
store_room_put(struct store *s, const struct store_room *r)
{
	sqlite3_stmt *st = store_stmt(s, Q_ROOM_PUT);
	if (!st)
		return -1;
	bind_text(st, 1, r->room_id);
	bind_text(st, 2, r->membership);
	sqlite3_bind_int64(st, 3, r->joined);
	sqlite3_bind_int64(st, 4, r->invited);
	sqlite3_bind_int(st, 5, r->encrypted);
	return store_done(s, st, "writing rooms");
}

int
store_room_delete(struct store *s, const char *room_id)
{
	sqlite3_stmt *st = store_stmt(s, Q_ROOM_DEL);
	if (!st)
		return -1;
	bind_text(st, 1, room_id);
	return store_done(s, st, "deleting a room");
}

int
store_room_each(struct store *s, int (*cb)(const struct store_room *r, void *arg), void *arg)
{
	/* a statement of its own: cb may write to the store */
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, sql[Q_ROOM_ALL], -1, &st, NULL) != SQLITE_OK) {
		store_log_sql(s, "prepare");
		return -1;
	}
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_room r = {
			col_text(st, 0), col_text(st, 1), (long)sqlite3_column_int64(st, 2),
			(long)sqlite3_column_int64(st, 3), sqlite3_column_int(st, 4) != 0,
		};
		int stop = cb(&r, arg);
		store_room_free(&r);
		if (stop)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		store_log_sql(s, "reading rooms");
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

void
store_room_free(struct store_room *r)
{
	free(r->room_id);
	free(r->membership);
	r->room_id = r->membership = NULL;
}

int
store_out_add(struct store *s, struct store_out *o)
{
	sqlite3_stmt *st = store_stmt(s, Q_OUT_ADD);
	if (!st)
		return -1;
	bind_text(st, 1, o->txn_id);
	bind_text(st, 2, o->kind);
	bind_text(st, 3, o->room_id);
	bind_text(st, 4, o->event_type);
	bind_text(st, 5, o->content);
	bind_text(st, 6, o->reply_to);
	sqlite3_bind_int64(st, 7, o->created_ms);
	sqlite3_bind_int(st, 8, o->sealed);
	if (store_done(s, st, "queueing a request") < 0)
		return -1;
	o->id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

int
store_out_next(struct store *s, int64_t after_id, struct store_out *o)
{
	sqlite3_stmt *st = store_stmt(s, Q_OUT_NEXT);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, after_id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*o = (struct store_out){
			.id = sqlite3_column_int64(st, 0), .txn_id = col_text(st, 1), .kind = col_text(st, 2),
			.room_id = col_text(st, 3), .event_type = col_text(st, 4), .content = col_text(st, 5),
			.reply_to = col_text(st, 6), .created_ms = sqlite3_column_int64(st, 7),
			.attempts = (long)sqlite3_column_int64(st, 8), .sealed = sqlite3_column_int(st, 9) != 0,
		};
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		store_log_sql(s, "reading the outbox");
		return -1;
	}
	return rc == SQLITE_ROW;
}

int
store_by_id(struct store *s, enum store_q q, int64_t id, const char *what)
{
	sqlite3_stmt *st = store_stmt(s, q);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return store_done(s, st, what);
}

int
store_out_attempt(struct store *s, int64_t id)
{
	return store_by_id(s, Q_OUT_ATTEMPT, id, "counting an attempt");
}

int
store_out_delete(struct store *s, int64_t id)
{
	return store_by_id(s, Q_OUT_DEL, id, "deleting from the outbox");
}

int
store_out_seal(struct store *s, int64_t id, const char *event_type, const char *content)
{
	sqlite3_stmt *st = store_stmt(s, Q_OUT_SEAL);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, event_type);
	bind_text(st, 3, content);
	return store_done(s, st, "sealing an outbox row");
}

int
store_out_expire(struct store *s, int64_t before_ms)
{
	if (store_by_id(s, Q_OUT_EXPIRE, before_ms, "expiring the outbox") < 0)
		return -1;
	return sqlite3_changes(s->db);
}

int
store_out_count(struct store *s)
{
	sqlite3_stmt *st = store_stmt(s, Q_OUT_COUNT);
	if (!st)
		return -1;
	int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_reset(st);
	return n;
}

int
store_gap_add(struct store *s, const char *room_id, const char *from, const char *to, int64_t created_ms)
{
	sqlite3_stmt *st = store_stmt(s, Q_GAP_ADD);
	if (!st)
		return -1;
	bind_text(st, 1, room_id);
	bind_text(st, 2, from);
	bind_text(st, 3, to);
	sqlite3_bind_int64(st, 4, created_ms);
	return store_done(s, st, "noting a timeline gap");
}

int
store_gap_next(struct store *s, struct store_gap *g)
{
	sqlite3_stmt *st = store_stmt(s, Q_GAP_NEXT);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*g = (struct store_gap){
			.id = sqlite3_column_int64(st, 0), .room_id = col_text(st, 1), .from = col_text(st, 2),
			.to = col_text(st, 3), .pages = (long)sqlite3_column_int64(st, 4),
			.created_ms = sqlite3_column_int64(st, 5),
		};
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		store_log_sql(s, "reading the timeline gaps");
		return -1;
	}
	return rc == SQLITE_ROW;
}

int
store_gap_move(struct store *s, int64_t id, const char *from)
{
	sqlite3_stmt *st = store_stmt(s, Q_GAP_MOVE);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, from);
	return store_done(s, st, "moving a timeline gap");
}

int
store_gap_delete(struct store *s, int64_t id)
{
	return store_by_id(s, Q_GAP_DEL, id, "closing a timeline gap");
}

void
store_gap_free(struct store_gap *g)
{
	free(g->room_id);
	free(g->from);
	free(g->to);
	memset(g, 0, sizeof *g);
}

void
store_out_free(struct store_out *o)
{
	free(o->txn_id);
	free(o->kind);
	free(o->room_id);
	free(o->event_type);
	if (o->content) {
		/* the answer text is a member's health advice: do not leave it in freed memory */
		explicit_bzero(o->content, strlen(o->content));
		free(o->content);
	}
	free(o->reply_to);
	memset(o, 0, sizeof *o);
}
