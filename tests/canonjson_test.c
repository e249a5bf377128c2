/* canonjson_test.c: the spec appendix's canonical JSON examples, escapes, key order, refusals. */
#include <cjson/cJSON.h>

#include "buf.h"
#include "canonjson.h"
#include "t.h"

/* Canonical form of JSON text in, or NULL (message in err) when parsing or printing fails. */
static char *
canon(const char *in, char err[CANONJSON_ERR_LEN])
{
	cJSON *j = cJSON_Parse(in);
	if (j == NULL) {
		snprintf(err, CANONJSON_ERR_LEN, "cJSON cannot parse it");
		return NULL;
	}
	struct buf b;
	buf_init(&b);
	int rc = canonjson_print(j, &b, err);
	cJSON_Delete(j);
	if (rc < 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_take(&b);
}

static void
expect(const char *what, const char *in, const char *want)
{
	char err[CANONJSON_ERR_LEN] = "";
	char *got = canon(in, err);
	if (!T_OK(got && strcmp(got, want) == 0, "%s", what))
		printf("#   got  %s\n#   want %s\n#   err  %s\n", got ? got : "(refused)", want, err);
	free(got);
}

static void
refuse(const char *what, const char *in, const char *why)
{
	char err[CANONJSON_ERR_LEN] = "";
	char *got = canon(in, err);
	if (!T_OK(got == NULL && strstr(err, why), "refuses %s", what))
		printf("#   got %s, err \"%s\", wanted \"%s\"\n", got ? got : "(refused)", err, why);
	free(got);
}

static void
spec_examples(void)
{
	/* spec appendix "Canonical JSON", each example in turn */
	expect("spec: empty object", "{}", "{}");
	expect("spec: one and two", "{\n    \"one\": 1,\n    \"two\": \"Two\"\n}", "{\"one\":1,\"two\":\"Two\"}");
	expect("spec: b a sorted", "{\n    \"b\": \"2\",\n    \"a\": \"1\"\n}", "{\"a\":\"1\",\"b\":\"2\"}");
	expect("spec: compact b a sorted", "{\"b\":\"2\",\"a\":\"1\"}", "{\"a\":\"1\",\"b\":\"2\"}");
	expect("spec: nested auth object",
		"{\"auth\": {\"success\": true, \"mxid\": \"@john.doe:example.com\", \"profile\": {"
		"\"display_name\": \"John Doe\", \"three_pids\": [{\"medium\": \"email\", \"address\": "
		"\"john.doe@example.org\"}, {\"medium\": \"msisdn\", \"address\": \"123456789\"}]}}}",
		"{\"auth\":{\"mxid\":\"@john.doe:example.com\",\"profile\":{\"display_name\":\"John Doe\","
		"\"three_pids\":[{\"address\":\"john.doe@example.org\",\"medium\":\"email\"},{\"address\":"
		"\"123456789\",\"medium\":\"msisdn\"}]},\"success\":true}}");
	expect("spec: raw UTF-8 value", "{\"a\": \"日本語\"}", "{\"a\":\"日本語\"}");
	expect("spec: CJK keys by code point", "{\"本\": 2, \"日\": 1}", "{\"日\":1,\"本\":2}");
	expect("spec: \\u escape printed as UTF-8", "{\"a\": \"\\u65E5\"}", "{\"a\":\"日\"}");
	expect("spec: null", "{\"a\": null}", "{\"a\":null}");
	expect("spec: -0 and 1e10 as integers", "{\"a\": -0, \"b\": 1e10}", "{\"a\":0,\"b\":10000000000}");
}

static void
escapes_and_order(void)
{
	/* what Python's json.dumps(ensure_ascii=False, separators=(',', ':'), sort_keys=True) prints */
	expect("control characters: short escapes and lowercase \\u00xx",
		"[\"\\u0001\\b\\f\\n\\r\\t\\u001F\"]", "[\"\\u0001\\b\\f\\n\\r\\t\\u001f\"]");
	expect("quote and backslash escaped", "[\"a\\\"b\\\\c\"]", "[\"a\\\"b\\\\c\"]");
	expect("solidus stays raw", "[\"a\\/b/c\"]", "[\"a/b/c\"]");
	expect("DEL stays raw", "[\"\\u007f\x7f\"]", "[\"\x7f\x7f\"]");
	expect("emoji from a surrogate pair as 4-byte UTF-8", "[\"\\ud83d\\ude00\"]", "[\"\xf0\x9f\x98\x80\"]");
	expect("mixed case keys: upper case first", "{\"b\":1,\"B\":2,\"a\":3,\"A\":4,\"_\":5}",
		"{\"A\":4,\"B\":2,\"_\":5,\"a\":3,\"b\":1}");
	/* UTF-16 order (JavaScript's sort) would put the emoji first */
	expect("keys by code point, not UTF-16", "{\"\xf0\x9f\x98\x80\":2,\"\xef\xbc\x81\":1,\"\xc3\xa9\":0,\"z\":3}",
		"{\"z\":3,\"\xc3\xa9\":0,\"\xef\xbc\x81\":1,\"\xf0\x9f\x98\x80\":2}");
	expect("prefix key sorts first", "{\"ab\":1,\"a\":2}", "{\"a\":2,\"ab\":1}");
	expect("objects inside arrays inside objects sorted, array order kept",
		"{\"z\":[{\"y\":1,\"x\":{\"q\":true,\"p\":false}},[3,2,1]],\"a\":{}}",
		"{\"a\":{},\"z\":[{\"x\":{\"p\":false,\"q\":true},\"y\":1},[3,2,1]]}");
	expect("largest safe integers exact", "[9007199254740991,-9007199254740991,0,-1]",
		"[9007199254740991,-9007199254740991,0,-1]");
	expect("bare scalar", "\"x\"", "\"x\"");
}

static void
refusals(void)
{
	refuse("a fraction", "{\"a\":1.5}", "not an integer");
	refuse("a tiny fraction", "[1e-7]", "not an integer");
	refuse("2^53", "{\"a\":9007199254740992}", "outside");
	refuse("-(2^53)", "[-9007199254740992]", "outside");
	refuse("1e300", "[1e300]", "outside");
	refuse("a duplicate key", "{\"a\":1,\"b\":2,\"a\":1}", "duplicate key");
	refuse("invalid UTF-8 in a value", "{\"a\":\"\xff\"}", "invalid UTF-8");
	refuse("invalid UTF-8 in a key", "{\"\xc0\xaf\":1}", "invalid UTF-8");
	refuse("a UTF-8 surrogate", "[\"\xed\xa0\x80\"]", "invalid UTF-8");

	char deep[2 * CANONJSON_MAX_DEPTH + 8];
	size_t n = 0;
	for (int i = 0; i < CANONJSON_MAX_DEPTH + 2; i++)
		deep[n++] = '[';
	for (int i = 0; i < CANONJSON_MAX_DEPTH + 2; i++)
		deep[n++] = ']';
	deep[n] = '\0';
	refuse("nesting past the limit", deep, "nested too deeply");

	char err[CANONJSON_ERR_LEN] = "";
	struct buf b;
	buf_init(&b);
	cJSON *raw = cJSON_CreateArray();
	cJSON_AddItemToArray(raw, cJSON_CreateRaw("1.0"));
	T_OK(canonjson_print(raw, &b, err) < 0 && strstr(err, "raw"), "refuses a raw cJSON item");
	cJSON_Delete(raw);
	T_OK(canonjson_print(NULL, &b, err) < 0, "refuses no value");
	buf_free(&b);
}

static void
signable(void)
{
	char err[CANONJSON_ERR_LEN] = "";
	struct buf b;
	buf_init(&b);
	cJSON *j = cJSON_Parse("{\"unsigned\":{\"age\":1},\"b\":{\"signatures\":1,\"unsigned\":2},"
		"\"signatures\":{\"u\":{\"ed25519:X\":\"sig\"}},\"a\":1}");
	int rc = canonjson_signable(j, &b, err);
	T_OK(rc == 0 && strcmp(b.s, "{\"a\":1,\"b\":{\"signatures\":1,\"unsigned\":2}}") == 0,
		"signable drops top-level signatures and unsigned only");
	char *whole = cJSON_PrintUnformatted(j);
	T_OK(strstr(whole, "ed25519:X") && strstr(whole, "age"), "signable leaves the object as it was");
	cJSON_free(whole);
	cJSON_Delete(j);

	buf_clear(&b);
	j = cJSON_Parse("[1]");
	T_OK(canonjson_signable(j, &b, err) < 0 && strstr(err, "object"), "signable refuses a non-object");
	cJSON_Delete(j);
	buf_free(&b);
}

int
main(void)
{
	spec_examples();
	escapes_and_order();
	refusals();
	signable();
	T_EXIT();
}
