/* main.c: options, config, wiring; no protocol code. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bot.h"
#include "buf.h"
#include "classify.h"
#include "config.h"
#include "kb.h"
#include "log.h"
#include "loop.h"
#include "responder.h"

#ifndef KNEEBOT_VERSION
#define KNEEBOT_VERSION "0.0.0"
#endif

/* Exit statuses (sysexits.h), listed in kneebot(8) for RestartPreventExitStatus=. */
enum {
	EXIT_USAGE = 64,     /* bad command line */
	EXIT_DATAERR = 65,   /* the knowledge base is broken */
	EXIT_OSERR = 71,     /* the system failed us */
	EXIT_CONFIG = 78,    /* the config is broken */
};

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: kneebot [--config FILE] [--console]\n"
		"       kneebot --classify [--explain] [--config FILE]\n"
		"       kneebot --check-config [FILE]\n"
		"       kneebot --version | --help\n"
		"\n"
		"  -c, --config FILE    config file (default %s when it exists,\n"
		"                       else built-in defaults)\n"
		"      --console        also talk on stdin/stdout (default when no network is configured)\n"
		"      --classify       JSON lines {\"text\": ..., \"addressed\": bool} in, triage out\n"
		"      --explain        with --classify: name the cue lines that counted\n"
		"      --check-config   validate the config and the knowledge base, then exit\n"
		"  -v, --version        print the version\n"
		"  -h, --help           this text\n",
		CONFIG_DEFAULT_PATH);
}

/* The config to read: the one asked for, else the default path when it exists. */
static const char *
config_file(const char *asked)
{
	if (asked)
		return asked;
	return access(CONFIG_DEFAULT_PATH, F_OK) == 0 ? CONFIG_DEFAULT_PATH : NULL;
}

static struct config *
load_config(const char *path)
{
	struct config *c;
	struct buf err;
	buf_init(&err);
	if (config_load(path, &c, &err) < 0) {
		fputs(err.s ? err.s : "config error\n", stderr);
		fatalx(EXIT_CONFIG, "%s: configuration is not valid", path ? path : "built-in defaults");
	}
	buf_free(&err);
	return c;
}

static struct kb *
load_kb(const char *dir)
{
	struct kb *kb;
	struct buf err;
	buf_init(&err);
	int64_t t0 = loop_now_us();
	if (kb_load(dir, &kb, &err) < 0) {
		fputs(err.s ? err.s : "knowledge base error\n", stderr);
		fatalx(EXIT_DATAERR, "%s: knowledge base is not valid", dir);
	}
	log_debug("knowledge base %s loaded in %lld us", dir, (long long)(loop_now_us() - t0));
	buf_free(&err);
	return kb;
}

static int
check_config(const char *path)
{
	struct config *c = load_config(path);
	struct kb *kb = load_kb(c->bot.responses_dir);
	printf("%s: OK, %zu network(s); knowledge base %s: OK, %zu exercises\n",
		path ? path : "built-in defaults", c->nnets, c->bot.responses_dir, kb_exercise_count(kb));
	kb_free(kb);
	config_free(c);
	return 0;
}

static int
classify(const char *path, bool explain)
{
	struct config *c = load_config(path);
	struct kb *kb = load_kb(c->bot.responses_dir);
	struct responder *r = responder_new(kb);
	int rv = classify_stream(r, c->bot.nick, explain, stdin, stdout);
	responder_free(r);
	kb_free(kb);
	config_free(c);
	return rv == 0 ? 0 : EXIT_OSERR;
}

static void
on_reload(struct loop *loop, int signo, void *arg)
{
	(void)loop, (void)signo;
	struct buf err;
	buf_init(&err);
	if (bot_reload(arg, &err) < 0)
		log_warnx("SIGHUP reload failed: %s", err.s ? err.s : "");
	buf_free(&err);
}

static void
on_quit(struct loop *loop, int signo, void *arg)
{
	(void)loop;
	bot_quit(arg, signo == SIGINT ? "interrupted" : "terminated");
}

static int
run(const char *path, bool console)
{
	struct config *c = load_config(path);
	log_set_level(c->bot.log_level);
	struct kb *kb = load_kb(c->bot.responses_dir);
	struct loop *loop = loop_new();
	signal(SIGPIPE, SIG_IGN);
	struct bot *bot = bot_new(loop, c, kb);
	loop_signal(loop, SIGHUP, on_reload, bot);
	loop_signal(loop, SIGTERM, on_quit, bot);
	loop_signal(loop, SIGINT, on_quit, bot);
	struct buf err;
	buf_init(&err);
	if (bot_start(bot, console || c->nnets == 0, &err) < 0) {
		log_err("cannot start: %s", err.s ? err.s : "");
		bot_free(bot);
		loop_free(loop);
		return EXIT_CONFIG;
	}
	buf_free(&err);
	log_info("kneebot %s running with %zu network(s)", KNEEBOT_VERSION, c->nnets);
	loop_run(loop);
	bot_free(bot);
	loop_free(loop);
	log_info("stopped");
	return 0;
}

int
main(int argc, char **argv)
{
	enum { OPT_CONSOLE = 256, OPT_CLASSIFY, OPT_CHECK, OPT_EXPLAIN };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "console", no_argument, NULL, OPT_CONSOLE },
		{ "classify", no_argument, NULL, OPT_CLASSIFY },
		{ "check-config", no_argument, NULL, OPT_CHECK },
		{ "explain", no_argument, NULL, OPT_EXPLAIN },
		{ "version", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	bool console = false, classify_mode = false, check = false, explain = false;
	log_init(LOG_LVL_INFO, "kneebot");
	int o;
	while ((o = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
		switch (o) {
		case 'c': path = optarg; break;
		case OPT_CONSOLE: console = true; break;
		case OPT_CLASSIFY: classify_mode = true; break;
		case OPT_CHECK: check = true; break;
		case OPT_EXPLAIN: explain = true; break;
		case 'v': printf("kneebot %s\n", KNEEBOT_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (check && optind < argc)
		path = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "kneebot: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if ((int)check + (int)classify_mode + (int)console > 1 && !(console && !check && !classify_mode)) {
		fprintf(stderr, "kneebot: --check-config, --classify and --console do not mix\n");
		return EXIT_USAGE;
	}
	path = config_file(path);
	if (check)
		return check_config(path);
	if (classify_mode)
		return classify(path, explain);
	return run(path, console);
}
