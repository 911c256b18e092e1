"""The services and the Debian package (issue 21, items 3 and 4).

`make deb` builds keytrustee-server_VERSION_ARCH.deb with debhelper; lintian
finds no error in it; the package is installed with dpkg, for real, into a
throwaway root: a private mount namespace (`unshare -m`) in which /usr,
/etc and /var are overlays whose writes land in temporary directories, /run
a tmpfs, and /var/lib/keytrustee a temporary directory.  The machine's own
root is never written.  There, the guide's commands run as printed:
`service keytrusteed start|status|restart|stop`, with
`curl -k https://localhost:PORT/?a=fingerprint` answering; the maintainer
scripts create what they must, start nothing on a host that is not set up,
restart the services on one that is, and keep the config dir and the
database on purge.

systemd is not PID 1 here (no container of this kind boots it), so the
units are checked with `systemd-analyze verify` as the package installs
them, the promise of `Type=notify` by running `ktadmin db --start` with a
NOTIFY_SOCKET, and `MemoryDenyWriteExecute=` by running the server under
the kernel's equivalent (prctl PR_SET_MDWE); the init scripts run for real.
"""

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import (ROOT, Cluster, Server, binary, copy_confdir, free_port,
                      gpg_fingerprints, run, tool, update_conf, wait_for)

