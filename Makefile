# txidsync: one Makefile builds the daemon and its two tools from the same
# objects (build/libtxidsync.a), the unit tests, and drives the test bed.
#
#   make            build/txidsync, build/load-generator, build/consistency-check,
#                   build/bulk-loader (the benchmark's raw ceiling)
#   make check      deps, build, unit tests (also under ASan/UBSan),
#                   integration tests (real servers), the crash-loop fuzz
#   make demo       the crash-loop demo against a private Postgres + OpenSearch
#   make bench      the benchmarks on a private bed; writes BENCHMARKS.md and
#                   benchmarks/*.png (tools/bench; about 70 minutes)
#   make asan       unit tests under AddressSanitizer + UBSan
#   make fuzz       every libFuzzer target for FUZZ_SECONDS (60) each
#   make install    txidsync, its checker, sql/, the man page, an example
#                   config and a systemd unit under DESTDIR/PREFIX
#   make uninstall  removes what make install put there
#   make help       every target

BUILD     ?= build
CC        ?= cc
PKGS      := libpq libcurl yajl inih libcrypto rdkafka libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_CFLAGS := $(shell pkg-config --cflags cmocka 2>/dev/null)
CMOCKA_LIBS   := $(shell pkg-config --libs cmocka 2>/dev/null)

OPT       ?= -O2
WARN      := -Wall -Wextra -Wstrict-prototypes -Wshadow -Wformat=2
# CI (CI=true) and WERROR=1 turn warnings into errors.
ifneq ($(filter true 1,$(CI) $(WERROR)),)
WARN      += -Werror
endif
SANITIZE  ?=
CFLAGS    ?= $(OPT) -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SANITIZE) -Isrc $(PKG_CFLAGS) -MMD -MP
LDFLAGS   ?=
LDLIBS    := $(PKG_LIBS) -lm
# V=1 prints whole compiler command lines.
ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-5s %s\n'
endif

LIB_SRC   := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB       := $(BUILD)/libtxidsync.a

# The server module of the change-log tracking mode (rule below).
EXT       := $(BUILD)/ext/txidsync_log.so

PROGRAMS  := $(BUILD)/txidsync $(BUILD)/load-generator $(BUILD)/consistency-check \
             $(BUILD)/bulk-loader

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# Integration test programs in C (tests/integration/it_*.c) are run by
# tests/run-integration next to the shell tests.
IT_SRC    := $(wildcard tests/integration/it_*.c)
IT_BIN    := $(IT_SRC:tests/integration/%.c=$(BUILD)/tests/%)
# What the unit and fuzz tests share (tests/support/).
TEST_SUPPORT := $(BUILD)/obj/tests/support/store_mem.o
# libFuzzer targets (tests/fuzz/fuzz_*.c) of every parser of outside
# input, built with clang into build/fuzz and run by tools/run-fuzz.
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzzers/%)
FUZZ_SECONDS ?= 60
FUZZ_SANITIZE := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
                 -fno-sanitize-recover=all

.PHONY: all check unit integration demo clean format format-check asan valgrind \
        deps opensearch kafka bench soak help fuzz fuzz-smoke fuzz-build install uninstall man
.DEFAULT_GOAL := all

all: $(PROGRAMS) $(EXT)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(say) CC $<
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(say) AR $@
	$(Q)rm -f $@
	$(Q)$(AR) rcs $@ $^

$(BUILD)/txidsync: $(BUILD)/obj/src/main.o $(LIB)
	$(say) LD $@
	$(Q)$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/load-generator: $(BUILD)/obj/tools/load_generator.o $(LIB)
	$(say) LD $@
	$(Q)$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/consistency-check: $(BUILD)/obj/tools/consistency_check.o $(BUILD)/obj/tools/check_repair.o $(LIB)
	$(say) LD $@
	$(Q)$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The benchmark's raw ceiling: the simplest _bulk loader (tools/bench).
$(BUILD)/bulk-loader: $(BUILD)/obj/tools/bulk_loader.o $(LIB)
	$(say) LD $@
	$(Q)$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# A unit test links its own file and only the objects it uses from the
