/*
 * irc_wire_test.c: what the IRC transport writes on the wire, seen from a
 * socket this test listens on and answers as a scripted server: the
 * registration, replies cut to fit 512 bytes with the relay prefix, CR and LF
 * in reply text that cannot start a command, the flood bucket with PONG
 * ahead of it, CTCP, QUIT; and the checks of [irc.NAME] sections.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bot.h"
#include "buf.h"
#include "config.h"
#include "irc.h"
#include "kb.h"
#include "log.h"
#include "loop.h"
#include "t.h"
#include "transport.h"

static char dir[] = "/tmp/kneebot-wire-XXXXXX";

static char *
write_file(const char *name, const char *text)
{
	struct buf p;
	buf_init(&p);
	buf_printf(&p, "%s/%s", dir, name);
	FILE *f = fopen(p.s, "w");
	fputs(text, f);
	fclose(f);
	chmod(p.s, 0600);
	return buf_take(&p);
}

static struct config *
load(const char *text, struct buf *err)
{
	char *path = write_file("k.conf", text);
	struct config *c = NULL;
	buf_clear(err);
	if (config_load(path, &c, err) < 0)
		c = NULL;
	free(path);
	return c;
}

/* --- the scripted server --- */

struct server {
	int lfd, fd;
	struct buf in;     /* bytes from the bot not yet taken as lines */
	struct loop *loop;
};

static int
listen_any(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

/* Runs the bot's loop until the server has a connection (or ms pass). */
static bool
accept_bot(struct server *s, int ms)
{
	int64_t end = loop_now_ms() + ms;
	while (loop_now_ms() < end) {
		loop_once(s->loop, 10);
		s->fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK);
		if (s->fd >= 0)
			return true;
	}
	return false;
}

static void
say(struct server *s, const char *text)
{
	size_t n = strlen(text);
	if (write(s->fd, text, n) != (ssize_t)n)
		perror("write");
}

/* The next line the bot sent (without CR LF) into out, driving the loop for at most ms. */
static bool
hear(struct server *s, int ms, struct buf *out)
{
	int64_t end = loop_now_ms() + ms;
	for (;;) {
		char *nl = s->in.len ? memchr(s->in.s, '\n', s->in.len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - s->in.s) + 1;
			buf_clear(out);
			buf_add(out, s->in.s, n);
			memmove(s->in.s, s->in.s + n, s->in.len - n);
			s->in.len -= n;
			return true;
		}
		if (loop_now_ms() >= end)
			return false;
		loop_once(s->loop, 5);
		char b[4096];
		ssize_t r = read(s->fd, b, sizeof b);
		if (r > 0)
			buf_add(&s->in, b, (size_t)r);
		else if (r == 0)
			return false;
	}
}

/* Hears lines until one starts with prefix. */
static bool
hear_cmd(struct server *s, const char *prefix, int ms, struct buf *out)
{
	while (hear(s, ms, out))
		if (strncmp(out->s, prefix, strlen(prefix)) == 0)
			return true;
	return false;
}

static bool
closed_by_bot(struct server *s, int ms)
{
	int64_t end = loop_now_ms() + ms;
	while (loop_now_ms() < end) {
		loop_once(s->loop, 5);
		char b[4096];
		ssize_t r = read(s->fd, b, sizeof b);
		if (r == 0)
			return true;
		if (r < 0 && errno != EAGAIN)
			return true;
	}
	return false;
}

static const char *conf_fmt =
	"[bot]\nnick = kneebot\nstate_dir = %s\nroom_max_per_min = 0\nresponses_dir = %s\n"
	"[irc.t]\nhost = 127.0.0.1\nport = %d\ntls = no\nchannels = #club, #keyed k3y\nadmins = account:alice\n"
	"alt_nicks = kneebot2\nflood_burst = 4\nflood_interval_ms = 150\nping_interval_s = 3\nping_timeout_s = 1\n";