VERSION = subprocess.run(["sed", "-n", "s/^version: *//p",
                          os.path.join(ROOT, "descriptor", "keytrustee.yaml")],
                         stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
HOME = "/var/lib/keytrustee"
CONFDIR = HOME + "/.keytrustee"
PGROOT = HOME + "/db"


# --------------------------------------------------------------------------
# the package


@pytest.fixture(scope="module")
def debs():
    """`make deb` once for the module: {package name: path}."""
    tool("dpkg-buildpackage")
    tool("dh")
    proc = run(["make", "-s", "deb"], cwd=ROOT, timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    arch = run(["dpkg", "--print-architecture"], check=True).stdout.strip()
    server = os.path.join(ROOT, "build", "deb",
                          "keytrustee-server_%s_%s.deb" % (VERSION, arch))
    assert proc.stdout.strip().splitlines()[-1] == server, proc.stdout
    found = {}
    for path in glob.glob(os.path.join(ROOT, "build", "deb", "*_%s_%s.deb" % (VERSION, arch))):
        found[os.path.basename(path).split("_")[0]] = path
    return found


def deb_field(path, field):
    return run(["dpkg-deb", "-f", path, field], check=True).stdout.strip()


def test_make_deb_builds_the_packages(debs):
    assert {"keytrustee-server", "keytrustee-client", "libkeytrustee1",
            "libkeytrustee-dev"} <= set(debs), debs
    server = debs["keytrustee-server"]
    depends = deb_field(server, "Depends")
    # ${shlibs:Depends} computed from the binaries, and the programs the
    # server and the guide run.
    for dep in ("libc6", "libpq5", "libssl3", "libgpgme11", "postgresql-15",
                "gnupg", "openssl", "curl"):
        assert re.search(r"(^|[ ,|])%s\b" % re.escape(dep), depends), (dep, depends)
    files = run(["dpkg-deb", "-c", server], check=True).stdout
    for path in ("./usr/bin/keytrustee-server", "./usr/bin/ktadmin",
                 "./usr/bin/keytrustee-orgtool", "./usr/bin/ktbackup.sh",
                 "./etc/init.d/keytrusteed", "./etc/init.d/keytrustee-db",
                 "./lib/systemd/system/keytrusteed.service",
                 "./lib/systemd/system/keytrustee-db.service",
                 "./usr/share/man/man8/keytrustee-server.8.gz"):
        assert re.search(r" %s$" % re.escape(path), files, re.M), (path, files)
    # the client and the library are packages of their own
    assert "keytrustee-client" not in files
    assert "libkeytrustee" not in files


def test_lintian_finds_no_error(debs):
    lintian = tool("lintian")
    for name in ("keytrustee-server", "keytrustee-client", "libkeytrustee1",
                 "libkeytrustee-dev"):
        proc = run([lintian, "--tag-display-limit", "0", debs[name]], timeout=600)
        errors = [l for l in proc.stdout.splitlines() if l.startswith("E:")]
        assert not errors, "\n".join(errors)
        assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------
# what the units promise, without systemd


@pytest.fixture
def stopped_cluster(registry, template):
    """A bootstrapped cluster, stopped, of a copy of the template."""
    confdir = copy_confdir(registry, template.confdir, "notify")
    cluster = Cluster(registry, os.path.join(registry.mkdtemp("pg-"), "pgdata"),
                      free_port())
    proc = cluster.bootstrap(confdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert run([binary("ktadmin"), "db", "--stop", "--pg-rootdir",
                cluster.rootdir]).returncode == 0
    return cluster


def test_db_start_tells_systemd_when_ready(registry, stopped_cluster):
    """keytrustee-db.service is Type=notify over `ktadmin db --start`: the
    NOTIFY_SOCKET systemd gives reaches postgres, which says READY=1."""
    sockdir = registry.mkdtemp("notify-")
    path = os.path.join(sockdir, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o777)  # postgres runs as the keytrustee account
    sock.settimeout(1.0)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    proc = subprocess.Popen([binary("ktadmin"), "db", "--start", "--pg-rootdir",
                             stopped_cluster.rootdir],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        got = b""
        deadline = time.monotonic() + 60
        while b"READY=1" not in got and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            try:
                got += sock.recv(4096) + b"\n"
            except socket.timeout:
                pass
        assert b"READY=1" in got, got
        # the pid systemd watches is PostgreSQL's own
        with open(os.path.join(stopped_cluster.rootdir, "postmaster.pid")) as f:
            assert int(f.readline()) == proc.pid
    finally:
        run([binary("ktadmin"), "db", "--stop", "--pg-rootdir", stopped_cluster.rootdir])
        proc.wait(timeout=60)
        sock.close()
    assert proc.returncode == 0


MDWE_LAUNCHER = r"""
import ctypes, os, sys
PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    sys.stderr.write("prctl(PR_SET_MDWE): errno %d\n" % ctypes.get_errno())
    sys.exit(77)
os.execv(sys.argv[1], sys.argv[1:])
"""


class MdweServer(Server):
    """The server as keytrusteed.service runs it with
    MemoryDenyWriteExecute=yes: no memory may become writable and
    executable, for it, its key process and the gpg-agent they start."""

    def argv(self):
        return [sys.executable, "-c", MDWE_LAUNCHER] + super().argv()


def test_server_runs_with_memory_deny_write_execute(registry, dbconf):
    probe = run([sys.executable, "-c", MDWE_LAUNCHER, sys.executable, "-c",
                 "import ctypes; print(ctypes.CDLL(None).prctl(66, 0, 0, 0, 0))"])
    if probe.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+): %s" % probe.stderr.strip())
    assert probe.stdout.strip() == "1", probe.stdout + probe.stderr  # inherited over exec
    srv = MdweServer(registry, dbconf, name="mdwe")
    try:
        srv.start()
        fpr = run(["curl", "-sfk", srv.url + "/?a=fingerprint"], check=True).stdout
        assert fpr == "4096R/" + gpg_fingerprints(dbconf)[0]
        key = run(["curl", "-sfk", srv.url + "/?a=pubkey"], check=True).stdout
        assert "BEGIN PGP PUBLIC KEY BLOCK" in key
        assert '"database"' in run(["curl", "-sk", srv.url + "/health"]).stdout
        assert srv.running(), srv.log()
    finally:
        srv.stop()
        registry.kill_gnupg(dbconf)
    assert srv.returncode == 0, srv.log()


# --------------------------------------------------------------------------
# a throwaway root


class Root:
    """A private mount namespace held by one process; commands enter it
    with nsenter.  Its /usr, /etc and /var are overlays over the machine's
    whose writes go to temporary dirs; /var/lib/keytrustee is `home`."""

    SETUP = r"""
set -e
for d in usr etc var; do
    mkdir -p "$T/ov/$d/upper" "$T/ov/$d/work"
    mount -t overlay overlay \
        -o "lowerdir=/$d,upperdir=$T/ov/$d/upper,workdir=$T/ov/$d/work" "/$d"
done
mount -t tmpfs -o mode=0755 tmpfs /run
# A container's "start no service" policy (invoke-rc.d's) is not a host's.
rm -f /usr/sbin/policy-rc.d
mkdir -p /var/lib/keytrustee
mount --bind "$T/home" /var/lib/keytrustee
echo ready
exec sleep 3600
"""

    def __init__(self, base):
        self.base = base
        self.home = os.path.join(base, "home")
        os.mkdir(self.home, 0o700)
        shutil.chown(self.home, "keytrustee", "keytrustee")
        self.holder = subprocess.Popen(
            [tool("unshare"), "--mount", "--propagation", "private", "sh", "-c", self.SETUP],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, T=base), start_new_session=True)
        line = self.holder.stdout.readline()
        if line.strip() != "ready":
            self.holder.wait(timeout=10)
            raise AssertionError("the throwaway root did not mount: %s"
                                 % self.holder.stderr.read())
        self.ns = os.readlink("/proc/%d/ns/mnt" % self.holder.pid)

    def sh(self, script, timeout=300, check=False):
        """Run a shell script inside, as root, from /, on a SysV host in
        runlevel 2: its init sets RUNLEVEL, which `runlevel` (so
        invoke-rc.d, in the maintainer scripts) takes first."""
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
               "DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "2",
               "PREVLEVEL": "N"}
        return run([tool("nsenter"), "--mount=/proc/%d/ns/mnt" % self.holder.pid,
                    "--", "sh", "-c", "cd / && " + script],
                   timeout=timeout, check=check, env=env)

    def path(self, inside):
        """Where a path of the root is, seen from outside."""
        return "/proc/%d/root%s" % (self.holder.pid, inside)

    def processes(self):
        """Pids in this namespace, but the holder."""
        pids = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == self.holder.pid:
                continue
            try:
                if os.readlink("/proc/%s/ns/mnt" % pid) == self.ns:
                    pids.append(int(pid))
            except OSError:
                pass
        return pids

    def close(self):
        if os.path.exists(self.path("/etc/init.d/keytrusteed")):
            self.sh("service keytrusteed stop", timeout=120)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.processes():
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            deadline = time.monotonic() + 10
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.1)
        self.holder.kill()
        self.holder.wait(timeout=10)
        left = self.processes()
        assert not left, "left in the throwaway root: %s" % left


