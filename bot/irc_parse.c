/* irc_parse.c: IRC line framing and the IRCv3 line parser; pure, in place. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "irc_parse.h"

/* The unescaped value of a tag, written over the escaped one (never longer). */
static void
unescape(char *v)
{
	static const char from[] = ":s\\rn", to[] = "; \\\r\n";
	char *o = v;
	for (char *p = v; *p; p++) {
		if (*p != '\\') {
			*o++ = *p;
			continue;
		}
		if (!p[1])
			break;   /* a lone trailing backslash is dropped */
		const char *f = strchr(from, *++p);
		*o++ = f ? to[f - from] : *p;
	}
	*o = '\0';
}

static void
parse_tags(char *s, struct irc_msg *m)
{
	while (s && *s) {
		char *next = strchr(s, ';');
		if (next)
			*next++ = '\0';
		char *eq = strchr(s, '=');
		if (eq)
			*eq++ = '\0';
		if (*s && m->ntags < IRC_MAX_TAGS) {
			if (eq)
				unescape(eq);
			m->tags[m->ntags++] = (struct irc_tag){ s, eq ? eq : "" };
		}
		s = next;
	}
}

static char *
skip_spaces(char *p)
{
	while (*p == ' ')
		p++;
	return p;
}

/* Letters (upper-cased in place) or exactly three digits. */
static bool
valid_command(char *c)
{
	size_t n = strlen(c);
	if (n == 3 && isdigit((unsigned char)c[0]) && isdigit((unsigned char)c[1]) && isdigit((unsigned char)c[2]))
		return true;
	for (size_t i = 0; i < n; i++) {
		if (!isalpha((unsigned char)c[i]))
			return false;
		c[i] = (char)toupper((unsigned char)c[i]);
	}
	return n > 0;
}

static int
fail(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return -1;
}

int
irc_parse(char *line, size_t n, struct irc_msg *m, const char **why)
{
	m->ntags = m->nparams = m->nick_len = 0;
	m->source = m->command = NULL;
	line[n] = '\0';
	if (strlen(line) != n)
		return fail(why, "NUL byte in line");
	char *p = line;
	if (*p == '@') {
		char *sp = strchr(p, ' ');
		if (!sp)
			return fail(why, "tags without a message");
		if ((size_t)(sp - line) + 1 > IRC_TAGS_MAX)
			return fail(why, "tags longer than 8191 bytes");
		*sp = '\0';
		parse_tags(p + 1, m);
		p = sp + 1;
	}
	p = skip_spaces(p);
	if ((size_t)(line + n - p) > IRC_MSG_MAX - 2)
		return fail(why, "message longer than 510 bytes");
	if (*p == ':') {
		char *sp = strchr(++p, ' ');
		if (!sp || sp == p)
			return fail(why, "source without a command");
		*sp = '\0';
		m->source = p;
		m->nick_len = strcspn(p, "!@");
		p = skip_spaces(sp + 1);
	}
	char *cmd = p;
	p += strcspn(p, " ");
	if (*p)
		*p++ = '\0';
	if (!valid_command(cmd))
		return fail(why, "no valid command");
	m->command = cmd;
	for (;;) {
		p = skip_spaces(p);
		if (!*p)
			break;
		if (m->nparams == IRC_MAX_PARAMS)
			return fail(why, "too many parameters");
		if (*p == ':') {
			m->params[m->nparams++] = p + 1;
			break;
		}
		m->params[m->nparams++] = p;
		p += strcspn(p, " ");
		if (*p)
			*p++ = '\0';
	}
	return 0;
}

const char *
irc_tag(const struct irc_msg *m, const char *key)
{
	/* the last of repeated tags wins */
	for (size_t i = m->ntags; i-- > 0;)
		if (strcmp(m->tags[i].key, key) == 0)
			return m->tags[i].value;
	return NULL;
}

size_t
irc_split(const char *buf, size_t len, size_t *line_len)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '\n' || buf[i] == '\r') {
			*line_len = i;
			return i + 1;
		}
	}
	return 0;
}

void
irc_reader_reset(struct irc_reader *r)
{
	r->len = r->off = r->scan = 0;
	r->skip = false;
}

