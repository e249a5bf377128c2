/*
 * http.c: HTTP requests on a curl_loop (libcurl's multi interface on
 * loop.c); never a blocking curl call.  Callbacks run after curl has
 * returned, from finish(), so they may start or cancel requests freely.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "curl_loop.h"
#include "http.h"
#include "log.h"
#include "loop.h"

#ifndef KNEEBOT_VERSION
#define KNEEBOT_VERSION "0.0.0"
#endif

#define CONNECT_TIMEOUT_MS 15000

struct http_req {
	struct http *h;
	CURL *easy;
	struct curl_slist *headers;
	char *post;               /* our copy of the request body */
	size_t post_len;
	struct buf body;
	size_t max_bytes;
	bool too_big;
	int64_t retry_after_ms;
	http_cb cb;
	void *arg;
	char errbuf[CURL_ERROR_SIZE];
	struct http_req *prev, *next;
};

struct http {
	struct loop *loop;
	struct curl_loop *cl;
	CURLM *multi;             /* cl's, for short */
	struct http_req *reqs;
	size_t n;
};

void
http_escape(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
			buf_addc(b, (char)c);
		} else {
			buf_addc(b, '%');
			buf_addc(b, hex[c >> 4]);
			buf_addc(b, hex[c & 15]);
		}
	}
	if (!b->s)
		buf_adds(b, "");
}

static void finish(struct http *h);

static void
on_progress(void *arg)
{
	finish(arg);
}

struct http *
http_new(struct loop *loop)
{
	struct http *h = xcalloc(1, sizeof *h);
	struct buf err;
	buf_init(&err);
	h->loop = loop;
	h->cl = curl_loop_new(loop, on_progress, h, &err);
	if (!h->cl)
		fatalx(71, "%s", err.s);
	h->multi = curl_loop_multi(h->cl);
	return h;
}

/* Wipes the bearer header before curl's copy is freed: it is a secret. */
static void
free_headers(struct curl_slist *l)
{
	for (struct curl_slist *p = l; p; p = p->next)
		explicit_bzero(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

static void
req_free(struct http *h, struct http_req *r)
{
	curl_multi_remove_handle(h->multi, r->easy);
	curl_easy_cleanup(r->easy);
	free_headers(r->headers);
	if (r->post)
		explicit_bzero(r->post, r->post_len);   /* a login body holds the password */
	free(r->post);
	buf_free(&r->body);
	if (r->prev)
		r->prev->next = r->next;
	else
		h->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	h->n--;
	free(r);
}

void
http_free(struct http *h)
{
	if (!h)
		return;
	while (h->reqs)
		req_free(h, h->reqs);
	curl_loop_free(h->cl);
	free(h);
}

static size_t
on_write(char *data, size_t size, size_t n, void *arg)
{
	struct http_req *r = arg;
	size_t len = size * n;
	if (r->body.len + len > r->max_bytes) {
		r->too_big = true;
		return 0;   /* curl fails the transfer with CURLE_WRITE_ERROR */
	}
	buf_add(&r->body, data, len);
	return len;
}

/* Only Retry-After matters to us (429 and 503); HTTP dates are ignored. */
static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
	struct http_req *r = arg;
	size_t len = size * n;
	static const char name[] = "retry-after:";
	if (len > sizeof name && strncasecmp(data, name, sizeof name - 1) == 0) {
		const char *p = data + sizeof name - 1;
		while (p < data + len && (*p == ' ' || *p == '\t'))
			p++;
		long long secs = 0;
		bool digits = false;
		while (p < data + len && isdigit((unsigned char)*p) && secs < 86400) {
			secs = secs * 10 + (*p++ - '0');
			digits = true;
		}
		if (digits)
			r->retry_after_ms = secs * 1000;
	}
	return len;
}

static void
set_method(struct http_req *r, const struct http_opts *o)
{
	CURL *e = r->easy;
	if (o->method == HTTP_GET) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
		return;
	}
	/* POST and PUT always carry a body; Matrix wants {} rather than nothing */
	r->post_len = o->body ? o->body_len : 2;
	r->post = xstrndup(o->body ? o->body : "{}", r->post_len);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->post);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->post_len);
	if (o->method == HTTP_PUT)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
}

static void
set_headers(struct http_req *r, const struct http_opts *o)
{
	r->headers = curl_slist_append(r->headers, "Content-Type: application/json");
	r->headers = curl_slist_append(r->headers, "Accept: application/json");
	r->headers = curl_slist_append(r->headers, "Expect:");   /* no 100-continue round trip */
	if (o->bearer) {
		struct buf a;
		buf_init(&a);
		buf_printf(&a, "Authorization: Bearer %s", o->bearer);
		r->headers = curl_slist_append(r->headers, a.s);
		explicit_bzero(a.s, a.len);
		buf_free(&a);
	}
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
}

struct http_req *
http_start(struct http *h, const struct http_opts *o, http_cb cb, void *arg)
{
	struct http_req *r = xcalloc(1, sizeof *r);
	r->h = h;
	r->cb = cb;
	r->arg = arg;
	r->retry_after_ms = -1;
	r->max_bytes = o->max_bytes ? o->max_bytes : HTTP_MAX_BODY_DEFAULT;
	buf_init(&r->body);
	r->easy = curl_easy_init();
	if (!r->easy)
		fatalx(71, "curl_easy_init failed");
	CURL *e = r->easy;
	curl_easy_setopt(e, CURLOPT_URL, o->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_USERAGENT, "kneebot/" KNEEBOT_VERSION);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	set_method(r, o);
	set_headers(r, o);
	r->next = h->reqs;
	if (h->reqs)
		h->reqs->prev = r;
	h->reqs = r;
	h->n++;
	/* curl asks for a 0 ms timer here; the transfer starts on the next loop turn */
	curl_multi_add_handle(h->multi, e);
	return r;
}

void
http_cancel(struct http *h, struct http_req *r)
{
	if (r)
		req_free(h, r);
}

size_t
http_in_flight(const struct http *h)
{
	return h->n;
}

static void
complete(struct http *h, struct http_req *r, CURLcode rc)
{
	struct http_resp resp = { .retry_after_ms = r->retry_after_ms, .done_us = loop_now_us() };
	if (!r->body.s)
		buf_adds(&r->body, "");
	resp.body = r->body.s;
	resp.len = r->body.len;
	if (rc == CURLE_OK) {
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &resp.status);
	} else if (r->too_big) {
		snprintf(r->errbuf, sizeof r->errbuf, "response larger than %zu bytes", r->max_bytes);
		resp.error = r->errbuf;
	} else {
		if (!r->errbuf[0])
			snprintf(r->errbuf, sizeof r->errbuf, "%s", curl_easy_strerror(rc));
		resp.error = r->errbuf;
	}
	http_cb cb = r->cb;
	void *arg = r->arg;
	/* detach first: the callback may cancel or start others, never this one */
	curl_multi_remove_handle(h->multi, r->easy);
	cb(&resp, arg);
	req_free(h, r);
}

static void
finish(struct http *h)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(h->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		/* msg dies with remove_handle: take what we need now */
		CURL *e = msg->easy_handle;
		CURLcode rc = msg->data.result;
		struct http_req *r = NULL;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
		if (r)
			complete(h, r, rc);
	}
}
