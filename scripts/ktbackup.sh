#!/bin/bash
# ktbackup.sh - back up a Key Trustee Server: its config dir (GnuPG keyring,
# TLS pair, keytrustee.conf, ...) and a `pg_dump -c` of its database, in one
# tarball, GPG-encrypted to a recipient unless --cleartext.
#
# Run it as the service account (keytrustee).  The tarball's member paths are
# relative to /, as the vendor guide's `tar tvf` listing shows, so the restore
# is `gpg -d -o backup.tar FILE; tar xvf backup.tar -C /`; the SQL lands next
# to the config dir (<parent of confdir>/kts_bak_....sql) and is loaded with
# `psql -f` after dropping and re-creating the keytrustee database.
#
# It refuses, naming each one with the chown or chmod that fixes it, when
# the account cannot read something it would archive; and every run leaves
# its result in CONFDIR/backup-status.json (docs/backup.md).
set -euo pipefail

prog=ktbackup.sh
KEYTRUSTEE_HOME=${KEYTRUSTEE_HOME:-/var/lib/keytrustee}

usage() {
	cat <<EOF
Usage: $prog (--gpg-recipient=RECIPIENT | --cleartext) [OPTION]...

Back up the Key Trustee Server config dir and database into
OUTPUT/kts_bak_<fqdn with . as _>_<YYYY-MM-DD_HH-MM-SS>.tar[.gpg].

  -c, --confdir=CONFDIR      Key Trustee config dir
                             (default: \$KEYTRUSTEE_HOME/.keytrustee,
                             KEYTRUSTEE_HOME defaults to /var/lib/keytrustee)
      --database-port=PORT   database port (default: DB_PORT of
                             keytrustee.conf, else 11381)
      --gpg-recipient=GPG_RECIPIENT
                             encrypt the tarball to this recipient; the
                             public key must be in the running account's
                             keyring (GNUPGHOME, default ~/.gnupg)
      --cleartext            write an unencrypted tarball (not for production)
      --output=DIR           output directory (default: \$KEYTRUSTEE_HOME);
                             made, mode 0700, when it does not exist
      --roll=n               after writing the new backup, delete older
                             backups (kts_bak_*.tar, kts_bak_*.tar.gpg) in the
                             output dir so that the newest n backups remain,
                             the new one included: with 10 backups, --roll=10
                             writes an 11th and deletes the oldest; --roll=1
                             keeps only the new backup
  -q, --quiet                print only the tarball's path on success
      --verbose              print more progress messages (on stderr)
  -h, --help                 show this help and exit

Either --gpg-recipient or --cleartext is required.

Every run leaves its result in CONFDIR/backup-status.json, shown by the
server's /health and by kt-agent status and history.

See ktbackup.sh(8).
EOF
}

# Why the run failed, for the status file: the error's first line and a
# fixed word (/health shows only the word, never a path).
last_error=
reason=other

error() {
	last_error=${last_error:-$1}
	echo "error: $1" >&2
	[ $# -lt 2 ] || echo "hint: $2" >&2
	exit 1
}

usage_error() {
	last_error=${last_error:-$1}
	reason=usage
	echo "error: $1" >&2
	echo "hint: run '$prog --help' for the options" >&2
	exit 2
}

confdir=
dbport=
recipient=
cleartext=0
output=
roll=
quiet=0
verbose=0

while [ $# -gt 0 ]; do
	arg=$1
	shift
	case $arg in
	-h | --help) usage; exit 0 ;;
	-c | --confdir)
		[ $# -gt 0 ] || usage_error "option '$arg' needs a value"
		confdir=$1; shift ;;
	--confdir=*) confdir=${arg#*=} ;;
	--database-port=*) dbport=${arg#*=} ;;
	--database-port)
		[ $# -gt 0 ] || usage_error "option '$arg' needs a value"
		dbport=$1; shift ;;
	--gpg-recipient=*) recipient=${arg#*=} ;;
	--gpg-recipient)
		[ $# -gt 0 ] || usage_error "option '$arg' needs a value"
		recipient=$1; shift ;;
	--cleartext) cleartext=1 ;;
	--output=*) output=${arg#*=} ;;
	--output)
		[ $# -gt 0 ] || usage_error "option '$arg' needs a value"
		output=$1; shift ;;
	--roll=*) roll=${arg#*=} ;;
	--roll)
		[ $# -gt 0 ] || usage_error "option '$arg' needs a value"
		roll=$1; shift ;;
	-q | --quiet) quiet=1 ;;
	--verbose) verbose=1 ;;
	*) usage_error "unknown option '$arg'" ;;
	esac
