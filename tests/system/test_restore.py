"""ktadmin restore, and the guide's manual backup (pg_dump | zip --encrypt).

The server of this module lives at ROOT/var/lib/keytrustee/.keytrustee, as in
test_backup.py (its fixture is shared).  `ktadmin restore` is run on
backups made by ktbackup.sh: refusals first (bad input, hostile archives, a
running server, a server holding data without --force), then the disaster
(config dir and database gone) and a --force restore over a live server,
which keeps the old config dir and a dump of the old database aside.

The guide's manual procedure prompts for the zip password on the terminal:
the test answers the prompts through a pseudo-terminal, as an operator would
type them.
"""

import os
import pty
import re
import select
import shutil
import time

import pytest

from conftest import Cluster, Server, binary, free_port, ktadmin, make_tar, mode, run, tool
from test_backup import RECIPIENT, client, env, kts, ktbackup, orgtool, put  # noqa: F401

ZIP_PASSWORD = "zip-pass-1234"


def restore(k, *args, gnupghome=None, timeout=180):
    e = env(k)
    e["GNUPGHOME"] = gnupghome or k.rcpt_home
    return run([binary("ktadmin"), "restore"] + [str(a) for a in args], env=e,
               timeout=timeout)


def fetch_all(k, deposits):
    for u, data in deposits.items():
        proc = client(k.client, "get", u, "--no-cache")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == data, u


def snapshot(k):
    with open(os.path.join(k.confdir, "keytrustee.conf")) as f:
        conf = f.read()
    return conf, k.cluster.psql("select count(*) from deposits")


@pytest.fixture(scope="module")
def backup(kts, tmp_path_factory):
    """An encrypted ktbackup.sh backup of the populated server."""
    proc = ktbackup(kts, "--gpg-recipient=" + RECIPIENT, "--quiet",
                    "--output=" + kts.home)
    assert proc.returncode == 0, proc.stderr
    d = kts.registry.mkdtemp("rsbak-")
    path = os.path.join(d, os.path.basename(proc.stdout.strip()))
    shutil.move(proc.stdout.strip(), path)
    clear = path[:-len(".gpg")]
    run([tool("gpg"), "--homedir", kts.rcpt_home, "--batch", "-d", "-o", clear, path],
        check=True)
    return path, clear


# --------------------------------------------------------------------------
# refusals: nothing is written


def test_help_and_usage_errors(kts):
    proc = run([binary("ktadmin"), "restore", "--help"])
    assert proc.returncode == 0
    for opt in ("BACKUP", "--confdir", "--pg-rootdir", "--port", "--force"):
        assert opt in proc.stdout
    assert "restore" in run([binary("ktadmin"), "--help"]).stdout
    for args, msg in ((["--bogus"], "--bogus"), ([], "no backup given"),
                      (["a", "b"], 'unexpected argument "b"'),
                      (["--port", "x", "a"], "not a port number"),
                      (["--confdir"], "--confdir")):
        proc = run([binary("ktadmin"), "restore"] + args)
        assert proc.returncode == 2, args
        assert "error: " in proc.stderr and msg in proc.stderr, proc.stderr


def test_missing_and_wrong_files(kts, tmp_path):
    proc = restore(kts, str(tmp_path / "nope.tar.gpg"), "--confdir", kts.confdir)
    assert proc.returncode == 1 and "nope.tar.gpg" in proc.stderr
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"hello, not a backup\n" * 100)
    proc = restore(kts, str(junk), "--confdir", kts.confdir)
    assert proc.returncode == 1
    assert "neither a tar archive nor an OpenPGP file" in proc.stderr


def test_refuses_while_the_server_runs(kts, backup):
    before = snapshot(kts)
    proc = restore(kts, backup[0], "--confdir", kts.confdir, "--pg-rootdir",
                   kts.pgroot, "--force")
    assert proc.returncode == 1
    assert "keytrustee-server is running on %s (pid %d)" % (
        os.path.realpath(kts.confdir), kts.server.proc.pid) in proc.stderr
    assert snapshot(kts) == before
    assert not [f for f in os.listdir(kts.home) if f.startswith(".kt-restore")]


def test_without_the_recipients_key(kts, backup, tmp_path):
    empty = str(tmp_path / "gnupg")
    os.mkdir(empty, 0o700)
    kts.registry.gnupg_home(empty)
    other = str(tmp_path / "conf")
    proc = restore(kts, backup[0], "--confdir", other, "--pg-rootdir",
                   str(tmp_path / "pg"), gnupghome=empty)
    assert proc.returncode == 1
    assert "gpg failed" in proc.stderr and "GPG recipient" in proc.stderr
    assert not os.path.exists(other) and not os.path.exists(str(tmp_path / "pg"))


