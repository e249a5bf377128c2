/*
 * t.h: the unit tests' harness.  Each check prints "ok - what" or
 * "not ok - what (file:line)"; tests/run.sh counts them.  A test program
 * exits non-zero when any check failed.
 */
#ifndef KNEEBOT_T_H
#define KNEEBOT_T_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_failures;

__attribute__((format(printf, 4, 5))) static int
t_check(int ok, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	printf("%s - ", ok ? "ok" : "not ok");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (!ok) {
		printf(" (%s:%d)", file, line);
		t_failures++;
	}
	putchar('\n');
	fflush(stdout);
	return ok;
}

#define T_OK(cond, ...) t_check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define T_STREQ(a, b, ...) t_check(strcmp((a), (b)) == 0, __FILE__, __LINE__, __VA_ARGS__)
#define T_EXIT() return t_failures ? 1 : 0

/* The repository's own knowledge base, wherever the test runs from. */
static inline const char *
t_responses(void)
{
	const char *d = getenv("KNEEBOT_RESPONSES");
	return d ? d : "responses";
}

#endif
