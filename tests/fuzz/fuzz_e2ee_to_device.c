/*
 * fuzz_e2ee_to_device.c: what bot/e2ee.c does with the to-device events of a
 * sync, which any user (or the server) can send the bot: Olm pre-key and
 * normal messages (decrypted with the real account and sessions), the
 * payload checks, room keys, m.dummy, withheld notices, unencrypted room
 * keys.  The input is a JSON array of to-device events (or one event); each
 * runs in a transaction that is rolled back, so every input meets the same
 * state: the cast of tests/fuzz/e2ee_cast.h.  The pure parsers get each
 * content and the raw bytes as well.
 *
 * FUZZ_E2EE_SEEDS=DIR writes the seed corpus (valid messages for the cast,
 * whose randomness is a counter) and exits.
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

static cJSON *
one(cJSON *ev)
{
	cJSON *a = cJSON_CreateArray();
	cJSON_AddItemToArray(a, ev);
	return a;
}

static void
write_seeds(const char *dir)
{
	cJSON *key = cast_room_key(&c, c.alice_megolm, CAST_ROOM), *empty = cJSON_CreateObject();
	cast_seed(dir, "room_key", one(cast_olm_event(&c, "m.room_key", key, NULL)));
	cast_seed(dir, "dummy", one(cast_olm_event(&c, "m.dummy", empty, NULL)));
	cast_seed(dir, "wrong_recipient", one(cast_olm_event(&c, "m.room_key", key, c.alice_ed)));
	cJSON *two = cJSON_CreateArray();
	cJSON_AddItemToArray(two, cast_olm_event(&c, "m.room_key", key, NULL));
	cJSON_AddItemToArray(two, cast_olm_event(&c, "m.dummy", empty, NULL));
	cast_seed(dir, "two", two);
	cJSON *plain = cJSON_CreateObject();
	cJSON_AddStringToObject(plain, "type", "m.room_key");
	cJSON_AddStringToObject(plain, "sender", CAST_ALICE);
	cJSON_AddItemToObject(plain, "content", cJSON_Duplicate(key, true));
	cast_seed(dir, "unencrypted_room_key", one(plain));
	cJSON *wh = cJSON_Parse("{\"type\":\"m.room_key.withheld\",\"sender\":\"" CAST_ALICE "\",\"content\":"
		"{\"algorithm\":\"m.megolm.v1.aes-sha2\",\"room_id\":\"" CAST_ROOM "\",\"code\":\"m.unverified\"}}");
	cast_seed(dir, "withheld", one(wh));
	cJSON_Delete(key);
	cJSON_Delete(empty);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	cast_fuzz_open(&c, close_cast);
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
	if (cJSON_IsObject(j))
		j = one(j);
	const cJSON *ev, *arr = cJSON_IsArray(j) ? j : NULL;
	cJSON_ArrayForEach(ev, arr) {
		const cJSON *content = cJSON_GetObjectItemCaseSensitive(ev, "content");
		struct e2ee_olm_msg m;
		struct e2ee_room_key k;
		struct e2ee_withheld w;
		const char *why;
		e2ee_olm_parse(content, c.bot_curve, &m, &why);
		e2ee_room_key_parse(content, &k, &why);
		e2ee_withheld_parse(content, &w, &why);
	}
	if (cJSON_IsArray(j) && cast_sync(&c, j, false) < 0)
		__builtin_trap();   /* only the store may fail, and it does not */
	cJSON_Delete(j);
	struct e2ee_olm_payload p;
	const char *why;
	if (e2ee_olm_payload_check((const char *)data, size, CAST_ALICE, CAST_BOT, c.bot_ed, &p, &why) == 0)
		cJSON_Delete(p.root);
	return 0;
}
