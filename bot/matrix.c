/*
 * matrix.c: the Matrix client-server API as a transport.  Login, /sync,
 * room events -> struct event, replies; no curl calls (http.c does those),
 * no SQL (store.c), no JSON walking of its own (matrix_parse.c) and no
 * config checks (matrix_conf.c).
 *
 * The durability rule: a sync batch is applied in ONE store transaction
 * that also holds its next_batch and the outbox rows of every reply the
 * router decided while it ran (send() only queues).  The requests go out
 * after COMMIT; each retry reuses its stored txnId.  So a crash before
 * COMMIT replays the batch and a crash after it resends the same txnIds:
 * nothing is lost and the server drops the second copy.  A batch whose
 * timeline was cut short (limited) notes the gap in that same transaction;
 * the gap lane then reads the missed messages from /messages, a page per
 * transaction, through the same handle_event() and its once-only check.
 *
 * End-to-end encryption (e2ee.h) comes in at three functions and nowhere
 * else: incoming_event() (every room event is decrypted there),
 * outgoing_seal() (every room message is encrypted and re-stored there
 * before its PUT) and crypto_sync() (to-device events, device lists and
 * one-time key counts of each batch); its requests run on lanes of their
 * own (keys, query, claim, to-device) so that sharing keys never waits
 * behind a sync or a rate-limited send.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "bot.h"
#include "buf.h"
#include "config.h"
#include "e2ee.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "matrix.h"
#include "matrix_conf.h"
#include "matrix_parse.h"
#include "router.h"
#include "store.h"
#include "transport.h"

#define API "/_matrix/client/v3"
#define SYNC_TIMEOUT_MS 30000
#define SYNC_SLACK_MS 30000             /* curl gives up this long after the server should have answered */
#define REQUEST_TIMEOUT_MS 30000
#define TYPING_TIMEOUT_MS 10000
#define OUTBOX_MAX_AGE_MS (12 * 3600 * 1000LL)   /* Synapse forgets txnIds after 24 h */
#define EVENTS_KEEP_MS (7 * 86400 * 1000LL)
#define EPHEMERAL_MAX_AGE_MS 60000
#define EPHEMERAL_MAX_JOBS 256
#define EPHEMERAL_ATTEMPTS 3
#define LOCK_RETRY_MS 250
#define HOUSEKEEPING_MS (3600 * 1000)
#define GAP_PAGE 50
#define SINCE_REFUSALS 5                /* 400s in a row, over 15 s of backoff */
#define GAP_MAX_PAGES 20                /* up to 1000 missed messages a gap: catch_up_s usually ends it sooner */
#define SEAL_WAIT_MS 1000

/*
 * Only what the bot uses: messages and the state that says who is in a
 * room.  Members are lazy-loaded unless encryption is on: room keys go to
 * every member's devices, so then the bot must know every member.
 */
#define SYNC_FILTER(LAZY) \
	"{\"room\":{\"timeline\":{\"limit\":50,\"types\":[\"m.room.message\",\"m.room.encrypted\"," \
	"\"m.room.member\",\"m.room.encryption\"]}," \
	"\"state\":{\"lazy_load_members\":" LAZY ",\"types\":[\"m.room.member\",\"m.room.encryption\"," \
	"\"m.room.create\"]}," \
	"\"ephemeral\":{\"not_types\":[\"*\"]},\"account_data\":{\"not_types\":[\"*\"]}}," \
	"\"presence\":{\"not_types\":[\"*\"]},\"account_data\":{\"not_types\":[\"*\"]}}"
static const char *const sync_filters[2] = { SYNC_FILTER("true"), SYNC_FILTER("false") };
/* A gap needs only the messages: the sync's state section already covered its state changes. */
#define GAP_FILTER "{\"types\":[\"m.room.message\",\"m.room.encrypted\"],\"lazy_load_members\":true}"

/* ---------- the transport ---------- */

enum lane_id {
	LANE_AUTH, LANE_SYNC, LANE_OUT, LANE_EPH, LANE_GAP,
	LANE_KEYS, LANE_QUERY, LANE_CLAIM, LANE_TODEVICE,   /* end-to-end encryption, one e2ee_kind each */
	LANE_COUNT
};

/* Login is a chain of requests on the auth lane; the other lanes wait for READY. */
enum auth_step { AUTH_WHOAMI, AUTH_FLOWS, AUTH_LOGIN, AUTH_PROFILE, AUTH_READY };

enum seal { SEAL_READY, SEAL_WAIT, SEAL_DROP };
enum incoming { IN_PLAIN, IN_WAIT, IN_DROP };

struct matrix;
typedef void (*lane_done)(struct matrix *m, const struct http_resp *resp, const struct mx_error *e);

/* One queue of requests, one in flight at a time, with its own backoff: a 429 pauses only it. */
struct lane {
	struct matrix *m;
	enum lane_id id;
	struct http_req *req;
	uint64_t token_gen;      /* the token generation its request was sent with */
	lane_done done;
	uint64_t timer;
	unsigned failures;
};

struct room {
	char *id;
	char membership[8];      /* "join", "invite", "leave" */
	long joined, invited;
	bool encrypted;
	bool dirty;              /* differs from the store */
	bool leaving;            /* a leave is queued */
	/* during one batch */
	int join_at;             /* timeline index of our own join in this batch, or -1 */
	int at;                  /* timeline index of the event being applied */
	const char *inviter;
	bool kicked;
	bool seen;               /* named in this batch */
};

/* Typing notices and read receipts: in memory, best effort. */
struct eph_job {
	enum http_method method;
	char *path, *body;
	int64_t created_ms;
	unsigned attempts;
};

struct matrix {
	struct transport *t;
	struct matrix_settings set;
	struct http *http;
	struct store *store;
	uint64_t lock_timer, housekeeping;
	char *hs, *user_id, *localpart, *device_id, *token, *since, *displayname;
	uint64_t token_gen;      /* bumped whenever the token changes */
	bool token_mode;
	enum auth_step auth;
	bool ready_once, stopping;
	struct lane lanes[LANE_COUNT];
	struct room *rooms;
	size_t nrooms;
	struct store_out out;        /* the outbox row in flight; id 0 when none */
	struct eph_job *eph;
	size_t neph;
	bool apply_failed;
	const struct mx_event *cur;  /* the event being dispatched, for send() */
	const struct event *cur_ev;
	int64_t sync_arrived_us;     /* when the last batch arrived (bench figures) */
	int64_t first_reply_id;      /* the first answer that batch queued, or 0 */
	uint64_t rnd;
	int64_t history_before_ms;
	bool warned_encrypted;
	/* end-to-end encryption */
	struct e2ee *e2ee;           /* NULL with encryption = no, or until logged in */
	char *pickle_key;
	size_t pickle_key_len;
	bool full_state;             /* this sync starts over without since, to learn every member */
	bool seal_waiting;           /* the send lane waits for keys to be shared */
	int64_t sync_sent_ms;        /* when the sync in flight was sent (stale one-time key counts) */
	struct store_gap gap;        /* the gap whose page is in flight */
	unsigned since_refusals;     /* 400s in a row to a sync with since */
	bool since_dropped;          /* ... so this sync goes without it; the store still has it */
};

struct apply {
	struct matrix *m;
	bool initial;                /* first sync after a fresh login: mark history seen */
	int64_t now_ms, oldest_ms;
	struct room *room;
	size_t answered, old, gaps;
	int64_t latest_ms;           /* a gap page: its newest message */
	struct buf text;
};

static void lane_kick(struct matrix *m, enum lane_id id);
static void run_auth(struct matrix *m);
static void run_sync(struct matrix *m);
static void run_out(struct matrix *m);
static void run_eph(struct matrix *m);
static void run_gap(struct matrix *m);
static void run_keys(struct matrix *m);
static void run_query(struct matrix *m);
static void run_claim(struct matrix *m);
static void run_todevice(struct matrix *m);

static const struct {
	const char *name;
	void (*run)(struct matrix *m);
	enum e2ee_kind kind;          /* crypto lanes */
} lane_info[LANE_COUNT] = {
	[LANE_AUTH] = { "login", run_auth, 0 },
	[LANE_SYNC] = { "sync", run_sync, 0 },
	[LANE_OUT] = { "send", run_out, 0 },
	[LANE_EPH] = { "typing/receipts", run_eph, 0 },
	[LANE_GAP] = { "missed messages", run_gap, 0 },
	[LANE_KEYS] = { "key upload", run_keys, E2EE_KEYS },
	[LANE_QUERY] = { "key query", run_query, E2EE_QUERY },
	[LANE_CLAIM] = { "key claim", run_claim, E2EE_CLAIM },
	[LANE_TODEVICE] = { "to-device send", run_todevice, E2EE_TO_DEVICE },
};

