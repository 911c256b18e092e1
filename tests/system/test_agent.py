"""The managed service end to end, as an operator drives it through
kt-agent: build the parcel and the CSD, install and activate the parcel
under a temporary PARCELS_ROOT, assign the roles to one host, "Set Up Key
Trustee Server Database" (ktadmin init + db --bootstrap), Start, the
fingerprint over curl, a client put/get, "Create Backup on Active Server"
(a tarball and the hourly cron entry at a re-rooted path), the supervisor
restarting a server killed with -9, an upgrade to a second parcel version
and the rollback, and Stop.  The tests of this module run in order on one
deployment."""

import glob
import json
import os
import pwd
import re
import signal
import subprocess
import time

import pytest

from conftest import (FPR_RE, binary, free_port, gpg_fingerprints, ktadmin,
                      mode, run, tool, wait_for)
from agent_helpers import (VERSION, Agent, build_csd, build_parcel, stop_supervisor, sweep,
                           unpack_csd)

VERSION2 = "1.0.1"
TOP = "KEYTRUSTEE_SERVER-" + VERSION
TOP2 = "KEYTRUSTEE_SERVER-" + VERSION2


class Deployment:
    pass



def owner(path):
    return pwd.getpwuid(os.stat(path).st_uid).pw_name


def proc_uid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])


def status(dep):
    """{role: (state, pid)} from kt-agent status."""
    proc = dep.agent("status")
    out = {}
    for line in proc.stdout.splitlines():
        f = line.split()
        pid = int(f[f.index("pid") + 1]) if "pid" in f else 0
        out[f[0]] = (f[1], pid)
    return out


def fingerprint(port):
    proc = run([tool("curl"), "-sk", "--max-time", "5",
                "https://127.0.0.1:%d/?a=fingerprint" % port])
    return proc.stdout.strip() if proc.returncode == 0 else None


def client(dep, *args, input=None):
    return subprocess.run([binary("keytrustee-client"), "--confdir", dep.client_dir]
                          + [str(a) for a in args], input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120,
                          stdin=None if input is not None else subprocess.DEVNULL)


@pytest.fixture(scope="module")
def dep(registry):
    d = Deployment()
    d.base = registry.mkdtemp("agent-")
    d.repo = os.path.join(d.base, "repo")
    d.parcel = build_parcel(VERSION, d.repo)
    d.csd = unpack_csd(build_csd(d.base), os.path.join(d.base, "csd"))
    d.agent = Agent(d.base, host="localhost")
    kt = os.path.join(d.base, "kt")
    os.makedirs(kt)
    d.confdir = registry.gnupg_home(os.path.join(kt, ".keytrustee"))
    d.db_root = os.path.join(kt, "db")
    d.backup = os.path.join(d.base, "backup")
    d.cron = os.path.join(d.base, "cron.d")
    d.cron_file = os.path.join(d.cron, "keytrustee-backup")
    for p in (d.backup, d.cron):
        os.makedirs(p)
    for p in (kt, d.backup):
        os.chown(p, pwd.getpwnam("keytrustee").pw_uid, pwd.getpwnam("keytrustee").pw_gid)
    d.port, d.db_port = free_port(), free_port()
    d.client_dir = registry.gnupg_home(os.path.join(registry.mkdtemp("agent-client-"), "kt"))
    yield d
    # Teardown: stop through the agent, then make sure nothing is left.
    stop_supervisor(d.agent)
    # Role processes a failed test may have orphaned (servers first).
    try:
        roles = json.load(open(os.path.join(d.agent.state, "status.json")))["roles"]
    except (OSError, ValueError, KeyError):
        roles = {}
    for role in ("KEYTRUSTEE_ACTIVE_SERVER", "DB_ACTIVE"):
        pid = roles.get(role, {}).get("pid", 0)
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if d.base.encode() in f.read():
                    os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    sweep(d.base, d.db_root)
    registry.kill_gnupg(d.confdir)
    registry.kill_gnupg(d.client_dir)


