/* config.c: the INI config via inih, parsed whole and validated before use. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "transport.h"

#ifndef KNEEBOT_DATADIR
#define KNEEBOT_DATADIR "/usr/local/share/kneebot"
#endif

#define MAX_SECRET 65536

/* Keys that would put a secret inline; they must come from files. */
static const char *const inline_secrets[] = {
	"password", "sasl_password", "access_token", "token", "pickle_key", "key_password",
};

struct parse {
	struct config *c;
	struct buf *err;
	const char *file;
	FILE *fp;
	int line;
	bool midline;
	char section[256];
	struct conf_section *cur;
	int errors;
};

static void
perr(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
perr(struct parse *p, const char *fmt, ...)
{
	va_list ap;
	buf_printf(p->err, "%s:%d: ", p->file, p->line);
	va_start(ap, fmt);
	buf_vprintf(p->err, fmt, ap);
	va_end(ap);
	buf_addc(p->err, '\n');
	p->errors++;
}

void
conf_error(struct buf *err, const char *file, const struct conf_section *s, const char *key, const char *fmt, ...)
{
	const struct conf_kv *kv = key ? conf_find(s, key) : NULL;
	va_list ap;
	buf_printf(err, "%s:%d: ", file ? file : "(defaults)", kv ? kv->line : s->line);
	if (s->name)
		buf_printf(err, "[%s.%s] ", s->kind, s->name);
	else
		buf_printf(err, "[%s] ", s->kind);
	va_start(ap, fmt);
	buf_vprintf(err, fmt, ap);
	va_end(ap);
	buf_addc(err, '\n');
}

const struct conf_kv *
conf_find(const struct conf_section *s, const char *key)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->nkv; i++)
		if (strcmp(s->kv[i].key, key) == 0)
			return &s->kv[i];
	return NULL;
}

const char *
conf_get(const struct conf_section *s, const char *key)
{
	const struct conf_kv *kv = conf_find(s, key);
	return kv ? kv->value : NULL;
}

int
conf_bool(const struct conf_section *s, const char *key, bool def, bool *out, const char *file, struct buf *err)
{
	const char *v = conf_get(s, key);
	*out = def;
	if (!v)
		return 0;
	static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) { *out = true; return 0; }
		if (strcasecmp(v, no[i]) == 0) { *out = false; return 0; }
	}
	conf_error(err, file, s, key, "%s = '%s': expected yes or no", key, v);
	return -1;
}

int
conf_long(const struct conf_section *s, const char *key, long min, long max, long def, long *out, const char *file, struct buf *err)
{
	const char *v = conf_get(s, key);
	*out = def;
	if (!v)
		return 0;
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < min || n > max) {
		conf_error(err, file, s, key, "%s = '%s': expected a whole number from %ld to %ld", key, v, min, max);
		return -1;
	}
	*out = n;
	return 0;
}

const char *
conf_net_get(const struct config *c, const struct conf_section *net, const char *key)
{
	const char *v = conf_get(net, key);
	return v ? v : conf_get(&c->bot_section, key);
}

long
conf_net_long(const struct config *c, const struct conf_section *net, const char *key, long def)
{
	const char *v = conf_net_get(c, net, key);
	if (!v)
		return def;
	char *end;
	long n = strtol(v, &end, 10);
	return *end || end == v ? def : n;
}

bool
conf_section_equal(const struct conf_section *a, const struct conf_section *b)
{
	if (a->nkv != b->nkv || strcmp(a->kind, b->kind) != 0)
		return false;
	if ((a->name == NULL) != (b->name == NULL) || (a->name && strcmp(a->name, b->name) != 0))
		return false;
	for (size_t i = 0; i < a->nkv; i++) {
		const char *v = conf_get(b, a->kv[i].key);
		if (!v || strcmp(v, a->kv[i].value) != 0)
			return false;
	}
	return true;
}

const struct conf_section *
config_network(const struct config *c, const char *kind, const char *name)
{
	for (size_t i = 0; i < c->nnets; i++)
		if (strcmp(c->nets[i].kind, kind) == 0 && strcmp(c->nets[i].name, name) == 0)
			return &c->nets[i];
	return NULL;
}

