/*
 * http.h: HTTP requests over libcurl's multi interface, driven by loop.c
 * through curl_loop.h, so a slow server never blocks the loop.  A finished
 * request calls its callback once, from the loop and never from inside
 * curl, so the callback may start or cancel requests.  Matrix's only way to
 * curl (irc.c uses curl_loop.h for its connection); knows nothing of Matrix.
 */
#ifndef KNEEBOT_HTTP_H
#define KNEEBOT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct loop;
struct http;
struct http_req;

enum http_method { HTTP_GET, HTTP_POST, HTTP_PUT };

#define HTTP_MAX_BODY_DEFAULT (4u << 20)   /* a response larger than this is an error */

struct http_opts {
	enum http_method method;
	const char *url;
	const char *bearer;     /* Authorization: Bearer token, or NULL; wiped from curl's copy after use */
	const char *body;       /* JSON request body, copied; NULL for none */
	size_t body_len;
	long timeout_ms;        /* whole request, connection included */
	size_t max_bytes;       /* response cap; 0 means HTTP_MAX_BODY_DEFAULT */
};

/* What came back; valid only during the callback. */
struct http_resp {
	long status;            /* HTTP status, or 0 when the transfer failed */
	const char *error;      /* why the transfer failed (status 0), else NULL */
	const char *body;       /* NUL-terminated, never NULL */
	size_t len;
	int64_t retry_after_ms; /* from a Retry-After header in seconds, or -1 */
	int64_t done_us;        /* monotonic time the response was complete */
};

typedef void (*http_cb)(const struct http_resp *resp, void *arg);

struct http *http_new(struct loop *loop);
/* Cancels everything in flight without calling callbacks. */
void http_free(struct http *h);
/*
 * Starts a request; the callback runs exactly once unless the request is
 * cancelled first.  The returned handle is valid until then.
 */
struct http_req *http_start(struct http *h, const struct http_opts *o, http_cb cb, void *arg);
/* Abandons a request in flight; its callback never runs. */
void http_cancel(struct http *h, struct http_req *r);
size_t http_in_flight(const struct http *h);

/* Appends s percent-encoded as one URL path segment or query value (RFC 3986 unreserved kept). */
void http_escape(struct buf *b, const char *s);

#endif
