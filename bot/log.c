/* log.c: leveled logging to stderr, with sd-daemon prefixes for the journal. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"

static enum log_level level = LOG_LVL_INFO;
static const char *prog = "kneebot";
static int prefix = -1;   /* <N> priority prefixes: with a journal or when not a tty */

void
log_init(enum log_level lvl, const char *progname)
{
	level = lvl;
	if (progname)
		prog = progname;
	prefix = getenv("JOURNAL_STREAM") != NULL || !isatty(STDERR_FILENO);
}

void log_set_level(enum log_level lvl) { level = lvl; }
enum log_level log_get_level(void) { return level; }
bool log_debug_enabled(void) { return level >= LOG_LVL_DEBUG; }

int
log_level_parse(const char *s)
{
	static const struct { const char *name; enum log_level lvl; } names[] = {
		{ "debug", LOG_LVL_DEBUG }, { "info", LOG_LVL_INFO }, { "notice", LOG_LVL_NOTICE },
		{ "warning", LOG_LVL_WARN }, { "warn", LOG_LVL_WARN }, { "error", LOG_LVL_ERR },
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcasecmp(s, names[i].name) == 0)
			return (int)names[i].lvl;
	return -1;
}

static void
vlog(enum log_level lvl, int errnum, const char *fmt, va_list ap)
{
	if (lvl > level)
		return;
	if (prefix < 0)
		prefix = getenv("JOURNAL_STREAM") != NULL || !isatty(STDERR_FILENO);
	char line[2048];
	char *p = line, *end = line + sizeof line;
	int n;
	if (prefix)
		n = snprintf(p, (size_t)(end - p), "<%d>", (int)lvl);
	else
		n = snprintf(p, (size_t)(end - p), "%s: ", prog);
	p += n > 0 ? n : 0;
	n = vsnprintf(p, (size_t)(end - p), fmt, ap);
	if (n > 0)
		p = (size_t)n < (size_t)(end - p) ? p + n : end - 1;
	if (errnum && p < end - 1)
		snprintf(p, (size_t)(end - p), ": %s", strerror(errnum));
	/* one line per call, whatever a peer put in the arguments */
	for (char *q = line; *q; q++)
		if (*q == '\n' || *q == '\r')
			*q = ' ';
	fprintf(stderr, "%s\n", line);
}

#define LOGFN(name, lvl, witherr)                       \
	void name(const char *fmt, ...)                 \
	{                                               \
		int e = errno;                          \
		va_list ap;                             \
		va_start(ap, fmt);                      \
		vlog(lvl, witherr ? e : 0, fmt, ap);    \
		va_end(ap);                             \
		errno = e;                              \
	}

LOGFN(log_warn, LOG_LVL_WARN, 1)
LOGFN(log_warnx, LOG_LVL_WARN, 0)
LOGFN(log_err, LOG_LVL_ERR, 0)
LOGFN(log_notice, LOG_LVL_NOTICE, 0)
LOGFN(log_info, LOG_LVL_INFO, 0)
LOGFN(log_debug, LOG_LVL_DEBUG, 0)

void
fatal(int status, const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_LVL_ERR, e, fmt, ap);
	va_end(ap);
	exit(status);
}

void
fatalx(int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_LVL_ERR, 0, fmt, ap);
	va_end(ap);
	exit(status);
}
