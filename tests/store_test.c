/*
 * store_test.c: the SQLite store.  A fresh store's files and pragmas, the
 * lock, transactions surviving a crash, every table's functions, and the
 * migration of the saved database of each schema version in tests/store/.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "store.h"
#include "t.h"

static char dir[256];

static const char *
path_in(const char *name)
{
	static char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return p;
}

static int
mode_of(const char *name)
{
	struct stat st;
	return stat(path_in(name), &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

static void
copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	char b[8192];
	size_t n;
	while (in && out && (n = fread(b, 1, sizeof b, in)) > 0)
		fwrite(b, 1, n, out);
	if (in)
		fclose(in);
	if (out)
		fclose(out);
}

/* Runs one SQL query on a file directly, returning the first column of the first row. */
static char *
query(const char *file, const char *sql)
{
	sqlite3 *db;
	char *out = NULL;
	if (sqlite3_open_v2(file, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
			if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
				out = xstrdup((const char *)sqlite3_column_text(st, 0));
			sqlite3_finalize(st);
		}
	}
	sqlite3_close(db);
	return out ? out : xstrdup("");
}

/* The schema as one string, whitespace collapsed, to compare versions reached by different roads. */
static char *
schema_of(const char *file)
{
	return query(file, "SELECT group_concat(type || ' ' || name || ' ' || replace(replace(sql, char(10), ' '), '  ', ' '), '; ')"
		" FROM (SELECT * FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name)");
}

static bool
str_is(char *got, const char *want)
{
	bool ok = strcmp(got, want) == 0;
	if (!ok)
		printf("# got '%s', want '%s'\n", got, want);
	free(got);
	return ok;
}

static void
test_fresh(void)
{
	struct store *s;
	struct buf err;
	buf_init(&err);
	if (!T_OK(store_open(dir, "fresh", &s, &err) == STORE_OK, "a fresh store opens (%s)", err.s ? err.s : ""))
		return;
	T_OK(store_version(s) == STORE_VERSION, "a fresh store is at schema version %d", STORE_VERSION);
	T_OK(store_meta_set(s, "next_batch", "s1_2_3") == 0, "meta written");
	char *v = store_meta_get(s, "next_batch");
	T_OK(v && strcmp(v, "s1_2_3") == 0, "meta read back");
	free(v);
	T_OK(mode_of("fresh.db") == 0600 && mode_of("fresh.db-wal") == 0600 && mode_of("fresh.lock") == 0600,
		"database, WAL and lock files are mode 0600");
	T_OK(str_is(query(path_in("fresh.db"), "PRAGMA journal_mode"), "wal"), "journal_mode is WAL");

	struct store *again;
	buf_clear(&err);
	T_OK(store_open(dir, "fresh", &again, &err) == STORE_LOCKED_HERE, "a second open in this process waits (reload)");
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		struct buf e;
		buf_init(&e);
		struct store *x;
		_exit(store_open(dir, "fresh", &x, &e) == STORE_ERROR && strstr(e.s, "another kneebot process") ? 0 : 1);
	}
	int status;
	waitpid(pid, &status, 0);
	T_OK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "another process is refused with a clear message");
	store_close(s);
	buf_clear(&err);
	s = NULL;
	T_OK(store_open(dir, "fresh", &s, &err) == STORE_OK, "closing releases the lock");
	store_close(s);
	buf_free(&err);
}

static int
count_rooms(const struct store_room *x, void *arg)
{
	(void)x;
	++*(int *)arg;
	return 0;
}

