# lazykv -- build, run, test.  See README.md.
#
#   make            build bin/lazykvd, bin/lazykv-admin, bin/lazykv-sync, and the
#                   client side: lib/liblazykv.{a,so.1}, lazykv.pc, bin/lazykv
#   make install    the programs, the client library (header, lazykv.pc), man
#                   pages, systemd units, the crontab and examples under
#                   $(DESTDIR)$(PREFIX) (PREFIX=/usr/local), and a configuration
#                   in $(DESTDIR)$(SYSCONFDIR)/lazykv (SYSCONFDIR=/etc) if none
#   make uninstall  removes what install put, except the configuration
#   make run        local 3-node MariaDB cluster + lazykvd on :8080 (+ sync)
#   make test       unit + integration tests against a throwaway test cluster
#   make asan       the same tests with AddressSanitizer + UBSan builds
#   make lint       cppcheck + the SQL-building check

CC       ?= cc
OPT      ?= -O2 -g
WARN      = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wformat=2 -Wno-format-nonliteral
PKGS      = libmariadb libmicrohttpd jansson gnutls
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# iniparser ships no pkg-config file on Debian.
INI_LIBS   = -liniparser
CFLAGS   += -std=gnu11 -D_GNU_SOURCE $(OPT) $(WARN) -MMD -MP $(PKG_CFLAGS) -Isrc
LDLIBS   += $(PKG_LIBS) $(INI_LIBS) -lpthread

BUILD    ?= build
BIN      ?= bin

COMMON    = log buf codec config placement version partition store
DAEMON    = uri range digest negotiate html render stats histo syncstatus metrics kvsql dbconn prober lane rcache token watch worker kv chunks spool upload download authfile auth tls accesslog handlers server notify lazykvd
ADMIN     = admin antientropy authfile auth
SYNC      = sync syncq syncstatus syncrecord lazykv_sync

obj = $(patsubst %,$(BUILD)/%.o,$(1))

all: $(BIN)/lazykvd $(BIN)/lazykv-admin $(BIN)/lazykv-sync client

$(BUILD)/%.o: src/%.c | $(BUILD)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/schema_sql.c: sql/schema.sql tools/embed_sql.sh | $(BUILD)
	sh tools/embed_sql.sh $< > $@

$(BUILD)/schema_sql.o: $(BUILD)/schema_sql.c
	$(CC) $(CFLAGS) -Wno-missing-prototypes -c -o $@ $<

$(BIN)/lazykvd: $(call obj,$(COMMON) $(DAEMON)) | $(BIN)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/lazykv-admin: $(call obj,$(COMMON) $(ADMIN) schema_sql) | $(BIN)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/lazykv-sync: $(call obj,$(COMMON) $(SYNC)) | $(BIN)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# ---- the client side: liblazykv, lazykv.pc, bin/lazykv ----------------------
# Kept apart from the server (src/client/): it links libcurl and jansson,
# not MariaDB. The shared library exports only lazykv.h's functions.
LIB       ?= lib
CLIENT    = util lkv
CLIENT_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(OPT) $(WARN) -MMD -MP -fPIC -fvisibility=hidden                 $(shell pkg-config --cflags libcurl jansson 2>/dev/null) -Isrc/client
CLIENT_LIBS   = $(shell pkg-config --libs libcurl jansson 2>/dev/null) -lpthread
LIB_VERSION   = 1.0.0

client: $(LIB)/liblazykv.a $(LIB)/liblazykv.so $(LIB)/lazykv.pc $(BIN)/lazykv

$(BUILD)/client/%.o: src/client/%.c | $(BUILD)/client
	$(CC) $(CLIENT_CFLAGS) -c -o $@ $<

$(LIB)/liblazykv.a: $(patsubst %,$(BUILD)/client/%.o,$(CLIENT)) | $(LIB)
	rm -f $@
	ar rcs $@ $^

