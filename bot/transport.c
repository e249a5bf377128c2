/* transport.c: the registry of network types and their common parts. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "irc.h"
#include "matrix.h"
#include "transport.h"

/* One line per network type; the console has no config section. */
static const struct transport_kind *const kinds[] = {
	&console_kind,
	&irc_kind,
	&matrix_kind,
};

const struct transport_kind *
transport_kind_find(const char *name)
{
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (strcmp(kinds[i]->name, name) == 0 && kinds[i]->validate)
			return kinds[i];
	return NULL;
}

struct transport *
transport_alloc(const struct transport_kind *kind, const struct transport_env *env,
	const struct conf_section *s, const char *name)
{
	struct transport *t = xcalloc(1, sizeof *t);
	t->kind = kind;
	t->name = xstrdup(name);
	t->config = env->config;
	t->conf = s;
	t->loop = env->loop;
	t->router = env->router;
	return t;
}

void
transport_free_common(struct transport *t)
{
	free(t->name);
	free(t);
}