static void
test_wire(void)
{
	struct server s = { .fd = -1 };
	int port = 0;
	s.lfd = listen_any(&port);
	s.loop = loop_new();
	buf_init(&s.in);
	struct buf err, line, conf;
	buf_init(&err);
	buf_init(&line);
	buf_init(&conf);
	char kbdir[PATH_MAX];
	buf_printf(&conf, conf_fmt, dir, realpath(t_responses(), kbdir) ? kbdir : t_responses(), port);
	struct config *c = load(conf.s, &err);
	struct kb *kb = NULL;
	T_OK(c != NULL, "the test's config loads%s%s", err.s ? ": " : "", err.s ? err.s : "");
	T_OK(c && kb_load(c->bot.responses_dir, &kb, &err) == 0, "the knowledge base loads");
	if (!c || !kb)
		return;
	/* the real bot around the transport, so that commands and admin checks run as in production */
	struct bot *bot = bot_new(s.loop, c, kb);
	T_OK(bot_start(bot, false, &err) == 0, "the bot starts with one IRC network");
	struct transport *t = bot_transport(bot, "t");
	T_OK(accept_bot(&s, 5000), "it connects (through libcurl)");

	T_OK(hear(&s, 2000, &line) && strcmp(line.s, "CAP LS 302\r\n") == 0, "CAP LS 302 first");
	T_OK(hear(&s, 2000, &line) && strcmp(line.s, "NICK kneebot\r\n") == 0, "then NICK");
	T_OK(hear(&s, 2000, &line) && strncmp(line.s, "USER kneebot 0 * :", 18) == 0, "then USER");
	say(&s, ":srv CAP * LS * :multi-prefix sasl=PLAIN\r\n:srv CAP * LS :batch znc.in/self-message account-notify extended-join\r\n");
	T_OK(hear(&s, 2000, &line) && strcmp(line.s, "CAP REQ :multi-prefix batch account-notify extended-join\r\n") == 0,
		"requests what it wants of a multi-line CAP LS, not SASL without credentials");
	say(&s, ":srv CAP * ACK :multi-prefix batch account-notify extended-join\r\n");
	T_OK(hear(&s, 2000, &line) && strcmp(line.s, "CAP END\r\n") == 0, "CAP END after the ACK");
	say(&s, ":srv 433 * kneebot :Nickname is already in use\r\n");
	T_OK(hear(&s, 2000, &line) && strcmp(line.s, "NICK kneebot2\r\n") == 0, "nick in use: the alternate");
	say(&s, ":srv 433 * kneebot2 :Nickname is already in use\r\n");
	T_OK(hear(&s, 2000, &line) && strcmp(line.s, "NICK kneebot_\r\n") == 0, "then the nick with '_'");
	/* a welcome without our mask: the bot must assume the longest user@host */
	say(&s, ":srv 001 kneebot_ :Welcome\r\n:srv 005 kneebot_ BOT=B WHOX :are supported\r\n:srv 422 kneebot_ :No MOTD\r\n");
	T_OK(hear(&s, 2000, &line) && strcmp(line.s, "MODE kneebot_ +B\r\n") == 0, "bot mode from ISUPPORT BOT");
	T_OK(hear(&s, 2000, &line) && strcmp(line.s, "JOIN #keyed,#club k3y\r\n") == 0, "one JOIN, keyed channel first");
	/* the JOIN echo shows the bot its mask, here as long as a server may make it */
	const char *relay = ":kneebot_!~abcdefghij@" "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh" " ";
	T_OK(strlen(relay) == 1 + 8 + 1 + 11 + 1 + 63 + 1, "the relay prefix is as long as they come");
	say(&s, relay);
	say(&s, "JOIN #club\r\n");
	T_OK(hear(&s, 2000, &line) && strcmp(line.s, "WHO #club %tna,611\r\n") == 0, "no account-tag but WHOX: WHO for the accounts, paced too");

	/* a reply with CR, LF, CTCP's \001 and a very long line */
	struct buf text;
	buf_init(&text);
	buf_adds(&text, "Rest first.\rPRIVMSG #club :INJECTED\r\nQUIT :bye\n\001ACTION x\001 ");
	for (int i = 0; i < 400; i++)
		buf_printf(&text, "w%d\xc3\xa9 ", i);
	struct event ev = { .transport = t, .room = "#club", .sender = "runner", .text = "", .is_private = false };
	struct reply r = { &ev, text.s, NULL, REPLY_HEALTH };
	int64_t sent = loop_now_ms();
	t->ops->send(t, &r);
	/* the server answers a PING while the reply is paced: the PONG must not wait */
	say(&s, "PING :now\r\n");
	size_t longest = 0;
	bool clean = true, fits = true, addressed = true, pong_early = false, spaced = true;
	int lines = 0;
	int64_t at[64];
	while (hear(&s, 1000, &line)) {
		if (strcmp(line.s, "PONG :now\r\n") == 0) {
			pong_early = lines < 4;
			continue;
		}
		if (strncmp(line.s, "PING ", 5) == 0) {
			say(&s, ":srv PONG srv :kneebot\r\n");   /* our keepalive is short in this test */
			continue;
		}
		if (lines < 64)
			at[lines] = loop_now_ms() - sent;
		lines++;
		clean &= strchr(line.s, '\r') == line.s + line.len - 2 && strchr(line.s, '\n') == line.s + line.len - 1;
		clean &= strchr(line.s, '\001') == NULL;
		fits &= strlen(relay) + line.len <= 512;
		longest = strlen(relay) + line.len > longest ? strlen(relay) + line.len : longest;
		addressed &= strncmp(line.s, "NOTICE #club :runner: ", 22) == 0;
	}
	/* MODE and JOIN took 2 of the 4 tokens: from the third line on, one per 150 ms */
	for (int i = 3; i < lines && i < 64; i++)
		spaced &= at[i] - at[i - 1] >= 100;
	T_OK(lines >= 6, "the long reply goes out as %d lines", lines);
	T_OK(clean, "no CR, LF or \\001 inside a line: reply text cannot inject a command");
	T_OK(fits, "every line fits 512 bytes with the relay prefix");
	T_OK(longest > 490, "and the lines are filled (longest %zu bytes as relayed)", longest);
	T_OK(addressed, "NOTICE to the channel, addressed to the asker, on every line");
	T_OK(spaced, "after the burst, lines leave one per interval");
	T_OK(pong_early, "PONG goes ahead of the paced reply");

	say(&s, ":runner!r@h PRIVMSG kneebot_ :\001VERSION\001\r\n");
	T_OK(hear_cmd(&s, "NOTICE runner :\001VERSION kneebot ", 2000, &line), "CTCP VERSION answered by NOTICE");
	say(&s, ":runner!r@h PRIVMSG kneebot_ :\001PING 42\001\r\n:runner!r@h PRIVMSG kneebot_ :\001TIME\001\r\n");
	T_OK(hear(&s, 2000, &line) && strcmp(line.s, "NOTICE runner :\001PING 42\001\r\n") == 0, "CTCP PING echoed");
	T_OK(!hear(&s, 400, &line), "other CTCP ignored");
	say(&s, ":srv 396 kneebot_ cloak.example :is now your displayed host\r\n:srv PING :x\r\n");
	hear(&s, 1000, &line);

	/* admins by account without account-tag: WHOX, account-notify, NICK, PART */
	say(&s, ":srv 354 kneebot_ 611 alice alice\r\n:srv 354 kneebot_ 611 mallory 0\r\n:srv 315 kneebot_ #club :End\r\n");
	static const struct { const char *lines, *from, *want, *what; } admin[] = {
		{ ":alice!a@h PRIVMSG #club :!status\r\n", "alice", "Up ", "an account from WHOX makes an admin" },
		{ ":mallory!m@h PRIVMSG #club :!status\r\n", "mallory", "Sorry", "no account: refused" },
		{ ":alice!a@h ACCOUNT *\r\n:alice!a@h PRIVMSG #club :!status\r\n", "alice", "Sorry", "logged out (account-notify): refused" },
		{ ":alice!a@h ACCOUNT alice\r\n:alice!a@h NICK alice2\r\n:alice2!a@h PRIVMSG #club :!status\r\n", "alice2", "Up ", "logged in again and renamed: still the admin" },
		{ ":mallory!m@h NICK alice\r\n:alice!m@h PRIVMSG #club :!status\r\n", "alice", "Sorry", "the admin's old nick taken by another: refused" },
		{ ":alice2!a@h PART #club\r\n:alice2!a@h JOIN #club * :A\r\n:alice2!a@h PRIVMSG #club :!status\r\n", "alice2", "Sorry", "gone and back without an account (extended-join): refused" },
	};
	for (size_t i = 0; i < sizeof admin / sizeof admin[0]; i++) {
		char want[128];
		snprintf(want, sizeof want, "NOTICE #club :%s: %s", admin[i].from, admin[i].want);
		say(&s, admin[i].lines);
		T_OK(hear_cmd(&s, "NOTICE #club :", 3000, &line) && strncmp(line.s, want, strlen(want)) == 0, "%s", admin[i].what);
	}

	/* keepalive: quiet for a second, the bot PINGs; no answer, it drops the link and plans a reconnect */
	T_OK(hear_cmd(&s, "PING :", 5000, &line), "a quiet link gets our own PING");
	T_OK(closed_by_bot(&s, 3000), "no PONG: the bot treats the link as dead");
	struct buf desc;
	buf_init(&desc);
	t->ops->describe(t, &desc);
	T_OK(strncmp(desc.s, "reconnecting in ", 16) == 0, "describe: %s", desc.s);
	close(s.fd);

	/* it comes back by itself, and QUITs with a reason when stopped */
	T_OK(accept_bot(&s, 5000), "reconnects after the backoff");
	say(&s, ":srv 001 kneebot :Welcome kneebot!kb@host.example\r\n:srv 376 kneebot :End\r\n");
	T_OK(hear_cmd(&s, "JOIN ", 3000, &line), "rejoins after reconnecting");
	say(&s, ":kneebot!kb@host.example JOIN :#club\r\n");
	for (int i = 0; i < 20; i++)
		loop_once(s.loop, 5);
	buf_clear(&desc);
	t->ops->describe(t, &desc);
	T_OK(strstr(desc.s, "connected to 127.0.0.1") && strstr(desc.s, "as kneebot, 1 channel"), "describe: %s", desc.s);
	t->ops->stop(t, "see you");
	T_OK(hear_cmd(&s, "QUIT :see you", 2000, &line), "stop: QUIT with the reason");
	T_OK(!t->ops->stopped(t), "not stopped until the server closes");
	say(&s, "ERROR :Closing link\r\n");
	close(s.fd);
	for (int i = 0; i < 50 && !t->ops->stopped(t); i++)
		loop_once(s.loop, 10);
	T_OK(t->ops->stopped(t), "stopped once the server has closed");
	bot_free(bot);
	close(s.lfd);
	loop_free(s.loop);
	buf_free(&s.in);
	buf_free(&err);
	buf_free(&line);
	buf_free(&conf);
	buf_free(&text);
	buf_free(&desc);
}