$(LIB)/liblazykv.so.1: $(patsubst %,$(BUILD)/client/%.o,$(CLIENT)) | $(LIB)
	$(CC) -shared -Wl,-soname,liblazykv.so.1 $(LDFLAGS) -o $@ $^ $(CLIENT_LIBS)

$(LIB)/liblazykv.so: $(LIB)/liblazykv.so.1
	ln -sf liblazykv.so.1 $@

# For the source tree (lib/, src/client/); `make install` writes one for PREFIX.
$(LIB)/lazykv.pc: tools/lazykv.pc.in Makefile | $(LIB)
	sed -e 's|@PREFIX@|$(CURDIR)|; s|@LIBDIR@|$(CURDIR)/$(LIB)|; s|@INCLUDEDIR@|$(CURDIR)/src/client|' 	    -e 's|@VERSION@|$(LIB_VERSION)|' $< > $@

$(BIN)/lazykv: $(BUILD)/client/cli.o $(LIB)/liblazykv.a | $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(CLIENT_LIBS)

# The library's integration test program (tests/integration/test_client_lib.py).
$(BUILD)/lkv_test: tests/client/lkv_test.c $(LIB)/liblazykv.a src/client/lazykv.h | $(BUILD)
	$(CC) $(CLIENT_CFLAGS) -Wno-missing-prototypes $(LDFLAGS) -o $@ $< $(LIB)/liblazykv.a $(CLIENT_LIBS)

# ---- make install / make uninstall ------------------------------------------
# Every directory can be overridden; DESTDIR is prepended to all of them (a
# staging root for packagers). Paths inside the installed units, crontab and
# man pages are the final ones, without DESTDIR: the templates (*.in) name
# them @BINDIR@, @SYSCONFDIR@, @SYSUSERSDIR@, @DOCDIR@, replaced by sed here.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
LIBDIR      ?= $(PREFIX)/lib
INCLUDEDIR  ?= $(PREFIX)/include
MANDIR      ?= $(PREFIX)/share/man
DOCDIR      ?= $(PREFIX)/share/doc/lazykv
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
SYSCONFDIR  ?= /etc
CONF         = $(SYSCONFDIR)/lazykv/configuration.cfg

PROGRAMS     = lazykv lazykvd lazykv-admin lazykv-sync
MAN1         = lazykv.1
MAN5         = lazykv.cfg.5
MAN8         = lazykvd.8 lazykv-sync.8 lazykv-admin.8
UNITS        = lazykvd.service lazykv-sync.service lazykv-sync.timer
DOCS         = README.md configuration.cfg conf/production.example.cfg
SUBST        = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
                   -e 's|@SYSUSERSDIR@|$(SYSUSERSDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g'
# The man pages and the example configuration are written for the default
# paths (/etc/lazykv/, /usr/local/...): installed, they name the real ones.
SUBST_PATHS  = sed -e 's|/etc/lazykv/|$(SYSCONFDIR)/lazykv/|g' \
                   -e 's|/usr/local/lib/systemd/system/|$(UNITDIR)/|g' \
                   -e 's|/usr/local/share/doc/lazykv/|$(DOCDIR)/|g'

