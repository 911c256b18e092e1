"""The guide's HA procedure through kt-agent's Actions, on two hosts.

Two kt-agents, each with its own state dir, PARCELS_ROOT, config dir,
database root and ports, and its own --host name: 127.0.0.2 (active) and
127.0.0.3 (passive).  Those are real, distinct addresses on lo, and the
host names are what the descriptor substitutes (${active_host} is where
the passive's PostgreSQL streams from), so the passive reaches the
active's database over an address that is not 127.0.0.1 only because
keytrustee_server_db_listen made it listen there.  Each agent has its own
deployment.json with the same assignment; the per-host --set values are
what a console's role config groups would be (the two databases need two
ports on one machine, hence keytrustee_server_active_db_port).

  active:  assign; "Set Up Key Trustee Server Database"; Start
  passive: rsync -zcrv --exclude .ssl of the active's config dir;
           ktadmin init; --role DB_PASSIVE SetupPassiveDatabase; Start
  active:  "Enable Synchronous Replication in HA mode"
  then a client with --passive-server: put on the active, get from the
  passive (the active server stopped), the passive answers a write 503;
  Stop on both, nothing left running.

The tests run in file order on one pair.
"""

import os
import pwd

import pytest

from conftest import free_port, ktadmin, mode, read_conf, run, tool, wait_for
from agent_helpers import (VERSION, Agent, build_csd, build_parcel, stop_supervisor, sweep,
                           unpack_csd)
from test_client import add_org, client, err, ok, register
from test_ha import deposit, request

TOP = "KEYTRUSTEE_SERVER-" + VERSION
ACTIVE, PASSIVE = "127.0.0.2", "127.0.0.3"


class Host:
    pass


class Pair:
    pass



def menu(agent, *args):
    proc = agent("actions", *args)
    assert proc.returncode == 0, proc.stderr
    return {l.split()[0]: l for l in proc.stdout.splitlines()}


def fingerprint(url):
    proc = run([tool("curl"), "-sk", "--max-time", "5", url + "/?a=fingerprint"])
    return proc.stdout.strip() if proc.returncode == 0 else None


def new_host(registry, base, name, addr):
    h = Host()
    h.base = os.path.join(base, name)
    h.agent = Agent(h.base, host=addr)
    h.addr = addr
    kt = os.path.join(h.base, "kt")
    os.makedirs(kt)
    kt_pw = pwd.getpwnam("keytrustee")
    os.chown(kt, kt_pw.pw_uid, kt_pw.pw_gid)
    h.kt = kt
    h.confdir = registry.gnupg_home(os.path.join(kt, ".keytrustee"))
    h.db_root = os.path.join(kt, "db")
    h.port, h.db_port = free_port(), free_port()
    h.url = "https://%s:%d" % (addr, h.port)
    return h


def assign_args(p, h, *extra, hosts=(ACTIVE, PASSIVE)):
    roles = ["--active", ACTIVE] + (["--passive", PASSIVE] if PASSIVE in hosts else [])
    return ["assign", "--descriptor", os.path.join(p.csd, "descriptor", "keytrustee.yaml"),
            "--csd", p.csd, "--hosts", ",".join(hosts)] + roles + [
            "--set", "keytrustee_server_conf_dir=" + h.confdir,
            "--set", "db_root=" + h.db_root,
            "--set", "keytrustee_server_port=%d" % h.port,
            "--set", "keytrustee_server_db_port=%d" % h.db_port,
            "--set", "keytrustee_server_db_listen=" + h.addr] + list(extra)


def stop_host(h):
    """Teardown: stop through the agent, then anything a failure left."""
    stop_supervisor(h.agent)
    sweep(h.base, h.db_root)


@pytest.fixture(scope="module")
def pair(registry):
    p = Pair()
    p.base = registry.mkdtemp("agent-ha-")
    p.parcel = build_parcel(VERSION, os.path.join(p.base, "repo"))
    p.csd = unpack_csd(build_csd(p.base), os.path.join(p.base, "csd"))
    p.a = new_host(registry, p.base, "kts01", ACTIVE)
    p.p = new_host(registry, p.base, "kts02", PASSIVE)
    p.client = registry.gnupg_home(os.path.join(registry.mkdtemp("agent-ha-client-"), "kt"))
    yield p
    # The passive first: its standby would retry a stopped active forever.
    stop_host(p.p)
    stop_host(p.a)
    for d in (p.a.confdir, p.p.confdir, p.client):
        registry.kill_gnupg(d)


