/*
 * matrix_parse.h: what bot/matrix.c shares with bot/matrix_parse.c beyond
 * the pure parts that matrix.h declares: the lenient cJSON accessors both
 * read the server's answers with (a missing key or another type gives NULL
 * or the default, never an error) and where the bot joined in a timeline.
 * Pure: must not know the transport, curl or the store.
 */
#ifndef KNEEBOT_MATRIX_PARSE_H
#define KNEEBOT_MATRIX_PARSE_H

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

/*
 * Where in this timeline the bot itself joined (a real join, not a
 * display name change): everything before it is history the bot was not
 * there for.  -1 when it joined earlier.
 */
int matrix_own_join_index(const cJSON *timeline, const char *user);

#endif