def test_install_and_assign(dep):
    a = dep.agent
    proc = a("parcel", "install", dep.parcel)
    assert proc.returncode == 0, proc.stderr
    # Nothing runs without an active parcel.
    dep.assign = ["assign", "--descriptor",
                  os.path.join(dep.csd, "descriptor", "keytrustee.yaml"),
                  "--csd", dep.csd, "--hosts", "localhost",
                  "--set", "keytrustee_server_conf_dir=" + dep.confdir,
                  "--set", "db_root=" + dep.db_root,
                  "--set", "keytrustee_server_port=%d" % dep.port,
                  "--set", "keytrustee_server_db_port=%d" % dep.db_port,
                  "--set", "backup_output_dir=" + dep.backup,
                  "--set", "backup_cron_file=" + dep.cron_file]
    proc = a(*dep.assign)
    assert proc.returncode == 0, proc.stderr
    proc = a("exec", "SetupKeyTrusteeServerDatabase")
    assert proc.returncode == 1
    assert "error: no KEYTRUSTEE_SERVER parcel is active under %s" % a.parcels in proc.stderr
    proc = a("start")
    assert proc.returncode == 1
    assert "error: no KEYTRUSTEE_SERVER parcel is active under %s" % a.parcels in proc.stderr
    assert a.supervisor_pid() is None
    assert a("parcel", "activate", TOP).returncode == 0
    proc = a("actions")
    assert proc.returncode == 0
    menu = {l.split()[0]: l for l in proc.stdout.splitlines()}
    assert list(menu) == ["Start", "Stop", "Restart", "SetupKeyTrusteeServerDatabase",
                          "BackupAndSetupCronJob-Active", "BackupAndSetupCronJob-Passive",
                          "SetupSyncReplicationCommand"]
    assert menu["SetupKeyTrusteeServerDatabase"].endswith("available")
    assert "Set Up Key Trustee Server Database" in menu["SetupKeyTrusteeServerDatabase"]
    assert "needs KEYTRUSTEE_ACTIVE_SERVER running (it is stopped)" in \
        menu["BackupAndSetupCronJob-Active"]
    assert "no KEYTRUSTEE_PASSIVE_SERVER on this host" in menu["BackupAndSetupCronJob-Passive"]
    assert "Enable Synchronous Replication in HA mode" in menu["SetupSyncReplicationCommand"]


