"""Every command block of the admin guide, run as printed.

The blocks are cut out of the guide's own text (guide_blocks.py) and run by
guide_run.py inside private mount, network, UTS and pid namespaces, on a
host made to look like a fresh Debian 12 machine named
keytrustee.example.com with the project installed the operator's way
(``make install``, the parcel through ``kt-agent parcel``).  Each command
is typed into a shell on a pseudo-terminal; the prompts it asks are
answered from PROMPTS below.  One test per block: passed, failed (with the
command and the tail of what it printed), or skipped with the class that
says why (CLASSES).

What the test changes in a command is SUBSTITUTIONS and nothing else.
What the guide says in words between blocks ("copy the public key to the
Key Trustee Server host") is PROSE_BEFORE, done in Python, each with the
guide's words.  Where the guide is wrong, the block is run as printed and
CHECKS asserts the wrong effect (docs/guide-notes.md has the corrected
command next to the guide's).

EXPECTED_FAILURES lists, by block id, the blocks that fail today because an
item of issue 21 is not merged yet.  They are strict expected failures: a
block of that table that passes fails the test, so the table only shrinks.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

import guide_blocks as gb

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONFDIR = "/var/lib/keytrustee/.keytrustee"
PGROOT = "/var/lib/keytrustee/db"
TIMEOUT = 180          # seconds for one command of a block
RUN_TIMEOUT = 1500     # seconds for the whole guide

# Passwords the operator types where the guide's commands ask for one.
ZIP_PASSWORD = "guide-zip-pw"
GPG_PASSPHRASE = "Guide-backup-key-2026!"

# --------------------------------------------------------------------------
# What is substituted in a command, each once, with why.  (old, new, why);
# applied in order to every runnable block.  "{backup}" is the name of the
# backup this run made.

SUBSTITUTIONS = [
    ("/path/to/", "/tmp/guide/",
     "the guide's placeholder directory for files the operator places "
     "(PROSE_BEFORE puts each there)"),
    ("--database-port=12345", "--database-port=11381",
     "the example's 'non-default port (12345 in this example)': the "
     "database of this host runs on the guide's default port"),
    ("kts_bak_kts01_example_com_2016-02-10_11-14-37.tar", "/tmp/guide/decrypted/backup.tar",
     "the example listing names the tarball decrypted in step 1 "
     "(/path/to/decrypted/backup.tar) by its backup name"),
    ("kts_bak_kts01_example_com_2016-02-10_11-14-37", "{backup}",
     "the example's backup (host kts01, 2016): the backup this run made"),
    ("keytrustee_private_key.pem", CONFDIR + "/.ssl/ssl-cert-keytrustee-pk.pem",
     "'Replace keytrustee_private_key.pem with the filename of the private "
     "key': the auto-generated one, at the path the guide gives"),
]

# --------------------------------------------------------------------------
# Prompts a command of the guide asks on its terminal, and what the
# operator types: (regex, answer); None = a prompt the run must not reach
# (Ctrl-C, the command fails).


def _type(text):
    return text + "\r"


PROMPTS = [
    (r"\[sudo\] password for ", None),
    (r"Enter password: ", _type(ZIP_PASSWORD)),                # zip --encrypt
    (r"Verify password: ", _type(ZIP_PASSWORD)),
    (r"\] [^\n]*password: ", _type(ZIP_PASSWORD)),            # unzip of an encrypted zip
    (r"\[y\]es, \[n\]o, \[A\]ll, \[N\]one, \[r\]ename: ", _type("A")),   # unzip over files
    (r"Passphrase:", _type(GPG_PASSPHRASE)),                   # pinentry (gpg)
    (r"Are you sure you want to continue connecting", _type("yes")),  # ssh, first time
    (r"Enter passphrase \(empty for no passphrase\): ", _type("")),  # ssh-keygen, for CM
    (r"Enter same passphrase again: ", _type("")),
    (r"Common Name \(e\.g\. server FQDN or YOUR name\) \[\]:", _type("keytrustee.example.com")),
    (r"(Country Name|State or Province|Locality Name|Organization Name|"
     r"Organizational Unit Name|Email Address|A challenge password|"
     r"An optional company name)[^\n]*:", _type("")),          # openssl req: defaults
    (r"\(END\)|\(press h for help or q to quit\)", "q"),        # man's pager
    (r"Choose 1-\d+ \[1\]: ", _type("")),                      # select-editor: vim
]


def _gen_key_answers():
    """gpg --gen-key's questions and the guide's answers, read off the
    guide's transcript ("Real name: John Doe"; "(2048)" = the default)."""
    block = next(b for b in gb.load() if "gpg --gen-key" in b.raw)
    answers = []
    for ln in block.raw.split("\n")[1:]:
        if ln.startswith("You need a Passphrase"):
            break
        m = re.match(r"^(.*?[?:]) (.*)$", ln)
        if not m or ln.startswith(("gpg", " ")) or m.group(2).endswith("."):
            continue                  # output, not a question and its answer
        prompt, rest = m.group(1), m.group(2).strip()
        rest = re.sub(r"^\([^)]*\)\s*", "", rest)   # "(y/N) y" -> "y"; "(2048)" -> ""
        answers.append((re.escape(prompt[:13]), _type(rest)))
    return answers


