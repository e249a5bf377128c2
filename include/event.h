/*
 * event.h: the only two types that cross from a transport to the router and
 * back.  An event borrows every string from its transport's buffers and lives
 * only for the duration of router_dispatch(); whatever must outlive it is
 * copied by whoever keeps it.  Nothing here knows about IRC, Matrix or the
 * knowledge base.
 */
#ifndef KNEEBOT_EVENT_H
#define KNEEBOT_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct transport;

/* An incoming chat message, already decoded and decrypted. */
struct event {
	struct transport *transport; /* where it came from; the reply goes back there */
	const char *room;     /* channel, room id, or the peer of a private chat */
	const char *sender;   /* nick or user id as the network shows it */
	const char *account;  /* authenticated identity (services account, Matrix id) or NULL */
	const char *mask;     /* IRC nick!user@host, or NULL */
	const char *id;       /* message or event id, or NULL */
	const char *text;     /* UTF-8 (not trusted: may be invalid), addressing prefix removed */
	size_t text_len;
	bool is_private;      /* a private message or DM room: always addressed */
	bool addressed;       /* the bot was named, mentioned or replied to */
	int64_t ts_ms;        /* server timestamp in ms since the epoch, or 0 */
};

/* How much a transport can show in one answer. */
struct budget {
	unsigned max_lines;   /* lines of plain text; 0 means no limit */
	unsigned line_bytes;  /* soft width of one line in bytes; 0 means no limit */
	bool html;            /* also render HTML (Matrix formatted_body) */
};

enum reply_flags {
	REPLY_REDFLAG = 1 << 0,  /* carries a stop-and-get-examined warning */
	REPLY_HEALTH  = 1 << 1,  /* personal health advice (IRC private_details) */
	REPLY_COMMAND = 1 << 2,  /* answer to a command */
};

/* An answer to one event; strings are owned by the router for the call. */
struct reply {
	const struct event *to;
	const char *text;     /* plain text, '\n' between lines */
	const char *html;     /* the same as HTML when budget.html, else NULL */
	unsigned flags;       /* enum reply_flags */
};

#endif