size_t
strv_split(const char *s, char ***out)
{
	char **v = NULL;
	size_t n = 0;
	while (s && *s) {
		const char *q = strchr(s, ',');
		size_t len = q ? (size_t)(q - s) : strlen(s);
		const char *a = s;
		while (len && isspace((unsigned char)*a))
			a++, len--;
		while (len && isspace((unsigned char)a[len - 1]))
			len--;
		if (len) {
			v = xrealloc(v, (n + 1) * sizeof *v);
			v[n++] = xstrndup(a, len);
		}
		if (!q)
			break;
		s = q + 1;
	}
	*out = v;
	return n;
}

void
strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
section_free(struct conf_section *s)
{
	for (size_t i = 0; i < s->nkv; i++) {
		free(s->kv[i].key);
		free(s->kv[i].value);
	}
	free(s->kv);
	free(s->kind);
	free(s->name);
}

void
config_free(struct config *c)
{
	if (!c)
		return;
	section_free(&c->bot_section);
	for (size_t i = 0; i < c->nnets; i++)
		section_free(&c->nets[i]);
	free(c->nets);
	free(c->path);
	free(c->bot.nick);
	free(c->bot.prefix);
	free(c->bot.responses_dir);
	free(c->bot.state_dir);
	free(c->bot.ignore);
	free(c->bot.admins);
	free(c);
}

/* A readable directory with a responses/ knowledge base in it. */
static bool
has_kb(const char *dir)
{
	char p[PATH_MAX + 128];
	snprintf(p, sizeof p, "%s/cues.ini", dir);
	return access(p, R_OK) == 0;
}

const char *
config_default_responses(void)
{
	static char found[PATH_MAX];
	if (found[0])
		return found;
	/* the source tree (build/kneebot) or a relocated install (bin/kneebot) */
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			/* build/kneebot, build/asan/kneebot, or PREFIX/bin/kneebot */
			static const char *const rel[] = { "/../responses", "/../../responses", "/../share/kneebot/responses" };
			for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
				char cand[PATH_MAX + 64];
				snprintf(cand, sizeof cand, "%s%s", exe, rel[i]);
				if (has_kb(cand) && realpath(cand, found))
					return found;
			}
		}
	}
	snprintf(found, sizeof found, "%s/responses", KNEEBOT_DATADIR);
	return found;
}

char *
config_path(const struct config *c, const char *path)
{
	if (path[0] == '/' || !c->path)
		return xstrdup(path);
	const char *slash = strrchr(c->path, '/');
	if (!slash)
		return xstrdup(path);
	struct buf b;
	buf_init(&b);
	buf_printf(&b, "%.*s/%s", (int)(slash - c->path), c->path, path);
	return buf_take(&b);
}

static char *
read_line(char *str, int num, void *stream)
{
	struct parse *p = stream;
	if (!fgets(str, num, p->fp))
		return NULL;
	size_t n = strlen(str);
	if (!p->midline)
		p->line++;
	p->midline = n > 0 && str[n - 1] != '\n';
	return str;
}

static struct conf_section *
new_section(struct parse *p, const char *name)
{
	struct config *c = p->c;
	if (strcmp(name, "bot") == 0) {
		if (c->bot_section.line) {
			perr(p, "[bot] given twice (first at line %d)", c->bot_section.line);
			return NULL;
		}
		c->bot_section.line = p->line;
		return &c->bot_section;
	}
	const char *dot = strchr(name, '.');
	if (!dot || dot == name || !dot[1]) {
		perr(p, "section [%s]: expected [bot], [irc.NAME] or [matrix.NAME]", name);
		return NULL;
	}
	for (const char *q = dot + 1; *q; q++) {
		if (!isalnum((unsigned char)*q) && *q != '_' && *q != '-') {
			perr(p, "section [%s]: a network name is letters, digits, '-' and '_'", name);
			return NULL;
		}
	}
	char kind[32];
	snprintf(kind, sizeof kind, "%.*s", (int)(dot - name), name);
	if (!transport_kind_find(kind)) {
		perr(p, "section [%s]: unknown network type '%s'", name, kind);
		return NULL;
	}
	for (size_t i = 0; i < c->nnets; i++) {
		if (strcmp(c->nets[i].kind, kind) == 0 && strcmp(c->nets[i].name, dot + 1) == 0) {
			perr(p, "section [%s] given twice (first at line %d)", name, c->nets[i].line);
			return NULL;
		}
	}
	c->nets = xrealloc(c->nets, (c->nnets + 1) * sizeof *c->nets);
	struct conf_section *s = &c->nets[c->nnets++];
	memset(s, 0, sizeof *s);
	s->kind = xstrdup(kind);
	s->name = xstrdup(dot + 1);
	s->line = p->line;
	return s;
}

