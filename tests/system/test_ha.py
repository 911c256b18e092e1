"""Active/passive HA (issue 5): two real PostgreSQL clusters and two servers
on loopback ports, set up by the guide's steps:

  active:  ktadmin init; ktadmin db --bootstrap
  passive: the active's config dir copied without .ssl (the guide's rsync
           --exclude .ssl), ktadmin init on the copy, then
           ktadmin db --bootstrap --passive --master-host H --master-port P
  active:  ktadmin db --enable-synchronous-replication

The module shares one HA pair; the tests run in file order and the later
ones are destructive (stop the passive, kill the active, promote).
"""

import http.client
import json
import os
import shutil
import signal
import ssl
import threading
import time
import urllib.error
import urllib.request

import hashlib
import hmac

import pytest

from conftest import (Cluster, Server, binary, copy_confdir, free_port, ktadmin, mode,
                      no_verify_context, read_conf, run, update_conf, wait_for)
from test_client import (add_org, client, err, new_client_dir, ok,
                         read_client_conf, register)


def copy_without_ssl(registry, src):
    """The guide's rsync -zcv --exclude .ssl of the active's config dir."""
    parent = registry.mkdtemp("passive-conf-")
    dst = os.path.join(parent, "conf")
    shutil.copytree(src, dst, symlinks=True, ignore=lambda d, names: [
        n for n in names
        if (d == src and n == ".ssl") or n.startswith("S.gpg-agent")
        or n.startswith("S.dirmngr")])
    registry.gnupg_home(dst)
    return dst


