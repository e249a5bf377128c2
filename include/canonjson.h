/*
 * canonjson.h: Matrix canonical JSON (spec appendix "Signing JSON") printed
 * from a cJSON tree: object keys sorted by code point at every depth, no
 * whitespace, raw UTF-8, the spec's minimal string escapes, integers only.
 * This is the byte string every ed25519 signature of Matrix covers.
 *
 * Refused (-1 and a message): a number that is not an integer in
 * [-(2^53)+1, 2^53-1] (cJSON itself would print 9007199254740991 lossily
 * as 9.00719925474099e+15, so numbers are printed here, never by cJSON),
 * a duplicate key (cJSON keeps both, while other parsers keep the last:
 * a signer and a verifier would disagree on the object), invalid UTF-8,
 * raw cJSON items, nesting past CANONJSON_MAX_DEPTH.  -0 prints as 0 and
 * 1e10 as 10000000000, as the spec's own examples demand.  cJSON cuts a
 * string at an escaped \u0000; the bytes signed are then the bytes used,
 * so a signature can only fail over it, never cover something else.
 *
 * Knows nothing of keys, signatures or libolm: crypto.c signs these bytes.
 */
#ifndef KNEEBOT_CANONJSON_H
#define KNEEBOT_CANONJSON_H

#include <cjson/cJSON.h>

#include "buf.h"

#define CANONJSON_ERR_LEN 256
/* Deeper than any Matrix object; cJSON's parser stops at 1000. */
#define CANONJSON_MAX_DEPTH 64

/* Appends the canonical form of v to out.  On error out may hold a partial result. */
int canonjson_print(const cJSON *v, struct buf *out, char err[CANONJSON_ERR_LEN]);

/*
 * The bytes a signature on object obj covers: obj without its top-level
 * "signatures" and "unsigned" members, canonical.  obj is not changed.
 */
int canonjson_signable(const cJSON *obj, struct buf *out, char err[CANONJSON_ERR_LEN]);

#endif