static int64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* xorshift64*: jitter only, seeded from getrandom. */
static double
rnd01(struct matrix *m)
{
	uint64_t x = m->rnd;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	m->rnd = x;
	return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static void
random_hex(char *out, size_t bytes)
{
	unsigned char r[32];
	if (bytes > sizeof r)
		bytes = sizeof r;
	size_t got = 0;
	while (got < bytes) {
		ssize_t n = getrandom(r + got, bytes - got, 0);
		if (n > 0)
			got += (size_t)n;
	}
	for (size_t i = 0; i < bytes; i++)
		sprintf(out + 2 * i, "%02x", r[i]);
}

/*
 * Test-only: KNEEBOT_CRASH_POINT=name[:n] kills the process at the n-th pass
 * through that point (default the first), so tests can prove what a crash
 * exactly there leaves behind.  Unset in production: one getenv per call.
 */
static void
crash_point(const char *name)
{
	static long passes;
	const char *want = getenv("KNEEBOT_CRASH_POINT");
	size_t n = strlen(name);
	if (!want || strncmp(want, name, n) != 0 || (want[n] && want[n] != ':'))
		return;
	long at = want[n] == ':' ? atol(want + n + 1) : 1;
	if (++passes >= at) {
		log_warnx("test crash point %s reached: SIGKILL", name);
		raise(SIGKILL);
	}
}

/* ---------- lanes: requests, backoff, login pauses ---------- */

static void auth_lost(struct matrix *m, const struct mx_error *e);
static void crypto_start(struct matrix *m);

static void
on_response(const struct http_resp *resp, void *arg)
{
	struct lane *l = arg;
	struct matrix *m = l->m;
	l->req = NULL;
	struct mx_error e;
	matrix_classify(resp->status, resp->body, resp->len, resp->retry_after_ms, &e);
	if (resp->error)
		snprintf(e.error, sizeof e.error, "%s", resp->error);
	if (e.outcome == MX_AUTH && l->token_gen != m->token_gen) {
		/*
		 * Sent with a token we have since replaced (a re-login after a soft
		 * logout drops the device's old tokens, so the server no longer even
		 * calls it soft): not a logout, just repeat it with the current one.
		 */
		log_debug("%s: %s answered 401 to an earlier token; repeating it", m->t->name, lane_info[l->id].name);
		lane_kick(m, l->id);
		return;
	}
	if (e.outcome == MX_AUTH && !(l->id == LANE_AUTH && m->auth == AUTH_LOGIN)) {
		auth_lost(m, &e);
		lane_kick(m, l->id);   /* waits for the login, then repeats its request */
		return;
	}
	if (e.outcome == MX_OK)
		l->failures = 0;
	l->done(m, resp, &e);
}

static void
lane_request(struct matrix *m, enum lane_id id, enum http_method method, const char *path,
	const char *body, long timeout_ms, size_t max_bytes, lane_done done)
{
	struct lane *l = &m->lanes[id];
	struct buf url;
	buf_init(&url);
	buf_printf(&url, "%s%s%s", m->hs, strncmp(path, "/_matrix", 8) == 0 ? "" : API, path);
	bool anonymous = id == LANE_AUTH && (m->auth == AUTH_FLOWS || m->auth == AUTH_LOGIN);
	struct http_opts o = {
		.method = method, .url = url.s, .bearer = anonymous ? NULL : m->token,
		.body = body, .body_len = body ? strlen(body) : 0, .timeout_ms = timeout_ms, .max_bytes = max_bytes,
	};
	l->done = done;
	l->token_gen = m->token_gen;
	l->req = http_start(m->http, &o, on_response, l);
	buf_free(&url);
}

static int64_t
on_lane_timer(struct loop *loop, void *arg)
{
	(void)loop;
	struct lane *l = arg;
	l->timer = 0;
	lane_kick(l->m, l->id);
	return LOOP_STOP;
}

static void
lane_wait(struct matrix *m, enum lane_id id, int64_t ms)
{
	struct lane *l = &m->lanes[id];
	if (l->timer)
		loop_timer_del(m->t->loop, l->timer);
	l->timer = loop_timer_add(m->t->loop, ms, on_lane_timer, l);
}

/* Waits as the error says: a 429 its Retry-After, anything else the next backoff step. */
static void
lane_retry(struct matrix *m, enum lane_id id, const struct mx_error *e)
{
	struct lane *l = &m->lanes[id];
	/* a 429 says exactly how long; it does not make the next network error wait longer */
	if (e->outcome != MX_RATE)
		l->failures++;
	int64_t ms = e->outcome == MX_RATE ? e->retry_ms : matrix_backoff_ms(l->failures, rnd01(m));
	if (e->outcome == MX_RATE)
		log_info("%s: %s rate-limited by the server; waiting %lld ms", m->t->name, lane_info[id].name, (long long)ms);
	else if (e->status == 0)
		log_warnx("%s: %s failed (%s); retrying in %lld ms", m->t->name, lane_info[id].name, e->error, (long long)ms);
	else
		log_warnx("%s: %s failed (HTTP %ld %s%s%s); retrying in %lld ms", m->t->name, lane_info[id].name, e->status,
			e->errcode, *e->errcode ? ": " : "", e->error, (long long)ms);
	lane_wait(m, id, ms);
}

static void
lane_kick(struct matrix *m, enum lane_id id)
{
	struct lane *l = &m->lanes[id];
	if (m->stopping || l->req || l->timer || !m->store)
		return;
	if (id != LANE_AUTH && m->auth != AUTH_READY)
		return;
	lane_info[id].run(m);
}

static void
kick_all(struct matrix *m)
{
	for (int i = LANE_SYNC; i < LANE_COUNT; i++)
		lane_kick(m, (enum lane_id)i);
}

static void
path_add(struct buf *b, const char *segment)
{
	buf_addc(b, '/');
	http_escape(b, segment);
}

/* ---------- login ---------- */

static void
set_str(char **dst, const char *s)
{
	free(*dst);
	*dst = s ? xstrdup(s) : NULL;
}

/* Every change of token passes here; the generation tells a stale 401 from a real one. */
static void
forget_token(struct matrix *m)
{
	m->token_gen++;
	if (m->token) {
		explicit_bzero(m->token, strlen(m->token));
		free(m->token);
		m->token = NULL;
	}
}

static int
read_secret(struct matrix *m, const char *key, char **out)
{
	struct buf err;
	buf_init(&err);
	size_t len;
	int rv = config_read_secret(m->t->config, conf_get(m->t->conf, key), out, &len, &err);
	if (rv < 0)
		log_err("%s: %s", m->t->name, err.s);
	buf_free(&err);
	return rv;
}

/* The token of access_token_file: re-read on every attempt, so a new one is picked up. */
static int
load_token_file(struct matrix *m)
{
	char *tok;
	if (read_secret(m, "access_token_file", &tok) < 0)
		return -1;
	forget_token(m);
	m->token = tok;
	return 0;
}

static void
auth_step(struct matrix *m, enum auth_step step)
{
	m->auth = step;
	lane_kick(m, LANE_AUTH);
}

/* Nothing an operator can fix quickly: try again each minute, never in a tight loop. */
static void
auth_retry_slowly(struct matrix *m, enum auth_step step)
{
	m->auth = step;
	m->lanes[LANE_AUTH].failures = 16;
	lane_wait(m, LANE_AUTH, matrix_backoff_ms(16, rnd01(m)));
}

/* Forgets the token (and with new_device the device id: the server then makes a new one) and logs in. */
static void
login_again(struct matrix *m, bool new_device)
{
	if (new_device) {
		set_str(&m->device_id, NULL);
		store_meta_set(m->store, "device_id", NULL);
	}
	forget_token(m);
	store_meta_set(m->store, "access_token", NULL);
	auth_step(m, AUTH_LOGIN);
}

static void
auth_lost(struct matrix *m, const struct mx_error *e)
{
	if (m->auth != AUTH_READY && m->auth != AUTH_WHOAMI && m->auth != AUTH_PROFILE)
		return;   /* already logging in */
	if (m->token_mode) {
		log_err("%s: the access token was rejected (%s%s): put a valid one in access_token_file; "
			"checking it again every minute", m->t->name, e->errcode, e->soft_logout ? ", soft logout" : "");
		auth_retry_slowly(m, AUTH_WHOAMI);
		return;
	}
	if (e->soft_logout)
		log_notice("%s: session expired (soft logout): logging in again as device %s", m->t->name,
			m->device_id ? m->device_id : "(new)");
	else
		log_warnx("%s: LOGGED OUT by the server (%s): logging in as a NEW device; "
			"encrypted history for the old device is lost", m->t->name, e->errcode);
	login_again(m, !e->soft_logout);
}

static void
on_ready(struct matrix *m)
{
	m->auth = AUTH_READY;
	if (!m->e2ee || !m->device_id || strcmp(e2ee_device_id(m->e2ee), m->device_id) != 0)
		crypto_start(m);
	if (m->auth != AUTH_READY)
		return;   /* a lost pickle key: logging in as a new device first */
	log_info("%s: logged in as %s (device %s)%s", m->t->name, m->user_id, m->device_id ? m->device_id : "?",
		m->since ? "" : "; first sync: existing history will not be answered");
	if (!m->ready_once) {
		m->ready_once = true;
		char **v;
		size_t n = strv_split(conf_get(m->t->conf, "rooms"), &v);
		struct buf err;
		buf_init(&err);
		for (size_t i = 0; i < n; i++)
			if (m->t->ops->join(m->t, v[i], &err) < 0)
				log_warnx("%s: cannot join %s: %s", m->t->name, v[i], err.s);
		buf_free(&err);
		strv_free(v, n);
	}
	kick_all(m);
}

static void
done_profile(struct matrix *m, const struct http_resp *resp, const struct mx_error *e)
{
	if (e->outcome == MX_OK) {
		cJSON *j = cJSON_ParseWithLength(resp->body, resp->len);
		const char *dn = jstr(j, "displayname");
		set_str(&m->displayname, dn && *dn ? dn : NULL);
		cJSON_Delete(j);
	}
	on_ready(m);   /* a display name is a nicety: never wait for it */
}

static void
save_identity(struct matrix *m)
{
	store_meta_set(m->store, "homeserver", m->hs);
	store_meta_set(m->store, "user_id", m->user_id);
	store_meta_set(m->store, "device_id", m->device_id);
	if (!m->token_mode)
		store_meta_set(m->store, "access_token", m->token);
}

/* The server said who we are: remember it, then fetch the display name. */
static void
identified(struct matrix *m, const char *device_id)
{
	if (device_id)
		set_str(&m->device_id, device_id);
	save_identity(m);
	auth_step(m, AUTH_PROFILE);
}

/* The JSON of a 2xx answer (an empty object if it is not JSON); else the retry is scheduled and NULL. */
static cJSON *
answer_json(struct matrix *m, enum lane_id id, const struct http_resp *resp, const struct mx_error *e)
{
	if (e->outcome != MX_OK) {
		lane_retry(m, id, e);
		return NULL;
	}
	cJSON *j = cJSON_ParseWithLength(resp->body, resp->len);
	return j ? j : cJSON_CreateObject();
}

static void
done_whoami(struct matrix *m, const struct http_resp *resp, const struct mx_error *e)
{
	cJSON *j = answer_json(m, LANE_AUTH, resp, e);
	if (!j)
		return;
	const char *user = jstr(j, "user_id"), *dev = jstr(j, "device_id");
	if (!user || strcmp(user, m->user_id) != 0) {
		log_err("%s: the access token belongs to %s, not to user_id %s", m->t->name, user ? user : "nobody", m->user_id);
		cJSON_Delete(j);
		if (m->token_mode)
			auth_retry_slowly(m, AUTH_WHOAMI);
		else
			auth_step(m, AUTH_LOGIN);
		return;
	}
	if (dev && m->device_id && strcmp(dev, m->device_id) != 0)
		log_warnx("%s: the token is for device %s, the store knew %s: using %s", m->t->name, dev, m->device_id, dev);
	identified(m, dev);
	cJSON_Delete(j);
}

static void
done_flows(struct matrix *m, const struct http_resp *resp, const struct mx_error *e)
{
	cJSON *j = answer_json(m, LANE_AUTH, resp, e);
	if (!j)
		return;
	bool password = false;
	const cJSON *f;
	cJSON_ArrayForEach(f, jarr(j, "flows"))
		password |= jstr(f, "type") && strcmp(jstr(f, "type"), "m.login.password") == 0;
	cJSON_Delete(j);
	if (!password) {
		log_err("%s: %s offers no password login: use access_token_file instead", m->t->name, m->hs);
		auth_retry_slowly(m, AUTH_FLOWS);
		return;
	}
	auth_step(m, AUTH_LOGIN);
}

static void
done_login(struct matrix *m, const struct http_resp *resp, const struct mx_error *e)
{
	if (e->outcome == MX_FAIL || e->outcome == MX_AUTH) {
		log_err("%s: login as %s refused (%ld %s: %s): check password_file; trying again in a minute",
			m->t->name, m->user_id, e->status, e->errcode, e->error);
		auth_retry_slowly(m, AUTH_LOGIN);
		return;
	}
	if (e->outcome != MX_OK) {
		lane_retry(m, LANE_AUTH, e);
		return;
	}
	cJSON *j = cJSON_ParseWithLength(resp->body, resp->len);
	const char *user = jstr(j, "user_id"), *tok = jstr(j, "access_token"), *dev = jstr(j, "device_id");
	if (!tok || !user || strcmp(user, m->user_id) != 0) {
		log_err("%s: login answer without a token for %s", m->t->name, m->user_id);
		cJSON_Delete(j);
		auth_retry_slowly(m, AUTH_LOGIN);
		return;
	}
	forget_token(m);
	m->token = xstrdup(tok);
	explicit_bzero(((cJSON *)jget(j, "access_token"))->valuestring, strlen(tok));
	identified(m, dev);
	cJSON_Delete(j);
}

static void
start_login(struct matrix *m)
{
	char *pw;
	if (read_secret(m, "password_file", &pw) < 0) {
		auth_retry_slowly(m, AUTH_LOGIN);
		return;
	}
	const char *dn = conf_get(m->t->conf, "device_name");
	struct buf b;
	buf_init(&b);
	buf_adds(&b, "{\"type\":\"m.login.password\",\"identifier\":{\"type\":\"m.id.user\",\"user\":\"");
	buf_add_json(&b, m->user_id, strlen(m->user_id));
	buf_adds(&b, "\"},\"password\":\"");
	buf_add_json(&b, pw, strlen(pw));
	buf_adds(&b, "\",\"initial_device_display_name\":\"");
	dn = dn ? dn : "kneebot";
	buf_add_json(&b, dn, strlen(dn));
	buf_adds(&b, "\"");
	if (m->device_id) {
		/* the same device keeps its keys and its place in the to-device stream */
		buf_adds(&b, ",\"device_id\":\"");
		buf_add_json(&b, m->device_id, strlen(m->device_id));
		buf_adds(&b, "\"");
	}
	buf_adds(&b, "}");
	lane_request(m, LANE_AUTH, HTTP_POST, "/login", b.s, REQUEST_TIMEOUT_MS, 0, done_login);
	explicit_bzero(b.s, b.len);
	buf_free(&b);
	explicit_bzero(pw, strlen(pw));
	free(pw);
}

static void
run_auth(struct matrix *m)
{
	struct buf p;
	buf_init(&p);
	switch (m->auth) {
	case AUTH_WHOAMI:
		if (m->token_mode && load_token_file(m) < 0) {
			auth_retry_slowly(m, AUTH_WHOAMI);
			break;
		}
		lane_request(m, LANE_AUTH, HTTP_GET, "/account/whoami", NULL, REQUEST_TIMEOUT_MS, 0, done_whoami);
		break;
	case AUTH_FLOWS:
		lane_request(m, LANE_AUTH, HTTP_GET, "/login", NULL, REQUEST_TIMEOUT_MS, 0, done_flows);
		break;
	case AUTH_LOGIN:
		start_login(m);
		break;
	case AUTH_PROFILE:
		buf_adds(&p, "/profile");
		path_add(&p, m->user_id);
		buf_adds(&p, "/displayname");
		lane_request(m, LANE_AUTH, HTTP_GET, p.s, NULL, REQUEST_TIMEOUT_MS, 0, done_profile);
		break;
	case AUTH_READY:
		break;
	}
	buf_free(&p);
}

/* ---------- rooms ---------- */

static struct room *
room_get(struct matrix *m, const char *id, bool create)
{
	for (size_t i = 0; i < m->nrooms; i++)
		if (strcmp(m->rooms[i].id, id) == 0)
			return &m->rooms[i];
	if (!create)
		return NULL;
	m->rooms = xrealloc(m->rooms, (m->nrooms + 1) * sizeof *m->rooms);
	struct room *r = &m->rooms[m->nrooms++];
	memset(r, 0, sizeof *r);
	r->id = xstrdup(id);
	r->joined = r->invited = -1;
	return r;
}

static void
rooms_clear(struct matrix *m)
{
	for (size_t i = 0; i < m->nrooms; i++)
		free(m->rooms[i].id);
	free(m->rooms);
	m->rooms = NULL;
	m->nrooms = 0;
}

static int
load_room(const struct store_room *sr, void *arg)
{
	struct room *r = room_get(arg, sr->room_id, true);
	snprintf(r->membership, sizeof r->membership, "%s", sr->membership);
	r->joined = sr->joined;
	r->invited = sr->invited;
	r->encrypted = sr->encrypted;
	return 0;
}

/* The store is the truth: after a rolled-back batch the cache is reloaded from it. */
static void
rooms_load(struct matrix *m)
{
	rooms_clear(m);
	store_room_each(m->store, load_room, m);
}

static int
room_save(struct matrix *m, struct room *r)
{
	if (!r->dirty)
		return 0;
	r->dirty = false;
	if (strcmp(r->membership, "leave") == 0)
		return store_room_delete(m->store, r->id);
	struct store_room sr = { r->id, r->membership, r->joined, r->invited, r->encrypted };
	return store_room_put(m->store, &sr);
}

static void
room_set(struct room *r, const char *membership)
{
	if (strcmp(r->membership, membership) != 0) {
		snprintf(r->membership, sizeof r->membership, "%s", membership);
		r->dirty = true;
	}
}

static bool
room_is_dm(const struct room *r)
{
	return r->joined >= 0 && r->joined + (r->invited > 0 ? r->invited : 0) == 2;
}

/* ---------- the outbox: queued inside the batch transaction, sent after COMMIT ---------- */

static int
queue_out(struct matrix *m, const char *kind, const char *room, const char *type, const char *content,
	const char *reply_to)
{
	char txn[40] = "kb";
	random_hex(txn + 2, 16);
	struct store_out o = {
		.txn_id = txn, .kind = (char *)kind, .room_id = (char *)room, .event_type = (char *)type,
		.content = (char *)content, .reply_to = (char *)reply_to, .created_ms = wall_ms(),
	};
	bool own_tx = !store_in_tx(m->store);
	if (own_tx && store_begin(m->store) < 0)
		return -1;
	if (store_out_add(m->store, &o) < 0) {
		m->apply_failed |= !own_tx;   /* the batch is replayed rather than lose this */
		if (own_tx)
			store_rollback(m->store);
		return -1;
	}
	if (own_tx) {
		if (store_commit(m->store) < 0)
			return -1;
		lane_kick(m, LANE_OUT);
	} else if (!m->first_reply_id && strcmp(kind, "send") == 0) {
		m->first_reply_id = o.id;
	}
	return 0;
}

/* ---------- end-to-end encryption: the three hooks ---------- */

/*
 * Every room event of a joined room passes here before anything else looks
 * at it.  Plain events come back as they are; m.room.encrypted is decrypted
 * into *plain (borrowing from *tree, which the caller frees) with the
 * replay, room and sender checks, or parked until its key arrives (answer:
 * whether it will be answered then).  Runs inside the batch transaction.
 */
static enum incoming
incoming_event(struct matrix *m, struct room *room, const struct mx_event *ev, bool answer, struct mx_event *plain,
	cJSON **tree)
{
	*tree = NULL;
	if (strcmp(ev->type, "m.room.encrypted") != 0) {
		*plain = *ev;
		return IN_PLAIN;
	}
	if (!m->e2ee) {
		if (!m->warned_encrypted)
			log_notice("%s: encrypted messages in %s are not read: %s", m->t->name, room->id,
				m->set.encryption ? "end-to-end encryption could not start (see above)" : "encryption = no");
		m->warned_encrypted = true;
		return IN_DROP;
	}
	int64_t t0 = loop_now_us();
	switch (e2ee_decrypt(m->e2ee, room->id, ev, answer, wall_ms(), tree)) {
	case E2EE_IN_PLAIN:
		*plain = *ev;
		return IN_PLAIN;
	case E2EE_IN_OK:
		if (!matrix_event_parse(*tree, false, plain)) {
			cJSON_Delete(*tree);
			*tree = NULL;
			return IN_DROP;
		}
		e2ee_note_decrypt(m->e2ee, ev->event_id, t0);
		return IN_PLAIN;
	case E2EE_IN_WAIT:
		return IN_WAIT;
	case E2EE_IN_ERROR:
		m->apply_failed = true;   /* the batch is replayed */
		return IN_WAIT;
	case E2EE_IN_DROP:
		break;
	}
	return IN_DROP;
}

/*
 * Every outgoing room message passes here just before its PUT.  In an
 * encrypted room e2ee_seal() shares the room key where needed, encrypts,
 * stores the ciphertext under the same txnId and commits before it returns
 * SEAL_READY, so a retry resends the same ciphertext; SEAL_WAIT while keys
 * are being fetched or shared.  Never plaintext into an encrypted room.
 */
static enum seal
outgoing_seal(struct matrix *m, struct store_out *o)
{
	struct room *r = room_get(m, o->room_id, false);
	if (!r || !r->encrypted || o->sealed)
		return SEAL_READY;
	if (!m->e2ee) {
		log_warnx("%s: not answering in encrypted room %s: %s", m->t->name, o->room_id,
			m->set.encryption ? "end-to-end encryption could not start" : "encryption = no");
		return SEAL_DROP;
	}
	static const enum seal map[] = {
		[E2EE_SEAL_READY] = SEAL_READY, [E2EE_SEAL_WAIT] = SEAL_WAIT, [E2EE_SEAL_DROP] = SEAL_DROP,
	};
	return map[e2ee_seal(m->e2ee, o, wall_ms())];
}

/* To-device events, device list changes and key counts of one batch, inside its transaction. */
static void
crypto_sync(struct matrix *m, const struct mx_crypto *c)
{
	if (!m->e2ee) {
		if (c->n_to_device)
			log_debug("%s: %zu to-device events ignored (no encryption)", m->t->name, c->n_to_device);
		return;
	}
	if (e2ee_sync(m->e2ee, c, m->sync_sent_ms, wall_ms()) < 0)
		m->apply_failed = true;
}

/* ---------- end-to-end encryption: keys, device, requests ---------- */

static int
crypto_password(void *arg, char **out)
{
	struct matrix *m = arg;
	if (m->token_mode || !conf_get(m->t->conf, "password_file"))
		return -1;
	return read_secret(m, "password_file", out);
}

/* A plain-language m.notice from the encryption layer (keys withheld), sent like an answer. */
static void
crypto_notice(void *arg, const char *room_id, const char *mention, const char *text)
{
	struct matrix *m = arg;
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "msgtype", "m.notice");
	cJSON_AddStringToObject(c, "body", text);
	cJSON *ids = cJSON_AddArrayToObject(cJSON_AddObjectToObject(c, "m.mentions"), "user_ids");
	if (mention)
		cJSON_AddItemToArray(ids, cJSON_CreateString(mention));
	char *s = cJSON_PrintUnformatted(c);
	cJSON_Delete(c);
	if (queue_out(m, "send", room_id, "m.room.message", s, NULL) < 0)
		log_warnx("%s: could not queue a notice for %s", m->t->name, room_id);
	free(s);
}

