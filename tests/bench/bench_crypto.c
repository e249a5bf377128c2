/*
 * bench_crypto.c: what the crypto layer costs the bot per message.
 *  - Megolm: encrypt a typical reply (m.notice with HTML, reply relation and
 *    mentions), pickle the outbound session (committed before sending), and
 *    decrypt it on the other side.
 *  - Sharing a room key with 50 devices: per device, verify the claimed
 *    one-time key's signature, create the Olm session, build and encrypt the
 *    m.room_key plaintext, pickle the session.
 *  - Receiving an m.room_key: a new inbound Olm session from a pre-key
 *    message (decrypt included) and the Megolm inbound session from it.
 * Each figure is the median of ROUNDS rounds; randomness (getrandom) is
 * inside the timings, as it is in the bot.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "crypto.h"

#define ROUNDS 5
#define MEGOLM_N 100        /* messages per session: the default rotation_period_msgs */
#define MEGOLM_SESSIONS 20
#define DEVICES 50

static char err[CRYPTO_ERR_LEN];
static unsigned char key_bytes[32];
static const struct crypto_pickle_key K = { key_bytes, sizeof key_bytes };

static _Noreturn void
die(const char *what)
{
	fprintf(stderr, "bench_crypto: %s: %s\n", what, err);
	exit(1);
}

#define need(ok, what) do { if (!(ok)) die(what); } while (0)

static unsigned char *
rnd(size_t n)
{
	unsigned char *p = xmalloc(n ? n : 1);
	for (size_t i = 0; i < n;) {
		ssize_t r = getrandom(p + i, n - i, 0);
		need(r >= 0, "getrandom");
		i += (size_t)r;
	}
	return p;
}

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double
median(double *v)
{
	qsort(v, ROUNDS, sizeof *v, by_value);
	return v[ROUNDS / 2];
}

static struct crypto_account *
new_account(void)
{
	struct crypto_account *a;
	size_t n = crypto_account_random_len();
	unsigned char *r = rnd(n);
	need(crypto_account_create(r, n, &a, err) == 0, "account");
	free(r);
	return a;
}