/* The text with line breaks shown as " | ", for one-line test names (static storage). */
static const char *
one_line(const char *s)
{
	static char b[2][1024];
	static int k;
	char *o = b[k ^= 1];
	size_t n = 0;
	for (; *s && n + 4 < sizeof b[0]; s++) {
		if (*s == '\n') {
			if (s[1])
				n += (size_t)snprintf(o + n, sizeof b[0] - n, " | ");
		} else {
			o[n++] = *s;
		}
	}
	o[n] = '\0';
	return o;
}

/* A server that accepts and then says nothing: the TLS handshake must not hold the loop. */
static void
test_stalled_handshake(void)
{
	struct server s = { .fd = -1 };
	int port = 0;
	s.lfd = listen_any(&port);
	s.loop = loop_new();
	buf_init(&s.in);
	struct buf err, conf;
	buf_init(&err);
	buf_init(&conf);
	buf_printf(&conf, "[bot]\nstate_dir = %s\n[irc.slow]\nhost = 127.0.0.1\nport = %d\ntls = yes\n", dir, port);
	struct config *c = load(conf.s, &err);
	struct transport_env env = { s.loop, NULL, c, NULL };
	struct transport *t = c ? irc_kind.create(&env, &c->nets[0], &err) : NULL;
	int64_t t0 = loop_now_ms();
	T_OK(t && t->ops->start(t, &err) == 0, "start() returns at once (%lld ms)", (long long)(loop_now_ms() - t0));
	T_OK(loop_now_ms() - t0 < 300 && accept_bot(&s, 5000), "TLS: the server accepts and stays silent");
	int64_t worst = 0, end = loop_now_ms() + 600;
	while (t && loop_now_ms() < end) {
		int64_t t1 = loop_now_ms();
		loop_once(s.loop, 20);
		worst = loop_now_ms() - t1 > worst ? loop_now_ms() - t1 : worst;
	}
	struct buf desc;
	buf_init(&desc);
	if (t)
		t->ops->describe(t, &desc);
	T_OK(worst < 300, "the pending handshake never holds the loop (longest turn %lld ms)", (long long)worst);
	T_OK(desc.s && strncmp(desc.s, "connecting to", 13) == 0, "describe: %s", desc.s ? desc.s : "");
	if (t)
		t->ops->destroy(t);
	config_free(c);
	if (s.fd >= 0)
		close(s.fd);
	close(s.lfd);
	loop_free(s.loop);
	buf_free(&s.in);
	buf_free(&err);
	buf_free(&conf);
	buf_free(&desc);
}

