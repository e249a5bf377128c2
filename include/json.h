/*
 * json.h: lenient cJSON accessors for what servers and peers send: a missing
 * key or another type gives NULL or the default, never an error, and keys
 * are matched case-sensitively (cJSON's plain getter ignores case).  Shared
 * by the Matrix transport and the encryption engine; knows nothing else.
 */
#ifndef KNEEBOT_JSON_H
#define KNEEBOT_JSON_H

#include <cjson/cJSON.h>
#include <stdint.h>

static inline const cJSON *
jget(const cJSON *o, const char *key)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static inline const char *
jstr(const cJSON *o, const char *key)
{
	const cJSON *v = jget(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A string that is not empty: ids, keys and algorithms are never "". */
static inline const char *
jstr_nonempty(const cJSON *o, const char *key)
{
	const char *s = jstr(o, key);
	return s && *s ? s : NULL;
}

static inline const cJSON *
jobj(const cJSON *o, const char *key)
{
	const cJSON *v = jget(o, key);
	return cJSON_IsObject(v) ? v : NULL;
}

static inline const cJSON *
jarr(const cJSON *o, const char *key)
{
	const cJSON *v = jget(o, key);
	return cJSON_IsArray(v) ? v : NULL;
}

/* A number as int64, read from valuedouble (valueint saturates); def when absent. */
static inline int64_t
jint(const cJSON *o, const char *key, int64_t def)
{
	const cJSON *v = jget(o, key);
	if (!cJSON_IsNumber(v) || v->valuedouble != v->valuedouble)
		return def;
	if (v->valuedouble > 9e15)
		return (int64_t)9e15;
	if (v->valuedouble < -9e15)
		return (int64_t)-9e15;
	return (int64_t)v->valuedouble;
}

#endif
