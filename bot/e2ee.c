/*
 * e2ee.c: Matrix end-to-end encryption for one account (see e2ee.h): the
 * engine's account, the helpers its parts share, and the requests of each
 * kind handed to the part that builds them.  The parts: e2ee_parse.c (what
 * peers send, checked; pure), e2ee_keys.c (our keys on the server),
 * e2ee_devices.c (members' device lists), e2ee_recv.c (to-device messages
 * and room events in), e2ee_send.c (room keys shared, answers sealed).
 * libolm through crypto.h, state through store.h, no HTTP.
 *
 * The rules these files keep, each against a hazard:
 * - a libolm object is unpickled from the store for each use and pickled
 *   back in the same transaction: after a rollback nothing in memory is
 *   ahead of the disk, so a ratchet step or a one-time key is never used
 *   twice;
 * - nothing derived from a state change (a to-device ciphertext, a room
 *   event, an uploaded key) is handed out before the change is committed:
 *   callers send only what the store holds (outbox, to_device_out) or
 *   what e2ee_next() builds from committed state;
 * - what peers and the server send is checked before it is used: keys
 *   are well-formed base64, payloads name us, room keys come only over
 *   Olm, Megolm sessions are found by (room, session id) and belong to
 *   the event's sender, a message index decrypts under one event id only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "buf.h"
#include "crypto.h"
#include "e2ee.h"
#include "e2ee_impl.h"
#include "log.h"
#include "store.h"

/* ---------- small helpers ---------- */

char *
e2ee_print_json(const cJSON *j)
{
	char *s = cJSON_PrintUnformatted(j);
	if (!s)
		fatalx(70, "out of memory printing JSON");
	return s;
}

void
e2ee_json_wipe(cJSON *j)
{
	for (cJSON *c = j; c; c = c->next) {
		if (cJSON_IsString(c) && c->valuestring)
			explicit_bzero(c->valuestring, strlen(c->valuestring));
		e2ee_json_wipe(c->child);
	}
}

static void
default_random(void *arg, void *p, size_t n)
{
	(void)arg;
	for (size_t got = 0; got < n;) {
		ssize_t r = getrandom((char *)p + got, n - got, 0);
		if (r > 0)
			got += (size_t)r;
	}
}

unsigned char *
e2ee_rnd(struct e2ee *e, size_t n)
{
	unsigned char *p = xmalloc(n ? n : 1);
	e->hooks.random(e->hooks.arg, p, n);
	return p;
}

bool
e2ee_tx_begin(struct e2ee *e, bool *own)
{
	*own = !store_in_tx(e->st);
	return !*own || store_begin(e->st) == 0;
}

int
e2ee_tx_end(struct e2ee *e, bool own, bool ok)
{
	if (!own)
		return ok ? 0 : -1;
	if (ok && store_commit(e->st) == 0)
		return 0;
	store_rollback(e->st);
	return -1;
}

void
e2ee_want_free(struct want *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].user_id);
		free(v[i].device_id);
	}
	free(v);
}

/* ---------- the account ---------- */

int
e2ee_account_row(struct e2ee *e, struct store_account *row)
{
	memset(row, 0, sizeof *row);
	int rc = store_account_get(e->st, e->device_id, row);
	if (rc == 0)
		log_warnx("%s: the Olm account of device %s is missing from the store", e->name, e->device_id);
	return rc == 1 ? 0 : -1;
}

struct crypto_account *
e2ee_account_load(struct e2ee *e, struct store_account *row)
{
	struct crypto_account *a;
	if (e2ee_account_row(e, row) < 0)
		return NULL;
	if (crypto_account_unpickle(row->pickle, pkey(e), &a, e->err) < 0) {
		log_warnx("%s: cannot open the Olm account: %s", e->name, e->err);
		store_account_free(row);
		return NULL;
	}
	return a;
}

int
e2ee_account_save(struct e2ee *e, struct crypto_account *a, struct store_account *row)
{
	char *p;
	if (crypto_account_pickle(a, pkey(e), &p, e->err) < 0) {
		log_warnx("%s: cannot pickle the Olm account: %s", e->name, e->err);
		return -1;
	}
	free(row->pickle);
	row->pickle = p;
	return store_account_put(e->st, row);
}

