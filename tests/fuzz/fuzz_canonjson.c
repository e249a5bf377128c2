/*
 * fuzz_canonjson.c: canonical JSON of whatever cJSON parses.  Beyond "no
 * crash": an accepted value's canonical form parses again and is a fixed
 * point (printing it again gives the same bytes), so a signer and a
 * verifier of the same object agree.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "canonjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fixed_point(const struct buf *first)
{
	char err[CANONJSON_ERR_LEN];
	struct buf again;
	buf_init(&again);
	cJSON *k = cJSON_ParseWithLength(first->s, first->len);
	if (k == NULL)
		abort();   /* canonical output that is not JSON */
	if (canonjson_print(k, &again, err) != 0 || again.len != first->len || memcmp(again.s, first->s, first->len) != 0)
		abort();   /* not a fixed point */
	cJSON_Delete(k);
	buf_free(&again);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[CANONJSON_ERR_LEN];
	cJSON *j = cJSON_ParseWithLength((const char *)data, size);
	if (j == NULL)
		return 0;
	struct buf b;
	buf_init(&b);
	if (canonjson_print(j, &b, err) == 0)
		fixed_point(&b);
	buf_clear(&b);
	if (canonjson_signable(j, &b, err) == 0)
		fixed_point(&b);
	buf_free(&b);
	cJSON_Delete(j);
	return 0;
}
