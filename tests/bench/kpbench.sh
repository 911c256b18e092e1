#!/bin/sh
# kpbench.sh BUILD - run the key process benchmark (kpbench.c) on a fresh
# config dir made by 'ktadmin init' in a temporary directory, removed (and
# its gpg-agent stopped) on every exit.  BENCH_QUICK=1: a tenth of the
# iterations.
set -eu
build=${1:-build}
tmp=$(mktemp -d /tmp/kpbench.XXXXXX)
chmod 755 "$tmp"
cleanup() {
	gpgconf --homedir "$tmp/conf" --kill all >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
"$build/bin/ktadmin" init --confdir "$tmp/conf" --hostname localhost \
	>"$tmp/init.log" 2>&1 || { cat "$tmp/init.log" >&2; exit 1; }
scale=1
[ "${BENCH_QUICK:-}" = 1 ] && scale=0.1
"$build/bench/kpbench" --confdir "$tmp/conf" --scale "$scale"
