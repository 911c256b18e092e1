"""Fixtures for the system tests.

The shape is PostgreSQL's PostgreSQL::Test::Cluster and h2o's spawn_h2o: a
helper starts a real PostgreSQL (``ktadmin db --bootstrap`` on a free port in
a temporary directory) and a real ``keytrustee-server`` (a subprocess whose
stderr goes to a log file in the temporary directory), exposes url, port,
confdir and fingerprint, and tears everything down even when a test fails:
SIGTERM to the server (SIGKILL after a timeout), ``ktadmin db --stop``,
``gpgconf --homedir DIR --kill all`` for every GnuPG home used, and removal
of the temporary directories.  A final session check asserts that no process
started by the suite is left behind.

Tests run as root (in CI); PostgreSQL runs as the ``keytrustee`` account, so
every temporary base directory is made with mode 0755 (pytest's tmp_path
parents are 0700 and the account could not traverse them).

Nothing is skipped silently: a missing binary or tool is a failure.
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINDIR = os.path.join(ROOT, "build", "bin")

FPR_RE = re.compile(r"^4096R/[0-9A-F]{40}$")
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


# --------------------------------------------------------------------------
# small helpers


def binary(name):
    """Path of a product binary; fail (never skip) if it is not built."""
    path = os.path.join(BINDIR, name)
    if not os.access(path, os.X_OK):
        pytest.fail("%s is not built (run make in %s)" % (path, ROOT))
    return path


def tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail("required tool %r is not installed" % name)
    return path


def run(argv, timeout=60, check=False, input=None, **kw):
    """Run a command, capture text output, never hang."""
    proc = subprocess.run(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL if input is None else None,
        input=input,
        text=True,
        timeout=timeout,
        **kw,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            "%s exited %d\nstdout:\n%s\nstderr:\n%s"
            % (" ".join(map(str, argv)), proc.returncode, proc.stdout, proc.stderr)
        )
    return proc


def ktadmin(*args, timeout=120, check=False):
    return run([binary("ktadmin")] + [str(a) for a in args], timeout=timeout, check=check)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=30.0, what="condition", interval=0.1):
    """pred()'s first true value, polled until timeout; else fail naming what."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("not within %gs: %s" % (timeout, what))
        time.sleep(interval)


def mode(path):
    return os.stat(path).st_mode & 0o7777


def give_to_service_account(*paths):
    """`sudo chown keytrustee:keytrustee FILE`, as the guide does for the
    files the server (which runs as the keytrustee account) must read."""
    for p in paths:
        shutil.chown(p, "keytrustee", "keytrustee")


def make_tar(path, entries):
    """A tar for the restore tests: entries (name, kind, payload) with kind
    file|dir|symlink|hardlink|fifo; payload is a file's bytes or a link's
    target."""
    import io
    import tarfile
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as t:
        for name, kind, payload in entries:
            ti = tarfile.TarInfo(name)
            if kind == "file":
                ti.size, ti.mode = len(payload), 0o600
                t.addfile(ti, io.BytesIO(payload))
                continue
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o700
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            else:
                ti.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                ti.linkname = payload
            t.addfile(ti)


def read_conf(confdir):
    with open(os.path.join(confdir, "keytrustee.conf")) as f:
        return json.load(f)


def write_conf(confdir, conf):
    path = os.path.join(confdir, "keytrustee.conf")
    with open(path, "w") as f:
        json.dump(conf, f, indent=4, sort_keys=True)
    os.chmod(path, 0o600)


def update_conf(confdir, **changes):
    conf = read_conf(confdir)
    for k, v in changes.items():
        if v is None:
            conf.pop(k, None)
        else:
            conf[k] = v
    write_conf(confdir, conf)
    return conf


def gpg_fingerprints(homedir):
    """Primary-key fingerprints of a GnuPG home, via gpg --with-colons."""
    proc = run(
        [tool("gpg"), "--homedir", homedir, "--batch", "--with-colons", "--fingerprint"],
        check=True,
    )
    fprs = []
    want = False
    for line in proc.stdout.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            want = True
        elif fields[0] == "sub":
            want = False
        elif fields[0] == "fpr" and want:
            fprs.append(fields[9])
            want = False
    return fprs


def no_verify_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def tls_connects(port, host="127.0.0.1", timeout=2.0):
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with no_verify_context().wrap_socket(raw, server_hostname="localhost"):
                return True
    except (OSError, ssl.SSLError):
        return False


def s_client(port, *args, host="127.0.0.1", timeout=20):
    """openssl s_client ... </dev/null; returns the CompletedProcess."""
    argv = [tool("openssl"), "s_client", "-connect", "%s:%d" % (host, port),
            "-servername", "localhost"] + list(args)
    return run(argv, timeout=timeout)


