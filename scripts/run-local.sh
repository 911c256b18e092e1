#!/bin/sh
# scripts/run-local.sh - a self-contained Key Trustee Server under ./var of
# the repository, for `make run` and `make stop`.
#
#   sh scripts/run-local.sh start   init (completes ./var/conf), database, server
#   sh scripts/run-local.sh stop    stop the server, the database, and the
#                                   gpg-agent of each GnuPG home in var/conf
#
# Layout: var/conf (config dir, keyring, TLS pair), var/db (PostgreSQL),
# var/log/keytrustee-server.log (0640, the config dir owner's),
# var/run/keytrustee-server.{pid,port}.
set -u

cd "$(dirname "$0")/.." || exit 1
top=$(pwd -P)
var=$top/var
conf=$var/conf
db=$var/db
logdir=$var/log
rundir=$var/run
log=$logdir/keytrustee-server.log
pidfile=$rundir/keytrustee-server.pid
portfile=$rundir/keytrustee-server.port
ktadmin=$top/build/bin/ktadmin
server=$top/build/bin/keytrustee-server
PG_ACCOUNT=keytrustee

error() {
	echo "error: $1" >&2
	[ $# -lt 2 ] || echo "hint: $2" >&2
	exit 1
}

# Is anything listening on 127.0.0.1/localhost:PORT (TCP)?
port_busy() {
	if command -v ss >/dev/null 2>&1; then
		[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
		return
	fi
	python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
EOF
}

# The first free port from $1 on (tries 100).
free_port() {
	p=$1
	while [ "$p" -lt $(($1 + 100)) ]; do
		if ! port_busy "$p"; then
			echo "$p"
			return 0
		fi
		p=$((p + 1))
	done
	return 1
}

# PID from the pid file when it names a live keytrustee-server.
server_pid() {
	[ -f "$pidfile" ] || return 1
	pid=$(cat "$pidfile" 2>/dev/null)
	case $pid in '' | *[!0-9]*) return 1 ;; esac
	kill -0 "$pid" 2>/dev/null || return 1
	case $(ps -p "$pid" -o args= 2>/dev/null) in
	*keytrustee-server*) echo "$pid" ;;
	*) return 1 ;;
	esac
}

# The value of an integer key in keytrustee.conf ("" when not there).
conf_int() {
	sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p" \
	    "$conf/keytrustee.conf" 2>/dev/null | head -n 1
}

