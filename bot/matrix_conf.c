/* matrix_conf.c: what a [matrix.NAME] section may say, its pickle key file, and the settings read from it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "crypto.h"
#include "matrix_conf.h"

#define CATCH_UP_DEFAULT_S 21600         /* answer what was missed while down, up to 6 h old */

static const char *const known_keys[] = {
	"homeserver", "user_id", "password_file", "access_token_file", "device_name", "auto_join",
	"auto_join_from", "rooms", "admins", "encryption", "typing", "read_receipts", "catch_up_s",
	"pickle_key_file", "require_cross_signed",
	/* overrides of [bot] */
	"prefix", "reply_mode", "cooldown_s", "room_max_per_min", "ignore",
};

static bool
is_user_id(const char *s)
{
	const char *colon = strchr(s, ':');
	return s[0] == '@' && colon && colon > s + 1 && colon[1] && !strpbrk(s, " \t,");
}

/* Every item of a list key must pass ok(); names the first that does not. */
static int
check_list(const struct config *c, const struct conf_section *s, const char *key,
	bool (*ok)(const char *), const char *expect, struct buf *err)
{
	char **v;
	size_t n = strv_split(conf_get(s, key), &v);
	int rv = 0;
	for (size_t i = 0; i < n && rv == 0; i++) {
		if (!ok(v[i])) {
			conf_error(err, c->path, s, key, "%s: '%s' is not %s", key, v[i], expect);
			rv = -1;
		}
	}
	strv_free(v, n);
	return rv;
}

bool
matrix_room_ref_valid(const char *s)
{
	return (s[0] == '!' || s[0] == '#') && strchr(s + 1, ':') && !strpbrk(s, " \t");
}

static bool
is_inviter(const char *s)
{
	return s[0] == '@' ? is_user_id(s) : (*s && !strpbrk(s, " \t@:/") ? true : false);
}

static int
check_secret(const struct config *c, const struct conf_section *s, struct buf *err)
{
	const char *pw = conf_get(s, "password_file"), *tok = conf_get(s, "access_token_file");
	if (!pw == !tok) {
		conf_error(err, c->path, s, NULL, "give exactly one of password_file and access_token_file");
		return -1;
	}
	const char *key = pw ? "password_file" : "access_token_file";
	char *secret;
	size_t len;
	struct buf e;
	buf_init(&e);
	int rv = config_read_secret(c, pw ? pw : tok, &secret, &len, &e);
	if (rv < 0)
		conf_error(err, c->path, s, key, "%s", e.s);
	else {
		explicit_bzero(secret, len);
		free(secret);
	}
	buf_free(&e);
	return rv;
}

int
matrix_pickle_key_read(const struct config *c, const char *path, char **key, size_t *len, struct buf *err)
{
	if (config_read_secret(c, path, key, len, err) < 0)
		return -1;
	if (*len >= CRYPTO_PICKLE_KEY_MIN)
		return 0;
	buf_printf(err, "pickle key file %s holds %zu bytes; it needs at least %d (for instance head -c 32 "
		"/dev/urandom > FILE)", path, *len, CRYPTO_PICKLE_KEY_MIN);
	explicit_bzero(*key, *len);
	free(*key);
	*key = NULL;
	return -1;
}

/* encryption = yes needs a pickle key; an existing file must hold one (a missing one is made at start). */
static int
check_pickle_key(const struct config *c, const struct conf_section *s, struct buf *err)
{
	bool enc = true;
	struct buf e;
	buf_init(&e);
	conf_bool(s, "encryption", true, &enc, NULL, &e);
	const char *pk = conf_get(s, "pickle_key_file");
	int rv = 0;
	if (pk && !*pk) {
		conf_error(err, c->path, s, "pickle_key_file", "pickle_key_file: expected a file name");
		rv = -1;
	} else if (enc && !pk) {
		conf_error(err, c->path, s, "encryption", "encryption = yes (the default) needs pickle_key_file, the "
			"key that protects the bot's encryption keys on disk; or set encryption = no");
		rv = -1;
	} else if (enc) {
		char *full = config_secret_path(c, pk), *key = NULL;
		size_t len = 0;
		buf_clear(&e);
		if (access(full, F_OK) == 0 && matrix_pickle_key_read(c, pk, &key, &len, &e) < 0) {
			conf_error(err, c->path, s, "pickle_key_file", "%s", e.s);
			rv = -1;
		}
		if (key) {
			explicit_bzero(key, len);
			free(key);
		}
		free(full);
	}
	buf_free(&e);
	return rv;
}