/* A new account for our device id with a fallback key; identity keys into e. */
static int
account_create(struct e2ee *e, int64_t now_ms)
{
	struct crypto_account *a;
	size_t n = crypto_account_random_len();
	unsigned char *r = e2ee_rnd(e, n);
	int rc = crypto_account_create(r, n, &a, e->err);
	free(r);
	if (rc < 0)
		return -1;
	n = crypto_fallback_random_len(a);
	r = e2ee_rnd(e, n);
	rc = crypto_account_generate_fallback(a, r, n, e->err);
	free(r);
	if (rc == 0)
		rc = crypto_account_identity_keys(a, e->curve, e->ed, e->err);
	struct store_account row = { .device_id = e->device_id, .curve25519 = e->curve, .ed25519 = e->ed,
		.created_ms = now_ms };
	char *p = NULL;
	if (rc == 0)
		rc = crypto_account_pickle(a, pkey(e), &p, e->err);
	row.pickle = p;
	if (rc == 0)
		rc = store_account_put(e->st, &row);
	free(p);
	crypto_account_free(a);
	if (rc == 0)
		log_notice("%s: created the Olm account of device %s", e->name, e->device_id);
	return rc;
}

/* The stored account opens with our key and its identity keys are what the row says. */
static int
account_check(struct e2ee *e, struct store_account *row)
{
	struct crypto_account *a;
	if (crypto_account_unpickle(row->pickle, pkey(e), &a, e->err) < 0)
		return strstr(e->err, "BAD_ACCOUNT_KEY") ? E2EE_OPEN_BAD_KEY : E2EE_OPEN_ERROR;
	int rc = crypto_account_identity_keys(a, e->curve, e->ed, e->err);
	crypto_account_free(a);
	if (rc < 0 || strcmp(e->curve, row->curve25519) != 0 || strcmp(e->ed, row->ed25519) != 0) {
		snprintf(e->err, sizeof e->err, "the account's identity keys differ from the stored ones");
		return E2EE_OPEN_ERROR;
	}
	return E2EE_OPEN_OK;
}

static int
open_account(struct e2ee *e, int64_t now_ms)
{
	int others = store_account_others(e->st, e->device_id);
	if (others < 0)
		return E2EE_OPEN_ERROR;
	if (others > 0) {
		log_notice("%s: device %s is new: forgetting the Olm sessions and outbound keys of the previous device",
			e->name, e->device_id);
		if (store_crypto_forget(e->st, false) < 0)
			return E2EE_OPEN_ERROR;
	}
	struct store_account row;
	int rc = store_account_get(e->st, e->device_id, &row);
	if (rc < 0)
		return E2EE_OPEN_ERROR;
	if (rc == 0)
		return account_create(e, now_ms) == 0 ? E2EE_OPEN_OK : E2EE_OPEN_ERROR;
	rc = account_check(e, &row);
	store_account_free(&row);
	return rc;
}

int
e2ee_open(struct store *st, const struct e2ee_config *c, int64_t now_ms, struct e2ee **out, struct buf *err)
{
	if (c->key.n < CRYPTO_PICKLE_KEY_MIN) {
		buf_printf(err, "the pickle key is %zu bytes; it needs at least %d", c->key.n, CRYPTO_PICKLE_KEY_MIN);
		return E2EE_OPEN_ERROR;
	}
	struct e2ee *e = xcalloc(1, sizeof *e);
	e->st = st;
	e->name = xstrdup(c->name);
	e->user_id = xstrdup(c->user_id);
	e->device_id = xstrdup(c->device_id);
	e->key = xmalloc(c->key.n);
	memcpy(e->key, c->key.p, c->key.n);
	e->key_len = c->key.n;
	e->require_cross_signed = c->require_cross_signed;
	e->hooks = c->hooks;
	if (!e->hooks.random)
		e->hooks.random = default_random;
	e->otk_count = -1;
	bool own;
	int rc = e2ee_tx_begin(e, &own) ? open_account(e, now_ms) : E2EE_OPEN_ERROR;
	if (e2ee_tx_end(e, own, rc == E2EE_OPEN_OK) < 0 && rc == E2EE_OPEN_OK)
		rc = E2EE_OPEN_ERROR;
	if (rc != E2EE_OPEN_OK) {
		buf_printf(err, "%s", rc == E2EE_OPEN_BAD_KEY ? "the pickle key does not open the stored Olm account"
			: *e->err ? e->err : "cannot read or write the encryption state");
		e2ee_free(e);
		return rc;
	}
	*out = e;
	return E2EE_OPEN_OK;
}

