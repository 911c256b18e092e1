#!/bin/sh
# parcels/build.sh - build KEYTRUSTEE_SERVER-<version>-bookworm.parcel (a
# gzip tar with one top dir KEYTRUSTEE_SERVER-<version>/: bin/, lib/,
# libexec/kt-account.sh, PG_DB/, meta/parcel.json, meta/keytrustee_env.sh)
# and (re)write the repo's manifest.json with the SHA-1 of every parcel in
# the output dir, as cm_ext's make_manifest does (`make parcel`).
#
# PG_DB/opt/postgres/<major>/ is the PostgreSQL the parcel runs with,
# copied from Debian's postgresql-<major> (the newest installed, or
# --pg-major N) in Debian's own relative layout, so that its programs find
# their share/ and lib/ beside them wherever the parcel is unpacked:
#   lib/postgresql/<major>/bin, lib/postgresql/<major>/lib,
#   share/postgresql/<major>, bin -> lib/postgresql/<major>/bin,
#   lib/libpq.so.5 (from libpq5), which every bundled program and module
#   finds through its RUNPATH $ORIGIN/../../.. (set with patchelf),
#   HOST-LIBRARIES: every other shared library they load, with the Debian
#   package it comes from on the host (glibc, OpenSSL, ICU, ...).
# PG_DB/opt/postgres/9.3 -> <major>: the admin guide's path
# (PG_DB/opt/postgres/9.3/bin/psql).
set -eu

usage() {
	echo "usage: parcels/build.sh --version V --bindir DIR --outdir DIR [--pg-major N]"
}
version=
bindir=
outdir=
pgmajor=
while [ $# -gt 0 ]; do
	case $1 in
	--version | --bindir | --outdir | --pg-major)
		[ $# -gt 1 ] || { usage >&2; exit 2; }
		case $1 in
		--version) version=$2 ;;
		--bindir) bindir=$2 ;;
		--outdir) outdir=$2 ;;
		--pg-major) pgmajor=$2 ;;
		esac
		shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "error: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
done
if [ -z "$version" ] || [ -z "$bindir" ] || [ -z "$outdir" ]; then
	usage >&2
	exit 2
fi
case $version in
*[!A-Za-z0-9._+~]* | '') echo "error: bad version '$version'" >&2; exit 2 ;;
esac

if [ -z "$pgmajor" ]; then
	pgmajor=$(ls /usr/lib/postgresql 2>/dev/null | grep -x '[0-9][0-9]*' | sort -n | tail -n 1)
fi
case $pgmajor in
'' | *[!0-9]*)
	echo "error: no PostgreSQL to bundle under /usr/lib/postgresql" >&2
	echo "hint: install Debian's postgresql package (scripts/install-deps.sh)" >&2
	exit 1 ;;
esac
pgsrc=/usr/lib/postgresql/$pgmajor
for need in "$pgsrc/bin/initdb" "$pgsrc/lib" "/usr/share/postgresql/$pgmajor"; do
	[ -e "$need" ] || { echo "error: $need is missing (postgresql-$pgmajor)" >&2; exit 1; }
done
command -v patchelf >/dev/null || {
	echo "error: patchelf is not installed (scripts/install-deps.sh)" >&2
	exit 1
}
libpq=$(ldd "$pgsrc/bin/psql" | sed -n 's/^[[:space:]]*libpq\.so\.5 => \([^ ]*\) .*/\1/p')
[ -n "$libpq" ] || { echo "error: cannot find the libpq.so.5 psql loads" >&2; exit 1; }

top=$(cd "$(dirname "$0")/.." && pwd)
name=KEYTRUSTEE_SERVER
dir=$name-$version
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$dir/bin" "$stage/$dir/lib" "$stage/$dir/meta"
for b in keytrustee-server ktadmin keytrustee-orgtool keytrustee-client kt-agent; do
	[ -x "$bindir/$b" ] || { echo "error: $bindir/$b is not built" >&2; exit 1; }
	install -m 0755 "$bindir/$b" "$stage/$dir/bin/"