static int
check_overrides(const struct config *c, const struct conf_section *s, struct buf *err)
{
	int bad = 0;
	long l;
	const char *v = conf_get(s, "prefix");
	if (v && (!*v || strlen(v) > 8 || strpbrk(v, " \t"))) {
		conf_error(err, c->path, s, "prefix", "prefix must be 1 to 8 characters without spaces");
		bad = -1;
	}
	v = conf_get(s, "reply_mode");
	if (v && strcmp(v, "ambient") != 0 && strcmp(v, "addressed") != 0) {
		conf_error(err, c->path, s, "reply_mode", "reply_mode = '%s': expected ambient or addressed", v);
		bad = -1;
	}
	bad |= conf_long(s, "cooldown_s", 0, 86400, 0, &l, c->path, err);
	bad |= conf_long(s, "room_max_per_min", 0, 1000, 0, &l, c->path, err);
	bad |= conf_long(s, "catch_up_s", 0, 7 * 86400, CATCH_UP_DEFAULT_S, &l, c->path, err);
	bad |= check_list(c, s, "ignore", is_user_id, "a Matrix user id (@user:server)", err);
	return bad;
}

int
matrix_conf_validate(const struct config *c, const struct conf_section *s, struct buf *err)
{
	int bad = 0;
	for (size_t i = 0; i < s->nkv; i++) {
		bool known = false;
		for (size_t k = 0; k < sizeof known_keys / sizeof known_keys[0]; k++)
			known |= strcmp(s->kv[i].key, known_keys[k]) == 0;
		if (!known) {
			conf_error(err, c->path, s, s->kv[i].key, "unknown key '%s'", s->kv[i].key);
			bad = -1;
		}
	}
	const char *hs = conf_get(s, "homeserver"), *user = conf_get(s, "user_id");
	if (!hs || (strncmp(hs, "https://", 8) != 0 && strncmp(hs, "http://", 7) != 0) || strpbrk(hs, "?# \t")) {
		conf_error(err, c->path, s, "homeserver", "homeserver: expected the base URL, like https://matrix.example.org");
		bad = -1;
	}
	if (!user || !is_user_id(user)) {
		conf_error(err, c->path, s, "user_id", "user_id: expected the bot's Matrix id, like @kneebot:example.org");
		bad = -1;
	}
	const char *dn = conf_get(s, "device_name");
	if (dn && (!*dn || strlen(dn) > 100)) {
		conf_error(err, c->path, s, "device_name", "device_name must be 1 to 100 characters");
		bad = -1;
	}
	bool b;
	static const char *const bools[] = { "auto_join", "encryption", "typing", "read_receipts", "require_cross_signed" };
	for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++)
		bad |= conf_bool(s, bools[i], true, &b, c->path, err);
	bad |= check_list(c, s, "auto_join_from", is_inviter, "a user id (@user:server) or a server name", err);
	bad |= check_list(c, s, "rooms", matrix_room_ref_valid, "a room id (!id:server) or alias (#name:server)", err);
	bad |= check_list(c, s, "admins", is_user_id, "a Matrix user id (@user:server)", err);
	bad |= check_pickle_key(c, s, err);
	bad |= check_overrides(c, s, err);
	bad |= check_secret(c, s, err);
	return bad ? -1 : 0;
}

/* A yes/no key, validated already. */
static bool
conf_flag(const struct conf_section *s, const char *key, bool def)
{
	struct buf err;
	buf_init(&err);
	bool v = def;
	conf_bool(s, key, def, &v, NULL, &err);
	buf_free(&err);
	return v;
}

void
matrix_settings_free(struct matrix_settings *st)
{
	strv_free(st->join_from, st->njoin_from);
	free(st->nick);
	free(st->pickle_key_file);
	memset(st, 0, sizeof *st);
}

/* Validated already: the values are known to be well-formed. */
void
matrix_settings_read(const struct config *c, const struct conf_section *s, struct matrix_settings *st)
{
	matrix_settings_free(st);
	st->typing = conf_flag(s, "typing", true);
	st->receipts = conf_flag(s, "read_receipts", true);
	st->auto_join = conf_flag(s, "auto_join", true);
	st->encryption = conf_flag(s, "encryption", true);
	st->require_cross_signed = conf_flag(s, "require_cross_signed", false);
	const char *pk = conf_get(s, "pickle_key_file");
	st->pickle_key_file = pk ? xstrdup(pk) : NULL;
	st->njoin_from = strv_split(conf_get(s, "auto_join_from"), &st->join_from);
	st->catch_up_s = conf_net_long(c, s, "catch_up_s", CATCH_UP_DEFAULT_S);
	st->nick = xstrdup(c->bot.nick);
}