@pytest.fixture(scope="module")
def root(registry, debs):
    r = Root(registry.mkdtemp("pkgroot-"))
    yield r
    r.close()


@pytest.fixture(scope="module")
def installed(root, debs):
    proc = root.sh("dpkg -i %s" % debs["keytrustee-server"], timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def fingerprint_at(root, port):
    return root.sh("curl -sfk --max-time 5 https://localhost:%d/?a=fingerprint" % port)


def test_install_on_a_new_host_enables_but_starts_nothing(root, installed):
    out = installed.stdout + installed.stderr
    assert "enabled but not started" in out, out
    # enabled for both init systems, the database before the server
    links = root.sh("ls /etc/rc2.d /etc/systemd/system/multi-user.target.wants",
                    check=True).stdout
    for name in ("S\\d\\dkeytrustee-db", "S\\d\\dkeytrusteed", "keytrusteed\\.service",
                 "keytrustee-db\\.service"):
        assert re.search(r"^%s$" % name, links, re.M), (name, links)
    # the boot order (insserv's, when it is installed, reads it)
    with open(root.path("/etc/init.d/keytrusteed")) as f:
        assert re.search(r"^# Required-Start:.*\skeytrustee-db$", f.read(), re.M)
    assert not root.processes(), "the package started something"
    st = os.stat(root.path("/var/log/keytrustee"))
    assert st.st_mode & 0o7777 == 0o750
    assert root.sh("getent passwd keytrustee").returncode == 0
    # a host not set up: start says what to do, with LSB's "not configured"
    proc = root.sh("service keytrusteed start")
    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert "ktadmin init --confdir /var/lib/keytrustee/.keytrustee" in proc.stdout + proc.stderr
    assert root.sh("service keytrusteed status").returncode == 3


def test_units_pass_systemd_analyze_verify(root, installed):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd package)")
    proc = root.sh("systemd-analyze verify /lib/systemd/system/keytrustee-db.service "
                   "/lib/systemd/system/keytrusteed.service")
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", \
        proc.stdout + proc.stderr
    # and it does fail on a unit that is wrong
    bad = root.sh("sed 's|^ExecStart=/usr/bin/|ExecStart=/usr/bin/no-such-|' "
                  "/lib/systemd/system/keytrusteed.service >/tmp/kt-bad-$$.service && "
                  "systemd-analyze verify /tmp/kt-bad-$$.service; rc=$?; "
                  "rm -f /tmp/kt-bad-$$.service; exit $rc")
    assert bad.returncode != 0 and "no-such-keytrustee-server" in bad.stderr, \
        bad.stdout + bad.stderr