def request(url, confdir, method, target, body=None, timeout=30):
    """A request signed as the client; (status, JSON body) for any status."""
    conf = read_client_conf(confdir)
    fpr = conf["LOCAL_FINGERPRINT"].split("/")[-1]
    data = b"" if body is None else json.dumps(body).encode()
    ts = str(int(time.time()))
    msg = "\n".join([method, target, ts, hashlib.sha256(data).hexdigest()])
    sig = hmac.new(bytes.fromhex(conf["SECRET"]), msg.encode(),
                   hashlib.sha256).hexdigest()
    req = urllib.request.Request(url + target, method=method,
                                 data=data if body is not None else None)
    req.add_header("Authorization", "KT1-HMAC-SHA256 fp=%s,ts=%s,sig=%s" % (fpr, ts, sig))
    if body is not None:
        req.add_header("Content-Type", "application/json")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def raw_get(srv, target, source):
    """An unsigned GET from a given source address: (status, headers, body)."""
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=30,
                                       context=no_verify_context(),
                                       source_address=(source, 0))
    try:
        conn.request("GET", target)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def health(srv):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(srv.url + "/health", context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def deposit(name, content=b"k"):
    import base64
    return {"name": name, "content": base64.b64encode(content).decode()}



def postgres_pids(rootdir):
    """The postmaster of rootdir and its children."""
    with open(os.path.join(rootdir, "postmaster.pid")) as f:
        pm = int(f.readline())
    pids = [pm]
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if ppid == pm:
            pids.append(int(p))
    return pids


MASTER = "127.0.0.2"


class Pair:
    pass


@pytest.fixture(scope="module")
def ha(registry, template):
    p = Pair()
    # The active: init (the session template), bootstrap.
    p.aconf = copy_confdir(registry, template.confdir, "active")
    p.aport = free_port()
    # Both hosts use the same PORT in the guide; the passive names it.
    update_conf(p.aconf, PORT=p.aport)
    p.acluster = Cluster(registry, os.path.join(registry.mkdtemp("pg-active-"), "db"),
                         free_port())
    # --listen: the passive reaches the active's PostgreSQL on another
    # address than the loopback one DB_CONNECT uses (127.0.0.2 stands in
    # for the active host's address; pg_hba's replication line admits it).
    proc = ktadmin("db", "--bootstrap", "--confdir", p.aconf, "--pg-rootdir",
                   p.acluster.rootdir, "--port", p.acluster.port, "--listen", MASTER)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    p.abootstrap = proc
    # The passive: the guide's copy without .ssl, ktadmin init on it.
    p.pconf = copy_without_ssl(registry, p.aconf)
    assert not os.path.exists(os.path.join(p.pconf, ".ssl"))
    proc = ktadmin("init", "--confdir", p.pconf, "--hostname", "localhost")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    p.pcluster = Cluster(registry, os.path.join(registry.mkdtemp("pg-passive-"), "db"),
                         free_port())
    proc = ktadmin("db", "--bootstrap", "--passive", "--confdir", p.pconf,
                   "--pg-rootdir", p.pcluster.rootdir, "--port", p.pcluster.port,
                   "--master-host", MASTER, "--master-port", p.acluster.port)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    p.pbootstrap = proc
    proc = ktadmin("db", "--enable-synchronous-replication", "--confdir", p.aconf,
                   "--pg-rootdir", p.acluster.rootdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    p.syncon = proc
    p.active = Server(registry, p.aconf, port=p.aport, name="active").start()
    p.passive = Server(registry, p.pconf, name="passive").start()
    add_org(p.aconf, "ha-org")
    p.client = new_client_dir(registry, "ha-client")
    ok(register(p.client, p.active.url, "ha-org", "--skip-ssl-check",
                "--passive-server", p.passive.url))
    yield p
    p.passive.stop()
    p.active.stop()
    registry.kill_gnupg(p.client)


# --------------------------------------------------------------------------
# setup by the guide's steps


def test_setup_files_and_output(ha):
    assert "replication role keytrustee_repl" in ha.abootstrap.stdout
    for conf in (ha.aconf, ha.pconf):
        pw = os.path.join(conf, "replication.pw")
        assert mode(pw) == 0o600
    with open(os.path.join(ha.aconf, "replication.pw")) as a, \
            open(os.path.join(ha.pconf, "replication.pw")) as b:
        assert a.read() == b.read()
    assert os.path.exists(os.path.join(ha.pcluster.rootdir, "standby.signal"))
    assert "streaming from %s port %d" % (MASTER, ha.acluster.port) in ha.pbootstrap.stdout
    with open(os.path.join(ha.acluster.rootdir, "postgresql.conf")) as f:
        assert "listen_addresses = '127.0.0.1,%s'" % MASTER in f.read()
    # The passive's DB_CONNECT points at its own cluster.
    assert read_conf(ha.pconf)["DB_PORT"] == ha.pcluster.port
    assert "port=%d" % ha.pcluster.port in read_conf(ha.pconf)["DB_CONNECT"]
    # The same OpenPGP key on both: the same fingerprint.
    assert ha.active.fingerprint == ha.passive.fingerprint
    assert "Synchronous replication is on" in ha.syncon.stdout
    assert ha.acluster.psql("select application_name || ' ' || sync_state "
                            "from pg_stat_replication") == "keytrustee_passive sync"
    # The replication role's password is not kept anywhere in the clear
    # on the server side but the 0600 files.
    assert ha.acluster.psql("select rolreplication from pg_roles "
                            "where rolname = 'keytrustee_repl'") == "t"


def test_health_shows_roles_and_replication(ha):
    st, a = health(ha.active)
    assert st == 200 and a["role"] == "active" and a["writes"] is True
    r = a["replication"]
    assert r["synchronous"] is True and r["synchronous_standby"] is True
    assert r["state"] == "streaming" and r["standbys"] == 1
    assert isinstance(r["lag_bytes"], int) and isinstance(r["lag_seconds"], float)
    st, p = health(ha.passive)
    assert st == 200 and p["role"] == "passive" and p["writes"] is False
    assert p["replication"]["state"] == "streaming"
    assert p["replication"]["active"] == "https://%s:%d" % (MASTER, ha.aport)
    assert p["schema_version"] == a["schema_version"]
    # A replica gets no NOTIFY: the passive's deposit cache stays off and
    # every read goes to its database (the active's is on).
    assert a["deposit_cache"]["live"] is True
    assert p["deposit_cache"]["live"] is False and p["deposit_cache"]["deposits"] == 0


def test_fingerprint_same_on_both(ha):
    for srv in (ha.active, ha.passive):
        proc = run(["curl", "-sk", srv.url + "/?a=fingerprint"], check=True)
        assert proc.stdout == ha.active.fingerprint


def test_write_on_active_read_on_passive(ha):
    proc = ok(client(ha.client, "put", "--name", "ha-key", input=b"secret bytes"))
    u = ha.read_on_passive = proc.stdout.decode().strip()
    # remote_apply: acknowledged means applied on the passive.
    st, body = request(ha.passive.url, ha.client, "GET", "/v1/deposits/" + u)
    assert st == 200 and body["name"] == "ha-key"
    st, body = request(ha.passive.url, ha.client, "GET", "/v1/deposits?name=ha-key")
    assert st == 200 and [d["uuid"] for d in body["deposits"]] == [u]
    # The passive audits its reads in its journal (its database is read-only).
    journal = os.path.join(ha.pconf, "audit-passive.log")
    assert mode(journal) == 0o600
    with open(journal) as f:
        rows = [json.loads(line) for line in f]
    assert any(r["action"] == "deposit_read" and r["object"] == u and r["result"] == "ok"
               for r in rows)


def test_orgtool_on_the_passive_refuses_writes_reads_work(ha):
    proc = run([binary("keytrustee-orgtool"), "--confdir", ha.pconf, "add", "-n",
                "on-passive", "-c", "x@example.com"], timeout=30)
    assert proc.returncode == 1
    assert "passive server's database" in proc.stderr and "active" in proc.stderr
    proc = run([binary("keytrustee-orgtool"), "--confdir", ha.pconf, "list"], timeout=30)
    assert proc.returncode == 0 and "ha-org" in proc.stdout


def test_passive_answers_writes_503_naming_active(ha):
    st, body = request(ha.passive.url, ha.client, "POST", "/v1/deposits", deposit("w"))
    assert st == 503 and body["code"] == "passive"
    assert body["active"] == "https://%s:%d" % (MASTER, ha.aport)
    st, body = request(ha.passive.url, ha.client, "DELETE",
                       "/v1/deposits/00000000-0000-4000-8000-000000000000")
    assert st == 503 and body["code"] == "passive"


def test_passive_journals_failed_auth_tally_with_its_count(ha):
    """The passive's failed authentications are tallied by the minute
    (authfail.c) and the tally goes to its journal as one line with its
    count; test_promote finds it imported into audit_log."""
    src = ha.tally_source = "127.77.%d.%d" % (os.urandom(1)[0], 2 + os.urandom(1)[0] % 250)
    for _ in range(7):
        st, _, _ = raw_get(ha.passive, "/v1/deposits", src)
        assert st == 401
    journal = os.path.join(ha.pconf, "audit-passive.log")

    def tally():
        with open(journal) as f:
            rows = [json.loads(line) for line in f]
        return [r for r in rows if r.get("remote_addr") == src]
    rows = wait_for(tally, 75, "the passive's tally in its journal", interval=1.0)
    assert [(r["action"], r["result"], r["count"]) for r in rows] == [("auth", "no_header", 7)]
    assert rows[0].get("actor") is None


def test_cli_refusals(ha):
    # Synchronous replication is set on the active, not on the passive.
    proc = ktadmin("db", "--enable-synchronous-replication", "--confdir", ha.pconf,
                   "--pg-rootdir", ha.pcluster.rootdir)
    assert proc.returncode == 1 and "passive server's database" in proc.stderr
    # Promote refuses while the active still streams to the passive.
    proc = ktadmin("promote", "--confdir", ha.pconf, "--pg-rootdir", ha.pcluster.rootdir)
    assert proc.returncode == 1 and "still streams" in proc.stderr
    # ... and an active is already a primary.
    proc = ktadmin("promote", "--confdir", ha.aconf, "--pg-rootdir", ha.acluster.rootdir)
    assert proc.returncode == 1 and "already a primary" in proc.stderr


def test_stop_passive_writes_503_fast_reads_continue(ha):
    proc = ok(client(ha.client, "put", "--name", "before-stop", input=b"b"))
    u = proc.stdout.decode().strip()
    assert ktadmin("db", "--stop", "--pg-rootdir", ha.pcluster.rootdir).returncode == 0
    t0 = time.monotonic()
    while True:
        st, body = request(ha.active.url, ha.client, "POST", "/v1/deposits",
                           deposit("during-stop"), timeout=5)
        if st == 503:
            break
        assert st == 201, body
        assert time.monotonic() - t0 < 1.0, "writes still accepted after 1 s"
    assert time.monotonic() - t0 < 1.0, "the 503 took %.2fs" % (time.monotonic() - t0)
    assert body["code"] == "no_sync_standby"
    # Every further write is refused at once.
    t1 = time.monotonic()
    st, body = request(ha.active.url, ha.client, "POST", "/v1/deposits", deposit("x"))
    assert st == 503 and time.monotonic() - t1 < 1.0
    # Reads continue on the active.
    st, body = request(ha.active.url, ha.client, "GET", "/v1/deposits/" + u)
    assert st == 200 and body["name"] == "before-stop"
    # keytrustee-orgtool writes to the database itself: it refuses at once
    # (its commit would wait for the passive), writing nothing.
    t1 = time.monotonic()
    proc = run([binary("keytrustee-orgtool"), "--confdir", ha.aconf, "add", "-n",
                "while-passive-down", "-c", "x@example.com"], timeout=30)
    assert time.monotonic() - t1 < 5.0
    assert proc.returncode == 1, proc.stdout
    assert "no synchronous standby" in proc.stderr and "both servers" in proc.stderr
    assert ha.acluster.psql("select count(*) from orgs where name = 'while-passive-down'") == "0"
    # /health shows the monitor's view, refreshed every 200 ms.
    h = wait_for(lambda: (lambda r: r[1] if r[1]["writes"] is False else None)(
        health(ha.active)), 1.0, "/health showing writes refused")
    assert h["status"] == "ok" and h["replication"]["synchronous_standby"] is False

    # The passive comes back: writes resume without a restart, and the
    # replica catches up.
    assert ha.pcluster.start().returncode == 0
    created = wait_for(lambda: (lambda r: r[1]["uuid"] if r[0] == 201 else None)(
        request(ha.active.url, ha.client, "POST", "/v1/deposits", deposit("after-restart"))),
        30, "a write accepted after the passive restarted")
    st, body = request(ha.passive.url, ha.client, "GET", "/v1/deposits/" + created)
    assert st == 200 and body["name"] == "after-restart"
    wait_for(lambda: health(ha.passive)[1]["replication"]["state"] == "streaming", 10,
             "the passive streams again")


def test_partitioned_passive_write_refused_not_hung(ha):
    """A passive that stops answering without closing its connection (a
    network partition: its WAL receiver frozen with SIGSTOP) still shows as
    streaming until wal_sender_timeout; a write then is cancelled and
    answered 503 instead of hanging."""
    wait_for(lambda: health(ha.active)[1]["writes"], 30, "writes accepted")
    receivers = [pid for pid in postgres_pids(ha.pcluster.rootdir)
                 if b"walreceiver" in open("/proc/%d/cmdline" % pid, "rb").read()]
    assert len(receivers) == 1
    os.kill(receivers[0], signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        st, body = request(ha.active.url, ha.client, "POST", "/v1/deposits",
                           deposit("partitioned"), timeout=30)
        elapsed = time.monotonic() - t0
        assert st == 503 and body["code"] == "no_sync_standby", (st, body)
        assert elapsed < 4.0, "the write took %.1fs" % elapsed
        # Reads are not held up.
        st, _ = request(ha.active.url, ha.client, "GET", "/v1/deposits?name=x")
        assert st == 200
    finally:
        os.kill(receivers[0], signal.SIGCONT)
    wait_for(lambda: request(ha.active.url, ha.client, "POST", "/v1/deposits",
                             deposit("healed"))[0] == 201, 60, "writes after the partition")
    assert "cancelled" in ha.active.log()


def test_partitioned_passive_refuses_a_burst_as_one(ha):
    """Concurrent writes during a partition go to the server's group
    commit together: every one is answered with the single insert's 503,
    none hangs, and no deposit is kept without its deposit_create row."""
    wait_for(lambda: health(ha.active)[1]["writes"], 30, "writes accepted")
    receivers = [pid for pid in postgres_pids(ha.pcluster.rootdir)
                 if b"walreceiver" in open("/proc/%d/cmdline" % pid, "rb").read()]
    assert len(receivers) == 1
    answers = [None] * 8

    def writer(i):
        answers[i] = request(ha.active.url, ha.client, "POST", "/v1/deposits",
                             deposit("burst-part-%d" % i), timeout=30)
    os.kill(receivers[0], signal.SIGSTOP)
    try:
        threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        os.kill(receivers[0], signal.SIGCONT)
    for st, body in answers:
        assert st == 503 and body["code"] == "no_sync_standby", (st, body)
    # A cancelled wait may leave the rows committed on the active (they
    # reach the passive when it streams again): each with its audit row.
    assert ha.acluster.psql(
        "select count(*) from deposits d where name like 'burst-part-%' and not exists "
        "(select 1 from audit_log a where a.action = 'deposit_create' "
        "and a.object = d.uuid::text)") == "0"
    wait_for(lambda: request(ha.active.url, ha.client, "POST", "/v1/deposits",
                             deposit("healed-burst"))[0] == 201, 60, "writes after the partition")


def test_disable_synchronous_replication(ha):
    """Without synchronous replication the active writes alone."""
    proc = ktadmin("db", "--disable-synchronous-replication", "--confdir", ha.aconf,
                   "--pg-rootdir", ha.acluster.rootdir)
    assert proc.returncode == 0, proc.stderr
    assert "Synchronous replication is off" in proc.stdout
    assert ha.acluster.psql("show synchronous_standby_names") == ""
    assert ktadmin("db", "--stop", "--pg-rootdir", ha.pcluster.rootdir).returncode == 0
    try:
        wait_for(lambda: health(ha.active)[1]["replication"]["synchronous"] is False, 5,
                 "/health: synchronous off")
        st, body = request(ha.active.url, ha.client, "POST", "/v1/deposits", deposit("alone"))
        assert st == 201, body
        u = body["uuid"]
    finally:
        assert ha.pcluster.start().returncode == 0
    # The passive catches up with what was written while it was down.
    wait_for(lambda: request(ha.passive.url, ha.client, "GET", "/v1/deposits/" + u)[0] == 200,
             30, "the deposit written alone reaches the passive")
    wait_for(lambda: health(ha.active)[1]["replication"]["state"] == "streaming", 30,
             "streaming again")
    proc = ktadmin("db", "--enable-synchronous-replication", "--confdir", ha.aconf,
                   "--pg-rootdir", ha.acluster.rootdir)
    assert proc.returncode == 0, proc.stderr
    assert "not streaming" not in proc.stderr
    wait_for(lambda: health(ha.active)[1]["writes"], 5, "writes with sync on again")
    assert ha.acluster.psql("show synchronous_commit") == "remote_apply"


def test_client_reads_from_passive_when_active_killed(ha):
    proc = ok(client(ha.client, "put", "--name", "failover", input=b"fo"))
    u = proc.stdout.decode().strip()
    ha.active.proc.kill()
    ha.active.proc.wait(timeout=10)
    try:
        proc = ok(client(ha.client, "get", u, "--no-cache"))
        assert proc.stdout == b"fo" and "passive server" in err(proc)
        proc = ok(client(ha.client, "list"))
        assert u in proc.stdout.decode()
        # Writes go only to the active: refused, never sent to the passive.
        proc = client(ha.client, "put", "--name", "no", input=b"n")
        assert proc.returncode == 1 and ha.active.url in err(proc)
    finally:
        ha.active.start()


def test_client_passive_5xx_and_both_down_cache(ha):
    """A 5xx from one server sends reads to the other; both down: cache."""
    proc = ok(client(ha.client, "put", "--name", "cached", input=b"cc"))
    u = proc.stdout.decode().strip()
    ok(client(ha.client, "get", u))  # fills the cache
    # Active answers 5xx (its database is down): reads go to the passive.
    assert ha.acluster.status() == 0
    ktadmin("db", "--stop", "--pg-rootdir", ha.acluster.rootdir, check=True)
    try:
        st, _ = request(ha.active.url, ha.client, "GET", "/v1/deposits/" + u)
        assert st == 503
        proc = ok(client(ha.client, "get", u, "--no-cache"))
        assert proc.stdout == b"cc" and "passive server" in err(proc)
        # Both down: the cache answers.
        ha.passive.stop()
        proc = ok(client(ha.client, "get", u))
        assert proc.stdout == b"cc" and "cache" in err(proc)
    finally:
        assert ha.acluster.start().returncode == 0
        ha.passive.start()
    wait_for(lambda: health(ha.active)[1]["writes"], 30, "writes after restart")


def test_kill9_active_postgres_loses_no_acknowledged_deposit(ha):
    acked, stop = [], threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            try:
                st, body = request(ha.active.url, ha.client, "POST", "/v1/deposits",
                                   deposit("burst-%d" % i, b"v%d" % i), timeout=10)
            except OSError:
                continue
            if st == 201:
                acked.append(body["uuid"])
            i += 1

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        wait_for(lambda: len(acked) >= 10, 60, "10 acknowledged writes")
        for pid in postgres_pids(ha.acluster.rootdir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(1.0)
    finally:
        stop.set()
        t.join(timeout=60)
    assert len(acked) >= 10
    for u in acked:
        st, body = request(ha.passive.url, ha.client, "GET", "/v1/deposits/" + u)
        assert st == 200, (u, st, body)


def test_promote(ha):
    # The active's PostgreSQL is dead (previous test); stop its server too.
    ha.active.stop()
    proc = ktadmin("promote", "--confdir", ha.pconf, "--pg-rootdir", ha.pcluster.rootdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "now the active" in proc.stdout
    assert not os.path.exists(os.path.join(ha.pcluster.rootdir, "standby.signal"))
    # The running server notices within its check interval: no restart.
    wait_for(lambda: health(ha.passive)[1]["role"] == "active", 5, "role active")
    st, h = health(ha.passive)
    assert h["writes"] is True and h["replication"]["synchronous"] is False
    st, body = request(ha.passive.url, ha.client, "POST", "/v1/deposits",
                       deposit("after-promote"))
    assert st == 201, body
    st, body = request(ha.passive.url, ha.client, "GET", "/v1/deposits/" + body["uuid"])
    assert st == 200 and body["name"] == "after-promote"
    # The reads it served as the passive are in audit_log now, and its
    # journal is kept aside.
    wait_for(lambda: [n for n in os.listdir(ha.pconf)
                      if n.startswith("audit-passive.log.imported-")], 5,
             "journal imported:\n" + ha.passive.log()[-2000:])
    assert not os.path.exists(os.path.join(ha.pconf, "audit-passive.log"))
    assert ha.pcluster.psql("select count(*) from audit_log where action = 'deposit_read' "
                            "and object = '%s' and result = 'ok'" % ha.read_on_passive) != "0"
    # ... the failed authentications' tally too, with its count.
    assert ha.pcluster.psql("select action || ' ' || result || ' ' || count from audit_log "
                            "where remote_addr = '%s'" % ha.tally_source) == "auth no_header 7"
    # The audit goes to the database again.
    assert ha.pcluster.psql("select count(*) from audit_log where action = "
                            "'deposit_create' and result = 'ok'") != "0"


# --------------------------------------------------------------------------
# the new options: --help, bad option, missing argument


def test_db_help_lists_ha_options():
    proc = ktadmin("db", "--help")
    assert proc.returncode == 0
    for opt in ("--passive", "--master-host", "--master-port",
                "--enable-synchronous-replication", "--disable-synchronous-replication",
                "--listen"):
        assert opt in proc.stdout


@pytest.mark.parametrize("args,msg", [
    (["--bootstrap", "--passive", "--pg-rootdir", "/nonexistent/x"],
     "--passive needs --master-host"),
    (["--bootstrap", "--master-host", "h", "--pg-rootdir", "/nonexistent/x"],
     "need --passive"),
    (["--start", "--passive", "--master-host", "h", "--pg-rootdir", "/nonexistent/x"],
     "go with --bootstrap"),
    (["--bootstrap", "--passive", "--master-host", "a b", "--pg-rootdir", "/x"],
     "--master-host: \"a b\" is not a host"),
    (["--bootstrap", "--passive", "--master-host", "h", "--master-port", "0",
      "--pg-rootdir", "/x"], "--master-port: \"0\" is not a port"),
    (["--bootstrap", "--passive", "--master-host"], "--master-host"),
    (["--bootstrap", "--passive", "--master-host", "h", "--master-port"], "--master-port"),
    (["--bootstrap", "--listen", "a b", "--pg-rootdir", "/x"], "--listen: \"a b\""),
    (["--bootstrap", "--listen", "x,,y", "--pg-rootdir", "/x"], "--listen: \"x,,y\""),
    (["--bootstrap", "--listen"], "--listen"),
    (["--status", "--listen", "*", "--pg-rootdir", "/x"], "--listen goes with --bootstrap"),
    (["--enable-synchronous-replication", "--disable-synchronous-replication",
      "--pg-rootdir", "/x"], "cannot be combined"),
])
def test_db_ha_option_errors(args, msg):
    proc = ktadmin("db", *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and msg in proc.stderr, proc.stderr


def test_passive_bootstrap_without_replication_password(registry, template):
    conf = copy_confdir(registry, template.confdir, "norepl")
    update_conf(conf, DB_CONNECT="host=127.0.0.1 port=1 dbname=keytrustee "
                "user=keytrustee password=00")
    root = os.path.join(registry.mkdtemp("pg-norepl-"), "db")
    proc = ktadmin("db", "--bootstrap", "--passive", "--confdir", conf,
                   "--pg-rootdir", root, "--port", free_port(),
                   "--master-host", "127.0.0.1", "--master-port", free_port())
    assert proc.returncode == 1
    assert "replication.pw is missing" in proc.stderr and "hint: copy" in proc.stderr
    assert not os.path.exists(root) or os.listdir(root) == []


def test_passive_bootstrap_active_down(registry, template):
    """pg_basebackup cannot reach the active: a clear error, an empty root."""
    conf = copy_confdir(registry, template.confdir, "nomaster")
    update_conf(conf, DB_CONNECT="host=127.0.0.1 port=1 dbname=keytrustee "
                "user=keytrustee password=00")
    with open(os.path.join(conf, "replication.pw"), "w") as f:
        f.write("ab" * 32 + "\n")
    os.chmod(os.path.join(conf, "replication.pw"), 0o600)
    root = os.path.join(registry.mkdtemp("pg-nomaster-"), "db")
    proc = ktadmin("db", "--bootstrap", "--passive", "--confdir", conf,
                   "--pg-rootdir", root, "--port", free_port(),
                   "--master-host", "127.0.0.1", "--master-port", free_port())
    assert proc.returncode == 1
    assert "error: pg_basebackup from 127.0.0.1" in proc.stderr
    assert "hint: the active's PostgreSQL must be running" in proc.stderr
    assert not os.path.exists(root) or os.listdir(root) == []
    # A replication password open to others is refused, with its mode.
    os.chmod(os.path.join(conf, "replication.pw"), 0o644)
    proc = ktadmin("db", "--bootstrap", "--passive", "--confdir", conf,
                   "--pg-rootdir", root, "--port", free_port(),
                   "--master-host", "127.0.0.1")
    assert proc.returncode == 1 and "0644" in proc.stderr, proc.stderr


def test_promote_help_and_errors():
    proc = ktadmin("promote", "--help")
    assert proc.returncode == 0 and "--pg-rootdir" in proc.stdout
    proc = ktadmin("promote", "--bogus")
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")
    proc = ktadmin("promote", "--pg-rootdir")
    assert proc.returncode == 2 and "--pg-rootdir" in proc.stderr
    proc = ktadmin("promote")
    assert proc.returncode == 2 and "--pg-rootdir is required" in proc.stderr
    proc = ktadmin("promote", "--pg-rootdir", "/nonexistent/db")
    assert proc.returncode == 1 and "not a PostgreSQL cluster" in proc.stderr