/* Creates the pickle key file (mode 0600, 32 random bytes as hex) when it does not exist yet. */
static int
create_pickle_key(struct matrix *m, const char *path, struct buf *err)
{
	char *full = config_secret_path(m->t->config, path);
	int fd = open(full, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		free(full);
		return 0;
	}
	if (fd < 0) {
		buf_printf(err, "cannot create the pickle key file %s: %s", full, strerror(errno));
		free(full);
		return -1;
	}
	char hex[2 * 32 + 2];
	random_hex(hex, 32);
	strcat(hex, "\n");
	ssize_t w = write(fd, hex, strlen(hex));
	explicit_bzero(hex, sizeof hex);
	int rv = w == (ssize_t)(2 * 32 + 1) && fsync(fd) == 0 ? 0 : -1;
	if (close(fd) < 0 || rv < 0) {
		buf_printf(err, "cannot write the pickle key file %s: %s", full, strerror(errno));
		unlink(full);
		free(full);
		return -1;
	}
	log_notice("%s: created the pickle key %s (mode 0600): keep it with the state directory, and never "
		"restore either from a backup", m->t->name, full);
	free(full);
	return 0;
}

static int
load_pickle_key(struct matrix *m, struct buf *err)
{
	const char *path = m->set.pickle_key_file;
	if (!path) {
		buf_printf(err, "encryption = yes needs pickle_key_file, the key that protects the encryption state "
			"on disk (or set encryption = no)");
		return -1;
	}
	if (create_pickle_key(m, path, err) < 0)
		return -1;
	return matrix_pickle_key_read(m->t->config, path, &m->pickle_key, &m->pickle_key_len, err);
}

