/* canonjson.c: Matrix canonical JSON from a cJSON tree (see canonjson.h). */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "canonjson.h"

/* 2^53 - 1: the largest integer every JSON parser's double holds exactly. */
#define MAX_SAFE_INT 9007199254740991.0

struct canon {
	struct buf *out;
	char *err;
	const char *const *skip;   /* top-level keys left out (signatures, unsigned) */
};

static const char *const signable_skip[] = { "signatures", "unsigned", NULL };
static const char *const no_skip[] = { NULL };

static int print_value(struct canon *c, const cJSON *v, int depth);

static int
fail(struct canon *c, const char *what, const char *key)
{
	snprintf(c->err, CANONJSON_ERR_LEN, "canonical JSON: %s%s%.64s%s", what,
		key ? " (key \"" : "", key ? key : "", key ? "\")" : "");
	return -1;
}

/* The spec grammar's escapes: short forms where JSON has them, else \u00xx; '/' and DEL stay raw. */
static void
print_string(struct buf *b, const char *s)
{
	static const char short_esc[0x20] = {
		['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r',
	};
	buf_addc(b, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			buf_addc(b, '\\');
			buf_addc(b, (char)*p);
		} else if (*p < 0x20 && short_esc[*p]) {
			buf_addc(b, '\\');
			buf_addc(b, short_esc[*p]);
		} else if (*p < 0x20) {
			buf_printf(b, "\\u%04x", *p);
		} else {
			buf_addc(b, (char)*p);
		}
	}
	buf_addc(b, '"');
}

static int
checked_string(struct canon *c, const char *s, const char *key)
{
	if (s == NULL)
		return fail(c, "string without value", key);
	if (!utf8_valid(s, strlen(s)))
		return fail(c, "invalid UTF-8", key);
	print_string(c->out, s);
	return 0;
}

static int
print_number(struct canon *c, const cJSON *v)
{
	double d = v->valuedouble;
	if (!isfinite(d) || d != trunc(d))
		return fail(c, "not an integer", v->string);
	if (fabs(d) > MAX_SAFE_INT)
		return fail(c, "integer outside [-(2^53)+1, 2^53-1]", v->string);
	buf_printf(c->out, "%lld", (long long)d);   /* -0.0 prints as 0 */
	return 0;
}

static bool
skipped(const char *const *skip, const char *key)
{
	for (; *skip; skip++)
		if (strcmp(*skip, key) == 0)
			return true;
	return false;
}

static int
by_key(const void *a, const void *b)
{
	/* strcmp compares unsigned bytes: UTF-8 byte order is code-point order */
	return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* Children of object v in key order, skipped keys left out; NULL on a bad or duplicate key. */
static const cJSON **
sorted_members(struct canon *c, const cJSON *v, const char *const *skip, size_t *n)
{
	size_t count = 0;
	for (const cJSON *m = v->child; m; m = m->next)
		count++;
	const cJSON **m = xcalloc(count, sizeof *m);
	*n = 0;
	for (const cJSON *it = v->child; it; it = it->next) {
		if (it->string == NULL) {
			free(m);
			fail(c, "object member without a key", NULL);
			return NULL;
		}
		if (!skipped(skip, it->string))
			m[(*n)++] = it;
	}
	qsort(m, *n, sizeof *m, by_key);
	for (size_t i = 1; i < *n; i++) {
		if (strcmp(m[i - 1]->string, m[i]->string) == 0) {
			fail(c, "duplicate key", m[i]->string);
			free(m);
			return NULL;
		}
	}
	return m;
}

static int
print_object(struct canon *c, const cJSON *v, const char *const *skip, int depth)
{
	size_t n;
	const cJSON **m = sorted_members(c, v, skip, &n);
	if (m == NULL)
		return -1;
	int rc = 0;
	buf_addc(c->out, '{');
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (i)
			buf_addc(c->out, ',');
		rc = checked_string(c, m[i]->string, NULL);
		buf_addc(c->out, ':');
		if (rc == 0)
			rc = print_value(c, m[i], depth + 1);
	}
	buf_addc(c->out, '}');
	free(m);
	return rc;
}

static int
print_array(struct canon *c, const cJSON *v, int depth)
{
	buf_addc(c->out, '[');
	for (const cJSON *e = v->child; e; e = e->next) {
		if (e != v->child)
			buf_addc(c->out, ',');
		if (print_value(c, e, depth + 1) < 0)
			return -1;
	}
	buf_addc(c->out, ']');
	return 0;
}

static int
print_value(struct canon *c, const cJSON *v, int depth)
{
	if (depth > CANONJSON_MAX_DEPTH)
		return fail(c, "nested too deeply", NULL);
	switch (v->type & 0xff) {
	case cJSON_False: buf_adds(c->out, "false"); return 0;
	case cJSON_True: buf_adds(c->out, "true"); return 0;
	case cJSON_NULL: buf_adds(c->out, "null"); return 0;
	case cJSON_Number: return print_number(c, v);
	case cJSON_String: return checked_string(c, v->valuestring, v->string);
	case cJSON_Array: return print_array(c, v, depth);
	case cJSON_Object: return print_object(c, v, depth == 0 ? c->skip : no_skip, depth);
	default: return fail(c, "value of no JSON type (raw or invalid item)", v->string);
	}
}

int
canonjson_print(const cJSON *v, struct buf *out, char err[CANONJSON_ERR_LEN])
{
	struct canon c = { out, err, no_skip };
	if (v == NULL)
		return fail(&c, "no value", NULL);
	return print_value(&c, v, 0);
}

int
canonjson_signable(const cJSON *obj, struct buf *out, char err[CANONJSON_ERR_LEN])
{
	struct canon c = { out, err, signable_skip };
	if (!cJSON_IsObject(obj))
		return fail(&c, "a signed value must be an object", NULL);
	return print_value(&c, obj, 0);
}
