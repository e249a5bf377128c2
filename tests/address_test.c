/* address_test.c: when the bot is spoken to, and what is left to read. */
#include "address.h"
#include "t.h"

static void
check(const char *in, int want, const char *rest)
{
	struct buf b;
	buf_init(&b);
	bool got = address_strip(in, strlen(in), "kneebot", &b);
	T_OK(got == want && strcmp(b.s, rest) == 0, "\"%s\": addressed %d, rest \"%s\" (got %d, \"%s\")", in, want, rest, got, b.s);
	buf_free(&b);
}

int
main(void)
{
	check("kneebot: my knee hurts", 1, "my knee hurts");
	check("KneeBot, my knee hurts", 1, "my knee hurts");
	check("kneebot my knee hurts", 1, "my knee hurts");
	check("@kneebot my knee hurts", 1, "my knee hurts");
	check("my knee hurts @kneebot", 1, "my knee hurts ");
	check("what should I do @kneebot: thanks", 1, "what should I do  thanks");
	check("kneebots are cool", 0, "kneebots are cool");
	check("my kneebot friend", 0, "my kneebot friend");
	check("email me@kneebot.org", 0, "email me@kneebot.org");
	check("kneebot", 1, "");
	check("", 0, "");
	T_EXIT();
}