static void
forget_pickle_key(struct matrix *m)
{
	if (m->pickle_key) {
		explicit_bzero(m->pickle_key, m->pickle_key_len);
		free(m->pickle_key);
	}
	m->pickle_key = NULL;
	m->pickle_key_len = 0;
}

/* Stops the crypto lanes: their requests belong to the engine that is going away. */
static void
crypto_stop(struct matrix *m)
{
	for (int i = LANE_KEYS; i < LANE_COUNT; i++) {
		struct lane *l = &m->lanes[i];
		if (l->req)
			http_cancel(m->http, l->req);
		if (l->timer)
			loop_timer_del(m->t->loop, l->timer);
		l->req = NULL;
		l->timer = 0;
		l->failures = 0;
	}
	e2ee_free(m->e2ee);
	m->e2ee = NULL;
}

/* Lost or changed pickle key: the old device's keys are unreadable, so a new device starts over. */
static void
crypto_start_over(struct matrix *m, const char *why)
{
	if (m->token_mode) {
		log_err("%s: %s: the pickle key was lost or changed. An access token is tied to its device, so the "
			"bot cannot start a new one: give the old key back, or use password_file. Encrypted rooms are "
			"not read meanwhile", m->t->name, why);
		return;
	}
	log_err("%s: %s (pickle_key_file lost or changed?): all encryption state is forgotten and the bot logs "
		"in as a NEW device; members' clients will have to trust it again", m->t->name, why);
	if (e2ee_forget_all(m->store) == 0)
		login_again(m, true);
}

/* Opens the encryption state of our (possibly new) device; logs its fingerprint. */
static void
crypto_start(struct matrix *m)
{
	if (!m->set.encryption || !m->pickle_key || !m->device_id)
		return;
	if (m->e2ee)
		crypto_stop(m);
	struct e2ee_config c = {
		.name = m->t->name, .user_id = m->user_id, .device_id = m->device_id,
		.key = { m->pickle_key, m->pickle_key_len }, .require_cross_signed = m->set.require_cross_signed,
		.hooks = { .arg = m, .password = crypto_password, .notice = crypto_notice,
			.crash_point = crash_point },
	};
	struct buf err, fp;
	buf_init(&err);
	buf_init(&fp);
	int rc = e2ee_open(m->store, &c, wall_ms(), &m->e2ee, &err);
	if (rc == E2EE_OPEN_BAD_KEY) {
		crypto_start_over(m, err.s);
	} else if (rc < 0) {
		log_err("%s: end-to-end encryption cannot start: %s; encrypted rooms are not read", m->t->name, err.s);
	} else {
		e2ee_fingerprint(m->e2ee, &fp);
		log_notice("%s: encryption on: device %s, ed25519 fingerprint %s", m->t->name, m->device_id, fp.s);
	}
	buf_free(&err);
	buf_free(&fp);
}

/* The send lane waits for keys: let it try again now rather than at its next poll. */
static void
wake_out(struct matrix *m)
{
	struct lane *l = &m->lanes[LANE_OUT];
	if (m->seal_waiting && l->timer && !l->req) {
		loop_timer_del(m->t->loop, l->timer);
		l->timer = 0;
	}
	lane_kick(m, LANE_OUT);
}

static void
kick_crypto(struct matrix *m)
{
	for (int i = LANE_KEYS; i < LANE_COUNT; i++)
		lane_kick(m, (enum lane_id)i);
}

static void retry_parked(struct matrix *m);

static void
done_crypto(struct matrix *m, enum lane_id id, const struct http_resp *resp, const struct mx_error *e)
{
	if (!m->e2ee)
		return;
	if (e->outcome == MX_RETRY || e->outcome == MX_RATE) {
		lane_retry(m, id, e);
		return;
	}
	if (id == LANE_TODEVICE)
		crash_point("todevice-after-put");
	if (e2ee_done(m->e2ee, lane_info[id].kind, e->status, resp->body, resp->len, wall_ms()) == E2EE_DONE_BACKOFF) {
		struct mx_error b = { .outcome = MX_RETRY, .status = e->status };
		snprintf(b.error, sizeof b.error, "%s", *e->errcode ? e->errcode : "answer not applied");
		lane_retry(m, id, &b);
	}
	if (id == LANE_QUERY)
		retry_parked(m);   /* senders' devices are known now */
	kick_crypto(m);
	wake_out(m);
}

static void done_keys(struct matrix *m, const struct http_resp *r, const struct mx_error *e) { done_crypto(m, LANE_KEYS, r, e); }
static void done_query(struct matrix *m, const struct http_resp *r, const struct mx_error *e) { done_crypto(m, LANE_QUERY, r, e); }
static void done_claim(struct matrix *m, const struct http_resp *r, const struct mx_error *e) { done_crypto(m, LANE_CLAIM, r, e); }
static void done_todevice(struct matrix *m, const struct http_resp *r, const struct mx_error *e) { done_crypto(m, LANE_TODEVICE, r, e); }

static void
run_crypto(struct matrix *m, enum lane_id id, lane_done done)
{
	if (!m->e2ee)
		return;
	struct e2ee_req r;
	e2ee_req_init(&r);
	int rc = e2ee_next(m->e2ee, lane_info[id].kind, wall_ms(), &r);
	if (rc == 1) {
		lane_request(m, id, r.put ? HTTP_PUT : HTTP_POST, r.path.s, r.body.s, REQUEST_TIMEOUT_MS, 0, done);
	} else if (rc < 0) {
		struct mx_error e = { .outcome = MX_RETRY };
		snprintf(e.error, sizeof e.error, "cannot prepare the request");
		lane_retry(m, id, &e);
	}
	e2ee_req_free(&r);
}

static void run_keys(struct matrix *m) { run_crypto(m, LANE_KEYS, done_keys); }
static void run_query(struct matrix *m) { run_crypto(m, LANE_QUERY, done_query); }
static void run_claim(struct matrix *m) { run_crypto(m, LANE_CLAIM, done_claim); }
static void run_todevice(struct matrix *m) { run_crypto(m, LANE_TODEVICE, done_todevice); }

/* ---------- applying a sync batch ---------- */

static bool
inviter_allowed(struct matrix *m, const char *inviter)
{
	if (!m->set.auto_join || !inviter)
		return false;
	char **v = m->set.join_from;
	size_t n = m->set.njoin_from;
	bool ok = n == 0;
	const char *server = strchr(inviter, ':');
	for (size_t i = 0; i < n && !ok; i++)
		ok = v[i][0] == '@' ? glob_match(v[i], inviter, false) : server && glob_match(v[i], server + 1, true);
	return ok;
}

static void on_ready_event(void *arg, const char *room_id, const cJSON *event, bool answer);

static void
on_crypto(void *arg, const struct mx_crypto *c)
{
	struct apply *a = arg;
	crypto_sync(a->m, c);
	/* keys that came in this batch: their waiting events are dealt with before its timeline */
	if (a->m->e2ee && e2ee_ready(a->m->e2ee, on_ready_event, a) < 0)
		a->m->apply_failed = true;
}

