/*
 * fuzz_e2ee_event.c: what bot/e2ee.c does with an m.room.encrypted room
 * event, which any member (or the server) controls: the Megolm content,
 * the session lookup by room, the sender check, decryption with the real
 * inbound session, the (session, index) replay table, the payload's room
 * and shape, parking.  The input is one event object (room_id, when a
 * string, picks the room); each runs in a transaction that is rolled back,
 * so every input meets the cast of tests/fuzz/e2ee_cast.h with Alice's room
 * key for CAST_ROOM already taken.  The decrypted-payload parser also gets
 * the raw bytes.
 *
 * FUZZ_E2EE_SEEDS=DIR writes the seed corpus and exits.
 */
#include <stdint.h>

#include "e2ee_cast.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct cast c;

static void
close_cast(void)
{
	cast_close(&c);
}

static void
write_seeds(const char *dir)
{
	cJSON *m = cJSON_Parse("{\"msgtype\":\"m.text\",\"body\":\"my knee hurts when I run\"}");
	cast_seed(dir, "question", cast_room_event(&c, c.alice_megolm, CAST_ROOM, CAST_ROOM, "$q0", m));
	cJSON *reply = cast_room_event(&c, c.alice_megolm, CAST_ROOM, CAST_ROOM, "$q1", m);
	cJSON_AddItemToObject(cJSON_GetObjectItem(reply, "content"), "m.relates_to",
		cJSON_Parse("{\"m.in_reply_to\":{\"event_id\":\"$answer\"}}"));
	cast_seed(dir, "reply", reply);
	cast_seed(dir, "payload_other_room", cast_room_event(&c, c.alice_megolm, CAST_ROOM, CAST_ROOM2, "$q2", m));
	cJSON *moved = cast_room_event(&c, c.alice_megolm, CAST_ROOM, CAST_ROOM, "$q3", m);
	cJSON_ReplaceItemInObject(moved, "room_id", cJSON_CreateString(CAST_ROOM2));
	cast_seed(dir, "moved", moved);
	cJSON *other = cast_room_event(&c, c.alice_megolm, CAST_ROOM, CAST_ROOM, "$q4", m);
	cJSON_ReplaceItemInObject(other, "sender", cJSON_CreateString("@mallory:example.org"));
	cast_seed(dir, "other_sender", other);
	struct crypto_megolm_out *g = cast_megolm(&c);
	cast_seed(dir, "unknown_session", cast_room_event(&c, g, CAST_ROOM, CAST_ROOM, "$q5", m));
	crypto_megolm_out_free(g);
	cJSON_Delete(m);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	cast_fuzz_open(&c, close_cast);
	cJSON *key = cast_room_key(&c, c.alice_megolm, CAST_ROOM), *arr = cJSON_CreateArray();
	cJSON_AddItemToArray(arr, cast_olm_event(&c, "m.room_key", key, NULL));
	int rc = cast_sync(&c, arr, true);
	cJSON_Delete(arr);
	cJSON_Delete(key);
	if (rc < 0)
		abort();
	const char *dir = getenv("FUZZ_E2EE_SEEDS");
	if (dir) {
		write_seeds(dir);
		exit(0);
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *j = cJSON_ParseWithLength((const char *)data, size);
	struct mx_event ev;
	if (j && matrix_event_parse(j, false, &ev) && store_begin(c.st) == 0) {
		const cJSON *room = cJSON_GetObjectItemCaseSensitive(j, "room_id");
		cJSON *out = NULL;
		struct e2ee_megolm_msg m;
		const char *why;
		e2ee_megolm_parse(ev.content, &m, &why);
		enum e2ee_in r = e2ee_decrypt(c.bot, cJSON_IsString(room) ? room->valuestring : CAST_ROOM, &ev, true,
			CAST_NOW, &out);
		if ((r == E2EE_IN_OK) != (out != NULL) || r == E2EE_IN_ERROR)
			__builtin_trap();   /* an event decrypted into nothing, or the store failed */
		struct mx_event dec;
		if (out && !matrix_event_parse(out, false, &dec))
			__builtin_trap();   /* what decrypts must be an event */
		cJSON_Delete(out);
		store_rollback(c.st);
	}
	cJSON_Delete(j);
	struct mx_event plain_ev = { .event_id = "$f", .sender = CAST_ALICE };
	const char *why;
	cJSON *clear = cJSON_CreateObject();
	cJSON_Delete(e2ee_megolm_event((const char *)data, size, &plain_ev, CAST_ROOM, clear, &why));
	cJSON_Delete(clear);
	return 0;
}
