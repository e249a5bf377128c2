/*
 * interop.c: a command-line face of crypto.h for tests/crypto_interop_test.py,
 * which checks with python-olm what this layer produced and feeds it what
 * python-olm produced.  State lives between runs as pickles in DIR (under
 * the 32-byte key in DIR/key), so every step also crosses a process restart.
 * Each command prints one JSON object; failure: a message and exit status 1.
 *
 *   interop account DIR USER DEVICE N     new account, N one-time keys, a fallback key
 *   interop xsign DIR USER DEVICE         master and self-signing keys, cross-signed device keys
 *   interop olm-out DIR PEER CURVE OTK TEXT
 *   interop olm-in DIR PEER CURVE BODY
 *   interop olm-enc DIR PEER TEXT
 *   interop olm-dec DIR PEER TYPE BODY
 *   interop megolm-out DIR                prints session_id, session_key
 *   interop megolm-enc DIR TEXT
 *   interop megolm-in DIR SESSION_KEY
 *   interop megolm-dec DIR CIPHERTEXT
 *   interop canon                          canonical form of the JSON on stdin
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "buf.h"
#include "canonjson.h"
#include "crypto.h"

static char err[CRYPTO_ERR_LEN];
static unsigned char key_bytes[64];
static struct crypto_pickle_key pkey = { key_bytes, 0 };
static const char *dir;

static _Noreturn void
die(const char *what)
{
	fprintf(stderr, "interop: %s: %s\n", what, err);
	exit(1);
}

static unsigned char *
rnd(size_t n)
{
	unsigned char *p = xmalloc(n);
	for (size_t i = 0; i < n;) {
		ssize_t r = getrandom(p + i, n - i, 0);
		if (r < 0)
			abort();
		i += (size_t)r;
	}
	return p;
}

static char *
path(const char *name)
{
	static char p[4096];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return p;
}

static char *
slurp(const char *name)
{
	FILE *f = fopen(path(name), "rb");
	if (f == NULL) {
		snprintf(err, sizeof err, "cannot open %.200s", path(name));
		die("read");
	}
	struct buf b;
	buf_init(&b);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_add(&b, chunk, n);
	fclose(f);
	return buf_take(&b);
}

static void
store(const char *name, char *pickle)
{
	FILE *f = fopen(path(name), "wb");
	if (f == NULL || fputs(pickle, f) < 0 || fclose(f) != 0) {
		snprintf(err, sizeof err, "cannot write %.200s", path(name));
		die("write");
	}
	free(pickle);
}

static void
load_key(void)
{
	FILE *f = fopen(path("key"), "rb");
	if (f == NULL) {
		snprintf(err, sizeof err, "no %.200s", path("key"));
		die("key");
	}
	pkey.n = fread(key_bytes, 1, sizeof key_bytes, f);
	fclose(f);
}

static void
emit(cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);
	puts(s);
	cJSON_free(s);
	cJSON_Delete(o);
}

static struct crypto_account *
load_account(void)
{
	struct crypto_account *a;
	char *p = slurp("bot.account");
	if (crypto_account_unpickle(p, pkey, &a, err) < 0)
		die("unpickle account");
	free(p);
	return a;
}

static void
save_account(struct crypto_account *a)
{
	char *p;
	if (crypto_account_pickle(a, pkey, &p, err) < 0)
		die("pickle account");
	store("bot.account", p);
	crypto_account_free(a);
}

static int
cmd_account(char **av)
{
	struct crypto_account *a;
	size_t n = crypto_account_random_len();
	unsigned char *r = rnd(n);
	if (crypto_account_create(r, n, &a, err) < 0)
		die("create");
	free(r);
	size_t count = strtoul(av[2], NULL, 10);
	n = crypto_otk_random_len(a, count);
	r = rnd(n);
	if (crypto_account_generate_otks(a, count, r, n, err) < 0)
		die("otks");
	free(r);
	n = crypto_fallback_random_len(a);
	r = rnd(n);
	if (crypto_account_generate_fallback(a, r, n, err) < 0)
		die("fallback");
	free(r);
	cJSON *o = cJSON_CreateObject(), *dk, *otks, *fb;
	char curve[CRYPTO_KEY_LEN], ed[CRYPTO_KEY_LEN];
	if (crypto_device_keys(a, av[0], av[1], &dk, err) < 0 || crypto_otk_objects(a, av[0], av[1], &otks, err) < 0 ||
			crypto_fallback_object(a, av[0], av[1], &fb, err) < 0 ||
			crypto_account_identity_keys(a, curve, ed, err) < 0)
		die("key objects");
	cJSON_AddItemToObject(o, "device_keys", dk);
	cJSON_AddItemToObject(o, "one_time_keys", otks);
	cJSON_AddItemToObject(o, "fallback_keys", fb);
	cJSON_AddStringToObject(o, "curve25519", curve);
	cJSON_AddStringToObject(o, "ed25519", ed);
	crypto_account_mark_published(a);
	save_account(a);
	emit(o);
	return 0;
}

static struct crypto_signing *
new_signing(void)
{
	struct crypto_signing *s;
	unsigned char *seed = rnd(CRYPTO_SEED_LEN);
	if (crypto_signing_from_seed(seed, CRYPTO_SEED_LEN, &s, err) < 0)
		die("signing key");
	free(seed);
	return s;
}

static int
cmd_xsign(char **av)
{
	struct crypto_account *a = load_account();
	struct crypto_signing *master = new_signing(), *ssk = new_signing();
	cJSON *mk, *sk, *dk;
	if (crypto_signing_key_object(master, av[0], "master", NULL, &mk, err) < 0 ||
			crypto_signing_key_object(ssk, av[0], "self_signing", master, &sk, err) < 0 ||
			crypto_device_keys(a, av[0], av[1], &dk, err) < 0 || crypto_signing_sign_json(ssk, dk, av[0], err) < 0)
		die("cross-signing");
	/* the pickled self-signing key signs the same bytes after a round trip */
	char *p;
	struct crypto_signing *back;
	if (crypto_signing_pickle(ssk, pkey, &p, err) < 0 || crypto_signing_unpickle(p, pkey, &back, err) < 0)
		die("signing pickle");
	free(p);
	cJSON *o = cJSON_CreateObject();
	char pub[CRYPTO_KEY_LEN];
	crypto_signing_public(back, pub);
	cJSON_AddItemToObject(o, "master_key", mk);
	cJSON_AddItemToObject(o, "self_signing_key", sk);
	cJSON_AddItemToObject(o, "device_keys", dk);
	cJSON_AddStringToObject(o, "self_signing_after_pickle", pub);
	crypto_signing_free(back);
	crypto_signing_free(master);
	crypto_signing_free(ssk);
	crypto_account_free(a);
	emit(o);
	return 0;
}

