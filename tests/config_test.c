/* config_test.c: defaults, validation with file:line, secrets only from files. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "t.h"

static char dir[64];

static const char *
write_file(const char *name, const char *text)
{
	static char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static void
bad(const char *what, const char *text, const char *needle)
{
	struct config *c = NULL;
	struct buf err;
	buf_init(&err);
	int r = config_load(write_file("bad.conf", text), &c, &err);
	T_OK(r < 0 && err.s && strstr(err.s, needle), "%s: rejected with \"%s\" (%s)", what, needle, err.s ? err.s : "accepted");
	config_free(c);
	buf_free(&err);
}

int
main(void)
{
	log_init(LOG_LVL_ERR, "config_test");
	snprintf(dir, sizeof dir, "/tmp/config_test.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	struct config *c = NULL;
	struct buf err;
	buf_init(&err);
	T_OK(config_load(NULL, &c, &err) == 0, "built-in defaults load");
	T_OK(c && strcmp(c->bot.prefix, "!") == 0 && strcmp(c->bot.nick, "kneebot") == 0 && c->bot.memory_s == 600 &&
		c->bot.reply_mode == REPLY_MODE_AMBIENT, "defaults: prefix !, nick kneebot, ten minutes of memory, ambient");
	config_free(c);
	c = NULL;
	T_OK(config_load(write_file("good.conf", "; comment\n[bot]\nnick = kb\nprefix = ?\ncooldown_s = 0\nreply_mode = addressed\n"), &c, &err) == 0,
		"a good file loads");
	T_OK(c && strcmp(c->bot.prefix, "?") == 0 && c->bot.cooldown_s == 0 && c->bot.reply_mode == REPLY_MODE_ADDRESSED, "its values are read");
	config_free(c);

	bad("an unknown key", "[bot]\nnick = kb\nnickk = x\n", "bad.conf:3:");
	bad("a syntax error", "[bot]\nthis is not ini\n", "bad.conf:2:");
	bad("an inline password", "[bot]\npassword = hunter2\n", "put it in a file");
	bad("a number out of range", "[bot]\ncooldown_s = -5\n", "cooldown_s");
	bad("an unknown section kind", "[xmpp.club]\nhost = x\n", "unknown network type");
	bad("a bare-nick admin", "[bot]\nadmins = alice\n", "bad.conf:2:");
	bad("a bad reply_mode", "[bot]\nreply_mode = loud\n", "reply_mode");
	bad("a duplicate key", "[bot]\nnick = a\nnick = b\n", "given twice");
	struct buf e2;
	buf_init(&e2);
	T_OK(config_load("/nonexistent/kneebot.conf", &c, &e2) < 0 && strstr(e2.s, "cannot open"), "a missing file says so");
	buf_free(&e2);

	/* secrets: from a file next to the config, or from $CREDENTIALS_DIRECTORY first */
	write_file("pw", "s3cret\n");
	T_OK(config_load(write_file("s.conf", "[bot]\n"), &c, &err) == 0, "a config for the secret tests");
	char *sec = NULL;
	size_t len = 0;
	struct buf e3;
	buf_init(&e3);
	T_OK(config_read_secret(c, "pw", &sec, &len, &e3) == 0 && len == 6 && strcmp(sec, "s3cret") == 0,
		"a relative secret file next to the config, trailing newline dropped");
	free(sec);
	char creds[128];
	snprintf(creds, sizeof creds, "%s/creds", dir);
	mkdir(creds, 0700);
	char cp[192];
	snprintf(cp, sizeof cp, "%s/pw", creds);
	FILE *f = fopen(cp, "w");
	fputs("fromcreds", f);
	fclose(f);
	setenv("CREDENTIALS_DIRECTORY", creds, 1);
	T_OK(config_read_secret(c, "pw", &sec, &len, &e3) == 0 && strcmp(sec, "fromcreds") == 0, "$CREDENTIALS_DIRECTORY comes first");
	free(sec);
	unsetenv("CREDENTIALS_DIRECTORY");
	buf_clear(&e3);
	T_OK(config_read_secret(c, "missing", &sec, &len, &e3) < 0 && strstr(e3.s, "cannot open"), "a missing secret file is an error");
	write_file("empty", "");
	buf_clear(&e3);
	T_OK(config_read_secret(c, "empty", &sec, &len, &e3) < 0 && strstr(e3.s, "empty"), "an empty secret file is an error");
	config_free(c);
	buf_free(&e3);
	buf_free(&err);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	T_EXIT();
}
