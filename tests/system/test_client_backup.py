"""keytrustee-client backup / restore against a real keytrustee-server.

One client is registered per module (its RSA 3072 key is the slow part),
deposits two blobs, is backed up (GPG-encrypted to a throwaway recipient
made in its own GnuPG home, and as a cleartext tar), deleted, and restored
into the same path; the deposits must come back byte for byte from the
server.  Hostile archives (../evil, absolute paths, links out) are refused
before anything is written.
"""

import os
import shutil
import stat
import subprocess
import tarfile

import pytest

from conftest import binary, gpg_fingerprints, make_tar, mode, run

from test_client import (BINARY, UUID_RE, add_org, client, err, new_client_dir,
                         ok, read_client_conf, register)

RECIPIENT = "b@example.com"


def kt(confdir, *args, gnupghome=None, input=None, timeout=120):
    """keytrustee-client with GNUPGHOME set (the backup recipient's home)."""
    argv = [binary("keytrustee-client")]
    if confdir is not None:
        argv += ["--confdir", confdir]
    argv += [str(a) for a in args]
    env = dict(os.environ)
    if gnupghome is not None:
        env["GNUPGHOME"] = gnupghome
    return subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, env=env,
                          stdin=None if input is not None else subprocess.DEVNULL)


@pytest.fixture(scope="module")
def org(server):
    add_org(server.confdir, "backup-org")
    return "backup-org"


@pytest.fixture(scope="module")
def gpghome(registry):
    """A throwaway GnuPG home holding the backup recipient's key pair."""
    home = registry.gnupg_home(os.path.join(registry.mkdtemp("bkgpg-"), "g"))
    os.mkdir(home, 0o700)
    run(["gpg", "--homedir", home, "--batch", "--passphrase", "",
         "--quick-gen-key", "Backup <%s>" % RECIPIENT, "rsa2048", "default",
         "never"], check=True, timeout=120)
    # quick-gen-key with an algorithm makes a sign/certify primary only: add
    # the encryption subkey the backup is encrypted to.
    fpr = gpg_fingerprints(home)[0]
    run(["gpg", "--homedir", home, "--batch", "--passphrase", "",
         "--quick-add-key", fpr, "rsa2048", "encr", "never"], check=True,
        timeout=120)
    yield home
    registry.kill_gnupg(home)


class Client:
    def __init__(self, confdir, deposits):
        self.confdir = confdir
        self.deposits = deposits


@pytest.fixture(scope="module")
def kclient(registry, server, org):
    confdir = new_client_dir(registry, "bkclient")
    ok(register(confdir, server.url, org, "--skip-ssl-check"))
    deposits = {}
    for name, data in (("first", BINARY), ("second", b"second secret\n")):
        u = ok(client(confdir, "put", "--name", name, input=data)).stdout
        u = u.decode().strip()
        assert UUID_RE.match(u)
        deposits[u] = data
    yield Client(confdir, deposits)
    registry.kill_gnupg(confdir)


def outdir(registry):
    return registry.mkdtemp("bkout-")


# --------------------------------------------------------------------------
# usage


def test_help():
    proc = ok(client(None, "--help"))
    assert b"backup" in proc.stdout and b"restore" in proc.stdout
    for verb in ("backup", "restore"):
        for h in ("--help", "-h"):
            proc = ok(client(None, verb, h))
            assert proc.stdout.startswith(b"usage: keytrustee-client")


@pytest.mark.parametrize("args", [
    ["backup"],
    ["backup", "--bogus"],
    ["backup", "--output"],
    ["backup", "--output", "/tmp/x"],
    ["backup", "--output", "/tmp/x", "--cleartext", "--gpg-recipient", "r"],
    ["backup", "--cleartext"],
    ["backup", "--output", "/tmp/x", "--cleartext", "extra"],
    ["restore"],
    ["restore", "--bogus"],
    ["restore", "--input"],
    ["restore", "--input", "a", "b"],
])
def test_usage_errors_exit_2(tmp_path, args):
    proc = client(str(tmp_path / "kt"), *args)
    assert proc.returncode == 2, (args, proc.stdout, err(proc))
    assert err(proc).startswith("error: ")
    assert "hint: " in err(proc)
    assert proc.stdout == b""


