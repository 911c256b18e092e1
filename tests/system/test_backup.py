"""ktbackup.sh and kt-backup-schedule.sh against a real server and database.

The module's server keeps its config dir at ROOT/var/lib/keytrustee/.keytrustee
(ROOT, a temporary dir, stands for /; KEYTRUSTEE_HOME is ROOT/var/lib/keytrustee).
Member paths are relative to the real /, so the restore runs the guide's
`tar xvf backup.tar -C /` after checking that every member lies under the
session's temporary dir.  The backup
is encrypted to a throwaway recipient whose public key is imported into a
separate "service account" GNUPGHOME.  The guide's restore (gpg -d, tar tvf,
tar xvf, drop/create the database, psql -f, restart) runs last, after the
module's other tests, because it destroys the server and its database.
"""

import os
import re
import shutil
import stat
import subprocess
import tarfile
import threading
import time

import pytest

from conftest import (Cluster, Server, binary, free_port, gpg_fingerprints, ktadmin, mode, run,
                      runnable_by_others, tool)

SCRIPTS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
KTBACKUP = os.path.join(SCRIPTS, "ktbackup.sh")
SCHEDULE = os.path.join(SCRIPTS, "kt-backup-schedule.sh")
RECIPIENT = "backup@example.com"
NAME_RE = re.compile(r"^kts_bak_[A-Za-z0-9_-]+_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.tar(\.gpg)?$")
UUID_RE = re.compile(r"^[0-9a-f-]{36}$")
DEPOSITS = {"first": b"alpha secret", "second": b"\x00\x01binary\xff" * 50, "third": b""}


def client(confdir, *args, input=None):
    return subprocess.run([binary("keytrustee-client"), "--confdir", confdir]
                          + [str(a) for a in args], input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                          stdin=None if input is not None else subprocess.DEVNULL)


def put(confdir, name, data):
    proc = client(confdir, "put", "--name", name, input=data)
    assert proc.returncode == 0, proc.stderr
    u = proc.stdout.decode().strip()
    assert UUID_RE.match(u), proc.stdout
    return u


def orgtool(confdir, *args):
    return run([binary("keytrustee-orgtool"), "--confdir", confdir] + list(args))


class KTS:
    """A server whose config dir lives at ROOT/var/lib/keytrustee/.keytrustee."""