static void
on_room(void *arg, const struct mx_room *mr)
{
	struct apply *a = arg;
	struct room *r = room_get(a->m, mr->id, true);
	a->room = r;
	r->seen = true;
	r->join_at = mr->section == MX_JOIN ? matrix_own_join_index(mr->timeline, a->m->user_id) : -1;
	r->at = 0;
	r->inviter = NULL;
	r->kicked = false;
	if (mr->joined >= 0 && mr->joined != r->joined)
		r->joined = mr->joined, r->dirty = true;
	if (mr->invited >= 0 && mr->invited != r->invited)
		r->invited = mr->invited, r->dirty = true;
}

/* Members and encryption settings of a joined room, for the room keys' recipients and rotation. */
static void
crypto_state(struct apply *a, struct room *r, const struct mx_event *ev)
{
	struct matrix *m = a->m;
	int rc = 0;
	if (!m->e2ee)
		return;
	if (strcmp(ev->type, "m.room.encryption") == 0)
		rc = e2ee_room_encryption(m->e2ee, r->id, ev->content);
	else if (strcmp(ev->type, "m.room.member") == 0)
		rc = e2ee_member(m->e2ee, r->id, ev->state_key, ev->membership, r->encrypted);
	if (rc < 0)
		m->apply_failed = true;
}

static void
state_event(struct apply *a, struct room *r, const struct mx_event *ev)
{
	struct matrix *m = a->m;
	if (strcmp(ev->type, "m.room.encryption") == 0 && !r->encrypted) {
		r->encrypted = r->dirty = true;   /* an encrypted room stays encrypted */
		return;
	}
	if (strcmp(ev->type, "m.room.member") != 0 || !ev->membership || strcmp(ev->state_key, m->user_id) != 0)
		return;
	if (strcmp(ev->membership, "invite") == 0)
		r->inviter = ev->sender;
	else if (strcmp(ev->membership, "leave") == 0 || strcmp(ev->membership, "ban") == 0)
		r->kicked = true;
	if (strcmp(ev->membership, "join") == 0 && ev->displayname && *ev->displayname
		&& (!m->displayname || strcmp(m->displayname, ev->displayname) != 0))
		set_str(&m->displayname, ev->displayname);
}

/* Why a message is history the bot was not there for (never answered), or NULL. */
static const char *
history(struct apply *a, struct room *r, const struct mx_event *ev)
{
	if (a->initial)
		return "history at first start";
	if (ev->ts_ms && ev->ts_ms < a->m->history_before_ms)
		return "older than the bot's first start";
	if (r->at < r->join_at)
		return "sent before the bot joined";
	return NULL;
}

/* Why an otherwise answerable message is not answered any more: missed while down for too long. */
static const char *
too_old(struct apply *a, const struct mx_event *ev)
{
	if (ev->ts_ms && ev->ts_ms < a->oldest_ms) {
		a->old++;
		return "older than catch_up_s";
	}
	return NULL;
}

static void
dispatch(struct apply *a, struct room *r, const struct mx_event *ev)
{
	struct matrix *m = a->m;
	const char *names[] = { m->user_id, m->displayname, m->localpart, m->set.nick };
	bool addressed = matrix_event_text(ev, m->user_id, names, sizeof names / sizeof names[0], &a->text);
	if (ev->in_reply_to && store_event_state(m->store, ev->in_reply_to) == STORE_EV_OWN)
		addressed = true;
	struct event e = {
		.transport = m->t, .room = r->id, .sender = ev->sender, .account = ev->sender,
		.id = ev->event_id, .text = a->text.s, .text_len = a->text.len,
		.is_private = room_is_dm(r), .addressed = addressed, .ts_ms = ev->ts_ms,
	};
	m->cur = ev;
	m->cur_ev = &e;
	router_dispatch(m->t->router, &e);
	m->cur = NULL;
	m->cur_ev = NULL;
	a->answered++;
}

/*
 * One timeline event, new or back from waiting for its key (late: judged
 * fresh when it came, so catch_up_s does not apply).  hist: why it is
 * history that is never answered, or NULL.
 */
static void
handle_event(struct apply *a, struct room *r, const struct mx_event *raw, const char *hist, bool late)
{
	struct matrix *m = a->m;
	int seen = store_event_state(m->store, raw->event_id);
	if (seen < 0) {
		m->apply_failed = true;
		return;
	}
	if (seen != STORE_EV_UNKNOWN)
		return;   /* answered (or skipped) before: never twice, never decrypted twice */
	struct mx_event ev;
	cJSON *tree;
	enum incoming in = incoming_event(m, r, raw, hist == NULL, &ev, &tree);
	if (in == IN_WAIT)
		return;
	if (in == IN_DROP || strcmp(ev.type, "m.room.message") != 0) {
		if (in == IN_DROP && store_event_put(m->store, raw->event_id, r->id, STORE_EV_HANDLED,
				raw->ts_ms ? raw->ts_ms : a->now_ms) < 0)
			m->apply_failed = true;
		cJSON_Delete(tree);
		return;
	}
	bool own = strcmp(ev.sender, m->user_id) == 0;
	const char *why = own ? NULL : matrix_event_skip(&ev, m->user_id);
	if (!own && !why)
		why = hist ? hist : late ? NULL : too_old(a, &ev);
	if (own || why)
		log_debug("%s: %s in %s not answered: %s", m->t->name, ev.event_id, r->id, own ? "our own" : why);
	else
		dispatch(a, r, &ev);
	int state = own ? STORE_EV_OWN : STORE_EV_HANDLED;
	if (store_event_put(m->store, ev.event_id, r->id, state, ev.ts_ms ? ev.ts_ms : a->now_ms) < 0)
		m->apply_failed = true;
	cJSON_Delete(tree);
}

static void
timeline_event(struct apply *a, struct room *r, const struct mx_event *raw)
{
	if (raw->event_id && raw->sender)
		handle_event(a, r, raw, history(a, r, raw), false);
}

/* An event that waited for its key (or its sender's device) and can be decrypted now. */
static void
on_ready_event(void *arg, const char *room_id, const cJSON *event, bool answer)
{
	struct apply *a = arg;
	struct room *r = room_get(a->m, room_id, false);
	struct mx_event ev;
	if (!r || strcmp(r->membership, "join") != 0 || !matrix_event_parse(event, false, &ev) || !ev.event_id
		|| !ev.sender)
		return;
	handle_event(a, r, &ev, answer ? NULL : "history when it arrived", true);
}

/* Waiting events whose senders' devices a /keys/query just verified: in a transaction of their own. */
static void
retry_parked(struct matrix *m)
{
	struct apply a = { .m = m, .now_ms = wall_ms() };
	a.oldest_ms = a.now_ms - m->set.catch_up_s * 1000;
	if (!m->e2ee || store_in_tx(m->store) || store_begin(m->store) < 0)
		return;
	buf_init(&a.text);
	m->apply_failed = false;
	if (e2ee_ready(m->e2ee, on_ready_event, &a) < 0 || m->apply_failed || store_commit(m->store) < 0)
		store_rollback(m->store);
	buf_free(&a.text);
	lane_kick(m, LANE_OUT);
}

static void
on_event(void *arg, const struct mx_room *mr, const struct mx_event *ev)
{
	struct apply *a = arg;
	struct room *r = a->room;
	if (ev->state_key)
		state_event(a, r, ev);
	if (ev->state_key && mr->section == MX_JOIN)
		crypto_state(a, r, ev);
	if (mr->section == MX_JOIN && !ev->state && !ev->state_key)
		timeline_event(a, r, ev);
	if (!ev->state)
		r->at++;
}

static void
decide_invite(struct apply *a, struct room *r)
{
	struct matrix *m = a->m;
	if (strcmp(r->membership, "invite") == 0 || strcmp(r->membership, "join") == 0)
		return;   /* decided when it first came */
	room_set(r, "invite");
	bool join = inviter_allowed(m, r->inviter);
	log_info("%s: %s invite to %s from %s", m->t->name, join ? "accepting" : "declining", r->id,
		r->inviter ? r->inviter : "someone unknown");
	queue_out(m, join ? "join" : "leave", r->id, NULL, NULL, NULL);
}

static void
on_room_end(void *arg, const struct mx_room *mr)
{
	struct apply *a = arg;
	struct matrix *m = a->m;
	struct room *r = a->room;
	if (mr->section == MX_INVITE) {
		decide_invite(a, r);
	} else if (mr->section == MX_LEAVE || r->kicked) {
		room_set(r, "leave");
		if (m->e2ee && e2ee_room_left(m->e2ee, r->id) < 0)
			m->apply_failed = true;
	} else {
		/* more happened while we were away than one batch holds: read the rest later, from /messages */
		if (mr->limited && mr->prev_batch && m->since && !a->initial && r->join_at < 0 &&
		    strcmp(r->membership, "join") == 0) {
			if (store_gap_add(m->store, r->id, mr->prev_batch, m->since, a->now_ms) < 0)
				m->apply_failed = true;
			a->gaps++;
		}
		room_set(r, "join");
		if (r->joined == 1 && r->invited <= 0 && !r->leaving) {
			log_info("%s: leaving %s: nobody else is there", m->t->name, r->id);
			r->leaving = true;
			queue_out(m, "leave", r->id, NULL, NULL, NULL);
		}
	}
	if (room_save(m, r) < 0)
		m->apply_failed = true;
	a->room = NULL;
}

static const struct mx_sync_visitor apply_visitor = {
	.crypto = on_crypto, .room = on_room, .event = on_event, .room_end = on_room_end,
};

/* Drops rooms the batch left: the cache keeps only join and invite. */
static void
rooms_compact(struct matrix *m)
{
	for (size_t i = 0; i < m->nrooms;) {
		if (strcmp(m->rooms[i].membership, "leave") == 0) {
			free(m->rooms[i].id);
			m->rooms[i] = m->rooms[--m->nrooms];
		} else {
			i++;
		}
	}
}

/*
 * A sync without since lists every room the bot is in: one it thought it
 * was in and is not named was left while nobody listened, and device lists
 * may have changed unseen.
 */
