"""keytrustee-client against a real keytrustee-server.

Uses conftest.py's session PostgreSQL and servers.  The client's own key is
RSA 3072; one registered client is shared by the module (key generation is
the slow part) and tests that stop a server use their own server and client.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import ssl
import stat
import time
import urllib.error
import urllib.request
import uuid as uuidmod

import pytest

from conftest import binary, copy_confdir, mode, run

CLIENT_FPR_RE = r"3072R/[0-9A-F]{40}"
REG_RE = re.compile(r"^Registered (%s) with (https://\S+): state (active|pending)$"
                    % CLIENT_FPR_RE)
UUID_RE = re.compile(r"^[0-9a-f-]{36}$")
BINARY = b"\x00\x01\x02 binary \x00\xff\xfe\n\x00" + bytes(range(256)) * 40


def client(confdir, *args, input=None, timeout=120):
    """Run keytrustee-client with bytes in and out."""
    import subprocess
    argv = [binary("keytrustee-client")]
    if confdir is not None:
        argv += ["--confdir", confdir]
    argv += [str(a) for a in args]
    return subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout,
                          stdin=None if input is not None else subprocess.DEVNULL)


def ok(proc):
    assert proc.returncode == 0, (proc.stdout, proc.stderr.decode(errors="replace"))
    return proc


def err(proc):
    return proc.stderr.decode(errors="replace")


def orgtool(server_confdir, *args):
    return run([binary("keytrustee-orgtool"), "--confdir", server_confdir]
               + [str(a) for a in args])


def add_org(server_confdir, name, auth=""):
    proc = orgtool(server_confdir, "add", "-n", name, "-c", "a@example.com")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = orgtool(server_confdir, "set-auth", "-n", name, "-s", auth)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def new_client_dir(registry, name="client"):
    parent = registry.mkdtemp(name + "-")
    return registry.gnupg_home(os.path.join(parent, "kt"))


def register(confdir, url, org, *extra):
    return client(confdir, "register", "--server", url, "--org", org,
                  "--hostname", "client.example.com", *extra)


def read_client_conf(confdir):
    with open(os.path.join(confdir, "keytrustee.conf")) as f:
        return json.load(f)


def signed(url, confdir, method, target, body=b""):
    """A request signed as the client (KT1-HMAC-SHA256), from Python."""
    conf = read_client_conf(confdir)
    fpr = conf["LOCAL_FINGERPRINT"].split("/")[-1]
    ts = str(int(time.time()))
    msg = "\n".join([method, target, ts, hashlib.sha256(body).hexdigest()])
    sig = hmac.new(bytes.fromhex(conf["SECRET"]), msg.encode(), hashlib.sha256).hexdigest()
    req = urllib.request.Request(url + target, method=method,
                                 data=body if body else None)
    req.add_header("Authorization", "KT1-HMAC-SHA256 fp=%s,ts=%s,sig=%s" % (fpr, ts, sig))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        return r.status, json.loads(r.read())


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def org(server):
    add_org(server.confdir, "client-org")
    return "client-org"


class Reg:
    def __init__(self, confdir, proc, url):
        self.confdir = confdir
        self.proc = proc
        self.url = url


@pytest.fixture(scope="module")
def reg(registry, server, org):
    """One client registered (--skip-ssl-check) with the module's server."""
    confdir = new_client_dir(registry)
    proc = register(confdir, server.url, org, "--skip-ssl-check")
    yield Reg(confdir, proc, server.url)
    registry.kill_gnupg(confdir)


# --------------------------------------------------------------------------
# usage: no server needed


def test_help():
    proc = ok(client(None, "--help"))
    for verb in ("register", "put", "get", "list", "delete"):
        assert verb.encode() in proc.stdout
    for verb in ("register", "put", "get", "list", "delete"):
        proc = ok(client(None, verb, "--help"))
        assert proc.stdout.startswith(b"usage: keytrustee-client")
        proc = ok(client(None, verb, "-h"))


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["--bogus", "list"],
    ["list", "--bogus"],
    ["register", "--org", "x"],
    ["register", "--server", "https://127.0.0.1:1"],
    ["register", "--server", "https://h", "--org", "o", "--skip-ssl-check",
     "--cacert", "/etc/hostname"],
    ["register", "--server"],
    ["put"],
    ["put", "--name"],
    ["get"],
    ["get", "a", "b"],
    ["get", "abc", "--name", "n"],
    ["delete"],
])
def test_usage_errors_exit_2(tmp_path, args):
    proc = client(str(tmp_path / "kt"), *args)
    assert proc.returncode == 2, (args, proc.stdout, err(proc))
    assert err(proc).startswith("error: ")
    assert proc.stdout == b""


