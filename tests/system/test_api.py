"""System tests of the server's /v1 JSON API: registration, request
signatures (KT1-HMAC-SHA256, DESIGN.md section 3), deposits, isolation
between clients, integrity of the rows at rest, and a catalogue of bad
input that must be refused without changing what is stored.

Uses conftest.py's session PostgreSQL and a module server; clients are
plain GnuPG homes driven with gpg, requests are signed here with hashlib and
hmac and sent with http.client.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import secrets
import string
import subprocess
import time

import pytest

from conftest import binary, live_processes_mentioning, no_verify_context, run, tool

FPR_HEX = set("0123456789ABCDEF")
MISSING = object()


# --------------------------------------------------------------------------
# helpers


def sql_quote(s):
    return "'" + s.replace("'", "''") + "'"


def new_org(cluster, auth_secret):
    """An org made with SQL (the org tool has its own tests)."""
    name = "org" + secrets.token_hex(6)
    uid = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(43))
    cluster.psql("INSERT INTO orgs (name, uuid, auth_secret) VALUES (%s, %s, %s)"
                 % (sql_quote(name), sql_quote(uid), sql_quote(auth_secret)))
    return name


def http_request(port, method, path, body=b"", headers=(), source=None, timeout=30):
    """One request on a fresh connection; headers is a list of pairs (so that
    a header may repeat).  Returns (status, headers dict, body bytes)."""
    conn = http.client.HTTPSConnection(
        "127.0.0.1", port, context=no_verify_context(), timeout=timeout,
        source_address=(source, 0) if source else None)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        if body or method in ("POST", "PUT"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body if body else None)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def as_json(data):
    return json.loads(data.decode())


def sign(secret, method, uri, ts, body):
    msg = "%s\n%s\n%s\n%s" % (method, uri, ts, hashlib.sha256(body).hexdigest())
    return hmac.new(secret, msg.encode(), hashlib.sha256).hexdigest()


class Client:
    """A client: its own GnuPG home and key (RSA 2048 unless algo says
    otherwise) with an encryption subkey (enc_algo, expiring at enc_expire),
    and after registration its fingerprint and signing secret.  gpg_args go
    to both key generations (e.g. --faked-system-time)."""

    def __init__(self, registry, name, encrypt_subkey=True, algo="rsa2048", enc_algo=None,
                 enc_expire="never", gpg_args=()):
        self.home = registry.gnupg_home(os.path.join(registry.mkdtemp("gpg-" + name + "-"), "g"))
        os.mkdir(self.home, 0o700)
        gpg = [tool("gpg"), "--homedir", self.home, "--batch", "--passphrase", ""] + list(gpg_args)
        run(gpg + ["--quick-gen-key", "%s <%s@example.com>" % (name, name),
                   algo, "sign,cert", "never"], check=True, timeout=300)
        self.keyfpr = self.primary_fpr()
        if encrypt_subkey:
            run(gpg + ["--quick-add-key", self.keyfpr, enc_algo or algo, "encr", enc_expire],
                check=True, timeout=300)
        self.pubkey = run([tool("gpg"), "--homedir", self.home, "--batch", "--armor",
                           "--export", self.keyfpr], check=True).stdout
        self.fpr = None
        self.secret = None
        self.state = None

    def primary_fpr(self):
        out = run([tool("gpg"), "--homedir", self.home, "--batch", "--with-colons",
                   "--list-keys"], check=True).stdout
        for line in out.splitlines():
            f = line.split(":")
            if f[0] == "fpr":
                return f[9]
        raise AssertionError("no key in " + self.home)

    def decrypt(self, armored):
        proc = subprocess.run([tool("gpg"), "--homedir", self.home, "--batch", "--quiet",
                               "--pinentry-mode", "loopback", "--passphrase", "", "-d"],
                              input=armored.encode(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=60)
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout.decode()

    def register(self, port, org, auth=MISSING, source=None, hostname="host.example.com"):
        doc = {"org": org, "pubkey": self.pubkey, "hostname": hostname}
        if auth is not MISSING:
            doc["auth"] = auth
        status, _, data = http_request(
            port, "POST", "/v1/register", json.dumps(doc).encode(),
            [("Content-Type", "application/json")], source=source)
        ans = as_json(data)
        if status in (200, 201):
            hexsecret = self.decrypt(ans["secret"])
            assert len(hexsecret) == 64 and hexsecret == hexsecret.lower()
            self.fpr = ans["fingerprint"]
            self.secret = bytes.fromhex(hexsecret)
            self.state = ans["state"]
        return status, ans

    def auth_header(self, method, uri, body, ts=None, secret=None, fpr=None):
        ts = str(int(time.time())) if ts is None else str(ts)
        sig = sign(secret or self.secret, method, uri, ts, body)
        return "KT1-HMAC-SHA256 fp=%s,ts=%s,sig=%s" % (fpr or self.fpr, ts, sig)

    def call(self, port, method, uri, doc=None, body=None, ctype="application/json",
             ts=None, extra=(), auth=True):
        if body is None:
            body = json.dumps(doc).encode() if doc is not None else b""
        headers = []
        if auth:
            headers.append(("Authorization", self.auth_header(method, uri, body, ts)))
        if ctype is not None and (body or method == "POST"):
            headers.append(("Content-Type", ctype))
        headers.extend(extra)
        status, hdrs, data = http_request(port, method, uri, body, headers)
        return status, hdrs, data

    def put(self, port, name, content, description=None):
        doc = {"name": name, "content": base64.b64encode(content).decode()}
        if description is not None:
            doc["description"] = description
        status, _, data = self.call(port, "POST", "/v1/deposits", doc)
        return status, as_json(data)

    def get(self, port, uuid):
        status, _, data = self.call(port, "GET", "/v1/deposits/" + uuid)
        return status, as_json(data)

    def list(self, port, query=""):
        status, _, data = self.call(port, "GET", "/v1/deposits" + query)
        return status, as_json(data)

    def delete(self, port, uuid):
        status, _, data = self.call(port, "DELETE", "/v1/deposits/" + uuid)
        return status, as_json(data)


def registered(env, registry, org, name):
    """A new client registered in org (active when org has no secret)."""
    c = Client(registry, name)
    status, _ = c.register(env.port, org)
    assert status == 201
    return c


class Env:
    def __init__(self, server, cluster, registry):
        self.server = server
        self.port = server.port
        self.cluster = cluster
        self.registry = registry

    def psql(self, sql):
        return self.cluster.psql(sql)

    def deposits_snapshot(self):
        """Every deposit row, bytes included, to prove nothing changed."""
        return self.psql("SELECT coalesce(string_agg(uuid::text || '|' || owner || '|' || "
                         "name || '|' || coalesce(description, '<null>') || '|' || "
                         "encode(nonce, 'hex') || '|' || encode(content, 'hex'), "
                         "E'\\n' ORDER BY uuid), '') FROM deposits")

    def audit_count(self, action=None, result=None, actor=None):
        conds = ["true"]
        if action:
            conds.append("action = %s" % sql_quote(action))
        if result:
            conds.append("result = %s" % sql_quote(result))
        if actor:
            conds.append("actor = %s" % sql_quote(actor))
        return int(self.psql("SELECT count(*) FROM audit_log WHERE " + " AND ".join(conds)))


@pytest.fixture(scope="module")
def env(registry, session_db, server):
    return Env(server, session_db.cluster, registry)


@pytest.fixture(scope="module")
def open_org(env):
    return new_org(env.cluster, "")


@pytest.fixture(scope="module")
def secret_org(env):
    secret = base64.b64encode(os.urandom(16)).decode()
    return new_org(env.cluster, secret), secret


@pytest.fixture(scope="module")
def alice(env, registry, secret_org):
    c = Client(registry, "alice")
    status, ans = c.register(env.port, secret_org[0], auth=secret_org[1])
    assert status == 201, ans
    return c


@pytest.fixture(scope="module")
def bob(env, registry, open_org):
    c = Client(registry, "bob")
    status, ans = c.register(env.port, open_org)
    assert status == 201, ans
    return c


# --------------------------------------------------------------------------
# data key


def test_datakey_file_made_by_init(env):
    path = os.path.join(env.server.confdir, "datakey.gpg")
    assert os.stat(path).st_mode & 0o777 == 0o600
    with open(path, "rb") as f:
        head = f.read(64)
    assert b"BEGIN PGP MESSAGE" in head


def test_server_refuses_to_start_without_datakey(registry, dbconf, make_server):
    os.unlink(os.path.join(dbconf, "datakey.gpg"))
    srv = make_server(dbconf, name="nodatakey").spawn()
    assert srv.wait(timeout=30) != 0
    assert "run 'ktadmin init --confdir %s'" % dbconf in srv.log()


def test_init_keeps_existing_datakey(registry, confcopy):
    path = os.path.join(confcopy, "datakey.gpg")
    with open(path, "rb") as f:
        before = f.read()
    proc = run([binary("ktadmin"), "init", "--confdir", confcopy, "--hostname", "localhost"],
               timeout=120)
    assert proc.returncode == 0, proc.stderr
    with open(path, "rb") as f:
        assert f.read() == before


# --------------------------------------------------------------------------
# registration


def test_register_right_secret_is_active(env, alice, secret_org):
    assert alice.state == "active"
    assert alice.fpr == alice.keyfpr.upper() and set(alice.fpr) <= FPR_HEX
    row = env.psql("SELECT state || '|' || length(secret_ct) || '|' || length(secret_nonce) "
                   "FROM clients WHERE fingerprint = %s" % sql_quote(alice.fpr))
    assert row == "active|48|12"
    assert env.audit_count("register", "created_active", alice.fpr) == 1


def test_register_answer_fields(env, registry, open_org):
    c = Client(registry, "fields")
    status, ans = c.register(env.port, open_org)
    assert status == 201
    assert set(ans) == {"fingerprint", "state", "secret", "server_fingerprint"}
    assert ans["server_fingerprint"] == env.server.fingerprint
    assert ans["secret"].startswith("-----BEGIN PGP MESSAGE-----")


def test_register_empty_org_secret_is_active(env, bob):
    assert bob.state == "active"


def test_register_without_secret_is_pending(env, registry, secret_org):
    c = Client(registry, "pending")
    status, ans = c.register(env.port, secret_org[0])
    assert status == 201 and ans["state"] == "pending"
    status, _, data = c.call(env.port, "GET", "/v1/deposits")
    assert status == 403 and as_json(data)["code"] == "client_pending"
    # null means no secret too
    c2 = Client(registry, "pending2")
    status, ans = c2.register(env.port, secret_org[0], auth=None)
    assert status == 201 and ans["state"] == "pending"


def test_register_wrong_secret_is_403(env, registry, secret_org):
    c = Client(registry, "wrong")
    before = env.audit_count("register", "bad_auth")
    status, ans = c.register(env.port, secret_org[0], auth="not-the-secret",
                             source="127.0.0.2")
    assert status == 403 and ans["code"] == "bad_auth"
    assert set(ans) == {"error", "code"}
    assert env.audit_count("register", "bad_auth") == before + 1
    assert env.psql("SELECT count(*) FROM clients WHERE fingerprint = %s"
                    % sql_quote(c.keyfpr)) == "0"


def test_register_unknown_org_is_404(env, registry):
    c = Client(registry, "noorg")
    status, ans = c.register(env.port, "no-such-org-" + secrets.token_hex(4))
    assert status == 404 and ans["code"] == "unknown_org"


def test_reregister_returns_existing_client(env, alice, secret_org):
    old_secret, old_fpr = alice.secret, alice.fpr
    status, ans = alice.register(env.port, secret_org[0], auth=secret_org[1])
    assert status == 200
    assert alice.secret == old_secret and alice.fpr == old_fpr
    assert ans["state"] == "active"
    assert env.psql("SELECT count(*) FROM clients WHERE fingerprint = %s"
                    % sql_quote(alice.fpr)) == "1"


def test_reregister_keeps_pending_state(env, registry, secret_org):
    c = Client(registry, "pendre")
    status, ans = c.register(env.port, secret_org[0])
    assert status == 201 and ans["state"] == "pending"
    first = c.secret
    status, ans = c.register(env.port, secret_org[0], auth=secret_org[1])
    assert status == 200 and ans["state"] == "pending" and c.secret == first


def test_reregister_other_org_is_409(env, alice, open_org):
    status, ans = alice.register(env.port, open_org)
    assert status == 409 and ans["code"] == "conflict"


def test_register_keeps_no_keyring(env, alice, bob):
    # The clients' keys are checked and encrypted to in the server's memory
    # (librnp): no GnuPG home of theirs, no gpg run for them.
    assert not os.path.exists(os.path.join(env.server.confdir, ".clients-gnupg"))
    assert not live_processes_mentioning(os.path.join(env.server.confdir, ".clients-gnupg"))
    rows = env.psql("SELECT count(*) FROM clients WHERE fingerprint IN (%s, %s) "
                    "AND pubkey LIKE '%%BEGIN PGP PUBLIC KEY BLOCK%%'"
                    % (sql_quote(alice.fpr), sql_quote(bob.fpr)))
    assert rows == "2"


def test_register_key_without_encryption_subkey(env, registry, open_org):
    c = Client(registry, "signonly", encrypt_subkey=False)
    status, ans = c.register(env.port, open_org)
    assert status == 400 and ans["code"] == "bad_pubkey"


# --------------------------------------------------------------------------
# deposits


def test_put_get_list_delete(env, alice):
    content = os.urandom(1000)
    status, ans = alice.put(env.port, "disk-key-1", content, "the first disk")
    assert status == 201, ans
    uuid = ans["uuid"]
    assert len(uuid) == 36 and uuid[14] == "4"
    # The row at rest is not the plaintext.
    hexct = env.psql("SELECT encode(content, 'hex') FROM deposits WHERE uuid = %s"
                     % sql_quote(uuid))
    assert content.hex() not in hexct and len(hexct) == 2 * (1000 + 16)
    status, got = alice.get(env.port, uuid)
    assert status == 200
    assert base64.b64decode(got["content"]) == content
    assert got["name"] == "disk-key-1" and got["description"] == "the first disk"
    assert got["uuid"] == uuid and got["created"].endswith("Z")
    status, lst = alice.list(env.port, "?name=disk-key-1")
    assert status == 200
    assert [d["uuid"] for d in lst["deposits"]] == [uuid]
    assert "content" not in lst["deposits"][0]
    status, lst = alice.list(env.port)
    assert uuid in [d["uuid"] for d in lst["deposits"]]
    status, ans = alice.delete(env.port, uuid)
    assert status == 200 and ans == {"deleted": uuid}
    status, ans = alice.get(env.port, uuid)
    assert status == 404 and ans["code"] == "not_found"
    # Deleting again is a new request (signed in another second: the same
    # bytes would be a replay, answered as the first, test_replay.py).
    status, _, data = alice.call(env.port, "DELETE", "/v1/deposits/" + uuid,
                                 ts=int(time.time()) + 1)
    assert status == 404 and as_json(data)["code"] == "not_found"
    for action in ("deposit_create", "deposit_read", "deposit_delete"):
        assert env.audit_count(action, "ok", alice.fpr) >= 1


def test_empty_content_refused_and_max_content(env, alice):
    # Content is the client's ciphertext: empty, it can only be a mistake.
    before = env.deposits_snapshot()
    status, ans = alice.put(env.port, "empty", b"")
    assert status == 400 and ans["code"] == "bad_content", ans
    assert "content" in ans["error"], ans
    assert env.deposits_snapshot() == before
    big = os.urandom(64 * 1024)
    status, ans = alice.put(env.port, "big", big)
    assert status == 201
    status, got = alice.get(env.port, ans["uuid"])
    assert base64.b64decode(got["content"]) == big


def test_sql_metacharacters_stored_verbatim(env, alice):
    name = "x'); DROP TABLE deposits; -- \"\\ % _ $1 \u00e9\u4e2d"
    desc = "'; DELETE FROM audit_log; --"
    status, ans = alice.put(env.port, name, b"v", desc)
    assert status == 201, ans
    status, got = alice.get(env.port, ans["uuid"])
    assert got["name"] == name and got["description"] == desc
    from urllib.parse import quote
    status, lst = alice.list(env.port, "?name=" + quote(name, safe=""))
    assert status == 200 and [d["uuid"] for d in lst["deposits"]] == [ans["uuid"]]
    # A LIKE pattern does not match by wildcard.
    status, lst = alice.list(env.port, "?name=" + quote("x%", safe=""))
    assert status == 200 and lst["deposits"] == []


def test_cross_client_isolation(env, alice, bob):
    status, ans = alice.put(env.port, "alice-only", b"secret of alice")
    assert status == 201
    uuid = ans["uuid"]
    status, a404 = bob.get(env.port, uuid)
    status2, missing = bob.get(env.port, "00000000-0000-4000-8000-000000000000")
    assert status == 404 and status2 == 404 and a404 == missing
    status, ans = bob.delete(env.port, uuid)
    assert status == 404
    status, lst = bob.list(env.port, "?name=alice-only")
    assert status == 200 and lst["deposits"] == []
    status, got = alice.get(env.port, uuid)
    assert status == 200 and base64.b64decode(got["content"]) == b"secret of alice"


def test_disabled_client_refused_on_next_request(env, registry, open_org):
    c = Client(registry, "todisable")
    status, _ = c.register(env.port, open_org)
    assert status == 201
    status, ans = c.put(env.port, "k", b"v")
    assert status == 201
    env.psql("UPDATE clients SET state = 'disabled' WHERE fingerprint = %s" % sql_quote(c.fpr))
    status, _, data = c.call(env.port, "GET", "/v1/deposits/" + ans["uuid"])
    assert status == 403 and as_json(data)["code"] == "client_disabled"
    assert env.audit_count("auth", "client_disabled", c.fpr) == 1
    env.psql("UPDATE clients SET state = 'active' WHERE fingerprint = %s" % sql_quote(c.fpr))
    status, _, _ = c.call(env.port, "GET", "/v1/deposits/" + ans["uuid"])
    assert status == 200


def test_stale_and_future_timestamps(env, alice):
    for skew in (-301, 301, -100000):
        status, _, data = alice.call(env.port, "GET", "/v1/deposits",
                                     ts=int(time.time()) + skew)
        assert status == 401 and as_json(data)["code"] == "unauthorized"
    status, _, _ = alice.call(env.port, "GET", "/v1/deposits", ts=int(time.time()) - 200)
    assert status == 200


def test_bad_signature(env, alice, bob):
    uri = "/v1/deposits"
    ts = str(int(time.time()))
    cases = [
        sign(bob.secret, "GET", uri, ts, b""),              # another client's secret
        sign(alice.secret, "POST", uri, ts, b""),           # other method
        sign(alice.secret, "GET", uri + "?name=x", ts, b""),  # other URI
        sign(alice.secret, "GET", uri, str(int(ts) - 1), b""),  # other ts
        sign(alice.secret, "GET", uri, ts, b"x"),           # other body
    ]
    before = env.audit_count("auth", "bad_signature", alice.fpr)
    for sig in cases:
        hdr = "KT1-HMAC-SHA256 fp=%s,ts=%s,sig=%s" % (alice.fpr, ts, sig)
        status, _, data = http_request(env.port, "GET", uri, b"", [("Authorization", hdr)])
        assert status == 401 and as_json(data) == {
            "error": "unknown client or bad signature", "code": "unauthorized"}
    assert env.audit_count("auth", "bad_signature", alice.fpr) == before + len(cases)


def test_signature_covers_body(env, alice):
    doc = json.dumps({"name": "n", "content": "AAAA"}).encode()
    hdr = alice.auth_header("POST", "/v1/deposits", doc)
    before = env.deposits_snapshot()
    tampered = json.dumps({"name": "m", "content": "AAAA"}).encode()
    status, _, _ = http_request(env.port, "POST", "/v1/deposits", tampered,
                                [("Authorization", hdr), ("Content-Type", "application/json")])
    assert status == 401
    assert env.deposits_snapshot() == before


def test_tampered_ciphertext_is_integrity_error(env, alice):
    status, ans = alice.put(env.port, "tamper", b"precious key material")
    uuid = ans["uuid"]
    env.psql("UPDATE deposits SET content = set_byte(content, 3, get_byte(content, 3) # 1) "
             "WHERE uuid = %s" % sql_quote(uuid))
    status, got = alice.get(env.port, uuid)
    assert status == 500 and got == {"error": "stored data failed its integrity check",
                                     "code": "integrity"}
    assert "integrity check failed" in env.server.log()
    assert env.audit_count("deposit_read", "integrity", alice.fpr) == 1


def test_moved_ciphertext_is_integrity_error(env, alice):
    """A row's ciphertext copied onto another row does not open (AAD)."""
    _, a = alice.put(env.port, "one", b"first")
    _, b = alice.put(env.port, "two", b"second")
    env.psql("UPDATE deposits SET nonce = s.nonce, content = s.content FROM deposits s "
             "WHERE deposits.uuid = %s AND s.uuid = %s"
             % (sql_quote(b["uuid"]), sql_quote(a["uuid"])))
    status, got = alice.get(env.port, b["uuid"])
    assert status == 500 and got["code"] == "integrity"