# archive; a test that fakes a libpq or libcurl function defines it in its
# own file, which comes first on the link line and so wins.
$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $(TEST_SUPPORT) $(LIB) | $(BUILD)/tests
	$(say) LD $@
	$(Q)$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(LDLIBS)

$(BUILD)/tests/it_%: $(BUILD)/obj/tests/integration/it_%.o $(LIB) | $(BUILD)/tests
	$(say) LD $@
	$(Q)$(CC) $(CFLAGS) $(SANITIZE) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/fuzzers/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(TEST_SUPPORT) $(LIB)
	@mkdir -p $(dir $@)
	$(say) LD $@
	$(Q)$(CC) $(CFLAGS) $(SANITIZE) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The C row trigger of the change-log tracking mode (sql/txidsync_log.c),
# a module of the PostgreSQL server: built against the server's headers
# (postgresql-server-dev, make deps), loaded from build/ext by the test
# bed's dynamic_library_path, installed into the server's library
# directory by make install.  Without it the log mode uses a plpgsql
# trigger.
PG_CONFIG ?= $(lastword $(sort $(wildcard /usr/lib/postgresql/*/bin/pg_config)) pg_config)
PG_SERVER_INCLUDE := $(shell $(PG_CONFIG) --includedir-server 2>/dev/null)
PG_PKGLIBDIR := $(shell $(PG_CONFIG) --pkglibdir 2>/dev/null)
EXT_CFLAGS := -std=gnu99 -O2 -g -fPIC -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare \
              -Wno-missing-field-initializers -Wmissing-prototypes -fno-strict-aliasing -fwrapv \
              $(filter -Werror,$(WARN))

$(EXT): sql/txidsync_log.c
	@mkdir -p $(dir $@)
	$(say) CC $<
	$(Q)test -f $(PG_SERVER_INCLUDE)/postgres.h || \
	    { echo "no PostgreSQL server headers (postgresql-server-dev; make deps)" >&2; exit 1; }
	$(Q)$(CC) $(EXT_CFLAGS) -I$(PG_SERVER_INCLUDE) -shared -o $@ $<

$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(say) CC $<
	$(Q)$(CC) $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -Itests -c $< -o $@

$(BUILD)/tests:
	@mkdir -p $@

# Installs the Debian packages the build, tests and demo need (idempotent,
# quick when everything is present).
deps:
	@tools/install-deps

# The embedded OpenSearch node used by the test bed (Java, built by maven).
opensearch:
	@tools/opensearch-node/build

# The Kafka broker of tests/bed up --with-kafka (jars gathered by maven).
kafka:
	@tools/kafka-node/build

unit: $(UNIT_BIN)
	@tools/run-unit $(UNIT_BIN)

integration: all $(IT_BIN) opensearch kafka
	@tests/run-integration

check: deps
	@$(MAKE) --no-print-directory format-check
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory asan
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory integration

# Every fuzz target for FUZZ_SECONDS (default 60) under ASan and UBSan,
# after replaying its kept crash inputs (tests/fuzz/regressions/).
fuzz-build:
	@$(MAKE) -s --no-print-directory BUILD=build/fuzz CC=clang OPT=-O1 SANITIZE="$(FUZZ_SANITIZE)" \
	    $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/fuzzers/%)

fuzz: fuzz-build
	@tools/run-fuzz build/fuzz/fuzzers $(FUZZ_SECONDS)

# The short run of every fuzz target that make check does.
fuzz-smoke: fuzz-build
	@tools/run-fuzz build/fuzz/fuzzers 10

# Long simulation run of the cursor against the MVCC model.
SOAK_SCHEDULES ?= 2000000
soak: $(BUILD)/tests/test_simulation
	TXIDSYNC_SIM_SCHEDULES=$(SOAK_SCHEDULES) $(BUILD)/tests/test_simulation

demo: deps
	@$(MAKE) --no-print-directory all opensearch kafka
	@tools/demo

bench: deps
	@$(MAKE) --no-print-directory all opensearch kafka
	@tools/bench

# Unit tests under AddressSanitizer and UBSan, in their own build tree.
asan:
	@$(MAKE) --no-print-directory BUILD=build/asan OPT=-O1 \
	    SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" unit

valgrind: $(UNIT_BIN)
	@TXIDSYNC_VALGRIND=1 tools/run-unit $(UNIT_BIN)

FORMAT_SRC = $(wildcard src/*.[ch] tools/*.[ch] tests/unit/*.[ch] tests/integration/*.[ch] \
               tests/fuzz/*.[ch] tests/support/*.[ch] sql/*.[ch])
format:
	clang-format -i $(FORMAT_SRC)

format-check:
	@clang-format --dry-run --Werror $(FORMAT_SRC) && echo "format-check: ok"

# The man pages come from the programs' settings tables (--man), like
# their --help.
MAN_PAGES := $(BUILD)/man/txidsync.1 $(BUILD)/man/txidsync-consistency-check.1
man: $(MAN_PAGES)
$(BUILD)/man/txidsync.1: $(BUILD)/txidsync
	@mkdir -p $(dir $@)
	$(Q)$< --man >$@
$(BUILD)/man/txidsync-consistency-check.1: $(BUILD)/consistency-check
	@mkdir -p $(dir $@)
	$(Q)$< --man | sed -e "s/^\.TH CONSISTENCY-CHECK/.TH TXIDSYNC-CONSISTENCY-CHECK/" \
	    -e 's/^consistency\\-check/txidsync\\-consistency\\-check/' >$@

# make install [PREFIX=/usr/local] [DESTDIR=]: the checker is installed as
# txidsync-consistency-check; the unit runs txidsync --config
# $(SYSCONFDIR)/txidsync/txidsync.ini as user txidsync (sysusers.d).
PREFIX     ?= /usr/local
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
BINDIR     := $(PREFIX)/bin
DATADIR    := $(PREFIX)/share/txidsync
DOCDIR     := $(PREFIX)/share/doc/txidsync
MANDIR     := $(PREFIX)/share/man/man1
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
INSTALLED  := $(BINDIR)/txidsync $(BINDIR)/txidsync-consistency-check $(DATADIR)/sql/txidsync.sql \
              $(MANDIR)/txidsync.1 $(MANDIR)/txidsync-consistency-check.1 \
              $(DOCDIR)/txidsync.ini.example $(DOCDIR)/README.md $(UNITDIR)/txidsync.service \
              $(SYSUSERSDIR)/txidsync.conf $(PG_PKGLIBDIR)/txidsync_log.so
install: all man
	$(Q)install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/sql $(DESTDIR)$(MANDIR) \
	    $(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	$(Q)install -m 755 $(BUILD)/txidsync $(DESTDIR)$(BINDIR)/txidsync
	$(Q)install -m 755 $(BUILD)/consistency-check $(DESTDIR)$(BINDIR)/txidsync-consistency-check
	$(Q)install -m 644 sql/txidsync.sql $(DESTDIR)$(DATADIR)/sql/txidsync.sql
	$(Q)install -m 644 $(MAN_PAGES) $(DESTDIR)$(MANDIR)/
	$(Q)install -m 644 tools/dist/txidsync.ini.example README.md $(DESTDIR)$(DOCDIR)/
	$(Q)sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' \
	    tools/dist/txidsync.service.in >$(DESTDIR)$(UNITDIR)/txidsync.service
	$(Q)chmod 644 $(DESTDIR)$(UNITDIR)/txidsync.service
	$(Q)install -m 644 tools/dist/txidsync.sysusers $(DESTDIR)$(SYSUSERSDIR)/txidsync.conf
	$(Q)install -d $(DESTDIR)$(PG_PKGLIBDIR)
	$(Q)install -m 755 $(EXT) $(DESTDIR)$(PG_PKGLIBDIR)/txidsync_log.so
	@echo "installed under $(DESTDIR)$(PREFIX); configure $(SYSCONFDIR)/txidsync/txidsync.ini" \
	    "(from $(DOCDIR)/txidsync.ini.example)"

uninstall:
	$(Q)rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	$(Q)rmdir $(DESTDIR)$(DATADIR)/sql $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR) 2>/dev/null || true

clean:
	rm -rf build tools/opensearch-node/target tools/kafka-node/target

help:
	@echo "targets: all check unit integration demo bench soak asan valgrind fuzz fuzz-smoke"
	@echo "         deps opensearch kafka format format-check install uninstall man clean"

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
