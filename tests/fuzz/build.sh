#!/bin/sh
# tests/fuzz/build.sh - build every libFuzzer target under tests/fuzz/ into
# build/fuzz/ and run each one for a bounded time over its committed corpus.
#
#   sh tests/fuzz/build.sh            build and run every target (make fuzz)
#   sh tests/fuzz/build.sh conf       only fuzz_conf
#   sh tests/fuzz/build.sh auth       only fuzz_auth (Authorization header)
#   sh tests/fuzz/build.sh descriptor only fuzz_descriptor (the YAML descriptor)
#   sh tests/fuzz/build.sh clientkey  only fuzz_clientkey (a client's public key)
#   sh tests/fuzz/build.sh httpmsg    only fuzz_httpmsg (HTTP requests)
#   sh tests/fuzz/build.sh pgpmsg     only fuzz_pgpmsg (a legacy client's OpenPGP)
#   sh tests/fuzz/build.sh depbody    only fuzz_depbody (POST /v1/deposits's body:
#                                     the fast path against jansson's reading)
#   sh tests/fuzz/build.sh contact    only fuzz_contact (the contact link's token,
#                                     its form's key, armor check, HTML escaping)
#   sh tests/fuzz/build.sh depcache   only fuzz_depcache (the deposit cache's
#                                     table against a model of its contents)
#   FUZZ_TIME=300 sh tests/fuzz/build.sh     run longer (seconds per target)
#   FUZZ_BUILD_ONLY=1 sh tests/fuzz/build.sh build, do not run
#
# Target tests/fuzz/fuzz_NAME.c uses the seeds in tests/fuzz/corpus/NAME/.
# The committed corpus is only read; what libFuzzer finds goes to
# build/fuzz/corpus-NAME/, crashes to build/fuzz/crash-NAME-*.  An input
# that once failed is kept in the corpus (regress-*), so every run tries
# it again.  Targets that check a property (fuzz.h) abort when it fails,
# which libFuzzer reports like any crash.  Exit status: 0 all ran clean,
# 1 a target failed (or did not build), 77 no clang or no libFuzzer
# runtime (tests/system/test_fuzz_smoke.py, make check's short pass with
# FUZZ_TIME=5, skips then; scripts/install-deps.sh installs both).
set -eu

cd "$(dirname "$0")/../.."
top=$(pwd)
out=build/fuzz
time=${FUZZ_TIME:-20}
CC_FUZZ=${CC_FUZZ:-clang}