void
e2ee_free(struct e2ee *e)
{
	if (!e)
		return;
	explicit_bzero(e->key, e->key_len);
	free(e->key);
	free(e->name);
	free(e->user_id);
	free(e->device_id);
	free(e->uia_session);
	for (size_t i = 0; i < e->nquery; i++)
		free(e->query[i].user_id);
	free(e->query);
	e2ee_want_free(e->want, e->nwant);
	e2ee_want_free(e->claiming, e->nclaiming);
	free(e);
}

int
e2ee_forget_all(struct store *st)
{
	bool own = !store_in_tx(st);
	if (own && store_begin(st) < 0)
		return -1;
	if (store_crypto_forget(st, true) < 0) {
		if (own)
			store_rollback(st);
		return -1;
	}
	return own ? store_commit(st) : 0;
}

const char *
e2ee_device_id(const struct e2ee *e)
{
	return e->device_id;
}

const char *
e2ee_ed25519(const struct e2ee *e)
{
	return e->ed;
}

void
e2ee_fingerprint(const struct e2ee *e, struct buf *out)
{
	for (size_t i = 0; e->ed[i]; i++) {
		if (i && i % 4 == 0)
			buf_addc(out, ' ');
		buf_addc(out, e->ed[i]);
	}
}

/* ---------- requests ---------- */

void
e2ee_req_json(struct e2ee_req *r, const char *path, cJSON *body)
{
	char *s = e2ee_print_json(body);
	buf_adds(&r->path, path);
	buf_adds(&r->body, s);
	explicit_bzero(s, strlen(s));   /* it may hold the password */
	free(s);
}

void
e2ee_req_init(struct e2ee_req *r)
{
	r->put = false;
	buf_init(&r->path);
	buf_init(&r->body);
}

/* A request body may hold the password (user-interactive auth): wiped before reuse or free. */
static void
body_wipe(struct buf *b)
{
	if (b->s)
		explicit_bzero(b->s, b->len);
}

void
e2ee_req_free(struct e2ee_req *r)
{
	body_wipe(&r->body);
	buf_free(&r->path);
	buf_free(&r->body);
}

int
e2ee_next(struct e2ee *e, enum e2ee_kind k, int64_t now_ms, struct e2ee_req *r)
{
	r->put = false;
	buf_clear(&r->path);
	body_wipe(&r->body);
	buf_clear(&r->body);
	switch (k) {
	case E2EE_KEYS:
		return e2ee_keys_next(e, now_ms, r);
	case E2EE_QUERY:
		return e2ee_query_next(e, r);
	case E2EE_CLAIM:
		return e2ee_claim_next(e, r);
	case E2EE_TO_DEVICE:
		return e2ee_todev_next(e, r);
	case E2EE_KINDS:
		break;
	}
	return 0;
}

enum e2ee_done_result
e2ee_done(struct e2ee *e, enum e2ee_kind k, long status, const char *body, size_t len, int64_t now_ms)
{
	cJSON *j = cJSON_ParseWithLength(body, len);
	enum e2ee_done_result r = E2EE_DONE_OK;
	switch (k) {
	case E2EE_KEYS:
		r = e2ee_keys_done(e, status, j, now_ms);
		break;
	case E2EE_QUERY:
		r = e2ee_query_done(e, status, j);
		break;
	case E2EE_CLAIM:
		r = e2ee_claim_done(e, status, j, now_ms);
		break;
	case E2EE_TO_DEVICE:
		r = e2ee_todev_done(e, status, j);
		break;
	case E2EE_KINDS:
		break;
	}
	cJSON_Delete(j);
	return r;
}

void
e2ee_housekeeping(struct e2ee *e, int64_t now_ms)
{
	bool own;
	if (!e2ee_tx_begin(e, &own))
		return;
	int n = store_awaiting_expire(e->st, now_ms - E2EE_AWAIT_MS);
	if (n > 0)
		log_info("%s: %d encrypted messages whose room key never came in 24 hours: given up", e->name, n);
	struct store_account row;
	struct crypto_account *a = e2ee_account_load(e, &row);
	int rc = n < 0 || !a ? -1 : 0;
	if (a && row.forget_fallback_ms && now_ms >= row.forget_fallback_ms) {
		crypto_account_forget_old_fallback(a);
		row.forget_fallback_ms = 0;
		rc = e2ee_account_save(e, a, &row);
		log_info("%s: the replaced fallback key is forgotten", e->name);
	}
	if (a) {
		crypto_account_free(a);
		store_account_free(&row);
	}
	e2ee_tx_end(e, own, rc == 0);
}
