# lazykv -- build, run, test.  See README.md.
#
#   make            build bin/lazykvd, bin/lazykv-admin, bin/lazykv-sync, and the
#                   client side: lib/liblazykv.{a,so.1}, lazykv.pc, bin/lazykv
#   make install    the client library, its header, lazykv.pc and the programs
#                   under $(DESTDIR)$(PREFIX) (PREFIX=/usr/local)
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
DAEMON    = uri negotiate render stats histo syncstatus metrics kvsql dbconn prober lane rcache token watch worker kv authfile auth tls accesslog handlers server lazykvd
ADMIN     = admin antientropy authfile auth
SYNC      = sync lazykv_sync

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
PREFIX   ?= /usr/local

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

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(LIB)/liblazykv.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIB)/liblazykv.so.1 $(DESTDIR)$(PREFIX)/lib/liblazykv.so.$(LIB_VERSION)
	ln -sf liblazykv.so.$(LIB_VERSION) $(DESTDIR)$(PREFIX)/lib/liblazykv.so.1
	ln -sf liblazykv.so.1 $(DESTDIR)$(PREFIX)/lib/liblazykv.so
	install -m 644 src/client/lazykv.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(PREFIX)/lib|; s|@INCLUDEDIR@|$(PREFIX)/include|' \
	    -e 's|@VERSION@|$(LIB_VERSION)|' tools/lazykv.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/lazykv.pc
	install -m 755 $(BIN)/lazykv $(BIN)/lazykvd $(BIN)/lazykv-admin $(BIN)/lazykv-sync \
	    $(DESTDIR)$(PREFIX)/bin/
	@# the loader's cache, so that programs find liblazykv.so.1 (not into a DESTDIR)
	if [ -z "$(DESTDIR)" ] && command -v ldconfig >/dev/null; then ldconfig; fi

# ---- unit tests (Check) ----------------------------------------------------
UNIT_SRCS = $(wildcard tests/unit/test_*.c)
UNIT_MODS = log buf codec config placement version uri negotiate render rcache token authfile accesslog \
            range digest chunks
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
FUZZ_MODS     = log buf codec config placement version uri negotiate render authfile range digest
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

bench:
	@tools/deps.sh bench
	@$(MAKE) --no-print-directory all build/bench/mhd_fixed build/bench/loader
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

.PHONY: all client install run test asan lint clean deps fuzz valgrind bench
-include $(wildcard $(BUILD)/*.d $(BUILD)/client/*.d)
