/*
 * store.c: SQLite state with a versioned schema.  Each entry of migrations[]
 * takes the file from version i to i + 1 in one transaction; never edit an
 * entry once released (tests/store/ keeps a saved file of every version and
 * store_test migrates each).  A crash leaves either the old or the new
 * version, never half of one.
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
};

_Static_assert(sizeof migrations / sizeof migrations[0] == STORE_VERSION, "one migration per version");

/* Prepared once, by index. */
enum q {
	Q_META_GET, Q_META_SET, Q_META_DEL,
	Q_EV_GET, Q_EV_PUT, Q_EV_PRUNE,
	Q_ROOM_PUT, Q_ROOM_DEL, Q_ROOM_ALL,
	Q_OUT_ADD, Q_OUT_NEXT, Q_OUT_ATTEMPT, Q_OUT_SEAL, Q_OUT_DEL, Q_OUT_EXPIRE, Q_OUT_COUNT,
	Q_COUNT
};

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
};

struct store {
	sqlite3 *db;
	char *path, *lock_path;
	int lock_fd;
	bool in_tx;
	sqlite3_stmt *stmts[Q_COUNT];
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

static void
log_sql(struct store *s, const char *what)
{
	log_warnx("store %s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static int
exec(struct store *s, const char *q)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, q, NULL, NULL, &msg) != SQLITE_OK) {
		log_warnx("store %s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static sqlite3_stmt *
stmt(struct store *s, enum q q)
{
	if (!s->stmts[q] && sqlite3_prepare_v2(s->db, sql[q], -1, &s->stmts[q], NULL) != SQLITE_OK) {
		log_sql(s, "prepare");
		return NULL;
	}
	sqlite3_reset(s->stmts[q]);
	sqlite3_clear_bindings(s->stmts[q]);
	return s->stmts[q];
}

/* Runs a statement that returns no rows; the bindings are already made. */
static int
done(struct store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		log_sql(s, what);
		return -1;
	}
	return 0;
}

static void
bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static char *
col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? xstrdup((const char *)t) : NULL;
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
		if (exec(s, "BEGIN IMMEDIATE") < 0)
			goto fail;
		if (exec(s, migrations[v]) < 0 || exec(s, pragma) < 0 || exec(s, "COMMIT") < 0) {
			exec(s, "ROLLBACK");
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
	if (exec(s, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;") < 0)
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
			exec(s, "ROLLBACK");
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
	if (s->in_tx || exec(s, "BEGIN IMMEDIATE") < 0)
		return -1;
	s->in_tx = true;
	return 0;
}

int
store_commit(struct store *s)
{
	if (!s->in_tx)
		return -1;
	if (exec(s, "COMMIT") < 0) {
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
		exec(s, "ROLLBACK");
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
	sqlite3_stmt *st = stmt(s, Q_META_GET);
	if (!st)
		return NULL;
	bind_text(st, 1, key);
	char *v = NULL;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		v = col_text(st, 0);
	else if (rc != SQLITE_DONE)
		log_sql(s, "reading meta");
	sqlite3_reset(st);
	return v;
}

int
store_meta_set(struct store *s, const char *key, const char *value)
{
	sqlite3_stmt *st = stmt(s, value ? Q_META_SET : Q_META_DEL);
	if (!st)
		return -1;
	bind_text(st, 1, key);
	if (value)
		bind_text(st, 2, value);
	return done(s, st, "writing meta");
}

int
store_event_state(struct store *s, const char *event_id)
{
	sqlite3_stmt *st = stmt(s, Q_EV_GET);
	if (!st)
		return -1;
	bind_text(st, 1, event_id);
	int rc = sqlite3_step(st);
	int state = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : STORE_EV_UNKNOWN;
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		log_sql(s, "reading events");
		return -1;
	}
	return state;
}

int
store_event_put(struct store *s, const char *event_id, const char *room_id, int state, int64_t ts_ms)
{
	sqlite3_stmt *st = stmt(s, Q_EV_PUT);
	if (!st)
		return -1;
	bind_text(st, 1, event_id);
	bind_text(st, 2, room_id ? room_id : "");
	sqlite3_bind_int(st, 3, state);
	sqlite3_bind_int64(st, 4, ts_ms);
	return done(s, st, "writing events");
}

int
store_event_prune(struct store *s, int64_t before_ms)
{
	sqlite3_stmt *st = stmt(s, Q_EV_PRUNE);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, before_ms);
	return done(s, st, "pruning events");
}

int
store_room_put(struct store *s, const struct store_room *r)
{
	sqlite3_stmt *st = stmt(s, Q_ROOM_PUT);
	if (!st)
		return -1;
	bind_text(st, 1, r->room_id);
	bind_text(st, 2, r->membership);
	sqlite3_bind_int64(st, 3, r->joined);
	sqlite3_bind_int64(st, 4, r->invited);
	sqlite3_bind_int(st, 5, r->encrypted);
	return done(s, st, "writing rooms");
}

int
store_room_delete(struct store *s, const char *room_id)
{
	sqlite3_stmt *st = stmt(s, Q_ROOM_DEL);
	if (!st)
		return -1;
	bind_text(st, 1, room_id);
	return done(s, st, "deleting a room");
}

int
store_room_each(struct store *s, int (*cb)(const struct store_room *r, void *arg), void *arg)
{
	/* a statement of its own: cb may write to the store */
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, sql[Q_ROOM_ALL], -1, &st, NULL) != SQLITE_OK) {
		log_sql(s, "prepare");
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
		log_sql(s, "reading rooms");
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
	sqlite3_stmt *st = stmt(s, Q_OUT_ADD);
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
	if (done(s, st, "queueing a request") < 0)
		return -1;
	o->id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

int
store_out_next(struct store *s, int64_t after_id, struct store_out *o)
{
	sqlite3_stmt *st = stmt(s, Q_OUT_NEXT);
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
		log_sql(s, "reading the outbox");
		return -1;
	}
	return rc == SQLITE_ROW;
}

static int
by_id(struct store *s, enum q q, int64_t id, const char *what)
{
	sqlite3_stmt *st = stmt(s, q);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return done(s, st, what);
}

int
store_out_attempt(struct store *s, int64_t id)
{
	return by_id(s, Q_OUT_ATTEMPT, id, "counting an attempt");
}

int
store_out_delete(struct store *s, int64_t id)
{
	return by_id(s, Q_OUT_DEL, id, "deleting from the outbox");
}

int
store_out_seal(struct store *s, int64_t id, const char *event_type, const char *content)
{
	sqlite3_stmt *st = stmt(s, Q_OUT_SEAL);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, event_type);
	bind_text(st, 3, content);
	return done(s, st, "sealing an outbox row");
}

int
store_out_expire(struct store *s, int64_t before_ms)
{
	if (by_id(s, Q_OUT_EXPIRE, before_ms, "expiring the outbox") < 0)
		return -1;
	return sqlite3_changes(s->db);
}

int
store_out_count(struct store *s)
{
	sqlite3_stmt *st = stmt(s, Q_OUT_COUNT);
	if (!st)
		return -1;
	int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_reset(st);
	return n;
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