static void
test_tables(void)
{
	struct store *s;
	struct buf err;
	buf_init(&err);
	if (!T_OK(store_open(dir, "tables", &s, &err) == STORE_OK, "a store for the table tests"))
		return;

	T_OK(store_event_state(s, "$a") == STORE_EV_UNKNOWN, "an unknown event is unknown");
	store_event_put(s, "$a", "!r:x", STORE_EV_HANDLED, 1000);
	store_event_put(s, "$b", "!r:x", STORE_EV_OWN, 5000);
	store_event_put(s, "$b", "!r:x", STORE_EV_HANDLED, 5000);
	T_OK(store_event_state(s, "$a") == STORE_EV_HANDLED && store_event_state(s, "$b") == STORE_EV_OWN,
		"event states kept; OWN is never downgraded");
	store_event_prune(s, 2000);
	T_OK(store_event_state(s, "$a") == STORE_EV_UNKNOWN && store_event_state(s, "$b") == STORE_EV_OWN,
		"pruning drops only old events");

	struct store_room r = { "!r:x", "join", 3, 1, false };
	store_room_put(s, &r);
	r.encrypted = true;
	r.joined = 2;
	store_room_put(s, &r);
	struct store_room r2 = { "!q:x", "invite", -1, -1, false };
	store_room_put(s, &r2);
	int n = 0;
	bool enc = false;
	store_room_each(s, count_rooms, &n);
	T_OK(n == 2, "two rooms stored");
	store_room_delete(s, "!q:x");
	n = 0;
	store_room_each(s, count_rooms, &n);
	T_OK(n == 1, "a room deleted");
	char *e = query(path_in("tables.db"), "SELECT encrypted || ',' || joined FROM rooms WHERE room_id = '!r:x'");
	enc = strcmp(e, "1,2") == 0;
	free(e);
	T_OK(enc, "a room updated in place");

	T_OK(store_begin(s) == 0, "begin");
	struct store_out o = { .txn_id = "t1", .kind = "send", .room_id = "!r:x", .event_type = "m.room.message",
		.content = "{\"body\":\"x\"}", .reply_to = "$q", .created_ms = 100 };
	store_out_add(s, &o);
	store_rollback(s);
	T_OK(store_out_count(s) == 0, "a rolled-back outbox row is gone");
	store_begin(s);
	store_out_add(s, &o);
	struct store_out o2 = { .txn_id = "t2", .kind = "join", .room_id = "#a:x", .created_ms = 9000 };
	store_out_add(s, &o2);
	T_OK(store_commit(s) == 0 && store_out_count(s) == 2, "committed outbox rows stay");
	struct store_out got;
	T_OK(store_out_next(s, 0, &got) == 1 && strcmp(got.txn_id, "t1") == 0 && strcmp(got.reply_to, "$q") == 0
		&& !got.sealed, "the outbox hands rows out in order");
	int64_t first = got.id;
	store_out_free(&got);
	store_out_attempt(s, first);
	store_out_seal(s, first, "m.room.encrypted", "{\"ciphertext\":\"c\"}");
	store_out_next(s, 0, &got);
	T_OK(got.attempts == 1 && got.sealed && strcmp(got.event_type, "m.room.encrypted") == 0
		&& strcmp(got.txn_id, "t1") == 0, "attempts counted; a sealed row keeps its txnId");
	store_out_free(&got);
	T_OK(store_out_expire(s, 1000) == 1 && store_out_count(s) == 1, "rows older than the limit expire");
	store_out_next(s, 0, &got);
	store_out_delete(s, got.id);
	store_out_free(&got);
	T_OK(store_out_next(s, 0, &got) == 0, "an empty outbox");
	T_OK(store_begin(s) == 0 && store_begin(s) < 0, "one transaction at a time");
	store_rollback(s);

	struct store_gap g;
	T_OK(store_gap_next(s, &g) == 0, "no gaps in a fresh store");
	store_gap_add(s, "!r:x", "p9", "s3_0_0", 100);
	store_gap_add(s, "!q:x", "p20", "s12_0_0", 200);
	T_OK(store_gap_next(s, &g) == 1 && strcmp(g.room_id, "!r:x") == 0 && strcmp(g.from, "p9") == 0
		&& strcmp(g.to, "s3_0_0") == 0 && g.pages == 0, "gaps come back oldest first");
	store_gap_move(s, g.id, "p4");
	int64_t gid = g.id;
	store_gap_free(&g);
	T_OK(store_gap_next(s, &g) == 1 && g.id == gid && strcmp(g.from, "p4") == 0 && g.pages == 1,
		"a gap read one page further continues from the new token");
	store_gap_free(&g);
	store_gap_delete(s, gid);
	T_OK(store_gap_next(s, &g) == 1 && strcmp(g.room_id, "!q:x") == 0, "a closed gap is gone, the next one waits");
	store_gap_free(&g);
	store_close(s);
	buf_free(&err);
}