error() {
	echo "error: $1" >&2
	[ $# -lt 2 ] || echo "hint: $2" >&2
	exit "$fail"
}

# No fuzzer toolchain: exit 77, which the smoke test reports as a skip.
fail=77
command -v "$CC_FUZZ" >/dev/null 2>&1 ||
	error "$CC_FUZZ not found" "apt-get install -y clang"

# libFuzzer's runtime ships apart from clang on Debian.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
	'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
	'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)' \
	'{ (void)d; (void)n; return 0; }' >"$probe/p.c"
"$CC_FUZZ" -fsanitize=fuzzer -o "$probe/p" "$probe/p.c" >/dev/null 2>&1 ||
	error "$CC_FUZZ cannot link a libFuzzer target (no libclang_rt.fuzzer)" \
	    "apt-get install -y --no-install-recommends libclang-rt-$("$CC_FUZZ" -dumpversion | cut -d. -f1)-dev"
fail=1

# The same packages and include paths as the top Makefile.
# shellcheck disable=SC2016
pkgs=$(printf 'kt-print-pkgs:\n\t@echo $(PKGS)\n' |
	make -s --no-print-directory -f Makefile -f - kt-print-pkgs 2>/dev/null) ||
	pkgs="openssl libpq gpgme libevent libevent_openssl libevent_pthreads jansson"
# shellcheck disable=SC2086
pkg_cflags=$(pkg-config --cflags $pkgs)
# shellcheck disable=SC2086
pkg_libs=$(pkg-config --libs $pkgs)

CFLAGS_FUZZ="-g -O1 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
	-fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -Isrc/common -Isrc/server"

# The library sources each target is built from (compiled directly, with
# the fuzzer's instrumentation, not taken from libkeytrustee-common.a).
sources_for() {
	case $1 in
	conf) echo src/common/conf.c src/common/util.c src/common/log.c ;;
	# The Authorization header's parser: authhdr.c and its helpers.
	auth) echo src/server/authhdr.c src/common/crypto.c src/common/util.c \
	    src/common/log.c ;;
	descriptor) echo agent/descriptor.c src/common/util.c src/common/log.c ;;
	# The client key check: clientkey.c over librnp.
	clientkey) echo src/server/clientkey.c src/common/pgpkey.c -lrnp ;;
	# The HTTP request parser: self-contained.
	httpmsg) echo src/common/httpmsg.c ;;
	# Armor, public keys and messages of the legacy protocol.
	pgpmsg) echo src/common/pgpmsg.c src/common/pgpmsg_armor.c \
	    src/common/pgpmsg_pubkey.c src/common/pgpkey.c src/common/pgpsig.c \
	    src/common/crypto.c src/common/util.c src/common/log.c -lz ;;
	# The contact page's token, form key, armor check and escaping.
	contact) echo src/server/contact_form.c src/common/crypto.c \
	    src/common/util.c src/common/log.c ;;
	# The body of POST /v1/deposits: api.c over jansson.
	depbody) echo src/server/api.c src/common/crypto.c src/common/util.c \
	    src/common/log.c ;;
	# The deposit cache's table and the deposits it holds; the store
	# only for the filler thread the target does not start.
	depcache) echo src/server/depcache.c src/server/deposit.c \
	    src/server/store/conn.c src/server/store/deposits.c \
	    src/server/store/audit.c src/common/db.c \
	    src/common/crypto.c src/common/util.c \
	    src/common/log.c ;;
	*) echo src/common/conf.c src/common/util.c src/common/log.c ;;
	esac
}

mkdir -p "$out"
if [ $# -gt 0 ]; then
	targets=$*
else
	targets=
	for f in tests/fuzz/fuzz_*.c; do
		[ -e "$f" ] || continue
		n=${f#tests/fuzz/fuzz_}
		targets="$targets ${n%.c}"
	done
fi
[ -n "$targets" ] || error "no tests/fuzz/fuzz_*.c targets"

status=0
for t in $targets; do
	src=tests/fuzz/fuzz_$t.c
	[ -f "$src" ] || error "$src: no such target"
	echo "== build $out/fuzz_$t"
	# shellcheck disable=SC2046,SC2086
	"$CC_FUZZ" $CFLAGS_FUZZ $pkg_cflags -o "$out/fuzz_$t" "$src" \
	    $(sources_for "$t") $pkg_libs -pthread
	[ -z "${FUZZ_BUILD_ONLY:-}" ] || continue

	seeds=tests/fuzz/corpus/$t
	[ -d "$seeds" ] || error "$seeds: no corpus for fuzz_$t"
	mkdir -p "$out/corpus-$t"
	echo "== run fuzz_$t for ${time}s over $seeds"
	if ! "$out/fuzz_$t" -max_total_time="$time" -max_len=65536 \
	    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix="$top/$out/crash-$t-" \
	    "$out/corpus-$t" "$seeds" >"$out/fuzz_$t.log" 2>&1; then
		tail -n 40 "$out/fuzz_$t.log" >&2
		echo "error: fuzz_$t failed; input saved as $out/crash-$t-*" >&2
		echo "hint: reproduce with $out/fuzz_$t $out/crash-$t-<hash>" >&2
		status=1
		continue
	fi
	grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|Done )' \
	    "$out/fuzz_$t.log" || true
	echo "ok: fuzz_$t (log: $out/fuzz_$t.log)"
done
exit $status