done

say() { [ "$quiet" = 1 ] || echo "$*" >&2; }
debug() { [ "$verbose" = 0 ] || [ "$quiet" = 1 ] || echo "$*" >&2; }

started=$(date +%s)
confdir=${confdir:-$KEYTRUSTEE_HOME/.keytrustee}
output=${output:-$KEYTRUSTEE_HOME}

# Every run, good or bad, leaves its result in CONFDIR/backup-status.json
# (when the config dir exists), which the server's /health and
# `kt-agent status` and `history` read: a failing hourly backup is seen
# without reading cron's mail.
status_file=
if [ -d "$confdir" ]; then
	status_file=$(cd "$confdir" && pwd -P)/backup-status.json
fi
tmpdir=
new=
fqdn=

write_status() {
	local result=ok
	[ "$1" = 0 ] || result=failed
	if [ "$1" = 130 ] || [ "$1" = 143 ]; then
		reason=interrupted
		last_error=${last_error:-interrupted by a signal}
	fi
	[ -n "$fqdn" ] || fqdn=$(hostname -f 2>/dev/null || hostname 2>/dev/null || uname -n)
	KTB_RESULT=$result KTB_EXIT=$1 KTB_STARTED=$started KTB_ENDED=$(date +%s) \
		KTB_FILE=$new KTB_ERROR=$last_error KTB_REASON=$reason KTB_HOST=$fqdn \
		python3 - "$status_file" <<'EOF' ||
import json, os, sys, tempfile, time
path = sys.argv[1]
d = os.path.dirname(path)
e = os.environ
interval = 3600  # the schedule's (hourly); keytrustee.conf BACKUP_INTERVAL
try:
    with open(os.path.join(d, "keytrustee.conf")) as f:
        v = json.load(f).get("BACKUP_INTERVAL")
    if isinstance(v, int) and not isinstance(v, bool) and v > 0:
        interval = v
except (OSError, ValueError, AttributeError):
    pass
ok = e["KTB_RESULT"] == "ok"
started, ended = int(e["KTB_STARTED"]), int(e["KTB_ENDED"])
run = {"started": started, "ended": ended, "duration_seconds": ended - started,
       "result": e["KTB_RESULT"], "exit": int(e["KTB_EXIT"])}
if ok:
    run["file"] = e["KTB_FILE"]
else:
    err = e["KTB_ERROR"] or "exited with status %s" % e["KTB_EXIT"]
    run["error"] = err.splitlines()[0][:400]
    run["reason"] = e["KTB_REASON"]
old = {}
try:
    with open(path) as f:
        old = json.load(f)
    if not isinstance(old, dict):
        old = {}
except (OSError, ValueError):
    pass
runs = [r for r in old.get("runs", []) if isinstance(r, dict)] + [run]
st = dict(run)
st.update({"version": 1, "host": e["KTB_HOST"], "interval_seconds": interval,
           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ended)),
           "last_ok": ended if ok else old.get("last_ok"), "runs": runs[-48:]})
tmp = None
try:
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".backup-status.")
    if os.geteuid() == 0:  # root backing up for the account: the account's file
        s = os.stat(d)
        os.fchown(fd, s.st_uid, s.st_gid)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(st, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
except OSError as ex:
    if tmp is not None and os.path.exists(tmp):
        os.unlink(tmp)
    sys.stderr.write("warning: cannot write the backup status %s: %s\n"
                     % (path, ex.strerror or ex))
EOF
		true
}

on_exit() {
	local rc=$?
	set +e
	if [ -n "$tmpdir" ] && [ -d "$tmpdir" ]; then rm -rf -- "$tmpdir"; fi
	[ -z "$status_file" ] || write_status "$rc"
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "$recipient" ] && [ "$cleartext" = 1 ]; then
	usage_error "--gpg-recipient and --cleartext exclude each other"
