#!/bin/sh
# csd/build.sh - assemble the CSD bundle KEYTRUSTEE_SERVER-<version>.jar:
# descriptor/keytrustee.yaml and scripts/ at the root of a zip, as
# cm_csds's assembly does (`make csd`).  The descriptor is validated first.
set -eu

usage() {
	echo "usage: csd/build.sh --version V --outdir DIR"
}
version=
outdir=
while [ $# -gt 0 ]; do
	case $1 in
	--version) [ $# -gt 1 ] || { usage >&2; exit 2; }; version=$2; shift 2 ;;
	--outdir) [ $# -gt 1 ] || { usage >&2; exit 2; }; outdir=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "error: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
done
if [ -z "$version" ] || [ -z "$outdir" ]; then
	usage >&2
	exit 2
fi

top=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
if [ -x "$top/build/bin/kt-agent" ]; then
	"$top/build/bin/kt-agent" validate "$top/descriptor/keytrustee.yaml" >/dev/null
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/descriptor" "$stage/scripts"
cp "$top/descriptor/keytrustee.yaml" "$stage/descriptor/"
cp "$top/csd/scripts/"* "$stage/scripts/"
chmod 755 "$stage/scripts/"*
jar=$outdir/KEYTRUSTEE_SERVER-$version.jar
rm -f "$jar"
(cd "$stage" && zip -qrX "$jar" descriptor scripts)
echo "$jar"
