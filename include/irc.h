/*
 * irc.h: the IRC network type ([irc.NAME] sections).  Everything else about
 * IRC stays inside bot/irc.c (the connection) and bot/irc_parse.c (the
 * bytes); the rest of the bot sees only struct transport.
 */
#ifndef KNEEBOT_IRC_H
#define KNEEBOT_IRC_H

#include "transport.h"

extern const struct transport_kind irc_kind;

#endif