# Everything install puts, which is what uninstall removes (the configuration
# in SYSCONFDIR is left: it is the operator's).
INSTALLED = $(addprefix $(BINDIR)/,$(PROGRAMS)) \
    $(addprefix $(LIBDIR)/,liblazykv.a liblazykv.so.$(LIB_VERSION) liblazykv.so.1 liblazykv.so) \
    $(LIBDIR)/pkgconfig/lazykv.pc $(INCLUDEDIR)/lazykv.h \
    $(addprefix $(MANDIR)/man1/,$(MAN1)) $(addprefix $(MANDIR)/man5/,$(MAN5)) \
    $(addprefix $(MANDIR)/man8/,$(MAN8)) $(addprefix $(UNITDIR)/,$(UNITS)) \
    $(SYSUSERSDIR)/lazykv.conf \
    $(addprefix $(DOCDIR)/,$(notdir $(DOCS)) lazykv-sync.cron)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(DOCDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/lazykv
	install -m 755 $(addprefix $(BIN)/,$(PROGRAMS)) $(DESTDIR)$(BINDIR)/
	install -m 644 $(LIB)/liblazykv.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(LIB)/liblazykv.so.1 $(DESTDIR)$(LIBDIR)/liblazykv.so.$(LIB_VERSION)
	ln -sf liblazykv.so.$(LIB_VERSION) $(DESTDIR)$(LIBDIR)/liblazykv.so.1
	ln -sf liblazykv.so.1 $(DESTDIR)$(LIBDIR)/liblazykv.so
	install -m 644 src/client/lazykv.h $(DESTDIR)$(INCLUDEDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(LIB_VERSION)|' tools/lazykv.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/lazykv.pc
	for m in $(MAN1); do $(SUBST_PATHS) man/$$m > $(DESTDIR)$(MANDIR)/man1/$$m || exit 1; done
	for m in $(MAN5); do $(SUBST_PATHS) man/$$m > $(DESTDIR)$(MANDIR)/man5/$$m || exit 1; done
	for m in $(MAN8); do $(SUBST_PATHS) man/$$m > $(DESTDIR)$(MANDIR)/man8/$$m || exit 1; done
	$(SUBST) systemd/lazykvd.service.in > $(DESTDIR)$(UNITDIR)/lazykvd.service
	$(SUBST) systemd/lazykv-sync.service.in > $(DESTDIR)$(UNITDIR)/lazykv-sync.service
	$(SUBST) systemd/lazykv-sync.timer > $(DESTDIR)$(UNITDIR)/lazykv-sync.timer
	$(SUBST) systemd/lazykv.sysusers > $(DESTDIR)$(SYSUSERSDIR)/lazykv.conf
	$(SUBST) cron/lazykv-sync.cron.in > $(DESTDIR)$(DOCDIR)/lazykv-sync.cron
	install -m 644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	cd $(DESTDIR)$(MANDIR) && chmod 644 $(addprefix man1/,$(MAN1)) $(addprefix man5/,$(MAN5)) \
	    $(addprefix man8/,$(MAN8))
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/lazykv.pc $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS)) \
	    $(DESTDIR)$(SYSUSERSDIR)/lazykv.conf $(DESTDIR)$(DOCDIR)/lazykv-sync.cron
	@# The configuration: made from the production example only when there is
	@# none (never overwritten), readable by root and the group lazykv only
	@# (it holds passwords). Written aside and renamed, so an interrupted
	@# install leaves no half file that a later one would keep.
	@if [ -e $(DESTDIR)$(CONF) ]; then \
	    echo "lazykv: $(DESTDIR)$(CONF) exists: kept as it is"; \
	else \
	    (umask 027 && $(SUBST_PATHS) conf/production.example.cfg > $(DESTDIR)$(CONF).new) && \
	    mv $(DESTDIR)$(CONF).new $(DESTDIR)$(CONF) && \
	    echo "lazykv: wrote $(DESTDIR)$(CONF) from conf/production.example.cfg: edit it" && \
	    if [ -z "$(DESTDIR)" ] && getent group lazykv >/dev/null; then chgrp lazykv $(CONF); fi; \
	fi
	@# the loader's cache, so that programs find liblazykv.so.1 (not into a DESTDIR)
	if [ -z "$(DESTDIR)" ] && command -v ldconfig >/dev/null; then ldconfig; fi

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null
	if [ -z "$(DESTDIR)" ] && command -v ldconfig >/dev/null; then ldconfig; fi

# ---- unit tests (Check) ----------------------------------------------------
UNIT_SRCS = $(wildcard tests/unit/test_*.c)
UNIT_MODS = log buf codec config placement version uri negotiate html render rcache token \
            authfile accesslog partition store syncq notify range digest chunks spool