static char *
session_file(const char *peer)
{
	static char name[256];
	snprintf(name, sizeof name, "%s.olm", peer);
	return name;
}

static struct crypto_olm *
load_session(const char *peer)
{
	struct crypto_olm *s;
	char *p = slurp(session_file(peer));
	if (crypto_olm_unpickle(p, pkey, &s, err) < 0)
		die("unpickle session");
	free(p);
	return s;
}

static void
save_session(const char *peer, struct crypto_olm *s)
{
	char *p;
	if (crypto_olm_pickle(s, pkey, &p, err) < 0)
		die("pickle session");
	store(session_file(peer), p);
	crypto_olm_free(s);
}

static void
emit_olm(struct crypto_olm *s, const char *text)
{
	size_t n = crypto_olm_encrypt_random_len(s);
	unsigned char *r = rnd(n + 1);
	enum crypto_olm_type t;
	char *body;
	if (crypto_olm_encrypt(s, text, strlen(text), r, n, &t, &body, err) < 0)
		die("olm encrypt");
	free(r);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "type", t);
	cJSON_AddStringToObject(o, "body", body);
	free(body);
	emit(o);
}

static void
emit_plain(char *plain, size_t len, long long index)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "plaintext", plain);
	cJSON_AddNumberToObject(o, "length", (double)len);
	if (index >= 0)
		cJSON_AddNumberToObject(o, "index", (double)index);
	free(plain);
	emit(o);
}

static int
cmd_olm_out(char **av)
{
	struct crypto_account *a = load_account();
	struct crypto_olm *s;
	size_t n = crypto_olm_outbound_random_len();
	unsigned char *r = rnd(n);
	if (crypto_olm_outbound(a, av[1], av[2], r, n, &s, err) < 0)
		die("outbound session");
	free(r);
	crypto_account_free(a);
	emit_olm(s, av[3]);
	save_session(av[0], s);
	return 0;
}

static int
cmd_olm_in(char **av)
{
	struct crypto_account *a = load_account();
	struct crypto_olm *s;
	char *plain;
	size_t len;
	if (crypto_olm_inbound(a, av[1], av[2], &s, &plain, &len, err) < 0)
		die("inbound session");
	save_account(a);
	save_session(av[0], s);
	emit_plain(plain, len, -1);
	return 0;
}

static int
cmd_olm_enc(char **av)
{
	struct crypto_olm *s = load_session(av[0]);
	emit_olm(s, av[1]);
	save_session(av[0], s);
	return 0;
}

static int
cmd_olm_dec(char **av)
{
	struct crypto_olm *s = load_session(av[0]);
	char *plain;
	size_t len;
	if (crypto_olm_decrypt(s, (enum crypto_olm_type)atoi(av[1]), av[2], &plain, &len, err) < 0)
		die("olm decrypt");
	save_session(av[0], s);
	emit_plain(plain, len, -1);
	return 0;
}

