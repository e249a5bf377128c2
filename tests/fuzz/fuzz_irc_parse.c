/*
 * fuzz_irc_parse.c: libFuzzer target for the IRC side that reads untrusted
 * bytes: the stream framing (irc_reader, fed in pieces whose sizes come from
 * the input), the line parser with its tag unescaping, the server-time
 * parser, and irc_wrap on the same bytes.  Checks the invariants the
 * transport relies on.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "irc_parse.h"

static struct irc_reader reader;

static void
check_msg(const struct irc_msg *m)
{
	assert(m->command && m->command[0]);
	assert(m->nparams <= IRC_MAX_PARAMS && m->ntags <= IRC_MAX_TAGS);
	for (size_t i = 0; i < m->nparams; i++)
		assert(strchr(m->params[i], '\r') == NULL && strchr(m->params[i], '\n') == NULL);
	if (m->source)
		assert(m->nick_len <= strlen(m->source));
	for (size_t i = 0; i < m->ntags; i++)
		(void)irc_time_ms(m->tags[i].value);
	(void)irc_tag(m, "account");
}

static size_t wrapped_max;

static void
on_piece(const char *s, size_t n, void *arg)
{
	(void)arg;
	assert(n > 0 && n <= (wrapped_max < 4 ? 4 : wrapped_max));   /* a limit below one character sends it whole */
	for (size_t i = 0; i < n; i++)
		assert(s[i] != '\r' && s[i] != '\n' && s[i] != '\0' && s[i] != '\001');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	/* the first byte sets the piece size of the reads */
	size_t step = (size_t)data[0] % 64 + 1;
	data++, size--;
	irc_reader_reset(&reader);
	for (size_t off = 0; off < size; off += step) {
		size_t room, k = size - off < step ? size - off : step;
		char *space = irc_reader_space(&reader, &room);
		assert(room >= k);
		memcpy(space, data + off, k);
		irc_reader_commit(&reader, k);
		size_t len;
		char *line;
		while ((line = irc_reader_next(&reader, &len))) {
			assert(len > 0 && len <= IRC_LINE_MAX);
			assert(memchr(line, '\n', len) == NULL && memchr(line, '\r', len) == NULL);
			struct irc_msg m;
			const char *why = NULL;
			if (irc_parse(line, len, &m, &why) == 0)
				check_msg(&m);
			else
				assert(why);
		}
	}
	wrapped_max = step * 7;
	irc_wrap((const char *)data, size, wrapped_max, on_piece, NULL);
	return 0;
}
