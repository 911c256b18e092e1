#!/bin/sh
# parcels/build.sh - build KEYTRUSTEE_SERVER-<version>-bookworm.parcel (a
# gzip tar with one top dir KEYTRUSTEE_SERVER-<version>/: bin/, lib/,
# meta/parcel.json, meta/keytrustee_env.sh) and (re)write the repo's
# manifest.json with the SHA-1 of every parcel in the output dir, as
# cm_ext's make_manifest does (`make parcel`).
set -eu

usage() {
	echo "usage: parcels/build.sh --version V --bindir DIR --outdir DIR"
}
version=
bindir=
outdir=
while [ $# -gt 0 ]; do
	case $1 in
	--version | --bindir | --outdir)
		[ $# -gt 1 ] || { usage >&2; exit 2; }
		case $1 in
		--version) version=$2 ;;
		--bindir) bindir=$2 ;;
		--outdir) outdir=$2 ;;
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
