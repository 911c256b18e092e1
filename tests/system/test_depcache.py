"""System tests of the server's deposit cache (src/server/depcache.c): a GET
is answered from memory, and whatever changes a stored deposit - the API's
DELETE, a psql DELETE or UPDATE, a TRUNCATE, DDL - acts on the very next
request; rows another program inserts are read in without a request; the
memory bound holds; --deposit-cache-mb 0 turns it off; with the LISTEN
connection gone every read goes to the database.

Reuses test_api's helpers, conftest's session PostgreSQL and a module
server.
"""

import json
import os
import time

import pytest

from conftest import binary, copy_confdir, run, wait_for
from test_api import Client, env, http_request, new_org, registered, sql_quote  # noqa: F401 (env: fixture)


@pytest.fixture(scope="module")
def org(env):
    return new_org(env.cluster, "")


@pytest.fixture(scope="module")
def carol(env, registry, org):
    return registered(env, registry, org, "carol")


def cache(port):
    status, _, data = http_request(port, "GET", "/health")
    return json.loads(data)["deposit_cache"]


def cached_put(env, c, name, content):
    """A deposit, read once so that it is in the cache."""
    status, ans = c.put(env.port, name, content)
    assert status == 201
    status, got = c.get(env.port, ans["uuid"])
    assert status == 200
    return ans["uuid"]


def reads_in_db(env, uuid):
    return int(env.psql("SELECT count(*) FROM audit_log WHERE action = 'deposit_read' "
                        "AND object = %s AND result = 'ok'" % sql_quote(uuid)))


def test_health_shows_the_cache(env, carol):
    c = cache(env.port)
    assert c["live"] is True
    assert c["limit_bytes"] > 0 and 0 <= c["bytes"] <= c["limit_bytes"]
    before = c["deposits"]
    cached_put(env, carol, "health", b"k" * 100)
    assert cache(env.port)["deposits"] == before + 1


def test_cached_read_is_the_same_answer_and_audited(env, carol):
    uuid = cached_put(env, carol, "same", b"\x00\x01secret\xff")
    status, first = carol.get(env.port, uuid)
    status2, second = carol.get(env.port, uuid)
    assert status == status2 == 200 and first == second
    assert first["content"] == "AAFzZWNyZXT/" and first["description"] is None
    # Every read, cached or not, has its committed audit row.
    assert reads_in_db(env, uuid) == 3


def test_api_delete_acts_on_next_request(env, carol):
    uuid = cached_put(env, carol, "apidel", b"gone soon")
    status, _ = carol.delete(env.port, uuid)
    assert status == 200
    status, ans = carol.get(env.port, uuid)
    assert status == 404 and ans["code"] == "not_found"


def test_psql_delete_acts_on_next_request(env, carol):
    uuid = cached_put(env, carol, "psqldel", b"gone soon")
    env.psql("DELETE FROM deposits WHERE uuid = %s" % sql_quote(uuid))
    status, ans = carol.get(env.port, uuid)
    assert status == 404 and ans["code"] == "not_found"


def test_psql_tamper_of_cached_row_is_integrity_error(env, carol):
    uuid = cached_put(env, carol, "tamper", b"precious")
    env.psql("UPDATE deposits SET content = set_byte(content, 3, get_byte(content, 3) # 1) "
             "WHERE uuid = %s" % sql_quote(uuid))
    status, ans = carol.get(env.port, uuid)
    assert status == 500 and ans["code"] == "integrity"


def test_other_clients_cached_deposit_is_not_found(env, registry, org, carol):
    uuid = cached_put(env, carol, "mine", b"carol's")
    dave = Client(registry, "dave")
    assert dave.register(env.port, org)[0] == 201
    status, ans = dave.get(env.port, uuid)
    assert status == 404 and ans["code"] == "not_found"


def test_rows_inserted_elsewhere_are_read_in(env, carol):
    """A row put back by psql (as a restore by hand would) comes into the
    cache without any request for it."""
    uuid = cached_put(env, carol, "elsewhere", b"round trip")
    row = env.psql("SELECT owner, name, encode(nonce, 'hex'), encode(content, 'hex') "
                   "FROM deposits WHERE uuid = %s" % sql_quote(uuid)).split("|")
    env.psql("DELETE FROM deposits WHERE uuid = %s" % sql_quote(uuid))
    wait_for(lambda: carol.get(env.port, uuid)[0] == 404, 10, "the delete")
    n = cache(env.port)["deposits"]
    env.psql("INSERT INTO deposits (uuid, owner, name, nonce, content) VALUES "
             "(%s, %s, %s, decode(%s, 'hex'), decode(%s, 'hex'))"
             % (sql_quote(uuid), sql_quote(row[0]), sql_quote(row[1]), sql_quote(row[2]),
                sql_quote(row[3])))
    wait_for(lambda: cache(env.port)["deposits"] >= n + 1, 10, "the fill %s" % cache(env.port))
    before = reads_in_db(env, uuid)
    status, got = carol.get(env.port, uuid)
    assert status == 200 and got["name"] == "elsewhere"
    assert reads_in_db(env, uuid) == before + 1