static int
whole_sync(struct matrix *m)
{
	for (size_t i = 0; i < m->nrooms; i++) {
		struct room *r = &m->rooms[i];
		if (r->seen || strcmp(r->membership, "leave") == 0)
			continue;
		log_info("%s: no longer in %s", m->t->name, r->id);
		room_set(r, "leave");
		if ((m->e2ee && e2ee_room_left(m->e2ee, r->id) < 0) || room_save(m, r) < 0)
			return -1;
	}
	return m->e2ee ? e2ee_outdate_all(m->e2ee) : 0;
}

/* Applies one /sync response in one transaction with its next_batch; -1 leaves everything as it was. */
static int
apply_sync(struct matrix *m, const char *body, size_t len)
{
	int64_t t0 = loop_now_us();
	/* a first sync answers nothing; one without since only to learn every member is no first sync */
	struct apply a = { .m = m, .initial = m->since == NULL && !m->full_state, .now_ms = wall_ms() };
	a.oldest_ms = a.now_ms - m->set.catch_up_s * 1000;
	buf_init(&a.text);
	struct buf nb, err;
	buf_init(&nb);
	buf_init(&err);
	struct mx_sync_stats st;
	int rv = -1;
	if (store_begin(m->store) < 0)
		goto out;
	m->apply_failed = false;
	for (size_t i = 0; i < m->nrooms; i++)
		m->rooms[i].seen = false;
	if (matrix_sync_parse(body, len, &apply_visitor, &a, &nb, &st, &err) < 0) {
		log_warnx("%s: unusable sync response: %s", m->t->name, err.s);
		goto rollback;
	}
	if (!m->since && whole_sync(m) < 0)
		goto rollback;
	if (a.initial && !m->history_before_ms) {
		char ms[32];
		snprintf(ms, sizeof ms, "%lld", (long long)a.now_ms);
		m->history_before_ms = a.now_ms;
		if (store_meta_set(m->store, "history_before_ms", ms) < 0)
			goto rollback;
	}
	if (!m->since && m->set.encryption && store_meta_set(m->store, "members_complete", "1") < 0)
		goto rollback;
	if (m->apply_failed || store_meta_set(m->store, "next_batch", nb.s) < 0)
		goto rollback;
	crash_point("sync-before-commit");
	if (store_commit(m->store) < 0)
		goto reload;
	crash_point("sync-after-commit");
	set_str(&m->since, nb.s);
	m->full_state = false;
	rooms_compact(m);
	if (st.skipped)
		log_info("%s: sync batch had %zu malformed events, skipped", m->t->name, st.skipped);
	if (a.old)
		log_info("%s: %zu missed messages older than catch_up_s not answered", m->t->name, a.old);
	if (a.gaps)
		log_info("%s: %zu rooms had more new messages than one sync holds; reading the rest from the server",
			m->t->name, a.gaps);
	log_debug("%s: sync batch of %zu bytes applied in %lld us: %zu rooms, %zu events, %zu dispatched",
		m->t->name, len, (long long)(loop_now_us() - t0), st.rooms, st.events, a.answered);
	rv = 0;
	goto out;
rollback:
	store_rollback(m->store);
reload:
	rooms_load(m);
out:
	buf_free(&a.text);
	buf_free(&nb);
	buf_free(&err);
	return rv;
}

/*
 * The server keeps refusing our since token (its database restored, the
 * token from another server): without starting over the bot would retry
 * it forever and stay deaf.  It starts over in memory only, as a full sync
 * that still answers what it holds and was not answered yet; the stored
 * token is replaced only when that sync is applied, and comes back if the
 * server refuses that too.
 */
static void
sync_failed(struct matrix *m, const struct mx_error *e)
{
	bool refused = e->outcome == MX_FAIL && e->status == 400 &&
		(strcmp(e->errcode, "M_INVALID_PARAM") == 0 || strcmp(e->errcode, "M_UNKNOWN") == 0);
	if (!refused) {
		m->since_refusals = 0;
		return;
	}
	if (m->since_dropped && !m->since) {
		m->since = store_meta_get(m->store, "next_batch");
		m->since_dropped = m->full_state = false;
		m->since_refusals = 0;
		log_warnx("%s: the server refuses a sync without position too; back to the stored one", m->t->name);
		return;
	}
	if (!m->since || ++m->since_refusals < SINCE_REFUSALS)
		return;
	log_warnx("%s: the server refuses our sync position (HTTP %ld %s: %s); starting over from what it holds now, "
		"so messages beyond that stay unanswered", m->t->name, e->status, e->errcode, e->error);
	set_str(&m->since, NULL);
	m->since_dropped = m->full_state = true;
	m->since_refusals = 0;
}

static void
done_sync(struct matrix *m, const struct http_resp *resp, const struct mx_error *e)
{
	if (e->outcome != MX_OK) {
		sync_failed(m, e);
		lane_retry(m, LANE_SYNC, e);
		return;
	}
	m->since_refusals = 0;
	m->since_dropped = false;
	m->sync_arrived_us = resp->done_us;
	m->first_reply_id = 0;
	if (apply_sync(m, resp->body, resp->len) < 0) {
		struct mx_error bad = { .outcome = MX_RETRY, .status = resp->status };
		snprintf(bad.error, sizeof bad.error, "could not apply the batch");
		lane_retry(m, LANE_SYNC, &bad);
		return;
	}
	m->lanes[LANE_SYNC].failures = 0;
	kick_crypto(m);
	wake_out(m);
	lane_kick(m, LANE_GAP);
	lane_kick(m, LANE_SYNC);
}

static void
run_sync(struct matrix *m)
{
	struct buf p;
	buf_init(&p);
	long timeout = m->since ? SYNC_TIMEOUT_MS : 0;
	buf_adds(&p, "/sync?filter=");
	http_escape(&p, sync_filters[m->set.encryption]);
	m->sync_sent_ms = wall_ms();
	buf_printf(&p, "&timeout=%ld", timeout);
	if (m->since) {
		buf_adds(&p, "&since=");
		http_escape(&p, m->since);
	}
	lane_request(m, LANE_SYNC, HTTP_GET, p.s, NULL, timeout + SYNC_SLACK_MS, MX_MAX_SYNC_BYTES, done_sync);
	buf_free(&p);
}

/* ---------- timeline gaps: what a limited sync left out, read from /messages ---------- */

static void
gap_event(void *arg, const struct mx_room *mr, const struct mx_event *ev)
{
	(void)mr;
	struct apply *a = arg;
	struct room *r = a->room;
	if (ev->state_key || !ev->event_id || !ev->sender)
		return;
	if (ev->ts_ms > a->latest_ms)
		a->latest_ms = ev->ts_ms;
	const char *hist = ev->ts_ms && ev->ts_ms < a->m->history_before_ms ? "older than the bot's first start" : NULL;
	handle_event(a, r, ev, hist, false);
}

/* Ends the gap in flight, in a transaction of its own; -1 when the store would not. */
static int
gap_close(struct matrix *m, const char *why)
{
	log_info("%s: missed messages of %s: %s", m->t->name, m->gap.room_id, why);
	return store_gap_delete(m->store, m->gap.id);
}

/* One page of a gap, its answers and where to go on, in one transaction; -1 leaves everything as it was. */
static int
apply_gap(struct matrix *m, struct room *r, const char *body, size_t len)
{
	struct apply a = { .m = m, .now_ms = wall_ms(), .room = r };
	a.oldest_ms = a.now_ms - m->set.catch_up_s * 1000;
	buf_init(&a.text);
	struct buf end, err;
	buf_init(&end);
	buf_init(&err);
	static const struct mx_sync_visitor visitor = { .event = gap_event };
	int rv = -1;
	r->join_at = -1;
	r->at = 0;
	if (store_begin(m->store) < 0)
		goto out;
	m->apply_failed = false;
	long n = matrix_page_parse(body, len, r->id, &visitor, &a, &end, NULL, &err);
	if (n < 0) {
		store_rollback(m->store);
		log_warnx("%s: unusable page of missed messages: %s", m->t->name, err.s);
		rv = gap_close(m, "the server's answer was unusable; the rest stays unanswered");
		goto out;
	}
	/*
	 * Only a missing end says there is no more: a page can be empty and
	 * still go on (events the server filtered out).  Pages go newest first,
	 * so once the newest message of one is too old, so is the rest.
	 */
	bool done = end.len == 0 || strcmp(end.s, m->gap.from) == 0 || (a.latest_ms && a.latest_ms < a.oldest_ms);
	bool full = !done && m->gap.pages + 1 >= GAP_MAX_PAGES;
	int rc = done || full ? store_gap_delete(m->store, m->gap.id) : store_gap_move(m->store, m->gap.id, end.s);
	if (m->apply_failed || rc < 0) {
		store_rollback(m->store);
		goto out;
	}
	crash_point("gap-before-commit");
	if (store_commit(m->store) < 0)
		goto out;
	log_debug("%s: %ld missed events read in %s, %zu dispatched", m->t->name, n, r->id, a.answered);
	if (a.old)
		log_info("%s: %zu missed messages older than catch_up_s not answered", m->t->name, a.old);
	if (full)
		log_warnx("%s: missed messages in %s go back more than %d pages; the older ones stay unanswered",
			m->t->name, r->id, GAP_MAX_PAGES);
	rv = 0;
out:
	buf_free(&a.text);
	buf_free(&end);
	buf_free(&err);
	return rv;
}

/* After a failure to read or close the gap: the same one again, after the lane's backoff. */
static void
gap_retry(struct matrix *m, const char *what)
{
	struct mx_error bad = { .outcome = MX_RETRY };
	snprintf(bad.error, sizeof bad.error, "%s", what);
	lane_retry(m, LANE_GAP, &bad);
}

static void
done_gap(struct matrix *m, const struct http_resp *resp, const struct mx_error *e)
{
	if (e->outcome == MX_RETRY || e->outcome == MX_RATE) {
		lane_retry(m, LANE_GAP, e);
		return;
	}
	struct room *r = room_get(m, m->gap.room_id, false);
	int rc;
	if (e->outcome != MX_OK) {
		char why[256];
		snprintf(why, sizeof why, "the server refused them (HTTP %ld %s); they stay unanswered", e->status, e->errcode);
		rc = gap_close(m, why);
	} else if (!r || strcmp(r->membership, "join") != 0) {
		rc = gap_close(m, "no longer in the room");
	} else {
		rc = apply_gap(m, r, resp->body, resp->len);
	}
	if (rc < 0) {
		gap_retry(m, "could not apply the page");
		return;
	}
	wake_out(m);
	lane_kick(m, LANE_GAP);
}

