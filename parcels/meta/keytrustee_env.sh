#!/bin/sh
# The KEYTRUSTEE_SERVER parcel's defines script: sourced by the runners
# (csd/scripts/control.sh) with PARCELS_ROOT and PARCEL_DIRNAME set.  It
# only exports; it never exits.
KEYTRUSTEE_SERVER_DIRNAME=${PARCEL_DIRNAME:-"KEYTRUSTEE_SERVER-@VERSION@"}
export KEYTRUSTEE_SERVER_HOME="$PARCELS_ROOT/$KEYTRUSTEE_SERVER_DIRNAME"
export KEYTRUSTEE_SERVER_VERSION="@VERSION@"
export KEYTRUSTEE_HOME="${KEYTRUSTEE_HOME:-/var/lib/keytrustee}"
