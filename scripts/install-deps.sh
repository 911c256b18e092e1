#!/bin/sh
# Install, idempotently, the Debian packages keytrustee builds and tests with
# (DESIGN.md §2), man-db and groff-base, which render docs/man/ for the
# docs test, zlib1g-dev for the ZLIB packets of OpenPGP messages
# (pgpmsg.c), rnp, librnp's CLI, for their interoperability test, and
# python3-cryptography, which the legacy protocol's test client
# (tests/system/ztclient.py) is written over, and clang with libFuzzer's
# runtime (libclang-rt-dev), which tests/fuzz/build.sh builds the fuzz
# targets with (make fuzz; make check's short pass).  Only what is missing is
# installed; `apt-get update` runs once, and only when something is
# missing.  Creates (or mends) the `keytrustee` service account
# PostgreSQL runs as, through scripts/kt-account.sh.
set -eu

PKGS="build-essential pkg-config libssl-dev openssl libpq-dev postgresql
libgpgme-dev gnupg libyaml-dev libcurl4-openssl-dev cron libevent-dev
libjansson-dev libcmocka-dev python3 python3-pytest softhsm2 curl ca-certificates
procps psmisc zip unzip python3-aiosmtpd python3-cryptography rsync librnp-dev
man-db groff-base zlib1g-dev rnp clang libclang-rt-dev"

# patchelf gives the PostgreSQL programs the parcel bundles (parcels/build.sh)
# a RUNPATH to the libpq beside them.
PKGS="$PKGS patchelf"

# testssl.sh checks the server's TLS policy from outside
# (tests/system/test_tls_ciphers.py).
PKGS="$PKGS testssl.sh"

# make deb builds the Debian packages with debhelper (dpkg-buildpackage),
# and tests/system/test_packaging.py checks them with lintian.
PKGS="$PKGS debhelper lintian"

# The admin guide's commands as printed (tests/system/test_guide.py): sudo,
# postconf/service postfix (postfix), rsync to root@ the passive server
# (openssh-server), and pexpect to answer their prompts on a terminal.
PKGS="$PKGS sudo postfix openssh-server python3-pexpect"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "error: missing Debian packages:$missing" >&2
		echo "hint: run this script as root, or: apt-get install$missing" >&2
		exit 1
	fi
	echo "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing
fi

# The service account the private PostgreSQL runs as (it refuses root),
# made or mended by the one script that does it everywhere.
if [ "$(id -u)" -eq 0 ]; then
	sh "$(dirname "$0")/kt-account.sh"
elif ! getent passwd keytrustee >/dev/null; then
	echo "error: the service account 'keytrustee' does not exist" >&2
	echo "hint: run this script as root once to create it" >&2
	exit 1
fi
exit 0