def test_set_up_database(dep):
    proc = dep.agent("exec", "SetupKeyTrusteeServerDatabase", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = re.match(r"^Set Up Key Trustee Server Database on DB_ACTIVE: done \(exit 0; (\S+)\)$",
                 proc.stdout.strip())
    assert m, proc.stdout
    pdir = m.group(1)
    assert re.match(r".*/process/\d{3}-keytrustee_server-DB_ACTIVE$", pdir)
    with open(os.path.join(pdir, "logs", "stdout.log")) as f:
        out = f.read()
    assert "Initialized directory for 4096R/" in out
    assert "Key Trustee Server database set up in %s" % dep.db_root in out
    rec = json.load(open(os.path.join(pdir, "record.json")))
    assert rec["command"] == "SetupDatabase" and rec["exit"] == 0
    conf = json.load(open(os.path.join(dep.confdir, "keytrustee.conf")))
    assert conf["DB_CONNECT"] and conf["DB_PORT"] == dep.db_port
    # The server runs as the service account: it owns the conf dir.
    assert owner(dep.confdir) == "keytrustee"
    assert owner(os.path.join(dep.confdir, "keytrustee.conf")) == "keytrustee"
    assert mode(os.path.join(dep.confdir, "keytrustee.conf")) == 0o600
    # The database is left stopped for the DB_ACTIVE role.
    assert ktadmin("db", "--status", "--pg-rootdir", dep.db_root).returncode == 3
    # Set up again while the roles run is refused by requiredRoleState (below).


def test_start_and_fingerprint(dep):
    t0 = time.monotonic()
    proc = dep.agent("exec", "Start")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^DB_ACTIVE: running \(pid \d+\)$", proc.stdout, re.M)
    assert re.search(r"^KEYTRUSTEE_ACTIVE_SERVER: running \(pid \d+\)$", proc.stdout, re.M)
    st = status(dep)
    assert st["DB_ACTIVE"][0] == "running" and st["KEYTRUSTEE_ACTIVE_SERVER"][0] == "running"
    assert dep.agent("status").returncode == 0
    fpr = wait_for(lambda: fingerprint(dep.port), 30, "the server answers")
    assert FPR_RE.match(fpr)
    assert fpr == "4096R/" + gpg_fingerprints(dep.confdir)[0]
    print("start to fingerprint: %.1f s" % (time.monotonic() - t0))
    # Real processes, from the parcel, as the service account.
    srv, db = st["KEYTRUSTEE_ACTIVE_SERVER"][1], st["DB_ACTIVE"][1]
    kt_uid = pwd.getpwnam("keytrustee").pw_uid
    assert proc_uid(srv) == kt_uid and proc_uid(db) == kt_uid
    assert os.readlink("/proc/%d/exe" % srv) == os.path.join(
        dep.agent.parcels, TOP, "bin", "keytrustee-server")
    assert os.path.basename(os.readlink("/proc/%d/exe" % db)) == "postgres"
    # The generated config: in the process dir and merged into keytrustee.conf.
    pdir = json.load(open(os.path.join(dep.agent.state, "status.json")))[
        "roles"]["KEYTRUSTEE_ACTIVE_SERVER"]["process"]
    gen = json.load(open(os.path.join(pdir, "keytrustee.conf")))
    assert gen["PORT"] == dep.port and gen["TLS_MIN_VERSION"] == "tlsv1.2"
    # Issue 19's limits, as integers the server reads (it is running on them).
    assert gen["MAX_CONNECTIONS_PER_ADDRESS"] == 512 and gen["AUTH_FAILURES_PER_MINUTE"] == 60
    # Issue 20's window of the reads' audit rows, an integer too.
    assert gen["AUDIT_READ_FLUSH_MS"] == 100
    assert mode(os.path.join(pdir, "keytrustee.conf")) == 0o600
    assert json.load(open(os.path.join(dep.confdir, "keytrustee.conf")))["PORT"] == dep.port
    with open(os.path.join(pdir, "logs", "stdout.log")) as f:
        assert "Using %s as conf dir" % pdir in f.read()
    menu = {l.split()[0]: l for l in dep.agent("actions").stdout.splitlines()}
    assert menu["BackupAndSetupCronJob-Active"].endswith("available")
    assert "needs DB_ACTIVE stopped (it is running)" in menu["SetupKeyTrusteeServerDatabase"]
    proc = dep.agent("exec", "SetupKeyTrusteeServerDatabase")
    assert proc.returncode == 1
    assert "error: Set Up Key Trustee Server Database needs DB_ACTIVE stopped; it is running" \
        in proc.stderr


def test_client_put_get(dep):
    org = run([binary("keytrustee-orgtool"), "--confdir", dep.confdir, "add", "-n", "agentorg",
               "-c", "ops@example.com"])
    assert org.returncode == 0, org.stdout + org.stderr
    run([binary("keytrustee-orgtool"), "--confdir", dep.confdir, "set-auth", "-n",
         "agentorg", "-s", ""], check=True)
    proc = client(dep, "register", "--server", "https://127.0.0.1:%d" % dep.port,
                  "--org", "agentorg", "--hostname", "client.example.com", "--skip-ssl-check")
    assert proc.returncode == 0, proc.stderr
    proc = client(dep, "put", "--name", "ez-key", input=b"secret key material")
    assert proc.returncode == 0, proc.stderr
    dep.uuid = proc.stdout.decode().strip()
    proc = client(dep, "get", dep.uuid, "--no-cache")
    assert proc.returncode == 0 and proc.stdout == b"secret key material"


def test_create_backup_on_active_server(dep):
    proc = dep.agent("exec", "BackupAndSetupCronJob-Active", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("Create Backup on Active Server on KEYTRUSTEE_ACTIVE_SERVER: "
                                  "done (exit 0;")
    tars = glob.glob(os.path.join(dep.backup, "kts_bak_*.tar"))
    assert len(tars) == 1, os.listdir(dep.backup)
    names = run([tool("tar"), "tf", tars[0]], check=True).stdout.splitlines()
    assert any(n.endswith(".keytrustee/keytrustee.conf") for n in names), names
    assert any(n.endswith(".sql") for n in names), names
    assert owner(tars[0]) == "keytrustee" and mode(tars[0]) == 0o600
    with open(dep.cron_file) as f:
        cron = f.read()
    ktbackup = os.path.join(dep.agent.parcels, "KEYTRUSTEE_SERVER", "bin", "ktbackup.sh")
    assert ("0 * * * * keytrustee %s --confdir=%s --cleartext --quiet --output=%s --roll=10"
            % (ktbackup, dep.confdir, dep.backup)) in cron.splitlines()
    assert mode(dep.cron_file) == 0o644
    # the schedule's job, run as cron would, adds a backup
    line = [l for l in cron.splitlines() if l.startswith("0 * * * *")][0]
    argv = line.split()[6:]
    time.sleep(1.1)  # the tarball name has a one-second stamp
    proc = run([tool("runuser"), "-u", "keytrustee", "--"] + argv, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert len(glob.glob(os.path.join(dep.backup, "kts_bak_*.tar"))) == 2


def test_schedule_show_and_remove(dep):
    proc = dep.agent("schedule", "show")
    assert proc.returncode == 0, proc.stderr
    assert "ktbackup.sh --confdir=%s" % dep.confdir in proc.stdout
    proc = dep.agent("schedule", "remove")
    assert proc.returncode == 0 and proc.stdout.strip() == "Removed " + dep.cron_file
    assert not os.path.exists(dep.cron_file)
    proc = dep.agent("schedule", "show")
    assert proc.returncode == 1 and "%s does not exist" % dep.cron_file in proc.stderr


def test_history(dep):
    proc = dep.agent("history")
    assert proc.returncode == 0
    rows = [l.split() for l in proc.stdout.splitlines()[1:]]
    cmds = [(r[3], r[4], r[5]) for r in rows]
    assert ("DB_ACTIVE", "SetupDatabase", "0") in cmds
    assert ("KEYTRUSTEE_ACTIVE_SERVER", "BackupAndSetupCronJob", "0") in cmds
    assert ("DB_ACTIVE", "start", "(running)") in cmds
    assert ("KEYTRUSTEE_ACTIVE_SERVER", "start", "(running)") in cmds
    # the failed SetupDatabase (no parcel) never got a process dir
    seq = [r[0] for r in rows if r[4] == "BackupAndSetupCronJob"][0]
    proc = dep.agent("history", seq)
    assert proc.returncode == 0
    assert "command: BackupAndSetupCronJob" in proc.stdout and "exit: 0" in proc.stdout
    assert "/logs/stdout.log" in proc.stdout and "Installed %s" % dep.cron_file in proc.stdout
    proc = dep.agent("history", "999")
    assert proc.returncode == 1 and "error: no process 999" in proc.stderr


def test_restarts_a_server_killed_with_9(dep):
    st = status(dep)
    old = st["KEYTRUSTEE_ACTIVE_SERVER"][1]
    os.kill(old, signal.SIGKILL)

    def restarted():
        s = status(dep)["KEYTRUSTEE_ACTIVE_SERVER"]
        return s[0] == "running" and s[1] not in (0, old) and s[1]
    new = wait_for(restarted, 30, "the supervisor restarts the server")
    assert FPR_RE.match(wait_for(lambda: fingerprint(dep.port), 30, "server answers"))
    line = [l for l in dep.agent("status").stdout.splitlines()
            if l.startswith("KEYTRUSTEE_ACTIVE_SERVER")][0]
    assert "restarts 1" in line
    rows = [l.split() for l in dep.agent("history").stdout.splitlines()[1:]]
    assert ["KEYTRUSTEE_ACTIVE_SERVER", "start", "137"] in [r[3:6] for r in rows]
    assert new != old


def test_supervisor_killed_with_9(dep):
    """A new supervisor stops what a dead one left running, then starts
    the roles again: no role runs twice."""
    old = status(dep)
    sup = dep.agent.supervisor_pid()
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: dep.agent.supervisor_pid() is None, 10, "supervisor gone")
    # its roles still run (their own sessions) ...
    assert os.path.exists("/proc/%d" % old["KEYTRUSTEE_ACTIVE_SERVER"][1])
    proc = dep.agent("start")
    assert proc.returncode == 0, proc.stdout + proc.stderr + open(
        os.path.join(dep.agent.state, "agent.log")).read()[-3000:] + open(
        os.path.join(dep.agent.state, "status.json")).read()
    new = status(dep)
    for role in ("DB_ACTIVE", "KEYTRUSTEE_ACTIVE_SERVER"):
        assert new[role][0] == "running" and new[role][1] != old[role][1]
        assert not os.path.exists("/proc/%d" % old[role][1]) or \
            open("/proc/%d/stat" % old[role][1]).read().rsplit(")", 1)[1].split()[0] == "Z"
    assert FPR_RE.match(wait_for(lambda: fingerprint(dep.port), 30, "server answers"))
    with open(os.path.join(dep.agent.state, "agent.log")) as f:
        assert "of a previous supervisor still runs; stopping it" in f.read()


def server_exe(dep):
    return os.readlink("/proc/%d/exe" % status(dep)["KEYTRUSTEE_ACTIVE_SERVER"][1])


def test_upgrade_and_rollback(dep):
    a = dep.agent
    p2 = build_parcel(VERSION2, dep.repo)
    assert a("parcel", "install", p2).returncode == 0
    listing = dict(l.split() for l in a("parcel", "list").stdout.splitlines())
    assert listing == {TOP: "activated", TOP2: "distributed"}
    assert a("parcel", "activate", TOP2).returncode == 0
    proc = a("exec", "Restart")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert server_exe(dep) == os.path.join(a.parcels, TOP2, "bin", "keytrustee-server")
    wait_for(lambda: fingerprint(dep.port), 30, "upgraded server answers")
    proc = client(dep, "get", dep.uuid, "--no-cache")
    assert proc.returncode == 0 and proc.stdout == b"secret key material"
    # roll back
    assert a("parcel", "activate", TOP).returncode == 0
    assert a("exec", "Restart").returncode == 0
    assert server_exe(dep) == os.path.join(a.parcels, TOP, "bin", "keytrustee-server")
    wait_for(lambda: fingerprint(dep.port), 30, "rolled-back server answers")
    proc = client(dep, "get", dep.uuid, "--no-cache")
    assert proc.returncode == 0 and proc.stdout == b"secret key material"


def test_pem_tls_settings(dep):
    """The four PEM settings of the descriptor reach the server: a CA-less
    certificate with an encrypted key, its password through the generated
    SSL_PRIVATE_KEY_PASSWORD_SCRIPT."""
    kt = pwd.getpwnam("keytrustee")
    tls = os.path.join(dep.base, "tls")
    os.makedirs(tls)
    cert, key = os.path.join(tls, "cert.pem"), os.path.join(tls, "key.pem")
    run([tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-keyout", key, "-out", cert, "-days", "2",
         "-subj", "/CN=localhost", "-passout", "pass:s3cret pw"], check=True)
    for p in (tls, cert, key):
        os.chown(p, kt.pw_uid, kt.pw_gid)
        os.chmod(p, 0o700 if p == tls else 0o600)
    proc = dep.agent(*(dep.assign + [
        "--set", "ssl_server_certificate_location=" + cert,
        "--set", "ssl_server_privatekey_location=" + key,
        "--set", "ssl_server_privatekey_password=s3cret pw",
        "--set", "ssl_server_ca_certificate_location=" + cert]))
    assert proc.returncode == 0, proc.stderr
    proc = dep.agent("exec", "Restart")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wait_for(lambda: fingerprint(dep.port), 30, "server answers with the new pair")
    served = run([tool("openssl"), "s_client", "-connect", "127.0.0.1:%d" % dep.port,
                  "-servername", "localhost"], timeout=20).stdout
    got = run([tool("openssl"), "x509", "-noout", "-fingerprint", "-sha256"],
              input=served, check=True).stdout
    want = run([tool("openssl"), "x509", "-noout", "-fingerprint", "-sha256", "-in", cert],
               check=True).stdout
    assert got == want
    pdir = json.load(open(os.path.join(dep.agent.state, "status.json")))[
        "roles"]["KEYTRUSTEE_ACTIVE_SERVER"]["process"]
    pwfile = os.path.join(pdir, "ssl_server_privatekey_password")
    conf = json.load(open(os.path.join(dep.confdir, "keytrustee.conf")))
    assert conf["SSL_PRIVATE_KEY_PASSWORD_SCRIPT"] == "/bin/cat " + pwfile
    assert conf["SSL_CERTIFICATE"] == cert and conf["SSL_PRIVATE_KEY"] == key
    assert conf["SSL_CA"] == cert
    assert open(pwfile).read() == "s3cret pw"
    assert mode(pwfile) == 0o600 and owner(pwfile) == "keytrustee"
    # the password is in no log
    for f in glob.glob(os.path.join(dep.agent.state, "process", "*", "logs", "*")):
        assert "s3cret" not in open(f, errors="replace").read(), f


def test_stop(dep):
    st = status(dep)
    pids = [st["KEYTRUSTEE_ACTIVE_SERVER"][1], st["DB_ACTIVE"][1]]
    proc = dep.agent("exec", "Stop")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == ["DB_ACTIVE: stopped", "KEYTRUSTEE_ACTIVE_SERVER: stopped"]
    for pid in pids:
        assert not os.path.exists("/proc/%d" % pid) or \
            open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] == "Z"
    assert dep.agent("status").returncode == 3
    wait_for(lambda: dep.agent.supervisor_pid() is None, 10, "the supervisor exits when idle")
    assert fingerprint(dep.port) is None
    menu = {l.split()[0]: l for l in dep.agent("actions").stdout.splitlines()}
    assert menu["Start"].endswith("available")
    assert "no role is running" in menu["Stop"]