def _crontab_line():
    block = next(b for b in gb.load() if b.raw.startswith("*/30 "))
    return gb.joined(block.raw).strip()


def _type_crontab_entry(p):
    """crontab -e opens vi (Debian's editor): 'Add the following entry'
    (the next block), then save.  Typed once vi has drawn the file and
    settled (it asks the terminal a few questions first)."""
    p.expect(r"# m h  dom mon dow   command", timeout=30)
    time.sleep(1.0)
    p.send("Go" + _crontab_line() + "\x1b")
    time.sleep(0.3)
    p.send(":wq\r")


def prompts_for(block):
    """PROMPTS, and those of the block's own dialogue."""
    extra = []
    if "gpg --gen-key" in block.raw:
        extra = _gen_key_answers()
    if "crontab -e" in block.raw:
        extra = [(r'"/tmp/crontab\.\w+/crontab"', _type_crontab_entry)]
    return extra + PROMPTS


# Blocks the guide runs "on the Passive Key Trustee Server": in a login
# shell on keytrustee02.example.com (its own mount and UTS namespaces, its
# own /var/lib/keytrustee, reached from the active one over ssh).
ON_PASSIVE = {
    "configuring-key-trustee-server-high-availability-using-cloudera-manager-2",
}

# Blocks the guide says to run as another account, in its words.
RUN_AS = {
    "restore-key-trustee-server-from-ktbackup-sh-backups-1":
        ("john.doe", "by running the following command as the GPG recipient user account"),
}

# A block whose prompt names an account ("[john.doe@backup-host ~]$") runs
# in a login shell of that account; the backup host is this namespace.

# --------------------------------------------------------------------------
# Classes of blocks.  Unlisted blocks are "run".

RUN_CLASSES = ("run", "defect", "conf-edit", "cron")

SKIP_WHY = {
    "output": "example output, not a command",
    "mention": "a command named in the prose; the block that follows gives it in full",
    "rhel-only": "RHEL-only (chkconfig): Debian enables services otherwise",
    "keyhsm": "Key HSM: its own issue",
    "no-systemd": "systemctl needs systemd as pid 1, which a namespace of the "
                  "test host is not; the `service` line of the same step runs",
    "other-version": "Key Trustee Server 3.8 only (database in the system "
                     "PostgreSQL on 5432); this server is the 5.4+ layout",
    "template": "a template with a placeholder for a script and its "
                "arguments; the next block is its concrete form",
    "conditional": "only for a password-protected private key; the key "
                   "here (the auto-generated one) has no password",
}

