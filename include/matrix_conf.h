/*
 * matrix_conf.h: the [matrix.NAME] section of the config: its checks, the
 * settings read from it, the pickle key file and the room reference syntax
 * shared with the transport (!join).  Knows nothing of HTTP, the store or
 * the transport's state.
 */
#ifndef KNEEBOT_MATRIX_CONF_H
#define KNEEBOT_MATRIX_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "config.h"

/*
 * What this instance reads from its section, copied at creation: once a
 * reload has stopped it, t->conf and t->config point into a freed config,
 * yet a send in flight may still finish (and want typing and receipts).
 */
struct matrix_settings {
	bool typing, receipts, auto_join, encryption, require_cross_signed;
	char **join_from;
	size_t njoin_from;
	long catch_up_s;
	char *nick;
	char *pickle_key_file;
};

/* transport_kind.validate for "matrix". */
int matrix_conf_validate(const struct config *c, const struct conf_section *s, struct buf *err);
/* Reads a validated section into st, freeing what st held first.  Free with matrix_settings_free(). */
void matrix_settings_read(const struct config *c, const struct conf_section *s, struct matrix_settings *st);
void matrix_settings_free(struct matrix_settings *st);

/* The pickle key as read: at least CRYPTO_PICKLE_KEY_MIN bytes; the caller wipes and frees it. */
int matrix_pickle_key_read(const struct config *c, const char *path, char **key, size_t *len, struct buf *err);
/* A room id (!id:server) or alias (#name:server). */
bool matrix_room_ref_valid(const char *s);

#endif
