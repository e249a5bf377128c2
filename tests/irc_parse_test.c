/* irc_parse_test.c: the IRC line parser, the framing of a byte stream, and the wrapping of outgoing text. */
#include <stdbool.h>
#include <string.h>

#include "buf.h"
#include "irc_parse.h"
#include "t.h"

/* Parses a copy of s (the parser writes into its line). */
static int
parse(const char *s, struct irc_msg *m, char *copy, size_t cap)
{
	size_t n = strlen(s);
	if (n + 1 > cap)
		return -2;
	memcpy(copy, s, n + 1);
	const char *why;
	return irc_parse(copy, n, m, &why);
}

static void
test_basic(void)
{
	struct irc_msg m;
	char b[1024];
	T_OK(parse(":runner!run@host.example PRIVMSG #club :my knee hurts", &m, b, sizeof b) == 0, "PRIVMSG parses");
	T_STREQ(m.source, "runner!run@host.example", "source kept whole");
	T_OK(m.nick_len == 6, "nick length within the source");
	T_STREQ(m.command, "PRIVMSG", "command");
	T_OK(m.nparams == 2, "two parameters");
	T_STREQ(m.params[0], "#club", "target");
	T_STREQ(m.params[1], "my knee hurts", "trailing with spaces");

	T_OK(parse("ping :irc.example", &m, b, sizeof b) == 0 && !m.source, "no source");
	T_STREQ(m.command, "PING", "command upper-cased");
	T_OK(parse(":irc.example 001 kneebot :Welcome", &m, b, sizeof b) == 0 && strcmp(m.command, "001") == 0, "numeric");
	T_OK(m.nick_len == strlen("irc.example"), "a server source is all nick");

	T_OK(parse("CMD a b   ", &m, b, sizeof b) == 0 && m.nparams == 2 && strcmp(m.params[1], "b") == 0, "trailing spaces ignored");
	T_OK(parse("CMD  a    b", &m, b, sizeof b) == 0 && m.nparams == 2, "runs of spaces between parameters");
	T_OK(parse("CMD a :", &m, b, sizeof b) == 0 && m.nparams == 2 && m.params[1][0] == '\0', "empty trailing parameter");
	T_OK(parse("CMD :a :b c", &m, b, sizeof b) == 0 && m.nparams == 1 && strcmp(m.params[0], "a :b c") == 0, "colons inside the trailing");
	T_OK(parse("CMD", &m, b, sizeof b) == 0 && m.nparams == 0, "no parameters");
	T_OK(parse(":a!b@c PRIVMSG #x :caf\xc3\xa9 \xff", &m, b, sizeof b) == 0, "bytes that are not UTF-8 are the router's problem, not the parser's");
}

static void
test_tags(void)
{
	struct irc_msg m;
	char b[1024];
	T_OK(parse("@time=2024-01-02T03:04:05.678Z;account=alice;bot;+draft/reply=abc :a!b@c PRIVMSG #x :hi", &m, b, sizeof b) == 0, "tags parse");
	T_OK(m.ntags == 4, "four tags");
	T_STREQ(irc_tag(&m, "account"), "alice", "account tag");
	T_OK(irc_tag(&m, "bot") && irc_tag(&m, "bot")[0] == '\0', "a tag without a value is present and empty");
	T_STREQ(irc_tag(&m, "+draft/reply"), "abc", "client tag with vendor");
	T_OK(irc_tag(&m, "nope") == NULL, "an absent tag is NULL");
	T_OK(irc_time_ms(irc_tag(&m, "time")) == 1704164645678LL, "server-time in ms");

	T_OK(parse("@a=semi\\:space\\sback\\\\cr\\rlf\\n;b=x\\yz;c=end\\ :s CMD", &m, b, sizeof b) == 0, "escaped tags parse");
	T_STREQ(irc_tag(&m, "a"), "semi;space back\\cr\rlf\n", "every escape of message-tags unescaped");
	T_STREQ(irc_tag(&m, "b"), "xyz", "an unknown escape is the character");
	T_STREQ(irc_tag(&m, "c"), "end", "a trailing backslash is dropped");
	T_OK(parse("@a=1;a=2;;=x :s CMD", &m, b, sizeof b) == 0, "duplicate and empty tag keys");
	T_STREQ(irc_tag(&m, "a"), "2", "the last of a repeated tag wins");
	T_OK(parse("@a=1 CMD x", &m, b, sizeof b) == 0 && strcmp(m.command, "CMD") == 0, "tags without a source");
}