CLASSES = {
    "back-up-key-trustee-server-using-the-ktbackup-sh-script-8": "cron",
    "back-up-key-trustee-server-manually-1": "other-version",
    "restore-key-trustee-server-in-parcel-based-installations-3": "defect",
    "restore-key-trustee-server-in-package-based-installations-3": "defect",
    "restore-key-trustee-server-in-package-based-installations-5": "no-systemd",
    "restore-key-trustee-server-from-ktbackup-sh-backups-5": "defect",
    "restore-key-trustee-server-from-ktbackup-sh-backups-8": "defect",
    "specifying-tls-ssl-minimum-allowed-version-and-ciphers-1": "output",
    "specifying-tls-ssl-minimum-allowed-version-and-ciphers-2": "output",
    "verifying-cloudera-navigator-key-trustee-server-operations-2": "output",
    "managing-key-trustee-server-organizations-4": "output",
    "managing-key-trustee-server-organizations-8": "output",
    "managing-key-trustee-server-organizations-10": "output",
    "managing-key-trustee-server-organizations-11": "output",
    "managing-key-trustee-server-organizations-12": "output",
    "generating-a-new-certificate-2": "defect",
    "replacing-key-trustee-server-certificates-4": "conf-edit",
    "replacing-key-trustee-server-certificates-5": "template",
    "replacing-key-trustee-server-certificates-6": "conditional",
    "replacing-key-trustee-server-certificates-8": "no-systemd",
    "replacing-key-trustee-server-certificates-9": "mention",
    "replacing-key-trustee-server-certificates-10": "keyhsm",
    "replacing-key-trustee-server-certificates-11": "mention",
    "replacing-key-trustee-server-certificates-12": "keyhsm",
    "configuring-key-trustee-server-high-availability-using-cloudera-manager-1": "defect",
}

# Blocks of two alternatives, one a line per distribution: the line that is
# not run here, and why (the other line of the block runs).
ALTERNATIVE_LINES = {
    "restore-key-trustee-server-from-ktbackup-sh-backups-9":
        ("sudo systemctl restart keytrusteed", "no-systemd"),
    "configuring-a-mail-transfer-agent-for-key-trustee-server-2":
        ("sudo chkconfig --level 235 postfix on", "rhel-only"),
}


def classify(block):
    cls = CLASSES.get(block.id, "run")
    return cls, SKIP_WHY.get(cls, "")


def substitute(bid, text, backup=None):
    for old, new, _why in SUBSTITUTIONS:
        if new == "{backup}":
            new = backup or _current_backup() or new
        text = text.replace(old, new)
    if bid in ALTERNATIVE_LINES:
        line = ALTERNATIVE_LINES[bid][0]
        text = "\n".join(ln for ln in text.split("\n") if not ln.startswith(line))
    # a trailing "#RHEL 6-compatible" is the guide's comment on the line
    return text


def _current_backup():
    """Stem of the newest backup ktbackup.sh made in /var/lib/keytrustee."""
    found = sorted(glob.glob("/var/lib/keytrustee/kts_bak_keytrustee_example_com_*.tar*"))
    if not found:
        return None
    return re.sub(r"\.tar(\.gpg)?$", "", os.path.basename(found[-1]))


# --------------------------------------------------------------------------
# Setup: the host made as an operator makes it.  Each step is fn(ctx) ->
# (ok, detail); ctx (made by guide_run.py) has sh, start_server,
# stop_server, start_passive, on_passive, root.


class Step:
    def __init__(self, sid, what, fn):
        self.id = sid
        self.what = what
        self.fn = fn


def _out(p):
    return "exit %d\n%s" % (p.returncode, p.stdout[-2000:])


def _setup_install(ctx):
    """make install, unless the package is installed: an operator installs
    one or the other (both would clash on the init scripts, conffiles of
    the package)."""
    if ctx.sh(["dpkg-query", "-W", "-f=${Status}", "keytrustee-server"]).stdout.endswith(
            "ok installed"):
        return None, "installed from the package (setup-deb)"
    p = ctx.sh(["make", "-C", ctx.root, "--no-print-directory", "install"], timeout=900)
    return p.returncode == 0, _out(p)


def _setup_deb(ctx):
    if ctx.sh(["make", "-C", ctx.root, "-n", "deb"]).returncode != 0:
        return False, "the tree has no `make deb` (issue 21 item 4)"
    p = ctx.sh(["make", "-C", ctx.root, "--no-print-directory", "deb"], timeout=900)
    debs = glob.glob(os.path.join(ctx.root, "build", "**", "keytrustee-server_*.deb"),
                     recursive=True) + glob.glob(os.path.join(ctx.root, "keytrustee-server_*.deb"))
    if p.returncode != 0 or not debs:
        return False, _out(p)
    q = ctx.sh(["dpkg", "-i", sorted(debs)[-1]], timeout=300)
    return q.returncode == 0, _out(q)