/* A process killed inside a transaction leaves the store as before it, never half of it. */
/* The end-to-end encryption tables: the queries e2ee.c relies on for its checks. */
static void
test_crypto_tables(void)
{
	struct store *s;
	struct buf err;
	buf_init(&err);
	if (!T_OK(store_open(dir, "crypto", &s, &err) == STORE_OK, "a store for the crypto tables"))
		return;
	struct store_account a = { "DEV1", "pickle1", "curve1", "ed1", false, false, 0, 1 };
	T_OK(store_account_put(s, &a) == 0 && store_account_others(s, "DEV1") == 0 && store_account_others(s, "DEV2") == 1,
		"an account per device id; others counted");
	a.pickle = "pickle2";
	a.curve25519 = "changed";
	a.keys_uploaded = true;
	struct store_account b;
	T_OK(store_account_put(s, &a) == 0 && store_account_get(s, "DEV1", &b) == 1 && strcmp(b.pickle, "pickle2") == 0
		&& strcmp(b.curve25519, "curve1") == 0 && b.keys_uploaded, "an account's pickle and flags change, its keys never");
	store_account_free(&b);

	struct store_megolm_in m = { "!r:x", "sess", "@a:x", "curveA", "edA", false, 5, "p", 1 };
	int ver = -1, ref = -1;
	T_OK(store_megolm_in_put(s, &m) == 0 && store_megolm_in_check(s, "@a:x", "curveA", "edA", &ver, &ref) == 0
		&& ver == 1 && ref == 0, "a room key whose sender's device matches becomes verified");
	m.room_id = "!r2:x";
	m.session_id = "sess2";
	m.verified = false;
	T_OK(store_megolm_in_put(s, &m) == 0 && store_megolm_in_check(s, "@a:x", "curveA", "edOTHER", &ver, &ref) == 0
		&& ver == 0 && ref == 2, "room keys claiming a device with other keys are dropped");
	char *room = store_megolm_in_room_of(s, "sess");
	T_OK(room == NULL, "... and gone");
	free(room);

	struct store_awaiting w = { "$e1", "!r:x", "sess3", "{}", 10, true };
	struct store_awaiting *v = NULL;
	size_t n = 0;
	T_OK(store_awaiting_put(s, &w) == 0 && store_awaiting_ready(s, &v, &n) == 0 && n == 0,
		"a parked event is not ready before its key");
	free(v);
	m = (struct store_megolm_in){ "!r:x", "sess3", "@a:x", "curveA", "edA", true, 0, "p", 1 };
	T_OK(store_megolm_in_put(s, &m) == 0 && store_awaiting_ready(s, &v, &n) == 0 && n == 1
		&& strcmp(v[0].event_id, "$e1") == 0 && v[0].answer, "... and ready once its verified key is there");
	store_awaiting_free(v, n);
	free(v);
	T_OK(store_awaiting_expire(s, 11) == 1 && store_awaiting_delete(s, "$e1") == 0, "parked events expire");

	char *eid = NULL;
	T_OK(store_megolm_index_put(s, "sess3", 7, "$a", 1) == 0 && store_megolm_index_put(s, "sess3", 7, "$b", 1) < 0
		&& store_megolm_index_get(s, "sess3", 7, &eid) == 1 && strcmp(eid, "$a") == 0,
		"a message index keeps its first event id");
	free(eid);

	struct store_megolm_out o = { "!r:x", "out1", "p", 1 };
	char **rooms = NULL;
	T_OK(store_megolm_out_put(s, &o) == 0 && store_shared_put(s, "out1", "@b:x", "D", 0) == 0
		&& store_shared_put(s, "out1", "@c:x", "E", -1) == 0, "an outbound session shared with one device, withheld from one");
	T_OK(store_shared_rooms(s, "@b:x", "D", &rooms, &n) == 0 && n == 1 && strcmp(rooms[0], "!r:x") == 0,
		"a device that got the current key is found by room");
	store_strv_free(rooms, n);
	T_OK(store_shared_rooms(s, "@c:x", "E", &rooms, &n) == 0 && n == 0, "... a device it was withheld from is not");
	store_strv_free(rooms, n);
	T_OK(store_megolm_out_delete(s, "!r:x") == 1 && store_megolm_out_delete(s, "!r:x") == 0, "rotation deletes it once");

	struct store_todev t1 = { 0, "t1", "m.room.encrypted", "{}", "out1", 1 }, t2 = { 0, "t2", "m.dummy", "{}", NULL, 1 };
	struct store_todev got;
	T_OK(store_todev_add(s, &t1) == 0 && store_todev_add(s, &t2) == 0 && store_todev_pending(s, "out1") == 1
		&& store_todev_next(s, &got) == 1 && got.id == t1.id, "to-device rows in order, counted by session");
	store_todev_free(&got);
	T_OK(store_todev_delete(s, t1.id) == 0 && store_todev_pending(s, "out1") == 0, "... and deleted when sent");

	struct store_mark k;
	T_OK(store_mark_set(s, "dummy", "curve", "@a:x", 5) == 0 && store_mark_get(s, "dummy", "curve", &k) == 1
		&& k.at_ms == 5 && strcmp(k.value, "@a:x") == 0, "marks hold a time and a value");
	store_mark_free(&k, 1);
	T_OK(store_crypto_forget(s, false) == 0 && store_account_get(s, "DEV1", &b) == 0
		&& store_mark_get(s, "dummy", "curve", &k) == 0 && (room = store_megolm_in_room_of(s, "sess3")) != NULL,
		"a new device forgets what the old device's keys made, not others' room keys");
	free(room);
	T_OK(store_crypto_forget(s, true) == 0 && (room = store_megolm_in_room_of(s, "sess3")) == NULL,
		"a lost pickle key forgets everything");
	store_close(s);
	buf_free(&err);
}

