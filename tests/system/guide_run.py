#!/usr/bin/python3
"""Run the admin guide's blocks inside private namespaces.

    unshare --mount --net --uts --pid --fork --mount-proc \\
        /usr/bin/python3 tests/system/guide_run.py WORKDIR

tests/system/test_guide.py starts this and reads WORKDIR/results.json.  As
pid 1 of its own pid namespace it makes the host it runs the guide on:

- overlays over /etc, /usr, /var, /opt, /root and /home (writes go to a
  tmpfs; the real machine is untouched), fresh tmpfs on /tmp and /run;
- host name keytrustee.example.com, loopback up, /etc/hosts naming the
  active server (127.0.1.1) and the passive keytrustee02.example.com
  (127.0.0.2);
- a fresh host's state: no /var/lib/keytrustee, no keytrustee account, no
  parcel, /run/postgresql as postgresql-common makes it at boot;

then installs the project the way an operator would (``make install``; the
parcel through ``kt-agent parcel install/activate``), initialises the
server, and runs every block the test classifies as runnable, in the
guide's order, each command typed into a shell on a pseudo-terminal
(pexpect), answering the prompts listed in test_guide.PROMPTS.

When it exits, everything it started dies with its pid namespace.
"""

import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import types

import pexpect

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import guide_blocks as gb  # noqa: E402
import test_guide as tg  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CONFDIR = "/var/lib/keytrustee/.keytrustee"
PGROOT = "/var/lib/keytrustee/db"
MARK = re.compile(r"KTG:([0-9 ]*)> ")
# bash: the statuses of the whole last pipeline; another sh: $?.
INSTRUMENT = "PROMPT_COMMAND='__ktg=\"${PIPESTATUS[*]}\"'; PS1='KTG:${__ktg:-$?}> '; PS2=''"


