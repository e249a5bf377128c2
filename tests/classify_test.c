/* classify_test.c: the --classify line format, malformed lines included. */
#include <cjson/cJSON.h>

#include "classify.h"
#include "kb.h"
#include "responder.h"
#include "t.h"

static struct responder *r;

static cJSON *
run(const char *line)
{
	struct buf o;
	buf_init(&o);
	classify_line(r, "kneebot", line, strlen(line), false, &o);
	T_OK(o.len && o.s[o.len - 1] == '\n' && !memchr(o.s, '\n', o.len - 1), "one output line for %.40s", line);
	cJSON *j = cJSON_Parse(o.s);
	buf_free(&o);
	return j;
}

int
main(void)
{
	struct kb *kb;
	struct buf err;
	buf_init(&err);
	if (kb_load(t_responses(), &kb, &err) < 0)
		return 1;
	r = responder_new(kb);
	cJSON *j = run("{\"text\": \"heard a pop and my knee blew up like a balloon\", \"id\": \"x1\", \"extra\": 5}");
	T_OK(cJSON_IsTrue(cJSON_GetObjectItem(j, "reply")), "a red flag message: reply true");
	cJSON *flags = cJSON_GetObjectItem(j, "red_flags");
	T_OK(cJSON_GetArraySize(flags) >= 2, "its red flags listed");
	T_OK(cJSON_IsString(cJSON_GetObjectItem(j, "text")) && strlen(cJSON_GetObjectItem(j, "text")->valuestring) > 20, "its text");
	T_STREQ(cJSON_GetObjectItem(j, "id")->valuestring, "x1", "the id is passed through");
	cJSON_Delete(j);
	j = run("{\"text\": \"knee-deep in marking\"}");
	T_OK(cJSON_IsFalse(cJSON_GetObjectItem(j, "reply")) && !strcmp(cJSON_GetObjectItem(j, "text")->valuestring, ""),
		"chatter: reply false, empty text");
	cJSON_Delete(j);
	static const char *const bad[] = { "{\"text\": ", "not json at all", "[1,2,3]", "{\"txt\": \"x\"}",
		"{\"text\": 5}", "{\"text\": \"x\", \"addressed\": \"yes\"}" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		j = run(bad[i]);
		T_OK(j && cJSON_IsString(cJSON_GetObjectItem(j, "error")), "malformed line %zu gets {\"error\": ...}", i);
		cJSON_Delete(j);
	}
	j = run("{\"text\": \"kneebot: thanks!\", \"addressed\": false}");
	T_OK(cJSON_IsFalse(cJSON_GetObjectItem(j, "reply")), "an explicit addressed:false wins over the name in the text");
	cJSON_Delete(j);
	/* a line longer than the cap is answered with an error; the next one still works */
	FILE *in = tmpfile(), *out = tmpfile();
	for (size_t i = 0; i < CLASSIFY_MAX_LINE + 100; i++)
		fputc('a', in);
	fputs("\n{\"text\": \"my knee hurts on the stairs\"}\n", in);
	rewind(in);
	T_OK(classify_stream(r, "kneebot", false, in, out) == 0, "classify_stream over a 1 MiB + 100 byte line");
	rewind(out);
	char l1[256], l2[4096];
	T_OK(fgets(l1, sizeof l1, out) && strstr(l1, "\"error\"") && fgets(l2, sizeof l2, out) && strstr(l2, "\"reply\": true"),
		"the long line gets an error, the next line its answer");
	fclose(in);
	fclose(out);
	responder_free(r);
	kb_free(kb);
	buf_free(&err);
	T_EXIT();
}
