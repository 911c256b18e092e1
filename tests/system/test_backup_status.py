"""Backups that keep working, or say so (issue 21, item 5).

A real server and PostgreSQL with its config dir at HOME/.keytrustee (HOME a
temporary dir standing for /var/lib/keytrustee), owned by the keytrustee
account as in production; ktbackup.sh runs as that account through runuser,
as the guide's `sudo -u keytrustee` and its crontab do.  Checked:

- a missing --output dir (the guide's cron line writes to /tmp/backups,
  which nobody creates) is made, 0700, the account's;
- the guide's own certificate procedure (`sudo cp -r .ssl .ssl.bak`, as
  root) leaves a dir the account cannot read: the backup names it with the
  chown that fixes it, writes nothing, and works once that chown is run;
- every run leaves CONFDIR/backup-status.json, which /health (time and
  result, no paths) and `kt-agent status` / `history` show, a failed or
  overdue backup marked.
"""

import json
import os
import re
import shutil
import ssl
import subprocess
import tarfile
import time
import urllib.request

import pytest

from conftest import (Cluster, Server, free_port, mode, read_conf, run, runnable_by_others,
                      tool, write_conf)
from agent_helpers import DESCRIPTOR, Agent

SCRIPTS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
ACCOUNT = "keytrustee"


def pw(name):
    import pwd
    return pwd.getpwnam(name)


class KTS:
    pass