static void
test_crash(void)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		struct store *s;
		struct buf e;
		buf_init(&e);
		if (store_open(dir, "crash", &s, &e) != STORE_OK)
			_exit(1);
		store_meta_set(s, "next_batch", "before");
		store_begin(s);
		store_meta_set(s, "next_batch", "after");
		struct store_out o = { .txn_id = "t", .kind = "send", .room_id = "!r:x", .created_ms = 1 };
		store_out_add(s, &o);
		raise(SIGKILL);
	}
	int status;
	waitpid(pid, &status, 0);
	struct store *s = NULL;
	struct buf err;
	buf_init(&err);
	int rc = store_open(dir, "crash", &s, &err);
	if (!T_OK(WIFSIGNALED(status) && rc == STORE_OK, "reopened after SIGKILL mid-transaction"))
		return;
	char *v = store_meta_get(s, "next_batch");
	T_OK(v && strcmp(v, "before") == 0 && store_out_count(s) == 0,
		"the killed transaction left nothing: neither its sync position nor its reply");
	free(v);
	T_OK(str_is(query(path_in("crash.db"), "PRAGMA integrity_check"), "ok"), "integrity_check ok after the crash");
	store_close(s);
	buf_free(&err);
}

static void
test_migrations(void)
{
	struct store *s;
	struct buf err;
	buf_init(&err);
	if (!T_OK(store_open(dir, "current", &s, &err) == STORE_OK, "a current store to compare with"))
		return;
	store_close(s);
	char *fresh = schema_of(path_in("current.db"));
	for (int v = 1; v <= STORE_VERSION; v++) {
		char from[64], name[32];
		snprintf(from, sizeof from, "tests/store/v%d.db", v);
		snprintf(name, sizeof name, "saved%d", v);
		char to[512];
		snprintf(to, sizeof to, "%s/%s.db", dir, name);
		copy_file(from, to);
		buf_clear(&err);
		int rc = store_open(dir, name, &s, &err);
		T_OK(rc == STORE_OK && store_version(s) == STORE_VERSION, "saved version %d database migrates to %d (%s)",
			v, STORE_VERSION, err.s ? err.s : "");
		if (rc != STORE_OK)
			continue;
		char *tok = store_meta_get(s, "access_token"), *nb = store_meta_get(s, "next_batch");
		struct store_out o = { 0 };
		T_OK(tok && nb && strcmp(tok, "syt_v1_not_a_real_token") == 0 && strcmp(nb, "s72594_4483_1934") == 0
			&& store_event_state(s, "$answer1") == STORE_EV_OWN
			&& store_out_next(s, 0, &o) == 1 && strcmp(o.txn_id, "kb00112233445566778899aabbccddeeff") == 0
			&& o.attempts == 2 && strstr(o.content, "Ice it."),
			"version %d: login, sync position, events and the queued answer survive", v);
		store_out_free(&o);
		free(tok);
		free(nb);
		int n = 0;
		store_room_each(s, count_rooms, &n);
		T_OK(n == (v >= 2 ? 3 : 0), "version %d: rooms %s", v, v >= 2 ? "kept" : "table added, empty");
		struct store_room r = { "!x:y", "join", 2, 0, false };
		T_OK(store_room_put(s, &r) == 0, "version %d: the migrated store takes new rows", v);
		struct store_account acc;
		int got = store_account_get(s, "KNEEDEVICE", &acc);
		T_OK(v >= 3 ? got == 1 && acc.keys_uploaded && strcmp(acc.pickle, "not-a-real-pickle") == 0 : got == 0,
			"version %d: crypto tables %s", v, v >= 3 ? "kept" : "added, empty");
		if (got == 1)
			store_account_free(&acc);
		struct store_gap gap;
		got = store_gap_next(s, &gap);
		T_OK(v >= 4 ? got == 1 && strcmp(gap.to, "s72594_4483_1934") == 0 : got == 0,
			"version %d: timeline gaps %s", v, v >= 4 ? "kept" : "table added, empty");
		if (got == 1)
			store_gap_free(&gap);
		store_close(s);
		char *schema = schema_of(to);
		T_OK(strcmp(schema, fresh) == 0, "version %d migrated has exactly the schema of a fresh store", v);
		free(schema);
	}
	char latest[64];
	snprintf(latest, sizeof latest, "tests/store/v%d.db", STORE_VERSION);
	char *saved = schema_of(latest);
	T_OK(strcmp(saved, fresh) == 0,
		"a fresh store's schema equals the saved latest version (migrations[] not edited after release)");
	free(saved);
	free(fresh);

	/* a migration that fails leaves the file at its old version */
	char to[512];
	snprintf(to, sizeof to, "%s/broken.db", dir);
	copy_file("tests/store/v1.db", to);
	free(query(to, "CREATE TABLE rooms (x)"));
	buf_clear(&err);
	T_OK(store_open(dir, "broken", &s, &err) == STORE_ERROR && strstr(err.s, "cannot migrate to schema version 2"),
		"a failing migration is reported");
	T_OK(str_is(query(to, "PRAGMA user_version"), "1"), "... and leaves the old version intact");

	snprintf(to, sizeof to, "%s/future.db", dir);
	copy_file("tests/store/v1.db", to);
	free(query(to, "PRAGMA user_version = 99"));
	buf_clear(&err);
	T_OK(store_open(dir, "future", &s, &err) == STORE_ERROR && strstr(err.s, "newer than this kneebot"),
		"a database from a newer kneebot is refused, untouched");

	snprintf(to, sizeof to, "%s/garbage.db", dir);
	FILE *f = fopen(to, "w");
	for (int i = 0; f && i < 400; i++)
		fputs("this is not a database, ", f);
	if (f)
		fclose(f);
	buf_clear(&err);
	T_OK(store_open(dir, "garbage", &s, &err) == STORE_ERROR && err.len > 0, "a corrupt file is an error, not a crash");
	buf_free(&err);
}

int
main(void)
{
	log_init(LOG_LVL_WARN, "store_test");
	snprintf(dir, sizeof dir, "/tmp/kneebot-store-test-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	test_fresh();
	test_tables();
	test_crypto_tables();
	test_crash();
	test_migrations();
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		T_OK(0, "cleanup");
	T_EXIT();
}
