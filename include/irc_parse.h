/*
 * irc_parse.h: IRC lines as bytes in, parsed messages out.  Pure functions
 * with no I/O and no knowledge of the bot: the framing of a byte stream into
 * lines (CR LF, bare LF or bare CR), and the parse of one line with IRCv3
 * message tags (escaped values), source, command and parameters.  Everything
 * a parsed message points to lives in the line it was parsed from, which the
 * parser rewrites in place; the caller owns that line.
 */
#ifndef KNEEBOT_IRC_PARSE_H
#define KNEEBOT_IRC_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IRC_TAGS_MAX 8191      /* "@tags " with its '@' and space, IRCv3 message-tags */
#define IRC_MSG_MAX 512        /* the rest, CR LF included (RFC 1459) */
#define IRC_LINE_MAX (IRC_TAGS_MAX + IRC_MSG_MAX)
#define IRC_MAX_PARAMS 32      /* RFC 1459 says 15; some servers send more in 005 */
#define IRC_MAX_TAGS 64

struct irc_tag {
	const char *key;
	const char *value;     /* unescaped; "" when the tag had no value */
};

struct irc_msg {
	struct irc_tag tags[IRC_MAX_TAGS];
	size_t ntags;
	const char *source;    /* "nick!user@host" or a server name; NULL when absent */
	size_t nick_len;       /* length of the nick (or server name) at the start of source */
	const char *command;   /* upper-cased word, or three digits */
	const char *params[IRC_MAX_PARAMS];
	size_t nparams;
};

/*
 * Parses line[0..n) (no CR LF) in place; line[n] must be writable.  Returns
 * 0, or -1 with a short reason in *why when the line is malformed.
 */
int irc_parse(char *line, size_t n, struct irc_msg *m, const char **why);

/* The value of a tag (unescaped), "" when present without a value, NULL when absent. */
const char *irc_tag(const struct irc_msg *m, const char *key);

/*
 * Finds the first line in buf[0..len): sets *line_len to its length without
 * the terminator and returns the bytes it takes up with the terminator, or 0
 * when no terminator has arrived yet.  CR LF, bare LF and bare CR all end a
 * line, so a CR LF split across two reads yields one line and an empty one.
 */
size_t irc_split(const char *buf, size_t len, size_t *line_len);

/*
 * A byte stream cut into lines.  Reads go into irc_reader_space() and are
 * counted with irc_reader_commit(); irc_reader_next() hands out each complete
 * non-empty line, NUL-terminated in place, valid until the next
 * irc_reader_space().  A line longer than IRC_LINE_MAX is dropped whole.
 */
struct irc_reader {
	char buf[IRC_LINE_MAX * 2];
	size_t len, off;       /* bytes held; start of the first unread one */
	size_t scan;           /* no line end before this offset */
	bool skip;             /* inside an overlong line: drop up to its end */
	unsigned long dropped; /* overlong lines dropped so far */
};

void irc_reader_reset(struct irc_reader *r);
char *irc_reader_space(struct irc_reader *r, size_t *room);
void irc_reader_commit(struct irc_reader *r, size_t n);
char *irc_reader_next(struct irc_reader *r, size_t *len);

/*
 * server-time "2024-05-01T12:34:56.789Z" to milliseconds since the epoch;
 * 0 when it is not that shape.
 */
int64_t irc_time_ms(const char *s);

/*
 * Cuts one line of outgoing text into pieces of at most max bytes, at a
 * space when there is one in the last third, never inside a UTF-8 character;
 * CR, LF, NUL and CTCP's \001 are dropped first, so nothing of the text can
 * end the line early or start a command.  emit is called once per piece.
 */
void irc_wrap(const char *text, size_t n, size_t max,
	void (*emit)(const char *piece, size_t len, void *arg), void *arg);

/* IRC case-insensitive equality (rfc1459 casemapping: []\~ are the capitals of {}|^). */
bool irc_casecmp_eq(const char *a, const char *b);
/* The rfc1459 lower case of in, cut to cap - 1 bytes. */
void irc_fold(const char *in, char *out, size_t cap);

#endif