@pytest.fixture(scope="module")
def kts(registry, template):
    k = KTS()
    k.registry = registry
    k.home = os.path.join(registry.mkdtemp("bsroot-"), "keytrustee")
    os.mkdir(k.home, 0o755)
    shutil.chown(k.home, ACCOUNT, ACCOUNT)
    k.confdir = os.path.join(k.home, ".keytrustee")
    run(["cp", "-a", template.confdir, k.confdir], check=True)
    for entry in os.listdir(k.confdir):
        if entry.startswith("S."):
            os.unlink(os.path.join(k.confdir, entry))
    run(["chown", "-R", "%s:%s" % (ACCOUNT, ACCOUNT), k.confdir], check=True)
    registry.gnupg_home(k.confdir)
    k.cluster = Cluster(registry, os.path.join(registry.mkdtemp("bspg-"), "pgdata"),
                        free_port())
    proc = k.cluster.bootstrap(k.confdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    k.server = Server(registry, k.confdir, name="bssrv").start()
    k.script = runnable_by_others(registry, os.path.join(SCRIPTS, "ktbackup.sh"))
    yield k
    k.server.stop()
    k.cluster.stop()


def ktbackup_as_account(k, *args):
    """`sudo -u keytrustee ktbackup.sh ARGS`, with the account's HOME."""
    return run([tool("runuser"), "-u", ACCOUNT, "--", "env", "HOME=" + k.home,
                "KEYTRUSTEE_HOME=" + k.home, k.script, "--confdir=" + k.confdir]
               + list(args), cwd="/", timeout=120)


def status(k):
    path = os.path.join(k.confdir, "backup-status.json")
    with open(path) as f:
        return json.load(f)


def health(k):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(k.server.url + "/health", context=ctx, timeout=10) as r:
        body = r.read().decode()
    return json.loads(body), body


def scheduled_job(k, out):
    """Install the hourly schedule into a temporary cron.d file (never
    /etc/cron.d) and run its job as cron would: `sh -c LINE` as the user,
    with the file's SHELL and PATH and the account's HOME."""
    cron = os.path.join(k.registry.mkdtemp("bscron-"), "keytrustee-backup")
    proc = run([os.path.join(SCRIPTS, "kt-backup-schedule.sh"), "install", "--cron-file", cron,
                "--user", ACCOUNT, "--cleartext", "--confdir", k.confdir, "--output", out,
                "--ktbackup", k.script])
    assert proc.returncode == 0, proc.stderr
    with open(cron) as f:
        job = [l for l in f.read().splitlines() if l.startswith("0 * * * * ")]
    assert len(job) == 1
    fields = job[0].split(None, 6)
    assert fields[5] == ACCOUNT
    return run([tool("runuser"), "-u", ACCOUNT, "--", "env", "-i", "SHELL=/bin/sh",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME=" + k.home, "LOGNAME=" + ACCOUNT, "/bin/sh", "-c", fields[6]],
               cwd=k.home, timeout=120)


def sticky_tmp(k):
    """A dir like /tmp (1777), in which the guide's /tmp/backups is missing."""
    d = k.registry.mkdtemp("bstmp-")
    os.chmod(d, 0o1777)
    return d


def kts_files(d):
    return sorted(f for f in os.listdir(d) if f.startswith("kts_bak_"))


# --------------------------------------------------------------------------


def test_missing_output_dir_is_made_0700_for_the_account(kts):
    out = os.path.join(sticky_tmp(kts), "backups")
    proc = ktbackup_as_account(kts, "--cleartext", "--quiet", "--output=" + out, "--roll=10")
    assert proc.returncode == 0, proc.stderr
    assert os.path.isdir(out) and mode(out) == 0o700
    assert os.stat(out).st_uid == pw(ACCOUNT).pw_uid
    assert kts_files(out) == [os.path.basename(proc.stdout.strip())]


def test_root_makes_the_missing_output_dir_for_the_account(kts):
    """Root running it for the account (Cloudera Manager's command does)
    gives the new dir to the config dir's owner."""
    out = os.path.join(kts.registry.mkdtemp("bsout-"), "a", "backups")
    proc = run([kts.script, "--confdir=" + kts.confdir, "--cleartext", "-q", "--output=" + out],
               env=dict(os.environ, KEYTRUSTEE_HOME=kts.home), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert mode(out) == 0o700 and os.stat(out).st_uid == pw(ACCOUNT).pw_uid
    assert mode(os.path.dirname(out)) == 0o755  # a made parent: the account passes
    proc = ktbackup_as_account(kts, "--cleartext", "-q", "--output=" + out)
    assert proc.returncode == 0, proc.stderr
    assert len(kts_files(out)) == 2
    # the status file stays the account's too
    st = os.stat(os.path.join(kts.confdir, "backup-status.json"))
    assert st.st_uid == pw(ACCOUNT).pw_uid and st.st_mode & 0o777 == 0o600


def test_output_dir_the_account_cannot_make_is_named(kts):
    parent = kts.registry.mkdtemp("bsroot-owned-")  # root's, 0755
    out = os.path.join(parent, "backups")
    proc = ktbackup_as_account(kts, "--cleartext", "-q", "--output=" + out)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines()[0] == \
        "error: cannot create output dir %s: Permission denied" % out
    assert os.listdir(parent) == []
    st = status(kts)
    assert st["result"] == "failed" and st["reason"] == "output"


def test_output_that_is_not_a_directory_is_refused(kts):
    d = sticky_tmp(kts)
    path = os.path.join(d, "backups")
    with open(path, "w") as f:
        f.write("x")
    proc = ktbackup_as_account(kts, "--cleartext", "--output=" + path)
    assert proc.returncode == 1
    assert "error: output dir %s is not a directory" % path in proc.stderr
    assert sorted(os.listdir(d)) == ["backups"]
    st = status(kts)
    assert st["result"] == "failed" and st["reason"] == "output"
    assert st["error"] == "output dir %s is not a directory" % path


def test_status_file_on_success_and_failure_and_health(kts):
    out = os.path.join(sticky_tmp(kts), "backups")
    proc = ktbackup_as_account(kts, "--cleartext", "-q", "--output=" + out)
    assert proc.returncode == 0, proc.stderr
    path = proc.stdout.strip()
    st = status(kts)
    assert st["result"] == "ok" and st["exit"] == 0 and st["file"] == path
    assert st["ended"] >= st["started"] and st["duration_seconds"] == st["ended"] - st["started"]
    assert abs(st["ended"] - time.time()) < 60 and st["interval_seconds"] == 3600
    assert st["last_ok"] == st["ended"] and st["runs"][-1]["result"] == "ok"
    assert mode(os.path.join(kts.confdir, "backup-status.json")) == 0o600
    # not in the backup: it is this host's, not what a restore brings back
    with tarfile.open(path) as tf:
        assert not any("backup-status" in m.name for m in tf.getmembers())
    h, _ = health(kts)
    assert h["status"] == "ok"
    assert h["backup"]["state"] == "ok" and h["backup"]["result"] == "ok"
    assert h["backup"]["last"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st["ended"]))
    assert h["backup"]["interval_seconds"] == 3600 and 0 <= h["backup"]["age_seconds"] < 60

    # the database down (a wrong port): failed, named, no partial file
    n = len(st["runs"])
    proc = ktbackup_as_account(kts, "--cleartext", "-q", "--output=" + out,
                               "--database-port=%d" % free_port())
    assert proc.returncode == 1
    assert kts_files(out) == [os.path.basename(path)]
    assert [f for f in os.listdir(out) if f.startswith(".ktbackup")] == []
    st = status(kts)
    assert st["result"] == "failed" and st["exit"] == 1 and st["reason"] == "database"
    assert st["error"].startswith("pg_dump of the keytrustee database on port ")
    assert len(st["runs"]) == n + 1 and st["last_ok"] == st["runs"][-2]["ended"]
    h, body = health(kts)
    assert h["status"] == "ok"  # still serving: a backup does not degrade it
    assert h["backup"]["state"] == "failed" and h["backup"]["result"] == "failed"
    assert h["backup"]["reason"] == "database"
    assert "pg_dump" not in body and kts.home not in body


def test_the_guides_ssl_bak_is_named_with_its_chown(kts):
    """Replacing Key Trustee Server Certificates, step 1, as printed:
    `sudo cp -r .../.keytrustee/.ssl .../.keytrustee/.ssl.bak`."""
    out = os.path.join(sticky_tmp(kts), "backups")
    proc = scheduled_job(kts, out)  # a good hourly backup first
    assert proc.returncode == 0, proc.stderr
    good = kts_files(out)
    ssl_dir = os.path.join(kts.confdir, ".ssl")
    bak = os.path.join(kts.confdir, ".ssl.bak")
    run(["sh", "-c", 'umask 022 && cp -r "$0" "$1"', ssl_dir, bak], check=True)
    assert os.stat(bak).st_uid == 0
    try:
        # the hourly job, as kt-backup-schedule.sh writes it and cron runs it
        proc = scheduled_job(kts, out)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert proc.stdout == ""
        assert "tar:" not in proc.stderr  # found before tar ran
        lines = proc.stderr.splitlines()
        assert lines[0].startswith("error: cannot read %s" % bak), proc.stderr
        hint = "hint: sudo chown -R keytrustee:keytrustee %s" % bak
        assert hint in lines, proc.stderr
        assert os.listdir(out) == good  # no partial file, no temporary dir
        st = status(kts)
        assert st["result"] == "failed" and st["reason"] == "unreadable"
        assert bak in st["error"]
        h, body = health(kts)
        assert h["backup"]["state"] == "failed" and h["backup"]["reason"] == "unreadable"
        assert ".ssl" not in body and kts.confdir not in body

        # the agent shows it: status under the role, history as failed
        agent = Agent(kts.registry.mkdtemp("bsagent-"), host="kts1")
        proc = agent("assign", "--descriptor", DESCRIPTOR, "--hosts", "kts1",
                     "--set", "keytrustee_server_conf_dir=" + kts.confdir)
        assert proc.returncode == 0, proc.stderr
        proc = agent("status", "KEYTRUSTEE_ACTIVE_SERVER")
        lines = proc.stdout.splitlines()
        assert lines[0].startswith("KEYTRUSTEE_ACTIVE_SERVER"), proc.stdout
        assert re.match(r"^  backup: failed: last run \S+Z failed \(exit 1, \d+s\): "
                        r"cannot read %s" % re.escape(bak), lines[1]), proc.stdout
        proc = agent("history")
        assert proc.returncode == 0, proc.stderr
        rows = [l.split(None, 6) for l in proc.stdout.splitlines()[1:]]
        backups = [r for r in rows if r[4] == "ktbackup.sh"]
        assert backups and all(r[0] == "-" and r[3] == "KEYTRUSTEE_ACTIVE_SERVER"
                               for r in backups)
        assert backups[-1][5] == "1" and backups[-1][6].startswith("failed: cannot read " + bak)
        assert backups[-2][5] == "0" and len(backups[-2]) == 6  # the good one before it

        # the hint, as printed (we are root: without sudo) -> the backup works
        cmd = hint[len("hint: sudo "):].split()
        run(cmd, check=True)
        proc = scheduled_job(kts, out)
        assert proc.returncode == 0, proc.stderr
        with tarfile.open(proc.stdout.strip()) as tf:
            names = tf.getnames()
        rel = bak.lstrip("/")
        # kept: it holds the old certificate and key the operator may go back to
        assert rel + "/ssl-cert-keytrustee-pk.pem" in names
        assert status(kts)["result"] == "ok"
        assert health(kts)[0]["backup"]["state"] == "ok"
        proc = agent("status", "KEYTRUSTEE_ACTIVE_SERVER")
        assert proc.stdout.splitlines()[1].startswith("  backup: ok: last run "), proc.stdout
    finally:
        shutil.rmtree(bak, ignore_errors=True)


def test_overdue_after_twice_the_interval(kts):
    """BACKUP_INTERVAL (keytrustee.conf) of 1 s: a good backup is overdue
    after 2 s without another."""
    conf = read_conf(kts.confdir)
    write_conf(kts.confdir, dict(conf, BACKUP_INTERVAL=1))
    try:
        out = os.path.join(sticky_tmp(kts), "backups")
        proc = ktbackup_as_account(kts, "--cleartext", "-q", "--output=" + out)
        assert proc.returncode == 0, proc.stderr
        assert status(kts)["interval_seconds"] == 1
        time.sleep(3.2)
        b = health(kts)[0]["backup"]
        assert b["state"] == "overdue" and b["result"] == "ok" and b["interval_seconds"] == 1
        assert b["age_seconds"] >= 3
    finally:
        write_conf(kts.confdir, conf)


def test_no_status_yet(registry, make_server, dbconf):
    """A server no backup has run for says so."""
    srv = make_server(dbconf).start()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(srv.url + "/health", context=ctx, timeout=10) as r:
        assert json.load(r)["backup"] == {"state": "none"}
