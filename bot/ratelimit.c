/* ratelimit.c: token buckets and a per-room answers-a-minute cap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ratelimit.h"

void
bucket_init(struct bucket *b, unsigned burst, int64_t interval_ms, int64_t now_ms)
{
	b->burst = burst ? burst : 1;
	b->tokens = b->burst;
	b->interval_ms = interval_ms > 0 ? interval_ms : 1;
	b->last_ms = now_ms;
}

static void
refill(struct bucket *b, int64_t now_ms)
{
	if (now_ms > b->last_ms) {
		b->tokens += (double)(now_ms - b->last_ms) / (double)b->interval_ms;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
	}
	b->last_ms = now_ms;
}

bool
bucket_take(struct bucket *b, int64_t now_ms)
{
	refill(b, now_ms);
	if (b->tokens < 1.0)
		return false;
	b->tokens -= 1.0;
	return true;
}

int64_t
bucket_wait_ms(struct bucket *b, int64_t now_ms)
{
	refill(b, now_ms);
	if (b->tokens >= 1.0)
		return 0;
	double ms = (1.0 - b->tokens) * (double)b->interval_ms;
	return (int64_t)ms + 1;
}

/* One room's answers within the last minute, as a ring of timestamps. */
#define CAP_RING 64
struct room {
	char *key;
	int64_t t[CAP_RING];
	unsigned head, n;
	int64_t last_ms;
};

struct roomcap {
	struct room *rooms;
	size_t n, cap;
};

struct roomcap *
roomcap_new(void)
{
	return xcalloc(1, sizeof(struct roomcap));
}

void
roomcap_free(struct roomcap *rc)
{
	if (!rc)
		return;
	for (size_t i = 0; i < rc->n; i++)
		free(rc->rooms[i].key);
	free(rc->rooms);
	free(rc);
}

static struct room *
room_get(struct roomcap *rc, const char *net, const char *room)
{
	char key[1024];
	snprintf(key, sizeof key, "%s\x01%s", net, room);
	for (size_t i = 0; i < rc->n; i++)
		if (strcmp(rc->rooms[i].key, key) == 0)
			return &rc->rooms[i];
	if (rc->n == rc->cap) {
		rc->cap = rc->cap ? rc->cap * 2 : 16;
		rc->rooms = xrealloc(rc->rooms, rc->cap * sizeof *rc->rooms);
	}
	struct room *r = &rc->rooms[rc->n++];
	memset(r, 0, sizeof *r);
	r->key = xstrdup(key);
	return r;
}

bool
roomcap_take(struct roomcap *rc, const char *net, const char *room, long max, int64_t now_ms)
{
	if (max <= 0)
		return true;
	struct room *r = room_get(rc, net, room);
	r->last_ms = now_ms;
	while (r->n && now_ms - r->t[r->head] >= 60000) {
		r->head = (r->head + 1) % CAP_RING;
		r->n--;
	}
	if ((long)r->n >= max || r->n >= CAP_RING)
		return false;
	r->t[(r->head + r->n) % CAP_RING] = now_ms;
	r->n++;
	return true;
}

void
roomcap_expire(struct roomcap *rc, int64_t now_ms)
{
	for (size_t i = 0; i < rc->n;) {
		if (now_ms - rc->rooms[i].last_ms > 120000) {
			free(rc->rooms[i].key);
			rc->rooms[i] = rc->rooms[--rc->n];
		} else {
			i++;
		}
	}
}
