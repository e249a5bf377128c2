/* ratelimit_test.c: token bucket arithmetic and the per-room cap. */
#include "ratelimit.h"
#include "t.h"

int
main(void)
{
	struct bucket b;
	bucket_init(&b, 4, 2000, 0);
	int took = 0;
	for (int i = 0; i < 10; i++)
		took += bucket_take(&b, 0);
	T_OK(took == 4, "a burst of four leaves at once (%d)", took);
	T_OK(bucket_wait_ms(&b, 0) > 1900 && bucket_wait_ms(&b, 0) <= 2001, "then one every two seconds");
	T_OK(!bucket_take(&b, 1999) && bucket_take(&b, 2000), "the next token at 2 s");
	T_OK(bucket_take(&b, 100000) && bucket_take(&b, 100000) && bucket_take(&b, 100000) && bucket_take(&b, 100000) &&
		!bucket_take(&b, 100000), "a long quiet refills only to the burst");

	struct roomcap *rc = roomcap_new();
	int ok = 0;
	for (int i = 0; i < 10; i++)
		ok += roomcap_take(rc, "net", "#club", 6, 1000 + i);
	T_OK(ok == 6, "six answers a minute in one room (%d)", ok);
	T_OK(roomcap_take(rc, "net", "#other", 6, 1010), "another room has its own cap");
	T_OK(roomcap_take(rc, "net", "#club", 6, 61000), "the cap frees a minute later");
	T_OK(roomcap_take(rc, "net", "#club", 0, 1), "0 means no cap");
	roomcap_free(rc);
	T_EXIT();
}