def test_assign_two_hosts(pair):
    for h in (pair.a, pair.p):
        assert h.agent("parcel", "install", pair.parcel).returncode == 0
        assert h.agent("parcel", "activate", TOP).returncode == 0
    a = pair.a.agent
    # One host: there is no passive, so no synchronous replication.
    proc = a(*assign_args(pair, pair.a, hosts=(ACTIVE,)))
    assert proc.returncode == 0, proc.stderr
    assert "KEYTRUSTEE_PASSIVE_SERVER  (none)" in proc.stdout
    m = menu(a)
    assert "unavailable: no DB_PASSIVE in the deployment" in m["SetupSyncReplicationCommand"]
    proc = a("exec", "SetupSyncReplicationCommand")
    assert proc.returncode == 1
    assert ("error: Enable Synchronous Replication in HA mode needs a DB_PASSIVE; "
            "the deployment has none") in proc.stderr
    assert "hint: assign DB_PASSIVE to a host first" in proc.stderr
    proc = a("exec", "--role", "DB_ACTIVE", "EnableSyncReplication")
    assert proc.returncode == 1 and "needs a DB_PASSIVE" in proc.stderr
    # Two hosts, each agent its own view of the same assignment.
    proc = a(*assign_args(pair, pair.a))
    assert proc.returncode == 0, proc.stderr
    assert "KEYTRUSTEE_PASSIVE_SERVER  %s" % PASSIVE in proc.stdout
    proc = pair.p.agent(*assign_args(pair, pair.p, "--set",
                                     "keytrustee_server_active_db_port=%d" % pair.a.db_port))
    assert proc.returncode == 0, proc.stderr
    m = menu(a)
    assert m["SetupKeyTrusteeServerDatabase"].endswith("available")
    assert "needs DB_ACTIVE running (it is stopped)" in m["SetupSyncReplicationCommand"]
    assert "no KEYTRUSTEE_PASSIVE_SERVER on this host" in m["BackupAndSetupCronJob-Passive"]
    m = menu(pair.p.agent)
    assert "no DB_ACTIVE on this host" in m["SetupKeyTrusteeServerDatabase"]
    assert "no DB_ACTIVE on this host" in m["SetupSyncReplicationCommand"]
    assert "no KEYTRUSTEE_ACTIVE_SERVER on this host" in m["BackupAndSetupCronJob-Active"]
    m = menu(pair.p.agent, "--role", "DB_PASSIVE")
    assert m["SetupPassiveDatabase"].endswith("available")