done
install -m 0755 "$top/scripts/ktbackup.sh" "$top/scripts/kt-backup-schedule.sh" \
	"$stage/$dir/bin/"
# The account's one maker, run by kt-agent parcel activate.
install -d "$stage/$dir/libexec"
install -m 0755 "$top/scripts/kt-account.sh" "$stage/$dir/libexec/"

# PostgreSQL (see the top of this file).
pg=$stage/$dir/PG_DB/opt/postgres/$pgmajor
mkdir -p "$pg/lib/postgresql/$pgmajor" "$pg/share/postgresql"
cp -a "$pgsrc/bin" "$pgsrc/lib" "$pg/lib/postgresql/$pgmajor/"
cp -a "/usr/share/postgresql/$pgmajor" "$pg/share/postgresql/"
cp -L "$libpq" "$pg/lib/libpq.so.5"
chmod 0644 "$pg/lib/libpq.so.5"
ln -s "lib/postgresql/$pgmajor/bin" "$pg/bin"
ln -s "$pgmajor" "$stage/$dir/PG_DB/opt/postgres/9.3"
elfs=$(find "$pg/lib/postgresql/$pgmajor/bin" "$pg/lib/postgresql/$pgmajor/lib" \
	-type f -exec sh -c 'head -c 4 "$1" | grep -q "ELF"' sh {} \; -print)
for f in $elfs; do
	# shellcheck disable=SC2016
	patchelf --set-rpath '$ORIGIN/../../..' "$f"
done
# shellcheck disable=SC2086
hostlibs=$(ldd $elfs 2>/dev/null |
	sed -n 's/^[[:space:]]*[^ ]* => \(\/[^ ]*\) .*/\1/p' | grep -v '/libpq\.so' | sort -u)
# One dpkg -S for all (by the path, or by the file a symlink names).
# shellcheck disable=SC2046,SC2086
owners=$(dpkg -S $hostlibs $(readlink -f $hostlibs) 2>/dev/null || true)
{
	echo "# Shared libraries the bundled PostgreSQL takes from the host"
	echo "# (path on the build host, Debian package); libpq.so.5 is bundled."
	for lib in $hostlibs; do
		real=$(readlink -f "$lib")
		pkg=$(printf '%s\n' "$owners" | awk -v a="$lib" -v b="$real" \
			'$NF == a || $NF == b { p = $1; sub(/:.*/, "", p); print p; exit }')
		echo "$lib ${pkg:-unknown}"
	done
} >"$pg/HOST-LIBRARIES"
for f in parcel.json keytrustee_env.sh; do
	sed "s/@VERSION@/$version/g" "$top/parcels/meta/$f" >"$stage/$dir/meta/$f"
done
chmod 0644 "$stage/$dir/meta/parcel.json"
chmod 0755 "$stage/$dir/meta/keytrustee_env.sh"
parcel=$outdir/$dir-bookworm.parcel
tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$parcel.tmp" "$dir"
mv -f "$parcel.tmp" "$parcel"

# manifest.json over every parcel of the repo dir.
{
	printf '{\n  "lastUpdated": %s000,\n  "parcels": [' "$(date +%s)"
	sep=
	for p in "$outdir"/*.parcel; do
		pn=$(basename "$p")
		pv=${pn#"$name"-}
		pv=${pv%-*.parcel}
		hash=$(sha1sum "$p" | cut -d' ' -f1)
		printf '%s\n    {"parcelName": "%s", "hash": "%s", "depends": "", "replaces": "", "conflicts": "",\n     "components": [{"name": "keytrustee-server", "version": "%s", "pkg_version": "%s"}]}' \
			"$sep" "$pn" "$hash" "$pv" "$pv"
		sep=,
	done
	printf '\n  ]\n}\n'
} >"$outdir/manifest.json.tmp"
mv -f "$outdir/manifest.json.tmp" "$outdir/manifest.json"
echo "$parcel"