@pytest.fixture(scope="module")
def configured(root, installed, template):
    """The guide's set-up on the throwaway root: the config dir (a copy of
    the session's, `ktadmin init` being slow), `ktadmin db --bootstrap`,
    then the database stopped, for the services to start."""
    confdir = os.path.join(root.home, ".keytrustee")
    run(["cp", "-a", template.confdir, confdir], check=True)
    for entry in os.listdir(confdir):
        if entry.startswith("S.gpg-agent") or entry.startswith("S.dirmngr"):
            os.unlink(os.path.join(confdir, entry))
    run(["chown", "-R", "keytrustee:keytrustee", confdir], check=True)
    dbport = free_port()
    root.sh("ktadmin db --bootstrap --confdir %s --pg-rootdir %s --port %d"
            % (CONFDIR, PGROOT, dbport), check=True, timeout=300)
    root.sh("ktadmin db --stop --pg-rootdir %s" % PGROOT, check=True)
    port = free_port()
    update_conf(confdir, PORT=port)
    return {"port": port, "dbport": dbport, "confdir": confdir,
            "fingerprint": template.fingerprint}


def server_pid(root):
    with open(root.path("/run/keytrusteed.pid")) as f:
        return int(f.read())


def test_service_start_status_restart_stop(root, configured):
    port = configured["port"]
    proc = root.sh("service keytrusteed start", timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the database first, then the server answering the guide's request
    assert root.sh("ktadmin db --status --pg-rootdir %s" % PGROOT).returncode == 0
    assert fingerprint_at(root, port).stdout == configured["fingerprint"]
    pid = server_pid(root)
    with open("/proc/%d/status" % pid) as f:
        uid = re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1)
    assert int(uid) == os.stat(configured["confdir"]).st_uid  # not root

    st = root.sh("service keytrusteed status")
    assert st.returncode == 0, st.stdout + st.stderr
    assert "keytrustee-server is running" in st.stdout, st.stdout
    assert "PostgreSQL is running in %s" % PGROOT in st.stdout, st.stdout
    # a second start changes nothing
    again = root.sh("service keytrusteed start")
    assert again.returncode == 0 and server_pid(root) == pid, again.stdout + again.stderr

    proc = root.sh("service keytrusteed restart", timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert server_pid(root) != pid
    assert fingerprint_at(root, port).stdout == configured["fingerprint"]

    proc = root.sh("service keytrusteed stop", timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert fingerprint_at(root, port).returncode != 0
    assert root.sh("ktadmin db --status --pg-rootdir %s" % PGROOT).returncode == 3
    wait_for(lambda: not root.processes(), 20, "every process of the services gone")
    st = root.sh("service keytrusteed status")
    assert st.returncode == 3, st.stdout + st.stderr
    assert "not running" in st.stdout, st.stdout


def test_service_start_shows_why_the_server_failed(root, configured):
    update_conf(configured["confdir"], TLS_MIN_VERSION="sslv3")
    try:
        proc = root.sh("service keytrusteed start", timeout=180)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, out
        assert "TLS_MIN_VERSION" in out, out
        assert not os.path.exists(root.path("/run/keytrusteed.pid"))
    finally:
        update_conf(configured["confdir"], TLS_MIN_VERSION="tlsv1.2")
        root.sh("service keytrusteed stop", timeout=180)
    assert root.sh("ktadmin db --status --pg-rootdir %s" % PGROOT).returncode == 3


def test_reinstall_on_a_set_up_host_starts_it_and_purge_keeps_the_keys(root, configured, debs):
    port = configured["port"]
    proc = root.sh("dpkg -i %s" % debs["keytrustee-server"], timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert fingerprint_at(root, port).stdout == configured["fingerprint"], \
        proc.stdout + proc.stderr

    proc = root.sh("dpkg --purge keytrustee-server", timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # stopped, the programs and scripts gone, the log dir gone ...
    assert fingerprint_at(root, port).returncode != 0
    wait_for(lambda: not root.processes(), 20, "every process of the services gone")
    for path in ("/usr/bin/keytrustee-server", "/etc/init.d/keytrusteed",
                 "/lib/systemd/system/keytrusteed.service", "/var/log/keytrustee",
                 "/etc/rc2.d/S01keytrusteed"):
        assert not os.path.exists(root.path(path)), path
    assert not glob.glob(root.path("/etc/rc*.d/*keytrustee*"))
    # ... the keys and the database kept, and said so
    assert os.path.exists(os.path.join(configured["confdir"], "keytrustee.conf"))
    assert os.path.exists(os.path.join(root.home, "db", "PG_VERSION"))
    assert gpg_fingerprints(configured["confdir"])
    assert "/var/lib/keytrustee is kept" in out, out
