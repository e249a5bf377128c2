/*
 * fuzz_crypto.c: crypto.c on what a peer or the server controls: Olm
 * pre-key and normal messages, Megolm ciphertexts and session keys,
 * claimed one-time keys, signed key objects, ed25519 signatures, and
 * pickles from a damaged store.  The first input byte picks the target,
 * the rest is the attacker's string (fields split at '\n').
 *
 * The fixed cast (Alice, Bob, a Megolm session) is built from
 * deterministic bytes so that the seeds in tests/fuzz/corpus/fuzz_crypto
 * stay valid messages for it: FUZZ_CRYPTO_SEEDS=DIR writes them anew.
 * Deterministic randomness is for this fuzzer only.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char err[CRYPTO_ERR_LEN];
static const unsigned char key_bytes[32] = "fuzz_crypto pickle key, 32 bytes";
static const struct crypto_pickle_key K = { key_bytes, sizeof key_bytes };
static unsigned counter;

/* The cast, kept as pickles so each input starts from the same state. */
static char *bob_account, *bob_session, *megolm_in;
static char alice_curve[CRYPTO_KEY_LEN], bob_ed[CRYPTO_KEY_LEN], bob_otk[CRYPTO_KEY_LEN];
static char *good_megolm;   /* a valid Megolm ciphertext, index 0 */

enum target {
	T_OLM_INBOUND, T_OLM_MATCHES, T_OLM_DECRYPT, T_MEGOLM_DECRYPT, T_MEGOLM_KEY,
	T_ED25519, T_JSON_VERIFY, T_UNPICKLE, T_OLM_OUTBOUND, T_NTARGETS
};

static unsigned char *
fake_random(size_t n)
{
	unsigned char *p = xmalloc(n ? n : 1);
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(counter++ * 131u + 7u);
	return p;
}

static void
must(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "fuzz_crypto setup: %s: %s\n", what, err);
		abort();
	}
}

static struct crypto_account *
make_account(void)
{
	struct crypto_account *a;
	size_t n = crypto_account_random_len();
	unsigned char *r = fake_random(n);
	must(crypto_account_create(r, n, &a, err), "account");
	free(r);
	return a;
}

static char *
encrypt_olm(struct crypto_olm *s, const char *text, enum crypto_olm_type *t)
{
	size_t n = crypto_olm_encrypt_random_len(s);
	unsigned char *r = fake_random(n);
	char *body;
	must(crypto_olm_encrypt(s, text, strlen(text), r, n, t, &body, err), "olm encrypt");
	free(r);
	return body;
}

/* Seeds: one file per target holding a valid input for it. */
static void
seed(const char *dir, enum target t, const char *name, const char *s)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		return;
	fputc((int)t, f);
	fputs(s, f);
	fclose(f);
}