CONF = b'{"PORT": 11371}\n'
SQL = b"select 1;\n"


@pytest.mark.parametrize("case,members,msg", [
    ("dotdot", [("srv/.keytrustee/keytrustee.conf", "file", CONF),
                ("srv/kts_bak_h_2020-01-01_00-00-00.sql", "file", SQL),
                ("srv/../../etc/evil", "file", b"x")], "not a relative path below /"),
    ("absolute", [("/etc/evil", "file", b"x")], "not a relative path below /"),
    ("symlink", [("srv/.keytrustee/keytrustee.conf", "file", CONF),
                 ("srv/.keytrustee/link", "symlink", "/etc/passwd")], "of type '2'"),
    ("fifo", [("srv/.keytrustee/fifo", "fifo", None)], "of type '6'"),
    ("two-confdirs", [("a/.keytrustee/keytrustee.conf", "file", CONF),
                      ("b/.keytrustee/keytrustee.conf", "file", CONF)], "two config dirs"),
    ("no-sql", [("srv/.keytrustee/keytrustee.conf", "file", CONF)], "holds no database dump"),
    ("no-conf", [("srv/kts_bak_h_2020-01-01_00-00-00.sql", "file", SQL)], "holds no config dir"),
    ("outside", [("srv/.keytrustee/keytrustee.conf", "file", CONF),
                 ("srv/kts_bak_h_2020-01-01_00-00-00.sql", "file", SQL),
                 ("etc/cron.d/evil", "file", b"x")], 'holds "etc/cron.d/evil", outside'),
])
def test_hostile_archives_write_nothing(kts, tmp_path, case, members, msg):
    path = str(tmp_path / ("kts_bak_%s.tar" % case))
    make_tar(path, members)
    target = str(tmp_path / "target" / ".keytrustee")
    pg = str(tmp_path / "pg")
    proc = restore(kts, path, "--confdir", target, "--pg-rootdir", pg)
    assert proc.returncode == 1, proc.stdout
    assert msg in proc.stderr, proc.stderr
    assert "nothing was written" in proc.stderr
    assert os.listdir(str(tmp_path / "target")) == []
    assert not os.path.exists(pg)
    assert not os.path.exists("/etc/evil") and not os.path.exists("/etc/cron.d/evil")


def test_refuses_a_server_holding_data_without_force(kts, backup):
    kts.server.stop()
    try:
        before = snapshot(kts)
        proc = restore(kts, backup[1], "--confdir", kts.confdir, "--pg-rootdir",
                       kts.pgroot)
        assert proc.returncode == 1
        assert "already holds a Key Trustee Server" in proc.stderr
        assert re.search(r"holds 1 orgs, 1 clients, \d+ deposits", proc.stderr), proc.stderr
        assert "--force" in proc.stderr
        assert snapshot(kts) == before
        assert not [f for f in os.listdir(kts.home) if f.startswith((".kt-restore",
                                                                     ".keytrustee.pre"))]
    finally:
        kts.server.start()


# --------------------------------------------------------------------------
# restores: the disaster, then --force over a live server


def test_restore_after_losing_confdir_and_database(kts, backup):
    port = kts.server.port
    kts.server.stop()
    assert ktadmin("db", "--stop", "--pg-rootdir", kts.pgroot).returncode == 0
    kts.registry.kill_gnupg(kts.confdir)
    shutil.rmtree(kts.confdir)
    shutil.rmtree(kts.pgroot)

    kts.cluster = Cluster(kts.registry, kts.pgroot, free_port())
    proc = restore(kts, backup[0], "--confdir", kts.confdir, "--pg-rootdir",
                   kts.pgroot, "--port", kts.cluster.port)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Restored the database: 1 orgs, 1 clients" in proc.stdout
    assert mode(kts.confdir) == 0o700
    assert mode(os.path.join(kts.confdir, "keytrustee.conf")) == 0o600
    assert mode(os.path.join(kts.pgroot)) == 0o700
    assert not [f for f in os.listdir(kts.home) if f.startswith(".kt-restore")]
    assert not [f for f in os.listdir(kts.home) if f.endswith(".sql")]
    kts.server = Server(kts.registry, kts.confdir, port=port, name="rsrestored").start()
    fetch_all(kts, kts.deposits)
    proc = orgtool(kts.confdir, "list")
    assert proc.returncode == 0 and kts.client_fpr in proc.stdout