/* About what a triage answer in a club room looks like once wrapped for Megolm. */
static char *
typical_reply(void)
{
	static const char body[] =
		"Pain on the outside of the knee that starts a few km into a run and eases at rest often "
		"points to the iliotibial band. Things to try now: cut the distance for a week or two, "
		"avoid downhill and cambered roads, and start hip strength work (band walks, side-lying "
		"leg raises, three sets of 15). If the knee locks, gives way or swells quickly, stop "
		"running and get it examined.";
	cJSON *o = cJSON_CreateObject(), *c = cJSON_AddObjectToObject(o, "content");
	cJSON_AddStringToObject(o, "type", "m.room.message");
	cJSON_AddStringToObject(o, "room_id", "!abcdefghijklmnop:example.org");
	cJSON_AddStringToObject(c, "msgtype", "m.notice");
	cJSON_AddStringToObject(c, "body", body);
	cJSON_AddStringToObject(c, "format", "org.matrix.custom.html");
	char html[sizeof body + 64];
	snprintf(html, sizeof html, "<p>%s</p>", body);
	cJSON_AddStringToObject(c, "formatted_body", html);
	cJSON *rel = cJSON_AddObjectToObject(cJSON_AddObjectToObject(c, "m.relates_to"), "m.in_reply_to");
	cJSON_AddStringToObject(rel, "event_id", "$Qx3bJ7ZpA1yJw0kL9m2n4o6p8q0r2s4t6u8v0w2y4z6:example.org");
	cJSON *ids = cJSON_AddArrayToObject(cJSON_AddObjectToObject(c, "m.mentions"), "user_ids");
	cJSON_AddItemToArray(ids, cJSON_CreateString("@runner:example.org"));
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* One session's life: MEGOLM_N replies encrypted (each followed by the pickle the bot commits), then decrypted. */
static void
megolm_session(const char *plain, size_t n, double *enc, double *pick, double *dec)
{
	struct crypto_megolm_out *g;
	struct crypto_megolm_in *gi;
	size_t rn = crypto_megolm_out_random_len();
	unsigned char *r = rnd(rn);
	char *key, **ct = xcalloc(MEGOLM_N, sizeof *ct);
	need(crypto_megolm_out_create(r, rn, &g, err) == 0 && crypto_megolm_out_key(g, &key, err) == 0 &&
		crypto_megolm_in_create(key, &gi, err) == 0, "megolm sessions");
	free(r);
	free(key);
	for (int i = 0; i < MEGOLM_N; i++) {
		char *p;
		double t0 = now();
		need(crypto_megolm_out_encrypt(g, plain, n, &ct[i], NULL, err) == 0, "megolm encrypt");
		double t1 = now();
		need(crypto_megolm_out_pickle(g, K, &p, err) == 0, "megolm pickle");
		*enc += t1 - t0;
		*pick += now() - t1;
		free(p);
	}
	double t0 = now();
	for (int i = 0; i < MEGOLM_N; i++) {
		char *out;
		size_t len;
		uint32_t index;
		need(crypto_megolm_in_decrypt(gi, ct[i], &out, &len, &index, err) == 0 && index == (uint32_t)i &&
			len == n && memcmp(out, plain, n) == 0, "megolm decrypt");
		free(out);
	}
	*dec += now() - t0;
	for (int i = 0; i < MEGOLM_N; i++)
		free(ct[i]);
	free(ct);
	crypto_megolm_out_free(g);
	crypto_megolm_in_free(gi);
}

static void
bench_megolm(void)
{
	char *plain = typical_reply();
	size_t n = strlen(plain);
	double enc[ROUNDS] = { 0 }, pick[ROUNDS] = { 0 }, dec[ROUNDS] = { 0 };
	for (int round = 0; round < ROUNDS; round++)
		for (int i = 0; i < MEGOLM_SESSIONS; i++)
			megolm_session(plain, n, &enc[round], &pick[round], &dec[round]);
	double per = 1e6 / (MEGOLM_N * MEGOLM_SESSIONS);
	double e = median(enc) * per, p = median(pick) * per, d = median(dec) * per;
	printf("megolm: typical reply, %zu bytes of plaintext; %d sessions of %d messages (indexes 0-%d), "
		"median of %d rounds\n", n, MEGOLM_SESSIONS, MEGOLM_N, MEGOLM_N - 1, ROUNDS);
	printf("   encrypt %.1f us + pickle outbound %.1f us + decrypt %.1f us = %.1f us per reply\n", e, p, d, e + p + d);
	free(plain);
}

struct device {
	struct crypto_account *a;
	char curve[CRYPTO_KEY_LEN], ed[CRYPTO_KEY_LEN], device_id[16];
	cJSON *claimed;   /* {"key": ..., "signatures": ...} as /keys/claim returns it */
};

static void
make_devices(struct device *d)
{
	for (int i = 0; i < DEVICES; i++) {
		d[i].a = new_account();
		snprintf(d[i].device_id, sizeof d[i].device_id, "DEV%02d", i);
		need(crypto_account_identity_keys(d[i].a, d[i].curve, d[i].ed, err) == 0, "identity keys");
		size_t n = crypto_otk_random_len(d[i].a, 1);
		unsigned char *r = rnd(n);
		cJSON *objs;
		need(crypto_account_generate_otks(d[i].a, 1, r, n, err) == 0 &&
			crypto_otk_objects(d[i].a, "@member:example.org", d[i].device_id, &objs, err) == 0, "otk");
		free(r);
		d[i].claimed = cJSON_DetachItemViaPointer(objs, objs->child);
		cJSON_Delete(objs);
	}
}

static char *
room_key_plaintext(const struct device *d, const char *our_ed, const char *session_id, const char *session_key)
{
	cJSON *o = cJSON_CreateObject(), *c = cJSON_AddObjectToObject(o, "content");
	cJSON_AddStringToObject(o, "type", "m.room_key");
	cJSON_AddStringToObject(c, "algorithm", CRYPTO_ALG_MEGOLM);
	cJSON_AddStringToObject(c, "room_id", "!abcdefghijklmnop:example.org");
	cJSON_AddStringToObject(c, "session_id", session_id);
	cJSON_AddStringToObject(c, "session_key", session_key);
	cJSON_AddStringToObject(o, "sender", "@kneebot:example.org");
	cJSON_AddStringToObject(o, "sender_device", "KNEEBOT");
	cJSON_AddStringToObject(o, "recipient", "@member:example.org");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "recipient_keys"), "ed25519", d->ed);
	cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "keys"), "ed25519", our_ed);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static void