def test_set_up_and_start_active(pair):
    a = pair.a
    proc = a.agent("exec", "SetupKeyTrusteeServerDatabase", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # keytrustee_server_db_listen reached ktadmin db --bootstrap --listen.
    with open(os.path.join(a.db_root, "postgresql.conf")) as f:
        assert "listen_addresses = '127.0.0.1,%s'" % ACTIVE in f.read()
    proc = a.agent("exec", "Start")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert wait_for(lambda: fingerprint(a.url), 30, "the active answers")


def test_set_up_passive(pair):
    a, p = pair.a, pair.p
    # Before the copy there is nothing to bootstrap from: a clear error.
    proc = p.agent("exec", "--role", "DB_PASSIVE", "SetupPassiveDatabase")
    assert proc.returncode == 1
    assert "has no keytrustee.conf" in proc.stderr and "rsync --exclude .ssl" in proc.stderr
    assert not os.path.exists(os.path.join(p.db_root, "PG_VERSION"))
    # The guide's rsync -zcv --exclude .ssl; without -r rsync skips a
    # directory ("skipping directory"), so -r is added.
    proc = run([tool("rsync"), "-zcrv", "--exclude", ".ssl",
                a.confdir, p.kt + "/."], timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert os.path.exists(os.path.join(p.confdir, "keytrustee.conf"))
    assert not os.path.exists(os.path.join(p.confdir, ".ssl"))
    assert mode(os.path.join(p.confdir, "replication.pw")) == 0o600
    # The guide's manual step on the passive.
    proc = ktadmin("init", "--confdir", p.confdir, "--hostname", PASSIVE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.path.isdir(os.path.join(p.confdir, ".ssl"))
    proc = p.agent("exec", "--role", "DB_PASSIVE", "SetupPassiveDatabase", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pdir = proc.stdout.strip().rsplit("; ", 1)[1].rstrip(")")
    with open(os.path.join(pdir, "logs", "stdout.log")) as f:
        out = f.read()
    assert "streaming from %s port %d" % (ACTIVE, a.db_port) in out
    assert os.path.exists(os.path.join(p.db_root, "standby.signal"))
    with open(os.path.join(p.db_root, "postgresql.conf")) as f:
        assert "listen_addresses = '127.0.0.1,%s'" % PASSIVE in f.read()
    assert read_conf(p.confdir)["DB_PORT"] == p.db_port
    proc = p.agent("exec", "Start")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "DB_PASSIVE: running" in proc.stdout
    assert "KEYTRUSTEE_PASSIVE_SERVER: running" in proc.stdout
    # The same key on both.
    assert wait_for(lambda: fingerprint(p.url), 30, "the passive answers") == \
        fingerprint(a.url)


def test_enable_synchronous_replication(pair):
    a, p = pair.a, pair.p
    m = menu(a.agent)
    assert m["SetupSyncReplicationCommand"].endswith("available")
    proc = a.agent("exec", "SetupSyncReplicationCommand")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("Enable Synchronous Replication in HA mode on DB_ACTIVE: "
                                  "done (exit 0;")
    from test_ha import health

    class S:
        url = a.url

    def synced():
        st, h = health(S)
        r = h.get("replication", {})
        return st == 200 and h["role"] == "active" and r.get("synchronous_standby") and h
    h = wait_for(synced, 10, "the active sees a synchronous standby")
    assert h["replication"]["synchronous"] is True and h["replication"]["standbys"] == 1
    S.url = p.url
    st, h = health(S)
    assert st == 200 and h["role"] == "passive" and h["writes"] is False
    assert h["replication"]["state"] == "streaming"


def test_client_puts_on_active_gets_from_passive(pair):
    a, p = pair.a, pair.p
    add_org(a.confdir, "ha-agent-org")
    ok(register(pair.client, a.url, "ha-agent-org", "--skip-ssl-check",
                "--passive-server", p.url))
    proc = ok(client(pair.client, "put", "--name", "ha-agent-key", input=b"ha secret"))
    uuid = proc.stdout.decode().strip()
    # With the active server stopped, the get can only come from the passive.
    proc = a.agent("stop", "KEYTRUSTEE_ACTIVE_SERVER")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert fingerprint(a.url) is None
    proc = ok(client(pair.client, "get", uuid, "--no-cache"))
    assert proc.stdout == b"ha secret"
    # The passive answers a write 503, naming the active host.
    st, body = request(p.url, pair.client, "POST", "/v1/deposits", deposit("w"))
    assert st == 503 and body["code"] == "passive"
    assert body["active"].startswith("https://%s:" % ACTIVE)
    proc = client(pair.client, "put", "--name", "while-down", input=b"x")
    assert proc.returncode != 0, err(proc)
    proc = a.agent("start", "KEYTRUSTEE_ACTIVE_SERVER")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wait_for(lambda: fingerprint(a.url), 30, "the active answers again")
    ok(client(pair.client, "put", "--name", "after", input=b"y"))


def test_actions_while_running(pair):
    m = menu(pair.a.agent)
    assert "needs DB_ACTIVE stopped (it is running)" in m["SetupKeyTrusteeServerDatabase"]
    assert m["SetupSyncReplicationCommand"].endswith("available")
    assert m["BackupAndSetupCronJob-Active"].endswith("available")
    m = menu(pair.p.agent)
    assert m["BackupAndSetupCronJob-Passive"].endswith("available")
    assert "no DB_ACTIVE on this host" in m["SetupSyncReplicationCommand"]
    m = menu(pair.p.agent, "--role", "DB_PASSIVE")
    assert "needs DB_PASSIVE stopped (it is running)" in m["SetupPassiveDatabase"]
    proc = pair.p.agent("exec", "--role", "DB_PASSIVE", "SetupPassiveDatabase")
    assert proc.returncode == 1
    assert "needs DB_PASSIVE stopped; it is running" in proc.stderr


def test_stop_both(pair):
    for h, roles in ((pair.p, ["DB_PASSIVE", "KEYTRUSTEE_PASSIVE_SERVER"]),
                     (pair.a, ["DB_ACTIVE", "KEYTRUSTEE_ACTIVE_SERVER"])):
        proc = h.agent("exec", "Stop")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.splitlines() == ["%s: stopped" % r for r in roles]
        assert h.agent("status").returncode == 3
        wait_for(lambda: h.agent.supervisor_pid() is None, 10, "the supervisor exits")
        assert fingerprint(h.url) is None
        assert ktadmin("db", "--status", "--pg-rootdir", h.db_root).returncode == 3
    # Nothing of either host is left running.
    left = [l for l in run(["pgrep", "-f", pair.base]).stdout.split()]
    assert left == [], [open("/proc/%s/cmdline" % x, errors="replace").read() for x in left]
