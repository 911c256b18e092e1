"""The database's two roles (issue 19, item 4; docs/server.md "The database
roles").

keytrustee-server connects (DB_CONNECT) as keytrustee_server: no superuser,
no owner of the tables, so no SET session_replication_role and no trigger
bypass, and no UPDATE, DELETE or TRUNCATE of audit_log.  The admin role
keytrustee (superuser, owner) is kept in CONFDIR/db-admin.conninfo for
migrations, backups, restores and the replication settings.  A cluster
bootstrapped before the two roles (DB_CONNECT the superuser's) is moved to
them by the server's start.

This module has its own cluster (it changes roles and the schema); the
session's cluster is left alone."""

import json
import os
import re
import ssl
import subprocess
import urllib.request

import pytest

from conftest import (Cluster, binary, copy_confdir, free_port, ktadmin, mode,
                      read_conf, run, tool, update_conf)
from test_client import add_org, client, new_client_dir, ok, orgtool, register

ADMIN_FILE = "db-admin.conninfo"
SCRIPTS = os.path.join(os.path.dirname(binary("ktadmin")), "..", "..", "scripts")
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
with open(os.path.join(ROOT, "src", "common", "db.h")) as _f:
    LATEST = int(re.search(r"#define DB_SCHEMA_VERSION (\d+)", _f.read()).group(1))


def conninfo_fields(ci):
    return dict((m.group(1), m.group(3) if m.group(3) is not None else m.group(2))
                for m in re.finditer(r"(\w+)\s*=\s*('([^']*)'|\S+)", ci))


def psql_as(conninfo, sql, check=True):
    """psql over TCP with a conninfo (the server's or the admin's)."""
    proc = run([tool("psql"), "-X", "-v", "ON_ERROR_STOP=1", "-Atc", sql,
                "-d", conninfo], cwd="/")
    if check:
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()
    return proc


def server_ci(confdir):
    return read_conf(confdir)["DB_CONNECT"]


def admin_ci(confdir):
    with open(os.path.join(confdir, ADMIN_FILE)) as f:
        over = f.read().strip()
    return server_ci(confdir) + " " + over


def health(srv):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(srv.url + "/health", context=ctx, timeout=10) as r:
        return json.loads(r.read())


def server_usernames(cluster):
    """The roles of the running server's sessions (application keytrustee)."""
    return set(cluster.psql("select usename from pg_stat_activity "
                            "where application_name = 'keytrustee'").split())


@pytest.fixture(scope="module")
def kts(registry, template):
    class K:
        pass
    k = K()
    k.confdir = copy_confdir(registry, template.confdir, "dbrole")
    k.cluster = Cluster(registry, os.path.join(registry.mkdtemp("dbrole-pg-"), "db"),
                        free_port())
    k.boot = k.cluster.bootstrap(k.confdir)
    assert k.boot.returncode == 0, k.boot.stdout + k.boot.stderr
    yield k
    k.cluster.stop()


@pytest.fixture(scope="module")
def srv(registry, kts):
    from conftest import Server
    s = Server(registry, kts.confdir, name="dbrole").start()
    yield s
    s.stop()
    registry.kill_gnupg(kts.confdir)


# --------------------------------------------------------------------------
# a new bootstrap


def test_bootstrap_writes_both_roles(kts):
    assert "The server connects as keytrustee_server" in kts.boot.stdout
    assert "NOTICE" not in kts.boot.stdout + kts.boot.stderr
    f = conninfo_fields(server_ci(kts.confdir))
    assert f["user"] == "keytrustee_server" and len(f["password"]) == 64
    path = os.path.join(kts.confdir, ADMIN_FILE)
    assert mode(path) == 0o600
    assert os.stat(path).st_uid == os.stat(kts.confdir).st_uid
    a = conninfo_fields(open(path).read())
    assert a["user"] == "keytrustee" and a["password"] != f["password"]
    # the admin owns the database and every table; the server owns nothing
    assert kts.cluster.psql(
        "select count(*) from pg_tables where schemaname = 'public' "
        "and tableowner <> 'keytrustee'") == "0"
    assert kts.cluster.psql(
        "select rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls "
        "from pg_roles where rolname = 'keytrustee_server'") == "f|f|f|f|f"
    assert kts.cluster.schema_version() == LATEST


def test_server_session_is_not_superuser(kts, srv):
    assert health(srv)["database"] == "ok" or health(srv)["status"] == "ok"
    ci = server_ci(kts.confdir)
    assert psql_as(ci, "select current_user, rolsuper from pg_roles "
                       "where rolname = current_user") == "keytrustee_server|f"
    assert psql_as(ci, "show is_superuser") == "off"
    # and the running server's own sessions are that role's
    assert server_usernames(kts.cluster) == {"keytrustee_server"}