static void
setup(const char *seeds)
{
	struct crypto_account *alice = make_account(), *bob = make_account();
	char curve[CRYPTO_KEY_LEN], ed[CRYPTO_KEY_LEN];
	must(crypto_account_identity_keys(alice, alice_curve, ed, err), "alice keys");
	must(crypto_account_identity_keys(bob, curve, bob_ed, err), "bob keys");
	size_t n = crypto_otk_random_len(bob, 2);
	unsigned char *r = fake_random(n);
	must(crypto_account_generate_otks(bob, 2, r, n, err), "otks");
	free(r);
	struct crypto_otk *keys;
	must(crypto_account_unpublished_otks(bob, &keys, &n, err), "otk list");
	memcpy(bob_otk, keys[0].key, sizeof bob_otk);
	free(keys);

	struct crypto_olm *as, *bs;
	n = crypto_olm_outbound_random_len();
	r = fake_random(n);
	must(crypto_olm_outbound(alice, curve, bob_otk, r, n, &as, err), "outbound");
	free(r);
	enum crypto_olm_type t;
	char *prekey = encrypt_olm(as, "{\"type\":\"m.room_key\"}", &t);
	must(crypto_account_pickle(bob, K, &bob_account, err), "pickle bob");   /* before the key is used */
	char *plain;
	size_t len;
	must(crypto_olm_inbound(bob, alice_curve, prekey, &bs, &plain, &len, err), "inbound");
	free(plain);
	char *reply = encrypt_olm(bs, "reply", &t);
	must(crypto_olm_decrypt(as, t, reply, &plain, &len, err), "reply");
	free(plain);
	char *normal = encrypt_olm(as, "{\"type\":\"m.dummy\"}", &t);
	must(crypto_olm_pickle(bs, K, &bob_session, err), "pickle bob session");

	struct crypto_megolm_out *g;
	struct crypto_megolm_in *gi;
	char *session_key;
	n = crypto_megolm_out_random_len();
	r = fake_random(n);
	must(crypto_megolm_out_create(r, n, &g, err), "megolm out");
	free(r);
	must(crypto_megolm_out_key(g, &session_key, err), "session key");
	must(crypto_megolm_out_encrypt(g, "{\"type\":\"m.room.message\"}", 25, &good_megolm, NULL, err), "megolm enc");
	must(crypto_megolm_in_create(session_key, &gi, err), "megolm in");
	must(crypto_megolm_in_pickle(gi, K, &megolm_in, err), "pickle megolm in");

	if (seeds) {
		cJSON *dk;
		must(crypto_device_keys(bob, "@bob:example.org", "BOBDEV", &dk, err), "device keys");
		char *dks = cJSON_PrintUnformatted(dk);
		char sig[CRYPTO_SIG_LEN], line[512];
		must(crypto_account_sign(bob, "hello", 5, sig, err), "sign");
		seed(seeds, T_OLM_INBOUND, "olm_prekey", prekey);
		seed(seeds, T_OLM_MATCHES, "olm_matches", prekey);
		seed(seeds, T_OLM_DECRYPT, "olm_normal", normal);
		seed(seeds, T_MEGOLM_DECRYPT, "megolm_message", good_megolm);
		seed(seeds, T_MEGOLM_KEY, "megolm_session_key", session_key);
		snprintf(line, sizeof line, "%s\nhello\n%s", bob_ed, sig);
		seed(seeds, T_ED25519, "ed25519", line);
		seed(seeds, T_JSON_VERIFY, "device_keys", dks);
		seed(seeds, T_UNPICKLE, "pickle_account", bob_account);
		seed(seeds, T_UNPICKLE, "pickle_session", bob_session);
		seed(seeds, T_UNPICKLE, "pickle_megolm_in", megolm_in);
		snprintf(line, sizeof line, "%s\n%s", curve, bob_otk);
		seed(seeds, T_OLM_OUTBOUND, "claimed_key", line);
		cJSON_free(dks);
		cJSON_Delete(dk);
	}
	free(session_key);
	free(prekey);
	free(reply);
	free(normal);
	crypto_olm_free(as);
	crypto_olm_free(bs);
	crypto_megolm_out_free(g);
	crypto_megolm_in_free(gi);
	crypto_account_free(alice);
	crypto_account_free(bob);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	const char *seeds = getenv("FUZZ_CRYPTO_SEEDS");
	setup(seeds);
	if (seeds)
		exit(0);
	return 0;
}

/* Splits s at the first '\n' into s and the returned rest ("" when none). */
static char *
split(char *s)
{
	char *nl = strchr(s, '\n');
	if (nl == NULL)
		return s + strlen(s);
	*nl = '\0';
	return nl + 1;
}

static void
olm_inbound(const char *s)
{
	struct crypto_account *a;
	struct crypto_olm *o = NULL;
	char *plain = NULL;
	size_t len;
	must(crypto_account_unpickle(bob_account, K, &a, err), "unpickle bob");
	if (crypto_olm_inbound(a, alice_curve, s, &o, &plain, &len, err) == 0 && (o == NULL || plain == NULL))
		abort();
	free(plain);
	crypto_olm_free(o);
	crypto_account_free(a);
}