def sh(cmd, check=False, timeout=300, **kw):
    p = subprocess.run(cmd, shell=isinstance(cmd, str), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d\n%s" % (cmd, p.returncode, p.stdout))
    return p


# --------------------------------------------------------------------------
# the host


def make_host():
    sh("mount --make-rprivate /", check=True)
    # The overlays' upper layers live in a tmpfs on /mnt (a path no overlay
    # covers); the repository is bound there too, and back at its own path
    # once the overlays and tmpfs are in place, so that wherever it is
    # checked out (under /tmp, /home, ...) make runs in it and the results
    # reach the test.
    sh(["mount", "-t", "tmpfs", "-o", "mode=0755", "guide-layers", "/mnt"], check=True)
    os.makedirs("/mnt/src")
    sh(["mount", "--bind", ROOT, "/mnt/src"], check=True)
    for d in ("/etc", "/usr", "/var", "/opt", "/root", "/home"):
        name = d.strip("/")
        up, wk = os.path.join("/mnt", name, "up"), os.path.join("/mnt", name, "wk")
        os.makedirs(up)
        os.makedirs(wk)
        sh(["mount", "-t", "overlay", "guide-" + name, "-o",
            "lowerdir=%s,upperdir=%s,workdir=%s" % (d, up, wk), d], check=True)
    sh(["mount", "-t", "tmpfs", "-o", "mode=1777", "guide-tmp", "/tmp"], check=True)
    sh(["mount", "-t", "tmpfs", "-o", "mode=0755", "guide-run", "/run"], check=True)
    os.makedirs(ROOT, exist_ok=True)
    sh(["mount", "--bind", "/mnt/src", ROOT], check=True)
    os.makedirs("/run/lock", mode=0o1777)
    sh("hostname keytrustee.example.com && ip link set lo up && "
       "ip addr add 127.0.0.2/8 dev lo 2>/dev/null; true", check=True)
    with open("/etc/hostname", "w") as f:
        f.write("keytrustee.example.com\n")
    with open("/etc/hosts", "w") as f:
        f.write("127.0.0.1\tlocalhost\n"
                "127.0.1.1\tkeytrustee.example.com keytrustee\n"
                "127.0.0.2\tkeytrustee02.example.com keytrustee02\n")
    # A fresh host: what earlier runs of the project left on this machine
    # is hidden (whiteouts in the overlays only).
    sh("rm -rf /var/lib/keytrustee /opt/cloudera /var/lib/kt-agent "
       "/etc/cron.d/keytrustee-backup /var/spool/cron/crontabs/keytrustee", check=True)
    sh("userdel keytrustee 2>/dev/null; groupdel keytrustee 2>/dev/null; true")
    # What the postgresql package's tmpfiles.d makes at boot.
    sh("systemd-tmpfiles --create --prefix=/run/postgresql 2>/dev/null || "
       "install -d -m 2775 -o postgres -g postgres /run/postgresql", check=True)
    # The key administrator's account on the backup host (the guide's
    # john.doe); the backup host is this namespace.
    sh("useradd -m -s /bin/bash john.doe", check=True)


# --------------------------------------------------------------------------
# shells on a pseudo-terminal


class Shell:
    """An interactive bash on a pty, its prompt replaced by one carrying
    the exit statuses of the last pipeline."""

    def __init__(self, user="root", log=None, passive=False):
        env = {"TERM": "xterm", "LANG": "C.UTF-8", "HOME": "/root",
               "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        if passive:
            argv = ["nsenter", "-t", str(passive_pid()), "-m", "-u", "/bin/bash", "--login"]
            cwd = "/root"
        elif user == "root":
            argv = ["/bin/bash", "--login"]
            cwd = "/root"
        else:
            # A login of USER on this terminal: the terminal is given to
            # the account as login(1) and sshd do, so that pinentry can
            # open it (the guide's note on `su` and gpg --gen-key).
            argv = ["/bin/sh", "-c", 'chown %s "$(tty)" && exec su - %s' % (user, user)]
            cwd = "/"
        self.p = pexpect.spawn(argv[0], argv[1:], env=env, cwd=cwd, encoding="utf-8",
                               codec_errors="replace", dimensions=(60, 200), timeout=120)
        self.p.logfile_read = log
        self.p.expect([r"[$#] ", pexpect.TIMEOUT], timeout=15)
        self.p.sendline(INSTRUMENT)
        self.p.expect(MARK)

    def close(self):
        self.p.close(force=True)


def answer_loop(p, answers, done, timeout):
    """Expect done (a list of patterns) while answering prompts; returns
    (index in done, text seen)."""
    pats = list(done) + [a[0] for a in answers] + [pexpect.EOF, pexpect.TIMEOUT]
    seen = ""
    deadline = time.monotonic() + timeout
    while True:
        left = max(1, deadline - time.monotonic())
        i = p.expect(pats, timeout=left)
        seen += (p.before or "") + (p.after if isinstance(p.after, str) else "")
        if i < len(done):
            return i, seen
        if i >= len(done) + len(answers):
            return None, seen
        ans = answers[i - len(done)][1]
        if callable(ans):
            ans(p)
        elif ans is None:          # a prompt the guide's run must not reach
            p.sendcontrol("c")
        else:
            p.send(ans)
        if time.monotonic() > deadline:
            return None, seen


def run_shell_lines(shell, lines, answers, timeout=180):
    """Type each line into the shell; stop at the first that fails.  Each
    line is (kind, text): "sh" a shell command, "psql" a line typed at
    psql's prompt.  Returns (ok, transcript, failed line)."""
    out = ""
    for kind, text in lines:
        shell.p.sendline(text)
        if kind == "su":
            # a new login shell, or back at ours when su failed
            i, seen = answer_loop(shell.p, answers, [MARK, r"\n[^\n]*[$#] $"], 30)
            out += seen
            if i == 0:
                return False, out, text
            if i is None:
                return False, out, text
            shell.p.sendline(INSTRUMENT)
            shell.p.expect(MARK)
            continue
        if kind == "psql-start" or kind == "psql":
            pats = [r"\w+=[#>] $", MARK]
            i, seen = answer_loop(shell.p, answers, pats, timeout)
            out += seen
            if i is None:
                return False, out, text
            if kind == "psql" and re.search(r"^(ERROR|FATAL|psql: error)", seen, re.M):
                return False, out, text
            if kind == "psql-start" and i == 1:
                return False, out, text
            continue
        i, seen = answer_loop(shell.p, answers, [MARK], timeout)
        out += seen
        if i is None:
            return False, out, text
        status = shell.p.match.group(1).split() if i == 0 else ["?"]
        if not status or any(s != "0" for s in status):
            return False, out, text
    return True, out, None


# --------------------------------------------------------------------------
# the server, set up and kept up as Cloudera Manager would


def tls_up(host="keytrustee.example.com", port=11371):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=2) as raw:
            with ctx.wrap_socket(raw):
                return True
    except OSError:
        return False


SERVER = {}


def start_server():
    """keytrustee-server as operating.md starts it (the service, once an
    init script exists)."""
    if tls_up():
        return "already up"
    if os.path.exists("/etc/init.d/keytrusteed"):
        p = sh("service keytrusteed start")
        how = "service keytrusteed start: %d %s" % (p.returncode, p.stdout[-300:])
    else:
        if sh(["ktadmin", "db", "--status", "--pg-rootdir", PGROOT]).returncode != 0:
            sh(["ktadmin", "db", "--start", "--pg-rootdir", PGROOT, "--background"])
        log = open("/var/log/keytrustee-server.log", "ab")
        SERVER["proc"] = subprocess.Popen(["runuser", "-u", "keytrustee", "--", "keytrustee-server",
                          "--confdir", CONFDIR], stdin=subprocess.DEVNULL, stdout=log,
                         stderr=log, start_new_session=True, cwd="/")
        how = "runuser -u keytrustee -- keytrustee-server --confdir " + CONFDIR
    for _ in range(200):
        if tls_up():
            return how
        time.sleep(0.1)
    raise RuntimeError("server did not come up (%s):\n%s" % (how, sh(
        "tail -20 /var/log/keytrustee-server.log").stdout))


def stop_server(keep_db=True):
    """Stop the server this run started (the database too unless
    keep_db)."""
    if os.path.exists("/etc/init.d/keytrusteed"):
        sh("service keytrusteed stop")
    proc = SERVER.pop("proc", None)
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
    db_up = sh(["ktadmin", "db", "--status", "--pg-rootdir", PGROOT]).returncode == 0
    if not keep_db and db_up:
        sh(["ktadmin", "db", "--stop", "--pg-rootdir", PGROOT])
    elif keep_db and not db_up:
        # keytrusteed's init script stops its database last
        if os.path.exists("/etc/init.d/keytrustee-db"):
            sh("service keytrustee-db start")
        else:
            sh(["ktadmin", "db", "--start", "--pg-rootdir", PGROOT, "--background"])


# --------------------------------------------------------------------------
# the passive host


PASSIVE = {}


def start_passive():
    sh("install -d -m 0700 /root/.ssh && rm -f /root/.ssh/id_ed25519* && "
       "ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519 && "
       "cat /root/.ssh/id_ed25519.pub >> /root/.ssh/authorized_keys && "
       "install -d -m 0755 /run/sshd", check=True)
    PASSIVE["proc"] = subprocess.Popen(
        ["unshare", "--mount", "--uts", "sh", "-c",
         "mount -t tmpfs -o mode=0755 passive-kt /var/lib/keytrustee && "
         "hostname keytrustee02.example.com && "
         "exec /usr/sbin/sshd -D -o ListenAddress=127.0.0.2 -o PidFile=none"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.2", 22), timeout=1).close()
            return True, "sshd of keytrustee02.example.com on 127.0.0.2:22"
        except OSError:
            time.sleep(0.1)
    return False, "sshd of the passive did not start"


def passive_pid():
    """The passive's sshd (the process that entered its namespaces)."""
    return PASSIVE["proc"].pid


def on_passive(cmd):
    return sh(["nsenter", "-t", str(passive_pid()), "-m", "-u", "sh", "-c", cmd])


# --------------------------------------------------------------------------
# main


def main():
    work = sys.argv[1]
    make_host()
    out_path = os.path.join(work, "results.json")
    log = open(os.path.join(work, "transcript.log"), "w")
    results = {}

    def record(bid, status, detail="", cmd=""):
        results[bid] = {"status": status, "detail": detail[-3000:], "command": cmd}
        with open(out_path, "w") as f:
            json.dump(results, f, indent=1)
        log.write("\n==== %s: %s %s\n" % (bid, status, cmd))
        log.flush()

    ctx = types.SimpleNamespace(sh=sh, start_server=start_server, stop_server=stop_server,
                                start_passive=start_passive, on_passive=on_passive,
                                root=ROOT)
    for step in tg.SETUP:
        try:
            ok, detail = step.fn(ctx)
        except Exception as e:  # noqa: BLE001 - reported, never hidden
            ok, detail = False, "%s: %s" % (type(e).__name__, e)
        record(step.id, {True: "passed", False: "failed", None: "skipped"}[ok],
               detail, step.what)

    blocks = gb.load()
    for b in blocks:
        cls, why = tg.classify(b)
        if cls not in tg.RUN_CLASSES:
            record(b.id, "skipped", why)
            continue
        for prose in tg.PROSE_BEFORE.get(b.id, []):
            try:
                prose.fn(ctx)
            except Exception as e:  # noqa: BLE001
                log.write("prose before %s failed: %s\n" % (b.id, e))
        try:
            ok, detail, cmd = run_block(b, cls, ctx, log)
        except Exception as e:  # noqa: BLE001
            ok, detail, cmd = False, "%s: %s" % (type(e).__name__, e), ""
        record(b.id, "passed" if ok else "failed", detail, cmd)
    log.close()
    return 0


def shell_lines(b):
    """(kind, text) for each command of a block, substituted."""
    lines = []
    raw = tg.substitute(b.id, gb.joined(b.raw))
    if gb.is_transcript(b.raw):
        for ln in raw.split("\n"):
            m = gb.PROMPT.match(ln)
            pm = re.match(r"^\w+=# (.*)$", ln)
            if m:
                text = ln[m.end():]
                kind = "su" if text.startswith("su - ") else "sh"
                if re.search(r"(^|/)psql -p \d+$", text):
                    kind = "psql-start"
                lines.append((kind, text))
            elif pm:
                lines.append(("psql", pm.group(1)))
        return lines
    for ln in raw.split("\n"):
        if ln.strip():
            lines.append(("su" if ln.startswith("su - ") else "sh", ln))
    return lines


def run_cron(b, ctx):
    """The crontab entry: installed (by the crontab -e block before), and
    its command run as cron runs it (the account, /bin/sh, cron's PATH)."""
    entry = tg.substitute(b.id, gb.joined(b.raw)).strip()
    p = sh(["crontab", "-l", "-u", "keytrustee"])
    if entry not in p.stdout:
        return False, "the entry is not in keytrustee's crontab:\n" + p.stdout, entry
    command = entry.split(None, 5)[5]
    q = sh(["runuser", "-u", "keytrustee", "--", "env", "-i", "HOME=/var/lib/keytrustee",
            "LOGNAME=keytrustee", "SHELL=/bin/sh", "PATH=/usr/bin:/bin",
            "/bin/sh", "-c", command], timeout=300)
    made = sorted(os.listdir("/tmp/backups")) if os.path.isdir("/tmp/backups") else []
    ok = q.returncode == 0 and any(n.startswith("kts_bak_") for n in made)
    return ok, "exit %d\n%s\n/tmp/backups: %s" % (q.returncode, q.stdout, made), command


def run_block(b, cls, ctx, log):
    if cls == "cron":
        return run_cron(b, ctx)
    if cls == "conf-edit":
        ok, detail = tg._conf_edit(ctx, tg.substitute(b.id, gb.joined(b.raw)))
        return ok, detail, "edit " + CONFDIR + "/keytrustee.conf"
    lines = shell_lines(b)
    user = "root"
    m = re.match(r"^\[([^@]+)@", b.raw)
    if m:
        user = m.group(1)
    if b.id in tg.RUN_AS:
        user = tg.RUN_AS[b.id][0]
    shell = Shell(user, log, passive=b.id in tg.ON_PASSIVE)
    try:
        ok, out, failed = run_shell_lines(shell, lines, tg.prompts_for(b), timeout=tg.TIMEOUT)
    finally:
        shell.close()
    cmd = failed or "; ".join(t for _, t in lines)
    check = tg.CHECKS.get(b.id)
    if cls == "defect":
        good, why = check(ctx, ok, out)
        return good, why + "\n" + out, cmd
    if ok and check is not None:
        good, why = check(ctx, ok, out)
        if not good:
            return False, why + "\n" + out, cmd
    return ok, out, cmd


if __name__ == "__main__":
    sys.exit(main())
