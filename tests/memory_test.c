/* memory_test.c: the per-person memory expires, is bounded, and keeps keys apart. */
#include "memory.h"
#include "t.h"

int
main(void)
{
	struct memory *m = memory_new();
	struct memory_entry *e = memory_put(m, "net", "#club", "alice", 1000);
	e->asked = true;
	T_OK(memory_get(m, "net", "#club", "alice", 1500, 600000) == e, "an entry is found within its time");
	T_OK(memory_get(m, "net", "#club", "bob", 1500, 600000) == NULL, "another person has none");
	T_OK(memory_get(m, "net", "#other", "alice", 1500, 600000) == NULL, "another room has none");
	T_OK(memory_get(m, "other", "#club", "alice", 1500, 600000) == NULL, "another network has none");
	T_OK(memory_get(m, "net", "#club", "alice", 1000 + 600001, 600000) == NULL, "it is gone after ten minutes");
	for (int i = 0; i < MEMORY_MAX_ENTRIES + 500; i++) {
		char who[32];
		snprintf(who, sizeof who, "user%d", i);
		memory_put(m, "net", "#club", who, 2000 + i);
	}
	T_OK(memory_count(m) <= MEMORY_MAX_ENTRIES, "a flood of names stays bounded (%zu)", memory_count(m));
	T_OK(memory_get(m, "net", "#club", "user0", 3000, 600000) == NULL, "the oldest was evicted");
	T_OK(memory_get(m, "net", "#club", "user4500", 7000, 600000) != NULL, "a recent one stays");
	memory_expire(m, 10000000, 600000);
	T_OK(memory_count(m) == 0, "expiry empties it");
	memory_free(m);
	T_EXIT();
}