# PostgreSQL runs as $PG_ACCOUNT when we are root: it must be able to reach
# $db, so every directory above it must be searchable by that account.
check_traverse() {
	[ "$(id -u)" -eq 0 ] || return 0
	id "$PG_ACCOUNT" >/dev/null 2>&1 || return 0
	command -v runuser >/dev/null 2>&1 || return 0
	d=
	rest=${var#/}
	while :; do
		d=$d/${rest%%/*}
		if [ -d "$d" ] && ! runuser -u "$PG_ACCOUNT" -- test -x "$d"; then
			echo "error: $d: the $PG_ACCOUNT account cannot enter" \
			    "this directory (mode $(stat -c %a "$d"), owner" \
			    "$(stat -c %U "$d")), so PostgreSQL cannot reach $db" >&2
			echo "hint: chmod o+x $d   (or clone the repository" \
			    "somewhere like /srv or /opt and run make run there)" >&2
			exit 1
		fi
		case $rest in */*) rest=${rest#*/} ;; *) break ;; esac
	done
}

# The server's log: the config dir owner's (the account the server runs
# as) and its group's only; an older run's 0644 root file is fixed too.
own_log() {
	(umask 037 && : >>"$log") || error "$log: cannot create it"
	chmod 0640 "$log" || error "$log: cannot chmod it"
	[ "$(id -u)" -eq 0 ] || return 0
	chown "$(stat -c %u:%g "$conf")" "$log" ||
		error "$log: cannot give it to the owner of $conf"
}

# Stop the gpg-agent of every GnuPG home of the config dir: the dir itself
# and any directory in it with a keyring or an agent's socket (the
# contacts' .contacts-gnupg of mail.c).  Asked as the caller and as the
# home's owner, since each looks for the agent's socket under its own uid.
kill_gnupg() {
	command -v gpgconf >/dev/null 2>&1 || return 0
	for h in "$conf" "$conf"/.[!.]* "$conf"/*; do
		[ -d "$h" ] || continue
		if [ "$h" != "$conf" ]; then
			found=
			for f in pubring.kbx pubring.gpg trustdb.gpg \
			    private-keys-v1.d S.gpg-agent; do
				[ -e "$h/$f" ] && found=1
			done
			[ -n "$found" ] || continue
		fi
		gpgconf --homedir "$h" --kill all >/dev/null 2>&1
		owner=$(stat -c %U "$h")
		if [ "$(id -u)" -eq 0 ] && [ "$owner" != root ] &&
		    command -v runuser >/dev/null 2>&1; then
			runuser -u "$owner" -- gpgconf --homedir "$h" \
			    --kill all >/dev/null 2>&1
		fi
	done
}

need_bin() {
	[ -x "$1" ] || error "$1: not built" "run make (or make run) first"
}

start() {
	need_bin "$ktadmin"
	need_bin "$server"
	command -v curl >/dev/null 2>&1 ||
		error "curl not found" "apt-get install -y curl"
	umask 022
	mkdir -p "$var" "$logdir" "$rundir" || exit 1
	check_traverse

	# Every time: on a complete dir it changes nothing, and on one made by
	# an older build it adds what is new (the data key, say).
	"$ktadmin" init --confdir "$conf" --hostname localhost ||
		error "ktadmin init --confdir $conf failed"

	if [ ! -f "$db/PG_VERSION" ]; then
		pgport=$(free_port 11381) ||
			error "no free TCP port in 11381-11480 for PostgreSQL"
		# A private cluster: its socket stays in var/db, even on port
		# 11381 (no second one in /var/run/postgresql).
		"$ktadmin" db --bootstrap --confdir "$conf" --pg-rootdir "$db" \
		    --port "$pgport" --socket-dir '' ||
			error "ktadmin db --bootstrap --pg-rootdir $db failed"
	else
		"$ktadmin" db --status --pg-rootdir "$db" >/dev/null 2>&1
		rc=$?
		case $rc in
		0) ;;
		3)
			"$ktadmin" db --start --pg-rootdir "$db" --background ||
				error "ktadmin db --start --pg-rootdir $db failed"
			;;
		*) error "ktadmin db --status --pg-rootdir $db: exit $rc" ;;
		esac
	fi
	pgport=$(conf_int DB_PORT)

	if pid=$(server_pid); then
		port=$(cat "$portfile" 2>/dev/null)
		[ -n "$port" ] || port=$(conf_int PORT)
		echo "keytrustee-server is already running (pid $pid, port $port)"
	else
		port=$(free_port 11371) ||
			error "no free TCP port in 11371-11470 for the server"
		echo "$port" >"$portfile"
		own_log
		echo "starting keytrustee-server on port $port" \
		    "(log: var/log/keytrustee-server.log)"
		nohup "$server" --confdir "$conf" --port "$port" \
		    >>"$log" 2>&1 </dev/null &
		pid=$!
		echo "$pid" >"$pidfile"
	fi

	url="https://localhost:$port/?a=fingerprint"
	i=0
	while :; do
		if fp=$(curl -sfk --max-time 2 "$url" 2>/dev/null) &&
		    [ -n "$fp" ]; then
			break
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 30 "$log" >&2
			rm -f "$pidfile"
			error "keytrustee-server exited; see $log"
		fi
		i=$((i + 1))
		if [ "$i" -ge 30 ]; then
			tail -n 30 "$log" >&2
			error "keytrustee-server did not answer $url within 30 s" \
			    "see $log; make stop, then make run"
		fi
		sleep 1
	done

	echo
	echo "Key Trustee Server is running."
	echo "  fingerprint: $fp"
	echo "  try:         curl -k https://localhost:$port/?a=fingerprint"
	echo "  PostgreSQL:  port ${pgport:-unknown} (data in var/db)"
	echo "  stop with:   make stop"
}

stop() {
	did=0
	if pid=$(server_pid); then
		echo "stopping keytrustee-server (pid $pid)"
		kill -TERM "$pid" 2>/dev/null
		i=0
		while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "keytrustee-server did not stop within 10 s;" \
			    "sending SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null
		fi
		did=1
	fi
	rm -f "$pidfile" "$portfile"

	if [ -f "$db/PG_VERSION" ] && [ -x "$ktadmin" ] &&
	    "$ktadmin" db --status --pg-rootdir "$db" >/dev/null 2>&1; then
		echo "stopping PostgreSQL (var/db)"
		"$ktadmin" db --stop --pg-rootdir "$db" ||
			error "ktadmin db --stop --pg-rootdir $db failed"
		did=1
	fi

	[ -d "$conf" ] && kill_gnupg

	[ "$did" -eq 1 ] && echo "stopped" || echo "nothing was running"
}

case ${1:-} in
start) start ;;
stop) stop ;;
*)
	echo "usage: sh scripts/run-local.sh start|stop" >&2
	exit 2
	;;
esac