def test_no_trigger_bypass_for_the_server_role(kts, srv):
    ci = server_ci(kts.confdir)
    proc = psql_as(ci, "set session_replication_role = replica", check=False)
    assert proc.returncode != 0
    assert "permission denied" in proc.stderr, proc.stderr
    proc = psql_as(ci, "alter table audit_log disable trigger audit_log_append_only",
                   check=False)
    assert proc.returncode != 0 and "must be owner" in proc.stderr, proc.stderr
    proc = psql_as(ci, "create table kt_evil (x int)", check=False)
    assert proc.returncode != 0 and "permission denied" in proc.stderr, proc.stderr


@pytest.mark.parametrize("sql", [
    "delete from audit_log",
    "update audit_log set result = 'forged'",
    "truncate audit_log",
    "begin; set local session_replication_role = replica; delete from audit_log; commit",
])
def test_audit_log_cannot_be_changed_by_the_server_role(kts, srv, sql):
    ci = server_ci(kts.confdir)
    # the server appends (a row as it writes them), and only appends
    psql_as(ci, "insert into audit_log (actor, action, object, result) "
                "values ('test', 'probe', 'x', 'ok')")
    before = kts.cluster.psql("select count(*), max(id) from audit_log")
    assert before.split("|")[0] != "0"
    proc = psql_as(ci, sql, check=False)
    assert proc.returncode != 0
    assert "permission denied" in proc.stderr, proc.stderr
    assert kts.cluster.psql("select count(*), max(id) from audit_log") == before


def test_server_works_as_its_role(registry, kts, srv):
    """register, deposit, get, delete over the restricted role; every step
    audited."""
    add_org(kts.confdir, "role-org")  # keytrustee-orgtool: DB_CONNECT too
    c = new_client_dir(registry, "role-client")
    ok(register(c, srv.url, "role-org", "--skip-ssl-check"))
    u = ok(client(c, "put", "--name", "k1", input=b"secret bytes")).stdout.decode().strip()
    assert ok(client(c, "get", u)).stdout == b"secret bytes"
    ok(client(c, "delete", u))
    assert kts.cluster.psql("select count(*) from audit_log "
                            "where action like '%deposit%' or action like '%register%'") != "0"
    assert kts.cluster.psql("select count(*) from deposits") == "0"
    proc = orgtool(kts.confdir, "list")
    assert proc.returncode == 0 and "role-org" in proc.stdout
    registry.kill_gnupg(c)


def test_ktadmin_db_paths_use_the_admin(kts, srv):
    # ALTER SYSTEM needs the superuser: through db-admin.conninfo
    for flag, want in (("--enable-synchronous-replication", "keytrustee_passive"),
                       ("--disable-synchronous-replication", "")):
        proc = ktadmin("db", flag, "--confdir", kts.confdir,
                       "--pg-rootdir", kts.cluster.rootdir)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert kts.cluster.psql("show synchronous_standby_names") == want
    assert ktadmin("db", "--status", "--pg-rootdir", kts.cluster.rootdir).returncode == 0