static int
on_value(void *user, const char *section, const char *key, const char *value)
{
	struct parse *p = user;
	if (!*section) {
		perr(p, "'%s' outside any section", key);
		return 1;
	}
	if (strcmp(section, p->section) != 0) {
		snprintf(p->section, sizeof p->section, "%s", section);
		p->cur = new_section(p, section);
	}
	if (!p->cur)
		return 1;
	for (size_t i = 0; i < sizeof inline_secrets / sizeof inline_secrets[0]; i++) {
		if (strcmp(key, inline_secrets[i]) == 0) {
			perr(p, "'%s' would put a secret in the config: put it in a file and use %s_file", key, key);
			return 1;
		}
	}
	if (conf_find(p->cur, key)) {
		perr(p, "'%s' given twice in [%s]", key, section);
		return 1;
	}
	struct conf_section *s = p->cur;
	s->kv = xrealloc(s->kv, (s->nkv + 1) * sizeof *s->kv);
	s->kv[s->nkv++] = (struct conf_kv){ xstrdup(key), xstrdup(value), p->line };
	return 1;
}

/* An identity of admins or ignore: which prefix, and what must follow it. */
static bool
identity_valid(const char *e)
{
	if (strncmp(e, "account:", 8) == 0)
		return e[8] && !strpbrk(e + 8, " \t");
	if (strncmp(e, "mask:", 5) == 0) {
		const char *bang = strchr(e + 5, '!');   /* nick!user@host, never a nick alone */
		return bang && bang > e + 5 && strchr(bang, '@') && !strpbrk(e + 5, " \t");
	}
	const char *colon = e[0] == '@' ? strchr(e, ':') : NULL;
	return colon && colon > e + 1 && colon[1] && !strpbrk(e, " \t");
}

int
conf_identities(const struct conf_section *s, const char *key, const char *file, struct buf *err)
{
	char **v;
	size_t n = strv_split(conf_get(s, key), &v);
	int rv = 0;
	for (size_t i = 0; i < n; i++) {
		if (identity_valid(v[i]))
			continue;
		conf_error(err, file, s, key, "%s entry '%s': expected account:NAME, mask:NICK!USER@HOST or @user:server "
			"(a bare nick is never trusted)", key, v[i]);
		rv = -1;
	}
	strv_free(v, n);
	return rv;
}

/* [bot] keys; network sections may repeat the starred ones to override them. */
static const char *const bot_keys[] = {
	"nick", "prefix", "responses_dir", "state_dir", "reply_mode", "log_level", "memory_s",
	"cooldown_s", "room_max_per_min", "ignore", "admins",
};

static int
validate_bot(struct config *c, struct buf *err)
{
	struct conf_section *s = &c->bot_section;
	const char *file = c->path;
	int bad = 0;
	for (size_t i = 0; i < s->nkv; i++) {
		bool known = false;
		for (size_t k = 0; k < sizeof bot_keys / sizeof bot_keys[0]; k++)
			known |= strcmp(s->kv[i].key, bot_keys[k]) == 0;
		if (!known) {
			conf_error(err, file, s, s->kv[i].key, "unknown key '%s'", s->kv[i].key);
			bad = -1;
		}
	}
	struct bot_conf *b = &c->bot;
	const char *v;
	b->nick = xstrdup((v = conf_get(s, "nick")) ? v : "kneebot");
	if (!*b->nick || strpbrk(b->nick, " ,:@!\r\n")) {
		conf_error(err, file, s, "nick", "nick '%s' is empty or has a space, ',', ':', '@' or '!'", b->nick);
		bad = -1;
	}
	b->prefix = xstrdup((v = conf_get(s, "prefix")) ? v : "!");
	if (!*b->prefix || strlen(b->prefix) > 8 || strpbrk(b->prefix, " \t")) {
		conf_error(err, file, s, "prefix", "prefix must be 1 to 8 characters without spaces");
		bad = -1;
	}
	if ((v = conf_get(s, "responses_dir")))
		b->responses_dir = config_path(c, v);
	else
		b->responses_dir = xstrdup(config_default_responses());
	if ((v = conf_get(s, "state_dir")))
		b->state_dir = config_path(c, v);
	else if ((v = getenv("STATE_DIRECTORY")) && *v)
		b->state_dir = xstrndup(v, strcspn(v, ":"));   /* systemd may list several */
	else
		b->state_dir = xstrdup("/var/lib/kneebot");
	v = conf_get(s, "reply_mode");
	if (!v || strcmp(v, "ambient") == 0) {
		b->reply_mode = REPLY_MODE_AMBIENT;
	} else if (strcmp(v, "addressed") == 0) {
		b->reply_mode = REPLY_MODE_ADDRESSED;
	} else {
		conf_error(err, file, s, "reply_mode", "reply_mode = '%s': expected ambient or addressed", v);
		bad = -1;
	}
	b->log_level = LOG_LVL_INFO;
	if ((v = conf_get(s, "log_level"))) {
		int l = log_level_parse(v);
		if (l < 0) {
			conf_error(err, file, s, "log_level", "log_level = '%s': expected debug, info, notice, warning or error", v);
			bad = -1;
		} else {
			b->log_level = l;
		}
	}
	bad |= conf_long(s, "memory_s", 0, 86400, 600, &b->memory_s, file, err);
	bad |= conf_long(s, "cooldown_s", 0, 86400, 120, &b->cooldown_s, file, err);
	bad |= conf_long(s, "room_max_per_min", 0, 1000, 6, &b->room_max_per_min, file, err);
	bad |= conf_identities(s, "ignore", file, err);
	bad |= conf_identities(s, "admins", file, err);
	b->ignore = xstrdup((v = conf_get(s, "ignore")) ? v : "");
	b->admins = xstrdup((v = conf_get(s, "admins")) ? v : "");
	return bad ? -1 : 0;
}