def _setup_account(ctx):
    """The account as the install made it: a login shell, its home."""
    p = ctx.sh("getent passwd keytrustee")
    if p.returncode != 0:
        # What the tree makes it with today (make deps / make check).
        q = ctx.sh(["sh", os.path.join(ctx.root, "scripts", "install-deps.sh")], timeout=600)
        return False, "the install made no keytrustee account; made by " \
                      "scripts/install-deps.sh instead: " + _out(q)
    f = p.stdout.strip().split(":")
    problems = []
    if f[5] != "/var/lib/keytrustee":
        problems.append("home is %s" % f[5])
    if f[6].endswith(("nologin", "false")):
        problems.append("shell is %s" % f[6])
    if not os.path.isdir("/var/lib/keytrustee"):
        problems.append("/var/lib/keytrustee does not exist")
    return not problems, p.stdout + "; ".join(problems)


def _setup_parcel(ctx):
    """The parcel built from the tree (make parcel), then installed and
    activated by the host agent, as Cloudera Manager distributes one."""
    built = ctx.sh(["make", "-C", ctx.root, "--no-print-directory", "parcel"], timeout=600)
    parcels = sorted(glob.glob(os.path.join(ctx.root, "build", "parcels", "*.parcel")))
    if built.returncode != 0 or not parcels:
        return False, "make parcel: " + _out(built)
    name = os.path.basename(parcels[-1]).rsplit("-", 1)[0]
    p = ctx.sh(["kt-agent", "parcel", "install", parcels[-1]])
    if p.returncode != 0:
        return False, _out(p)
    q = ctx.sh(["kt-agent", "parcel", "activate", name])
    return q.returncode == 0, _out(p) + _out(q)


def _setup_init(ctx):
    argv = ["ktadmin", "init", "--confdir", CONFDIR, "--hostname", "keytrustee.example.com"]
    p = ctx.sh(argv)
    if p.returncode == 0:
        return True, _out(p)
    # As the operator did: the directory made by root.
    ctx.sh("mkdir -p /var/lib/keytrustee")
    q = ctx.sh(argv)
    return False, "on a fresh host: " + _out(p) + "\nafter mkdir by root: " + _out(q)


def _setup_db(ctx):
    p = ctx.sh(["ktadmin", "db", "--bootstrap", "--confdir", CONFDIR, "--pg-rootdir",
                PGROOT, "--port", "11381"], timeout=300)
    return p.returncode == 0, _out(p)


def _setup_server(ctx):
    return True, ctx.start_server()


def _setup_passive(ctx):
    """The passive host, keytrustee02.example.com: the project installed
    alike (the same /usr), its own /var/lib/keytrustee, sshd as on any
    host; root of the active reaches root of the passive with a key (the
    guide's `rsync ... root@keytrustee02.example.com:` needs it)."""
    return ctx.start_passive()


SETUP = [
    Step("setup-deb", "make deb; dpkg -i keytrustee-server_*.deb", _setup_deb),
    Step("setup-make-install", "make install", _setup_install),
    Step("setup-account", "the keytrustee account after the install", _setup_account),
    Step("setup-parcel", "kt-agent parcel install/activate", _setup_parcel),
    Step("setup-init", "ktadmin init --confdir " + CONFDIR, _setup_init),
    Step("setup-db", "ktadmin db --bootstrap", _setup_db),
    Step("setup-server", "keytrustee-server started", _setup_server),
    Step("setup-passive", "the passive host keytrustee02.example.com", _setup_passive),
]

# --------------------------------------------------------------------------
# What the guide says in words before a block, done here.


def _sh(cmd):
    def fn(ctx):
        ctx.sh(cmd)
    return fn


def _conf_edit(ctx, text):
    """'Edit keytrustee.conf ... and modify the SSL_CERTIFICATE and
    SSL_PRIVATE_KEY parameters as follows': the block's pairs into the
    file's JSON object."""
    pairs = json.loads("{" + text.replace("\n", " ") + "}")
    path = os.path.join(CONFDIR, "keytrustee.conf")
    with open(path) as f:
        conf = json.load(f)
    conf.update(pairs)
    with open(path, "w") as f:
        json.dump(conf, f, indent=4, sort_keys=True)
    return True, json.dumps(pairs)


class Prose:
    def __init__(self, words, fn):
        self.words = words
        self.fn = fn


