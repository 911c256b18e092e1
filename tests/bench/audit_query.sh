#!/bin/sh
# audit_query.sh - the numbers of docs/audit-query.md: the insert cost of
# migration audit_query's indexes and ktadmin audit's times on a large
# audit_log.  Not part of make bench or make check.
#
#   sudo tests/bench/audit_query.sh [ROWS]      # default 10000000
#
# As root, from the top of the tree, after make: a throwaway PostgreSQL
# cluster (the keytrustee account, a Unix socket in a temporary directory
# it removes), ROWS generated rows over 90 days (1,000 clients in 50 orgs,
# 100,000 deposits, one row in twenty a tally of failed authentication),
# then
#  - inserts: pgbench, 2 clients, 15 s runs of 500-row batches shaped like
#    the read queue's, with the migration's indexes and without, in turn;
#  - questions: ktadmin audit, best of 3 wall times and the plan's
#    execution time, for each kind of question.
# The insert runs append rows of their own (at = now()), as a busy server
# would.
set -eu

ROWS=${1:-10000000}
TOP=$(pwd)
KTADMIN=$TOP/build/bin/ktadmin
PGBIN=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
[ -x "$KTADMIN" ] || { echo "error: build first (make)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "error: run as root" >&2; exit 1; }

DIR=$(mktemp -d /tmp/ktaq.XXXXXX)
chmod 755 "$DIR"
chown keytrustee "$DIR"
cleanup() {
	runuser -u keytrustee -- "$PGBIN/pg_ctl" -D "$DIR/pg" -m immediate \
	    stop >/dev/null 2>&1 || true
	rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

as_pg() { (cd / && runuser -u keytrustee -- "$@"); }
as_pg "$PGBIN/initdb" -D "$DIR/pg" -A trust -U keytrustee -E UTF8 \
    --locale=C.UTF-8 >/dev/null
cat >>"$DIR/pg/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$DIR'
port = 5432
wal_level = replica
synchronous_commit = on
EOF
as_pg "$PGBIN/pg_ctl" -D "$DIR/pg" -l "$DIR/pg.log" -w start >/dev/null
P() { as_pg "$PGBIN/psql" -h "$DIR" -d bench -X -q -v ON_ERROR_STOP=1 "$@"; }
as_pg "$PGBIN/psql" -h "$DIR" -d postgres -X -q -c "CREATE DATABASE bench"

# The table as migrations 1 and 10 make it; the indexes as audit_query's
# (src/common/db.c: the one place they are written; copied here for the
# drop-and-create runs).
P -c "CREATE TABLE audit_log (id bigserial PRIMARY KEY,
 at timestamptz NOT NULL DEFAULT now(), actor text, org text,
 action text NOT NULL, object text, remote_addr text, result text NOT NULL,
 count integer NOT NULL DEFAULT 1 CHECK (count >= 1))" \
  -c "CREATE TABLE schema_migrations (version int PRIMARY KEY,
 name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())" \
  -c "INSERT INTO schema_migrations VALUES (10, 'audit_count')"
INDEXES=$(sed -n '/{[0-9]*, "audit_query",/,/},$/p' src/common/db.c |
    sed -n 's/^[[:space:]]*"\(.*\)"[},]*$/\1/p' | tr -d '\n')
[ -n "$INDEXES" ] || { echo "error: no audit_query migration in db.c" >&2; exit 1; }

t=$(date +%s)
P -c "INSERT INTO audit_log (at, actor, org, action, object, remote_addr,
 result, count)
SELECT timestamptz '2026-09-01 00:00:00Z' + g * (interval '90 days' / $ROWS),
 CASE WHEN g % 20 = 0 THEN NULL ELSE lpad(upper(to_hex(g % 1000)), 40, 'F') END,
 CASE WHEN g % 20 = 0 THEN NULL ELSE 'org' || (g % 1000) % 50 END,
 CASE WHEN g % 20 = 0 THEN 'auth' WHEN g % 10 = 1 THEN 'deposit_create'
  ELSE 'deposit_read' END,
 CASE WHEN g % 20 = 0 THEN NULL
  ELSE lpad(to_hex((g::bigint * 7919) % 100000), 32, 'a')::uuid::text END,
 '10.0.' || (g % 250) || '.' || (g % 199),
 CASE WHEN g % 20 = 0 THEN 'no_header' ELSE 'ok' END,
 CASE WHEN g % 20 = 0 THEN 2 + g % 50 ELSE 1 END
