"""The guide's service account and database access (issue 21, items 1-2):
scripts/kt-account.sh makes (or mends) the `keytrustee` account as the
vendor's package does; `ktadmin init` makes the missing parents of its
--confdir for it; the standard cluster (port 11381) also answers in libpq's
default socket dir, so the guide's `sudo -u keytrustee psql -p 11381` and
`pg_dump -p 11381` work without -h (tried in private mount and network
namespaces: the machine's /run/postgresql is never touched); the parcel
bundles the PostgreSQL it runs with, reachable at the guide's
PG_DB/opt/postgres/9.3/bin path; and parcel activation makes the account the
parcel declares.

Accounts other than `keytrustee` are throwaway ones (kttNNNNNNNN), removed
at the end of each test."""

import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import uuid

import pytest

from agent_helpers import Agent, build_parcel
from conftest import (ROOT, Cluster, binary, copy_confdir, free_port, ktadmin, mode,
                      run, runnable_by_others, tool, wait_for)

KT_ACCOUNT = os.path.join(ROOT, "scripts", "kt-account.sh")
PARCEL_VERSION = "2.0.0acct"
PARCEL_TOP = "KEYTRUSTEE_SERVER-" + PARCEL_VERSION


def shadow_locked(name):
    """passwd -S: the second field is L for a locked password."""
    proc = run([tool("passwd"), "-S", name], check=True)
    return proc.stdout.split()[1] == "L"


def groups_of(name):
    return run(["id", "-nG", name], check=True).stdout.split()


@pytest.fixture
def throwaway(registry):
    """A fresh account name and a home path under the session dir; the
    account is removed afterwards."""
    name = "ktt" + uuid.uuid4().hex[:8]
    home = os.path.join(registry.mkdtemp("home-"), "var", "lib", name)
    yield name, home
    subprocess.run(["userdel", name], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)


# --------------------------------------------------------------------------
# kt-account.sh


def test_kt_account_makes_the_vendors_account(throwaway):
    name, home = throwaway
    os.makedirs(os.path.dirname(home))
    proc = run(["sh", KT_ACCOUNT, "--user", name, "--home", home], check=True)
    assert "created the system account %s" % name in proc.stdout
    pw = pwd.getpwnam(name)
    assert pw.pw_shell == "/bin/bash"
    assert pw.pw_dir == home
    assert pw.pw_uid < 1000, "a system account"
    assert grp.getgrgid(pw.pw_gid).gr_name == name
    assert shadow_locked(name)
    st = os.stat(home)
    assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid)
    assert mode(home) == 0o700
    try:
        grp.getgrnam("postgres")
        assert "postgres" in groups_of(name)
    except KeyError:
        pass
    # Idempotent: a second run changes nothing and says nothing.
    again = run(["sh", KT_ACCOUNT, "--user", name, "--home", home], check=True)
    assert again.stdout == "" and again.stderr == ""
    assert mode(home) == 0o700