static void
test_validate(void)
{
	static const struct { const char *section, *want; } cases[] = {
		{ "host = h\nbogus = 1\n", "[irc.n] unknown key 'bogus'" },
		{ "port = 6667\n", "[irc.n] host is required" },
		{ "host = h\nadmins = alice\n", "a bare nick can be taken by anyone" },
		{ "host = h\nadmins = account:alice, mask:*!*@trusted.example\n", NULL },
		{ "host = h\nchannels = club\n", "channel 'club'" },
		{ "host = h\nchannels = #a b c\n", "channel '#a b c'" },
		{ "host = h\ntls = no\ntls_ca_file = ca.pem\n", "tls_ca_file with tls = no" },
		{ "host = h\nsasl_mechanism = PLAIN\nsasl_username = u\n", "SASL PLAIN needs" },
		{ "host = h\nsasl_mechanism = EXTERNAL\n", "SASL EXTERNAL needs" },
		{ "host = h\nsasl_mechanism = SCRAM\n", "expected PLAIN or EXTERNAL" },
		{ "host = h\nsasl_mechanism = PLAIN\nsasl_username = u\nsasl_password_file = missing\n", "cannot open secret file" },
		{ "host = h\nsasl_mechanism = PLAIN\nsasl_username = u\nsasl_password_file = pw\n", NULL },
		{ "host = h\nnick = 9lives\n", "an IRC nick is" },
		{ "host = h\nport = 70000\n", "from 1 to 65535" },
		{ "host = h\nflood_control = maybe\n", "expected yes or no" },
		{ "host = h\nreply_command = shout\n", "expected notice or privmsg" },
		{ "host = h\nreply_mode = loud\n", "expected ambient or addressed" },
		{ "host = h\nprefix = two words\n", "prefix must be" },
		{ "host = 2001:db8::1\nport = 6697\n", NULL },
		{ "host = h\nflood_burst = 0\n", "flood_burst = '0'" },
	};
	free(write_file("pw", "secret\n"));
	struct buf err, conf;
	buf_init(&err);
	buf_init(&conf);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		buf_clear(&conf);
		buf_printf(&conf, "[bot]\nstate_dir = %s\n\n[irc.n]\n%s", dir, cases[i].section);
		struct config *c = load(conf.s, &err);
		if (!cases[i].want) {
			T_OK(c != NULL, "valid: %s%s", one_line(cases[i].section), err.s ? one_line(err.s) : "");
		} else {
			bool lined = err.s && strstr(err.s, "k.conf:") && strstr(err.s, ": [irc.n] ");
			T_OK(!c && lined && strstr(err.s, cases[i].want), "refused with file:line: %s -> %s", one_line(cases[i].section),
				err.s ? one_line(err.s) : "(no error)");
		}
		config_free(c);
	}
	buf_free(&err);
	buf_free(&conf);
}

int
main(void)
{
	log_init(LOG_LVL_WARN, "irc_wire_test");
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir))
		return 1;
	test_validate();
	test_stalled_handshake();
	test_wire();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	T_EXIT();
}
