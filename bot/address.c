/* address.c: finds and removes the bot's name at the start or as an @mention. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "address.h"

static bool
nickchar(char c)
{
	return isalnum((unsigned char)c) || strchr("-_[]\\`^{}|", c) != NULL;
}

/* Length of "nick" at s when it stands as a whole word there, else 0. */
static size_t
nick_at(const char *s, size_t n, const char *nick, size_t nn)
{
	if (nn == 0 || n < nn || strncasecmp(s, nick, nn) != 0)
		return 0;
	return n == nn || !nickchar(s[nn]) ? nn : 0;
}

bool
address_strip(const char *text, size_t n, const char *nick, struct buf *out)
{
	size_t nn = strlen(nick), i = 0;
	bool addressed = false;
	buf_clear(out);
	while (i < n && isspace((unsigned char)text[i]))
		i++;
	/* "kneebot: ...", "kneebot, ...", "kneebot ..." */
	size_t l = nick_at(text + i, n - i, nick, nn);
	if (l && (i + l == n || strchr(":, \t", text[i + l]))) {
		addressed = true;
		i += l;
		while (i < n && strchr(":, \t", text[i]))
			i++;
	}
	for (; i < n; i++) {
		bool word_start = i == 0 || !nickchar(text[i - 1]);
		if (text[i] == '@' && word_start && (l = nick_at(text + i + 1, n - i - 1, nick, nn))) {
			addressed = true;
			i += l;
			if (i + 1 < n && (text[i + 1] == ':' || text[i + 1] == ','))
				i++;
			/* "@kneebot my knee": nothing before it, so no space either */
			if (out->len == 0)
				while (i + 1 < n && (text[i + 1] == ' ' || text[i + 1] == '\t'))
					i++;
			continue;
		}
		buf_addc(out, text[i]);
	}
	if (!out->s)
		buf_adds(out, "");
	return addressed;
}
