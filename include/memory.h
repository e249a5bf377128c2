/*
 * memory.h: a short memory per (network, room, person), so that an answer to
 * the bot's clarifying question is read together with the first message, and
 * ambient follow-ups within the cooldown are merged rather than answered
 * twice.  In memory only, bounded, expiring after memory_s.  Keys are copied.
 */
#ifndef KNEEBOT_MEMORY_H
#define KNEEBOT_MEMORY_H

#include <stdbool.h>
#include <stdint.h>

#include "responder.h"

#define MEMORY_MAX_ENTRIES 4096

struct memory_entry {
	struct triage triage;   /* what has been said so far */
	int64_t updated_ms;     /* monotonic */
	int64_t answered_ms;    /* last ambient answer to this person, or 0 */
	bool asked;             /* the bot asked a clarifying question */
};

struct memory;

struct memory *memory_new(void);
void memory_free(struct memory *m);
/* The live entry or NULL; expired entries are dropped. */
struct memory_entry *memory_get(struct memory *m, const char *net, const char *room, const char *who, int64_t now_ms, int64_t ttl_ms);
/* Creates or resets the entry. */
struct memory_entry *memory_put(struct memory *m, const char *net, const char *room, const char *who, int64_t now_ms);
void memory_forget(struct memory *m, const char *net, const char *room, const char *who);
void memory_expire(struct memory *m, int64_t now_ms, int64_t ttl_ms);
size_t memory_count(const struct memory *m);

#endif