PROSE_BEFORE = {
    "back-up-key-trustee-server-using-the-ktbackup-sh-script-3": [
        Prose("the placeholder /path/to/ is a directory the key administrator writes",
              _sh("install -d -m 1777 /tmp/guide")),
    ],
    "restore-key-trustee-server-in-parcel-based-installations-1": [
        Prose("Move the backup files (keytrustee-db.zip and keytrustee-conf.zip) to a "
              "secure location ... Copy or move the backup files to the Key Trustee "
              "Server host (both: /tmp/guide)",
              _sh("mv /var/lib/keytrustee/keytrustee-db.zip /root/keytrustee-conf.zip "
                  "/tmp/guide/")),
        Prose("restoring on the original host: its service is stopped (step f starts it)",
              lambda ctx: (ctx.stop_server(),
                           ctx.sh(["ktadmin", "db", "--stop", "--pg-rootdir", PGROOT]))),
    ],
    "restore-key-trustee-server-in-package-based-installations-1": [
        Prose("Start the Key Trustee Server service in Cloudera Manager",
              lambda ctx: ctx.start_server()),
    ],
    "restore-key-trustee-server-from-ktbackup-sh-backups-1": [
        Prose("the encrypted tarball, where the GPG recipient's account reads it",
              _sh("install -d -o john.doe /tmp/guide/decrypted /tmp/guide/encrypted && "
                  "cp \"$(ls -t /var/lib/keytrustee/kts_bak_*.tar.gpg | head -1)\" "
                  "/tmp/guide/encrypted/tarball && chown john.doe /tmp/guide/encrypted/tarball")),
    ],
    "restore-key-trustee-server-from-ktbackup-sh-backups-5": [
        Prose("the database cannot be dropped while the server holds connections to it "
              "(the guide omits stopping it; docs/guide-notes.md)",
              lambda ctx: ctx.stop_server(keep_db=True)),
    ],
    "restore-key-trustee-server-from-ktbackup-sh-backups-9": [
        Prose("the previous block's last command, corrected (docs/guide-notes.md): "
              "the backup's SQL loaded by the account",
              lambda ctx: ctx.sh(["runuser", "-u", "keytrustee", "--", "psql", "-h", PGROOT,
                                  "-p", "11381", "-X", "-q", "-f",
                                  "/var/lib/keytrustee/%s.sql" % _current_backup()])),
    ],
    "verifying-cloudera-navigator-key-trustee-server-operations-1": [
        Prose("the installation to verify is running", lambda ctx: ctx.start_server()),
    ],
    "replacing-key-trustee-server-certificates-2": [
        Prose("After 'Generating a New Certificate' (made with docs/guide-notes.md's "
              "corrected command, the guide's being garbled): the new certificate and "
              "key at /path/to/new/, the (self-signed) certificate as its own root CA",
              _sh("install -d /tmp/guide/new && cd /root && "
                  "openssl x509 -req -days 365 -in new.csr -signkey "
                  + CONFDIR + "/.ssl/ssl-cert-keytrustee-pk.pem "
                  "-out new_keytrustee_certificate.pem && "
                  "cp new_keytrustee_certificate.pem /tmp/guide/new/certificate.pem && "
                  "cp new_keytrustee_certificate.pem /tmp/guide/rootca.pem && "
                  "cp " + CONFDIR + "/.ssl/ssl-cert-keytrustee-pk.pem "
                  "/tmp/guide/new/private_key.pem")),
    ],
}

# --------------------------------------------------------------------------
# What a block must have done, beyond exiting 0; for a "defect" block, the
# guide's error that must show.  fn(ctx, ran_ok, output) -> (good, why).


def _newest_backup_exists(ctx, ok, out):
    found = glob.glob("/var/lib/keytrustee/kts_bak_keytrustee_example_com_*.tar*")
    return bool(found), "backups in /var/lib/keytrustee: %s" % found


def _nested_conf(ctx, ok, out):
    nested = "/var/lib/keytrustee/var/lib/keytrustee/.keytrustee/keytrustee.conf"
    return (ok and os.path.exists(nested),
            "guide defect (zip -r of an absolute path, unzip in /var/lib/keytrustee): "
            "expected the config dir nested at %s; exists: %s"
            % (nested, os.path.exists(nested)))


