/*
 * ratelimit.h: manners.  A per-person cooldown for ambient answers, a per-room
 * cap of answers a minute, and a token bucket that transports use for output
 * flood control.  Pure bookkeeping on caller-supplied monotonic times.
 */
#ifndef KNEEBOT_RATELIMIT_H
#define KNEEBOT_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* Token bucket: burst tokens, one more every interval_ms. */
struct bucket {
	double tokens;
	double burst;
	int64_t interval_ms;
	int64_t last_ms;
};

void bucket_init(struct bucket *b, unsigned burst, int64_t interval_ms, int64_t now_ms);
/* Takes one token if there is one. */
bool bucket_take(struct bucket *b, int64_t now_ms);
/* Milliseconds until a token is available (0 if now). */
int64_t bucket_wait_ms(struct bucket *b, int64_t now_ms);

struct roomcap;
struct roomcap *roomcap_new(void);
void roomcap_free(struct roomcap *rc);
/* Counts an answer in (net, room) unless max per minute are already spent; max 0 = no cap. */
bool roomcap_take(struct roomcap *rc, const char *net, const char *room, long max, int64_t now_ms);
void roomcap_expire(struct roomcap *rc, int64_t now_ms);

#endif