bench_share(void)
{
	struct device d[DEVICES];
	make_devices(d);
	struct crypto_account *bot = new_account();
	char curve[CRYPTO_KEY_LEN], ed[CRYPTO_KEY_LEN], sid[CRYPTO_KEY_LEN], *skey;
	need(crypto_account_identity_keys(bot, curve, ed, err) == 0, "bot keys");
	struct crypto_megolm_out *g;
	size_t rn = crypto_megolm_out_random_len();
	unsigned char *r = rnd(rn);
	need(crypto_megolm_out_create(r, rn, &g, err) == 0 && crypto_megolm_out_id(g, sid, err) == 0 &&
		crypto_megolm_out_key(g, &skey, err) == 0, "megolm");
	free(r);

	double share[ROUNDS], receive[ROUNDS];
	size_t bytes = 0;
	for (int round = 0; round < ROUNDS; round++) {
		char *bodies[DEVICES];
		double t0 = now();
		for (int i = 0; i < DEVICES; i++) {
			need(crypto_verify_json(d[i].claimed, "@member:example.org", d[i].device_id, d[i].ed, err) == 0,
				"claimed key signature");
			const char *otk = cJSON_GetObjectItemCaseSensitive(d[i].claimed, "key")->valuestring;
			struct crypto_olm *s;
			size_t n = crypto_olm_outbound_random_len();
			unsigned char *rr = rnd(n);
			need(crypto_olm_outbound(bot, d[i].curve, otk, rr, n, &s, err) == 0, "outbound session");
			free(rr);
			char *plain = room_key_plaintext(&d[i], ed, sid, skey), *p;
			n = crypto_olm_encrypt_random_len(s);
			rr = rnd(n);
			enum crypto_olm_type t;
			need(crypto_olm_encrypt(s, plain, strlen(plain), rr, n, &t, &bodies[i], err) == 0 && t == 0, "encrypt");
			need(crypto_olm_pickle(s, K, &p, err) == 0, "pickle");
			bytes = strlen(plain);
			free(rr);
			free(plain);
			free(p);
			crypto_olm_free(s);
		}
		share[round] = now() - t0;

		/* the receiving side, as the bot meets it: pre-key message -> session -> m.room_key -> Megolm session */
		t0 = now();
		for (int i = 0; i < DEVICES; i++) {
			struct crypto_olm *in;
			struct crypto_megolm_in *gi;
			char *plain;
			size_t len;
			need(crypto_olm_inbound(d[i].a, curve, bodies[i], &in, &plain, &len, err) == 0, "inbound");
			cJSON *j = cJSON_ParseWithLength(plain, len);
			const cJSON *k = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "content"),
				"session_key");
			need(cJSON_IsString(k) && crypto_megolm_in_create(k->valuestring, &gi, err) == 0, "room key");
			cJSON_Delete(j);
			free(plain);
			crypto_olm_free(in);
			crypto_megolm_in_free(gi);
			free(bodies[i]);
		}
		receive[round] = now() - t0;
		/* the one-time keys were used up: give each device a fresh one for the next round */
		if (round + 1 < ROUNDS) {
			for (int i = 0; i < DEVICES; i++) {
				crypto_account_free(d[i].a);
				cJSON_Delete(d[i].claimed);
			}
			make_devices(d);
		}
	}
	double s = median(share), v = median(receive);
	printf("room key to %d devices (m.room_key plaintext %zu bytes, %d rounds, median)\n", DEVICES, bytes, ROUNDS);
	printf("   share: verify claimed key + new Olm session + encrypt + pickle: %.2f ms total, %.0f us per device\n",
		s * 1e3, s / DEVICES * 1e6);
	printf("   receive: inbound session from pre-key + decrypt + Megolm inbound: %.0f us per m.room_key\n",
		v / DEVICES * 1e6);
	for (int i = 0; i < DEVICES; i++) {
		crypto_account_free(d[i].a);
		cJSON_Delete(d[i].claimed);
	}
	free(skey);
	crypto_megolm_out_free(g);
	crypto_account_free(bot);
}

int
main(void)
{
	unsigned char *k = rnd(sizeof key_bytes);
	memcpy(key_bytes, k, sizeof key_bytes);
	free(k);
	bench_megolm();
	bench_share();
	return 0;
}
