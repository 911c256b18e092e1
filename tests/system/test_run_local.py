"""scripts/run-local.sh (`make run`, `make stop`), run from a copy of the
script in a temporary top directory whose build/bin is this build's: the
script works under ./var of its top, so a test must not use the
checkout's own var/.  The config dir is a copy of the session's
initialized one (RSA 4096 is slow); the script bootstraps its own
PostgreSQL in var/db on the first free port from 11381 and starts the
server on the first free one from 11371.
"""

import os
import pwd
import shutil

import pytest

from conftest import BINDIR, ROOT, Cluster, mode, run, tool, wait_for


class Local:
    def __init__(self, registry, template):
        self.top = registry.mkdtemp("runlocal-")
        os.makedirs(os.path.join(self.top, "scripts"))
        os.makedirs(os.path.join(self.top, "build"))
        self.script = os.path.join(self.top, "scripts", "run-local.sh")
        shutil.copy2(os.path.join(ROOT, "scripts", "run-local.sh"), self.script)
        os.symlink(BINDIR, os.path.join(self.top, "build", "bin"))
        self.var = os.path.join(self.top, "var")
        os.mkdir(self.var, 0o755)
        self.conf = os.path.join(self.var, "conf")
        run(["cp", "-a", template.confdir, self.conf], check=True)
        for entry in os.listdir(self.conf):
            if entry.startswith("S.gpg-agent") or entry.startswith("S.dirmngr"):
                os.unlink(os.path.join(self.conf, entry))
        self.contacts = os.path.join(self.conf, ".contacts-gnupg")
        registry.gnupg_home(self.conf)
        registry.gnupg_home(self.contacts)
        # torn down by the session even if the script's stop is never run
        Cluster(registry, os.path.join(self.var, "db"), 0)
        self.log = os.path.join(self.var, "log", "keytrustee-server.log")

    def sh(self, verb, timeout=300):
        return run([tool("sh"), self.script, verb], timeout=timeout)

    def start(self):
        proc = self.sh("start")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def stop(self):
        proc = self.sh("stop", timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc


@pytest.fixture(scope="module")
def local(registry, template):
    loc = Local(registry, template)
    try:
        yield loc
    finally:
        loc.sh("stop", timeout=120)


def gpg_agents_under(path):
    """gpg-agent processes whose GnuPG home (--homedir, else GNUPGHOME)
    is path or below it."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % pid) as f:
                if f.read().strip() != "gpg-agent":
                    continue
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0")]
            with open("/proc/%s/environ" % pid, "rb") as f:
                env = dict(e.decode(errors="replace").partition("=")[::2]
                           for e in f.read().split(b"\0") if b"=" in e)
            with open("/proc/%s/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        home = env.get("GNUPGHOME")
        for i, a in enumerate(argv):
            if a == "--homedir" and i + 1 < len(argv):
                home = argv[i + 1]
            elif a.startswith("--homedir="):
                home = a.split("=", 1)[1]
        if home and os.path.abspath(home).startswith(path):
            found.append("%s %s" % (pid, " ".join(argv)))
    return found


def test_stop_ends_the_gpg_agent_of_every_gnupg_home(local):
    """`make stop` left the gpg-agent of var/conf/.contacts-gnupg (the
    contacts' keys the server encrypts mail to) running."""
    local.start()
    assert os.path.isdir(local.contacts)
    # The agents the server's GPGME starts, as the account it runs as.
    for home in (local.conf, local.contacts):
        run([tool("runuser"), "-u", "keytrustee", "--", tool("gpgconf"),
             "--homedir", home, "--launch", "gpg-agent"], check=True, cwd="/")
    running = gpg_agents_under(local.conf)
    assert len(running) == 2, running
    assert any(".contacts-gnupg" in a for a in running), running
    out = local.stop().stdout
    assert "stopped" in out
    left = []
    try:
        wait_for(lambda: not gpg_agents_under(local.conf), timeout=5,
                 what="no gpg-agent of var/conf")
    except AssertionError:
        left = gpg_agents_under(local.conf)
    assert not left, "gpg-agents left by run-local.sh stop:\n" + "\n".join(left)


def test_server_log_is_the_accounts_and_0640(local):
    """The log `make run` writes the server's stderr to is not world
    readable and belongs to the account the server runs as; a 0644 root
    log of an older run is fixed and keeps what it held."""
    account = pwd.getpwnam("keytrustee")
    if os.path.exists(local.log):
        os.unlink(local.log)
    local.start()
    st = os.stat(local.log)
    assert mode(local.log) == 0o640
    assert (st.st_uid, st.st_gid) == (account.pw_uid, account.pw_gid)
    assert "keytrustee-server" in open(local.log, errors="replace").read()
    local.stop()

    os.chown(local.log, 0, 0)
    os.chmod(local.log, 0o644)
    with open(local.log) as f:
        before = f.read()
    local.start()
    st = os.stat(local.log)
    assert mode(local.log) == 0o640
    assert (st.st_uid, st.st_gid) == (account.pw_uid, account.pw_gid)
    with open(local.log) as f:
        after = f.read()
    assert after.startswith(before) and len(after) > len(before)
    local.stop()