def test_backup_unregistered(tmp_path):
    out = tmp_path / "b.tar"
    proc = client(str(tmp_path / "kt"), "backup", "--output", str(out),
                  "--cleartext")
    assert proc.returncode == 1, err(proc)
    assert err(proc).startswith("error: ")
    assert not out.exists()


# --------------------------------------------------------------------------
# the round trip


def check_deposits(confdir, deposits):
    for u, data in deposits.items():
        proc = ok(client(confdir, "get", u, "--no-cache"))
        assert proc.stdout == data
    proc = ok(client(confdir, "list"))
    listed = {line.split("\t")[0] for line in proc.stdout.decode().splitlines()}
    assert set(deposits) <= listed


def test_encrypted_backup_delete_restore(registry, kclient, gpghome):
    confdir = kclient.confdir
    before = read_client_conf(confdir)
    fprs = gpg_fingerprints(confdir)
    out = os.path.join(outdir(registry), "client.tar.gpg")
    proc = ok(kt(confdir, "backup", "--output", out, "--gpg-recipient",
                 RECIPIENT, gnupghome=gpghome))
    assert mode(out) == 0o600
    assert [f for f in os.listdir(os.path.dirname(out))] == ["client.tar.gpg"]
    with open(out, "rb") as f:
        head = f.read(600)
    assert b"ustar" not in head and b"SECRET" not in head
    # The config dir goes away entirely (agent first).
    registry.kill_gnupg(confdir)
    shutil.rmtree(confdir)
    assert client(confdir, "list").returncode == 1
    proc = ok(kt(confdir, "restore", "--input", out, gnupghome=gpghome))
    assert b"Restored" in proc.stdout
    assert mode(confdir) == 0o700
    assert mode(os.path.join(confdir, "keytrustee.conf")) == 0o600
    assert read_client_conf(confdir) == before
    assert gpg_fingerprints(confdir) == fprs
    assert not [e for e in os.listdir(os.path.dirname(confdir))
                if e.startswith(".kt-restore")]
    check_deposits(confdir, kclient.deposits)


def test_restore_encrypted_without_the_key(registry, kclient, gpghome):
    out = os.path.join(outdir(registry), "client.tar.gpg")
    ok(kt(kclient.confdir, "backup", "--output", out, "--gpg-recipient",
          RECIPIENT, gnupghome=gpghome))
    empty = registry.gnupg_home(os.path.join(registry.mkdtemp("bknokey-"), "g"))
    os.mkdir(empty, 0o700)
    work = registry.mkdtemp("bkwork-")
    target = os.path.join(work, "kt")
    proc = kt(target, "restore", "--input", out, gnupghome=empty)
    assert proc.returncode == 1
    assert err(proc).startswith("error: gpg failed") and "hint: " in err(proc)
    assert os.listdir(work) == []
    registry.kill_gnupg(empty)


def test_cleartext_backup_is_tar_with_conf_0600(registry, kclient):
    out = os.path.join(outdir(registry), "client.tar")
    ok(client(kclient.confdir, "backup", "--output", out, "--cleartext"))
    assert mode(out) == 0o600
    top = os.path.basename(kclient.confdir)
    with tarfile.open(out) as t:
        members = {m.name: m for m in t.getmembers()}
    conf = members[top + "/keytrustee.conf"]
    assert conf.isfile() and conf.mode & 0o7777 == 0o600
    assert members[top].isdir() and members[top].mode & 0o7777 == 0o700
    assert all(n == top or n.startswith(top + "/") for n in members)
    assert not [n for n in members if os.path.basename(n).startswith("S.")]
    assert any(n.startswith(top + "/private-keys-v1.d/") for n in members)