def test_kt_account_mends_an_account_of_an_older_version(throwaway):
    """What install-deps.sh made before: nologin, no home; the guide's `su -`
    then says "This account is currently not available"."""
    name, home = throwaway
    run(["useradd", "--system", "--user-group", "--home-dir", home,
         "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    os.makedirs(home, mode=0o755)  # made by root, as an operator would
    os.chmod(home, 0o755)
    su = run([tool("su"), "-", name, "-c", "id -un"])
    assert su.returncode != 0
    proc = run(["sh", KT_ACCOUNT, "--user", name, "--home", home], check=True)
    assert "shell: /usr/sbin/nologin -> /bin/bash" in proc.stdout
    assert "gave %s to %s" % (home, name) in proc.stdout
    pw = pwd.getpwnam(name)
    assert pw.pw_shell == "/bin/bash"
    assert os.stat(home).st_uid == pw.pw_uid
    assert mode(home) == 0o755, "never opened wider, nor closed behind the operator's back"
    assert shadow_locked(name)
    # Only root gets in: su from root works now, with a login shell.
    su = run([tool("su"), "-", name, "-c", "id -un; pwd"], check=True)
    assert su.stdout.split() == [name, home]
    # ... and nobody else: the password is locked.
    assert run(["sh", KT_ACCOUNT, "--user", name, "--home", home], check=True).stdout == ""


@pytest.mark.parametrize("args,code,message", [
    (["--user", "Bad Name"], 2, "error: --user: 'Bad Name' is not an account name"),
    (["--user", "-x"], 2, "error: --user: '-x' is not an account name"),
    (["--home", "var/lib/x"], 2, "error: --home: 'var/lib/x' is not an absolute path"),
    (["--user"], 2, "error: --user needs a value"),
    (["--bogus"], 2, "error: unknown argument '--bogus'"),
])
def test_kt_account_bad_input(args, code, message):
    before = open("/etc/passwd").read()
    proc = run(["sh", KT_ACCOUNT] + args)
    assert proc.returncode == code
    assert message in proc.stderr
    assert open("/etc/passwd").read() == before


def test_kt_account_needs_root(registry):
    script = runnable_by_others(registry, KT_ACCOUNT)
    proc = run(["runuser", "-u", "nobody", "--", "sh", script], cwd="/")
    assert proc.returncode == 1
    assert "error: kt-account.sh must run as root" in proc.stderr


def test_kt_account_help():
    proc = run(["sh", KT_ACCOUNT, "--help"], check=True)
    assert proc.stdout.startswith("usage: kt-account.sh")


def test_install_deps_leaves_the_keytrustee_account_as_the_guide_needs():
    """scripts/install-deps.sh (make check's first step) ran kt-account.sh:
    the real account has the guide's home and a login shell, its password
    is locked.  Only read here."""
    pw = pwd.getpwnam("keytrustee")
    assert pw.pw_dir == "/var/lib/keytrustee"
    assert pw.pw_shell == "/bin/bash"
    assert shadow_locked("keytrustee")
    st = os.stat("/var/lib/keytrustee")
    assert st.st_uid == pw.pw_uid
    assert stat.S_IMODE(st.st_mode) & 0o022 == 0


# --------------------------------------------------------------------------
# ktadmin init --confdir with missing parents


def test_init_makes_missing_parents_for_the_account(registry):
    """The guide's `ktadmin init --confdir /var/lib/keytrustee/.keytrustee`
    on a fresh host, re-rooted under a temp dir."""
    base = registry.mkdtemp("fresh-")
    home = os.path.join(base, "var", "lib", "keytrustee")
    confdir = registry.gnupg_home(os.path.join(home, ".keytrustee"))
    proc = ktadmin("init", "--confdir", confdir, "--hostname", "localhost", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pw = pwd.getpwnam("keytrustee")
    for d in (os.path.join(base, "var"), os.path.join(base, "var", "lib"), home, confdir):
        st = os.stat(d)
        assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid), d
        assert mode(d) == 0o700, d
    # What the guide then does as keytrustee in its home works.
    run(["runuser", "-u", "keytrustee", "--", "mkdir", "-m", "700",
         os.path.join(home, ".ssh")], check=True, cwd="/")
    # An existing parent is left as it was.
    assert os.stat(base).st_uid == 0 and mode(base) == 0o755


def test_init_without_root_keeps_a_missing_parent_an_error(registry):
    base = registry.mkdtemp("noroot-")
    confdir = os.path.join(base, "a", "b", ".keytrustee")
    exe = runnable_by_others(registry, binary("ktadmin"))
    proc = run(["runuser", "-u", "nobody", "--", exe, "init", "--confdir", confdir,
                "--hostname", "localhost"], cwd="/")
    assert proc.returncode == 1
    assert "error: cannot create config dir %s: No such file or directory" % confdir in proc.stderr
    assert "hint: create its parent directory first, or run ktadmin init as root" in proc.stderr
    assert os.listdir(base) == []


# --------------------------------------------------------------------------
# psql and pg_dump without -h


NS_SCRIPT = r"""
set -eu
mount --bind "$SOCK" /var/run/postgresql
ip link set lo up
trap '"$KTADMIN" db --stop --pg-rootdir "$ROOTDIR" >/dev/null 2>&1 || true' EXIT
"$KTADMIN" db --bootstrap --confdir "$CONF" --pg-rootdir "$ROOTDIR" >&2
echo "sockets: $(ls -A /var/run/postgresql | tr '\n' ' ')"
# The guide's commands, as printed (no -h).
echo "sudo: $(sudo -u keytrustee psql -X -p 11381 -d keytrustee -Atc 'select current_user')"
echo "su: $(su - keytrustee -c "psql -X -p 11381 -d keytrustee -Atc 'select 42'")"
echo "dump: $(sudo -u keytrustee pg_dump -p 11381 keytrustee | grep -c '^CREATE TABLE')"
# The parcel variant: its bundled psql, by the guide's 9.3 path.
echo "parcel: $(sudo -u keytrustee "$PARCEL_PSQL" -X -p 11381 -d keytrustee -Atc 'select 43')"
"""


def test_guide_psql_and_pg_dump_reach_the_standard_cluster_without_h(registry, template,
                                                                     parcel):
    for t in ("unshare", "ip", "sudo", "su", "psql", "pg_dump", "mount"):
        tool(t)
    conf = copy_confdir(registry, template.confdir, "nsconf")
    rootdir = os.path.join(registry.mkdtemp("nspg-"), "pgdata")
    # /run/postgresql as postgresql-common's tmpfiles.d makes it.
    sock = registry.mkdtemp("run-postgresql-")
    shutil.chown(sock, "postgres", "postgres")
    os.chmod(sock, 0o2775)
    Cluster(registry, rootdir, 11381)  # the session's teardown stops it if we do not
    env = dict(os.environ, SOCK=sock, ROOTDIR=rootdir, CONF=conf, KTADMIN=binary("ktadmin"),
               PARCEL_PSQL=os.path.join(parcel[1], "PG_DB", "opt", "postgres", "9.3", "bin",
                                        "psql"))
    proc = run(["unshare", "--mount", "--net", "--propagation", "private",
                "sh", "-c", NS_SCRIPT], env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    assert ".s.PGSQL.11381" in out["sockets"].split()
    assert out["sudo"] == "keytrustee"
    assert out["su"] == "42"
    assert int(out["dump"]) > 0
    assert out["parcel"] == "43"
    with open(os.path.join(rootdir, "postgresql.conf")) as f:
        assert "unix_socket_directories = '%s, /var/run/postgresql'" % rootdir in f.read()
    assert not os.path.exists(os.path.join(rootdir, "postmaster.pid"))
    assert not os.path.exists(os.path.join(sock, ".s.PGSQL.11381"))


def test_second_socket_dir_is_remade_at_each_start(registry, template):
    """/run is a tmpfs: the second socket's dir may be gone at the next
    start; ktadmin db --start reads it from postgresql.conf and makes it
    again as postgresql-common would (2775 postgres:postgres).  A root dir
    with a space in its name is not mistaken for it."""
    conf = copy_confdir(registry, template.confdir, "sockconf")
    rootdir = os.path.join(registry.mkdtemp("sockpg-"), "pg data")
    sock = os.path.join(registry.mkdtemp("sockdir-"), "run-postgresql")
    cl = Cluster(registry, rootdir, free_port())
    proc = ktadmin("db", "--bootstrap", "--confdir", conf, "--pg-rootdir", rootdir,
                   "--port", cl.port, "--socket-dir", sock)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pg = pwd.getpwnam("postgres")

    def check():
        st = os.stat(sock)
        assert (st.st_uid, st.st_gid, mode(sock)) == (pg.pw_uid, pg.pw_gid, 0o2775)
        assert os.path.exists(os.path.join(sock, ".s.PGSQL.%d" % cl.port))
        out = run(["runuser", "-u", "keytrustee", "--", tool("psql"), "-X", "-h", sock,
                   "-p", str(cl.port), "-d", "keytrustee", "-Atc", "select 7"],
                  check=True, cwd="/").stdout
        assert out.strip() == "7"

    check()
    assert ktadmin("db", "--stop", "--pg-rootdir", rootdir).returncode == 0
    shutil.rmtree(sock)
    proc = ktadmin("db", "--start", "--pg-rootdir", rootdir, "--background")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check()
    assert cl.psql("select 1") == "1"  # and still in the root dir
    cl.stop()


def test_unwritable_second_socket_dir_is_a_warning(registry, template):
    conf = copy_confdir(registry, template.confdir, "sockconf")
    rootdir = os.path.join(registry.mkdtemp("sockpg-"), "pgdata")
    sock = registry.mkdtemp("rootonly-")  # 0755 root: not the account's
    cl = Cluster(registry, rootdir, free_port())
    proc = ktadmin("db", "--bootstrap", "--confdir", conf, "--pg-rootdir", rootdir,
                   "--port", cl.port, "--socket-dir", sock)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("warning: the keytrustee account cannot write to %s: psql and pg_dump "
            "without -h will not find this PostgreSQL" % sock) in proc.stderr
    assert "detail: PostgreSQL starts with its socket in %s only" % rootdir in proc.stderr
    assert "hint: run kt-account.sh as root" in proc.stderr
    assert cl.psql("select 1") == "1"
    assert os.listdir(sock) == []
    # The same at each start, in the background and in the foreground.
    assert ktadmin("db", "--stop", "--pg-rootdir", rootdir).returncode == 0
    proc = ktadmin("db", "--start", "--pg-rootdir", rootdir, "--background")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning: the keytrustee account cannot write to %s" % sock in proc.stderr
    assert cl.psql("select 1") == "1"
    assert ktadmin("db", "--stop", "--pg-rootdir", rootdir).returncode == 0
    fg = subprocess.Popen([binary("ktadmin"), "db", "--start", "--pg-rootdir", rootdir],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: cl.psql("select 1", check=False).returncode == 0,
                 what="postgres in the foreground answers")
    finally:
        fg.terminate()
        _, err = fg.communicate(timeout=60)
    assert "warning: the keytrustee account cannot write to %s" % sock in err
    cl.stop()


def test_private_clusters_keep_their_one_socket(session_db):
    """Tests' clusters (free ports) stay out of /var/run/postgresql."""
    root = session_db.cluster.rootdir
    with open(os.path.join(root, "postgresql.conf")) as f:
        lines = [l for l in f if l.startswith("unix_socket_directories")]
    assert lines == ["unix_socket_directories = '%s'\n" % root]
    assert not os.path.exists("/var/run/postgresql/.s.PGSQL.%d" % session_db.cluster.port)


@pytest.mark.parametrize("args,message", [
    (["--bootstrap", "--socket-dir", "relative/dir"],
     "error: --socket-dir: \"relative/dir\" is not an absolute path"),
    (["--bootstrap", "--socket-dir", "/tmp/a,b"],
     "error: --socket-dir: \"/tmp/a,b\" is not an absolute path"),
    (["--bootstrap", "--socket-dir", "/" + "x" * 120],
     "is too long for a unix socket"),
    (["--status", "--socket-dir", "/tmp"], "error: --socket-dir goes with --bootstrap"),
])
def test_socket_dir_bad_input(registry, args, message):
    rootdir = os.path.join(registry.mkdtemp("badsock-"), "pgdata")
    proc = ktadmin("db", "--pg-rootdir", rootdir, *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not os.path.exists(rootdir)


# --------------------------------------------------------------------------
# the parcel's PostgreSQL and its account


@pytest.fixture(scope="module")
def parcel(registry):
    repo = registry.mkdtemp("acct-repo-")
    path = build_parcel(PARCEL_VERSION, repo)
    unpacked = registry.mkdtemp("acct-parcel-")
    run(["tar", "-xzf", path, "-C", unpacked], check=True, timeout=120)
    return path, os.path.join(unpacked, PARCEL_TOP)


def test_parcel_psql_runs_at_the_guides_path(parcel, session_db):
    top = parcel[1]
    psql = os.path.join(top, "PG_DB", "opt", "postgres", "9.3", "bin", "psql")
    assert os.path.islink(os.path.join(top, "PG_DB", "opt", "postgres", "9.3"))
    proc = run([psql, "--version"], check=True)
    assert proc.stdout.startswith("psql (PostgreSQL) 15.")
    # Its libpq is the parcel's own.
    ldd = run([tool("ldd"), psql], check=True).stdout
    libpq = [l for l in ldd.splitlines() if "libpq.so.5" in l]
    assert len(libpq) == 1 and ("=> " + top) in libpq[0], ldd
    # It talks to a real cluster, as the account (peer authentication).
    cl = session_db.cluster
    proc = run(["runuser", "-u", "keytrustee", "--", psql, "-X", "-h", cl.rootdir,
                "-p", str(cl.port), "-d", "keytrustee", "-Atc", "select 6 * 7"],
               check=True, cwd="/")
    assert proc.stdout.strip() == "42"
    pg_dump = os.path.join(top, "PG_DB", "opt", "postgres", "9.3", "bin", "pg_dump")
    proc = run(["runuser", "-u", "keytrustee", "--", pg_dump, "-h", cl.rootdir,
                "-p", str(cl.port), "--schema-only", "keytrustee"], check=True, cwd="/")
    assert "CREATE TABLE" in proc.stdout
    # What it takes from the host is written down, package by package.
    with open(os.path.join(top, "PG_DB", "opt", "postgres", "15", "HOST-LIBRARIES")) as f:
        libs = [l.split() for l in f if not l.startswith("#")]
    assert libs and all(len(l) == 2 and l[1] != "unknown" for l in libs)
    assert not any("libpq" in l[0] for l in libs)


def test_ktadmin_from_the_parcel_runs_the_parcels_postgresql(registry, template, parcel):
    top = parcel[1]
    pgbin = os.path.join(top, "PG_DB", "opt", "postgres", "15", "bin")
    # Relocated: its share/ and lib/ are the parcel's, not the host's.
    sharedir = run([os.path.join(pgbin, "pg_config"), "--sharedir"], check=True).stdout.strip()
    assert os.path.realpath(sharedir) == os.path.join(
        os.path.realpath(top), "PG_DB", "opt", "postgres", "15", "share", "postgresql", "15")
    conf = copy_confdir(registry, template.confdir, "parcelconf")
    rootdir = os.path.join(registry.mkdtemp("parcelpg-"), "pgdata")
    cl = Cluster(registry, rootdir, free_port())
    env = {k: v for k, v in os.environ.items() if k != "PG_BINDIR"}
    proc = run([os.path.join(top, "bin", "ktadmin"), "db", "--bootstrap", "--confdir", conf,
                "--pg-rootdir", rootdir, "--port", str(cl.port)], env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(os.path.join(rootdir, "postmaster.pid")) as f:
        pid = int(f.readline())
    assert os.path.realpath("/proc/%d/exe" % pid).startswith(os.path.realpath(top) + "/")
    assert cl.psql("select 1") == "1"
    cl.stop()


def test_parcel_activation_makes_the_account_it_declares(registry, parcel, throwaway):
    name, home = throwaway
    os.makedirs(os.path.dirname(home))
    a = Agent(registry.mkdtemp("acct-agent-"))
    assert a("parcel", "install", parcel[0]).returncode == 0
    meta_path = os.path.join(a.parcels, PARCEL_TOP, "meta", "parcel.json")
    with open(meta_path) as f:
        meta = json.load(f)
    assert meta["users"]["keytrustee"]["shell"] == "/bin/bash"
    # The same parcel, declaring a throwaway account (keytrustee exists).
    meta["users"] = {name: dict(meta["users"]["keytrustee"], home=home)}
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    proc = a("parcel", "activate", PARCEL_TOP)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Created the account %s (home %s)" % (name, home) in proc.stdout
    pw = pwd.getpwnam(name)
    assert pw.pw_shell == "/bin/bash" and pw.pw_dir == home
    assert shadow_locked(name)
    assert os.stat(home).st_uid == pw.pw_uid and mode(home) == 0o700
    # Once it exists, activation leaves it alone.
    proc = a("parcel", "activate", PARCEL_TOP)
    assert proc.returncode == 0 and "Created the account" not in proc.stdout


def test_parcel_activation_without_home_is_refused(registry, parcel):
    a = Agent(registry.mkdtemp("acct-agent-"))
    assert a("parcel", "install", parcel[0]).returncode == 0
    meta_path = os.path.join(a.parcels, PARCEL_TOP, "meta", "parcel.json")
    with open(meta_path) as f:
        meta = json.load(f)
    name = "ktt" + uuid.uuid4().hex[:8]
    meta["users"] = {name: {"longname": "x", "shell": "/bin/bash"}}
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    proc = a("parcel", "activate", PARCEL_TOP)
    assert proc.returncode == 1
    assert "users.%s.home (a string) is required" % name in proc.stderr
    assert not os.path.lexists(os.path.join(a.parcels, "KEYTRUSTEE_SERVER"))
    with pytest.raises(KeyError):
        pwd.getpwnam(name)