FROM generate_series(1, $ROWS) g"
echo "generated $ROWS rows: $(( $(date +%s) - t )) s"
create() {
	t=$(date +%s)
	P -c "$INDEXES"
	echo "the migration's indexes built: $(( $(date +%s) - t )) s"
}
create
P -c "VACUUM ANALYZE audit_log"
P -At -c "SELECT 'sizes: heap ' || pg_size_pretty(pg_relation_size('audit_log'))
 || ', audit_log_at ' || pg_size_pretty(pg_relation_size('audit_log_at'))
 || ', audit_log_object ' || pg_size_pretty(pg_relation_size('audit_log_object'))"

cat >"$DIR/ins.sql" <<'EOF'
\set base random(1, 1000000000)
INSERT INTO audit_log (at, actor, org, action, object, remote_addr, result) SELECT now(), lpad(upper(to_hex((:base + g) % 1000)), 40, 'F'), 'org' || ((:base + g) % 50), 'deposit_read', lpad(to_hex(((:base + g)::bigint * 7919) % 100000), 32, 'a')::uuid::text, '10.0.0.' || (g % 250), 'ok' FROM generate_series(1, 500) g;
EOF
chown keytrustee "$DIR/ins.sql"
ins() {
	PB="$PGBIN/pgbench -h $DIR -n -c 2 -j 2 -f $DIR/ins.sql bench"
	as_pg $PB -T 5 >/dev/null 2>&1
	tps=$(as_pg $PB -T 15 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
	echo "inserts, $1: $(echo "$tps * 500 / 1" | bc) rows/s"
}
for r in 1 2; do
	ins "the migration's indexes ($r)"
	P -c "DROP INDEX audit_log_at, audit_log_object"
	ins "the primary key only ($r)"
	create
done
P -c "VACUUM ANALYZE audit_log"

mkdir -m 700 "$DIR/conf"
echo "{\"DB_CONNECT\": \"host=$DIR port=5432 dbname=bench user=keytrustee\"}" \
    >"$DIR/conf/keytrustee.conf"
chmod 600 "$DIR/conf/keytrustee.conf"
U=$(P -At -c "SELECT lpad(to_hex(4242), 32, 'a')::uuid::text")
F=$(P -At -c "SELECT lpad(upper(to_hex(7)), 40, 'F')")
MID=$((ROWS / 2))
q() {
	name=$1
	shift
	best=999999
	for i in 1 2 3; do
		s=$(date +%s%N)
		"$KTADMIN" audit --confdir "$DIR/conf" "$@" >/dev/null 2>&1
		e=$(( ($(date +%s%N) - s) / 1000000 ))
		[ $e -lt $best ] && best=$e
	done
	plan=$("$KTADMIN" audit --confdir "$DIR/conf" --explain "$@" 2>&1)
	ex=$(echo "$plan" | sed -n 's/^Execution Time: \(.*\) ms/\1/p')
	scan=$(echo "$plan" | grep -o "Index Scan Backward using [a-z_]*\|Index Scan using [a-z_]*\|Bitmap Index Scan on [a-z_]*\|Seq Scan on [a-z_]*" | sort -u | tr '\n' ' ')
	n=$("$KTADMIN" audit --confdir "$DIR/conf" --json "$@" 2>/dev/null | wc -l)
	printf "| %s | %s | %s ms | %s ms | %s|\n" "$name" "$n" "$best" "$ex" "$scan"
}
echo "questions on $(P -At -c "SELECT count(*) FROM audit_log") rows:"
echo "| question | rows | ktadmin audit, wall | PostgreSQL execution | plan |"
echo "|---|---|---|---|---|"
q "newest 100"
q "--object U --action deposit_read" --object "$U" --action deposit_read
q "--client FP" --client "$F"
q "--client FP, a page in the middle" --client "$F" --before-id $MID
q "--since (last day of the 90)" --since 2026-11-29
q "--since --until (one day in the middle)" --since 2026-10-10 --until 2026-10-11
q "same day, --org --action" --since 2026-10-10 --until 2026-10-11 --org org1 --action deposit_create
q "--action auth --since (last day)" --action auth --since 2026-11-29
q "--org (no time)" --org org1
q "--before-id in the middle" --before-id $MID
q "nothing matches (no time)" --result throttled
q "nothing matches, within a day" --result throttled --since 2026-10-10 --until 2026-10-11
