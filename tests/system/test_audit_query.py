"""System tests of `ktadmin audit`'s questions (issue 20, items 2 and 5;
src/ktadmin/cmd-audit.c, docs/audit-query.md).

Rows the server really wrote (registrations, a deposit, reads of it by its
owner from two addresses and a refused read by another client, failed
authentication tallied by the minute) are found by each filter, in the
table and as JSON lines; paging by the stderr hint walks every row once;
bad input exits 2 naming the value.  On a table of a million generated
rows (a database of its own in the session's cluster, with the audit
schema the migrations made), EXPLAIN ANALYZE of the very query ktadmin
runs shows the indexes of migration "audit_query" for --object and a time
range, and the primary key walked newest first for --client.

Reuses test_api's helpers and module server (the session's PostgreSQL).
"""

import json
import os
import re
import secrets
import shlex
import time

import pytest

from conftest import binary, copy_confdir, read_conf, run, tool, update_conf
from test_api import (Client, env, http_request, new_org,  # noqa: F401 (env: fixture)
                      sql_quote)
from test_auth_flood import Conn, bad_headers

KEYS = ["id", "at", "action", "result", "actor", "org", "object", "remote_addr", "count"]
BIG_ROWS = 1000000


def audit(confdir, *args, check=True):
    proc = run([binary("ktadmin"), "audit", "--confdir", confdir] + [str(a) for a in args],
               timeout=120)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def audit_json(confdir, *args):
    proc = audit(confdir, "--json", *args)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    for r in rows:
        assert list(r) == KEYS, r
    return rows, proc


def get_from(c, port, uuid, source):
    """c's signed GET of a deposit, sent from the loopback address source."""
    uri = "/v1/deposits/" + uuid
    status, _, _ = http_request(port, "GET", uri, b"",
                                [("Authorization", c.auth_header("GET", uri, b""))],
                                source=source)
    return status


class Story:
    """What the module's clients did, for the tests to ask about."""


@pytest.fixture(scope="module")
def story(env, registry):
    s = Story()
    s.t0 = env.psql("SELECT to_char(now() AT TIME ZONE 'UTC' - interval '1 second', "
                    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
    s.org = new_org(env.cluster, "")
    s.alice = Client(registry, "aq-alice")
    s.bob = Client(registry, "aq-bob")
    for c in (s.alice, s.bob):
        status, ans = c.register(env.port, s.org)
        assert status == 201, ans
    status, ans = s.alice.put(env.port, "aq-key", os.urandom(32))
    assert status == 201, ans
    s.uuid = ans["uuid"]
    assert get_from(s.alice, env.port, s.uuid, "127.0.0.1") == 200
    assert get_from(s.alice, env.port, s.uuid, "127.0.0.3") == 200
    # Another client's read of it: refused, and audited with its object.
    assert get_from(s.bob, env.port, s.uuid, "127.0.0.2") == 404
    for i in range(3):
        status, _ = s.bob.put(env.port, "aq-bob-%d" % i, b"x")
        assert status == 201
    s.confdir = env.server.confdir
    return s


def test_who_read_this_key_when_and_from_where(story):
    rows, proc = audit_json(story.confdir, "--object", story.uuid, "--action", "deposit_read")
    got = sorted((r["actor"], r["remote_addr"], r["result"], r["count"]) for r in rows)
    assert got == sorted([(story.alice.fpr, "127.0.0.1", "ok", 1),
                          (story.alice.fpr, "127.0.0.3", "ok", 1),
                          (story.bob.fpr, "127.0.0.2", "not_found", 1)])
    for r in rows:
        assert r["org"] == story.org and r["object"] == story.uuid
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", r["at"]), r
    # newest first: ids fall
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    assert "no older rows" in proc.stderr
    # The same as a table: a header and a line per read, with its time.
    proc = audit(story.confdir, "--object", story.uuid.upper(), "--action", "deposit_read")
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["ID", "TIME", "(UTC)", "ACTION", "RESULT", "ACTOR", "ORG",
                                "OBJECT", "REMOTE", "COUNT"]
    assert len(lines) == 4
    for line in lines[1:]:
        f = line.split()
        assert f[2] == "deposit_read" and f[6] == story.uuid and f[-1] == "1"
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", f[1])
    assert {line.split()[7] for line in lines[1:]} == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}


