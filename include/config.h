/*
 * config.h: the INI configuration, read with inih.  A file is parsed whole and
 * validated (the [bot] section here, each network section by its transport
 * kind) before anyone sees it, so reload can swap configs in one step or keep
 * the old one.  Secrets are read only from files, never inline.
 */
#ifndef KNEEBOT_CONFIG_H
#define KNEEBOT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define CONFIG_DEFAULT_PATH "/etc/kneebot/kneebot.conf"

enum reply_mode { REPLY_MODE_AMBIENT, REPLY_MODE_ADDRESSED };

struct conf_kv {
	char *key, *value;
	int line;
};

/* One [kind.name] section, kept as text so reload can compare networks. */
struct conf_section {
	char *kind;   /* "bot", "irc", "matrix" */
	char *name;   /* NULL for [bot] */
	int line;
	struct conf_kv *kv;
	size_t nkv;
};

struct bot_conf {
	char *nick;
	char *prefix;
	char *responses_dir;
	char *state_dir;
	enum reply_mode reply_mode;
	int log_level;          /* enum log_level */
	long memory_s;          /* how long a (room, person) context is remembered */
	long cooldown_s;        /* per person, ambient answers */
	long room_max_per_min;  /* per room, all answers */
	char *ignore;           /* comma-separated masks, accounts, Matrix ids */
	char *admins;           /* console and defaults for networks */
};

struct config {
	char *path;             /* NULL when running on built-in defaults */
	struct bot_conf bot;
	struct conf_section bot_section;
	struct conf_section *nets;
	size_t nnets;
};

/*
 * Reads and validates path (NULL: built-in defaults).  On error returns -1
 * with "file:line: message" lines in err.  Network sections are validated by
 * the transport kinds (transport.h).
 */
int config_load(const char *path, struct config **out, struct buf *err);
void config_free(struct config *c);
/* The responses/ directory to use when the config names none. */
const char *config_default_responses(void);

const struct conf_kv *conf_find(const struct conf_section *s, const char *key);
const char *conf_get(const struct conf_section *s, const char *key);
/* Typed getters: a missing key yields def; a bad value an error line in err and -1. */
int conf_bool(const struct conf_section *s, const char *key, bool def, bool *out, const char *file, struct buf *err);
int conf_long(const struct conf_section *s, const char *key, long min, long max, long def, long *out, const char *file, struct buf *err);
/* A setting of a network section that may override [bot]. */
const char *conf_net_get(const struct config *c, const struct conf_section *net, const char *key);
long conf_net_long(const struct config *c, const struct conf_section *net, const char *key, long def);
bool conf_section_equal(const struct conf_section *a, const struct conf_section *b);
const struct conf_section *config_network(const struct config *c, const char *kind, const char *name);
/*
 * Checks an admins or ignore list: each entry account:NAME, mask:NICK!USER@HOST
 * or @user:server.  Anything else (a bare nick above all) is an error line in err.
 */
int conf_identities(const struct conf_section *s, const char *key, const char *file, struct buf *err);
/* Reports an error at the line of key in s (or the section line). */
void conf_error(struct buf *err, const char *file, const struct conf_section *s, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/*
 * Reads a secret from path; a relative path is looked up in
 * $CREDENTIALS_DIRECTORY first (systemd LoadCredential=), then next to the
 * config file.  One trailing newline is removed.  Returns -1 with a message
 * in err (never the secret).  The caller wipes and frees *out.
 */
int config_read_secret(const struct config *c, const char *path, char **out, size_t *len, struct buf *err);
/* The file config_read_secret() reads for path (it may not exist yet); caller frees. */
char *config_secret_path(const struct config *c, const char *path);
/* Resolves a path relative to the config file's directory; caller frees. */
char *config_path(const struct config *c, const char *path);

/* Splits a comma-separated list; returns the count, items trimmed, caller frees with strv_free. */
size_t strv_split(const char *s, char ***out);
void strv_free(char **v, size_t n);

#endif