def test_not_registered(tmp_path):
    confdir = str(tmp_path / "kt")
    for args in (["list"], ["get", "0b9f1e2c-0000-4000-8000-000000000000"],
                 ["delete", "0b9f1e2c-0000-4000-8000-000000000000"]):
        proc = client(confdir, *args)
        assert proc.returncode == 1, (args, err(proc))
        assert "error: this client is not registered" in err(proc)
        assert "hint: run 'keytrustee-client register --server URL --org ORG'" in err(proc)
    proc = client(confdir, "put", "--name", "n", input=b"x")
    assert proc.returncode == 1 and "not registered" in err(proc)
    # Nothing was created by the failed commands.
    assert not os.path.exists(confdir)


def test_default_confdir_is_home(tmp_path):
    import subprocess
    env = dict(os.environ, HOME=str(tmp_path))
    proc = subprocess.run([binary("keytrustee-client"), "list"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.returncode == 1
    assert str(tmp_path / ".keytrustee" / "keytrustee.conf") in err(proc)


# --------------------------------------------------------------------------
# registration


def test_register_skip_ssl_check(reg, server):
    assert reg.proc.returncode == 0, err(reg.proc)
    m = REG_RE.match(reg.proc.stdout.decode().strip())
    assert m, reg.proc.stdout
    assert m.group(2) == server.url and m.group(3) == "active"
    assert mode(reg.confdir) == 0o700
    path = os.path.join(reg.confdir, "keytrustee.conf")
    assert mode(path) == 0o600
    conf = read_client_conf(reg.confdir)
    assert conf["LOCAL_FINGERPRINT"] == m.group(1)
    assert conf["SERVER"] == server.url
    assert conf["ORG"] == "client-org"
    assert conf["STATE"] == "active"
    assert conf["SSL_INSECURE"] is True
    assert conf["CACERT"] is None if "CACERT" in conf else True
    assert re.fullmatch(r"[0-9a-f]{64}", conf["SECRET"])
    # The key is the client's, in its own GnuPG home, with the guide's uid.
    proc = run(["gpg", "--homedir", reg.confdir, "--batch", "--with-colons",
                "--list-secret-keys"], check=True)
    assert "keytrustee (client) <keytrustee@client.example.com>" in proc.stdout
    assert ":3072:1:" in proc.stdout


def test_register_needs_trust_then_cacert(registry, server, org):
    confdir = new_client_dir(registry, "cacert")
    localhost = server.url.replace("127.0.0.1", "localhost")
    # Verification is on by default: a self-signed certificate fails.
    proc = register(confdir, localhost, org)
    assert proc.returncode == 1, err(proc)
    assert "error: " in err(proc) and "--cacert" in err(proc)
    assert not os.path.exists(os.path.join(confdir, "keytrustee.conf"))
    # With the server's own certificate (SAN localhost) it verifies.
    cert = os.path.join(server.confdir, ".ssl", "ssl-cert-keytrustee.pem")
    proc = register(confdir, localhost, org, "--cacert", cert)
    assert proc.returncode == 0, err(proc)
    assert REG_RE.match(proc.stdout.decode().strip())
    conf = read_client_conf(confdir)
    assert conf["CACERT"] == cert and conf["SSL_INSECURE"] is False
    # ... and keeps verifying for later requests.
    ok(client(confdir, "list"))
    registry.kill_gnupg(confdir)


def test_register_unknown_org(reg, server):
    confdir = reg.confdir
    before = read_client_conf(confdir)
    proc = register(confdir, server.url, "no-such-org", "--skip-ssl-check")
    assert proc.returncode == 1
    assert "error: registration: the server answered 404" in err(proc), err(proc)
    # A failed registration leaves the old one in place.
    assert read_client_conf(confdir) == before


def test_pending_and_bad_auth(registry, server):
    add_org(server.confdir, "locked-org", auth="s3cret-auth")
    confdir = new_client_dir(registry, "pending")
    proc = register(confdir, server.url, "locked-org", "--skip-ssl-check",
                    "--auth", "wrong")
    assert proc.returncode == 1
    assert "bad_auth" in err(proc) and "hint: " in err(proc)
    proc = register(confdir, server.url, "locked-org", "--skip-ssl-check")
    assert proc.returncode == 0, err(proc)
    m = REG_RE.match(proc.stdout.decode().strip())
    assert m and m.group(3) == "pending"
    fpr = m.group(1).split("/")[1]
    assert "keytrustee-orgtool enable-client --fingerprint %s" % fpr in err(proc)
    proc = client(confdir, "put", "--name", "n", input=b"x")
    assert proc.returncode == 1
    assert "client_pending" in err(proc)
    assert "hint: " in err(proc) and "enable-client --fingerprint" in err(proc)
    proc = orgtool(server.confdir, "enable-client", "--fingerprint", fpr)
    assert proc.returncode == 0, proc.stderr
    ok(client(confdir, "put", "--name", "n", input=b"x"))
    assert read_client_conf(confdir)["STATE"] == "active"
    registry.kill_gnupg(confdir)


# --------------------------------------------------------------------------
# deposits


def put(confdir, name, data, *extra):
    proc = ok(client(confdir, "put", "--name", name, *extra, input=data))
    u = proc.stdout.decode().strip()
    assert UUID_RE.match(u), proc.stdout
    return u


def test_put_get_binary_byte_for_byte(reg, tmp_path):
    src = tmp_path / "blob"
    src.write_bytes(BINARY)
    proc = ok(client(reg.confdir, "put", "--name", "blob", "--file", str(src),
                     "--description", "test blob"))
    u = proc.stdout.decode().strip()
    assert UUID_RE.match(u)
    proc = ok(client(reg.confdir, "get", u, "--no-cache"))
    assert proc.stdout == BINARY
    assert err(proc) == ""
    out = tmp_path / "out"
    ok(client(reg.confdir, "get", u, "--output", str(out)))
    assert out.read_bytes() == BINARY
    assert mode(str(out)) == 0o600
    # stdin, and an empty deposit
    u2 = put(reg.confdir, "empty", b"")
    assert ok(client(reg.confdir, "get", u2)).stdout == b""


def test_cache_entry_written_0600(reg):
    u = put(reg.confdir, "cached", b"cache me")
    cache = os.path.join(reg.confdir, "cache")
    assert mode(cache) == 0o700
    path = os.path.join(cache, u)
    assert mode(path) == 0o600
    with open(path) as f:
        entry = json.load(f)
    assert entry["uuid"] == u and entry["name"] == "cached"
    ct = base64.b64decode(entry["content"])
    assert b"cache me" not in ct and ct[0] & 0x80


def test_list_and_get_by_name(reg):
    a = put(reg.confdir, "by-name-a", b"first")
    time.sleep(1.1)
    b = put(reg.confdir, "by-name-a", b"second")
    c = put(reg.confdir, "by-name-b", b"other")
    proc = ok(client(reg.confdir, "list"))
    rows = [line.split("\t") for line in proc.stdout.decode().splitlines()]
    byuuid = {r[0]: r for r in rows}
    for u, n in ((a, "by-name-a"), (b, "by-name-a"), (c, "by-name-b")):
        assert byuuid[u][1] == n and byuuid[u][2]
    assert ok(client(reg.confdir, "get", "--name", "by-name-b")).stdout == b"other"
    assert ok(client(reg.confdir, "get", "--name", "by-name-a")).stdout == b"second"
    proc = client(reg.confdir, "get", "--name", "no-such-name")
    assert proc.returncode == 1 and 'no deposit named "no-such-name"' in err(proc)


def test_delete(reg):
    u = put(reg.confdir, "doomed", b"bye")
    cache = os.path.join(reg.confdir, "cache", u)
    assert os.path.exists(cache)
    proc = ok(client(reg.confdir, "delete", u))
    assert u.encode() in proc.stdout
    assert not os.path.exists(cache)
    assert u.encode() not in ok(client(reg.confdir, "list")).stdout
    proc = client(reg.confdir, "get", u)
    assert proc.returncode == 1 and "404" in err(proc), err(proc)
    # A delete signed in the same second as the first is that request
    # again, answered as it was (docs/api.md, "Replayed requests"); one
    # signed later is a new one, and finds nothing.
    time.sleep(1.1)
    proc = client(reg.confdir, "delete", u)
    assert proc.returncode == 1 and "404" in err(proc)
    proc = client(reg.confdir, "delete", "../../etc/passwd")
    assert proc.returncode == 2 and "not a deposit uuid" in err(proc)


def test_server_sees_only_ciphertext(reg):
    secret = b"plaintext-that-must-not-leave-the-client " * 4
    u = put(reg.confdir, "opaque", secret)
    status, doc = signed(reg.url, reg.confdir, "GET", "/v1/deposits/" + u)
    assert status == 200 and doc["uuid"] == u and doc["name"] == "opaque"
    ct = base64.b64decode(doc["content"])
    assert secret[:20] not in ct
    # An OpenPGP message: packet tag bit set; first packet a PKESK (tag 1).
    assert ct[0] & 0x80
    tag = (ct[0] & 0x3f) if ct[0] & 0x40 else (ct[0] >> 2) & 0x0f
    assert tag == 1
    # gpg in the client's home decrypts it to the plaintext.
    import subprocess
    proc = subprocess.run(["gpg", "--homedir", reg.confdir, "--batch", "-q",
                           "--decrypt"], input=ct, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)
    assert proc.stdout == secret


def test_stale_cache_entry_dropped_on_404(reg):
    fake = str(uuidmod.uuid4())
    cache = os.path.join(reg.confdir, "cache", fake)
    with open(os.open(cache, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        json.dump({"uuid": fake, "name": "ghost", "content": ""}, f)
    proc = client(reg.confdir, "get", fake)
    assert proc.returncode == 1 and "404" in err(proc)
    assert not os.path.exists(cache)


def test_conf_file_mode_refused(reg):
    path = os.path.join(reg.confdir, "keytrustee.conf")
    os.chmod(path, 0o644)
    try:
        proc = client(reg.confdir, "list")
        assert proc.returncode == 1
        assert "has mode 0644" in err(proc) and "needs 0600" in err(proc)
        assert "hint: chmod 600" in err(proc)
    finally:
        os.chmod(path, 0o600)
    ok(client(reg.confdir, "list"))


def test_bad_signature_is_401(reg):
    conf = read_client_conf(reg.confdir)
    path = os.path.join(reg.confdir, "keytrustee.conf")
    bad = dict(conf, SECRET="00" * 32)
    with open(path, "w") as f:
        json.dump(bad, f)
    try:
        proc = client(reg.confdir, "list")
        assert proc.returncode == 1
        assert "401" in err(proc) and "hint: " in err(proc)
    finally:
        with open(path, "w") as f:
            json.dump(conf, f)
    assert mode(path) == 0o600


# --------------------------------------------------------------------------
# offline: a private server that the test stops


def test_cache_when_server_down(registry, dbconf, make_server):
    srv = make_server(dbconf, name="cachesrv").start()
    add_org(srv.confdir, "cache-org")
    confdir = new_client_dir(registry, "offline")
    ok(register(confdir, srv.url, "cache-org", "--skip-ssl-check"))
    u = put(confdir, "offline-key", BINARY)
    nocache = put(confdir, "never-cached", b"x")
    os.unlink(os.path.join(confdir, "cache", nocache))
    srv.stop()

    proc = ok(client(confdir, "get", u))
    assert proc.stdout == BINARY
    assert "warning: no server could be reached" in err(proc)
    proc = ok(client(confdir, "get", "--name", "offline-key"))
    assert proc.stdout == BINARY and "local cache" in err(proc)

    proc = client(confdir, "get", u, "--no-cache")
    assert proc.returncode == 1 and proc.stdout == b""
    assert "error: GET %s/v1/deposits/%s" % (srv.url, u) in err(proc), err(proc)
    assert "hint: check that the server is up" in err(proc)

    proc = client(confdir, "get", nocache)
    assert proc.returncode == 1 and "no cached copy" in err(proc)

    # A cache file open to others is refused, with its mode.
    path = os.path.join(confdir, "cache", u)
    os.chmod(path, 0o640)
    proc = client(confdir, "get", u)
    assert proc.returncode == 1 and "has mode 0640" in err(proc)
    os.chmod(path, 0o600)

    # Back online: the server answers again and the cache is refreshed.
    srv.start()
    proc = ok(client(confdir, "get", u, "--no-cache"))
    assert proc.stdout == BINARY and err(proc) == ""
    registry.kill_gnupg(confdir)


def test_passive_server_used_for_reads(registry, dbconf, make_server):
    """PASSIVE_SERVER answers reads when SERVER is unreachable.

    Both URLs point at servers over the same database here (no replication
    needed for the read path)."""
    srv = make_server(dbconf, name="activesrv").start()
    add_org(srv.confdir, "pas-org")
    confdir = new_client_dir(registry, "passive")
    ok(register(confdir, srv.url, "pas-org", "--skip-ssl-check",
                "--passive-server", srv.url))
    u = put(confdir, "p", b"via passive")
    conf = read_client_conf(confdir)
    dead = "https://127.0.0.1:1"
    conf["SERVER"], conf["PASSIVE_SERVER"] = dead, srv.url
    path = os.path.join(confdir, "keytrustee.conf")
    with open(path, "w") as f:
        json.dump(conf, f)
    proc = ok(client(confdir, "get", u, "--no-cache"))
    assert proc.stdout == b"via passive"
    assert "passive server" in err(proc)
    # Writes never go to the passive server.
    proc = client(confdir, "put", "--name", "w", input=b"x")
    assert proc.returncode == 1 and dead in err(proc)
    registry.kill_gnupg(confdir)
