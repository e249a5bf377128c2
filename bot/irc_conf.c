/*
 * irc_conf.c: what an [irc.NAME] section may say.  Every key is checked
 * (unknown keys are errors, secrets only from *_file keys, admins never a
 * bare nick) with "file:line: [irc.NAME] message" errors, and the checked
 * section is read into struct irc_settings with its defaults.  No I/O but
 * reading the files the section names, to say early when they are missing.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "irc_conf.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct vctx {
	const struct config *config;
	const struct conf_section *s;
	const char *file;
	struct buf *err;
	long min, max;   /* of the key being checked, when it is a number */
};

bool
irc_nick_valid(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len > 30 || isdigit((unsigned char)n[0]) || n[0] == '-')
		return false;
	for (const char *p = n; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("[]\\`_^{|}-", *p))
			return false;
	return true;
}

bool
irc_chan_parse(const char *spec, char *name, char *key)
{
	char extra[8];
	key[0] = '\0';
	int n = sscanf(spec, "%200s %64s %7s", name, key, extra);
	if (n < 1 || n > 2 || !strchr("#&+!", name[0]) || strlen(name) < 2 || strlen(name) >= IRC_CHAN_MAX)
		return false;
	if (strpbrk(name, ",\a\r\n") || strpbrk(key, ",\r\n:"))
		return false;
	return strlen(key) < IRC_KEY_MAX;
}

static int
check_bool(const struct vctx *v, const char *key)
{
	bool b;
	return conf_bool(v->s, key, false, &b, v->file, v->err);
}

/* A whole number within the key's range. */
static int
check_range(const struct vctx *v, const char *key)
{
	long n;
	return conf_long(v->s, key, v->min, v->max, 0, &n, v->file, v->err);
}

static int
check_text(const struct vctx *v, const char *key)
{
	const char *val = conf_get(v->s, key);
	if (*val && strlen(val) <= 200)
		return 0;
	conf_error(v->err, v->file, v->s, key, "%s must be 1 to 200 characters", key);
	return -1;
}

static int
check_word(const struct vctx *v, const char *key)
{
	const char *val = conf_get(v->s, key);
	if (*val && strlen(val) <= 64 && !strpbrk(val, " @!:"))
		return 0;
	conf_error(v->err, v->file, v->s, key, "%s '%s' must be one word without '@', '!' or ':'", key, val);
	return -1;
}

static int
check_host(const struct vctx *v, const char *key)
{
	const char *val = conf_get(v->s, key);
	if (*val && strlen(val) <= 253 && !strpbrk(val, " /@[]"))
		return 0;
	conf_error(v->err, v->file, v->s, key, "host '%s': expected a host name or an IP address", val);
	return -1;
}

static int
check_nick(const struct vctx *v, const char *key)
{
	char **list;
	size_t n = strv_split(conf_get(v->s, key), &list);
	int rv = n ? 0 : -1;
	for (size_t i = 0; i < n; i++)
		if (!irc_nick_valid(list[i]))
			rv = -1;
	if (rv < 0)
		conf_error(v->err, v->file, v->s, key, "%s: an IRC nick is 1 to 30 letters, digits and []\\`_^{|}-, not starting with a digit or '-'", key);
	strv_free(list, n);
	return rv;
}

static int
check_channels(const struct vctx *v, const char *key)
{
	char **list;
	size_t n = strv_split(conf_get(v->s, key), &list);
	int rv = 0;
	for (size_t i = 0; i < n; i++) {
		char name[IRC_CHAN_MAX + 1], ckey[IRC_KEY_MAX + 1];
		if (!irc_chan_parse(list[i], name, ckey)) {
			conf_error(v->err, v->file, v->s, key, "channel '%s': expected '#name' or '#name key'", list[i]);
			rv = -1;
		}
	}
	strv_free(list, n);
	return rv;
}

static int
check_file(const struct vctx *v, const char *key)
{
	char *path = config_path(v->config, conf_get(v->s, key));
	int rv = access(path, R_OK);
	if (rv < 0)
		conf_error(v->err, v->file, v->s, key, "%s: cannot read %s", key, path);
	free(path);
	return rv < 0 ? -1 : 0;
}

static int
check_secret(const struct vctx *v, const char *key)
{
	char *secret;
	size_t len;
	struct buf msg;
	buf_init(&msg);
	int rv = config_read_secret(v->config, conf_get(v->s, key), &secret, &len, &msg);
	if (rv < 0)
		conf_error(v->err, v->file, v->s, key, "%s", msg.s ? msg.s : "cannot read the secret");
	else {
		explicit_bzero(secret, len);
		free(secret);
	}
	buf_free(&msg);
	return rv;
}

static int
check_choice(const struct vctx *v, const char *key, const char *const *choices)
{
	const char *val = conf_get(v->s, key);
	for (size_t i = 0; choices[i]; i++)
		if (strcasecmp(val, choices[i]) == 0)
			return 0;
	conf_error(v->err, v->file, v->s, key, "%s = '%s': expected %s or %s", key, val, choices[0], choices[1]);
	return -1;
}