int
config_load(const char *path, struct config **out, struct buf *err)
{
	struct config *c = xcalloc(1, sizeof *c);
	c->bot_section.kind = xstrdup("bot");
	size_t err_before = err->len;
	int errors = 0;
	if (path) {
		char real[PATH_MAX];
		c->path = xstrdup(realpath(path, real) ? real : path);
		struct parse p = { .c = c, .err = err, .file = path };
		p.fp = fopen(path, "r");
		if (!p.fp) {
			buf_printf(err, "%s: cannot open: %s\n", path, strerror(errno));
			config_free(c);
			return -1;
		}
		ini_allow_inline_comments = false;
		ini_allow_multiline = false;
		ini_max_line = 4096;
		int r = ini_parse_stream(read_line, &p, on_value, &p);
		fclose(p.fp);
		errors += p.errors;
		if (r > 0) {
			buf_printf(err, "%s:%d: syntax error: expected [section], key = value, or a comment\n", path, r);
			errors++;
		}
	}
	if (validate_bot(c, err) < 0)
		errors++;
	for (size_t i = 0; i < c->nnets; i++) {
		const struct transport_kind *k = transport_kind_find(c->nets[i].kind);
		if (k && k->validate && k->validate(c, &c->nets[i], err) < 0)
			errors++;
	}
	if (errors || err->len != err_before) {
		config_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

char *
config_secret_path(const struct config *c, const char *path)
{
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	if (path[0] != '/' && creds && *creds) {
		struct buf b;
		buf_init(&b);
		buf_printf(&b, "%s/%s", creds, path);
		if (access(b.s, R_OK) == 0)
			return buf_take(&b);
		buf_free(&b);
	}
	return config_path(c, path);
}

int
config_read_secret(const struct config *c, const char *path, char **out, size_t *len, struct buf *err)
{
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	char *full = config_secret_path(c, path);
	int fd = open(full, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		buf_printf(err, "cannot open secret file %s: %s", full, strerror(errno));
		free(full);
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0077) && !creds)
		log_warnx("secret file %s is readable by others (mode %03o): chmod 600 it", full, (unsigned)(st.st_mode & 0777));
	char *s = xmalloc(MAX_SECRET + 1);
	size_t n = 0;
	ssize_t r;
	while (n < MAX_SECRET && (r = read(fd, s + n, MAX_SECRET - n)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			buf_printf(err, "cannot read secret file %s: %s", full, strerror(errno));
			close(fd);
			explicit_bzero(s, n);
			free(s);
			free(full);
			return -1;
		}
		n += (size_t)r;
	}
	close(fd);
	if (n && s[n - 1] == '\n')
		n--;
	if (n && s[n - 1] == '\r')
		n--;
	s[n] = '\0';
	if (n == 0) {
		buf_printf(err, "secret file %s is empty", full);
		free(s);
		free(full);
		return -1;
	}
	free(full);
	*out = s;
	*len = n;
	return 0;
}