static void
olm_session(const char *s, enum target t)
{
	struct crypto_olm *o;
	char *plain = NULL;
	size_t len;
	must(crypto_olm_unpickle(bob_session, K, &o, err), "unpickle session");
	if (t == T_OLM_MATCHES) {
		crypto_olm_matches_inbound(o, alice_curve, s, err);
	} else {
		for (int type = 0; type <= 1; type++) {
			if (crypto_olm_decrypt(o, (enum crypto_olm_type)type, s, &plain, &len, err) == 0 &&
					strlen(plain) > len)
				abort();
			free(plain);
			plain = NULL;
		}
	}
	crypto_olm_free(o);
}

static void
megolm(const char *s, enum target t)
{
	struct crypto_megolm_in *g;
	char *plain = NULL;
	size_t len;
	uint32_t index;
	if (t == T_MEGOLM_KEY) {
		if (crypto_megolm_in_create(s, &g, err) < 0)
			return;
		s = good_megolm;
	} else {
		must(crypto_megolm_in_unpickle(megolm_in, K, &g, err), "unpickle megolm");
	}
	if (crypto_megolm_in_decrypt(g, s, &plain, &len, &index, err) == 0 && strlen(plain) > len)
		abort();
	free(plain);
	crypto_megolm_in_free(g);
}

static void
unpickle_all(const char *s)
{
	struct crypto_account *a = NULL;
	struct crypto_olm *o = NULL;
	struct crypto_megolm_in *gi = NULL;
	struct crypto_megolm_out *go = NULL;
	struct crypto_signing *sg = NULL;
	if (crypto_account_unpickle(s, K, &a, err) == 0) {
		char c[CRYPTO_KEY_LEN], e[CRYPTO_KEY_LEN];
		crypto_account_identity_keys(a, c, e, err);
	}
	crypto_olm_unpickle(s, K, &o, err);
	crypto_megolm_in_unpickle(s, K, &gi, err);
	crypto_megolm_out_unpickle(s, K, &go, err);
	crypto_signing_unpickle(s, K, &sg, err);
	crypto_account_free(a);
	crypto_olm_free(o);
	crypto_megolm_in_free(gi);
	crypto_megolm_out_free(go);
	crypto_signing_free(sg);
}

static void
outbound(char *s)
{
	char *otk = split(s);
	struct crypto_account *a;
	struct crypto_olm *o = NULL;
	must(crypto_account_unpickle(bob_account, K, &a, err), "unpickle bob");
	size_t n = crypto_olm_outbound_random_len();
	unsigned char *r = fake_random(n);
	if (crypto_olm_outbound(a, s, otk, r, n, &o, err) == 0) {
		enum crypto_olm_type t;
		char *body = encrypt_olm(o, "x", &t);
		free(body);
	}
	free(r);
	crypto_olm_free(o);
	crypto_account_free(a);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum target t = (enum target)(data[0] % T_NTARGETS);
	char *s = xstrndup((const char *)data + 1, size - 1);
	switch (t) {
	case T_OLM_INBOUND: olm_inbound(s); break;
	case T_OLM_MATCHES:
	case T_OLM_DECRYPT: olm_session(s, t); break;
	case T_MEGOLM_DECRYPT:
	case T_MEGOLM_KEY: megolm(s, t); break;
	case T_ED25519: {
		char *msg = split(s), *sig = split(msg);
		crypto_ed25519_verify(s, msg, strlen(msg), sig, err);
		break;
	}
	case T_JSON_VERIFY: {
		cJSON *j = cJSON_Parse(s);
		crypto_verify_json(j, "@bob:example.org", "BOBDEV", bob_ed, err);
		cJSON_Delete(j);
		break;
	}
	case T_UNPICKLE: unpickle_all(s); break;
	case T_OLM_OUTBOUND: outbound(s); break;
	case T_NTARGETS: break;
	}
	free(s);
	return 0;
}