static const char *const sasl_choices[] = { "PLAIN", "EXTERNAL", NULL };
static const char *const reply_choices[] = { "notice", "privmsg", NULL };
static const char *const mode_choices[] = { "ambient", "addressed", NULL };

static int check_sasl(const struct vctx *v, const char *k) { return check_choice(v, k, sasl_choices); }
static int check_reply(const struct vctx *v, const char *k) { return check_choice(v, k, reply_choices); }
static int check_mode(const struct vctx *v, const char *k) { return check_choice(v, k, mode_choices); }

static int
check_prefix(const struct vctx *v, const char *key)
{
	const char *val = conf_get(v->s, key);
	if (*val && strlen(val) <= 8 && !strpbrk(val, " \t"))
		return 0;
	conf_error(v->err, v->file, v->s, key, "prefix must be 1 to 8 characters without spaces");
	return -1;
}

/* admins and ignore: account:NAME, mask:PATTERN; a bare nick would be spoofable. */
static int
check_identities(const struct vctx *v, const char *key)
{
	char **list;
	size_t n = strv_split(conf_get(v->s, key), &list);
	int rv = 0;
	for (size_t i = 0; i < n; i++) {
		const char *e = list[i];
		if ((strncmp(e, "account:", 8) == 0 && e[8]) || (strncmp(e, "mask:", 5) == 0 && strchr(e, '!') && strchr(e, '@')))
			continue;
		conf_error(v->err, v->file, v->s, key, "%s entry '%s': expected account:NAME or mask:NICK!USER@HOST (a bare nick can be taken by anyone)", key, e);
		rv = -1;
	}
	strv_free(list, n);
	return rv;
}

/* Every key an [irc.NAME] section may have, with its check; sorted by name. */
static const struct irc_key {
	const char *name;
	int (*check)(const struct vctx *v, const char *key);
	long min, max;
} irc_keys[] = {
	{ "admins", check_identities, 0, 0 },
	{ "alt_nicks", check_nick, 0, 0 },
	{ "channels", check_channels, 0, 0 },
	{ "cooldown_s", check_range, 0, 86400 },
	{ "flood_burst", check_range, 1, 100 },
	{ "flood_control", check_bool, 0, 0 },
	{ "flood_interval_ms", check_range, 1, 60000 },
	{ "host", check_host, 0, 0 },
	{ "ignore", check_identities, 0, 0 },
	{ "join_on_invite", check_bool, 0, 0 },
	{ "kick_rejoin_s", check_range, 0, 86400 },
	{ "nick", check_nick, 0, 0 },
	{ "ping_interval_s", check_range, 0, 86400 },
	{ "ping_timeout_s", check_range, 0, 86400 },
	{ "port", check_range, 1, 65535 },
	{ "prefix", check_prefix, 0, 0 },
	{ "private_details", check_bool, 0, 0 },
	{ "realname", check_text, 0, 0 },
	{ "reply_command", check_reply, 0, 0 },
	{ "reply_mode", check_mode, 0, 0 },
	{ "room_max_per_min", check_range, 0, 1000 },
	{ "sasl_mechanism", check_sasl, 0, 0 },
	{ "sasl_password_file", check_secret, 0, 0 },
	{ "sasl_username", check_word, 0, 0 },
	{ "tls", check_bool, 0, 0 },
	{ "tls_ca_file", check_file, 0, 0 },
	{ "tls_cert_file", check_file, 0, 0 },
	{ "tls_key_file", check_file, 0, 0 },
	{ "tls_verify", check_bool, 0, 0 },
	{ "username", check_word, 0, 0 },
};

static int
cmp_key(const void *k, const void *e)
{
	return strcmp(k, ((const struct irc_key *)e)->name);
}