static void
test_malformed(void)
{
	struct irc_msg m;
	static char b[IRC_LINE_MAX * 2], line[IRC_LINE_MAX * 2];
	const char *bad[] = { "@tags-only", ":source-only", ": CMD", "12 x", "1234 x", "C0MMAND x", "@a=b :src", "" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		T_OK(parse(bad[i], &m, b, sizeof b) == -1, "malformed line refused: '%s'", bad[i]);
	memcpy(b, "PING a\0b", 8);
	const char *why = NULL;
	T_OK(irc_parse(b, 8, &m, &why) == -1 && why, "a NUL inside the line is refused (%s)", why ? why : "");

	/* 32 parameters are fine, 33 are not */
	strcpy(line, "CMD");
	for (int i = 0; i < IRC_MAX_PARAMS; i++)
		strcat(line, " p");
	T_OK(parse(line, &m, b, sizeof b) == 0 && m.nparams == IRC_MAX_PARAMS, "%d parameters", IRC_MAX_PARAMS);
	strcat(line, " p");
	T_OK(parse(line, &m, b, sizeof b) == -1, "one parameter too many");

	/* 510 bytes of message (512 with CR LF) are fine, 511 are not */
	memset(line, 'a', sizeof line);
	memcpy(line, "PRIVMSG #x :", 12);
	line[510] = '\0';
	T_OK(parse(line, &m, b, sizeof b) == 0, "a 510-byte message");
	line[510] = 'a';
	line[511] = '\0';
	T_OK(parse(line, &m, b, sizeof b) == -1, "a 511-byte message is too long");

	/* 8191 bytes of tags with '@' and space are fine, 8192 are not */
	memset(line, 'x', sizeof line);
	line[0] = '@';
	line[1] = 'k';
	line[2] = '=';
	strcpy(line + 8190, " PING :x");
	T_OK(parse(line, &m, b, sizeof b) == 0 && strlen(irc_tag(&m, "k")) == 8187, "8191 bytes of tags");
	line[8190] = 'x';
	strcpy(line + 8191, " PING :x");
	T_OK(parse(line, &m, b, sizeof b) == -1, "8192 bytes of tags are too many");

	memset(line, 'x', sizeof line);
	line[0] = '@';
	line[1] = 'k';
	for (int i = 0; i < 100; i++)
		line[2 + i * 2] = ';', line[3 + i * 2] = 'a' + i % 26;
	strcpy(line + 300, " PING");
	T_OK(parse(line, &m, b, sizeof b) == 0 && m.ntags == IRC_MAX_TAGS, "tags past %d are dropped, not overflowed", IRC_MAX_TAGS);
}

struct lines {
	char v[16][64];
	size_t n;
};

/* Feeds s to a reader in pieces of `step` bytes, collecting the lines. */
static void
feed(struct irc_reader *r, const char *s, size_t n, size_t step, struct lines *out)
{
	for (size_t i = 0; i < n; i += step) {
		size_t room, k = n - i < step ? n - i : step;
		char *space = irc_reader_space(r, &room);
		memcpy(space, s + i, k);
		irc_reader_commit(r, k);
		size_t len;
		char *line;
		while ((line = irc_reader_next(r, &len)) && out->n < 16)
			snprintf(out->v[out->n++], sizeof out->v[0], "%s", line);
	}
}

static void
test_framing(void)
{
	static struct irc_reader r;
	const char *stream = "PING :a\r\n:s NOTICE x :b\n:s NOTICE x :c\r\r\nPING :d\r\n\r\nPONG";
	size_t n = strlen(stream);
	bool all = true;
	for (size_t step = 1; step <= n; step++) {
		struct lines got = { .n = 0 };
		irc_reader_reset(&r);
		feed(&r, stream, n, step, &got);
		all &= got.n == 4 && strcmp(got.v[0], "PING :a") == 0 && strcmp(got.v[1], ":s NOTICE x :b") == 0 &&
			strcmp(got.v[2], ":s NOTICE x :c") == 0 && strcmp(got.v[3], "PING :d") == 0;
	}
	T_OK(all, "CR LF, bare LF and empty lines framed alike in pieces of every size (split inside CR LF too)");
	struct lines got = { .n = 0 };
	feed(&r, "\n", 1, 1, &got);
	T_OK(got.n == 1 && strcmp(got.v[0], "PONG") == 0, "an unfinished line waits for its end");

	size_t room, len;
	size_t size;
	size = sizeof(char[IRC_LINE_MAX + 100]);
	static char big[IRC_LINE_MAX + 100];
	memset(big, 'x', size);
	irc_reader_reset(&r);
	got.n = 0;
	feed(&r, big, size, 4096, &got);
	feed(&r, "yyy\r\nPING :after\r\n", 18, 5, &got);
	T_OK(got.n == 1 && strcmp(got.v[0], "PING :after") == 0 && r.dropped == 1, "an overlong line is dropped whole, the next one kept");
	char *sp = irc_reader_space(&r, &room);
	T_OK(sp == r.buf && room >= IRC_LINE_MAX, "room for a full line after it");
	(void)len;
}

struct pieces {
	char v[64][600];
	size_t n;
};

static void
collect(const char *s, size_t n, void *arg)
{
	struct pieces *p = arg;
	if (p->n < 64)
		snprintf(p->v[p->n++], sizeof p->v[0], "%.*s", (int)n, s);
}

static void
test_wrap(void)
{
	struct pieces p = { .n = 0 };
	static const char evil[] = "Rest first.\rPRIVMSG #club :INJECTED\nQUIT :x\0hidden";
	irc_wrap(evil, sizeof evil - 1, 400, collect, &p);
	T_OK(p.n == 1 && strcmp(p.v[0], "Rest first. PRIVMSG #club :INJECTED QUIT :xhidden") == 0, "CR, LF and NUL never reach the wire");
	p.n = 0;
	irc_wrap("\001ACTION waves\001", 14, 400, collect, &p);
	T_OK(p.n == 1 && strcmp(p.v[0], "ACTION waves") == 0, "\\001 dropped: a reply cannot become CTCP");

	/* a long text of words with two- and three-byte characters */
	struct buf text;
	buf_init(&text);
	for (int i = 0; i < 200; i++)
		buf_printf(&text, "%sstride%d\xe2\x80\x94" "caf\xc3\xa9", i ? " " : "", i);
	p.n = 0;
	irc_wrap(text.s, text.len, 300, collect, &p);
	bool fits = p.n > 5, valid = true, words = true;
	struct buf joined;
	buf_init(&joined);
	for (size_t i = 0; i < p.n; i++) {
		fits &= strlen(p.v[i]) <= 300;
		valid &= utf8_valid(p.v[i], strlen(p.v[i])) != 0;
		words &= p.v[i][0] != ' ' && p.v[i][strlen(p.v[i]) - 1] != ' ';
		buf_printf(&joined, "%s%s", i ? " " : "", p.v[i]);
	}
	T_OK(fits, "%zu pieces, each at most 300 bytes", p.n);
	T_OK(valid, "every piece valid UTF-8");
	T_OK(words && strcmp(joined.s, text.s) == 0, "cut at spaces: the pieces joined give the text back");

	/* one word longer than a line: cut inside it, but never inside a character */
	buf_clear(&text);
	for (int i = 0; i < 300; i++)
		buf_adds(&text, "\xc3\xa9");
	p.n = 0;
	irc_wrap(text.s, text.len, 101, collect, &p);
	valid = p.n == 6;
	for (size_t i = 0; i < p.n; i++)
		valid &= strlen(p.v[i]) <= 101 && utf8_valid(p.v[i], strlen(p.v[i]));
	T_OK(valid, "a word longer than a line is cut between characters (%zu pieces)", p.n);
	p.n = 0;
	irc_wrap("\xe2\x80\x94\xe2\x80\x94", 6, 2, collect, &p);
	T_OK(p.n == 2 && strcmp(p.v[0], "\xe2\x80\x94") == 0, "a limit below one character still sends whole characters");
	p.n = 0;
	irc_wrap("   \r\n  ", 7, 100, collect, &p);
	T_OK(p.n == 0, "nothing but spaces sends nothing");
	buf_free(&text);
	buf_free(&joined);
}

static void
test_misc(void)
{
	T_OK(irc_casecmp_eq("Knee[bot]\\~", "knee{BOT}|^"), "rfc1459 case mapping");
	T_OK(!irc_casecmp_eq("kneebot", "kneebot_"), "different lengths differ");
	T_OK(irc_time_ms("2024-01-02T03:04:05Z") == 1704164645000LL, "server-time without fraction");
	T_OK(irc_time_ms("2024-13-02T03:04:05Z") == 0 && irc_time_ms("yesterday") == 0 && irc_time_ms(NULL) == 0, "bad times are 0");
}

int
main(void)
{
	test_basic();
	test_tags();
	test_malformed();
	test_framing();
	test_wrap();
	test_misc();
	T_EXIT();
}