static void
run_gap(struct matrix *m)
{
	store_gap_free(&m->gap);
	/* only between batches: a sync being applied may still add to the gaps */
	if (store_in_tx(m->store) || store_gap_next(m->store, &m->gap) != 1)
		return;
	struct room *r = room_get(m, m->gap.room_id, false);
	/* everything in a gap is older than the gap itself */
	bool stale = m->gap.created_ms < wall_ms() - m->set.catch_up_s * 1000;
	if (!r || strcmp(r->membership, "join") != 0 || stale) {
		if (gap_close(m, stale ? "older than catch_up_s" : "no longer in the room") < 0)
			gap_retry(m, "could not close a timeline gap");
		else
			lane_wait(m, LANE_GAP, 0);   /* the next one, from the loop rather than recursing */
		return;
	}
	struct buf p;
	buf_init(&p);
	buf_adds(&p, "/rooms");
	path_add(&p, r->id);
	buf_printf(&p, "/messages?dir=b&limit=%d&from=", GAP_PAGE);
	http_escape(&p, m->gap.from);
	buf_adds(&p, "&to=");
	http_escape(&p, m->gap.to);
	buf_adds(&p, "&filter=");
	http_escape(&p, GAP_FILTER);
	lane_request(m, LANE_GAP, HTTP_GET, p.s, NULL, REQUEST_TIMEOUT_MS, MX_MAX_SYNC_BYTES, done_gap);
	buf_free(&p);
}

/* ---------- typing notices and read receipts (best effort, in memory) ---------- */

static void
eph_push(struct matrix *m, enum http_method method, const char *path, const char *body)
{
	if (m->neph >= EPHEMERAL_MAX_JOBS)
		return;   /* a nicety: never let it grow while the server is away */
	m->eph = xrealloc(m->eph, (m->neph + 1) * sizeof *m->eph);
	m->eph[m->neph++] = (struct eph_job){ method, xstrdup(path), xstrdup(body), loop_now_ms(), 0 };
	lane_kick(m, LANE_EPH);
}

static void
eph_pop(struct matrix *m)
{
	if (!m->neph)
		return;
	free(m->eph[0].path);
	free(m->eph[0].body);
	memmove(m->eph, m->eph + 1, (m->neph - 1) * sizeof *m->eph);
	m->neph--;
}

static void
typing(struct matrix *m, const char *room, bool on)
{
	if (!m->set.typing)
		return;
	struct buf p;
	buf_init(&p);
	buf_adds(&p, "/rooms");
	path_add(&p, room);
	buf_adds(&p, "/typing");
	path_add(&p, m->user_id);
	char body[64];
	snprintf(body, sizeof body, on ? "{\"typing\":true,\"timeout\":%d}" : "{\"typing\":false}", TYPING_TIMEOUT_MS);
	eph_push(m, HTTP_PUT, p.s, body);
	buf_free(&p);
}

static void
read_receipt(struct matrix *m, const char *room, const char *event_id)
{
	if (!event_id || !m->set.receipts)
		return;
	struct buf p;
	buf_init(&p);
	buf_adds(&p, "/rooms");
	path_add(&p, room);
	buf_adds(&p, "/receipt/m.read");
	path_add(&p, event_id);
	eph_push(m, HTTP_POST, p.s, "{}");
	buf_free(&p);
}

static void
done_eph(struct matrix *m, const struct http_resp *resp, const struct mx_error *e)
{
	(void)resp;
	if (e->outcome == MX_RATE || (e->outcome == MX_RETRY && m->neph && ++m->eph[0].attempts < EPHEMERAL_ATTEMPTS)) {
		lane_retry(m, LANE_EPH, e);
		return;
	}
	if (e->outcome != MX_OK)
		log_debug("%s: typing notice or receipt dropped (%ld %s)", m->t->name, e->status, e->errcode);
	eph_pop(m);
	lane_kick(m, LANE_EPH);
}

static void
run_eph(struct matrix *m)
{
	int64_t now = loop_now_ms();
	while (m->neph && now - m->eph[0].created_ms > EPHEMERAL_MAX_AGE_MS)
		eph_pop(m);   /* a typing notice a minute late is wrong, not late */
	if (m->neph)
		lane_request(m, LANE_EPH, m->eph[0].method, m->eph[0].path, m->eph[0].body, REQUEST_TIMEOUT_MS, 0, done_eph);
}

/* ---------- sending what the outbox holds ---------- */

static void
out_finish(struct matrix *m, const char *event_id)
{
	struct store_out *o = &m->out;
	bool ok = store_begin(m->store) == 0;
	ok = ok && store_out_delete(m->store, o->id) == 0;
	if (ok && event_id)
		ok = store_event_put(m->store, event_id, o->room_id, STORE_EV_OWN, wall_ms()) == 0;
	if (!ok || store_commit(m->store) < 0) {
		store_rollback(m->store);
		log_warnx("%s: could not record a sent request; it will be resent with the same txnId", m->t->name);
	}
	store_out_free(o);
}

static void
done_out(struct matrix *m, const struct http_resp *resp, const struct mx_error *e)
{
	struct store_out *o = &m->out;
	if (e->outcome == MX_RETRY || e->outcome == MX_RATE) {
		store_out_attempt(m->store, o->id);
		store_out_free(o);
		lane_retry(m, LANE_OUT, e);
		return;
	}
	crash_point("send-after-put");
	bool send = strcmp(o->kind, "send") == 0;
	if (e->outcome == MX_FAIL) {
		log_warnx("%s: %s in %s refused (%ld %s: %s); dropped", m->t->name, o->kind, o->room_id, e->status,
			e->errcode, e->error);
		if (send)
			typing(m, o->room_id, false);
		out_finish(m, NULL);
	} else if (send) {
		cJSON *j = cJSON_ParseWithLength(resp->body, resp->len);
		const char *id = jstr(j, "event_id");
		log_info("%s: answer sent in %s", m->t->name, o->room_id);
		typing(m, o->room_id, false);
		read_receipt(m, o->room_id, o->reply_to);
		out_finish(m, id);
		cJSON_Delete(j);
	} else {
		log_info("%s: %s %s done", m->t->name, strcmp(o->kind, "join") == 0 ? "join" : "leave", o->room_id);
		out_finish(m, NULL);
	}
	lane_kick(m, LANE_OUT);
}

static void
send_row(struct matrix *m)
{
	struct store_out *o = &m->out;
	struct buf p;
	buf_init(&p);
	buf_adds(&p, "/rooms");
	path_add(&p, o->room_id);
	buf_adds(&p, "/send");
	path_add(&p, o->event_type);
	path_add(&p, o->txn_id);
	if (o->attempts == 0)
		typing(m, o->room_id, true);
	lane_request(m, LANE_OUT, HTTP_PUT, p.s, o->content, REQUEST_TIMEOUT_MS, 0, done_out);
	if (o->id == m->first_reply_id && o->attempts == 0)
		log_debug("%s: reply request started %lld us after its sync response arrived", m->t->name,
			(long long)(loop_now_us() - m->sync_arrived_us));
	buf_free(&p);
}

static void
membership_row(struct matrix *m)
{
	struct store_out *o = &m->out;
	struct buf p;
	buf_init(&p);
	bool join = strcmp(o->kind, "join") == 0;
	if (join && o->room_id[0] == '#') {
		buf_adds(&p, "/join");   /* an alias: the server resolves it */
		path_add(&p, o->room_id);
	} else {
		buf_adds(&p, "/rooms");
		path_add(&p, o->room_id);
		buf_adds(&p, join ? "/join" : "/leave");
	}
	lane_request(m, LANE_OUT, HTTP_POST, p.s, "{}", REQUEST_TIMEOUT_MS, 0, done_out);
	buf_free(&p);
}

static void
run_out(struct matrix *m)
{
	store_out_free(&m->out);
	for (;;) {
		int rc = store_out_next(m->store, 0, &m->out);
		if (rc < 0) {
			struct mx_error e = { .outcome = MX_RETRY };
			snprintf(e.error, sizeof e.error, "cannot read the outbox");
			lane_retry(m, LANE_OUT, &e);
			return;
		}
		if (rc == 0)
			return;
		if (strcmp(m->out.kind, "send") != 0)
			break;
		enum seal s = outgoing_seal(m, &m->out);
		m->seal_waiting = s == SEAL_WAIT;
		if (s == SEAL_READY)
			break;
		if (s == SEAL_WAIT) {
			/* the crypto lanes fetch and share keys meanwhile and wake this lane; the timer is a fallback */
			store_out_free(&m->out);
			lane_wait(m, LANE_OUT, SEAL_WAIT_MS);
			kick_crypto(m);
			return;
		}
		out_finish(m, NULL);   /* SEAL_DROP */
	}
	crash_point("send-before-put");
	if (strcmp(m->out.kind, "send") == 0)
		send_row(m);
	else
		membership_row(m);
}

static int64_t
on_housekeeping(struct loop *loop, void *arg)
{
	(void)loop;
	struct matrix *m = arg;
	int64_t now = wall_ms();
	/* past this the server may have forgotten the txnId: better silent than twice */
	if (!m->out.id) {
		int n = store_out_expire(m->store, now - OUTBOX_MAX_AGE_MS);
		if (n > 0)
			log_warnx("%s: dropped %d queued requests older than 12 hours", m->t->name, n);
	}
	store_event_prune(m->store, now - EVENTS_KEEP_MS);
	if (m->e2ee)
		e2ee_housekeeping(m->e2ee, now);
	return HOUSEKEEPING_MS;
}

/* ---------- transport operations ---------- */

static void
matrix_send(struct transport *t, const struct reply *r)
{
	struct matrix *m = t->impl;
	const struct event *ev = r->to;
	if (!m->store || !ev->room || !ev->id) {
		log_warnx("%s: cannot send: not connected", t->name);
		return;
	}
	const char *root = NULL;
	if (m->cur && m->cur_ev == ev && m->cur->rel_type && strcmp(m->cur->rel_type, "m.thread") == 0)
		root = m->cur->rel_event;
	struct mx_reply mr = { r->text, r->html, ev->id, ev->account, root };
	struct buf content;
	buf_init(&content);
	matrix_reply_content(&mr, &content);
	if (queue_out(m, "send", ev->room, "m.room.message", content.s, ev->id) < 0)
		log_warnx("%s: could not queue the answer to %s", t->name, ev->id);
	else
		log_debug("%s: answer to %s queued (%zu bytes)", t->name, ev->id, content.len);
	explicit_bzero(content.s, content.len);
	buf_free(&content);
}