def test_ddl_and_truncate_empty_the_cache(env, carol):
    cached_put(env, carol, "ddl", b"x")
    assert cache(env.port)["deposits"] > 0
    env.psql("ALTER TABLE deposits ALTER COLUMN description SET DEFAULT NULL")
    # Emptied, then read in again from the table (the rows are all there).
    want = int(env.psql("SELECT count(*) FROM deposits"))
    wait_for(lambda: cache(env.port)["deposits"] == want, 10, "the refill")
    uuid = cached_put(env, carol, "trunc", b"y")
    env.psql("TRUNCATE deposits")
    status, ans = carol.get(env.port, uuid)
    assert status == 404 and ans["code"] == "not_found"
    assert cache(env.port)["deposits"] == 0


def test_ddl_alone_empties_the_cache(env, carol):
    """A delete that no row trigger reports (its trigger disabled around
    it, in one transaction) is still seen: the DDL's notification empties
    the deposit cache at commit."""
    uuid = cached_put(env, carol, "ddlonly", b"w")
    env.psql("BEGIN; ALTER TABLE deposits DISABLE TRIGGER deposits_notify; "
             "DELETE FROM deposits WHERE uuid = %s; "
             "ALTER TABLE deposits ENABLE TRIGGER deposits_notify; COMMIT" % sql_quote(uuid))
    status, ans = carol.get(env.port, uuid)
    assert status == 404 and ans["code"] == "not_found"


def test_ddl_flush_is_whole_before_the_next_request(env, carol):
    """A "*" empties every stripe of the cache at once, not one after the
    other while reads go on: emptying 8 MB of buckets in place took ~100 ms,
    in which a deleted deposit was still read from the stripes not reached
    yet (and the client notifications queued behind it waited).  Eight
    rounds, each read right after the commit."""
    uuids = [cached_put(env, carol, "whole%d" % i, b"v%d" % i) for i in range(8)]
    for i, uuid in enumerate(uuids):
        env.psql("BEGIN; ALTER TABLE deposits DISABLE TRIGGER deposits_notify; "
                 "DELETE FROM deposits WHERE uuid = %s; "
                 "ALTER TABLE deposits ENABLE TRIGGER deposits_notify; COMMIT"
                 % sql_quote(uuid))
        status, ans = carol.get(env.port, uuid)
        assert status == 404 and ans["code"] == "not_found", "round %d" % i
        if i + 1 < len(uuids):
            status, _ = carol.get(env.port, uuids[i + 1])
            assert status == 200


def test_listen_connection_killed_means_database_reads(env, carol):
    uuid = cached_put(env, carol, "killed", b"z")
    killed = env.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                      "WHERE query LIKE 'LISTEN kt_clients%'")
    assert killed == "1"
    # Off (and emptied) as soon as the listener sees its connection go;
    # it listens again at once, emptied again.  Either way the delete is
    # seen on the next request.
    wait_for(lambda: "client and deposit caches off" in env.server.log(), 10,
             "the caches to go off")
    env.psql("DELETE FROM deposits WHERE uuid = %s" % sql_quote(uuid))
    status, _ = carol.get(env.port, uuid)
    assert status == 404
    wait_for(lambda: cache(env.port)["live"], 10, "the cache to come back")


def server_with(registry, session_db, make_server, name, *args):
    confdir = copy_confdir(registry, session_db.confdir, name)
    srv = make_server(confdir, name=name, extra_args=list(args))
    srv.start()
    registry.gnupg_home(os.path.join(confdir, ".clients-gnupg"))
    return srv


def test_memory_bound_holds(registry, session_db, make_server, org, carol):
    srv = server_with(registry, session_db, make_server, "smallcache",
                      "--deposit-cache-mb", "1")
    uuids = [carol.put(srv.port, "b%d" % i, os.urandom(2048))[1]["uuid"] for i in range(700)]
    for u in uuids:
        assert carol.get(srv.port, u)[0] == 200
    c = cache(srv.port)
    assert c["limit_bytes"] == 1 << 20
    assert 0 < c["bytes"] <= c["limit_bytes"] and c["deposits"] < 700
    # Full, not stuck: misses made room for themselves.
    assert c["bytes"] > c["limit_bytes"] * 0.9
    # Evicted or not, every deposit still reads back.
    assert all(carol.get(srv.port, u)[0] == 200 for u in uuids[:50])


def test_cache_off_with_zero(registry, session_db, make_server, carol):
    srv = server_with(registry, session_db, make_server, "nocache", "--deposit-cache-mb", "0")
    status, ans = carol.put(srv.port, "off", b"no cache")
    assert carol.get(srv.port, ans["uuid"])[0] == 200
    c = cache(srv.port)
    assert c["limit_bytes"] == 0 and c["deposits"] == 0


@pytest.mark.parametrize("value", ["abc", "-1", "16777217", ""])
def test_bad_deposit_cache_mb(session_db, value):
    proc = run([binary("keytrustee-server"), "--confdir", session_db.confdir,
                "--deposit-cache-mb", value])
    assert proc.returncode == 2
    assert "error: --deposit-cache-mb: \"%s\" is not a number from 0 to 16777216" % value \
        in proc.stderr


def test_help_names_the_option():
    proc = run([binary("keytrustee-server"), "--help"])
    assert proc.returncode == 0 and "--deposit-cache-mb N" in proc.stdout
