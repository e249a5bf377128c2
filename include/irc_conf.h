/*
 * irc_conf.h: the [irc.NAME] section of the config: its checks, the
 * settings read from it, and the channel and nick syntax shared with the
 * transport (invitations, !join).  Knows nothing of sockets.
 */
#ifndef KNEEBOT_IRC_CONF_H
#define KNEEBOT_IRC_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "config.h"

#define IRC_NICK_MAX 64
#define IRC_CHAN_MAX 200
#define IRC_KEY_MAX 64

enum sasl_mech { SASL_NONE, SASL_PLAIN, SASL_EXTERNAL };

/* What a section says, read once when the network is created (its section is unchanged while it lives). */
struct irc_settings {
	char *host;
	long port;
	bool tls, tls_verify;
	char *ca_file, *cert_file, *key_file;
	char *nick, *username, *realname;
	char **alts;
	size_t nalts;
	enum sasl_mech sasl;
	char *sasl_user, *sasl_pass_file;
	bool join_on_invite, flood, privmsg, private_details;
	long burst, interval_ms, ping_interval_s, ping_timeout_s, kick_rejoin_s;
};

/* transport_kind.validate for "irc". */
int irc_conf_validate(const struct config *c, const struct conf_section *s, struct buf *err);
/* Reads a validated section; paths are resolved next to the config file.  Free with irc_settings_free(). */
void irc_settings_read(const struct config *c, const struct conf_section *s, struct irc_settings *set);
void irc_settings_free(struct irc_settings *set);

/* "#chan" or "#chan key" into name[IRC_CHAN_MAX + 1] and key[IRC_KEY_MAX + 1] ("" when none). */
bool irc_chan_parse(const char *spec, char *name, char *key);
bool irc_nick_valid(const char *nick);

#endif