/* !join and !leave from an admin: queued like everything else, so they survive a restart. */
static int
queue_membership(struct transport *t, const char *kind, const char *room, bool valid, const char *expect,
	struct buf *err)
{
	struct matrix *m = t->impl;
	if (!valid) {
		buf_printf(err, "%s", expect);
		return -1;
	}
	if (!m->store || queue_out(m, kind, room, NULL, NULL, NULL) < 0) {
		buf_printf(err, "the state store is not available");
		return -1;
	}
	return 0;
}

static int
matrix_join(struct transport *t, const char *room, struct buf *err)
{
	return queue_membership(t, "join", room, matrix_room_ref_valid(room),
		"expected a room id (!id:server) or alias (#name:server)", err);
}

static int
matrix_part(struct transport *t, const char *room, struct buf *err)
{
	return queue_membership(t, "leave", room, room[0] == '!' && strchr(room, ':'),
		"give the room id (!id:server), not an alias", err);
}

static void
matrix_stop(struct transport *t, const char *reason)
{
	(void)reason;
	struct matrix *m = t->impl;
	m->stopping = true;
	for (int i = 0; i < LANE_COUNT; i++) {
		struct lane *l = &m->lanes[i];
		if (l->timer)
			loop_timer_del(t->loop, l->timer);
		l->timer = 0;
		/* a send in flight may finish; its row is resent with the same txnId otherwise */
		if (l->req && i != LANE_OUT) {
			http_cancel(m->http, l->req);
			l->req = NULL;
		}
	}
	if (m->lock_timer)
		loop_timer_del(t->loop, m->lock_timer);
	m->lock_timer = 0;
}

static bool
matrix_stopped(const struct transport *t)
{
	const struct matrix *m = t->impl;
	return m->stopping && http_in_flight(m->http) == 0;
}

static void
matrix_destroy(struct transport *t)
{
	struct matrix *m = t->impl;
	matrix_stop(t, "destroyed");
	http_free(m->http);
	if (m->housekeeping)
		loop_timer_del(t->loop, m->housekeeping);
	store_out_free(&m->out);
	store_gap_free(&m->gap);
	e2ee_free(m->e2ee);
	forget_pickle_key(m);
	store_close(m->store);
	while (m->neph)
		eph_pop(m);
	free(m->eph);
	rooms_clear(m);
	forget_token(m);
	free(m->hs);
	free(m->user_id);
	free(m->localpart);
	free(m->device_id);
	free(m->since);
	free(m->displayname);
	matrix_settings_free(&m->set);
	free(m);
	transport_free_common(t);
}

static const char *const auth_names[] = {
	[AUTH_WHOAMI] = "checking its token", [AUTH_FLOWS] = "logging in", [AUTH_LOGIN] = "logging in",
	[AUTH_PROFILE] = "logging in", [AUTH_READY] = "syncing",
};

static void
matrix_describe(const struct transport *t, struct buf *out)
{
	const struct matrix *m = t->impl;
	size_t joined = 0;
	for (size_t i = 0; i < m->nrooms; i++)
		joined += strcmp(m->rooms[i].membership, "join") == 0;
	const char *state = !m->store ? "waiting for its state store" : m->stopping ? "stopping" : auth_names[m->auth];
	buf_printf(out, "%s on %s: %s, %zu rooms", m->user_id, m->hs, state, joined);
	if (m->lanes[LANE_SYNC].failures)
		buf_printf(out, ", sync failing (%u in a row)", m->lanes[LANE_SYNC].failures);
	int queued = m->store ? store_out_count(m->store) : 0;
	if (queued > 0)
		buf_printf(out, ", %d queued", queued);
	if (m->e2ee)
		buf_printf(out, ", encrypted as device %s", m->device_id);
	else if (m->set.encryption)
		buf_adds(out, ", encryption not running");
}

/* Reads what the store remembers; refuses a store that belongs to another account. */
static int
load_state(struct matrix *m, struct buf *err)
{
	char *user = store_meta_get(m->store, "user_id");
	char *hs = store_meta_get(m->store, "homeserver");
	int rv = 0;
	if (user && strcmp(user, m->user_id) != 0) {
		buf_printf(err, "%s holds the state of %s, not %s: move it away or use another section name",
			store_path(m->store), user, m->user_id);
		rv = -1;
	} else if (hs && strcmp(hs, m->hs) != 0) {
		log_warnx("%s: homeserver changed from %s to %s; keeping the login", m->t->name, hs, m->hs);
	}
	free(user);
	free(hs);
	if (rv < 0)
		return -1;
	m->device_id = store_meta_get(m->store, "device_id");
	m->since = store_meta_get(m->store, "next_batch");
	char *hb = store_meta_get(m->store, "history_before_ms");
	m->history_before_ms = hb ? atoll(hb) : 0;
	free(hb);
	if (!m->token_mode)
		m->token = store_meta_get(m->store, "access_token");
	rooms_load(m);
	return 0;
}

/*
 * Encryption needs every member of every room, which a store synced with
 * lazy-loaded members (encryption = no before) lacks: one sync without
 * since fetches all state.  It is no first start: nothing is skipped that
 * would otherwise be answered, and handled events stay handled.
 */
static int
begin_e2ee(struct matrix *m, struct buf *err)
{
	if (!m->set.encryption)
		return store_meta_set(m->store, "members_complete", NULL);
	if (load_pickle_key(m, err) < 0)
		return -1;
	char *full = store_meta_get(m->store, "members_complete");
	if (!full && m->since) {
		log_notice("%s: encryption is on: one full sync to learn every member of every room", m->t->name);
		free(m->since);
		m->since = NULL;
		m->full_state = true;
	}
	free(full);
	return 0;
}

static int
begin(struct matrix *m, struct buf *err)
{
	if (load_state(m, err) < 0 || begin_e2ee(m, err) < 0)
		return -1;
	if (strncmp(m->hs, "http://", 7) == 0 && !strstr(m->hs, "://127.0.0.1") && !strstr(m->hs, "://localhost")
		&& !strstr(m->hs, "://[::1]"))
		log_warnx("%s: %s is plain http: the password and every message cross the network unencrypted",
			m->t->name, m->hs);
	m->housekeeping = loop_timer_add(m->t->loop, 0, on_housekeeping, m);
	/* a stored or given token is checked first; a password login only when needed */
	m->auth = m->token_mode || m->token ? AUTH_WHOAMI : AUTH_FLOWS;
	lane_kick(m, LANE_AUTH);
	return 0;
}

static int
open_store(struct matrix *m, struct buf *err)
{
	struct buf name;
	buf_init(&name);
	buf_printf(&name, "matrix-%s", m->t->name);
	int rc = store_open(m->t->config->bot.state_dir, name.s, &m->store, err);
	buf_free(&name);
	return rc;
}

/* A reload restarts this network while the old instance still closes the store. */
static int64_t
on_lock_retry(struct loop *loop, void *arg)
{
	(void)loop;
	struct matrix *m = arg;
	struct buf err;
	buf_init(&err);
	int rc = open_store(m, &err);
	if (rc == STORE_LOCKED_HERE) {
		buf_free(&err);
		return LOCK_RETRY_MS;
	}
	m->lock_timer = 0;
	if (rc < 0 || begin(m, &err) < 0) {
		log_err("%s: cannot start: %s", m->t->name, err.s);
		store_close(m->store);
		m->store = NULL;
	}
	buf_free(&err);
	return LOOP_STOP;
}

static int
matrix_start(struct transport *t, struct buf *err)
{
	struct matrix *m = t->impl;
	int rc = open_store(m, err);
	if (rc == STORE_LOCKED_HERE) {
		log_info("%s: waiting for the previous instance to close %s", t->name, err->s);
		buf_clear(err);
		m->lock_timer = loop_timer_add(t->loop, LOCK_RETRY_MS, on_lock_retry, m);
		return 0;
	}
	if (rc < 0)
		return -1;
	if (begin(m, err) < 0) {
		store_close(m->store);
		m->store = NULL;
		return -1;
	}
	return 0;
}

/* The section is unchanged (else we would be restarted): t->conf now points into the new config. */
static void
matrix_reconfigure(struct transport *t)
{
	struct matrix *m = t->impl;
	matrix_settings_read(t->config, t->conf, &m->set);
}

static const struct transport_ops matrix_ops = {
	.start = matrix_start,
	.send = matrix_send,
	.stop = matrix_stop,
	.stopped = matrix_stopped,
	.destroy = matrix_destroy,
	.describe = matrix_describe,
	.join = matrix_join,
	.part = matrix_part,
	.reconfigure = matrix_reconfigure,
};

static struct transport *
matrix_create(const struct transport_env *env, const struct conf_section *s, struct buf *err)
{
	(void)err;
	struct transport *t = transport_alloc(&matrix_kind, env, s, s->name);
	struct matrix *m = xcalloc(1, sizeof *m);
	m->t = t;
	m->http = http_new(env->loop);
	const char *hs = conf_get(s, "homeserver");
	size_t n = strlen(hs);
	while (n && hs[n - 1] == '/')
		n--;
	m->hs = xstrndup(hs, n);
	m->user_id = xstrdup(conf_get(s, "user_id"));
	m->localpart = xstrndup(m->user_id + 1, strcspn(m->user_id + 1, ":"));
	m->token_mode = conf_get(s, "access_token_file") != NULL;
	for (int i = 0; i < LANE_COUNT; i++)
		m->lanes[i] = (struct lane){ .m = m, .id = (enum lane_id)i };
	unsigned char seed[8];
	while (getrandom(seed, sizeof seed, 0) != (ssize_t)sizeof seed)
		;
	memcpy(&m->rnd, seed, sizeof m->rnd);
	m->rnd |= 1;
	t->impl = m;
	t->ops = &matrix_ops;
	matrix_settings_read(t->config, t->conf, &m->set);
	/* no line limits: answers are laid out in full, as HTML too */
	t->budget = (struct budget){ .max_lines = 0, .line_bytes = 0, .html = true };
	return t;
}

const struct transport_kind matrix_kind = {
	.name = "matrix",
	.validate = matrix_conf_validate,
	.create = matrix_create,
};