def test_each_filter(story):
    a, b = story.alice.fpr, story.bob.fpr
    rows, _ = audit_json(story.confdir, "--client", a)
    assert {r["actor"] for r in rows} == {a}
    assert {r["action"] for r in rows} >= {"register", "deposit_create", "deposit_read"}
    # the fingerprint as the guide prints it, in lower case
    same, _ = audit_json(story.confdir, "--client", "4096R/" + a.lower())
    assert same == rows
    rows, _ = audit_json(story.confdir, "--org", story.org)
    assert {r["actor"] for r in rows} == {a, b}
    assert len(rows) == 2 + 1 + 3 + 3  # registers, alice's put, reads, bob's puts
    rows, _ = audit_json(story.confdir, "--org", story.org, "--action", "deposit_create")
    assert len(rows) == 4 and {r["result"] for r in rows} == {"ok"}
    rows, _ = audit_json(story.confdir, "--org", story.org, "--action", "register,deposit_read")
    assert len(rows) == 5
    rows, _ = audit_json(story.confdir, "--object", story.uuid, "--result", "not_found")
    assert [(r["actor"], r["remote_addr"]) for r in rows] == [(b, "127.0.0.2")]
    rows, _ = audit_json(story.confdir, "--object", story.uuid)
    assert sorted(r["action"] for r in rows) == ["deposit_create"] + ["deposit_read"] * 3
    # time: everything since t0; nothing before it, or since a minute ahead
    rows, _ = audit_json(story.confdir, "--org", story.org, "--since", story.t0)
    assert len(rows) == 9
    rows, _ = audit_json(story.confdir, "--org", story.org, "--since", "1h", "--until", "now")
    assert len(rows) == 9
    rows, proc = audit_json(story.confdir, "--org", story.org, "--until", story.t0)
    assert rows == [] and "no rows" in proc.stderr
    future = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 120))
    rows, _ = audit_json(story.confdir, "--client", a, "--since", future)
    assert rows == []
    # nobody's rows
    rows, _ = audit_json(story.confdir, "--client", "0" * 40)
    assert rows == []


def next_command(stderr):
    """The stderr's last line, "next page: ktadmin audit ...", as argv."""
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("next page: ktadmin audit "), stderr
    argv = shlex.split(last[len("next page: "):])
    return [binary("ktadmin")] + argv[1:]


def test_paging_walks_every_row_once(story):
    everything, _ = audit_json(story.confdir, "--org", story.org)
    want = [r["id"] for r in everything]
    # backwards from the newest, 3 at a time, by the hint's command
    seen = []
    proc = audit(story.confdir, "--org", story.org, "--json", "--limit", "3")
    while True:
        seen += [json.loads(line)["id"] for line in proc.stdout.splitlines()]
        if "next page:" not in proc.stderr:
            break
        argv = next_command(proc.stderr)
        assert argv.count("--before-id") == 1
        proc = run(argv, timeout=60)
        assert proc.returncode == 0, proc.stderr
    assert seen == want and len(set(seen)) == len(seen)
    assert "no older rows" in proc.stderr
    # forwards from the start: the same rows, oldest first; at the end the
    # hint still names the last id (later rows may come)
    seen = []
    proc = audit(story.confdir, "--org", story.org, "--json", "--limit", "4",
                 "--after-id", "0")
    for _ in range(10):
        page = [json.loads(line)["id"] for line in proc.stdout.splitlines()]
        if not page:
            break
        seen += page
        argv = next_command(proc.stderr)
        assert argv[argv.index("--after-id") + 1] == str(page[-1])
        proc = run(argv, timeout=60)
        assert proc.returncode == 0, proc.stderr
    assert seen == want[::-1]
    assert "no rows after that id yet" in proc.stderr


def test_failed_authentication_tallies_show_their_count(registry, dbconf, make_server,
                                                        session_db):
    srv = make_server(dbconf, name="aq-flood").start()
    src = "127.%d.%d.%d" % (200 + secrets.randbelow(50), secrets.randbelow(256),
                            2 + secrets.randbelow(250))
    conn = Conn(srv.port, src)
    try:
        for _ in range(37):
            status, _, _ = conn.request("GET", "/v1/deposits", bad_headers(0)[1])
            assert status == 401
    finally:
        conn.close()
    assert srv.stop() == 0  # writes the minute's tallies
    rows, _ = audit_json(dbconf, "--action", "auth", "--result", "no_header", "--since", "1h")
    mine = [r for r in rows if r["remote_addr"] == src]
    assert [(r["actor"], r["count"]) for r in mine] == [(None, 37)]
    proc = audit(dbconf, "--action", "auth", "--since", "1h")
    line = [ln for ln in proc.stdout.splitlines() if src in ln]
    assert len(line) == 1 and line[0].split()[-1] == "37"
    assert line[0].split()[4:6] == ["-", "-"]  # no actor, no org


