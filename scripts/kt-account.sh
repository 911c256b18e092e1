#!/bin/sh
# kt-account.sh - the one place that makes the Key Trustee Server's service
# account as the vendor's package makes it, and mends one made by older
# versions of this project.  install-deps.sh, `make install`, the .deb's
# postinst and the parcel's activation (kt-agent parcel activate) all run
# it.  Idempotent: it changes only what is not yet right and says what it
# changed.
#
#   kt-account.sh [--user NAME] [--home DIR]
#
# NAME (default keytrustee): a system account with its own group, a login
# shell (/bin/bash: the guide's `su - keytrustee`) and a locked password
# (only root can su to it).  DIR (default /var/lib/keytrustee): its home,
# created mode 0700 and owned by the account (the default ktbackup.sh
# output dir: backups hold the config dir and the database dump).  When
# Debian's postgres group exists the account joins it, so that its
# PostgreSQL can put a second socket in /var/run/postgresql (2775
# postgres:postgres, made so at every boot by postgresql-common's
# tmpfiles.d) where psql and pg_dump look without -h.
set -eu

user=keytrustee
home=/var/lib/keytrustee
shell=/bin/bash

usage() {
	echo "usage: kt-account.sh [--user NAME] [--home DIR]"
}
while [ $# -gt 0 ]; do
	case $1 in
	--user | --home)
		[ $# -gt 1 ] || { echo "error: $1 needs a value" >&2; usage >&2; exit 2; }
		case $1 in
		--user) user=$2 ;;
		--home) home=$2 ;;
		esac
		shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "error: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
done
case $user in
'' | -* | *[!a-z0-9_-]*)
	echo "error: --user: '$user' is not an account name (a-z, 0-9, _, -)" >&2
	exit 2 ;;
esac
case $home in
/*) ;;
*) echo "error: --home: '$home' is not an absolute path" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
	echo "error: kt-account.sh must run as root (it creates or mends the '$user' account)" >&2
	exit 1
fi
[ -x "$shell" ] || { echo "error: $shell is missing (Debian's bash package)" >&2; exit 1; }

if ! entry=$(getent passwd "$user"); then
	# No skeleton files: the home holds the service's data, nothing else.
	useradd --system --user-group --comment "Key Trustee Server" \
		--home-dir "$home" --no-create-home --shell "$shell" "$user"
	echo "kt-account.sh: created the system account $user (home $home, shell $shell)"
	entry=$(getent passwd "$user")
fi

# An account of an older version: /usr/sbin/nologin, another home.
cur_shell=${entry##*:}
cur_home=$(echo "$entry" | cut -d: -f6)
if [ "$cur_shell" != "$shell" ]; then
	usermod --shell "$shell" "$user"
	echo "kt-account.sh: $user's shell: $cur_shell -> $shell"
fi
if [ "$cur_home" != "$home" ]; then
	usermod --home "$home" "$user"
	echo "kt-account.sh: $user's home: $cur_home -> $home"
fi

# Password locked: only root gets in (su, sudo -u).
case $(getent shadow "$user" | cut -d: -f2) in
'!'*) ;;
*)
	usermod --lock "$user"
	echo "kt-account.sh: locked $user's password" ;;
esac

group=$(id -gn "$user")
if [ ! -d "$home" ]; then
	install -d -m 0700 -o "$user" -g "$group" "$home"
	echo "kt-account.sh: created $home (0700, $user:$group)"
elif [ "$(stat -c %U "$home")" != "$user" ]; then
	# Made by root (or an older version): given to the account, never
	# opened wider than it was.
	chown "$user:$group" "$home"
	chmod u+rwx,go-w "$home"
	echo "kt-account.sh: gave $home to $user:$group"
fi

if getent group postgres >/dev/null &&
	! id -nG "$user" | tr ' ' '\n' | grep -qx postgres; then
	usermod --append --groups postgres "$user"
	echo "kt-account.sh: added $user to the postgres group (its socket in /var/run/postgresql)"
fi
exit 0