@pytest.fixture(scope="module")
def kts(registry, template):
    k = KTS()
    k.registry = registry
    k.root = registry.mkdtemp("bkroot-")
    k.home = os.path.join(k.root, "var", "lib", "keytrustee")
    os.makedirs(k.home, mode=0o755)
    for d in (os.path.join(k.root, "var"), os.path.join(k.root, "var", "lib"), k.home):
        os.chmod(d, 0o755)
    k.confdir = os.path.join(k.home, ".keytrustee")
    run(["cp", "-a", template.confdir, k.confdir], check=True)
    for entry in os.listdir(k.confdir):
        if entry.startswith("S."):
            os.unlink(os.path.join(k.confdir, entry))
    registry.gnupg_home(k.confdir)
    k.pgroot = os.path.join(registry.mkdtemp("bkpg-"), "pgdata")
    k.cluster = Cluster(registry, k.pgroot, free_port())
    proc = k.cluster.bootstrap(k.confdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    k.server = Server(registry, k.confdir, name="bksrv").start()

    # the recipient (key administrator) and the service account's keyring
    gp = registry.mkdtemp("bkgpg-")
    k.rcpt_home = registry.gnupg_home(os.path.join(gp, "recipient"))
    k.svc_home = registry.gnupg_home(os.path.join(gp, "service"))
    os.mkdir(k.rcpt_home, 0o700)
    os.mkdir(k.svc_home, 0o700)
    run([tool("gpg"), "--homedir", k.rcpt_home, "--batch", "--passphrase", "",
         "--quick-gen-key", "Backup Admin <%s>" % RECIPIENT, "rsa2048", "default", "never"],
        check=True)
    # quick-gen-key with an algorithm makes a sign/certify primary only: add
    # the encryption subkey the backup is encrypted to
    fpr = gpg_fingerprints(k.rcpt_home)[0]
    run([tool("gpg"), "--homedir", k.rcpt_home, "--batch", "--passphrase", "",
         "--quick-add-key", fpr, "rsa2048", "encr", "never"], check=True)
    pub = os.path.join(gp, "backup.pub")
    run([tool("gpg"), "--homedir", k.rcpt_home, "--armor", "--output", pub,
         "--export", RECIPIENT], check=True)
    run([tool("gpg"), "--homedir", k.svc_home, "--batch", "--import", pub], check=True)

    # populate: an org, a client, three deposits
    proc = orgtool(k.confdir, "add", "-n", "backup-org", "-c", "a@example.com")
    assert proc.returncode == 0, proc.stderr
    proc = orgtool(k.confdir, "set-auth", "-n", "backup-org", "-s", "")
    assert proc.returncode == 0, proc.stderr
    k.client = registry.gnupg_home(os.path.join(registry.mkdtemp("bkclient-"), "kt"))
    proc = client(k.client, "register", "--server", k.server.url, "--org", "backup-org",
                  "--hostname", "client.example.com", "--skip-ssl-check")
    assert proc.returncode == 0, proc.stderr
    k.client_fpr = re.search(r"3072R/([0-9A-F]{40})", proc.stdout.decode()).group(1)
    k.deposits = {put(k.client, n, d): d for n, d in DEPOSITS.items()}
    yield k
    k.server.stop()
    k.cluster.stop()


def env(k, **extra):
    e = dict(os.environ)
    e["GNUPGHOME"] = k.svc_home
    e["KEYTRUSTEE_HOME"] = k.home
    e.update(extra)
    return e


def ktbackup(k, *args, timeout=120):
    return run([KTBACKUP] + [str(a) for a in args], env=env(k), timeout=timeout)


def backups(d):
    return sorted(f for f in os.listdir(d) if f.startswith("kts_bak_"))


def outdir(k, name):
    d = os.path.join(k.registry.mkdtemp("bkout-"), name)
    os.mkdir(d, 0o755)
    return d


# --------------------------------------------------------------------------
# without a database


def test_help_documents_options_and_roll():
    proc = run([KTBACKUP, "--help"], check=True)
    for opt in ("--confdir=CONFDIR", "--database-port=PORT", "--gpg-recipient",
                "--cleartext", "--output=DIR", "--roll=n", "--quiet", "--verbose"):
        assert opt in proc.stdout
    assert "--roll=1" in proc.stdout and "new one included" in proc.stdout


# --------------------------------------------------------------------------
# against the module's server


def test_cleartext_members_modes_and_quiet(kts):
    out = outdir(kts, "clear")
    proc = ktbackup(kts, "--cleartext", "--quiet", "--output=" + out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    path = proc.stdout.strip()
    assert proc.stdout == path + "\n"
    assert os.path.dirname(path) == out
    assert NAME_RE.match(os.path.basename(path)) and path.endswith(".tar")
    assert backups(out) == [os.path.basename(path)]
    assert [f for f in os.listdir(out) if not f.startswith("kts_bak_")] == []
    rel_conf = kts.confdir.lstrip("/")
    rel_home = kts.home.lstrip("/")
    with tarfile.open(path) as tf:
        members = {m.name.rstrip("/"): m for m in tf.getmembers()}
    assert all(not n.startswith("/") for n in members)
    assert members[rel_conf].isdir() and members[rel_conf].mode == 0o700
    assert members[rel_conf + "/keytrustee.conf"].mode == 0o600
    assert members[rel_conf + "/logging.conf"].mode == 0o644
    assert rel_conf + "/datakey.gpg" in members
    assert not any(os.path.basename(n).startswith("S.") for n in members)
    sql = rel_home + "/" + os.path.basename(path)[:-len(".tar")] + ".sql"
    assert members[sql].isfile() and members[sql].mode == 0o644
    # everything else is under the config dir
    assert set(members) - {sql} == {n for n in members if n == rel_conf
                                     or n.startswith(rel_conf + "/")}


def test_short_and_separate_options_verbose(kts):
    out = outdir(kts, "verbose")
    proc = ktbackup(kts, "-c", kts.confdir, "--database-port", kts.cluster.port,
                    "--cleartext", "--verbose", "--output", out)
    assert proc.returncode == 0, proc.stderr
    path = proc.stdout.strip()
    assert proc.stdout == path + "\n" and backups(out) == [os.path.basename(path)]
    assert "keytrustee.conf" in proc.stderr  # tar's verbose listing
    assert "password" not in proc.stderr


def test_default_confdir_and_output_from_keytrustee_home(kts):
    proc = ktbackup(kts, "--gpg-recipient=" + RECIPIENT)
    assert proc.returncode == 0, proc.stderr
    path = proc.stdout.strip().splitlines()[-1]
    assert os.path.dirname(path) == kts.home and path.endswith(".tar.gpg")
    assert mode(path) == 0o600
    os.unlink(path)
    assert backups(kts.home) == []


def test_runs_as_the_service_account(registry, kts):
    """The guide runs it as `sudo -u keytrustee ktbackup.sh ...`."""
    script = runnable_by_others(registry, KTBACKUP)
    out = outdir(kts, "svc")
    shutil.chown(out, "keytrustee", "keytrustee")
    proc = run([tool("runuser"), "-u", "keytrustee", "--", script, "--cleartext", "-q",
                "--confdir=" + kts.confdir, "--output=" + out], env=env(kts), cwd="/")
    assert proc.returncode == 0, proc.stderr
    path = proc.stdout.strip()
    assert os.stat(path).st_uid == pwd_uid("keytrustee") and mode(path) == 0o600
    with tarfile.open(path) as tf:
        owners = {(m.uname, m.gname) for m in tf.getmembers()}
    assert owners == {("keytrustee", "keytrustee")}
    # an output dir the account cannot write: refused, nothing left
    rootdir = outdir(kts, "root-owned")
    proc = run([tool("runuser"), "-u", "keytrustee", "--", script, "--cleartext",
                "--confdir=" + kts.confdir, "--output=" + rootdir], env=env(kts), cwd="/")
    assert proc.returncode == 1
    assert "error: output dir %s is not writable" % rootdir in proc.stderr
    assert os.listdir(rootdir) == [] and proc.stdout == ""


def pwd_uid(name):
    import pwd
    return pwd.getpwnam(name).pw_uid


def test_roll_keeps_newest_n_including_the_new_one(kts):
    out = outdir(kts, "roll")
    old = ["kts_bak_old_host_2020-01-0%d_00-00-00.tar%s" % (i, ".gpg" if i % 2 else "")
           for i in (1, 2, 3, 4)]
    for f in old:
        with open(os.path.join(out, f), "w") as fh:
            fh.write("x")
    with open(os.path.join(out, "unrelated.tar"), "w") as fh:
        fh.write("x")
    proc = ktbackup(kts, "--cleartext", "-q", "--output", out, "--roll=2")
    assert proc.returncode == 0, proc.stderr
    new = os.path.basename(proc.stdout.strip())
    assert backups(out) == sorted([old[3], new])
    assert os.path.exists(os.path.join(out, "unrelated.tar"))
    proc = ktbackup(kts, "--cleartext", "-q", "--output=" + out, "--roll=1")
    assert proc.returncode == 0, proc.stderr
    assert backups(out) == [os.path.basename(proc.stdout.strip())]


@pytest.mark.parametrize("case", ["unknown-recipient", "database-down", "output-not-a-dir",
                                  "bad-option", "no-recipient", "missing-confdir"])
def test_errors_leave_no_tarball(kts, case):
    out = outdir(kts, "err")
    args = {
        "unknown-recipient": ["--gpg-recipient=nobody@example.com", "--output=" + out],
        "database-down": ["--cleartext", "--output=" + out,
                          "--database-port=%d" % free_port()],
        "output-not-a-dir": ["--cleartext",
                             "--output=" + os.path.join(kts.confdir, "keytrustee.conf")],
        "bad-option": ["--cleartext", "--output=" + out, "--bogus"],
        "no-recipient": ["--output=" + out],
        "missing-confdir": ["--cleartext", "--output=" + out,
                            "--confdir=" + os.path.join(out, "noconf")],
    }[case]
    proc = ktbackup(kts, *args)
    assert proc.returncode != 0
    assert "error: " in proc.stderr and proc.stdout == ""
    assert os.listdir(out) == []
    assert backups(kts.home) == []


def test_backup_during_writes_has_every_acknowledged_deposit(kts):
    out = outdir(kts, "busy")
    acked = []
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            acked.append(put(kts.client, "busy-%d" % i, b"busy %d" % i))
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        while len(acked) < 3:
            time.sleep(0.05)
        before = list(acked)
        proc = ktbackup(kts, "--cleartext", "-q", "--output=" + out)
        time.sleep(0.3)
    finally:
        stop.set()
        t.join(timeout=60)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(proc.stdout.strip()) as tf:
        sqlm = [m for m in tf.getmembers() if m.name.endswith(".sql")]
        assert len(sqlm) == 1
        sql = tf.extractfile(sqlm[0]).read().decode()
    for u in before + list(kts.deposits):
        assert u in sql, u
    kts.busy = before


# --------------------------------------------------------------------------
# the hourly schedule (a cron.d file in a temporary dir, never /etc/cron.d)

CRON_LINE_RE = re.compile(r"^(\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (/\S+/ktbackup\.sh) (.*)$")


def schedule(*args):
    return run([SCHEDULE] + [str(a) for a in args])


def test_schedule_install_show_remove(tmp_path):
    cron = str(tmp_path / "keytrustee-backup")
    proc = schedule("install", "--cron-file", cron, "--gpg-recipient", "John Doe",
                    "--output", "/tmp/backups")
    assert proc.returncode == 0, proc.stderr
    assert mode(cron) == 0o644
    assert [f for f in os.listdir(str(tmp_path))] == ["keytrustee-backup"]
    with open(cron) as f:
        text = f.read()
    lines = text.splitlines()
    assert lines[0].startswith("# ")
    jobs = [ln for ln in lines if ln and not ln.startswith("#") and "=" not in ln.split()[0]]
    assert len(jobs) == 1
    m = CRON_LINE_RE.match(jobs[0])
    assert m, jobs[0]
    assert m.group(1, 2, 3, 4, 5) == ("0", "*", "*", "*", "*")
    assert m.group(6) == "keytrustee"
    assert os.path.samefile(m.group(7), KTBACKUP)
    cmd = m.group(8).split(" ")
    assert "--quiet" in cmd and "--roll=10" in cmd and "--output=/tmp/backups" in cmd
    assert "--confdir=/var/lib/keytrustee/.keytrustee" in cmd
    assert "--gpg-recipient='John Doe'" in m.group(8)
    # show prints the file; install again replaces it (atomically, same mode)
    proc = schedule("show", "--cron-file=" + cron)
    assert proc.returncode == 0 and proc.stdout == text
    proc = schedule("install", "--cron-file", cron, "--cleartext", "--user", "kts",
                    "--roll", "3", "--confdir", "/srv/kt/.keytrustee", "--ktbackup",
                    KTBACKUP)
    assert proc.returncode == 0, proc.stderr
    with open(cron) as f:
        job = f.read().splitlines()[-1]
    assert job == ("0 * * * * kts %s --confdir=/srv/kt/.keytrustee --cleartext --quiet "
                   "--output=/var/lib/keytrustee --roll=3" % KTBACKUP)
    assert mode(cron) == 0o644
    proc = schedule("remove", "--cron-file", cron)
    assert proc.returncode == 0 and not os.path.exists(cron)
    proc = schedule("show", "--cron-file", cron)
    assert proc.returncode != 0 and "error: " in proc.stderr


@pytest.mark.parametrize("args", [
    ["--gpg-recipient", "John 'Doe"],
    ["--gpg-recipient", "John\nDoe"],
    [],
    ["--gpg-recipient", "x", "--cleartext"],
    ["--cleartext", "--roll", "0"],
    ["--cleartext", "--output", "relative/dir"],
    ["--cleartext", "--bogus", "x"],
])
def test_schedule_refuses(tmp_path, args):
    cron = str(tmp_path / "keytrustee-backup")
    proc = schedule("install", "--cron-file", cron, *args)
    assert proc.returncode != 0
    assert "error: " in proc.stderr
    assert os.listdir(str(tmp_path)) == []


# --------------------------------------------------------------------------
# the guide's restore, last: it destroys the module's server and database


def test_restore_by_the_guides_steps(kts, tmp_path):
    proc = ktbackup(kts, "--gpg-recipient=" + RECIPIENT, "--quiet",
                    "--output=" + kts.home)
    assert proc.returncode == 0, proc.stderr
    enc = proc.stdout.strip()
    saved = os.path.join(str(tmp_path), os.path.basename(enc))
    shutil.move(enc, saved)
    with open(saved, "rb") as f:
        assert b"keytrustee.conf" not in f.read()  # encrypted
    old_port = kts.server.port

    # disaster
    kts.server.stop()
    assert ktadmin("db", "--stop", "--pg-rootdir", kts.pgroot).returncode == 0
    kts.registry.kill_gnupg(kts.confdir)
    shutil.rmtree(kts.confdir)
    shutil.rmtree(kts.pgroot)

    # 1. decrypt as the recipient
    tarpath = os.path.join(str(tmp_path), "backup.tar")
    run([tool("gpg"), "--homedir", kts.rcpt_home, "--batch", "-d", "-o", tarpath, saved],
        check=True)
    # 2. verify the listing
    listing = run([tool("tar"), "tvf", tarpath], check=True).stdout.splitlines()
    names = [line.split()[-1] for line in listing]
    rel_conf = kts.confdir.lstrip("/")
    sqlname = os.path.basename(saved)[:-len(".tar.gpg")] + ".sql"
    assert rel_conf + "/" in names
    assert rel_conf + "/keytrustee.conf" in names
    assert kts.home.lstrip("/") + "/" + sqlname in names
    assert all(not n.startswith("/") for n in names)
    assert listing[names.index(rel_conf + "/")].startswith("drwx------")
    # 3. restore the files to their places: the guide's `tar xvf -C /`; every
    #    member is under the session's temporary dir (checked first)
    base = kts.registry.base.lstrip("/") + "/"
    assert all(n.startswith(base) for n in names), names
    run([tool("tar"), "xvf", tarpath, "-C", "/"], check=True)
    assert os.path.isfile(os.path.join(kts.confdir, "keytrustee.conf"))
    assert mode(os.path.join(kts.confdir, "keytrustee.conf")) == 0o600
    sql = os.path.join(kts.home, sqlname)
    assert os.path.isfile(sql)
    # 4. a new PostgreSQL (the operator's `ktadmin db --bootstrap`; it writes a
    #    fresh DB_CONNECT with the new role password, which is the one to keep:
    #    the dump holds no roles), then drop, create and load as the guide does
    pg = Cluster(kts.registry, os.path.join(kts.registry.mkdtemp("bkpg2-"), "pgdata"),
                 free_port())
    proc = pg.bootstrap(kts.confdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    psql = [tool("runuser"), "-u", "keytrustee", "--", tool("psql"), "-X",
            "-h", pg.rootdir, "-p", str(pg.port), "-v", "ON_ERROR_STOP=1"]
    run(psql + ["-d", "postgres", "-c", "drop database keytrustee"], check=True, cwd="/")
    run(psql + ["-d", "postgres", "-c", "create database keytrustee"], check=True, cwd="/")
    run(psql + ["-d", "keytrustee", "-f", sql], check=True, cwd="/")
    # 5. restart the server (same address: the client knows it)
    srv = Server(kts.registry, kts.confdir, port=old_port, name="bkrestored").start()
    try:
        for u, data in kts.deposits.items():
            proc = client(kts.client, "get", u, "--no-cache")
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout == data
        for u in getattr(kts, "busy", []):
            proc = client(kts.client, "get", u, "--no-cache")
            assert proc.returncode == 0, proc.stderr
        proc = orgtool(kts.confdir, "list")
        assert proc.returncode == 0, proc.stderr
        assert "backup-org" in proc.stdout and kts.client_fpr in proc.stdout
    finally:
        srv.stop()
        pg.stop()