fi
if [ -z "$recipient" ] && [ "$cleartext" = 0 ]; then
	usage_error "a GPG recipient is required" 
fi
case $dbport in
'' | *[!0-9]*) [ -z "$dbport" ] || usage_error "--database-port: not a port number: '$dbport'" ;;
esac
case $roll in
'') ;;
*[!0-9]* | 0*) usage_error "--roll: not a positive number: '$roll'" ;;
esac

reason=config
[ -d "$confdir" ] || error "config dir $confdir does not exist" \
	"pass the Key Trustee config dir with --confdir=DIR"
confdir=$(cd "$confdir" && pwd -P)
conf=$confdir/keytrustee.conf
[ -r "$conf" ] || error "cannot read $conf" "is $confdir a Key Trustee config dir?"
[ "$confdir" != / ] || error "the config dir cannot be /"

# The output dir: made when missing (the guide's cron line writes to
# /tmp/backups, which nobody creates), 0700 and the account's: the config
# dir's owner when root runs this for the account.
reason=output
if [ ! -e "$output" ] && [ ! -L "$output" ]; then
	# Missing parents as mkdir -p makes them (0755), the dir itself 0700.
	if ! err=$(umask 022 && mkdir -p -m 0700 -- "$output" 2>&1); then
		error "cannot create output dir $output: ${err##*: }" \
			"create it, or pass another with --output=DIR"
	fi
	if [ "$(id -u)" = 0 ]; then
		chown "$(stat -c %u:%g -- "$confdir")" "$output" ||
			error "cannot give output dir $output to the owner of $confdir"
	fi
	say "Created output dir $output (mode 0700)"
fi
[ -d "$output" ] || error "output dir $output is not a directory" \
	"pass a directory with --output=DIR"
output=$(cd "$output" && pwd -P)
[ -w "$output" ] || error "output dir $output is not writable" \
	"run $prog as the service account, or pass another dir with --output=DIR"

# Everything tar will archive must be readable by this account, checked
# before anything is written: a file root left in the config dir (the
# guide's own `sudo cp -r .ssl .ssl.bak`) is named with the command that
# gives it back.  Such copies are backed up like the rest: .ssl.bak holds
# the certificate and key the operator may need to go back to.
reason=unreadable
unreadable=$(find "$confdir" \( -name 'S.*' -o -path "$confdir/backup-status.json" \
	-o -path "$confdir/.backup-status.*" \) -prune -o \
	\( -type d \( ! -readable -o ! -executable \) -print -prune \) -o \
	\( ! -type d ! -type l ! -readable -print \) 2>/dev/null) || true
if [ -n "$unreadable" ]; then
	me=$(id -un)
	mygroup=$(id -gn)
	n=$(printf '%s\n' "$unreadable" | wc -l)
	first=$(printf '%s\n' "$unreadable" | head -n 1)
	more=
	[ "$n" -lt 2 ] || more=" and $((n - 1)) more"
	last_error="cannot read $first$more in the config dir as $me"
	echo "error: $last_error; nothing was backed up" >&2
	printf '%s\n' "$unreadable" | head -n 20 | while IFS= read -r p; do
		echo "detail: $p: $(stat -c '%F, owner %U:%G, mode %a' -- "$p")" >&2
	done
	printf '%s\n' "$unreadable" | head -n 20 | while IFS= read -r p; do
		r=
		[ ! -d "$p" ] || r=-R
		if [ "$(stat -c %U -- "$p")" != "$me" ]; then
			echo "hint: sudo chown $r${r:+ }$me:$mygroup $p" >&2
		elif [ -d "$p" ]; then
			echo "hint: chmod -R u+rwX $p" >&2
		else
			echo "hint: chmod u+r $p" >&2
		fi
	done
	exit 1
fi
reason=other

command -v python3 >/dev/null || error "python3 is not installed"
command -v tar >/dev/null || error "tar is not installed"

# pg_dump: the newest PostgreSQL under /usr/lib/postgresql, else PATH.
pg_dump=
while IFS= read -r d; do
	if [ -x "$d/pg_dump" ]; then pg_dump=$d/pg_dump; break; fi
