/*
 * address.h: was the bot spoken to?  "kneebot: ...", "kneebot, ...",
 * "kneebot ...", "@kneebot" anywhere.  Pure string work shared by the
 * transports and --classify, so they all agree.
 */
#ifndef KNEEBOT_ADDRESS_H
#define KNEEBOT_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/*
 * Copies text[0..n) to out without the mentions of nick (case-insensitive
 * ASCII) and returns true when it was addressed.
 */
bool address_strip(const char *text, size_t n, const char *nick, struct buf *out);

#endif