/* Keys that only make sense together. */
static int
check_combinations(const struct vctx *v)
{
	const struct conf_section *s = v->s;
	struct buf scratch;
	buf_init(&scratch);
	bool tls = true;
	conf_bool(s, "tls", true, &tls, v->file, &scratch);
	buf_free(&scratch);
	int rv = 0;
	const char *mech = conf_get(s, "sasl_mechanism");
	if (!conf_get(s, "nick") && !irc_nick_valid(v->config->bot.nick)) {
		conf_error(v->err, v->file, s, NULL, "the [bot] nick '%s' is not a valid IRC nick: set nick here", v->config->bot.nick);
		rv = -1;
	}
	if (!conf_get(s, "host")) {
		conf_error(v->err, v->file, s, NULL, "host is required");
		rv = -1;
	}
	if (mech && strcasecmp(mech, "PLAIN") == 0 && (!conf_get(s, "sasl_username") || !conf_get(s, "sasl_password_file"))) {
		conf_error(v->err, v->file, s, "sasl_mechanism", "SASL PLAIN needs sasl_username and sasl_password_file");
		rv = -1;
	}
	if (mech && strcasecmp(mech, "EXTERNAL") == 0 && (!tls || !conf_get(s, "tls_cert_file"))) {
		conf_error(v->err, v->file, s, "sasl_mechanism", "SASL EXTERNAL needs tls = yes and tls_cert_file");
		rv = -1;
	}
	if (!mech && (conf_get(s, "sasl_username") || conf_get(s, "sasl_password_file"))) {
		conf_error(v->err, v->file, s, conf_get(s, "sasl_username") ? "sasl_username" : "sasl_password_file",
			"SASL credentials without sasl_mechanism (PLAIN or EXTERNAL)");
		rv = -1;
	}
	if (conf_get(s, "tls_key_file") && !conf_get(s, "tls_cert_file")) {
		conf_error(v->err, v->file, s, "tls_key_file", "tls_key_file without tls_cert_file");
		rv = -1;
	}
	static const char *const tls_only[] = { "tls_ca_file", "tls_cert_file", "tls_key_file", "tls_verify" };
	for (size_t i = 0; i < NELEM(tls_only) && !tls; i++) {
		if (conf_get(s, tls_only[i])) {
			conf_error(v->err, v->file, s, tls_only[i], "%s with tls = no", tls_only[i]);
			rv = -1;
		}
	}
	return rv;
}

int
irc_conf_validate(const struct config *config, const struct conf_section *s, struct buf *err)
{
	struct vctx v = { config, s, config->path, err, 0, 0 };
	int rv = 0;
	for (size_t i = 0; i < s->nkv; i++) {
		const struct irc_key *k = bsearch(s->kv[i].key, irc_keys, NELEM(irc_keys), sizeof irc_keys[0], cmp_key);
		if (!k) {
			conf_error(err, v.file, s, s->kv[i].key, "unknown key '%s'", s->kv[i].key);
			rv = -1;
		} else {
			v.min = k->min;
			v.max = k->max;
			if (k->check(&v, k->name) < 0)
				rv = -1;
		}
	}
	if (check_combinations(&v) < 0)
		rv = -1;
	return rv;
}

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static char *
path_or_null(const struct config *config, const char *s)
{
	return s ? config_path(config, s) : NULL;
}

void
irc_settings_read(const struct config *config, const struct conf_section *s, struct irc_settings *set)
{
	struct buf e;
	buf_init(&e);
	const char *file = config->path;
	conf_bool(s, "tls", true, &set->tls, file, &e);
	conf_bool(s, "tls_verify", true, &set->tls_verify, file, &e);
	conf_bool(s, "join_on_invite", false, &set->join_on_invite, file, &e);
	conf_bool(s, "flood_control", true, &set->flood, file, &e);
	conf_bool(s, "private_details", false, &set->private_details, file, &e);
	conf_long(s, "port", 1, 65535, set->tls ? 6697 : 6667, &set->port, file, &e);
	conf_long(s, "flood_burst", 1, 100, 4, &set->burst, file, &e);
	conf_long(s, "flood_interval_ms", 1, 60000, 2000, &set->interval_ms, file, &e);
	conf_long(s, "ping_interval_s", 0, 86400, 120, &set->ping_interval_s, file, &e);
	conf_long(s, "ping_timeout_s", 0, 86400, 60, &set->ping_timeout_s, file, &e);
	conf_long(s, "kick_rejoin_s", 0, 86400, 10, &set->kick_rejoin_s, file, &e);
	buf_free(&e);
	const char *v;
	set->host = xstrdup(conf_get(s, "host"));
	set->ca_file = path_or_null(config, conf_get(s, "tls_ca_file"));
	set->cert_file = path_or_null(config, conf_get(s, "tls_cert_file"));
	set->key_file = path_or_null(config, conf_get(s, "tls_key_file"));
	set->nick = xstrdup((v = conf_get(s, "nick")) ? v : config->bot.nick);
	set->username = xstrdup((v = conf_get(s, "username")) ? v : set->nick);
	set->realname = xstrdup((v = conf_get(s, "realname")) ? v : "kneebot, knee advice for runners");
	set->nalts = strv_split(conf_get(s, "alt_nicks"), &set->alts);
	v = conf_get(s, "sasl_mechanism");
	set->sasl = !v ? SASL_NONE : strcasecmp(v, "PLAIN") == 0 ? SASL_PLAIN : SASL_EXTERNAL;
	set->sasl_user = dup_or_null(conf_get(s, "sasl_username"));
	set->sasl_pass_file = dup_or_null(conf_get(s, "sasl_password_file"));
	v = conf_get(s, "reply_command");
	set->privmsg = v && strcasecmp(v, "privmsg") == 0;
}

void
irc_settings_free(struct irc_settings *set)
{
	free(set->host);
	free(set->ca_file);
	free(set->cert_file);
	free(set->key_file);
	free(set->nick);
	free(set->username);
	free(set->realname);
	strv_free(set->alts, set->nalts);
	free(set->sasl_user);
	free(set->sasl_pass_file);
}