char *
irc_reader_space(struct irc_reader *r, size_t *room)
{
	if (r->off) {
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->scan -= r->off;
		r->off = 0;
	}
	*room = sizeof r->buf - 1 - r->len;   /* one byte kept for a final NUL */
	return r->buf + r->len;
}

void
irc_reader_commit(struct irc_reader *r, size_t n)
{
	r->len += n;
}

char *
irc_reader_next(struct irc_reader *r, size_t *len)
{
	for (;;) {
		/* bytes before scan hold no line end: a line trickling in is not searched again and again */
		size_t n, from = r->scan > r->off ? r->scan - r->off : 0;
		size_t used = irc_split(r->buf + r->off + from, r->len - r->off - from, &n);
		if (!used) {
			r->scan = r->len;
			if (r->len - r->off > IRC_LINE_MAX) {
				/* no end in sight: drop what we hold and the rest of the line */
				r->len = r->off = r->scan = 0;
				if (!r->skip)
					r->dropped++;
				r->skip = true;
			}
			return NULL;
		}
		n += from;
		used += from;
		char *line = r->buf + r->off;
		r->off += used;
		r->scan = r->off;
		if (r->skip) {
			r->skip = false;
			continue;
		}
		if (n) {
			line[n] = '\0';
			*len = n;
			return line;
		}
	}
}

/* Reads exactly n digits at s into *out. */
static bool
digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

int64_t
irc_time_ms(const char *s)
{
	int y, mo, d, h, mi, sec, ms = 0;
	if (!s || strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
		!digits(s + 8, 2, &d) || s[10] != 'T' || !digits(s + 11, 2, &h) || s[13] != ':' ||
		!digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
		return 0;
	const char *p = s + 19;
	if (*p == '.') {
		int frac = 0, scale = 100;
		for (p++; isdigit((unsigned char)*p); p++, scale /= 10)
			frac += scale ? (*p - '0') * scale : 0;
		ms = frac;
	}
	if (*p != 'Z' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return 0;
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec };
	time_t t = timegm(&tm);
	return t < 0 ? 0 : (int64_t)t * 1000 + ms;
}

static size_t
trim_spaces(const char **p, size_t n)
{
	while (n && **p == ' ')
		(*p)++, n--;
	while (n && (*p)[n - 1] == ' ')
		n--;
	return n;
}

void
irc_wrap(const char *text, size_t n, size_t max, void (*emit)(const char *piece, size_t len, void *arg), void *arg)
{
	char *clean = xmalloc(n + 1);
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = text[i];
		if (ch == '\r' || ch == '\n')
			clean[m++] = ' ';   /* a line break inside one line: keep the words apart */
		else if (ch != '\0' && ch != '\001')
			clean[m++] = ch;
	}
	const char *p = clean;
	size_t len = trim_spaces(&p, m);
	while (len) {
		size_t cut = max && len > max ? utf8_cut(p, len, max) : len;
		if (cut < len) {
			/* break at the last space in the final third, else mid-word */
			size_t sp = cut;
			while (sp > max * 2 / 3 && p[sp] != ' ')
				sp--;
			if (p[sp] == ' ')
				cut = sp;
			if (cut == 0)   /* max below one character (or bytes that are not UTF-8): one character whole */
				for (cut = 1; cut < len && cut < 4 && ((unsigned char)p[cut] & 0xc0) == 0x80; cut++)
					;
		}
		const char *piece = p;
		size_t plen = trim_spaces(&piece, cut);
		if (plen)
			emit(piece, plen, arg);
		p += cut;
		len = trim_spaces(&p, len - cut);
	}
	free(clean);
}

/* rfc1459 casemapping: the Scandinavian []\~ are the capitals of {}|^. */
static unsigned char
irc_lower(unsigned char c)
{
	static const char up[] = "[]\\~", low[] = "{}|^";
	const char *q = c ? strchr(up, c) : NULL;
	return q ? (unsigned char)low[q - up] : (unsigned char)tolower(c);
}

void
irc_fold(const char *in, char *out, size_t cap)
{
	size_t n = 0;
	for (; *in && n + 1 < cap; in++)
		out[n++] = (char)irc_lower((unsigned char)*in);
	out[n] = '\0';
}

bool
irc_casecmp_eq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (irc_lower((unsigned char)*a) != irc_lower((unsigned char)*b))
			return false;
	return *a == *b;
}