static int
cmd_megolm_out(char **av)
{
	(void)av;
	struct crypto_megolm_out *g;
	size_t n = crypto_megolm_out_random_len();
	unsigned char *r = rnd(n);
	char id[CRYPTO_KEY_LEN], *key, *p;
	if (crypto_megolm_out_create(r, n, &g, err) < 0 || crypto_megolm_out_id(g, id, err) < 0 ||
			crypto_megolm_out_key(g, &key, err) < 0 || crypto_megolm_out_pickle(g, pkey, &p, err) < 0)
		die("megolm out");
	free(r);
	store("out.megolm", p);
	crypto_megolm_out_free(g);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "session_id", id);
	cJSON_AddStringToObject(o, "session_key", key);
	free(key);
	emit(o);
	return 0;
}

static int
cmd_megolm_enc(char **av)
{
	struct crypto_megolm_out *g;
	char *p = slurp("out.megolm"), *ct;
	uint32_t index;
	if (crypto_megolm_out_unpickle(p, pkey, &g, err) < 0)
		die("unpickle megolm out");
	free(p);
	if (crypto_megolm_out_encrypt(g, av[0], strlen(av[0]), &ct, &index, err) < 0 ||
			crypto_megolm_out_pickle(g, pkey, &p, err) < 0)
		die("megolm encrypt");
	store("out.megolm", p);
	crypto_megolm_out_free(g);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "ciphertext", ct);
	cJSON_AddNumberToObject(o, "index", index);
	free(ct);
	emit(o);
	return 0;
}

static int
cmd_megolm_in(char **av)
{
	struct crypto_megolm_in *g;
	char id[CRYPTO_KEY_LEN], *p;
	if (crypto_megolm_in_create(av[0], &g, err) < 0 || crypto_megolm_in_id(g, id, err) < 0 ||
			crypto_megolm_in_pickle(g, pkey, &p, err) < 0)
		die("megolm in");
	store("in.megolm", p);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "session_id", id);
	cJSON_AddNumberToObject(o, "first_index", crypto_megolm_in_first_index(g));
	crypto_megolm_in_free(g);
	emit(o);
	return 0;
}

static int
cmd_megolm_dec(char **av)
{
	struct crypto_megolm_in *g;
	char *p = slurp("in.megolm"), *plain;
	size_t len;
	uint32_t index;
	if (crypto_megolm_in_unpickle(p, pkey, &g, err) < 0)
		die("unpickle megolm in");
	free(p);
	if (crypto_megolm_in_decrypt(g, av[0], &plain, &len, &index, err) < 0)
		die("megolm decrypt");
	crypto_megolm_in_free(g);
	emit_plain(plain, len, index);
	return 0;
}

static int
cmd_canon(char **av)
{
	(void)av;
	struct buf in, out;
	buf_init(&in);
	buf_init(&out);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
		buf_add(&in, chunk, n);
	cJSON *j = cJSON_ParseWithLength(in.s ? in.s : "", in.len);
	if (j == NULL) {
		snprintf(err, sizeof err, "cJSON cannot parse the input");
		die("canon");
	}
	if (canonjson_print(j, &out, err) < 0)
		die("canon");
	fwrite(out.s, 1, out.len, stdout);
	cJSON_Delete(j);
	buf_free(&in);
	buf_free(&out);
	return 0;
}

static const struct command {
	const char *name;
	int nargs;   /* after DIR */
	int (*run)(char **av);
} commands[] = {
	{ "account", 3, cmd_account },
	{ "canon", -1, cmd_canon },
	{ "megolm-dec", 1, cmd_megolm_dec },
	{ "megolm-enc", 1, cmd_megolm_enc },
	{ "megolm-in", 1, cmd_megolm_in },
	{ "megolm-out", 0, cmd_megolm_out },
	{ "olm-dec", 3, cmd_olm_dec },
	{ "olm-enc", 2, cmd_olm_enc },
	{ "olm-in", 3, cmd_olm_in },
	{ "olm-out", 4, cmd_olm_out },
	{ "xsign", 2, cmd_xsign },
};

int
main(int argc, char **argv)
{
	for (size_t i = 0; argc >= 2 && i < sizeof commands / sizeof commands[0]; i++) {
		const struct command *c = &commands[i];
		if (strcmp(argv[1], c->name) != 0)
			continue;
		if (c->nargs < 0)
			return c->run(argv + 2);
		if (argc != c->nargs + 3)
			break;
		dir = argv[2];
		load_key();
		return c->run(argv + 3);
	}
	fprintf(stderr, "usage: interop COMMAND DIR ARGS... (see tests/crypto/interop.c)\n");
	return 2;
}
