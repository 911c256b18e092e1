"""System tests of the server's client cache (src/server/authcache.c) and
the group commit of audit rows (src/server/auditq.c): a cached client's
change acts on its very next request, whoever made it (orgtool, psql, a
TRUNCATE, DDL); with the LISTEN connection gone the server reads the
database; every read and every new deposit has its committed audit row
when the answer arrives.

Reuses test_api's helpers, conftest's session PostgreSQL and a module
server.
"""

import base64
import os

import pytest

from conftest import binary, run
from test_api import as_json, env, new_org, registered, sql_quote  # noqa: F401 (env: fixture)


@pytest.fixture(scope="module")
def org(env):
    return new_org(env.cluster, "")


def warm(env, c):
    """Two requests: the first fills the cache, the second is served by it."""
    for _ in range(2):
        status, _ = c.list(env.port)
        assert status == 200


def orgtool(env, *args):
    return run([binary("keytrustee-orgtool"), "--confdir", env.server.confdir] + list(args))


def test_orgtool_disable_then_enable_acts_on_next_request(env, registry, org):
    c = registered(env, registry, org, "cachetool")
    warm(env, c)
    proc = orgtool(env, "disable-client", "--fingerprint", c.fpr)
    assert proc.returncode == 0, proc.stderr
    status, ans = c.list(env.port)
    assert status == 403 and ans["code"] == "client_disabled"
    proc = orgtool(env, "enable-client", "--fingerprint", c.fpr)
    assert proc.returncode == 0, proc.stderr
    status, _ = c.list(env.port)
    assert status == 200


def test_deleted_client_is_unknown_on_next_request(env, registry, org):
    c = registered(env, registry, org, "cachedel")
    warm(env, c)
    env.psql("DELETE FROM clients WHERE fingerprint = %s" % sql_quote(c.fpr))
    status, ans = c.list(env.port)
    assert status == 401 and ans["code"] == "unauthorized"


def test_org_change_and_ddl_drop_every_entry(env, registry, org):
    c = registered(env, registry, org, "cacheorg")
    warm(env, c)
    # A statement on orgs drops the whole cache: the new org name shows.
    env.psql("UPDATE clients SET state = 'disabled' WHERE fingerprint = %s; "
             "UPDATE orgs SET key_info = 'x' WHERE name = %s"
             % (sql_quote(c.fpr), sql_quote(org)))
    status, _ = c.list(env.port)
    assert status == 403
    env.psql("UPDATE clients SET state = 'active' WHERE fingerprint = %s" % sql_quote(c.fpr))
    warm(env, c)
    # DDL (what a restore from pg_dump does) drops everything too: here
    # the row trigger is off for the change, only the DDL notifies.
    env.psql("ALTER TABLE clients DISABLE TRIGGER clients_notify; "
             "UPDATE clients SET state = 'disabled' WHERE fingerprint = %s; "
             "ALTER TABLE clients ENABLE TRIGGER clients_notify" % sql_quote(c.fpr))
    status, _ = c.list(env.port)
    assert status == 403
    env.psql("UPDATE clients SET state = 'active' WHERE fingerprint = %s" % sql_quote(c.fpr))
    status, _ = c.list(env.port)
    assert status == 200


def test_listen_connection_killed_means_database_reads(env, registry, org):
    c = registered(env, registry, org, "cachekill")
    warm(env, c)
    killed = env.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                      "WHERE query LIKE 'LISTEN kt_clients%'")
    assert killed == "1"
    # No notification can arrive now; the change must show all the same.
    env.psql("UPDATE clients SET state = 'disabled' WHERE fingerprint = %s" % sql_quote(c.fpr))
    status, ans = c.list(env.port)
    assert status == 403 and ans["code"] == "client_disabled"
    env.psql("UPDATE clients SET state = 'active' WHERE fingerprint = %s" % sql_quote(c.fpr))
    status, _ = c.list(env.port)
    assert status == 200


def test_reads_and_puts_have_committed_audit_rows(env, registry, org):
    c = registered(env, registry, org, "cacheaudit")
    uuids = []
    for i in range(20):
        status, ans = c.put(env.port, "k%d" % i, os.urandom(64))
        assert status == 201
        uuids.append(ans["uuid"])
        # the row and its audit row are there when the answer is
        assert env.psql("SELECT count(*) FROM deposits WHERE uuid = '%s'" % ans["uuid"]) == "1"
        assert env.psql("SELECT count(*) FROM audit_log WHERE action = 'deposit_create' "
                        "AND object = '%s'" % ans["uuid"]) == "1"
    for u in uuids:
        status, ans = c.get(env.port, u)
        assert status == 200 and len(base64.b64decode(ans["content"])) == 64
        assert env.psql("SELECT actor || ' ' || org || ' ' || remote_addr FROM audit_log "
                        "WHERE action = 'deposit_read' AND object = '%s' AND result = 'ok'"
                        % u) == "%s %s 127.0.0.1" % (c.fpr, org)


def test_read_refused_when_its_audit_row_cannot_commit(env, registry, org):
    """No access without its audit row: a read whose row cannot be
    inserted is answered 503, with nothing of the deposit."""
    c = registered(env, registry, org, "cacheno")
    status, ans = c.put(env.port, "k", b"secret bytes")
    assert status == 201
    u = ans["uuid"]
    env.psql("CREATE FUNCTION refuse_reads() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             "IF NEW.action = 'deposit_read' THEN RAISE EXCEPTION 'no'; END IF; "
             "RETURN NEW; END $$; CREATE TRIGGER refuse_reads BEFORE INSERT ON audit_log "
             "FOR EACH ROW EXECUTE FUNCTION refuse_reads()")
    try:
        status, _, data = c.call(env.port, "GET", "/v1/deposits/" + u)
        assert status == 503 and as_json(data)["code"] == "database"
        assert b"content" not in data
    finally:
        env.psql("DROP TRIGGER refuse_reads ON audit_log; DROP FUNCTION refuse_reads()")
    status, ans = c.get(env.port, u)
    assert status == 200