$(BUILD)/unit_tests: $(UNIT_SRCS) tests/unit/main.c $(call obj,$(UNIT_MODS)) $(BUILD)/client/util.o
	$(CC) $(CFLAGS) -Isrc/client -Wno-missing-prototypes -o $@ $(UNIT_SRCS) tests/unit/main.c \
	    $(call obj,$(UNIT_MODS)) $(BUILD)/client/util.o $(LDLIBS) $(shell pkg-config --libs check)

$(BUILD) $(BIN) $(LIB) $(BUILD)/client:
	mkdir -p $@

deps:
	@tools/deps.sh test

# ---- the two README commands ---------------------------------------------
run:
	@tools/deps.sh run
	@$(MAKE) --no-print-directory all
	@tools/run.sh

test:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory all $(BUILD)/unit_tests $(BUILD)/lkv_test
	@tools/test.sh $(BUILD) $(BIN)

# ---- fuzzing (libFuzzer, clang) -------------------------------------------------
# make fuzz [FUZZ_SECONDS=60]: each target runs that long from its seed corpus
# in tests/fuzz/corpus/ (new inputs go to build/fuzz/, not the repo).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS  = uri headers render config tokens range digest
FUZZ_MODS     = log buf codec config placement version uri negotiate html render authfile range digest
FUZZ_CFLAGS   = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                -std=gnu11 -D_GNU_SOURCE -Isrc $(PKG_CFLAGS)
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_input.h $(patsubst %,src/%.c,$(FUZZ_MODS))
	@mkdir -p build/fuzz
	clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(PKG_LIBS) $(INI_LIBS)

fuzz: $(patsubst %,build/fuzz/fuzz_%,$(FUZZ_TARGETS))
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p build/fuzz/corpus-$$t; \
	    echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
	    build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -close_fd_mask=2 \
	        -artifact_prefix=build/fuzz/crash-$$t- \
	        build/fuzz/corpus-$$t tests/fuzz/corpus/$$t 2>&1 | \
	        grep -E "^(stat::number_of_executed_units|==|SUMMARY|Done)" || true; \
	    if ls build/fuzz/crash-$$t-* >/dev/null 2>&1; then echo "fuzz: $$t crashed"; exit 1; fi; \
	done

# ---- benchmarks ---------------------------------------------------------------
# make bench [QUICK=1]: see bench/bench.py; writes bench/results/<date>/REPORT.md
build/bench/mhd_fixed: bench/mhd_fixed.c
	@mkdir -p build/bench
	$(CC) $(CFLAGS) -o $@ $< $(PKG_LIBS)

build/bench/loader: bench/loader.c
	@mkdir -p build/bench
	$(CC) $(CFLAGS) -o $@ $< $(PKG_LIBS)

build/bench/blobceiling: bench/blobceiling.c
	@mkdir -p build/bench
	$(CC) $(CFLAGS) -o $@ $< $(PKG_LIBS)

bench:
	@tools/deps.sh bench
	@$(MAKE) --no-print-directory all build/bench/mhd_fixed build/bench/loader build/bench/blobceiling
	@python3 bench/bench.py $(if $(QUICK),--quick) $(if $(ONLY),--only "$(ONLY)")

# ---- sanitizers, lint ------------------------------------------------------
ASAN_OPT = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
asan:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory BUILD=build/asan BIN=bin/asan LIB=build/asan/lib OPT="$(ASAN_OPT)" \
	    LDFLAGS="-fsanitize=address,undefined" all build/asan/unit_tests build/asan/lkv_test
	@LAZYKV_SANITIZER=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	    tools/test.sh build/asan bin/asan

lint:
	@tools/lint.sh

# The unit tests under valgrind (no fork, so leaks are seen in one process).
valgrind: $(BUILD)/unit_tests
	CK_FORK=no valgrind --quiet --error-exitcode=1 --leak-check=full \
	    --errors-for-leak-kinds=definite,indirect $(BUILD)/unit_tests

clean:
	rm -rf build bin lib

.PHONY: all client install uninstall run test asan lint clean deps fuzz valgrind bench
-include $(wildcard $(BUILD)/*.d $(BUILD)/client/*.d)
