"""ktadmin db: bootstrap, status, stop, start --background.

This module has its own cluster (it stops and starts it); the session's
cluster is left alone."""

import http.client
import json
import os
import pwd
import re

import pytest

from conftest import (Cluster, copy_confdir, free_port, ktadmin, mode,
                      no_verify_context, read_conf)


@pytest.fixture(scope="module")
def db(registry, template):
    confdir = copy_confdir(registry, template.confdir, "dbtest")
    rootdir = os.path.join(registry.mkdtemp("dbtest-pg-"), "pgdata")
    cluster = Cluster(registry, rootdir, free_port())
    proc = cluster.bootstrap(confdir)
    cluster.confdir = confdir
    yield cluster, proc
    cluster.stop()


def test_bootstrap_succeeds(db):
    cluster, proc = db
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cluster.status() == 0


def test_bootstrap_writes_conf(db):
    cluster, proc = db
    conf = read_conf(cluster.confdir)
    assert conf["DB_PORT"] == cluster.port
    dbc = conf["DB_CONNECT"]
    assert isinstance(dbc, str) and dbc
    assert re.search(r"\bport=%d\b" % cluster.port, dbc), dbc
    assert "dbname=keytrustee" in dbc
    # earlier settings are kept
    assert conf["TLS_MIN_VERSION"] == "tlsv1.2"
    assert "SSL_CERTIFICATE" in conf
    # it may hold a password: still 0600
    assert mode(os.path.join(cluster.confdir, "keytrustee.conf")) == 0o600
    assert mode(cluster.confdir) == 0o700


def test_data_dir_owned_by_keytrustee(db):
    cluster, _ = db
    st = os.stat(cluster.rootdir)
    assert pwd.getpwuid(st.st_uid).pw_name == "keytrustee"
    assert mode(cluster.rootdir) == 0o700
    assert os.path.isfile(os.path.join(cluster.rootdir, "PG_VERSION"))


def test_listens_on_loopback_port(db):
    cluster, _ = db
    import socket
    with socket.create_connection(("127.0.0.1", cluster.port), timeout=5):
        pass


def test_schema_migrations(db):
    cluster, _ = db
    rows = int(cluster.psql("select count(*) from schema_migrations"))
    assert rows >= 1
    assert cluster.schema_version() >= 1
    owner = cluster.psql("select pg_catalog.pg_get_userbyid(datdba) from pg_database "
                         "where datname = 'keytrustee'")
    assert owner == "keytrustee"


def test_bootstrap_existing_cluster_fails(db, registry, template):
    cluster, _ = db
    before = cluster.schema_version()
    other_conf = copy_confdir(registry, template.confdir, "dbtest-again")
    proc = ktadmin("db", "--bootstrap", "--confdir", other_conf,
                   "--pg-rootdir", cluster.rootdir, "--port", free_port())
    assert proc.returncode != 0, proc.stdout
    assert "error:" in proc.stderr
    assert cluster.rootdir in proc.stderr or "exist" in proc.stderr.lower(), proc.stderr
    # nothing was harmed
    assert cluster.status() == 0
    assert cluster.schema_version() == before
    assert "DB_CONNECT" not in read_conf(other_conf)


def test_stop_status_start(db):
    cluster, _ = db
    cluster.psql("create table if not exists t_persist (x int); "
                 "insert into t_persist values (42)")
    assert cluster.status() == 0

    proc = ktadmin("db", "--stop", "--pg-rootdir", cluster.rootdir)
    assert proc.returncode == 0, proc.stderr
    assert cluster.status() == 3
    assert not os.path.exists(os.path.join(cluster.rootdir, "postmaster.pid"))

    proc = cluster.start()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cluster.status() == 0
    assert cluster.psql("select x from t_persist") == "42"
    assert cluster.schema_version() >= 1


def test_status_of_missing_cluster(registry):
    proc = ktadmin("db", "--status", "--pg-rootdir",
                   os.path.join(registry.mkdtemp("nopg-"), "absent"))
    assert proc.returncode != 0
    assert proc.returncode == 3 or "error:" in proc.stderr


def test_server_migrates_an_older_schema_at_start(db, make_server):
    """After an upgrade the operator only restarts the server: it brings
    the database to its schema (here: a database left at version 1)."""
    cluster, _ = db
    latest = cluster.schema_version()
    assert latest >= 2
    cluster.psql("drop table mail_outbox, contact_keys, contact_tokens, "
                 "deposits, clients, orgs; "
                 "delete from schema_migrations where version >= 2")
    assert cluster.schema_version() == 1
    srv = make_server(cluster.confdir)
    srv.start()
    assert cluster.schema_version() == latest
    assert cluster.psql("select count(*) from orgs") == "0"
    assert "migrated from version 1 to %d" % latest in srv.log()
    status, body = _health(srv.port)
    assert status == 200 and body["schema_version"] == latest
    assert body["status"] == "ok"


def test_health_is_degraded_on_a_schema_it_does_not_have(db, make_server):
    cluster, _ = db
    srv = make_server(cluster.confdir)
    srv.start()
    # a newer binary's migration has been applied under this server
    cluster.psql("insert into schema_migrations (version, name) "
                 "values (9999, 'from-the-future')")
    try:
        status, body = _health(srv.port)
        assert status == 503
        assert body["status"] == "degraded"
        assert body["schema_version"] == 9999
    finally:
        cluster.psql("delete from schema_migrations where version = 9999")


def _health(port):
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10,
                                       context=no_verify_context())
    try:
        conn.request("GET", "/health")
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_deposit_content_is_stored_without_compression(db):
    """Sealed deposits are AES-GCM ciphertext, incompressible: the schema
    (migration 7) tells PostgreSQL not to try compressing them, and keeps
    one of up to ~8 KB in its row rather than in TOAST chunks."""
    cluster, _ = db
    assert cluster.schema_version() >= 7
    assert cluster.psql("select attstorage from pg_attribute where attrelid = "
                        "'deposits'::regclass and attname = 'content'") == "e"
    assert cluster.psql("select reloptions from pg_class where oid = "
                        "'deposits'::regclass") == "{toast_tuple_target=8160}"
