/*
 * log.h: leveled logging to stderr for the journal.  With a journal (or any
 * non-terminal) each line starts with an sd-daemon priority prefix such as
 * "<6>".  Message bodies and secrets are logged only at debug, if at all:
 * members' health details are theirs.
 */
#ifndef KNEEBOT_LOG_H
#define KNEEBOT_LOG_H

#include <stdbool.h>

enum log_level { LOG_LVL_ERR = 3, LOG_LVL_WARN = 4, LOG_LVL_NOTICE = 5, LOG_LVL_INFO = 6, LOG_LVL_DEBUG = 7 };

void log_init(enum log_level level, const char *progname);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "debug", "info", "notice", "warning", "error"; -1 when unknown. */
int log_level_parse(const char *s);
bool log_debug_enabled(void);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));   /* adds strerror(errno) */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatal(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));   /* adds strerror(errno) */
_Noreturn void fatalx(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
