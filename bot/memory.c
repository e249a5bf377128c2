/* memory.c: a bounded, expiring map from (network, room, person) to what they said. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "memory.h"

struct slot {
	char *key;          /* "net\x1room\x1who", NULL when free */
	struct memory_entry e;
};

struct memory {
	struct slot *slots;
	size_t cap, count;
};

struct memory *
memory_new(void)
{
	struct memory *m = xcalloc(1, sizeof *m);
	m->cap = 64;
	m->slots = xcalloc(m->cap, sizeof *m->slots);
	return m;
}

void
memory_free(struct memory *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	free(m);
}

static char *
make_key(const char *net, const char *room, const char *who, char *tmp, size_t cap)
{
	/* \x1 cannot occur in nicks, room ids or network names */
	snprintf(tmp, cap, "%s\x01%s\x01%s", net ? net : "", room ? room : "", who ? who : "");
	return tmp;
}

static size_t
hash(const char *s)
{
	return (size_t)hash_bytes(s, strlen(s));
}

static struct slot *
find(struct memory *m, const char *key)
{
	for (size_t i = hash(key) & (m->cap - 1), n = 0; n < m->cap; i = (i + 1) & (m->cap - 1), n++) {
		if (!m->slots[i].key)
			return NULL;
		if (strcmp(m->slots[i].key, key) == 0)
			return &m->slots[i];
	}
	return NULL;
}

/* Linear probing deletion: re-seat the run after the hole. */
static void
remove_slot(struct memory *m, struct slot *s)
{
	size_t i = (size_t)(s - m->slots);
	free(s->key);
	s->key = NULL;
	m->count--;
	for (size_t j = (i + 1) & (m->cap - 1); m->slots[j].key; j = (j + 1) & (m->cap - 1)) {
		struct slot moved = m->slots[j];
		m->slots[j].key = NULL;
		m->count--;
		size_t k = hash(moved.key) & (m->cap - 1);
		while (m->slots[k].key)
			k = (k + 1) & (m->cap - 1);
		m->slots[k] = moved;
		m->count++;
	}
}

static void
grow(struct memory *m)
{
	struct slot *old = m->slots;
	size_t oldcap = m->cap;
	m->cap *= 2;
	m->slots = xcalloc(m->cap, sizeof *m->slots);
	for (size_t i = 0; i < oldcap; i++) {
		if (!old[i].key)
			continue;
		size_t k = hash(old[i].key) & (m->cap - 1);
		while (m->slots[k].key)
			k = (k + 1) & (m->cap - 1);
		m->slots[k] = old[i];
	}
	free(old);
}

struct memory_entry *
memory_get(struct memory *m, const char *net, const char *room, const char *who, int64_t now_ms, int64_t ttl_ms)
{
	char tmp[1024];
	struct slot *s = find(m, make_key(net, room, who, tmp, sizeof tmp));
	if (!s)
		return NULL;
	if (now_ms - s->e.updated_ms > ttl_ms) {
		remove_slot(m, s);
		return NULL;
	}
	return &s->e;
}

/* Evicts the oldest entry: a flood of new names must not grow memory without bound. */
static void
evict_oldest(struct memory *m)
{
	struct slot *oldest = NULL;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key && (!oldest || m->slots[i].e.updated_ms < oldest->e.updated_ms))
			oldest = &m->slots[i];
	if (oldest)
		remove_slot(m, oldest);
}

struct memory_entry *
memory_put(struct memory *m, const char *net, const char *room, const char *who, int64_t now_ms)
{
	char tmp[1024];
	const char *key = make_key(net, room, who, tmp, sizeof tmp);
	struct slot *s = find(m, key);
	if (!s) {
		if (m->count >= MEMORY_MAX_ENTRIES)
			evict_oldest(m);
		if ((m->count + 1) * 2 > m->cap)
			grow(m);
		size_t k = hash(key) & (m->cap - 1);
		while (m->slots[k].key)
			k = (k + 1) & (m->cap - 1);
		s = &m->slots[k];
		s->key = xstrdup(key);
		m->count++;
	}
	memset(&s->e, 0, sizeof s->e);
	s->e.updated_ms = now_ms;
	return &s->e;
}

void
memory_forget(struct memory *m, const char *net, const char *room, const char *who)
{
	char tmp[1024];
	struct slot *s = find(m, make_key(net, room, who, tmp, sizeof tmp));
	if (s)
		remove_slot(m, s);
}

void
memory_expire(struct memory *m, int64_t now_ms, int64_t ttl_ms)
{
	for (size_t i = 0; i < m->cap; i++) {
		/* removal may move a later entry into i: look at i again */
		while (m->slots[i].key && now_ms - m->slots[i].e.updated_ms > ttl_ms)
			remove_slot(m, &m->slots[i]);
	}
}

size_t
memory_count(const struct memory *m)
{
	return m->count;
}