done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r)
[ -n "$pg_dump" ] || pg_dump=$(command -v pg_dump) ||
	error "pg_dump is not installed" "install the PostgreSQL client programs"
debug "using $pg_dump"

reason=gpg
gpg_opts=(--batch --yes --trust-model always --auto-key-locate local --encrypt)
if [ "$cleartext" = 0 ]; then
	command -v gpg >/dev/null || error "gpg is not installed"
	# Encrypting nothing proves the key is there and usable for encryption.
	if ! gpg_err=$(gpg "${gpg_opts[@]}" -r "$recipient" -o /dev/null </dev/null 2>&1); then
		printf '%s\n' "$gpg_err" | sed 's/^/detail: /' >&2
		error "no usable public key for GPG recipient '$recipient' in ${GNUPGHOME:-$HOME/.gnupg}" \
			"import it into the service account's keyring: gpg --import /path/to/recipient.pub"
	fi
fi

# keytrustee.conf -> conninfo without the password (line 1), port (line 2),
# password (line 3).  The password goes to pg_dump via PGPASSWORD only.
# pg_dump runs as the admin role: DB_CONNECT with the user and password of
# db-admin.conninfo when the config dir has it (docs/server.md, "The
# database roles"); DB_CONNECT alone in a config dir from before them.
reason=config
dbinfo=$(KTB_PORT="$dbport" python3 - "$conf" <<'EOF'
import json, os, re, sys
try:
    with open(sys.argv[1]) as f:
        conf = json.load(f)
except (OSError, ValueError) as e:
    sys.stderr.write("error: cannot read %s: %s\n" % (sys.argv[1], e))
    sys.exit(1)
ci = conf.get("DB_CONNECT")
if not isinstance(ci, str) or not ci.strip():
    sys.stderr.write("error: %s has no DB_CONNECT\n"
                     "hint: set the database up with 'ktadmin db --bootstrap'\n" % sys.argv[1])
    sys.exit(1)
def parse(ci):
    pairs = []
    for m in re.finditer(r"\s*([A-Za-z_]+)\s*=\s*('((?:[^'\\]|\\.)*)'|\S*)", ci):
        key = m.group(1)
        val = m.group(3) if m.group(3) is not None else m.group(2)
        if m.group(3) is not None:
            val = re.sub(r"\\(.)", r"\1", val)
        pairs.append((key, val))
    return dict(pairs)
d = parse(ci)
admin = os.path.join(os.path.dirname(sys.argv[1]), "db-admin.conninfo")
if os.path.exists(admin):
    try:
        with open(admin) as f:
            d.update(parse(f.read()))
    except OSError as e:
        sys.stderr.write("error: cannot read %s: %s\n" % (admin, e))
        sys.exit(1)
port = os.environ.get("KTB_PORT") or str(conf.get("DB_PORT") or "") or d.get("port") or "11381"
password = d.pop("password", "")
d["port"] = port
def q(v):
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
print(" ".join("%s=%s" % (k, q(v)) for k, v in d.items()))
print(port)
print(password)
EOF
) || {
	last_error="cannot take the database settings from $conf"
	exit 1
}
conninfo=$(printf '%s\n' "$dbinfo" | sed -n 1p)
port=$(printf '%s\n' "$dbinfo" | sed -n 2p)
password=$(printf '%s\n' "$dbinfo" | sed -n 3p)
unset dbinfo

fqdn=$(hostname -f 2>/dev/null || hostname 2>/dev/null || uname -n)
host=$(printf '%s' "$fqdn" | tr '.' '_')
ext=.tar
[ "$cleartext" = 1 ] || ext=.tar.gpg

umask 077
tmpdir=$(mktemp -d "$output/.ktbackup.XXXXXX") ||
	error "cannot create a temporary dir in $output"

# A name no backup has: two backups in one second would share one.
for _ in 1 2 3; do
	stamp=$(date +%Y-%m-%d_%H-%M-%S)
	base=kts_bak_${host}_$stamp
	[ -e "$output/$base$ext" ] || break
	sleep 1
done
[ ! -e "$output/$base$ext" ] || error "$output/$base$ext already exists"

