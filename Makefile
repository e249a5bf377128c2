# kneebot: GNU make.  `make run` and `make check` install what is missing (deps).
VERSION = 0.1.0
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share/kneebot
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR ?=

CC ?= cc
PKGS = libcurl libcjson olm sqlite3 inih libutf8proc libsystemd
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lstemmer -lm
WARN = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Iinclude $(PKG_CFLAGS) \
	-DKNEEBOT_VERSION='"$(VERSION)"' -DKNEEBOT_DATADIR='"$(DATADIR)"'
SAN = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# Debian packages: to build, and to run the tests (real IRC servers, the Matrix peer).
BUILD_DEBS = build-essential pkg-config libcurl4-openssl-dev libcjson-dev libolm-dev libsqlite3-dev \
	libinih-dev libstemmer-dev libutf8proc-dev libsystemd-dev
TEST_DEBS = clang python3 inspircd atheme-services ngircd python3-matrix-nio python3-olm \
	python3-aiohttp openssl man-db groff-base mandoc systemd sqlite3 procps

OBJS  = address.o
OBJS += bot.o
OBJS += buf.o
OBJS += canonjson.o
OBJS += classify.o
OBJS += commands.o
OBJS += compose.o
OBJS += config.o
OBJS += console.o
OBJS += crypto.o
OBJS += curl_loop.o
OBJS += e2ee.o
OBJS += e2ee_devices.o
OBJS += e2ee_keys.o
OBJS += e2ee_parse.o
OBJS += e2ee_recv.o
OBJS += e2ee_send.o
OBJS += http.o
OBJS += irc.o
OBJS += irc_conf.o
OBJS += irc_parse.o
OBJS += kb.o
OBJS += log.o
OBJS += loop.o
OBJS += matrix.o
OBJS += matrix_conf.o
OBJS += matrix_parse.o
OBJS += memory.o
OBJS += ratelimit.o
OBJS += responder.o
OBJS += router.o
OBJS += store.o
OBJS += store_crypto.o
OBJS += text.o
OBJS += transport.o

TESTS = $(patsubst tests/%.c,%,$(wildcard tests/*_test.c))
FUZZERS = $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
HDRS = $(wildcard include/*.h)

BIN = build/kneebot
LIB = build/libkneebot.a
ASAN_LIB = build/asan/libkneebot.a

.PHONY: print-debs all check run bench eval fuzz fuzz-smoke install uninstall clean deps deps-build deps-test tests
all: $(BIN)

build/obj/%.o: bot/%.c $(HDRS) Makefile
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

build/asan/obj/%.o: bot/%.c $(HDRS) Makefile
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(SAN) -c $< -o $@

$(LIB): $(addprefix build/obj/,$(OBJS))
	@rm -f $@
	ar rcs $@ $^

$(ASAN_LIB): $(addprefix build/asan/obj/,$(OBJS))
	@rm -f $@
	ar rcs $@ $^

$(BIN): build/obj/main.o $(LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(PKG_LIBS)

build/asan/kneebot: build/asan/obj/main.o $(ASAN_LIB)
	$(CC) $(ALL_CFLAGS) $(SAN) -o $@ $^ $(PKG_LIBS)

build/tests/%: tests/%.c tests/t.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(LIB) $(PKG_LIBS)

build/asan/tests/%: tests/%.c tests/t.h $(ASAN_LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(SAN) -Itests -o $@ $< $(ASAN_LIB) $(PKG_LIBS)

build/bench/%: tests/bench/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -o $@ $< $(LIB) $(PKG_LIBS)

tests: $(BIN) build/asan/kneebot $(addprefix build/tests/,$(TESTS)) $(addprefix build/asan/tests/,$(TESTS))

# Installs the Debian packages that are missing (sudo when not root).
deps: deps-build
deps-build:
	@sh tests/deps.sh $(BUILD_DEBS)
deps-test:
	@sh tests/deps.sh $(BUILD_DEBS) $(TEST_DEBS)

check: deps-test
	@$(MAKE) --no-print-directory tests
	@sh tests/run.sh

run: deps-build
	@$(MAKE) --no-print-directory $(BIN)
	./$(BIN) $(if $(CONFIG),--config $(CONFIG))

eval: $(BIN)
	@sh tests/eval.sh

bench: $(BIN)
	@sh tests/bench/run.sh

# libFuzzer targets: clang only; the bot's objects are instrumented once and shared.
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=address,undefined -Iinclude $(PKG_CFLAGS) \
	-DKNEEBOT_VERSION='"$(VERSION)"' -DKNEEBOT_DATADIR='"$(DATADIR)"'
build/fuzz/obj/%.o: bot/%.c $(HDRS) Makefile
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

build/fuzz/libkneebot.a: $(addprefix build/fuzz/obj/,$(OBJS))
	@rm -f $@
	ar rcs $@ $^

build/fuzz/%: tests/fuzz/%.c build/fuzz/libkneebot.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< build/fuzz/libkneebot.a $(PKG_LIBS)

fuzz: $(addprefix build/fuzz/,$(FUZZERS))
fuzz-smoke: fuzz
	@sh tests/fuzz/smoke.sh $(FUZZERS)

# The unit runs the bot as a transient user (DynamicUser=), so the config is
# world-readable (it holds no secrets; those come from *_file keys) and an
# existing one is never overwritten.  ExecStart= names /usr/local/bin, the
# default BINDIR, so that systemd-analyze can rate the unit as it stands.
# QUIRKS.7 goes beside the data, not into man7, where its name is too generic.
install: $(BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/responses $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSCONFDIR)/kneebot $(DESTDIR)$(UNITDIR)
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/kneebot
	install -m 644 responses/*.ini responses/README.md $(DESTDIR)$(DATADIR)/responses/
	install -m 644 config/kneebot.conf $(DESTDIR)$(DATADIR)/kneebot.conf.example
	test -e $(DESTDIR)$(SYSCONFDIR)/kneebot/kneebot.conf || \
		install -m 644 config/kneebot.conf $(DESTDIR)$(SYSCONFDIR)/kneebot/kneebot.conf
	install -m 644 doc/kneebot.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 644 doc/QUIRKS.7 $(DESTDIR)$(DATADIR)/
	install -m 644 doc/kneebot.8 $(DESTDIR)$(MANDIR)/man8/
	sed 's|^ExecStart=/usr/local/bin/|ExecStart=$(BINDIR)/|' systemd/kneebot.service > $(DESTDIR)$(UNITDIR)/kneebot.service
	chmod 644 $(DESTDIR)$(UNITDIR)/kneebot.service

# Leaves /etc/kneebot alone: it is the admin's.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/kneebot $(DESTDIR)$(UNITDIR)/kneebot.service \
		$(DESTDIR)$(MANDIR)/man5/kneebot.conf.5 $(DESTDIR)$(MANDIR)/man8/kneebot.8
	rm -rf $(DESTDIR)$(DATADIR)

clean:
	rm -rf build

print-debs:
	@echo $(BUILD_DEBS) $(TEST_DEBS)
