/*
 * irc.c: one IRC network ([irc.NAME]) as a transport.  TCP or TLS through
 * libcurl (CONNECT_ONLY; connect and handshake driven by a curl multi handle
 * on the loop, then curl_easy_send/recv on the socket), IRCv3 registration
 * (CAP LS 302, SASL PLAIN or EXTERNAL), keepalive, reconnect with backoff,
 * channels, CTCP, and the turn of PRIVMSG into struct event and of replies
 * into NOTICEs that fit the server's 512 bytes.  Every line sent goes
 * through one queue paced by a token bucket.  Bytes are parsed by
 * irc_parse.c; what to answer is the router's business, not this file's.
 */
#include <curl/curl.h>
#include <ctype.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "address.h"
#include "bot.h"
#include "buf.h"
#include "curl_loop.h"
#include "config.h"
#include "irc.h"
#include "irc_conf.h"
#include "irc_parse.h"
#include "log.h"
#include "loop.h"
#include "ratelimit.h"
#include "router.h"
#include "transport.h"

#ifndef KNEEBOT_VERSION
#define KNEEBOT_VERSION "0.0.0"
#endif

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define WRITE_BUF 8192
#define READ_TURN_MAX (256 * 1024)   /* bytes read per wake-up before letting others run */
#define QUEUE_MAX 500                /* lines waiting for the bucket; beyond, replies are dropped */
#define CTCP_QUEUE_MAX 8             /* CTCP answers are a courtesy: not when busy */
#define REPLY_LINES_MAX 12
#define JOIN_LINE_MAX 400
#define BACKOFF_MIN_MS 2000
#define BACKOFF_MAX_MS 300000
#define STABLE_MS 60000              /* registered this long: the next failure starts the backoff over */
#define CONNECT_TIMEOUT_MS 30000
#define REGISTER_TIMEOUT_MS 60000
#define MOTD_WAIT_MS 10000           /* joins go out at the end of the MOTD, or after this */
#define REGAIN_MS 60000
#define STOP_GRACE_MS 2000
#define WORST_USER 11                /* "~" + USERLEN 10, until the server shows us ours */
#define WORST_HOST 63
#define ACCTS_MAX 20000
#define CHANS_MAX 100                /* invitations and !join stop here */
#define WHOX_TOKEN "611"             /* marks the answers to our own WHO */

enum state { ST_IDLE, ST_CONNECTING, ST_REGISTERING, ST_REGISTERED, ST_WAITING, ST_STOPPING, ST_STOPPED };

/* The capabilities asked for, as bits. */
enum cap {
	CAP_SASL = 1 << 0, CAP_MESSAGE_TAGS = 1 << 1, CAP_SERVER_TIME = 1 << 2,
	CAP_ACCOUNT_TAG = 1 << 3, CAP_MULTI_PREFIX = 1 << 4, CAP_BATCH = 1 << 5,
	CAP_ACCOUNT_NOTIFY = 1 << 6, CAP_EXTENDED_JOIN = 1 << 7,
};
static const char *const cap_names[] = {
	"sasl", "message-tags", "server-time", "account-tag", "multi-prefix", "batch",
	"account-notify", "extended-join",
};

struct chan {
	char *name, *key;
	bool joined;
	int64_t rejoin_ms;   /* kicked: not before this time */
};

/* A services account learned without account-tag (WHOX, extended-join, account-notify). */
struct acct {
	char nick[IRC_NICK_MAX];   /* rfc1459-folded */
	char *account;
};

struct outline {
	struct outline *next;
	size_t len;
	char s[];   /* with CR LF */
};


struct irc {
	struct transport *t;
	struct bot *bot;
	struct irc_settings set;
	enum state state;
	bool stopping, quit_sent;
	char quit_reason[128];
	/* connection */
	struct curl_loop *curl;      /* connecting; the socket is then ours */
	CURLM *multi;                /* curl's, for short */
	CURL *easy;
	int fd;
	char errbuf[CURL_ERROR_SIZE];
	uint64_t reconnect_timer, keepalive_timer, pump_timer, phase_timer, regain_timer, read_timer, rejoin_timer;
	unsigned fails;
	int64_t connected_ms, registered_ms, reconnect_at_ms, last_rx_ms, ping_sent_ms;
	/* registration */
	char nick[IRC_NICK_MAX];
	unsigned nick_try;
	unsigned caps_offered, caps_on;
	char sasl_mechs[128];
	bool cap_ended, joined_once;
	char bot_mode;
	bool whox;
	char userhost[128];    /* "user@host" as the server relays us, or "" */
	char account[IRC_NICK_MAX];
	/* I/O */
	struct irc_reader reader;
	char wbuf[WRITE_BUF];
	size_t woff, wlen;
	bool wagain;           /* TLS wants the same bytes again: do not move them */
	struct outline *qhead, *qtail;
	size_t qlen;
	struct bucket bucket;
	/* accounts by folded nick, sorted, for servers without account-tag */
	struct acct *accts;
	size_t naccts;
	/* the channels the config names, to part them when a reload drops them */
	char **conf_chans;
	size_t nconf_chans;
	/* channels we want to be in */
	struct chan *chans;
	size_t nchans;
	struct buf text;       /* the event text, without the bot's name */
	char last_error[160];
};

static void disconnect(struct irc *c, const char *why);
static void pump(struct irc *c);

/* ---------------------------------------------------------------- output */

static void
set_events(struct irc *c)
{
	if (c->fd >= 0)
		loop_fd_events(c->t->loop, c->fd, POLLIN | (c->wlen ? POLLOUT : 0));
}

/* Writes what the socket takes now; the rest waits for POLLOUT. */
static void
flush(struct irc *c)
{
	while (c->wlen && c->easy && c->fd >= 0) {
		size_t n = 0;
		CURLcode rc = curl_easy_send(c->easy, c->wbuf + c->woff, c->wlen, &n);
		if (rc == CURLE_AGAIN) {
			c->wagain = true;
			break;
		}
		if (rc != CURLE_OK) {
			disconnect(c, curl_easy_strerror(rc));
			return;
		}
		c->wagain = false;
		c->woff += n;
		c->wlen -= n;
	}
	if (!c->wlen)
		c->woff = 0;
	set_events(c);
}

/* Room for n more bytes at the end of wbuf, moving the pending bytes down if allowed. */
static bool
wbuf_room(struct irc *c, size_t n)
{
	if (c->woff + c->wlen + n <= WRITE_BUF)
		return true;
	if (c->wagain || c->wlen + n > WRITE_BUF)
		return false;
	memmove(c->wbuf, c->wbuf + c->woff, c->wlen);
	c->woff = 0;
	return true;
}

static void
wbuf_put(struct irc *c, const char *s, size_t n)
{
	memcpy(c->wbuf + c->woff + c->wlen, s, n);
	c->wlen += n;
}

static int64_t
on_pump_timer(struct loop *loop, void *arg)
{
	(void)loop;
	struct irc *c = arg;
	c->pump_timer = 0;
	pump(c);
	return LOOP_STOP;
}

/* Moves queued lines to the socket as the bucket allows, in order. */
static void
pump(struct irc *c)
{
	bool paced = c->set.flood && !c->stopping;
	while (c->qhead && c->fd >= 0) {
		struct outline *l = c->qhead;
		if (!wbuf_room(c, l->len))
			break;   /* POLLOUT will call again */
		if (paced && !bucket_take(&c->bucket, loop_now_ms())) {
			if (!c->pump_timer)
				c->pump_timer = loop_timer_add(c->t->loop, bucket_wait_ms(&c->bucket, loop_now_ms()), on_pump_timer, c);
			break;
		}
		wbuf_put(c, l->s, l->len);
		c->qhead = l->next;
		if (!c->qhead)
			c->qtail = NULL;
		c->qlen--;
		free(l);
	}
	flush(c);
}

/*
 * The one way out: formats a line, drops CR, LF and NUL whatever their
 * source, cuts it to 510 bytes, and queues it behind the bucket; or, when
 * direct, sends it ahead of the bucket (registration, PONG: see send_direct).
 */
