#!/bin/sh
# control.sh - the runners of the KEYTRUSTEE_SERVER descriptor
# (descriptor/keytrustee.yaml).  kt-agent runs it from the role's process
# dir (CONF_DIR) with the parcel's environment: PARCELS_ROOT,
# PARCEL_DIRNAMES and SCM_DEFINES_SCRIPTS (the parcel's meta/keytrustee_env.sh,
# sourced here), plus the runner's environmentVariables (KT_*).  Role
# starts `exec` the real binary so the agent supervises the real pid.
set -eu

# A time marker on both streams (logs/stdout.log, logs/stderr.log).
date
date 1>&2

error() {
	echo "error: $1" >&2
	[ $# -lt 2 ] || echo "hint: $2" >&2
	exit 1
}

need() {
	for v in "$@"; do
		eval "val=\${$v:-}"
		[ -n "$val" ] || error "$v is not set" "the descriptor's runner sets it"
	done
}

[ -n "${SCM_DEFINES_SCRIPTS:-}" ] ||
	error "SCM_DEFINES_SCRIPTS is not set" "run this through kt-agent"
# The defines script reads PARCEL_DIRNAME (the agent passes PARCEL_DIRNAMES).
# shellcheck disable=SC2034
PARCEL_DIRNAME=${PARCEL_DIRNAMES:-}
old_ifs=$IFS
IFS=:
for script in $SCM_DEFINES_SCRIPTS; do
	IFS=$old_ifs
	[ -r "$script" ] || error "the parcel's defines script $script is missing"
	# shellcheck disable=SC1090
	. "$script"
done
IFS=$old_ifs
[ -n "${KEYTRUSTEE_SERVER_HOME:-}" ] ||
	error "the parcel's defines script did not set KEYTRUSTEE_SERVER_HOME"
BIN=$KEYTRUSTEE_SERVER_HOME/bin
echo "Using $CONF_DIR as conf dir, parcel $KEYTRUSTEE_SERVER_HOME"

[ $# -gt 0 ] || error "a command is required" \
	"start_server, start_db, setup_db, setup_db_passive, backup, enable_sync_replication"
cmd=$1
shift

case $cmd in
start_server)
	need KT_CONFDIR KT_PORT
	exec "$BIN/keytrustee-server" --confdir "$KT_CONFDIR" --port "$KT_PORT"
	;;
start_db)
	need KT_DB_ROOT KT_DB_PORT
	# ktadmin switches to the keytrustee account and execs postgres.
	exec "$BIN/ktadmin" db --start --pg-rootdir "$KT_DB_ROOT" --port "$KT_DB_PORT"
	;;
setup_db)
	need KT_CONFDIR KT_DB_ROOT KT_DB_PORT KT_USER
	if [ ! -f "$KT_CONFDIR/keytrustee.conf" ]; then
		"$BIN/ktadmin" init --confdir "$KT_CONFDIR" ${KT_HOST:+--hostname "$KT_HOST"}
	else
		echo "$KT_CONFDIR is initialized; keeping its keys"
	fi
	"$BIN/ktadmin" db --bootstrap --confdir "$KT_CONFDIR" \
		--pg-rootdir "$KT_DB_ROOT" --port "$KT_DB_PORT"
	# The DB_ACTIVE role runs it from now on.
	"$BIN/ktadmin" db --stop --pg-rootdir "$KT_DB_ROOT"
	# The server runs as the service account: it owns its config dir
	# (and no gpg-agent of ours stays on it).
	gpgconf --homedir "$KT_CONFDIR" --kill all 2>/dev/null || true
	chown -R "$KT_USER:" "$KT_CONFDIR"
	echo "Key Trustee Server database set up in $KT_DB_ROOT (port $KT_DB_PORT)"
	;;
setup_db_passive)
	need KT_CONFDIR KT_DB_ROOT KT_DB_PORT KT_MASTER_HOST KT_MASTER_PORT KT_USER
	"$BIN/ktadmin" db --bootstrap --passive --confdir "$KT_CONFDIR" \
		--pg-rootdir "$KT_DB_ROOT" --port "$KT_DB_PORT" \
		--master-host "$KT_MASTER_HOST" --master-port "$KT_MASTER_PORT"
	"$BIN/ktadmin" db --stop --pg-rootdir "$KT_DB_ROOT"
	gpgconf --homedir "$KT_CONFDIR" --kill all 2>/dev/null || true
	chown -R "$KT_USER:" "$KT_CONFDIR"
	;;
enable_sync_replication)
	need KT_CONFDIR KT_DB_ROOT
	exec "$BIN/ktadmin" db --enable-synchronous-replication \
		--confdir "$KT_CONFDIR" --pg-rootdir "$KT_DB_ROOT"
	;;
backup)
	need KT_CONFDIR KT_DB_PORT KT_BACKUP_DIR KT_BACKUP_ROLL KT_BACKUP_CRON_FILE KT_USER
	if [ -n "${KT_BACKUP_RECIPIENT:-}" ]; then
		set -- "--gpg-recipient=$KT_BACKUP_RECIPIENT"
		sched="--gpg-recipient"
	else
		set -- --cleartext
		sched=--cleartext
	fi
	home=$(getent passwd "$KT_USER" | cut -d: -f6)
	# ktbackup.sh runs as the service account (it owns the conf dir and
	# the database), the schedule is installed as root (a cron.d file).
	runuser -u "$KT_USER" -- env HOME="$home" "$BIN/ktbackup.sh" \
		--confdir="$KT_CONFDIR" --database-port="$KT_DB_PORT" \
		--output="$KT_BACKUP_DIR" --roll="$KT_BACKUP_ROLL" "$@"
	# The cron job calls the active parcel's script (the symlink), so
	# it follows upgrades.
	if [ "$sched" = --cleartext ]; then
		"$BIN/kt-backup-schedule.sh" install --cron-file "$KT_BACKUP_CRON_FILE" \
			--user "$KT_USER" --output "$KT_BACKUP_DIR" --roll "$KT_BACKUP_ROLL" \
			--confdir "$KT_CONFDIR" --cleartext \
			--ktbackup "$PARCELS_ROOT/KEYTRUSTEE_SERVER/bin/ktbackup.sh"
	else
		"$BIN/kt-backup-schedule.sh" install --cron-file "$KT_BACKUP_CRON_FILE" \
			--user "$KT_USER" --output "$KT_BACKUP_DIR" --roll "$KT_BACKUP_ROLL" \
			--confdir "$KT_CONFDIR" --gpg-recipient "$KT_BACKUP_RECIPIENT" \
			--ktbackup "$PARCELS_ROOT/KEYTRUSTEE_SERVER/bin/ktbackup.sh"
	fi
	;;
*)
	error "unknown command '$cmd'" \
		"start_server, start_db, setup_db, setup_db_passive, backup, enable_sync_replication"
	;;
esac
