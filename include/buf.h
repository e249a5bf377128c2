/*
 * buf.h: a growable NUL-terminated byte string and bounded formatting.
 * A buf owns its memory; buf_free() releases it.  Allocation failure is
 * fatal (a bot that cannot allocate 1 KiB has nothing better to do).
 */
#ifndef KNEEBOT_BUF_H
#define KNEEBOT_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
	char *s;
	size_t len, cap;
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_clear(struct buf *b);
/* Cuts the string back to len bytes (len <= b->len). */
void buf_truncate(struct buf *b, size_t len);
void buf_add(struct buf *b, const char *s, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Appends s with & < > " ' escaped for HTML. */
void buf_add_html(struct buf *b, const char *s, size_t n);
/* Appends s as the contents of a JSON string (no quotes). */
void buf_add_json(struct buf *b, const char *s, size_t n);
/* Detaches the string; the caller frees it. */
char *buf_take(struct buf *b);

/* Writes into dst[0..cap), always terminating; returns dst + written so calls chain. */
char *seprintf(char *dst, char *end, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* FNV-1a: the hash of the project's small tables (KB terms, word cache, memory). */
uint64_t hash_bytes(const void *p, size_t n);

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Length of the longest prefix of s[0..n) that is whole UTF-8 characters and at most max bytes. */
size_t utf8_cut(const char *s, size_t n, size_t max);
/* Nonzero when s[0..n) is valid UTF-8. */
int utf8_valid(const char *s, size_t n);

#endif