def test_restore_refuses_existing_without_force(registry, kclient):
    out = os.path.join(outdir(registry), "client.tar")
    ok(client(kclient.confdir, "backup", "--output", out, "--cleartext"))
    before = read_client_conf(kclient.confdir)
    proc = client(kclient.confdir, "restore", "--input", out)
    assert proc.returncode == 1
    assert "error: " in err(proc) and "--force" in err(proc)
    assert read_client_conf(kclient.confdir) == before
    # --force replaces it (with the same content; restore stops the old
    # dir's gpg-agent itself) and it still works.
    ok(client(kclient.confdir, "restore", "--input", out, "--force"))
    assert read_client_conf(kclient.confdir) == before
    check_deposits(kclient.confdir, kclient.deposits)


def test_restore_elsewhere_from_cleartext(registry, kclient):
    out = os.path.join(outdir(registry), "client.tar")
    ok(client(kclient.confdir, "backup", "--output", out, "--cleartext"))
    other = registry.gnupg_home(os.path.join(registry.mkdtemp("bkother-"), "x"))
    ok(client(other, "restore", "--input", out))
    assert read_client_conf(other) == read_client_conf(kclient.confdir)
    assert mode(other) == 0o700
    ok(client(other, "list"))
    registry.kill_gnupg(other)


def test_wrong_recipient_no_output(registry, kclient, gpghome):
    d = outdir(registry)
    out = os.path.join(d, "client.tar.gpg")
    proc = kt(kclient.confdir, "backup", "--output", out, "--gpg-recipient",
              "nobody@nowhere.invalid", gnupghome=gpghome)
    assert proc.returncode == 1
    assert err(proc).startswith("error: ") and "hint: " in err(proc)
    assert os.listdir(d) == []


# --------------------------------------------------------------------------
# hostile archives


@pytest.mark.parametrize("evil", [
    [("kt", "dir", None), ("kt/keytrustee.conf", "file", b"{}"),
     ("../evil", "file", b"pwned")],
    [("kt", "dir", None), ("kt/keytrustee.conf", "file", b"{}"),
     ("kt/../../evil", "file", b"pwned")],
    [("kt", "dir", None), ("kt/keytrustee.conf", "file", b"{}"),
     ("/tmp/kt-backup-test-evil", "file", b"pwned")],
    [("kt", "dir", None), ("kt/keytrustee.conf", "file", b"{}"),
     ("other/evil", "file", b"pwned")],
    [("kt", "dir", None), ("kt/keytrustee.conf", "file", b"{}"),
     ("kt/link", "symlink", "../../evil")],
    [("kt", "dir", None), ("kt/keytrustee.conf", "file", b"{}"),
     ("kt/link", "symlink", "/etc")],
    [("kt", "dir", None), ("kt/keytrustee.conf", "file", b"{}"),
     ("kt/link", "symlink", "../sibling")],
    [("kt", "dir", None), ("kt/keytrustee.conf", "file", b"{}"),
     ("kt/hard", "hardlink", "/etc/passwd")],
    [("kt", "dir", None), ("kt/" + "a" * 150 + "/../../evil", "file", b"x")],
], ids=["dotdot", "inner-dotdot", "absolute", "two-tops", "symlink-up",
        "symlink-abs", "symlink-parent", "hardlink-abs", "longname-dotdot"])
def test_restore_refuses_escaping_archive(registry, evil):
    base = registry.mkdtemp("bkevil-")
    work = os.path.join(base, "work")
    os.mkdir(work)
    tarpath = os.path.join(base, "evil.tar")
    make_tar(tarpath, evil)
    target = os.path.join(work, "kt")
    proc = client(target, "restore", "--input", tarpath)
    assert proc.returncode == 1, err(proc)
    assert err(proc).startswith("error: "), err(proc)
    assert sorted(os.listdir(base)) == ["evil.tar", "work"]
    assert os.listdir(work) == []
    assert not os.path.exists("/tmp/kt-backup-test-evil")


def test_restore_not_an_archive(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"hello, not a tar\n")
    proc = client(str(tmp_path / "kt"), "restore", "--input", str(bad))
    assert proc.returncode == 1 and err(proc).startswith("error: ")
    assert not (tmp_path / "kt").exists()