def _openssl_garbled(ctx, ok, out):
    return (not ok and not os.path.exists("/root/new_keytrustee_certificate.pem"),
            "guide defect (`-signkey` / `y keytrustee_private_key.pem` broken over "
            "two lines): expected openssl to fail and make no certificate")


def _pg_db_case(ctx, ok, out):
    return (not ok and "Pg_DB/opt/postgres/9.3/bin/psql: No such file or directory" in out,
            "guide defect (`Pg_DB` for `PG_DB`): expected the shell's 'No such file or "
            "directory' for the misspelt path")


def _sudo_in_account_shell(ctx, ok, out):
    dropped = "DROP DATABASE" in out and "CREATE DATABASE" in out
    refused = "keytrustee is not in the sudoers file" in out or "password for keytrustee" in out
    return (not ok and dropped and refused,
            "guide defect (the transcript's last `sudo -u keytrustee psql` is typed "
            "in keytrustee's own shell, where sudo refuses the account): "
            "expected DROP/CREATE DATABASE, then sudo's refusal")


def _rsync_no_recursion(ctx, ok, out):
    copied = ctx.on_passive("test -e /var/lib/keytrustee/.keytrustee").returncode == 0
    return (ok and "skipping directory" in out and not copied,
            "guide defect (rsync -zcv without -r): expected 'skipping directory' and "
            "no /var/lib/keytrustee/.keytrustee on the passive; there: %s" % copied)


def _crontab_has_entry(ctx, ok, out):
    p = ctx.sh(["crontab", "-l", "-u", "keytrustee"])
    return _crontab_line() in p.stdout, "keytrustee's crontab: " + p.stdout[-500:]


def _fingerprint(ctx, ok, out):
    return (re.search(r"4096R/[0-9A-F]{40}", out) is not None,
            "expected a fingerprint like the guide's 4096R/4EDC...")


def _org_listed(secret):
    def fn(ctx, ok, out):
        good = '"disaster-recov"' in out and '"auth_secret": "%s"' % secret in out \
            if secret else '"disaster-recov"' in out
        return good, "expected disaster-recov in the list" + (
            " with auth_secret %s" % secret if secret else "")
    return fn


CHECKS = {
    "back-up-key-trustee-server-using-the-ktbackup-sh-script-7": _crontab_has_entry,
    "back-up-key-trustee-server-using-the-ktbackup-sh-script-5": _newest_backup_exists,
    "restore-key-trustee-server-in-parcel-based-installations-3": _nested_conf,
    "restore-key-trustee-server-in-package-based-installations-3": _nested_conf,
    "restore-key-trustee-server-from-ktbackup-sh-backups-5": _pg_db_case,
    "restore-key-trustee-server-from-ktbackup-sh-backups-8": _sudo_in_account_shell,
    "generating-a-new-certificate-2": _openssl_garbled,
    "configuring-key-trustee-server-high-availability-using-cloudera-manager-1":
        _rsync_no_recursion,
    "verifying-cloudera-navigator-key-trustee-server-operations-1": _fingerprint,
    "managing-key-trustee-server-organizations-5": _org_listed(None),
    "managing-key-trustee-server-organizations-7": _org_listed("ThisISAs3cr3t!"),
}

# --------------------------------------------------------------------------
# Blocks that fail because an item of issue 21 is not merged yet: block id
# -> "item N (what): the cause".  Strict: one that passes fails the test,
# so the table only shrinks.  Empty since items 1-5 were merged (main of
# 2026-12-08); the history of this file shows the entries each item took
# out.

EXPECTED_FAILURES = {
}

# ==========================================================================
# the test


def _all_ids():
    path = gb.find_guide()
    if path is None:
        return []
    return [s.id for s in SETUP] + [b.id for b in gb.load(path)]


