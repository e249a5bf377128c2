/*
 * store_db.h: what bot/store.c shares with bot/store_crypto.c, and nothing
 * else may include: the connection (struct store), the prepared statements
 * by index (their SQL is in store.c, beside the schema it queries), and the
 * helpers that prepare, bind, step and log them.  Knows SQLite; knows
 * nothing of Matrix, libolm or the callers' rules.
 */
#ifndef KNEEBOT_STORE_DB_H
#define KNEEBOT_STORE_DB_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

/* Prepared once, by index. */
enum store_q {
	Q_META_GET, Q_META_SET, Q_META_DEL,
	Q_EV_GET, Q_EV_PUT, Q_EV_PRUNE,
	Q_ROOM_PUT, Q_ROOM_DEL, Q_ROOM_ALL,
	Q_OUT_ADD, Q_OUT_NEXT, Q_OUT_ATTEMPT, Q_OUT_SEAL, Q_OUT_DEL, Q_OUT_EXPIRE, Q_OUT_COUNT,
	Q_GAP_ADD, Q_GAP_NEXT, Q_GAP_MOVE, Q_GAP_DEL,
	Q_ACC_GET, Q_ACC_PUT, Q_ACC_OTHERS, Q_XS_GET, Q_XS_PUT,
	Q_OLM_LIST, Q_OLM_PUT,
	Q_TR_GET, Q_TR_PUT, Q_TR_OUTDATED, Q_TR_DEL, Q_TR_ALL_OUT,
	Q_DEV_GET, Q_DEV_CURVE, Q_DEV_PUT, Q_DEV_LIST,
	Q_MEM_GET, Q_MEM_PUT, Q_MEM_DEL, Q_MEM_LIST, Q_MEM_ROOM_DEL,
	Q_RENC_GET, Q_RENC_PUT,
	Q_MIN_GET, Q_MIN_ROOM_OF, Q_MIN_PUT, Q_MIN_VERIFY, Q_MIN_REFUSE,
	Q_MIDX_GET, Q_MIDX_PUT,
	Q_MOUT_GET, Q_MOUT_PUT, Q_MOUT_DEL,
	Q_SH_GET, Q_SH_PUT, Q_SH_ROOMS,
	Q_AW_PUT, Q_AW_DEL, Q_AW_READY, Q_AW_EXPIRE,
	Q_TD_ADD, Q_TD_NEXT, Q_TD_DEL, Q_TD_PENDING,
	Q_MARK_GET, Q_MARK_SET, Q_MARK_DEL, Q_MARK_LIST,
	Q_COUNT
};

struct store {
	sqlite3 *db;
	char *path, *lock_path;
	int lock_fd;
	bool in_tx;
	sqlite3_stmt *stmts[Q_COUNT];
};

/* Logs what failed with SQLite's message. */
void store_log_sql(struct store *s, const char *what);
/* Runs SQL that returns no rows (schema, DELETE FROM a table); logged on error. */
int store_exec(struct store *s, const char *q);
/* Statement q, prepared on first use, reset and unbound; NULL (logged) when it does not prepare. */
sqlite3_stmt *store_stmt(struct store *s, enum store_q q);
/* Runs a statement that returns no rows; the bindings are already made. */
int store_done(struct store *s, sqlite3_stmt *st, const char *what);
/* Runs statement q with the one integer parameter id. */
int store_by_id(struct store *s, enum store_q q, int64_t id, const char *what);

static inline void
bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static inline char *
col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? xstrdup((const char *)t) : NULL;
}

#endif