def test_lost_confdir_over_a_cluster_it_alone_could_open(kts, backup, tmp_path):
    """After the disaster restore the cluster's password is the new one, not
    the backup's: without the current conf the cluster cannot be opened, and
    the restore says so before writing anything."""
    target = str(tmp_path / "elsewhere" / ".keytrustee")
    os.mkdir(os.path.dirname(target))
    proc = restore(kts, backup[1], "--confdir", target, "--pg-rootdir", kts.pgroot)
    assert proc.returncode == 1
    assert "cannot connect to the cluster in %s" % kts.pgroot in proc.stderr
    assert "new, empty" in proc.stderr
    assert os.listdir(os.path.dirname(target)) == []


def test_force_replaces_a_live_server_and_keeps_it_aside(kts, backup):
    late = put(kts.client, "after-the-backup", b"written after the backup")
    kts.server.stop()
    proc = restore(kts, backup[1], "--confdir", kts.confdir, "--pg-rootdir",
                   kts.pgroot, "--force")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    aside = [f for f in os.listdir(kts.home) if f.startswith(".keytrustee.pre-restore-")]
    assert len(aside) == 1
    aside = os.path.join(kts.home, aside[0])
    assert mode(aside) == 0o700
    assert os.path.isfile(os.path.join(aside, ".keytrustee", "keytrustee.conf"))
    with open(os.path.join(aside, "keytrustee-db.sql")) as f:
        assert late in f.read()  # the newer deposit is kept, in the dump
    kts.server.start()
    fetch_all(kts, kts.deposits)
    proc = client(kts.client, "get", late, "--no-cache")
    assert proc.returncode != 0  # not in the backup: the guide says so
    shutil.rmtree(aside)


# --------------------------------------------------------------------------
# the guide's manual procedure: pg_dump | zip --encrypt, zip -r --encrypt


def pty_run(argv, cwd, env_, answers, timeout=60):
    """Run argv on a pseudo-terminal, typing an answer to each password prompt."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.chdir(cwd)
            os.execvpe(argv[0], argv, env_)
        finally:
            os._exit(127)
    out, typed = b"", 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if out.lower().count(b"password") > typed and typed < len(answers):
                # getpass-style readers flush typed-ahead input when they
                # turn echo off: answer once the prompt has settled
                time.sleep(0.3)
                os.write(fd, answers[typed].encode() + b"\n")
                typed += 1
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_manual_zip_backup_and_the_guides_restore(kts):
    """pg_dump -c -p PORT keytrustee | zip --encrypt keytrustee-db.zip -, as printed,
    with PGHOST naming our socket dir; then the guide's restore steps."""
    work = kts.registry.mkdtemp("rszip-")
    e = dict(os.environ, PGHOST=kts.pgroot)
    pgdump = "runuser -u keytrustee -- pg_dump -c -p %d keytrustee" % kts.cluster.port
    rc, out = pty_run(["sh", "-c", pgdump + " | zip --encrypt keytrustee-db.zip -"],
                      work, e, [ZIP_PASSWORD, ZIP_PASSWORD])
    assert rc == 0, out
    rc, out = pty_run(["zip", "-r", "--encrypt", "keytrustee-conf.zip", ".keytrustee"],
                      kts.home, e, [ZIP_PASSWORD, ZIP_PASSWORD])
    assert rc == 0, out
    shutil.move(os.path.join(kts.home, "keytrustee-conf.zip"), work)
    for z in ("keytrustee-db.zip", "keytrustee-conf.zip"):
        with open(os.path.join(work, z), "rb") as f:
            data = f.read()
        assert b"CREATE TABLE" not in data and b"DB_CONNECT" not in data  # encrypted

    # lose the config dir and every deposit row
    kts.server.stop()
    kts.registry.kill_gnupg(kts.confdir)
    shutil.rmtree(kts.confdir)
    kts.cluster.psql("drop table deposits cascade")

    # b) start PostgreSQL, c) load the dump, d) unzip the config dir in its parent
    proc = ktadmin("db", "--start", "--pg-rootdir", kts.pgroot, "--background")
    assert proc.returncode == 0, proc.stderr
    psql = "runuser -u keytrustee -- psql -p %d -d keytrustee" % kts.cluster.port
    rc, out = pty_run(["sh", "-c", "unzip -p %s/keytrustee-db.zip | %s" % (work, psql)],
                      "/", e, [ZIP_PASSWORD])
    assert rc == 0, out
    rc, out = pty_run(["unzip", os.path.join(work, "keytrustee-conf.zip")], kts.home, e,
                      [ZIP_PASSWORD])
    assert rc == 0, out
    assert mode(os.path.join(kts.confdir, "keytrustee.conf")) == 0o600
    kts.server.start()
    fetch_all(kts, kts.deposits)