@pytest.fixture(scope="module")
def guide_results():
    assert gb.find_guide(), "the admin guide (shared/seeds/%s) is not found" % gb.GUIDE_NAME
    for t in ("unshare", "sudo", "postconf", "sshd", "rsync", "zip", "unzip", "crontab"):
        assert shutil.which(t) or os.path.exists("/usr/sbin/" + t), \
            "%s is not installed (scripts/install-deps.sh)" % t
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    work = tempfile.mkdtemp(prefix="guide-", dir=os.path.join(ROOT, "build"))
    argv = ["unshare", "--mount", "--net", "--uts", "--pid", "--fork", "--mount-proc",
            "/usr/bin/python3", os.path.join(os.path.dirname(__file__), "guide_run.py"), work]
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=RUN_TIMEOUT)
        path = os.path.join(work, "results.json")
        assert os.path.exists(path), "guide_run.py wrote no results:\n" + p.stdout[-4000:]
        with open(path) as f:
            results = json.load(f)
        _report(results)
        if os.path.exists(os.path.join(work, "transcript.log")):
            shutil.copy(os.path.join(work, "transcript.log"),
                        os.path.join(ROOT, "build", "guide-transcript.log"))
        results["__runner__"] = {"status": "exit %d" % p.returncode, "detail": p.stdout[-4000:]}
        yield results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _report(results):
    """build/guide-report.txt: each block's class and result, and the
    counts by class and by result."""
    by_class, by_result, lines = {}, {}, []
    blocks = {b.id: b for b in gb.load()}
    for bid, r in results.items():
        cls = "setup" if bid.startswith("setup-") else classify(blocks[bid])[0]
        res = r["status"]
        if res == "failed" and bid in EXPECTED_FAILURES:
            res = "expected failure"
        if res == "passed" and cls == "defect":
            res = "passed (guide defect shown)"
        by_class[cls] = by_class.get(cls, 0) + 1
        by_result[res] = by_result.get(res, 0) + 1
        lines.append("%-28s %-11s %s%s" % (res, cls, bid, (
            "  -- " + EXPECTED_FAILURES[bid]) if bid in EXPECTED_FAILURES else ""))
    text = "by class: %s\nby result: %s\n\n%s\n" % (
        json.dumps(by_class, sort_keys=True), json.dumps(by_result, sort_keys=True),
        "\n".join(lines))
    with open(os.path.join(ROOT, "build", "guide-report.txt"), "w") as f:
        f.write(text)
    print(text)


def _params():
    out = []
    for bid in _all_ids():
        marks = []
        if bid in EXPECTED_FAILURES:
            marks.append(pytest.mark.xfail(strict=True, reason=EXPECTED_FAILURES[bid]))
        out.append(pytest.param(bid, id=bid, marks=marks))
    return out


def test_guide_is_found_and_cut_into_blocks():
    if gb.find_guide() is None and not os.environ.get("KT_GUIDE"):
        pytest.skip("the admin guide's text (shared/seeds/%s, the vendor's, not in this "
                    "tree) is not beside this checkout or its origin: set KT_GUIDE to run "
                    "the guide" % gb.GUIDE_NAME)
    blocks = gb.load()
    assert len(blocks) > 50
    ids = [b.id for b in blocks]
    assert len(ids) == len(set(ids))


def test_tables_name_real_blocks():
    """Every table keyed by block id names a block the guide has, and every
    substitution and wrap still matches the guide's text."""
    ids = set(_all_ids())
    for table in (CLASSES, ALTERNATIVE_LINES, PROSE_BEFORE, CHECKS, EXPECTED_FAILURES,
                  ON_PASSIVE, RUN_AS):
        stale = set(table) - ids
        assert not stale, "ids not in the guide: %s" % sorted(stale)
    text = "\n".join(gb.joined(b.raw) for b in gb.load())
    for old, _new, _why in SUBSTITUTIONS:
        assert old in text, "substitution %r matches nothing" % old
    raw = "\n".join(b.raw for b in gb.load())
    for w in gb.PDF_WRAPS:
        tail, head = w.split("|")
        assert tail + "\n" + head.lstrip() in raw, "wrap %r matches nothing" % w
    for bid, cls in CLASSES.items():
        assert cls in RUN_CLASSES or cls in SKIP_WHY, (bid, cls)
    for bid in EXPECTED_FAILURES:
        assert CLASSES.get(bid, "run") in RUN_CLASSES or bid.startswith("setup-"), bid


@pytest.mark.parametrize("bid", _params())
def test_block(guide_results, bid):
    r = guide_results.get(bid)
    assert r is not None, "the run did not reach %s; runner: %s" % (
        bid, guide_results["__runner__"])
    if r["status"] == "skipped":
        pytest.skip(r["detail"])
    assert r["status"] == "passed", "%s failed\ncommand: %s\n--- output (tail) ---\n%s" % (
        bid, r["command"], r["detail"][-1500:])
