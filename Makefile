# keytrustee - see README.md.  `make run` and `make check` are the two
# commands an operator needs on a fresh Debian 12 machine.

PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
CC      ?= cc

PKGS := openssl libpq gpgme libevent libevent_openssl libevent_pthreads jansson \
	libcurl yaml-0.1 zlib

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
# The client is a thin main over libkeytrustee, linked statically so that
# build/bin/keytrustee-client (and the parcel's copy) runs on its own.
keytrustee-client_SRC := $(wildcard src/client/*.c)
keytrustee-client_ARCHIVES = $(LIBKT_A)
# The host agent of the managed service (descriptor/, csd/, parcels/).
kt-agent_SRC := $(wildcard agent/*.c)

BIN_PATHS := $(BINS:%=$(BUILD)/bin/%)

# libkeytrustee (src/libkeytrustee/): the client library, installed with
# its header and a pkg-config file.  Its files are compiled with
# -fvisibility=hidden: what keytrustee.h marks KT_EXPORT, the kt_* API, is
# all either flavour exports.
#  - libkeytrustee.a is one object, linked (ld -r) from the library's
#    objects and the common objects they use, in which every other symbol
#    is made local: a program needs no libkeytrustee-common.a beside it,
#    and none of its names (log_*, fatal, ...) can clash with the program's.
#  - libkeytrustee.so.$(LIBKT_MAJOR) is linked from position-independent
#    objects built apart, under $(BUILD)/pic/.
# What the library itself links, for the .so and for keytrustee.pc: the
# packages of Requires.private and the flags of Libs.private.  libcurl is a
# plain -lcurl, not a package: `pkg-config --static` would add the
# Libs.private of Debian's libcurl.pc (-lrtmp -lssh2 -lldap ... for a static
# libcurl.a), whose -dev packages libcurl4-openssl-dev does not pull in, and
# a static link of libkeytrustee.a needs only libcurl itself.
LIBKT_MAJOR := 1
LIBKT_VERSION := $(LIBKT_MAJOR).0.0
LIBKT_REQUIRES := libcrypto gpgme jansson
LIBKT_LIBS_PRIVATE := -lcurl -pthread
LIBKT_SRC := $(wildcard src/libkeytrustee/*.c)
LIBKT_OBJ := $(LIBKT_SRC:%.c=$(BUILD)/obj/%.o)
LIBKT_A := $(BUILD)/lib/libkeytrustee.a
LIBKT_SO := $(BUILD)/lib/libkeytrustee.so
LIBKT_SONAME := libkeytrustee.so.$(LIBKT_MAJOR)
LIBKT_SOFILE := libkeytrustee.so.$(LIBKT_VERSION)
LIBKT_PIC_OBJ := $(LIBKT_SRC:%.c=$(BUILD)/pic/%.o)
COMMON_PIC_LIB := $(BUILD)/lib/libkeytrustee-common_pic.a
LIBKT_HIDDEN := -fvisibility=hidden
OBJCOPY ?= objcopy

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps run stop check unit unit-san system fuzz bench bench-keyproc \
	install clean \
	format csd parcel deb

all: $(BIN_PATHS) $(LIBKT_A) $(LIBKT_SO)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# Position-independent objects, only for libkeytrustee.so.
$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC $(LIBKT_HIDDEN) -MMD -MP -c -o $@ $<

$(LIBKT_OBJ): CFLAGS += $(LIBKT_HIDDEN)

$(COMMON_LIB): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(SERVER_LIB): $(SERVER_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

# libkeytrustee.a: kt_* stays global, but what is hidden (the library's
# internals) and every name not kt_* (the common objects) turns local.
$(LIBKT_A): $(LIBKT_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(LD) -r -o $(BUILD)/obj/libkeytrustee.o $^
	$(OBJCOPY) --localize-hidden --wildcard --keep-global-symbol='kt_*' \
		$(BUILD)/obj/libkeytrustee.o
	rm -f $@
	ar rcs $@ $(BUILD)/obj/libkeytrustee.o

$(COMMON_PIC_LIB): $(COMMON_SRC:%.c=$(BUILD)/pic/%.o)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

# The shared library, with its SONAME and the links ldconfig and the
# linker look for (libkeytrustee.so.1, libkeytrustee.so).
$(BUILD)/lib/$(LIBKT_SOFILE): $(LIBKT_PIC_OBJ) $(COMMON_PIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,$(LIBKT_SONAME) -Wl,--no-undefined \
		$(LDFLAGS) -o $@ $^ $(shell pkg-config --libs $(LIBKT_REQUIRES)) \
		$(LIBKT_LIBS_PRIVATE)

$(LIBKT_SO): $(BUILD)/lib/$(LIBKT_SOFILE)
	ln -sf $(LIBKT_SOFILE) $(BUILD)/lib/$(LIBKT_SONAME)
	ln -sf $(LIBKT_SONAME) $@

# A binary: its objects, the archives of ours it names in NAME_ARCHIVES,
# the common library, then NAME_LIBS and the packages' libraries.
define bin_rule
$(BUILD)/bin/$(1): $$($(1)_SRC:%.c=$(BUILD)/obj/%.o) $$($(1)_ARCHIVES) \
	$(COMMON_LIB)
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

-include $(shell find $(BUILD)/obj $(BUILD)/pic -name '*.d' 2>/dev/null)

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

# The driver of pgpmsg for tests/system/test_pgpmsg_interop.py (GnuPG and
# librnp against src/common/pgpmsg*.c).
PGPMSG_TOOL := $(BUILD)/tests/pgpmsg_tool
$(PGPMSG_TOOL): tests/unit/pgpmsg_tool.c $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LIBS)

system: all $(PGPMSG_TOOL)
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

# make install [PREFIX=/usr/local] [DESTDIR=]: the binaries and scripts;
# libkeytrustee (both flavours, shared libraries 0644 as Debian installs
# them), its header and keytrustee.pc (made from keytrustee.pc.in for this
# PREFIX); every manual page docs/man/NAME.N as share/man/manN/NAME.N; the
# account script in LIBEXECDIR/keytrustee; and the keytrusteed and
# keytrustee-db services (packaging/): init scripts in INITDIR and a
# logrotate file (both under /etc whatever PREFIX, where `service` and
# logrotate look), systemd units in SYSTEMDUNITDIR (/lib/systemd/system for
# PREFIX=/usr, else PREFIX/lib/systemd/system, which systemd also reads),
# each naming the binaries of PREFIX/bin.
MAN_PAGES := $(wildcard docs/man/*.[1-8])
LIBEXECDIR ?= $(PREFIX)/libexec
INITDIR ?= /etc/init.d
LOGROTATEDIR ?= /etc/logrotate.d
SYSTEMDUNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
SERVICES := keytrusteed keytrustee-db
SERVICE_SED = -e 's|@BINDIR@|$(PREFIX)/bin|g' -e 's|@INITDIR@|$(INITDIR)|g'
LIBKT_PC_SED = -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(KT_VERSION)|g' \
	-e 's|@REQUIRES_PRIVATE@|$(LIBKT_REQUIRES)|g' \
	-e 's|@LIBS_PRIVATE@|$(LIBKT_LIBS_PRIVATE)|g'
install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN_PATHS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 scripts/ktbackup.sh scripts/kt-backup-schedule.sh $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 0644 $(LIBKT_A) $(BUILD)/lib/$(LIBKT_SOFILE) $(DESTDIR)$(PREFIX)/lib/
	ln -sf $(LIBKT_SOFILE) $(DESTDIR)$(PREFIX)/lib/$(LIBKT_SONAME)
	ln -sf $(LIBKT_SONAME) $(DESTDIR)$(PREFIX)/lib/libkeytrustee.so
	install -m 0644 src/libkeytrustee/keytrustee.h $(DESTDIR)$(PREFIX)/include/
	sed $(LIBKT_PC_SED) src/libkeytrustee/keytrustee.pc.in >$(BUILD)/keytrustee.pc
	install -m 0644 $(BUILD)/keytrustee.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	@set -e; for page in $(MAN_PAGES); do \
		dir=$(DESTDIR)$(PREFIX)/share/man/man$${page##*.}; \
		echo "install -m 0644 $$page $$dir/"; \
		install -d $$dir; install -m 0644 $$page $$dir/; \
	done
	install -d $(DESTDIR)$(LIBEXECDIR)/keytrustee
	install -m 0755 scripts/kt-account.sh $(DESTDIR)$(LIBEXECDIR)/keytrustee/
	@mkdir -p $(BUILD)/packaging
	install -d $(DESTDIR)$(INITDIR) $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(LOGROTATEDIR)
	@set -e; for s in $(SERVICES); do \
		sed $(SERVICE_SED) packaging/$$s.init.in >$(BUILD)/packaging/$$s.init; \
		sed $(SERVICE_SED) packaging/$$s.service.in >$(BUILD)/packaging/$$s.service; \
		echo "install $$s: $(DESTDIR)$(INITDIR)/$$s $(DESTDIR)$(SYSTEMDUNITDIR)/$$s.service"; \
		install -m 0755 $(BUILD)/packaging/$$s.init $(DESTDIR)$(INITDIR)/$$s; \
		install -m 0644 $(BUILD)/packaging/$$s.service $(DESTDIR)$(SYSTEMDUNITDIR)/; \
	done
	install -m 0644 packaging/keytrustee-server.logrotate $(DESTDIR)$(LOGROTATEDIR)/keytrustee-server
	@# Installed on this host (no DESTDIR) by root: the service account too.
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
		$(LIBEXECDIR)/keytrustee/kt-account.sh; fi

# The CSD bundle (descriptor + scripts, Cloudera's jar layout) and the
# parcel with its repo manifest (version from the descriptor).
KT_VERSION ?= $(shell sed -n 's/^version: *//p' descriptor/keytrustee.yaml)
csd:
	@sh csd/build.sh --version $(KT_VERSION) --outdir $(BUILD)

parcel: all
	@sh parcels/build.sh --version $(KT_VERSION) --bindir $(BUILD)/bin \
		--outdir $(BUILD)/parcels

# The Debian packages (packaging/debian; debhelper builds a copy of the
# tree): $(BUILD)/deb/keytrustee-server_$(KT_VERSION)_ARCH.deb and the
# client's and libkeytrustee's beside it.
deb:
	@sh packaging/build-deb.sh --version $(KT_VERSION) --outdir $(BUILD)/deb

format:
	clang-format -i $$(find src agent tests -name '*.[ch]')

clean:
	rm -rf build