static void out(struct irc *c, bool direct, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
out(struct irc *c, bool direct, const char *fmt, ...)
{
	char raw[IRC_MSG_MAX * 2], line[IRC_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	size_t n = 0;
	for (const char *p = raw; *p && n < sizeof line; p++)
		if (*p != '\r' && *p != '\n')
			line[n++] = *p;
	n = utf8_cut(line, n, IRC_MSG_MAX - 2);
	if (log_debug_enabled())
		log_debug("%s: > %.*s", c->t->name, (int)(strncmp(line, "AUTHENTICATE ", 13) == 0 ? 12 : n), line);
	if (direct) {
		/*
		 * Registration is lock-step (each line waits for the server's answer)
		 * and a PONG or keepalive PING stuck behind a paced backlog would get
		 * us dropped for a ping timeout: these few lines skip the bucket.
		 */
		if (c->fd >= 0 && wbuf_room(c, n + 2)) {
			wbuf_put(c, line, n);
			wbuf_put(c, "\r\n", 2);
			flush(c);
		}
		return;
	}
	if (c->qlen >= QUEUE_MAX) {
		log_warnx("%s: output queue full (%d lines); dropping a line", c->t->name, QUEUE_MAX);
		return;
	}
	struct outline *l = xmalloc(sizeof *l + n + 2);
	l->next = NULL;
	memcpy(l->s, line, n);
	memcpy(l->s + n, "\r\n", 2);
	l->len = n + 2;
	if (c->qtail)
		c->qtail->next = l;
	else
		c->qhead = l;
	c->qtail = l;
	c->qlen++;
}

static void
queue_clear(struct irc *c)
{
	while (c->qhead) {
		struct outline *l = c->qhead;
		c->qhead = l->next;
		free(l);
	}
	c->qtail = NULL;
	c->qlen = 0;
}

/* ---------------------------------------------------------------- accounts */

/*
 * Without account-tag the account of a nick is what WHOX said when we
 * joined, kept current by extended-join and account-notify.  A nick that
 * leaves our sight (PART, KICK, QUIT) is forgotten, so that whoever takes it
 * next does not inherit the account.
 */
static size_t
acct_pos(const struct irc *c, const char *folded, bool *found)
{
	size_t lo = 0, hi = c->naccts;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int d = strcmp(c->accts[mid].nick, folded);
		if (d == 0) {
			*found = true;
			return mid;
		}
		if (d < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static void
acct_forget(struct irc *c, const char *nick)
{
	char f[IRC_NICK_MAX];
	bool found;
	irc_fold(nick, f, sizeof f);
	size_t i = acct_pos(c, f, &found);
	if (!found)
		return;
	free(c->accts[i].account);
	memmove(&c->accts[i], &c->accts[i + 1], (c->naccts - i - 1) * sizeof *c->accts);
	c->naccts--;
}

/* account NULL, "*" or "0" means not logged in. */
static void
acct_set(struct irc *c, const char *nick, const char *account)
{
	if (!account || !*account || strcmp(account, "*") == 0 || strcmp(account, "0") == 0) {
		acct_forget(c, nick);
		return;
	}
	char f[IRC_NICK_MAX];
	bool found;
	irc_fold(nick, f, sizeof f);
	size_t i = acct_pos(c, f, &found);
	if (found) {
		free(c->accts[i].account);
	} else {
		if (c->naccts >= ACCTS_MAX)
			return;
		c->accts = xrealloc(c->accts, (c->naccts + 1) * sizeof *c->accts);
		memmove(&c->accts[i + 1], &c->accts[i], (c->naccts - i) * sizeof *c->accts);
		c->naccts++;
		snprintf(c->accts[i].nick, sizeof c->accts[i].nick, "%s", f);
	}
	c->accts[i].account = xstrdup(account);
}

static const char *
acct_get(const struct irc *c, const char *nick)
{
	char f[IRC_NICK_MAX];
	bool found;
	irc_fold(nick, f, sizeof f);
	size_t i = acct_pos(c, f, &found);
	return found ? c->accts[i].account : NULL;
}

static void
acct_rename(struct irc *c, const char *from, const char *to)
{
	const char *a = acct_get(c, from);
	char *keep = a ? xstrdup(a) : NULL;
	acct_forget(c, from);
	acct_set(c, to, keep);
	free(keep);
}

static void
acct_clear(struct irc *c)
{
	for (size_t i = 0; i < c->naccts; i++)
		free(c->accts[i].account);
	free(c->accts);
	c->accts = NULL;
	c->naccts = 0;
}

/* Accounts must come from somewhere: WHOX when the server will not tag messages. */
static bool
needs_whox(const struct irc *c)
{
	return c->whox && !(c->caps_on & CAP_ACCOUNT_TAG);
}

/* ---------------------------------------------------------------- channels */

static struct chan *
chan_find(struct irc *c, const char *name)
{
	for (size_t i = 0; i < c->nchans; i++)
		if (irc_casecmp_eq(c->chans[i].name, name))
			return &c->chans[i];
	return NULL;
}

static struct chan *
chan_add(struct irc *c, const char *name, const char *key)
{
	struct chan *ch = chan_find(c, name);
	if (ch)
		return ch;
	c->chans = xrealloc(c->chans, (c->nchans + 1) * sizeof *c->chans);
	ch = &c->chans[c->nchans++];
	*ch = (struct chan){ xstrdup(name), key && *key ? xstrdup(key) : NULL, false, 0 };
	return ch;
}

static void
chan_remove(struct irc *c, struct chan *ch)
{
	free(ch->name);
	free(ch->key);
	*ch = c->chans[--c->nchans];
}

static size_t
joined_count(const struct irc *c)
{
	size_t n = 0;
	for (size_t i = 0; i < c->nchans; i++)
		n += c->chans[i].joined;
	return n;
}

/* JOINs for every wanted channel not joined yet, several per line: keyed ones first, as JOIN pairs keys in order. */
static void
join_all(struct irc *c)
{
	char names[JOIN_LINE_MAX + IRC_CHAN_MAX], keys[JOIN_LINE_MAX + IRC_KEY_MAX];
	size_t nn = 0, nk = 0;
	int64_t now = loop_now_ms();
	for (int keyed = 1; keyed >= 0; keyed--) {
		for (size_t i = 0; i < c->nchans; i++) {
			struct chan *ch = &c->chans[i];
			if (ch->joined || ch->rejoin_ms > now || (ch->key != NULL) != keyed)
				continue;
			size_t ln = strlen(ch->name), lk = ch->key ? strlen(ch->key) : 0;
			if (nn && nn + nk + ln + lk + 2 > JOIN_LINE_MAX) {
				out(c, false, "JOIN %.*s %.*s", (int)nn, names, (int)nk, keys);
				nn = nk = 0;
			}
			nn += (size_t)snprintf(names + nn, sizeof names - nn, "%s%s", nn ? "," : "", ch->name);
			if (ch->key)
				nk += (size_t)snprintf(keys + nk, sizeof keys - nk, "%s%s", nk ? "," : "", ch->key);
		}
	}
	if (nn)
		out(c, false, "JOIN %.*s %.*s", (int)nn, names, (int)nk, keys);
	pump(c);
}

/* Rejoins the channels whose post-kick wait is over; repeats for those still waiting. */
static int64_t
on_rejoin(struct loop *loop, void *arg)
{
	(void)loop;
	struct irc *c = arg;
	if (c->state == ST_REGISTERED)
		join_all(c);
	int64_t now = loop_now_ms(), next = -1;
	for (size_t i = 0; i < c->nchans; i++) {
		int64_t d = c->chans[i].rejoin_ms - now;
		if (d > 0 && (next < 0 || d < next))
			next = d;
	}
	if (next < 0)
		c->rejoin_timer = 0;
	return next < 0 ? LOOP_STOP : next;
}

/* ---------------------------------------------------------------- connection */

static int64_t
jitter(int64_t ms)
{
	static unsigned seed;
	if (!seed)
		seed = (unsigned)loop_now_us() ^ (unsigned)getpid();
	/* 75% to 125%, so a network's bots do not all come back in the same second */
	return ms * 3 / 4 + (int64_t)(rand_r(&seed) % (unsigned)(ms / 2 + 1));
}

static void
timer_clear(struct irc *c, uint64_t *id)
{
	if (*id)
		loop_timer_del(c->t->loop, *id);
	*id = 0;
}

static int64_t
on_reconnect(struct loop *loop, void *arg)
{
	(void)loop;
	struct irc *c = arg;
	c->reconnect_timer = 0;
	struct buf err;
	buf_init(&err);
	if (c->t->ops->start(c->t, &err) < 0) {
		log_warnx("%s: %s", c->t->name, err.s ? err.s : "cannot connect");
	}
	buf_free(&err);
	return LOOP_STOP;
}

static void
schedule_reconnect(struct irc *c)
{
	if (c->connected_ms && c->registered_ms && loop_now_ms() - c->registered_ms >= STABLE_MS)
		c->fails = 0;
	int64_t delay = BACKOFF_MIN_MS;
	for (unsigned i = 0; i < c->fails && delay < BACKOFF_MAX_MS; i++)
		delay *= 2;
	delay = jitter(delay < BACKOFF_MAX_MS ? delay : BACKOFF_MAX_MS);
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	c->fails++;
	c->state = ST_WAITING;
	c->reconnect_at_ms = loop_now_ms() + delay;
	c->reconnect_timer = loop_timer_add(c->t->loop, delay, on_reconnect, c);
	log_info("%s: reconnecting to %s:%ld in %lld s", c->t->name, c->set.host, c->set.port, (long long)((delay + 500) / 1000));
}

/* Drops the connection and its per-connection state; reconnects unless stopping. */
static void
disconnect(struct irc *c, const char *why)
{
	if (c->fd >= 0)
		loop_fd_del(c->t->loop, c->fd);
	c->fd = -1;
	curl_loop_adopt(c->curl, -1);
	enum state was = c->state;
	c->state = ST_IDLE;
	if (c->easy) {
		curl_multi_remove_handle(c->multi, c->easy);
		curl_easy_cleanup(c->easy);
		c->easy = NULL;
	}
	timer_clear(c, &c->pump_timer);
	timer_clear(c, &c->phase_timer);
	timer_clear(c, &c->keepalive_timer);
	timer_clear(c, &c->regain_timer);
	timer_clear(c, &c->read_timer);
	timer_clear(c, &c->rejoin_timer);
	queue_clear(c);
	acct_clear(c);
	c->wlen = c->woff = 0;
	c->wagain = false;
	irc_reader_reset(&c->reader);
	for (size_t i = 0; i < c->nchans; i++) {
		c->chans[i].joined = false;
		c->chans[i].rejoin_ms = 0;
	}
	if (c->stopping) {
		if (was != ST_STOPPED && was != ST_IDLE)
			log_info("%s: disconnected", c->t->name);
		c->state = ST_STOPPED;
		return;
	}
	snprintf(c->last_error, sizeof c->last_error, "%s", why);
	if (was == ST_REGISTERED || was == ST_REGISTERING)
		log_warnx("%s: lost the connection to %s:%ld: %s", c->t->name, c->set.host, c->set.port, why);
	else
		log_warnx("%s: cannot connect to %s:%ld: %s", c->t->name, c->set.host, c->set.port, why);
	schedule_reconnect(c);
}

static void
send_registration(struct irc *c)
{
	out(c, true, "CAP LS 302");
	out(c, true, "NICK %s", c->nick);
	out(c, true, "USER %s 0 * :%s", c->set.username, c->set.realname);
}

static void handle_line(struct irc *c, char *line, size_t n);

static int64_t on_read_more(struct loop *loop, void *arg);

/* Reads until the socket (and TLS) has nothing more, a line at a time to handle_line. */
static void
do_read(struct irc *c)
{
	size_t total = 0;
	int fd = c->fd;
	while (c->fd == fd && fd >= 0) {
		if (total >= READ_TURN_MAX) {
			/* TLS may hold decrypted bytes poll() cannot see: come back next turn */
			if (!c->read_timer)
				c->read_timer = loop_timer_add(c->t->loop, 0, on_read_more, c);
			return;
		}
		size_t got = 0, room, len;
		char *space = irc_reader_space(&c->reader, &room);
		CURLcode rc = curl_easy_recv(c->easy, space, room, &got);
		if (rc == CURLE_AGAIN)
			return;
		if (rc != CURLE_OK || got == 0) {
			disconnect(c, rc != CURLE_OK ? curl_easy_strerror(rc) : "the server closed the connection");
			return;
		}
		total += got;
		irc_reader_commit(&c->reader, got);
		c->last_rx_ms = loop_now_ms();
		c->ping_sent_ms = 0;
		unsigned long dropped = c->reader.dropped;
		char *line;
		while (c->fd == fd && (line = irc_reader_next(&c->reader, &len)))
			handle_line(c, line, len);
		if (c->fd == fd && c->qhead && !c->pump_timer)
			pump(c);   /* whatever the lines made us queue (WHO, JOIN, CTCP answers) */
		if (c->reader.dropped != dropped)
			log_debug("%s: dropped a line longer than %d bytes", c->t->name, IRC_LINE_MAX);
	}
}

static int64_t
on_read_more(struct loop *loop, void *arg)
{
	(void)loop;
	struct irc *c = arg;
	c->read_timer = 0;
	if (c->fd >= 0)
		do_read(c);
	return LOOP_STOP;
}

static void
on_socket(struct loop *loop, int fd, short revents, void *arg)
{
	(void)loop, (void)fd;
	struct irc *c = arg;
	if (revents & POLLNVAL) {
		disconnect(c, "the socket was closed under us");   /* else poll() would report it forever */
		return;
	}
	if (revents & (POLLIN | POLLERR | POLLHUP))
		do_read(c);
	if (c->fd >= 0 && (revents & POLLOUT)) {
		flush(c);
		pump(c);
	}
}

static int64_t
on_keepalive(struct loop *loop, void *arg)
{
	(void)loop;
	struct irc *c = arg;
	int64_t now = loop_now_ms();
	int64_t quiet = c->set.ping_interval_s * 1000, wait = c->set.ping_timeout_s * 1000;
	if (c->ping_sent_ms && now - c->ping_sent_ms >= wait) {
		char why[64];
		snprintf(why, sizeof why, "no answer to PING in %ld s", c->set.ping_timeout_s);
		c->keepalive_timer = 0;
		disconnect(c, why);
		return LOOP_STOP;
	}
	if (!c->ping_sent_ms && now - c->last_rx_ms >= quiet) {
		out(c, true, "PING :kneebot");
		c->ping_sent_ms = now;
	}
	return c->ping_sent_ms ? 1000 : quiet - (now - c->last_rx_ms) + 1;
}

static int64_t
on_register_timeout(struct loop *loop, void *arg)
{
	(void)loop;
	struct irc *c = arg;
	c->phase_timer = 0;
	disconnect(c, "the server did not complete registration in time");
	return LOOP_STOP;
}

/* TCP (and TLS) are up: take the socket from curl and say who we are. */
static void
connected(struct irc *c)
{
	curl_socket_t s = CURL_SOCKET_BAD;
	if (curl_easy_getinfo(c->easy, CURLINFO_ACTIVESOCKET, &s) != CURLE_OK || s == CURL_SOCKET_BAD) {
		disconnect(c, "libcurl gave no socket");
		return;
	}
	c->fd = (int)s;
	curl_loop_adopt(c->curl, c->fd);   /* from here on the socket is ours, not curl's to watch */
	c->state = ST_REGISTERING;
	c->connected_ms = c->last_rx_ms = loop_now_ms();
	c->registered_ms = 0;
	loop_fd_add(c->t->loop, c->fd, POLLIN, on_socket, c);
	log_info("%s: connected to %s:%ld%s, registering", c->t->name, c->set.host, c->set.port, c->set.tls ? " (TLS)" : "");
	c->phase_timer = loop_timer_add(c->t->loop, REGISTER_TIMEOUT_MS, on_register_timeout, c);
	if (c->set.ping_interval_s && c->set.ping_timeout_s)
		c->keepalive_timer = loop_timer_add(c->t->loop, c->set.ping_interval_s * 1000, on_keepalive, c);
	send_registration(c);
	do_read(c);   /* TLS may already hold the first bytes */
}

/* After curl has worked: did the connection come up or fail? */
static void
check_connect(struct irc *c)
{
	CURLMsg *m;
	int left;
	while (c->state == ST_CONNECTING && (m = curl_multi_info_read(c->multi, &left))) {
		if (m->msg != CURLMSG_DONE || m->easy_handle != c->easy)
			continue;
		if (m->data.result == CURLE_OK) {
			connected(c);
		} else {
			char why[CURL_ERROR_SIZE + 64];
			snprintf(why, sizeof why, "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(m->data.result));
			disconnect(c, why);
		}
		return;
	}
}

/* curl_loop's progress: curl has worked on the connection we are waiting for. */
static void
on_curl_progress(void *arg)
{
	check_connect(arg);
}

static int
open_connection(struct irc *c, struct buf *err)
{
	struct irc_settings *s = &c->set;
	char url[512];
	bool v6 = strchr(s->host, ':') != NULL;
	/* CONNECT_ONLY: curl connects (and shakes hands for https) and sends nothing */
	snprintf(url, sizeof url, "%s://%s%s%s:%ld", s->tls ? "https" : "http", v6 ? "[" : "", s->host, v6 ? "]" : "", s->port);
	CURL *e = curl_easy_init();
	if (!e) {
		buf_printf(err, "cannot create a libcurl handle");
		return -1;
	}
	c->errbuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROXY, "");   /* an http_proxy in the environment is not for IRC */
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
	if (s->tls) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, s->tls_verify ? 1L : 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, s->tls_verify ? 2L : 0L);
		curl_easy_setopt(e, CURLOPT_SSL_ENABLE_ALPN, 0L);
		if (s->ca_file)
			curl_easy_setopt(e, CURLOPT_CAINFO, s->ca_file);
		if (s->cert_file)
			curl_easy_setopt(e, CURLOPT_SSLCERT, s->cert_file);
		if (s->key_file)
			curl_easy_setopt(e, CURLOPT_SSLKEY, s->key_file);
	}
	c->easy = e;
	c->state = ST_CONNECTING;
	if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		c->easy = NULL;
		c->state = ST_IDLE;
		buf_printf(err, "cannot start a libcurl transfer");
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- registration */

static void
cap_end(struct irc *c)
{
	if (!c->cap_ended) {
		c->cap_ended = true;
		out(c, true, "CAP END");
	}
}

/* Nick number try: the configured one, the alternates, then the configured one with '_'s. */
static void
nick_for_try(const struct irc *c, unsigned try, char *out, size_t cap)
{
	if (try == 0)
		snprintf(out, cap, "%s", c->set.nick);
	else if (try <= c->set.nalts)
		snprintf(out, cap, "%s", c->set.alts[try - 1]);
	else if (try - c->set.nalts <= 4)
		snprintf(out, cap, "%.25s%.*s", c->set.nick, (int)(try - c->set.nalts), "____");
	else
		snprintf(out, cap, "%.24s%u", c->set.nick, (unsigned)(loop_now_us() % 100000));
}

static bool
is_me(const struct irc *c, const char *nick)
{
	return irc_casecmp_eq(nick, c->nick);
}

/* The nick of a message's source, copied out of "nick!user@host". */
static const char *
source_nick(const struct irc_msg *m, char *buf, size_t cap)
{
	if (!m->source)
		return "";
	size_t n = m->nick_len < cap - 1 ? m->nick_len : cap - 1;
	memcpy(buf, m->source, n);
	buf[n] = '\0';
	return buf;
}

/* Our own "user@host" as the server will show it, from a message we sent. */
static void
learn_userhost(struct irc *c, const char *mask)
{
	const char *bang = strchr(mask, '!');
	if (bang && strchr(bang, '@') && strlen(bang + 1) < sizeof c->userhost)
		snprintf(c->userhost, sizeof c->userhost, "%s", bang + 1);
}

static void
sasl_start(struct irc *c)
{
	const char *mech = c->set.sasl == SASL_PLAIN ? "PLAIN" : "EXTERNAL";
	if (c->sasl_mechs[0] && !strstr(c->sasl_mechs, mech)) {
		log_warnx("%s: the server offers SASL %s but not %s; continuing without logging in", c->t->name, c->sasl_mechs, mech);
		cap_end(c);
		return;
	}
	out(c, true, "AUTHENTICATE %s", mech);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
base64(const unsigned char *in, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
		buf_addc(out, b64[v >> 18 & 63]);
		buf_addc(out, b64[v >> 12 & 63]);
		buf_addc(out, i + 1 < n ? b64[v >> 6 & 63] : '=');
		buf_addc(out, i + 2 < n ? b64[v & 63] : '=');
	}
}

/* AUTHENTICATE + from the server: send the credentials in 400-byte pieces. */
static void
sasl_credentials(struct irc *c)
{
	if (c->set.sasl == SASL_EXTERNAL) {
		out(c, true, "AUTHENTICATE +");
		return;
	}
	char *pass = NULL;
	size_t plen = 0;
	struct buf err, raw, enc;
	buf_init(&err);
	buf_init(&raw);
	buf_init(&enc);
	if (config_read_secret(c->t->config, c->set.sasl_pass_file, &pass, &plen, &err) < 0) {
		log_warnx("%s: SASL PLAIN: %s; continuing without logging in", c->t->name, err.s ? err.s : "no password");
		out(c, true, "AUTHENTICATE *");
		cap_end(c);
		buf_free(&err);
		return;
	}
	/* authzid NUL authcid NUL password; an empty authzid means "the same" */
	buf_addc(&raw, '\0');
	buf_adds(&raw, c->set.sasl_user);
	buf_addc(&raw, '\0');
	buf_add(&raw, pass, plen);
	base64((const unsigned char *)raw.s, raw.len, &enc);
	size_t off = 0;
	do {
		size_t n = enc.len - off < 400 ? enc.len - off : 400;
		out(c, true, "AUTHENTICATE %.*s", (int)n, enc.s + off);
		off += n;
		if (off == enc.len && n == 400)
			out(c, true, "AUTHENTICATE +");
	} while (off < enc.len);
	explicit_bzero(pass, plen);
	explicit_bzero(raw.s, raw.len);
	explicit_bzero(enc.s, enc.len);
	free(pass);
	buf_free(&raw);
	buf_free(&enc);
	buf_free(&err);
}

static unsigned
cap_bit(const char *name, size_t n)
{
	for (size_t i = 0; i < NELEM(cap_names); i++)
		if (strlen(cap_names[i]) == n && strncmp(cap_names[i], name, n) == 0)
			return 1u << i;
	return 0;
}

/* "a b=c -d" to bits; the sasl value (mechanisms) is kept. */
static unsigned
cap_list(struct irc *c, const char *list, bool *removed)
{
	unsigned bits = 0;
	*removed = false;
	for (const char *p = list; *p;) {
		p += strspn(p, " ");
		size_t n = strcspn(p, " "), name = strcspn(p, " =");
		if (!n)
			break;
		bool minus = *p == '-';
		unsigned b = cap_bit(p + minus, name - minus);
		if (b == CAP_SASL && name < n)
			snprintf(c->sasl_mechs, sizeof c->sasl_mechs, "%.*s", (int)(n - name - 1), p + name + 1);
		if (minus)
			*removed = true;
		bits |= b;
		p += n;
	}
	return bits;
}

static void
cap_request(struct irc *c)
{
	unsigned want = c->caps_offered;
	if (c->set.sasl == SASL_NONE)
		want &= ~(unsigned)CAP_SASL;
	else if (!(want & CAP_SASL))
		log_warnx("%s: the server offers no SASL; continuing without logging in", c->t->name);
	char req[256];
	size_t n = 0;
	for (size_t i = 0; i < NELEM(cap_names); i++)
		if (want & (1u << i))
			n += (size_t)snprintf(req + n, sizeof req - n, "%s%s", n ? " " : "", cap_names[i]);
	if (n)
		out(c, true, "CAP REQ :%s", req);
	else
		cap_end(c);
}

/* CAP <target> <sub> [*] :<list> */
static void
handle_cap(struct irc *c, struct irc_msg *m)
{
	if (m->nparams < 3)
		return;
	const char *sub = m->params[1];
	bool more = m->nparams >= 4 && strcmp(m->params[2], "*") == 0;
	const char *list = m->params[m->nparams - 1];
	bool removed;
	unsigned bits = cap_list(c, list, &removed);
	if (strcasecmp(sub, "LS") == 0) {
		c->caps_offered |= bits;
		if (!more && c->state == ST_REGISTERING)
			cap_request(c);
	} else if (strcasecmp(sub, "ACK") == 0) {
		c->caps_on = removed ? c->caps_on & ~bits : c->caps_on | bits;
		if (c->state == ST_REGISTERING && !c->cap_ended) {
			if ((c->caps_on & CAP_SASL) && c->set.sasl != SASL_NONE)
				sasl_start(c);
			else
				cap_end(c);
		}
	} else if (strcasecmp(sub, "NAK") == 0) {
		log_notice("%s: the server refused capabilities %s", c->t->name, list);
		if (c->state == ST_REGISTERING)
			cap_end(c);
	} else if (strcasecmp(sub, "DEL") == 0) {
		c->caps_on &= ~bits;
	}
}

/* ---------------------------------------------------------------- handlers */

static void
registered_actions(struct irc *c)
{
	if (c->joined_once)
		return;
	c->joined_once = true;
	timer_clear(c, &c->phase_timer);
	if (c->bot_mode)
		out(c, false, "MODE %s +%c", c->nick, c->bot_mode);
	join_all(c);
}

static int64_t
on_motd_wait(struct loop *loop, void *arg)
{
	(void)loop;
	struct irc *c = arg;
	c->phase_timer = 0;
	registered_actions(c);
	return LOOP_STOP;
}

static int64_t
on_regain(struct loop *loop, void *arg)
{
	(void)loop;
	struct irc *c = arg;
	if (c->state != ST_REGISTERED || irc_casecmp_eq(c->nick, c->set.nick)) {
		c->regain_timer = 0;
		return LOOP_STOP;
	}
	out(c, false, "NICK %s", c->set.nick);
	pump(c);
	return REGAIN_MS;
}

static void
h_welcome(struct irc *c, struct irc_msg *m)
{
	if (c->state != ST_REGISTERING)
		return;   /* a second welcome, or one that arrives while we say goodbye */
	if (m->nparams >= 1)
		snprintf(c->nick, sizeof c->nick, "%s", m->params[0]);
	if (m->nparams >= 2) {
		const char *last = strrchr(m->params[m->nparams - 1], ' ');
		learn_userhost(c, last ? last + 1 : m->params[m->nparams - 1]);
	}
	c->state = ST_REGISTERED;
	c->registered_ms = loop_now_ms();
	c->last_error[0] = '\0';
	bucket_init(&c->bucket, (unsigned)c->set.burst, c->set.interval_ms, loop_now_ms());
	log_info("%s: connected to %s:%ld as %s%s%s", c->t->name, c->set.host, c->set.port, c->nick,
		c->account[0] ? ", logged in as " : "", c->account);
	timer_clear(c, &c->phase_timer);
	c->phase_timer = loop_timer_add(c->t->loop, MOTD_WAIT_MS, on_motd_wait, c);
	if (!irc_casecmp_eq(c->nick, c->set.nick) && !c->regain_timer)
		c->regain_timer = loop_timer_add(c->t->loop, REGAIN_MS, on_regain, c);
}

/* 005: the tokens we use (BOT=B for bot mode). */
static void
h_isupport(struct irc *c, struct irc_msg *m)
{
	for (size_t i = 1; i + 1 < m->nparams; i++) {
		const char *tok = m->params[i];
		if (strncmp(tok, "BOT=", 4) == 0 && isalpha((unsigned char)tok[4]))
			c->bot_mode = tok[4];
		else if (strcmp(tok, "WHOX") == 0)
			c->whox = true;
		else if (strcmp(tok, "-BOT") == 0)
			c->bot_mode = 0;
	}
}

static void h_end_of_motd(struct irc *c, struct irc_msg *m) { (void)m; registered_actions(c); }

static void
h_visiblehost(struct irc *c, struct irc_msg *m)
{
	/* 396 <nick> <host> :is now your displayed host (some servers send user@host) */
	if (m->nparams < 2)
		return;
	if (strchr(m->params[1], '@')) {
		snprintf(c->userhost, sizeof c->userhost, "%s", m->params[1]);
		return;
	}
	const char *at = strchr(c->userhost, '@');
	char user[64];
	snprintf(user, sizeof user, "%.*s", at ? (int)(at - c->userhost) : 0, c->userhost);
	if (at)
		snprintf(c->userhost, sizeof c->userhost, "%s@%s", user, m->params[1]);
}

static void
h_nick_taken(struct irc *c, struct irc_msg *m)
{
	if (c->state == ST_REGISTERED)
		return;   /* a regain attempt failed: the timer tries again */
	char next[IRC_NICK_MAX];
	nick_for_try(c, ++c->nick_try, next, sizeof next);
	log_notice("%s: nick %s is %s; trying %s", c->t->name, c->nick,
		strcmp(m->command, "432") == 0 ? "not allowed" : "taken", next);
	snprintf(c->nick, sizeof c->nick, "%s", next);
	out(c, true, "NICK %s", c->nick);
}

static void
h_loggedin(struct irc *c, struct irc_msg *m)
{
	/* 900 <nick> <nick!ident@host> <account> :You are now logged in as <account> */
	if (m->nparams >= 3) {
		snprintf(c->account, sizeof c->account, "%s", m->params[2]);
		learn_userhost(c, m->params[1]);
	}
}

static void
h_sasl_ok(struct irc *c, struct irc_msg *m)
{
	(void)m;
	log_info("%s: SASL %s login as %s succeeded", c->t->name, c->set.sasl == SASL_PLAIN ? "PLAIN" : "EXTERNAL",
		c->account[0] ? c->account : c->set.sasl_user ? c->set.sasl_user : "(certificate)");
	cap_end(c);
}

static void
h_sasl_fail(struct irc *c, struct irc_msg *m)
{
	if (strcmp(m->command, "908") == 0) {
		if (m->nparams >= 2)
			snprintf(c->sasl_mechs, sizeof c->sasl_mechs, "%s", m->params[1]);
		return;   /* the list of mechanisms; 904 follows */
	}
	log_warnx("%s: SASL %s login as %s failed (%s: %s); continuing without logging in", c->t->name,
		c->set.sasl == SASL_PLAIN ? "PLAIN" : "EXTERNAL", c->set.sasl_user ? c->set.sasl_user : "(certificate)",
		m->command, m->nparams ? m->params[m->nparams - 1] : "");
	cap_end(c);
}

static void
h_authenticate(struct irc *c, struct irc_msg *m)
{
	if (m->nparams >= 1 && strcmp(m->params[0], "+") == 0 && !c->cap_ended)
		sasl_credentials(c);
}

static void h_cap(struct irc *c, struct irc_msg *m) { handle_cap(c, m); }

static void
h_ping(struct irc *c, struct irc_msg *m)
{
	out(c, true, "PONG :%s", m->nparams ? m->params[0] : "");
}

static void
h_error(struct irc *c, struct irc_msg *m)
{
	const char *why = m->nparams ? m->params[0] : "";
	if (c->stopping)
		return;
	log_warnx("%s: the server closed the link: %s", c->t->name, why);
	snprintf(c->last_error, sizeof c->last_error, "ERROR %s", why);
}

static void
h_banned(struct irc *c, struct irc_msg *m)
{
	log_err("%s: banned from %s (K-line): %s", c->t->name, c->set.host, m->nparams ? m->params[m->nparams - 1] : "");
}

static void
h_join_failed(struct irc *c, struct irc_msg *m)
{
	if (m->nparams >= 3)
		log_warnx("%s: cannot join %s: %s (%s)", c->t->name, m->params[1], m->params[m->nparams - 1], m->command);
}

static void
h_join(struct irc *c, struct irc_msg *m)
{
	char nick[IRC_NICK_MAX];
	if (m->nparams < 1)
		return;
	if (!is_me(c, source_nick(m, nick, sizeof nick))) {
		/* extended-join: JOIN #chan account :realname */
		if (c->caps_on & CAP_EXTENDED_JOIN && m->nparams >= 2)
			acct_set(c, nick, m->params[1]);
		return;
	}
	learn_userhost(c, m->source);
	if (needs_whox(c))
		out(c, false, "WHO %s %%tna," WHOX_TOKEN, m->params[0]);
	struct chan *ch = chan_find(c, m->params[0]);
	if (!ch)
		ch = chan_add(c, m->params[0], NULL);   /* a server-forced join: keep it across reconnects */
	ch->joined = true;
	log_info("%s: joined %s", c->t->name, ch->name);
}

static void
h_part(struct irc *c, struct irc_msg *m)
{
	char nick[IRC_NICK_MAX];
	struct chan *ch;
	source_nick(m, nick, sizeof nick);
	acct_forget(c, nick);
	if (m->nparams >= 1 && is_me(c, nick) && (ch = chan_find(c, m->params[0])))
		ch->joined = false;
}

static void
h_kick(struct irc *c, struct irc_msg *m)
{
	char nick[IRC_NICK_MAX];
	struct chan *ch;
	if (m->nparams >= 2)
		acct_forget(c, m->params[1]);
	if (m->nparams < 2 || !is_me(c, m->params[1]) || !(ch = chan_find(c, m->params[0])))
		return;
	ch->joined = false;
	ch->rejoin_ms = loop_now_ms() + c->set.kick_rejoin_s * 1000;
	log_notice("%s: kicked from %s by %s; rejoining in %ld s", c->t->name, ch->name,
		source_nick(m, nick, sizeof nick), c->set.kick_rejoin_s);
	if (!c->rejoin_timer)
		c->rejoin_timer = loop_timer_add(c->t->loop, c->set.kick_rejoin_s * 1000, on_rejoin, c);
}

static void
h_nick(struct irc *c, struct irc_msg *m)
{
	char nick[IRC_NICK_MAX];
	source_nick(m, nick, sizeof nick);
	if (m->nparams < 1)
		return;
	acct_rename(c, nick, m->params[0]);
	if (is_me(c, nick)) {
		snprintf(c->nick, sizeof c->nick, "%s", m->params[0]);
		log_info("%s: now known as %s", c->t->name, c->nick);
	} else if (irc_casecmp_eq(nick, c->set.nick) && c->state == ST_REGISTERED) {
		out(c, false, "NICK %s", c->set.nick);   /* our nick came free */
		pump(c);
	}
}

static void
h_quit(struct irc *c, struct irc_msg *m)
{
	char nick[IRC_NICK_MAX];
	source_nick(m, nick, sizeof nick);
	acct_forget(c, nick);
	if (irc_casecmp_eq(nick, c->set.nick) && !is_me(c, nick) && c->state == ST_REGISTERED) {
		out(c, false, "NICK %s", c->set.nick);
		pump(c);
	}
}

static void
h_invite(struct irc *c, struct irc_msg *m)
{
	char nick[IRC_NICK_MAX], name[IRC_CHAN_MAX + 1], key[IRC_KEY_MAX + 1];
	if (m->nparams < 2 || !is_me(c, m->params[0]))
		return;
	source_nick(m, nick, sizeof nick);
	if (!c->set.join_on_invite || !irc_chan_parse(m->params[1], name, key) || c->nchans >= CHANS_MAX) {
		log_info("%s: %s invited us to %s; not joining", c->t->name, nick, m->params[1]);
		return;
	}
	log_info("%s: %s invited us to %s; joining", c->t->name, nick, name);
	chan_add(c, name, NULL);
	join_all(c);
}

/* account-notify: ":nick!u@h ACCOUNT name", "*" when logged out. */
static void
h_account(struct irc *c, struct irc_msg *m)
{
	char nick[IRC_NICK_MAX];
	if (m->nparams >= 1 && !(c->caps_on & CAP_ACCOUNT_TAG))
		acct_set(c, source_nick(m, nick, sizeof nick), m->params[0]);
}

/* 354 <me> 611 <nick> <account>: the answer to our WHO %tna; "0" is no account. */
static void
h_whox(struct irc *c, struct irc_msg *m)
{
	if (m->nparams >= 4 && strcmp(m->params[1], WHOX_TOKEN) == 0 && needs_whox(c))
		acct_set(c, m->params[2], m->params[3]);
}

static const char *const ctcp_names = "CLIENTINFO PING SOURCE VERSION";

/* A CTCP request in a PRIVMSG: answer the four we know, by NOTICE, when not busy. */
static void
ctcp(struct irc *c, const char *nick, const char *text)
{
	char req[IRC_MSG_MAX];
	snprintf(req, sizeof req, "%s", text + 1);
	req[strcspn(req, "\001")] = '\0';
	char *arg = req + strcspn(req, " ");
	if (*arg)
		*arg++ = '\0';
	if (c->qlen >= CTCP_QUEUE_MAX)
		return;
	if (strcasecmp(req, "VERSION") == 0)
		out(c, false, "NOTICE %s :\001VERSION kneebot %s\001", nick, KNEEBOT_VERSION);
	else if (strcasecmp(req, "PING") == 0)
		out(c, false, "NOTICE %s :\001PING %.64s\001", nick, arg);
	else if (strcasecmp(req, "SOURCE") == 0)
		out(c, false, "NOTICE %s :\001SOURCE kneebot %s: the source ships with the package (see kneebot(8))\001", nick, KNEEBOT_VERSION);
	else if (strcasecmp(req, "CLIENTINFO") == 0)
		out(c, false, "NOTICE %s :\001CLIENTINFO %s\001", nick, ctcp_names);
	else
		return;
	pump(c);
}

static bool
is_channel(const char *target)
{
	return target[0] && strchr("#&+!", target[0]);
}

static void
h_privmsg(struct irc *c, struct irc_msg *m)
{
	char nick[IRC_NICK_MAX];
	if (m->nparams < 2 || !m->source || !strchr(m->source, '!') || c->state != ST_REGISTERED)
		return;
	source_nick(m, nick, sizeof nick);
	if (is_me(c, nick) || irc_tag(m, "bot") || irc_tag(m, "draft/bot"))
		return;   /* ourselves, or a bot that says so (IRCv3 bot mode) */
	const char *target = m->params[0], *text = m->params[1];
	bool priv = is_me(c, target);
	if (!priv && !is_channel(target))
		return;   /* @#chan (STATUSMSG) or $mask: not a conversation to join */
	struct event ev = {
		.transport = c->t, .room = priv ? nick : target, .sender = nick, .mask = m->source,
		.account = (c->caps_on & CAP_ACCOUNT_TAG) ? irc_tag(m, "account") : acct_get(c, nick),
		.id = irc_tag(m, "msgid"), .is_private = priv,
		.ts_ms = (c->caps_on & CAP_SERVER_TIME) ? irc_time_ms(irc_tag(m, "time")) : 0,
	};
	if (text[0] == '\001') {
		/* the router checks the ignore list for everything else; CTCP stops here */
		if (!c->bot || !bot_is_ignored(c->bot, &ev))
			ctcp(c, nick, text);
		return;
	}
	ev.addressed = address_strip(text, strlen(text), c->nick, &c->text);
	ev.text = c->text.s;
	ev.text_len = c->text.len;
	router_dispatch(c->t->router, &ev);
}

/* Sorted by command for bsearch. */
static const struct handler {
	const char *command;
	void (*fn)(struct irc *c, struct irc_msg *m);
} handlers[] = {
	{ "001", h_welcome },
	{ "005", h_isupport },
	{ "354", h_whox },
	{ "376", h_end_of_motd },
	{ "396", h_visiblehost },
	{ "403", h_join_failed },
	{ "405", h_join_failed },
	{ "422", h_end_of_motd },
	{ "432", h_nick_taken },
	{ "433", h_nick_taken },
	{ "436", h_nick_taken },
	{ "437", h_nick_taken },
	{ "465", h_banned },
	{ "471", h_join_failed },
	{ "473", h_join_failed },
	{ "474", h_join_failed },
	{ "475", h_join_failed },
	{ "477", h_join_failed },
	{ "900", h_loggedin },
	{ "902", h_sasl_fail },
	{ "903", h_sasl_ok },
	{ "904", h_sasl_fail },
	{ "905", h_sasl_fail },
	{ "906", h_sasl_fail },
	{ "908", h_sasl_fail },
	{ "ACCOUNT", h_account },
	{ "AUTHENTICATE", h_authenticate },
	{ "CAP", h_cap },
	{ "ERROR", h_error },
	{ "INVITE", h_invite },
	{ "JOIN", h_join },
	{ "KICK", h_kick },
	{ "NICK", h_nick },
	{ "PART", h_part },
	{ "PING", h_ping },
	{ "PRIVMSG", h_privmsg },
	{ "QUIT", h_quit },
};

static int
cmp_handler(const void *k, const void *e)
{
	return strcmp(k, ((const struct handler *)e)->command);
}

static void
handle_line(struct irc *c, char *line, size_t n)
{
	struct irc_msg m;
	const char *why = NULL;
	if (log_debug_enabled())
		log_debug("%s: < %.*s", c->t->name, (int)n, line);
	if (irc_parse(line, n, &m, &why) < 0) {
		log_debug("%s: dropping a malformed line: %s", c->t->name, why);
		return;
	}
	const struct handler *h = bsearch(m.command, handlers, NELEM(handlers), sizeof handlers[0], cmp_handler);
	if (h)
		h->fn(c, &m);
}

/* ---------------------------------------------------------------- replies */

struct wrap_ctx {
	struct irc *c;
	const char *cmd, *target, *addressee;
	unsigned lines;
};

static void
emit_piece(const char *s, size_t n, void *arg)
{
	struct wrap_ctx *w = arg;
	if (w->lines++ >= REPLY_LINES_MAX)
		return;
	if (w->addressee)
		out(w->c, false, "%s %s :%s: %.*s", w->cmd, w->target, w->addressee, (int)n, s);
	else
		out(w->c, false, "%s %s :%.*s", w->cmd, w->target, (int)n, s);
}

/*
 * The server relays ":nick!user@host CMD target :text" and may not exceed
 * 512 bytes with CR LF: the room left for text, assuming the longest
 * user@host until we have seen ours.
 */
static size_t
text_room(const struct irc *c, const char *cmd, const char *target, const char *addressee)
{
	size_t uh = c->userhost[0] ? strlen(c->userhost) : WORST_USER + 1 + WORST_HOST;
	size_t used = 1 + strlen(c->nick) + 1 + uh + 1 + strlen(cmd) + 1 + strlen(target) + 2 + 2;
	if (addressee)
		used += strlen(addressee) + 2;
	return used < IRC_MSG_MAX - 32 ? IRC_MSG_MAX - used : 32;
}

/* Each '\n'-separated line of text, cut to fit, to target; in channel addressed to addressee. */
static void
send_text(struct irc *c, const char *cmd, const char *target, const char *addressee, const char *text)
{
	struct wrap_ctx w = { c, cmd, target, addressee, 0 };
	size_t room = text_room(c, cmd, target, addressee);
	while (*text) {
		size_t n = strcspn(text, "\n");
		irc_wrap(text, n, room, emit_piece, &w);
		text += n + (text[n] == '\n');
	}
	if (w.lines > REPLY_LINES_MAX)
		log_notice("%s: a reply of %u lines was cut to %d", c->t->name, w.lines, REPLY_LINES_MAX);
}

static void
irc_send(struct transport *t, const struct reply *r)
{
	struct irc *c = t->impl;
	const struct event *ev = r->to;
	if (c->state != ST_REGISTERED && !(c->state == ST_STOPPING && !c->quit_sent)) {
		log_notice("%s: not connected; a reply is dropped", t->name);
		return;
	}
	const char *cmd = c->set.privmsg ? "PRIVMSG" : "NOTICE";
	if (ev->is_private) {
		send_text(c, cmd, ev->sender, NULL, r->text);
	} else if (c->set.private_details && (r->flags & REPLY_HEALTH)) {
		/* health details are personal: in full in private, a pointer in the channel */
		send_text(c, cmd, ev->sender, NULL, r->text);
		send_text(c, cmd, ev->room, ev->sender, r->flags & REPLY_REDFLAG ?
			"that needs a professional's look soon; details sent privately." : "details sent privately.");
	} else {
		send_text(c, cmd, ev->room, ev->sender, r->text);
	}
	pump(c);
}

/* ---------------------------------------------------------------- ops */

static int
irc_start(struct transport *t, struct buf *err)
{
	struct irc *c = t->impl;
	if (c->stopping || c->easy)
		return 0;
	timer_clear(c, &c->reconnect_timer);
	c->caps_offered = c->caps_on = 0;
	c->sasl_mechs[0] = c->account[0] = c->userhost[0] = '\0';
	c->cap_ended = c->joined_once = false;
	c->bot_mode = 0;
	c->whox = false;
	c->nick_try = 0;
	c->connected_ms = c->registered_ms = 0;
	c->ping_sent_ms = 0;
	snprintf(c->nick, sizeof c->nick, "%s", c->set.nick);
	log_info("%s: connecting to %s:%ld%s", t->name, c->set.host, c->set.port, c->set.tls ? " with TLS" : "");
	if (open_connection(c, err) < 0) {
		schedule_reconnect(c);
		return -1;
	}
	return 0;
}

static int64_t
on_stop_grace(struct loop *loop, void *arg)
{
	(void)loop;
	struct irc *c = arg;
	c->phase_timer = 0;
	disconnect(c, "stopped");
	return LOOP_STOP;
}

/* Says goodbye on the next turn, so that a reply made in the same turn ("Reloaded.") still leaves first. */
static int64_t
on_quit(struct loop *loop, void *arg)
{
	struct irc *c = arg;
	out(c, false, "QUIT :%s", c->quit_reason);
	c->quit_sent = true;
	c->phase_timer = loop_timer_add(loop, STOP_GRACE_MS, on_stop_grace, c);
	pump(c);   /* what is queued goes first, unpaced; then we wait for the server to close */
	return LOOP_STOP;
}

static void
irc_stop(struct transport *t, const char *reason)
{
	struct irc *c = t->impl;
	if (c->stopping)
		return;
	c->stopping = true;
	timer_clear(c, &c->reconnect_timer);
	if (c->state != ST_REGISTERED && c->state != ST_REGISTERING) {
		disconnect(c, "stopped");
		return;
	}
	snprintf(c->quit_reason, sizeof c->quit_reason, "%s", reason);
	c->state = ST_STOPPING;
	timer_clear(c, &c->phase_timer);
	c->phase_timer = loop_timer_add(t->loop, 0, on_quit, c);
}

static bool
irc_stopped(const struct transport *t)
{
	const struct irc *c = t->impl;
	return c->state == ST_STOPPED;
}

static void
irc_destroy(struct transport *t)
{
	struct irc *c = t->impl;
	c->stopping = true;
	disconnect(c, "destroyed");
	timer_clear(c, &c->reconnect_timer);
	while (c->nchans)
		chan_remove(c, &c->chans[c->nchans - 1]);
	free(c->chans);
	strv_free(c->conf_chans, c->nconf_chans);
	curl_loop_free(c->curl);
	irc_settings_free(&c->set);
	buf_free(&c->text);
	free(c);
	transport_free_common(t);
}

static void
irc_describe(const struct transport *t, struct buf *out_)
{
	const struct irc *c = t->impl;
	const struct irc_settings *s = &c->set;
	switch (c->state) {
	case ST_REGISTERED:
		buf_printf(out_, "connected to %s:%ld as %s, %zu channel%s", s->host, s->port, c->nick,
			joined_count(c), joined_count(c) == 1 ? "" : "s");
		break;
	case ST_CONNECTING:
	case ST_REGISTERING:
		buf_printf(out_, "connecting to %s:%ld", s->host, s->port);
		break;
	case ST_WAITING: {
		int64_t left = c->reconnect_at_ms - loop_now_ms();
		buf_printf(out_, "reconnecting in %lld s", (long long)((left > 0 ? left : 0) + 999) / 1000);
		if (c->last_error[0])
			buf_printf(out_, " (%s)", c->last_error);
		break;
	}
	case ST_STOPPING:
		buf_adds(out_, "disconnecting");
		break;
	default:
		buf_adds(out_, "disconnected");
	}
}

static int
irc_join(struct transport *t, const char *room, struct buf *err)
{
	struct irc *c = t->impl;
	char name[IRC_CHAN_MAX + 1], key[IRC_KEY_MAX + 1];
	if (!irc_chan_parse(room, name, key)) {
		buf_printf(err, "'%s' is not a channel name (#name or '#name key')", room);
		return -1;
	}
	struct chan *ch = chan_find(c, name);
	if (ch && ch->joined) {
		buf_printf(err, "already in %s", ch->name);
		return -1;
	}
	if (!ch && c->nchans >= CHANS_MAX) {
		buf_printf(err, "already in %d channels", CHANS_MAX);
		return -1;
	}
	ch = chan_add(c, name, key);
	if (*key && (!ch->key || strcmp(ch->key, key) != 0)) {
		free(ch->key);
		ch->key = xstrdup(key);
	}
	ch->rejoin_ms = 0;
	if (c->state == ST_REGISTERED)
		join_all(c);
	return 0;
}

static int
irc_part(struct transport *t, const char *room, struct buf *err)
{
	struct irc *c = t->impl;
	char name[IRC_CHAN_MAX + 1], key[IRC_KEY_MAX + 1];
	struct chan *ch = irc_chan_parse(room, name, key) ? chan_find(c, name) : NULL;
	if (!ch) {
		buf_printf(err, "not in %s", room);
		return -1;
	}
	if (ch->joined && c->state == ST_REGISTERED) {
		out(c, false, "PART %s", ch->name);
		pump(c);
	}
	chan_remove(c, ch);
	return 0;
}

static bool
same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The settings that the connection itself was made with. */
static bool
same_connection(const struct irc_settings *a, const struct irc_settings *b)
{
	if (a->nalts != b->nalts)
		return false;
	for (size_t i = 0; i < a->nalts; i++)
		if (strcmp(a->alts[i], b->alts[i]) != 0)
			return false;
	return same_str(a->host, b->host) && a->port == b->port && a->tls == b->tls && a->tls_verify == b->tls_verify &&
		same_str(a->ca_file, b->ca_file) && same_str(a->cert_file, b->cert_file) && same_str(a->key_file, b->key_file) &&
		same_str(a->nick, b->nick) && same_str(a->username, b->username) && same_str(a->realname, b->realname) &&
		a->sasl == b->sasl && same_str(a->sasl_user, b->sasl_user) && same_str(a->sasl_pass_file, b->sasl_pass_file);
}

/* A reload that leaves server, identity and SASL alone is applied without reconnecting. */
static bool
irc_compatible(const struct transport *t, const struct config *nc, const struct conf_section *ns)
{
	const struct irc *c = t->impl;
	struct irc_settings set;
	irc_settings_read(nc, ns, &set);
	bool same = same_connection(&c->set, &set);
	irc_settings_free(&set);
	return same;
}

/* Channels named in the config: added ones are joined, removed ones parted; !join'ed ones stay. */
static void
apply_channels(struct irc *c, const struct conf_section *s)
{
	char **list;
	size_t n = strv_split(conf_get(s, "channels"), &list);
	for (size_t i = 0; i < c->nconf_chans; i++) {
		bool kept = false;
		for (size_t j = 0; j < n && !kept; j++) {
			char name[IRC_CHAN_MAX + 1], key[IRC_KEY_MAX + 1];
			kept = irc_chan_parse(list[j], name, key) && irc_casecmp_eq(name, c->conf_chans[i]);
		}
		struct chan *ch = kept ? NULL : chan_find(c, c->conf_chans[i]);
		if (ch) {
			if (ch->joined && c->state == ST_REGISTERED)
				out(c, false, "PART %s", ch->name);
			chan_remove(c, ch);
		}
	}
	strv_free(c->conf_chans, c->nconf_chans);
	c->conf_chans = NULL;
	c->nconf_chans = 0;
	for (size_t j = 0; j < n; j++) {
		char name[IRC_CHAN_MAX + 1], key[IRC_KEY_MAX + 1];
		if (!irc_chan_parse(list[j], name, key))
			continue;
		if (c->nchans < CHANS_MAX || chan_find(c, name))
			chan_add(c, name, key);
		c->conf_chans = xrealloc(c->conf_chans, (c->nconf_chans + 1) * sizeof *c->conf_chans);
		c->conf_chans[c->nconf_chans++] = xstrdup(name);
	}
	strv_free(list, n);
	if (c->state == ST_REGISTERED) {
		join_all(c);
		pump(c);
	}
}

static void
irc_reconfigure(struct transport *t)
{
	struct irc *c = t->impl;
	/* the connection's own settings are the same (irc_compatible); the rest are taken as they are */
	irc_settings_free(&c->set);
	irc_settings_read(t->config, t->conf, &c->set);
	/* new flood settings take effect on the bucket as it is, tokens kept */
	c->bucket.burst = (double)(c->set.burst > 0 ? c->set.burst : 1);
	c->bucket.interval_ms = c->set.interval_ms > 0 ? c->set.interval_ms : 1;
	if (c->bucket.tokens > c->bucket.burst)
		c->bucket.tokens = c->bucket.burst;
	apply_channels(c, t->conf);
	log_info("%s: configuration reloaded, connection kept", t->name);
}

static const struct transport_ops irc_ops = {
	.start = irc_start,
	.send = irc_send,
	.stop = irc_stop,
	.stopped = irc_stopped,
	.destroy = irc_destroy,
	.describe = irc_describe,
	.join = irc_join,
	.part = irc_part,
	.compatible = irc_compatible,
	.reconfigure = irc_reconfigure,
};

static struct transport *
irc_create(const struct transport_env *env, const struct conf_section *s, struct buf *err)
{
	struct irc *c = xcalloc(1, sizeof *c);
	c->curl = curl_loop_new(env->loop, on_curl_progress, c, err);
	if (!c->curl) {
		free(c);
		return NULL;
	}
	c->multi = curl_loop_multi(c->curl);
	struct transport *t = transport_alloc(&irc_kind, env, s, s->name);
	c->t = t;
	c->bot = env->bot;
	c->fd = -1;
	buf_init(&c->text);
	irc_settings_read(env->config, s, &c->set);
	apply_channels(c, s);
	t->impl = c;
	t->ops = &irc_ops;
	/* three short lines: the composer packs an answer into them; send_text cuts to the wire */
	t->budget = (struct budget){ .max_lines = 3, .line_bytes = 360, .html = false };
	return t;
}

const struct transport_kind irc_kind = {
	.name = "irc",
	.validate = irc_conf_validate,
	.create = irc_create,
};
