/*
 * matrix_parse.h: what bot/matrix.c shares with bot/matrix_parse.c beyond
 * the pure parts that matrix.h declares: where the bot joined in a
 * timeline (both read the server's answers with json.h).
 * Pure: must not know the transport, curl or the store.
 */
#ifndef KNEEBOT_MATRIX_PARSE_H
#define KNEEBOT_MATRIX_PARSE_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "json.h"

/*
 * Where in this timeline the bot itself joined (a real join, not a
 * display name change): everything before it is history the bot was not
 * there for.  -1 when it joined earlier.
 */
int matrix_own_join_index(const cJSON *timeline, const char *user);

#endif