def served_cert_fingerprint(port):
    """SHA-256 fingerprint of the certificate a new connection sees."""
    proc = s_client(port)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fp = run([tool("openssl"), "x509", "-noout", "-fingerprint", "-sha256"],
             input=proc.stdout, check=True)
    return fp.stdout.strip()


def cert_fingerprint(path):
    fp = run([tool("openssl"), "x509", "-noout", "-fingerprint", "-sha256", "-in", path],
             check=True)
    return fp.stdout.strip()


def live_processes_mentioning(text):
    """Non-zombie processes whose command line mentions text."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open("/proc/%s/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue
        if text in cmd:
            found.append("%s %s" % (pid, cmd.strip()))
    return found


# --------------------------------------------------------------------------
# registry of what must be torn down


class Registry:
    """Everything the suite started, so the session can end it."""

    def __init__(self, base):
        self.base = base
        self.gnupg_homes = set()
        self.servers = []
        self.clusters = []

    def gnupg_home(self, path):
        self.gnupg_homes.add(os.path.abspath(path))
        return path

    def mkdtemp(self, prefix):
        path = tempfile.mkdtemp(prefix=prefix, dir=self.base)
        os.chmod(path, 0o755)
        return path

    def kill_gnupg(self, path):
        if os.path.isdir(path):
            subprocess.run(["gpgconf", "--homedir", path, "--kill", "all"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=30)

    def teardown(self):
        for srv in reversed(self.servers):
            srv.stop()
        for cl in reversed(self.clusters):
            cl.stop()
        for home in sorted(self.gnupg_homes):
            self.kill_gnupg(home)


# --------------------------------------------------------------------------
# PostgreSQL


class Cluster:
    """The private PostgreSQL cluster of one Key Trustee Server."""

    def __init__(self, registry, rootdir, port):
        self.registry = registry
        self.rootdir = rootdir
        self.port = port
        self.bootstrap_output = None
        registry.clusters.append(self)

    def bootstrap(self, confdir):
        proc = ktadmin("db", "--bootstrap", "--confdir", confdir,
                       "--pg-rootdir", self.rootdir, "--port", self.port)
        self.bootstrap_output = proc
        return proc

    def status(self):
        return ktadmin("db", "--status", "--pg-rootdir", self.rootdir).returncode

    def start(self):
        return ktadmin("db", "--start", "--pg-rootdir", self.rootdir, "--background")

    def psql(self, sql, check=True):
        proc = run([tool("runuser"), "-u", "keytrustee", "--", tool("psql"),
                    "-h", self.rootdir, "-p", str(self.port), "-d", "keytrustee",
                    "-X", "-Atc", sql], check=check, cwd="/")
        return proc.stdout.strip() if check else proc

    def schema_version(self):
        return int(self.psql("select max(version) from schema_migrations"))

    def stop(self):
        if not os.path.exists(os.path.join(self.rootdir, "postmaster.pid")):
            return
        try:
            ktadmin("db", "--stop", "--pg-rootdir", self.rootdir, timeout=60)
        except subprocess.TimeoutExpired:
            pass
        pidfile = os.path.join(self.rootdir, "postmaster.pid")
        if os.path.exists(pidfile):
            # ktadmin failed to stop it: do not leave it behind.
            try:
                with open(pidfile) as f:
                    pid = int(f.readline())
                os.kill(pid, signal.SIGQUIT)
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.1)
                os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass


# --------------------------------------------------------------------------
# the server


class Server:
    """A keytrustee-server subprocess; stderr goes to a log file."""

    def __init__(self, registry, confdir, port=None, listen="127.0.0.1",
                 extra_args=(), name="server"):
        self.registry = registry
        self.confdir = confdir
        self.port = port or free_port()
        self.listen = listen
        self.extra_args = list(extra_args)
        self.logpath = os.path.join(registry.mkdtemp(name + "-log-"), "server.log")
        self.proc = None
        self.returncode = None
        registry.servers.append(self)
        registry.gnupg_home(confdir)

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    @property
    def fingerprint(self):
        return "4096R/" + gpg_fingerprints(self.confdir)[0]

    def argv(self):
        return [binary("keytrustee-server"), "--confdir", self.confdir,
                "--port", str(self.port), "--listen", self.listen] + self.extra_args

    def spawn(self):
        self.returncode = None
        log = open(self.logpath, "ab")
        try:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log,
                                         start_new_session=True)
        finally:
            log.close()
        return self

    def start(self, timeout=READY_TIMEOUT):
        """Spawn and wait until a TLS handshake succeeds."""
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise AssertionError("keytrustee-server exited %d before it was ready:\n%s"
                                     % (self.proc.returncode, self.log()))
            if tls_connects(self.port):
                return self
            time.sleep(0.1)
        self.stop()
        raise AssertionError("keytrustee-server not ready after %gs:\n%s"
                             % (timeout, self.log()))

    def log(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT):
        self.returncode = self.proc.wait(timeout=timeout)
        return self.returncode

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after timeout; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self.returncode = self.proc.returncode
        return self.returncode

    def restart(self):
        self.stop()
        return self.start()


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def registry():
    """Session base dir (0755) and the teardown of everything in it."""
    # Fail, not skip, when a binary is missing.
    binary("ktadmin")
    binary("keytrustee-server")
    base = tempfile.mkdtemp(prefix="kts-systest-")
    os.chmod(base, 0o755)
    reg = Registry(base)
    try:
        yield reg
    finally:
        reg.teardown()
        leftovers = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            leftovers = live_processes_mentioning(base)
            if not leftovers:
                break
            time.sleep(0.2)
        shutil.rmtree(base, ignore_errors=True)
        assert not leftovers, "processes left behind:\n" + "\n".join(leftovers)


class Template:
    """The one initialized conf dir of the session (RSA 4096 is slow)."""

    def __init__(self, confdir, init_proc):
        self.confdir = confdir
        self.init_proc = init_proc
        self.fingerprint = "4096R/" + gpg_fingerprints(confdir)[0]


@pytest.fixture(scope="session")
def template(registry):
    parent = registry.mkdtemp("template-")
    confdir = registry.gnupg_home(os.path.join(parent, "conf"))
    old = os.umask(0o022)
    try:
        proc = ktadmin("init", "--confdir", confdir, "--hostname", "localhost",
                       timeout=300)
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Template(confdir, proc)


def runnable_by_others(registry, path):
    """path, or a copy another account can run: a checkout inside a 0700
    directory (mktemp -d, as a clean-clone CI run makes) is not theirs to
    enter, and the tests that run a tool as keytrustee or nobody need it."""
    if subprocess.run(["runuser", "-u", "nobody", "--", "test", "-x", path],
                      cwd="/").returncode == 0:
        return path
    dst = os.path.join(registry.mkdtemp("runnable-"), os.path.basename(path))
    shutil.copy2(path, dst)
    os.chmod(dst, 0o755)
    return dst


def copy_confdir(registry, src, name="conf"):
    """cp -a a conf dir into a fresh 0755 parent; drop GnuPG sockets."""
    parent = registry.mkdtemp(name + "-")
    dst = os.path.join(parent, "conf")
    run(["cp", "-a", src, dst], check=True)
    for entry in os.listdir(dst):
        if entry.startswith("S.gpg-agent") or entry.startswith("S.dirmngr"):
            os.unlink(os.path.join(dst, entry))
    registry.gnupg_home(dst)
    return dst


@pytest.fixture
def confcopy(registry, template):
    """A private copy of the initialized (not bootstrapped) conf dir."""
    return copy_confdir(registry, template.confdir)


class SessionDB:
    def __init__(self, cluster, confdir):
        self.cluster = cluster
        self.confdir = confdir


@pytest.fixture(scope="session")
def session_db(registry, template):
    """One PostgreSQL cluster for the session, bootstrapped into a conf dir
    that tests copy (so they keep DB_CONNECT)."""
    confdir = copy_confdir(registry, template.confdir, "dbconf")
    rootdir = os.path.join(registry.mkdtemp("pg-"), "pgdata")
    cluster = Cluster(registry, rootdir, free_port())
    proc = cluster.bootstrap(confdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return SessionDB(cluster, confdir)


@pytest.fixture
def dbconf(registry, session_db):
    """A private copy of the session conf dir, with DB_CONNECT."""
    return copy_confdir(registry, session_db.confdir, "srvconf")


@pytest.fixture
def make_server(registry):
    """Factory for per-test servers; each is stopped at the end of the test."""
    made = []

    def make(confdir, **kw):
        srv = Server(registry, confdir, **kw)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.stop()
        registry.kill_gnupg(srv.confdir)


@pytest.fixture(scope="module")
def server(registry, session_db):
    """A running server with the default config, shared by a module."""
    confdir = copy_confdir(registry, session_db.confdir, "modsrv")
    srv = Server(registry, confdir, name="modsrv")
    srv.start()
    yield srv
    srv.stop()
    registry.kill_gnupg(confdir)
