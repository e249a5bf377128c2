/* e2ee_parse.c: what peers and the server send for encryption, checked and parsed; pure. */
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "e2ee.h"
#include "e2ee_impl.h"
#include "matrix.h"

int
e2ee_olm_parse(const cJSON *content, const char *our_curve25519, struct e2ee_olm_msg *m, const char **why)
{
	memset(m, 0, sizeof *m);
	const cJSON *mine = jobj(jobj(content, "ciphertext"), our_curve25519);
	const cJSON *t = jget(mine, "type");
	*why = NULL;
	if (!streq(jstr_nonempty(content, "algorithm"), CRYPTO_ALG_OLM))
		*why = "not m.olm.v1.curve25519-aes-sha2";
	else if (!is_key(m->sender_key = jstr_nonempty(content, "sender_key")))
		*why = "no valid sender_key";
	else if (!mine)
		*why = "no ciphertext for this device";
	else if (!cJSON_IsNumber(t) || (t->valuedouble != 0 && t->valuedouble != 1))
		*why = "message type is neither 0 nor 1";
	else if (!(m->body = jstr_nonempty(mine, "body")))
		*why = "no body";
	if (*why)
		return -1;
	m->type = (int)t->valuedouble;
	return 0;
}

int
e2ee_olm_payload_check(const char *plain, size_t n, const char *sender, const char *own_user,
	const char *own_ed25519, struct e2ee_olm_payload *p, const char **why)
{
	memset(p, 0, sizeof *p);
	cJSON *root = cJSON_ParseWithLength(plain, n);
	*why = NULL;
	if (!cJSON_IsObject(root))
		*why = "payload is not a JSON object";
	else if (!(p->type = jstr_nonempty(root, "type")) || !(p->content = jobj(root, "content")))
		*why = "payload without type or content";
	else if (!streq(jstr_nonempty(root, "sender"), sender))
		*why = "payload sender is not the event's sender";
	else if (!streq(jstr_nonempty(root, "recipient"), own_user))
		*why = "payload recipient is not us";
	else if (!streq(jstr_nonempty(jobj(root, "recipient_keys"), "ed25519"), own_ed25519))
		*why = "payload recipient_keys is not our ed25519 key";
	else if (!is_key(p->sender_ed25519 = jstr_nonempty(jobj(root, "keys"), "ed25519")))
		*why = "payload without the sender's ed25519 key";
	if (*why) {
		cJSON_Delete(root);
		memset(p, 0, sizeof *p);
		return -1;
	}
	p->root = root;
	return 0;
}

int
e2ee_room_key_parse(const cJSON *content, struct e2ee_room_key *k, const char **why)
{
	*k = (struct e2ee_room_key){ jstr_nonempty(content, "room_id"), jstr_nonempty(content, "session_id"),
		jstr_nonempty(content, "session_key") };
	*why = !streq(jstr_nonempty(content, "algorithm"), CRYPTO_ALG_MEGOLM) ? "not m.megolm.v1.aes-sha2"
		: !k->room_id || k->room_id[0] != '!' ? "no room_id"
		: !is_key(k->session_id) ? "no valid session_id"
		: !k->session_key ? "no session_key" : NULL;
	return *why ? -1 : 0;
}

int
e2ee_withheld_parse(const cJSON *content, struct e2ee_withheld *w, const char **why)
{
	*w = (struct e2ee_withheld){ jstr_nonempty(content, "room_id"), jstr_nonempty(content, "session_id"), jstr_nonempty(content, "code") };
	*why = !w->code ? "no code" : !w->room_id || w->room_id[0] != '!' ? "no room_id" : NULL;
	return *why ? -1 : 0;
}

int
e2ee_megolm_parse(const cJSON *content, struct e2ee_megolm_msg *m, const char **why)
{
	*m = (struct e2ee_megolm_msg){ jstr_nonempty(content, "session_id"), jstr_nonempty(content, "ciphertext"),
		jobj(content, "m.relates_to") };
	*why = !streq(jstr_nonempty(content, "algorithm"), CRYPTO_ALG_MEGOLM) ? "not m.megolm.v1.aes-sha2"
		: !is_key(m->session_id) ? "no valid session_id"
		: !m->ciphertext ? "no ciphertext" : NULL;
	return *why ? -1 : 0;
}

cJSON *
e2ee_megolm_event(const char *plain, size_t n, const struct mx_event *ev, const char *room_id,
	const cJSON *clear_relates_to, const char **why)
{
	cJSON *p = cJSON_ParseWithLength(plain, n);
	const char *type = jstr_nonempty(p, "type");
	cJSON *content = cJSON_GetObjectItemCaseSensitive(p, "content");
	*why = !cJSON_IsObject(p) ? "payload is not a JSON object"
		: !type || !cJSON_IsObject(content) ? "payload without type or content"
		: !streq(jstr_nonempty(p, "room_id"), room_id) ? "payload room_id is not this room (moved from another room?)"
		: !ev->event_id || !ev->sender ? "event without event_id or sender" : NULL;
	if (*why) {
		cJSON_Delete(p);
		return NULL;
	}
	cJSON *out = cJSON_CreateObject();
	cJSON_AddStringToObject(out, "type", type);
	cJSON_AddItemToObject(out, "content", cJSON_DetachItemViaPointer(p, content));
	if (clear_relates_to) {
		cJSON_DeleteItemFromObjectCaseSensitive(content, "m.relates_to");
		cJSON_AddItemToObject(content, "m.relates_to", cJSON_Duplicate(clear_relates_to, true));
	}
	cJSON_AddStringToObject(out, "event_id", ev->event_id);
	cJSON_AddStringToObject(out, "sender", ev->sender);
	cJSON_AddStringToObject(out, "room_id", room_id);
	cJSON_AddNumberToObject(out, "origin_server_ts", (double)ev->ts_ms);
	const cJSON *uns = jobj(ev->raw, "unsigned");
	if (uns)
		cJSON_AddItemToObject(out, "unsigned", cJSON_Duplicate(uns, true));
	cJSON_Delete(p);
	return out;
}
