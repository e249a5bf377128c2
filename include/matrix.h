/*
 * matrix.h: the Matrix transport ([matrix.NAME]) and its pure parts.  The
 * transport logs in, long-polls /sync through http.h, applies each batch in
 * one store.h transaction together with the replies it caused, and sends
 * those after COMMIT, so a crash neither loses nor repeats an answer.
 *
 * The functions below are pure (bytes in, values out, no I/O) so that tests
 * and the fuzzer call them directly.  Parsed structs borrow from the cJSON
 * tree of the parse call and live only during the visitor callback.
 * Nothing here knows the knowledge base, curl or SQLite.
 */
#ifndef KNEEBOT_MATRIX_H
#define KNEEBOT_MATRIX_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "transport.h"

extern const struct transport_kind matrix_kind;

/* Matrix's limit on a whole event is 65536 bytes; leave room for what the server adds. */
#define MX_MAX_CONTENT 60000
/* Sync responses larger than this are refused (a 50-event timeline per room stays far below). */
#define MX_MAX_SYNC_BYTES (96u << 20)

enum mx_membership { MX_JOIN, MX_INVITE, MX_LEAVE };

/* A room section of a sync response. */
struct mx_room {
	const char *id;
	enum mx_membership section;   /* rooms.join, rooms.invite or rooms.leave */
	long joined, invited;         /* summary counts, -1 when absent (unchanged) */
	bool limited;                 /* the timeline has a gap before it */
	const char *prev_batch;       /* where the gap ends, for /messages; may be NULL */
	const cJSON *timeline;        /* timeline.events, to look ahead; may be NULL */
};

/* One event; invite_state events are stripped (no event_id, no timestamp). */
struct mx_event {
	const cJSON *raw;             /* the whole event, for decryption */
	const char *event_id, *type, *sender;
	const char *state_key;        /* NULL for a non-state event */
	int64_t ts_ms;                /* origin_server_ts, 0 when absent */
	bool state;                   /* from the state section rather than the timeline */
	bool redacted;                /* unsigned.redacted_because present */
	const cJSON *content;         /* object or NULL */
	/* m.room.message */
	const char *msgtype, *body;
	size_t body_len;
	const char *rel_type;         /* m.relates_to.rel_type: m.replace, m.thread, ... */
	const char *rel_event;        /* m.relates_to.event_id */
	const char *in_reply_to;      /* m.relates_to.m.in_reply_to.event_id */
	const cJSON *mention_ids;     /* m.mentions.user_ids array or NULL */
	/* m.room.member */
	const char *membership, *displayname;
};

struct mx_to_device {
	const char *type, *sender;
	const cJSON *content;
};

/* What /sync says for end-to-end encryption, handed to one place per batch. */
struct mx_crypto {
	const struct mx_to_device *to_device;
	size_t n_to_device;
	const char **changed, **left;     /* device_lists */
	size_t nchanged, nleft;
	long otk_signed_curve25519;       /* device_one_time_keys_count; absent = 0 */
	bool fallback_known;              /* device_unused_fallback_key_types present */
	bool fallback_unused;             /* ... and it lists signed_curve25519 */
};

/* Called in document order: crypto, then invite, leave and join rooms (state before timeline). */
struct mx_sync_visitor {
	void (*crypto)(void *arg, const struct mx_crypto *c);
	void (*room)(void *arg, const struct mx_room *r);
	void (*event)(void *arg, const struct mx_room *r, const struct mx_event *ev);
	void (*room_end)(void *arg, const struct mx_room *r);
};

struct mx_sync_stats {
	size_t rooms, events, skipped;    /* skipped: events without a type or not objects */
};

/*
 * Parses a /sync response and walks it with v.  next_batch receives the
 * token.  Returns -1 with a reason in err when it is not JSON, not an object
 * or has no next_batch; then no callback has run.
 */
int matrix_sync_parse(const char *json, size_t len, const struct mx_sync_visitor *v, void *arg,
	struct buf *next_batch, struct mx_sync_stats *stats, struct buf *err);

/*
 * Parses one /rooms/{id}/messages page read backwards (dir=b, newest
 * first) and walks its events oldest first with v->event, as if they were
 * the timeline of room_id.  end receives the token to read on from, empty
 * when the server has no more.  Returns the number of events in the page,
 * or -1 with a reason in err (then no callback has run).
 */
long matrix_page_parse(const char *json, size_t len, const char *room_id, const struct mx_sync_visitor *v,
	void *arg, struct buf *end, struct mx_sync_stats *stats, struct buf *err);

/* Fills ev from one event object; false when it has no type. */
bool matrix_event_parse(const cJSON *obj, bool state, struct mx_event *ev);

/* Why an m.room.message is not for the bot, or NULL when it may be. */
const char *matrix_event_skip(const struct mx_event *ev, const char *own_user);

/*
 * The text to judge: body without the reply fallback ("> " lines and the
 * blank line after them) and without the bot's name in any of names.
 * Returns true when the body named the bot or m.mentions lists own_user.
 */
bool matrix_event_text(const struct mx_event *ev, const char *own_user, const char *const *names,
	size_t nnames, struct buf *out);

/* The content of an m.notice answering an event; fits MX_MAX_CONTENT. */
struct mx_reply {
	const char *text, *html;      /* html may be NULL */
	const char *in_reply_to;      /* the question's event id */
	const char *mention;          /* the asker's user id, or NULL */
	const char *thread_root;      /* when the question was in a thread, else NULL */
};
void matrix_reply_content(const struct mx_reply *r, struct buf *out);

/* How a response is to be handled. */
enum mx_outcome {
	MX_OK,          /* 2xx */
	MX_RETRY,       /* network error, timeout, 5xx: back off and retry */
	MX_RATE,        /* 429: wait retry_ms, then retry */
	MX_AUTH,        /* 401 M_UNKNOWN_TOKEN / M_MISSING_TOKEN: log in again */
	MX_FAIL,        /* another 4xx: retrying will not help */
};
struct mx_error {
	enum mx_outcome outcome;
	long status;
	char errcode[48];
	char error[160];
	int64_t retry_ms;     /* MX_RATE: the larger of Retry-After and retry_after_ms, else 5 s */
	bool soft_logout;
};
void matrix_classify(long status, const char *body, size_t len, int64_t retry_after_ms, struct mx_error *e);

/* Exponential backoff with +-20 % jitter: 1 s doubling to 60 s; rnd in [0, 1). */
int64_t matrix_backoff_ms(unsigned failures, double rnd);

#endif