reason=database
say "Dumping the keytrustee database (port $port)"
debug "conninfo: $conninfo"
sql=$tmpdir/$base.sql
if ! PGPASSWORD=$password PGCONNECT_TIMEOUT=10 "$pg_dump" -c --if-exists -d "$conninfo" -f "$sql" \
	2>"$tmpdir/pg_dump.err"; then
	sed 's/^/detail: /' "$tmpdir/pg_dump.err" >&2
	error "pg_dump of the keytrustee database on port $port failed" \
		"is the database running? check 'ktadmin db --status' and --database-port"
fi
unset password
chmod 0644 "$sql"
debug "$(wc -c <"$sql") bytes of SQL"

rel_conf=${confdir#/}
rel_parent=$(dirname "$rel_conf")
if [ "$rel_parent" = . ]; then rel_sql=$base.sql; else rel_sql=$rel_parent/$base.sql; fi

# The SQL is stored as <parent of confdir>/kts_bak_....sql; GnuPG sockets
# (S.gpg-agent*, S.dirmngr, S.keyboxd) and the status of the backups
# (backup-status.json: the host's, not a part of what is restored) are not
# backed up.
tar_args=(-c -f - --exclude='S.*' --exclude="$rel_conf/backup-status.json"
	--exclude="$rel_conf/.backup-status.*" -C / "$rel_conf"
	-C "$tmpdir" --transform="s|^$base\\.sql\$|$rel_sql|" "$base.sql")
[ "$verbose" = 0 ] || [ "$quiet" = 1 ] || tar_args=(-v "${tar_args[@]}")

reason=tar
part=$tmpdir/$base$ext
say "Writing $output/$base$ext"
# tar exits 1 when a file changed while it was read (the running server may
# touch its keyring): a warning, the member is still in the archive.
set +e
if [ "$cleartext" = 1 ]; then
	tar "${tar_args[@]}" >"$part" 2>"$tmpdir/tar.err"
	tar_rc=$? gpg_rc=0
else
	# Streamed: the clear tarball never reaches the disk.
	tar "${tar_args[@]}" 2>"$tmpdir/tar.err" |
		gpg "${gpg_opts[@]}" -r "$recipient" -o "$part" 2>"$tmpdir/gpg.err"
	rcs=("${PIPESTATUS[@]}")
	tar_rc=${rcs[0]} gpg_rc=${rcs[1]}
fi
set -e
if [ "$tar_rc" -gt 1 ]; then
	sed 's/^/detail: /' "$tmpdir/tar.err" >&2
	error "tar of $confdir failed" "run $prog as the account that owns $confdir"
fi
if [ "$gpg_rc" -ne 0 ]; then
	reason=gpg
	sed 's/^/detail: /' "$tmpdir/gpg.err" >&2
	error "gpg failed encrypting the backup to '$recipient'"
fi
[ "$tar_rc" = 0 ] || [ "$quiet" = 1 ] || sed 's/^/warning: /' "$tmpdir/tar.err" >&2
[ "$verbose" = 0 ] || [ "$quiet" = 1 ] || [ "$tar_rc" != 0 ] || cat "$tmpdir/tar.err" >&2
rm -f -- "$sql"
chmod 0600 "$part"
mv -- "$part" "$output/$base$ext"
new=$output/$base$ext

if [ -n "$roll" ]; then
	# Newest first by the timestamp in the name; keep roll-1 besides the new one.
	keep=$((roll - 1))
	for f in "$output"/kts_bak_*.tar "$output"/kts_bak_*.tar.gpg; do
		name=${f##*/}
		if [ ! -f "$f" ] || [ "$name" = "$base$ext" ]; then continue; fi
		[[ $name =~ _([0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{2}-[0-9]{2}-[0-9]{2})\.tar(\.gpg)?$ ]] || continue
		printf '%s %s\n' "${BASH_REMATCH[1]}" "$name"
	done | sort -r | tail -n +$((keep + 1)) | cut -d' ' -f2- |
		while IFS= read -r old; do
			debug "roll: deleting $output/$old"
			rm -f -- "$output/$old"
		done
fi

if [ "$quiet" = 1 ]; then
	echo "$new"
else
	say "Backup written to $new"
	echo "$new"
fi