@pytest.mark.parametrize("args,named", [
    (["--since", "2026-13-01"], "2026-13-01"),
    (["--until", "yesterday"], "yesterday"),
    (["--since", "2026-02-30T10:00"], "2026-02-30T10:00"),
    (["--since", "5y"], "5y"),
    (["--client", "4096R/XYZ"], "4096R/XYZ"),
    (["--client", "A" * 39], "A" * 39),
    (["--object", "not-a-uuid"], "not-a-uuid"),
    (["--object", "0" * 32], "0" * 32),
    (["--org", "a b"], "a b"),
    (["--action", "deposit_read,"], "deposit_read,"),
    (["--limit", "0"], "0"),
    (["--limit", "10001"], "10001"),
    (["--before-id", "-5"], "-5"),
    (["--after-id", "12x"], "12x"),
    (["--frobnicate"], "--frobnicate"),
    (["--since"], "--since"),
    (["extra"], "extra"),
])
def test_bad_input_exits_2_naming_it(args, named):
    proc = run([binary("ktadmin"), "audit", "--confdir", "/nonexistent"] + args, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and named in proc.stderr, proc.stderr
    assert proc.stdout == ""


def test_since_after_until_exits_2():
    proc = run([binary("ktadmin"), "audit", "--since", "2026-01-02", "--until", "2026-01-01"],
               timeout=30)
    assert proc.returncode == 2
    assert ("--since (2026-01-02T00:00:00.000000Z) is not before --until "
            "(2026-01-01T00:00:00.000000Z)") in proc.stderr


def test_cursor_options_exclude_each_other():
    proc = run([binary("ktadmin"), "audit", "--after-id", "1", "--before-id", "5"], timeout=30)
    assert proc.returncode == 2 and "one of --after-id and --before-id" in proc.stderr


# --------------------------------------------------------------------------
# a million rows: the indexes, in the plans of ktadmin's own queries


def psql_db(cluster, dbname, sql):
    proc = run([tool("runuser"), "-u", "keytrustee", "--", tool("psql"), "-h", cluster.rootdir,
                "-p", str(cluster.port), "-d", dbname, "-X", "-v", "ON_ERROR_STOP=1", "-Atc",
                sql], cwd="/", timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def big(registry, session_db):
    """A database of its own with the session's schema (dumped from the
    migrated database: the audit indexes and the grants) and BIG_ROWS rows
    over 30 days: 1,000 clients in 50 orgs, 100,000 deposits, a tally of
    failed authentication in every twentieth row; and a conf dir whose
    DB_CONNECT names it."""
    cluster = session_db.cluster
    name = "auditbig" + secrets.token_hex(3)
    psql_db(cluster, "postgres", "CREATE DATABASE %s OWNER keytrustee" % name)
    def schema(section):
        """pg_dump's section of the schema, loaded into the new database:
        the tables first, their indexes (and triggers) after the rows."""
        dump = run([tool("runuser"), "-u", "keytrustee", "--", tool("pg_dump"), "-h",
                    cluster.rootdir, "-p", str(cluster.port), "-d", "keytrustee", "-s",
                    "--section=" + section], cwd="/", timeout=120)
        assert dump.returncode == 0, dump.stderr
        proc = run([tool("runuser"), "-u", "keytrustee", "--", tool("psql"), "-h",
                    cluster.rootdir, "-p", str(cluster.port), "-d", name, "-X", "-q", "-v",
                    "ON_ERROR_STOP=1"], input=dump.stdout, cwd="/", timeout=300)
        assert proc.returncode == 0, proc.stderr

    schema("pre-data")
    started = time.monotonic()
    psql_db(cluster, name,
            "INSERT INTO schema_migrations (version, name) "
            "SELECT version, name FROM (VALUES (%s, 'copy')) v (version, name);"
            "INSERT INTO audit_log (at, actor, org, action, object, remote_addr, result, count) "
            "SELECT timestamptz '2026-01-01 00:00:00Z' + g * interval '2592 ms', "
            " CASE WHEN g %% 20 = 0 THEN NULL ELSE "
            "  lpad(upper(to_hex(g %% 1000)), 40, 'F') END, "
            " CASE WHEN g %% 20 = 0 THEN NULL ELSE 'org' || (g %% 1000) %% 50 END, "
            " CASE WHEN g %% 20 = 0 THEN 'auth' WHEN g %% 10 = 1 THEN 'deposit_create' "
            "  ELSE 'deposit_read' END, "
            " CASE WHEN g %% 20 = 0 THEN NULL ELSE "
            "  lpad(to_hex((g::bigint * 7919) %% 100000), 32, 'a')::uuid::text END, "
            " '10.0.' || (g %% 250) || '.' || (g %% 199), "
            " CASE WHEN g %% 20 = 0 THEN 'no_header' ELSE 'ok' END, "
            " CASE WHEN g %% 20 = 0 THEN 2 + g %% 50 ELSE 1 END "
            "FROM generate_series(1, %d) g"
            % (psql_db(cluster, "keytrustee", "SELECT max(version) FROM schema_migrations"),
               BIG_ROWS))
    schema("post-data")
    for idx in ("audit_log_object", "audit_log_at"):
        assert psql_db(cluster, name, "SELECT count(*) FROM pg_indexes WHERE indexname = '%s'"
                       % idx) == "1", idx
    psql_db(cluster, name, "VACUUM ANALYZE audit_log")
    print("generated %d rows in %.1f s" % (BIG_ROWS, time.monotonic() - started))
    conf = copy_confdir(registry, session_db.confdir, "aqbig")
    update_conf(conf, DB_CONNECT=read_conf(conf)["DB_CONNECT"] + " dbname=" + name)
    yield conf, cluster, name
    psql_db(cluster, "postgres", "DROP DATABASE %s" % name)


def plan(conf, *args):
    proc = audit(conf, "--explain", *args)
    assert "Execution Time" in proc.stdout, proc.stdout
    return proc.stdout


def test_big_object_query_uses_its_index(big):
    conf, cluster, name = big
    uuid = psql_db(cluster, name, "SELECT lpad(to_hex(4242), 32, 'a')::uuid::text")
    p = plan(conf, "--object", uuid, "--action", "deposit_read")
    assert "Bitmap Index Scan on audit_log_object" in p and "Seq Scan" not in p, p
    want = psql_db(cluster, name, "SELECT count(*) FROM audit_log WHERE object = '%s' "
                   "AND action = 'deposit_read'" % uuid)
    rows, _ = audit_json(conf, "--object", uuid.upper(), "--action", "deposit_read")
    assert len(rows) == int(want) > 0
    assert {r["object"] for r in rows} == {uuid}


def test_big_client_query_walks_the_key_newest_first(big):
    conf, cluster, name = big
    fpr = psql_db(cluster, name, "SELECT lpad(upper(to_hex(7)), 40, 'F')")
    p = plan(conf, "--client", fpr)
    assert "Index Scan Backward using audit_log_pkey" in p and "Seq Scan" not in p, p
    rows, proc = audit_json(conf, "--client", fpr, "--limit", "50")
    assert len(rows) == 50 and {r["actor"] for r in rows} == {fpr}
    assert "--before-id %d" % rows[-1]["id"] in proc.stderr
    # the next page, from its cursor down
    p = plan(conf, "--client", fpr, "--before-id", rows[-1]["id"])
    assert "Index Scan Backward using audit_log_pkey" in p and "Seq Scan" not in p, p
    # within a time, through the time's index
    p = plan(conf, "--client", fpr, "--since", "2026-01-10", "--until", "2026-01-11")
    assert "audit_log_at" in p and "Seq Scan" not in p, p


def test_big_time_range_uses_the_brin_index(big):
    conf, cluster, name = big
    # one day of thirty, in the middle; with an org and an action within it
    p = plan(conf, "--since", "2026-01-10", "--until", "2026-01-11")
    assert "audit_log_at" in p and "Seq Scan" not in p, p
    p = plan(conf, "--since", "2026-01-10T06:00Z", "--until", "2026-01-10T18:00Z",
             "--org", "org1", "--action", "deposit_create")
    assert "audit_log_at" in p and "Seq Scan" not in p, p
    rows, _ = audit_json(conf, "--since", "2026-01-10T06:00Z", "--until", "2026-01-10T18:00Z",
                         "--org", "org1", "--action", "deposit_create", "--limit", "10000")
    want = psql_db(cluster, name, "SELECT count(*) FROM audit_log WHERE org = 'org1' AND "
                   "action = 'deposit_create' AND at >= '2026-01-10T06:00Z' AND "
                   "at < '2026-01-10T18:00Z'")
    assert len(rows) == int(want) > 0
    # the tallies of failed authentication in that day: their counts kept
    rows, _ = audit_json(conf, "--since", "2026-01-10", "--until", "2026-01-11",
                         "--action", "auth", "--limit", "10000")
    assert rows and all(r["actor"] is None and r["count"] > 1 for r in rows)
