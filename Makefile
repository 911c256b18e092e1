# keytrustee - see README.md.  `make run` and `make check` are the two
# commands an operator needs on a fresh Debian 12 machine.

PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
CC      ?= cc

PKGS := openssl libpq gpgme libevent libevent_openssl libevent_pthreads jansson \
	libcurl yaml-0.1

WARN := -Wall -Wextra -Wformat=2 -Wmissing-prototypes -Wstrict-prototypes \
	-Wshadow -Werror
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_GNU_SOURCE $(WARN) $(HARDEN) -Isrc/common -Isrc/libkeytrustee \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDFLAGS += -Wl,-z,relro,-z,now -pthread
LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# A sanitizer build (make SAN=1) goes to its own tree.
ifeq ($(SAN),1)
BUILD := build/san
CFLAGS := $(filter-out -D_FORTIFY_SOURCE=2,$(CFLAGS)) -O1 \
	-fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif

COMMON_SRC := $(wildcard src/common/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o)
COMMON_LIB := $(BUILD)/lib/libkeytrustee-common.a

BINS := keytrustee-server ktadmin keytrustee-orgtool keytrustee-client kt-agent
keytrustee-server_SRC := $(wildcard src/server/*.c src/server/*/*.c)
# Only the server checks and encrypts to client keys in-process (clientkey.c).
keytrustee-server_LIBS := $(shell pkg-config --libs librnp 2>/dev/null)
# The server's modules but main, for the unit tests of its modules.
SERVER_OBJ := $(filter-out %/main.o,$(keytrustee-server_SRC:%.c=$(BUILD)/obj/%.o))
SERVER_LIB := $(BUILD)/lib/libkeytrustee-server.a
ktadmin_SRC := $(wildcard src/ktadmin/*.c)
keytrustee-orgtool_SRC := $(wildcard src/orgtool/*.c)
# The client is a thin main over libkeytrustee (src/libkeytrustee/).
keytrustee-client_SRC := $(wildcard src/client/*.c) \
	$(wildcard src/libkeytrustee/*.c)
# The host agent of the managed service (descriptor/, csd/, parcels/).
kt-agent_SRC := $(wildcard agent/*.c)

BIN_PATHS := $(BINS:%=$(BUILD)/bin/%)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps run stop check unit unit-san system fuzz bench bench-keyproc \
	install clean \
	format csd parcel

all: $(BIN_PATHS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(COMMON_LIB): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(SERVER_LIB): $(SERVER_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

define bin_rule
$(BUILD)/bin/$(1): $$($(1)_SRC:%.c=$(BUILD)/obj/%.o) $(COMMON_LIB)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$($(1)_LIBS) $$(LIBS)
endef
$(foreach b,$(BINS),$(eval $(call bin_rule,$(b))))

# Unit tests link the server's modules too (a static library: only what a
# test calls is pulled in).
$(BUILD)/tests/%: tests/unit/%.c $(SERVER_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Isrc/server -o $@ $^ $(LDFLAGS) \
		$(keytrustee-server_LIBS) $(LIBS) -lcmocka

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

deps:
	@sh scripts/install-deps.sh

# Build, initialise ./var (first time only), start, print the fingerprint.
run: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/run-local.sh start

stop:
	@sh scripts/run-local.sh stop

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

unit-san:
	@$(MAKE) --no-print-directory SAN=1 unit

system: all
	/usr/bin/python3 -m pytest -q tests/system

check: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory unit-san
	@$(MAKE) --no-print-directory system

# libFuzzer targets over their committed corpora, each bounded in time.
fuzz:
	@sh tests/fuzz/build.sh

# Benchmarks (tests/bench/README.md): never part of check.  BENCH_QUICK=1
# runs every load for 2 s once, to try the harness.
BENCH_HELPER := $(BUILD)/bench/ktbench
$(BENCH_HELPER): tests/bench/ktbench.c $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LIBS)

# The key process's cost per operation (tests/bench/README.md, "Key
# process"): a config dir made by ktadmin init, then kpbench on it.
KPBENCH := $(BUILD)/bench/kpbench
$(KPBENCH): tests/bench/kpbench.c $(SERVER_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Isrc/server -o $@ $^ $(LDFLAGS) \
		$(keytrustee-server_LIBS) $(LIBS)

bench-keyproc: all $(KPBENCH)
	@sh tests/bench/kpbench.sh $(BUILD)

bench: deps
	@sh tests/bench/install
	@$(MAKE) --no-print-directory all $(BENCH_HELPER)
	@$(MAKE) --no-print-directory bench-keyproc
	BENCH_QUICK=$(BENCH_QUICK) /usr/bin/python3 tests/bench/bench.py

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN_PATHS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 scripts/ktbackup.sh scripts/kt-backup-schedule.sh $(DESTDIR)$(PREFIX)/bin/

# The CSD bundle (descriptor + scripts, Cloudera's jar layout) and the
# parcel with its repo manifest (version from the descriptor).
KT_VERSION ?= $(shell sed -n 's/^version: *//p' descriptor/keytrustee.yaml)
csd:
	@sh csd/build.sh --version $(KT_VERSION) --outdir $(BUILD)

parcel: all
	@sh parcels/build.sh --version $(KT_VERSION) --bindir $(BUILD)/bin \
		--outdir $(BUILD)/parcels

format:
	clang-format -i $$(find src agent tests -name '*.[ch]')

clean:
	rm -rf build
