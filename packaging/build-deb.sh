#!/bin/sh
# packaging/build-deb.sh - `make deb`: the Debian packages of keytrustee,
# built with Debian's tools (dpkg-buildpackage, debhelper) from a copy of
# the tree with packaging/debian as its debian/.
#
#   sh packaging/build-deb.sh --version VERSION --outdir DIR
#
# Leaves keytrustee-server_VERSION_ARCH.deb (and keytrustee-client,
# libkeytrustee1, libkeytrustee-dev and their -dbgsym) in DIR, and prints
# the server package's path last.
set -eu

error() {
	echo "error: $1" >&2
	[ $# -lt 2 ] || echo "hint: $2" >&2
	exit 1
}

version= outdir=
while [ $# -gt 0 ]; do
	case $1 in
	--version | --outdir)
		[ $# -gt 1 ] || error "$1 needs a value"
		case $1 in
		--version) version=$2 ;;
		--outdir) outdir=$2 ;;
		esac
		shift 2
		;;
	*) error "unknown argument '$1'" "usage: build-deb.sh --version VERSION --outdir DIR" ;;
	esac
done
[ -n "$version" ] || error "--version is required"
[ -n "$outdir" ] || error "--outdir is required"
case $version in
[0-9]*) ;;
*) error "version '$version' does not start with a digit (Debian's rule)" ;;
esac
for t in dpkg-buildpackage dh dpkg-architecture; do
	command -v "$t" >/dev/null 2>&1 ||
		error "$t not found" "apt-get install debhelper dpkg-dev (scripts/install-deps.sh)"
done

cd "$(dirname "$0")/.."
top=$(pwd -P)
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd -P)
stage=$outdir/src
src=$stage/keytrustee-$version
rm -rf "$stage"
mkdir -p "$src"

# The tree as it is (committed or not), without builds, runs or git.
tar -C "$top" --exclude=./build --exclude=./var --exclude=./.git \
    --exclude='./tests/*/__pycache__' -cf - . | tar -C "$src" -xf -
cp -R packaging/debian "$src/debian"

# Native package: its version is the descriptor's; the date, the last
# commit's when there is one (same tree, same changelog).
date=$(git -C "$top" log -1 --format=%cD 2>/dev/null || true)
[ -n "$date" ] || date=$(date -R)
cat >"$src/debian/changelog" <<CHANGELOG
keytrustee ($version) unstable; urgency=medium

  * Built from the keytrustee source tree by make deb.

 -- keytrustee maintainers <keytrustee@example.org>  $date
CHANGELOG

jobs=$(nproc 2>/dev/null || echo 1)
(cd "$src" && DEB_BUILD_OPTIONS="parallel=$jobs ${DEB_BUILD_OPTIONS:-}" \
    dpkg-buildpackage -us -uc -b) >"$stage/build.log" 2>&1 || {
	tail -n 40 "$stage/build.log" >&2
	error "dpkg-buildpackage failed" "the whole log: $stage/build.log"
}

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
for f in "$stage"/*.deb "$stage"/*.ddeb "$stage"/*.changes "$stage"/*.buildinfo; do
	[ -e "$f" ] && mv "$f" "$outdir/"
done
deb=$outdir/keytrustee-server_${version}_$arch.deb
[ -f "$deb" ] || error "$deb was not built" "see $stage/build.log"
rm -rf "$src"
echo "$deb"
