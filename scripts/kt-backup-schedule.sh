#!/bin/sh
# kt-backup-schedule.sh - install, show or remove the hourly Key Trustee
# Server backup: a cron.d file (default /etc/cron.d/keytrustee-backup) whose
# one job runs ktbackup.sh as the service account every hour, keeping the
# latest 10 backups (--roll=10), like the guide's crontab example.
set -eu

prog=kt-backup-schedule.sh
DEFAULT_CRON_FILE=/etc/cron.d/keytrustee-backup

usage() {
	cat <<EOF
Usage: $prog install [--cron-file PATH] [--user USER] [--output DIR] [--roll N]
                        (--gpg-recipient R | --cleartext) [--confdir DIR]
                        [--ktbackup PATH]
       $prog remove [--cron-file PATH]
       $prog show [--cron-file PATH]

install writes a cron.d file (mode 0644, replaced atomically) running, at
minute 0 of every hour, as USER:
  ktbackup.sh --confdir=DIR --gpg-recipient='R' --quiet --output=DIR --roll=N

  --cron-file PATH       the cron.d file (default $DEFAULT_CRON_FILE;
                         cron ignores cron.d files whose names contain '.')
  --user USER            account the job runs as (default keytrustee)
  --output DIR           backup dir (default /var/lib/keytrustee)
  --roll N               backups kept, the newest included (default 10)
  --gpg-recipient R      encrypt to R (its public key must be in USER's keyring)
  --cleartext            unencrypted backups (not for production)
  --confdir DIR          config dir (default /var/lib/keytrustee/.keytrustee)
  --ktbackup PATH        the script (default: ktbackup.sh next to this one,
                         else on PATH)
  -h, --help             show this help
EOF
}

error() {
	echo "error: $1" >&2
	[ $# -lt 2 ] || echo "hint: $2" >&2
	exit 1
}

usage_error() {
	echo "error: $1" >&2
	echo "hint: run '$prog --help' for the usage" >&2
	exit 2
}

[ $# -gt 0 ] || usage_error "a command is required (install, remove or show)"
cmd=$1
shift
case $cmd in
-h | --help) usage; exit 0 ;;
install | remove | show) ;;
*) usage_error "unknown command '$cmd'" ;;
esac

cron_file=$DEFAULT_CRON_FILE
user=keytrustee
output=/var/lib/keytrustee
roll=10
recipient=
cleartext=0
confdir=/var/lib/keytrustee/.keytrustee
ktbackup=

need() { [ "$2" -gt 1 ] || usage_error "option '$1' needs a value"; }

while [ $# -gt 0 ]; do
	opt=$1
	case $opt in
	--*=*) val=${opt#*=}; opt=${opt%%=*}; shift ;;
	-h | --help) usage; exit 0 ;;
	--cleartext) val=; shift ;;
	--*) need "$opt" $#; val=$2; shift 2 ;;
	*) usage_error "unexpected argument '$opt'" ;;
	esac
	case $cmd:$opt in
	*:--cron-file) cron_file=$val ;;
	install:--user) user=$val ;;
	install:--output) output=$val ;;
	install:--roll) roll=$val ;;
	install:--gpg-recipient) recipient=$val ;;
	install:--cleartext) cleartext=1 ;;
	install:--confdir) confdir=$val ;;
	install:--ktbackup) ktbackup=$val ;;
	*) usage_error "unknown option '$opt' for $cmd" ;;
	esac
done

[ -n "$cron_file" ] || usage_error "--cron-file is empty"

case $cmd in
show)
	[ -f "$cron_file" ] || error "$cron_file does not exist" \
		"install the schedule with '$prog install'"
	cat -- "$cron_file"
	exit 0
	;;
remove)
	if [ -e "$cron_file" ]; then
		rm -f -- "$cron_file"
		echo "Removed $cron_file"
	else
		echo "$cron_file does not exist; nothing to remove"
	fi
	exit 0
	;;
esac

# install
nl='
'
if [ -n "$recipient" ] && [ "$cleartext" = 1 ]; then
	usage_error "--gpg-recipient and --cleartext exclude each other"
fi
[ -n "$recipient" ] || [ "$cleartext" = 1 ] ||
	usage_error "a GPG recipient is required (--gpg-recipient R, or --cleartext)"
case $recipient in
*"'"* | *"$nl"* | *%*)
	error "the GPG recipient may not contain a quote, a newline or '%'" \
		"name the recipient by e-mail address or fingerprint" ;;
esac
case $user in
'' | -* | *[!A-Za-z0-9._-]*) error "not a user name: '$user'" ;;
esac
case $roll in
'' | 0* | *[!0-9]*) error "--roll: not a positive number: '$roll'" ;;
esac
if [ -z "$ktbackup" ]; then
	here=$(cd "$(dirname "$0")" && pwd -P)
	if [ -x "$here/ktbackup.sh" ]; then
		ktbackup=$here/ktbackup.sh
	else
		ktbackup=$(command -v ktbackup.sh) ||
			error "ktbackup.sh not found" "pass its path with --ktbackup PATH"
	fi
fi
for p in "$ktbackup" "$output" "$confdir"; do
	case $p in
	/*) ;;
	*) error "'$p' is not an absolute path" ;;
	esac
	case $p in
	*[!A-Za-z0-9/._+,:@-]*)
		error "'$p' contains characters a cron line cannot carry safely" \
			"use a path of letters, digits and / . _ - + , : @" ;;
	esac
done
[ -x "$ktbackup" ] || error "$ktbackup is not executable"

if [ "$cleartext" = 1 ]; then
	enc=--cleartext
else
	enc="--gpg-recipient='$recipient'"
fi
line="0 * * * * $user $ktbackup --confdir=$confdir $enc --quiet --output=$output --roll=$roll"

dir=$(dirname -- "$cron_file")
[ -d "$dir" ] || error "$dir does not exist" "pass another file with --cron-file PATH"
tmp=$(mktemp "$dir/.keytrustee-backup.XXXXXX") || error "cannot write in $dir"
trap 'rm -f -- "$tmp"' EXIT
cat >"$tmp" <<EOF
# Key Trustee Server: hourly backup with ktbackup.sh, keeping the latest $roll.
# Written by $prog; remove with '$prog remove --cron-file $cron_file'.
# Restore: gpg -d -o backup.tar FILE; tar xvf backup.tar -C /; drop and create
# the keytrustee database; psql -f the .sql next to the config dir; restart.
# Each run's result: CONFDIR/backup-status.json, shown by the server's
# /health and by kt-agent status and history.
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
$line
EOF
chmod 0644 "$tmp"
mv -f -- "$tmp" "$cron_file"
trap - EXIT
echo "Installed $cron_file:"
echo "$line"