# --------------------------------------------------------------------------
# bad input: every case is refused and nothing stored changes


def _json_post(doc):
    return ("POST", "/v1/deposits", json.dumps(doc).encode(), "application/json")


BAD = [
    # (id, method, uri, body, content-type, expected status, expected code)
    ("not-json", "POST", "/v1/deposits", b"{name:", "application/json", 400, "bad_json"),
    ("json-array", "POST", "/v1/deposits", b"[1,2]", "application/json", 400, "bad_json"),
    ("json-string", "POST", "/v1/deposits", b"\"x\"", "application/json", 400, "bad_json"),
    ("empty-body", "POST", "/v1/deposits", b"", "application/json", 400, "bad_json"),
    ("trailing-garbage", "POST", "/v1/deposits", b'{"name":"a","content":""} x',
     "application/json", 400, "bad_json"),
    ("duplicate-keys", "POST", "/v1/deposits", b'{"name":"a","name":"b","content":""}',
     "application/json", 400, "bad_json"),
    ("deep-nesting", "POST", "/v1/deposits", b'{"a":' * 40 + b"1" + b"}" * 40,
     "application/json", 400, "bad_json"),
    ("nul-escape", "POST", "/v1/deposits", b'{"name":"a\\u0000b","content":""}',
     "application/json", 400, "bad_json"),
    ("invalid-utf8", "POST", "/v1/deposits", b'{"name":"\xff","content":""}',
     "application/json", 400, "bad_json"),
    ("name-missing", *_json_post({"content": "AAAA"}), 400, "bad_request"),
    ("name-number", *_json_post({"name": 5, "content": "AAAA"}), 400, "bad_request"),
    ("name-null", *_json_post({"name": None, "content": "AAAA"}), 400, "bad_request"),
    ("name-empty", *_json_post({"name": "", "content": "AAAA"}), 400, "bad_name"),
    ("name-too-long", *_json_post({"name": "n" * 256, "content": "AAAA"}), 400, "bad_name"),
    ("name-newline", *_json_post({"name": "a\nb", "content": "AAAA"}), 400, "bad_name"),
    ("name-c1-control", *_json_post({"name": "a\u0085b", "content": "AAAA"}), 400, "bad_name"),
    ("content-missing", *_json_post({"name": "a"}), 400, "bad_request"),
    ("content-array", *_json_post({"name": "a", "content": ["AAAA"]}), 400, "bad_request"),
    ("content-bad-char", *_json_post({"name": "a", "content": "AA*A"}), 400, "bad_content"),
    ("content-no-padding", *_json_post({"name": "a", "content": "AAA"}), 400, "bad_content"),
    ("content-bad-padding", *_json_post({"name": "a", "content": "A==="}), 400, "bad_content"),
    ("content-inner-padding", *_json_post({"name": "a", "content": "AA==AAAA"}), 400,
     "bad_content"),
    ("content-nonzero-bits", *_json_post({"name": "a", "content": "AB=="}), 400, "bad_content"),
    ("content-urlsafe", *_json_post({"name": "a", "content": "-_-_"}), 400, "bad_content"),
    ("content-whitespace", *_json_post({"name": "a", "content": "AAAA\nAAAA"}), 400,
     "bad_content"),
    ("content-over-64k", *_json_post({"name": "a", "content": base64.b64encode(
        b"x" * (64 * 1024 + 1)).decode()}), 413, "too_large"),
    ("description-number", *_json_post({"name": "a", "content": "", "description": 1}), 400,
     "bad_request"),
    ("description-too-long", *_json_post({"name": "a", "content": "", "description": "d" * 1025}),
     400, "bad_description"),
    ("wrong-content-type", "POST", "/v1/deposits", b'{"name":"a","content":""}', "text/plain",
     415, "unsupported_media_type"),
    ("no-content-type", "POST", "/v1/deposits", b'{"name":"a","content":""}', None,
     415, "unsupported_media_type"),
    ("content-type-prefix", "POST", "/v1/deposits", b'{"name":"a","content":""}',
     "application/jsonx", 415, "unsupported_media_type"),
    ("body-over-128k", "POST", "/v1/deposits", b'{"name":"a","content":"' + b"A" * (130 * 1024)
     + b'"}', "application/json", 413, "too_large"),
    ("uuid-short", "GET", "/v1/deposits/1234", b"", None, 400, "bad_uuid"),
    ("uuid-garbage", "GET", "/v1/deposits/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", b"", None, 400,
     "bad_uuid"),
    ("uuid-sql", "GET", "/v1/deposits/'%20OR%201=1--", b"", None, 400, "bad_uuid"),
    ("uuid-too-long", "DELETE", "/v1/deposits/00000000-0000-4000-8000-0000000000000", b"", None,
     400, "bad_uuid"),
    ("uuid-no-dashes", "DELETE", "/v1/deposits/00000000000040008000000000000000", b"", None,
     400, "bad_uuid"),
    ("uuid-subpath", "GET", "/v1/deposits/00000000-0000-4000-8000-000000000000/x", b"", None,
     404, "not_found"),
    ("list-bad-name", "GET", "/v1/deposits?name=a%0Ab", b"", None, 400, "bad_name"),
    ("list-bad-utf8", "GET", "/v1/deposits?name=%FF", b"", None, 400, "bad_name"),
    ("put-method", "PUT", "/v1/deposits", b'{"name":"a","content":""}', "application/json",
     405, "method_not_allowed"),
    ("delete-collection", "DELETE", "/v1/deposits", b"", None, 405, "method_not_allowed"),
    ("post-on-uuid", "POST", "/v1/deposits/00000000-0000-4000-8000-000000000000",
     b'{"name":"a","content":""}', "application/json", 405, "method_not_allowed"),
    ("get-register", "GET", "/v1/register", b"", None, 405, "method_not_allowed"),
    ("unknown-v1", "GET", "/v1/nothing", b"", None, 404, "not_found"),
    ("post-health", "POST", "/health", b"{}", "application/json", 405, "method_not_allowed"),
    ("delete-root", "DELETE", "/", b"", None, 405, "method_not_allowed"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_signed(env, alice, case):
    _, method, uri, body, ctype, want, code = case
    before = env.deposits_snapshot()
    status, hdrs, data = alice.call(env.port, method, uri, body=body, ctype=ctype)
    assert status == want, data
    ans = as_json(data)
    assert set(ans) == {"error", "code"} and ans["code"] == code
    if status == 405:
        assert "allow" in hdrs
    assert env.deposits_snapshot() == before


def _hdr_cases(alice):
    good = alice.auth_header("GET", "/v1/deposits", b"")
    ts = str(int(time.time()))
    return [
        ("missing", []),
        ("duplicate", [("Authorization", good), ("Authorization", good)]),
        ("wrong-scheme", [("Authorization", "Bearer " + good.split(" ", 1)[1])]),
        ("lowercase-scheme", [("Authorization", "kt1-hmac-sha256 " + good.split(" ", 1)[1])]),
        ("garbled", [("Authorization", "KT1-HMAC-SHA256 \x01\x02garbage")]),
        ("empty", [("Authorization", "")]),
        ("short-fp", [("Authorization", good.replace("fp=" + alice.fpr, "fp=" + alice.fpr[:39]))]),
        ("unknown-fp", [("Authorization", "KT1-HMAC-SHA256 fp=%s,ts=%s,sig=%s"
                         % ("0" * 40, ts, "0" * 64))]),
        ("non-hex-sig", [("Authorization", good[:-64] + "g" * 64)]),
        ("long-sig", [("Authorization", good + "00")]),
        ("reordered", [("Authorization", "KT1-HMAC-SHA256 ts=%s,fp=%s,sig=%s"
                        % (ts, alice.fpr, good[-64:]))]),
        ("ts-not-number", [("Authorization", good.replace("ts=" + ts, "ts=12a"))]),
        ("ts-negative", [("Authorization", good.replace("ts=" + ts, "ts=-" + ts))]),
        ("ts-huge", [("Authorization", good.replace("ts=" + ts, "ts=" + "9" * 30))]),
        ("fp-sql", [("Authorization", "KT1-HMAC-SHA256 fp=' OR '1'='1,ts=%s,sig=%s"
                     % (ts, "0" * 64))]),
    ]


HDR_IDS = ["missing", "duplicate", "wrong-scheme", "lowercase-scheme", "garbled", "empty",
           "short-fp", "unknown-fp", "non-hex-sig", "long-sig", "reordered", "ts-not-number",
           "ts-negative", "ts-huge", "fp-sql"]


@pytest.mark.parametrize("which", HDR_IDS)
def test_bad_authorization_header(env, alice, which):
    headers = dict((k, v) for k, v in [(c[0], c[1]) for c in _hdr_cases(alice)])[which]
    before = env.deposits_snapshot()
    status, _, data = http_request(env.port, "GET", "/v1/deposits", b"", headers)
    assert status == 401, data
    assert as_json(data)["code"] == "unauthorized"
    assert env.deposits_snapshot() == before


def test_unsigned_post_changes_nothing(env):
    before = env.deposits_snapshot()
    status, _, data = http_request(env.port, "POST", "/v1/deposits",
                                   b'{"name":"a","content":""}',
                                   [("Content-Type", "application/json")])
    assert status == 401 and as_json(data)["code"] == "unauthorized"
    assert env.deposits_snapshot() == before


def test_overlong_headers_refused(env, alice):
    before = env.deposits_snapshot()
    hdr = alice.auth_header("GET", "/v1/deposits", b"")
    status, hdrs, data = http_request(env.port, "GET", "/v1/deposits", b"",
                                      [("Authorization", hdr), ("X-Pad", "p" * (20 * 1024))])
    # A header block over 16 KiB: 431, said in JSON, and the connection closed.
    assert status == 431
    assert "application/json" in hdrs["content-type"]
    assert json.loads(data)["code"] == "headers_too_large"
    assert env.deposits_snapshot() == before


def test_body_beyond_buffer_limit(env, alice):
    """Beyond twice the API limit the server refuses with 413 on the
    declared Content-Length, before reading the body, and closes."""
    import socket
    before = env.deposits_snapshot()
    hdr = alice.auth_header("POST", "/v1/deposits", b"")
    head = ("POST /v1/deposits HTTP/1.1\r\nHost: localhost\r\n"
            "Authorization: %s\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n" % (hdr, 300 * 1024)).encode()
    with socket.create_connection(("127.0.0.1", env.port), timeout=10) as raw:
        with no_verify_context().wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(head)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    assert data.startswith(b"HTTP/1.1 413 "), data[:100]
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"\r\nConnection: close\r\n" in head + b"\r\n"
    assert json.loads(body)["code"] == "too_large"
    assert env.deposits_snapshot() == before


BAD_REGISTER = [
    ("not-json", b"{", "application/json", 400, "bad_json"),
    ("array", b"[]", "application/json", 400, "bad_json"),
    ("wrong-ctype", b"{}", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ("org-missing", {"pubkey": "k", "hostname": "h"}, None, 400, "bad_request"),
    ("org-number", {"org": 1, "pubkey": "k", "hostname": "h"}, None, 400, "bad_request"),
    ("auth-number", {"org": "o", "auth": 1, "pubkey": "k", "hostname": "h"}, None, 400,
     "bad_request"),
    ("pubkey-not-armored", {"org": "o", "pubkey": "k", "hostname": "h"}, None, 400, "bad_pubkey"),
    ("hostname-missing", {"org": "o", "pubkey": "k"}, None, 400, "bad_request"),
    ("hostname-control", {"org": "o", "pubkey": "k", "hostname": "a\x1bb"}, None, 400,
     "bad_request"),
]


@pytest.mark.parametrize("case", BAD_REGISTER, ids=[c[0] for c in BAD_REGISTER])
def test_bad_register_input(env, case):
    _, doc, ctype, want, code = case
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    before = env.psql("SELECT count(*) FROM clients")
    status, _, data = http_request(env.port, "POST", "/v1/register", body,
                                   [("Content-Type", ctype or "application/json")])
    assert status == want and as_json(data)["code"] == code
    assert env.psql("SELECT count(*) FROM clients") == before


def test_register_garbage_armored_key(env, open_org):
    doc = {"org": open_org, "hostname": "h",
           "pubkey": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n"
                     "-----END PGP PUBLIC KEY BLOCK-----\n"}
    status, _, data = http_request(env.port, "POST", "/v1/register", json.dumps(doc).encode(),
                                   [("Content-Type", "application/json")])
    assert status == 400 and as_json(data)["code"] == "bad_pubkey"


def test_register_refuses_secret_key(env, registry, open_org):
    c = Client(registry, "secretkey")
    armored = run([tool("gpg"), "--homedir", c.home, "--batch", "--armor",
                   "--pinentry-mode", "loopback", "--passphrase", "",
                   "--export-secret-keys", c.keyfpr], check=True).stdout
    # As sent, and dressed up as a public key block (caught after import).
    disguised = armored.replace("PRIVATE KEY BLOCK", "PUBLIC KEY BLOCK")
    for pubkey in (c.pubkey + armored, disguised):
        doc = {"org": open_org, "hostname": "h", "pubkey": pubkey}
        status, _, data = http_request(env.port, "POST", "/v1/register",
                                       json.dumps(doc).encode(),
                                       [("Content-Type", "application/json")])
        assert status == 400 and as_json(data)["code"] == "bad_pubkey"
    # Nothing of it is stored: no client row, and no stored public key
    # holds a secret key packet.
    assert env.psql("SELECT count(*) FROM clients WHERE fingerprint = %s"
                    % sql_quote(c.keyfpr.upper())) == "0"
    stored = env.psql("SELECT string_agg(pubkey, E'\\n') FROM clients")
    assert stored.count("BEGIN PGP PUBLIC KEY BLOCK") >= 1
    packets = run([tool("gpg"), "--homedir", c.home, "--batch", "--list-packets"],
                  input=stored).stdout
    assert ":public key packet:" in packets
    assert ":secret key packet:" not in packets and ":secret sub key packet:" not in packets


def test_nothing_of_the_request_in_the_log(env, alice):
    marker = "MARKER" + secrets.token_hex(8)
    alice.call(env.port, "POST", "/v1/deposits", body=b'{"name":"' + marker.encode() + b'\n"}')
    alice.put(env.port, marker, marker.encode())
    http_request(env.port, "GET", "/v1/" + marker, b"", [("Authorization", marker)])
    assert marker not in env.server.log()


# --------------------------------------------------------------------------
# throttling (last: it blocks its source address for a minute)


def test_wrong_secret_is_throttled(env, registry, secret_org):
    c = Client(registry, "throttled")
    src = "127.0.0.%d" % (10 + secrets.randbelow(200))
    codes = []
    for _ in range(5):
        status, ans = c.register(env.port, secret_org[0], auth="wrong", source=src)
        codes.append(status)
    assert codes == [403] * 5
    status, ans = c.register(env.port, secret_org[0], auth="wrong", source=src)
    assert status == 429 and ans["code"] == "throttled"
    # For the rest of the window even the right secret is refused ...
    status, ans = c.register(env.port, secret_org[0], auth=secret_org[1], source=src)
    assert status == 429
    assert env.audit_count("register", "throttled") >= 2
    # ... from that address only.
    status, ans = c.register(env.port, secret_org[0], auth=secret_org[1], source="127.0.0.1")
    assert status == 201