def test_ktbackup_dumps_as_the_admin(kts, srv, registry):
    out = registry.mkdtemp("dbrole-bak-")
    env = dict(os.environ, KEYTRUSTEE_HOME=os.path.dirname(kts.confdir))
    proc = run([os.path.join(SCRIPTS, "ktbackup.sh"), "--confdir", kts.confdir,
                "--cleartext", "--output=" + out], env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tars = [f for f in os.listdir(out) if f.endswith(".tar")]
    assert len(tars) == 1
    lst = run(["tar", "-xOf", os.path.join(out, tars[0]), "--wildcards", "*.sql"],
              check=True).stdout
    # the whole database, its owner and the server role's grants
    assert "COPY public.audit_log" in lst and "COPY public.schema_migrations" in lst
    assert "OWNER TO keytrustee;" in lst
    assert "TO keytrustee_server;" in lst


def test_server_without_the_admin_file(kts, srv, registry, make_server):
    """The admin's password may be kept off the host: the server still
    serves a database at its schema, and refuses, naming the file, one it
    would have to migrate."""
    conf = copy_confdir(registry, kts.confdir, "dbrole-noadmin")
    os.unlink(os.path.join(conf, ADMIN_FILE))
    s = make_server(conf).start()
    assert health(s)["schema_version"] == LATEST
    assert conninfo_fields(server_ci(conf))["user"] == "keytrustee_server"
    s.stop()
    name = kts.cluster.psql("select name from schema_migrations where version = %d" % LATEST)
    kts.cluster.psql("delete from schema_migrations where version = %d" % LATEST)
    try:
        s = make_server(conf)
        s.spawn()
        assert s.wait(timeout=30) != 0
        want = "schema version %d and this program needs %d" % (
            kts.cluster.schema_version(), LATEST)
        assert want in s.log() and ADMIN_FILE in s.log(), s.log()
    finally:
        kts.cluster.psql("insert into schema_migrations (version, name) "
                         "values (%d, '%s')" % (LATEST, name))


# --------------------------------------------------------------------------
# a cluster bootstrapped before the two roles


def make_old_cluster(registry, template, name):
    """A cluster as the previous release's 'ktadmin db --bootstrap' left it:
    DB_CONNECT is the superuser keytrustee's, schema version 8, no role
    keytrustee_server, no db-admin.conninfo.  Made by bootstrapping and then
    undoing exactly what this release adds."""
    confdir = copy_confdir(registry, template.confdir, name)
    cluster = Cluster(registry, os.path.join(registry.mkdtemp(name + "-pg-"), "db"),
                      free_port())
    proc = cluster.bootstrap(confdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    admin = conninfo_fields(open(os.path.join(confdir, ADMIN_FILE)).read())
    old_ci = "host=127.0.0.1 port=%d dbname=keytrustee user=keytrustee password=%s" % (
        cluster.port, admin["password"])
    update_conf(confdir, DB_CONNECT=old_ci)
    os.unlink(os.path.join(confdir, ADMIN_FILE))
    cluster.psql("delete from schema_migrations where version > 8; "
                 "drop owned by keytrustee_server; drop role keytrustee_server")
    assert cluster.schema_version() == 8
    return confdir, cluster, old_ci


def test_old_cluster_is_moved_to_the_roles_at_start(registry, template, make_server):
    confdir, cluster, old_ci = make_old_cluster(registry, template, "dbrole-old")
    # data of the old release stays (its orgtool wrote this row)
    cluster.psql("insert into orgs (name, uuid, auth_secret) "
                 "values ('old-org', repeat('A', 43), '')")
    assert psql_as(old_ci, "select rolsuper from pg_roles "
                           "where rolname = current_user") == "t"
    s = make_server(confdir).start()
    assert "migrated from version 8 to %d" % LATEST in s.log()
    assert "DB_CONNECT now connects as keytrustee_server" in s.log()
    assert "NOTICE" not in s.log()
    ci = server_ci(confdir)
    # neither password reaches the log
    for pw in (conninfo_fields(old_ci)["password"], conninfo_fields(ci)["password"]):
        assert pw not in s.log()
    assert conninfo_fields(ci)["user"] == "keytrustee_server"
    assert mode(os.path.join(confdir, "keytrustee.conf")) == 0o600
    # the old superuser credentials are the admin's now
    path = os.path.join(confdir, ADMIN_FILE)
    assert mode(path) == 0o600
    a = conninfo_fields(open(path).read())
    assert a["user"] == "keytrustee" and a["password"] == conninfo_fields(old_ci)["password"]
    # the running server is the restricted role, and it works
    assert server_usernames(cluster) == {"keytrustee_server"}
    proc = psql_as(ci, "set session_replication_role = replica", check=False)
    assert proc.returncode != 0 and "permission denied" in proc.stderr
    proc = psql_as(ci, "delete from audit_log", check=False)
    assert proc.returncode != 0 and "permission denied" in proc.stderr
    assert health(s)["schema_version"] == LATEST
    c = new_client_dir(registry, "old-client")
    ok(register(c, s.url, "old-org", "--skip-ssl-check"))
    u = ok(client(c, "put", "--name", "k", input=b"after the move")).stdout.decode().strip()
    assert ok(client(c, "get", u)).stdout == b"after the move"
    # a restart changes nothing more
    s.restart()
    assert server_ci(confdir) == ci
    assert server_usernames(cluster) == {"keytrustee_server"}
    assert ok(client(c, "get", u)).stdout == b"after the move"
    registry.kill_gnupg(c)
    s.stop()
    cluster.stop()


def test_old_cluster_ktadmin_admin_paths_before_the_move(registry, template):
    """Before any new server started, ktadmin's admin paths use the old
    DB_CONNECT (the superuser's)."""
    confdir, cluster, old_ci = make_old_cluster(registry, template, "dbrole-old2")
    proc = ktadmin("db", "--enable-synchronous-replication", "--confdir", confdir,
                   "--pg-rootdir", cluster.rootdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = ktadmin("db", "--disable-synchronous-replication", "--confdir", confdir,
                   "--pg-rootdir", cluster.rootdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert server_ci(confdir) == old_ci
    cluster.stop()


def test_old_ha_pair_is_moved_on_both_servers(registry, template, make_server):
    """An HA pair from before the two roles: the active's start makes the
    role, and the passive, whose replica it cannot write, derives the same
    password from its copy of the admin's and moves too."""
    from test_ha import copy_without_ssl
    aconf, acluster, old_ci = make_old_cluster(registry, template, "dbrole-ha-a")
    # the passive: the guide's copy of the (old) active's config dir
    pconf = copy_without_ssl(registry, aconf)
    assert ktadmin("init", "--confdir", pconf, "--hostname", "localhost").returncode == 0
    pcluster = Cluster(registry, os.path.join(registry.mkdtemp("dbrole-ha-p-"), "db"),
                       free_port())
    proc = ktadmin("db", "--bootstrap", "--passive", "--confdir", pconf,
                   "--pg-rootdir", pcluster.rootdir, "--port", pcluster.port,
                   "--master-host", "127.0.0.1", "--master-port", acluster.port)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the active has no keytrustee_server yet: the passive keeps the old one
    assert "has no role keytrustee_server yet" in proc.stderr
    assert conninfo_fields(server_ci(pconf))["user"] == "keytrustee"
    os.unlink(os.path.join(pconf, ADMIN_FILE))  # as the old release left it

    active = make_server(aconf, name="dbrole-ha-active").start()
    assert conninfo_fields(server_ci(aconf))["user"] == "keytrustee_server"
    from conftest import wait_for
    wait_for(lambda: pcluster.psql("select count(*) from pg_roles "
                                   "where rolname = 'keytrustee_server'") == "1",
             what="the role replicated to the passive")
    passive = make_server(pconf, name="dbrole-ha-passive").start()
    assert "DB_CONNECT now connects as keytrustee_server" in passive.log()
    pci = server_ci(pconf)
    assert conninfo_fields(pci)["user"] == "keytrustee_server"
    assert "port=%d" % pcluster.port in pci
    assert server_usernames(pcluster) == {"keytrustee_server"}
    assert server_usernames(acluster) == {"keytrustee_server"}
    # the HA monitors read replication as before, as the restricted role
    h = health(passive)
    assert h["role"] == "passive" and h["replication"]["state"] == "streaming"
    assert h["replication"]["active_host"] == "127.0.0.1", h
    h = health(active)
    assert h["role"] == "active" and h["replication"]["standbys"] == 1, h
    passive.stop()
    active.stop()
    pcluster.stop()
    acluster.stop()


def test_restore_of_a_new_backup_into_an_old_cluster(registry, template, kts, srv):
    """ktadmin restore --force of a backup made with the two roles (its dump
    grants to keytrustee_server) over a cluster from before them: the role
    is made before the load, and the restored config dir connects as it."""
    add_org(kts.confdir, "restore-org")
    out = registry.mkdtemp("dbrole-bak2-")
    env = dict(os.environ, KEYTRUSTEE_HOME=os.path.dirname(kts.confdir))
    proc = run([os.path.join(SCRIPTS, "ktbackup.sh"), "--confdir", kts.confdir,
                "--cleartext", "--output=" + out], env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tar = os.path.join(out, [f for f in os.listdir(out) if f.endswith(".tar")][0])
    orgs = kts.cluster.psql("select string_agg(name, ',' order by name) from orgs")
    assert orgs
    confdir, cluster, old_ci = make_old_cluster(registry, template, "dbrole-old3")
    proc = ktadmin("restore", tar, "--confdir", confdir, "--pg-rootdir",
                   cluster.rootdir, "--force", timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cluster.psql("select string_agg(name, ',' order by name) from orgs") == orgs
    ci = server_ci(confdir)
    assert conninfo_fields(ci)["user"] == "keytrustee_server"
    assert "port=%d" % cluster.port in ci
    assert psql_as(ci, "select count(*) from orgs") == str(len(orgs.split(",")))
    proc = psql_as(ci, "delete from audit_log", check=False)
    assert proc.returncode != 0 and "permission denied" in proc.stderr
    # the cluster's admin is still the old superuser, now in the file
    a = conninfo_fields(open(os.path.join(confdir, ADMIN_FILE)).read())
    assert a["password"] == conninfo_fields(old_ci)["password"]
    cluster.stop()
