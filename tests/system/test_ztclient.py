"""The test client (ztclient.py) checked against real GnuPG, before any
server speaks the protocol: gpg imports the keys it makes and checks their
self-signatures, decrypts and verifies the json-encrypt messages it writes
(a tag 9 packet: gpg 2.2 wants --ignore-mdc-error), lists their packets as
the reference describes them, verifies its detached signatures; and the
client opens and verifies what gpg writes (SEIPD with MDC, tag 9, every
compression, text and binary signatures), reads answers in both protocols,
and refuses the server keys the 3.5 library refuses.

GnuPG homes are temporary and registered with conftest's registry, which
ends their agents.
"""

import base64
import hashlib
import http.server
import json
import os
import re
import subprocess
import threading
import time

import pytest

from conftest import tool
import ztclient as z


class Gpg:
    """A temporary GnuPG home."""

    def __init__(self, registry, name):
        self.home = registry.gnupg_home(os.path.join(registry.mkdtemp("zt-gpg-" + name + "-"),
                                                     "g"))
        os.mkdir(self.home, 0o700)

    def argv(self, *args):
        return [tool("gpg"), "--homedir", self.home, "--batch", "--pinentry-mode", "loopback",
                "--passphrase", "", "--trust-model", "always"] + list(args)

    def run(self, *args, input=None, check=True):
        """(returncode, stdout bytes, stderr text)."""
        if isinstance(input, str):
            input = input.encode()
        proc = subprocess.run(self.argv(*args), input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError("gpg %s exited %d:\n%s" % (" ".join(args), proc.returncode,
                                                           proc.stderr.decode()))
        return proc.returncode, proc.stdout, proc.stderr.decode(errors="replace")

    def gen(self, uid, subkey=True, expire="never", extra=()):
        self.run(*extra, "--quick-gen-key", uid, "rsa2048", "sign,cert", expire)
        fpr = self.fprs()[-1]
        if subkey:
            self.run(*extra, "--quick-add-key", fpr, "rsa2048", "encr", expire)
        return fpr

    def fprs(self):
        _, out, _ = self.run("--with-colons", "--list-keys")
        fprs, want = [], False
        for line in out.decode().splitlines():
            f = line.split(":")
            if f[0] == "pub":
                want = True
            elif f[0] == "fpr" and want:
                fprs.append(f[9])
                want = False
        return fprs

    def export(self, fpr):
        return self.run("--armor", "--export", fpr)[1].decode()

    def imp(self, armored):
        return self.run("--import", input=armored)


@pytest.fixture(scope="module")
def server_gpg(registry):
    """A gpg-made "server" key: RSA primary flagged sign+certify only, RSA
    encryption subkey (the shape of the server's GPGME key)."""
    g = Gpg(registry, "server")
    g.fpr = g.gen("keytrustee (keytrustee Server Key) <keytrustee@localhost>")
    g.key = z.read_key(g.export(g.fpr))
    return g


@pytest.fixture(scope="module")
def client_key():
    return z.ClientKey.generate("ztrustee (client) <user@host.example.com>", 2048)


@pytest.fixture(scope="module")
def peer(registry, server_gpg, client_key):
    """gpg home holding the server's secret key and the client's public key."""
    server_gpg.imp(client_key.export_public())
    return server_gpg


def offline_client(tmp_path, server_gpg, client_key, protocol="json-encrypt"):
    c = z.Client("https://127.0.0.1:1", key=client_key, home=str(tmp_path),
                 protocol=protocol)
    c.server_key = server_gpg.key
    return c


def status_lines(stderr):
    return [ln[len("[GNUPG:] "):] for ln in stderr.splitlines() if ln.startswith("[GNUPG:] ")]


# --------------------------------------------------------------------------
# the client's key, seen by gpg


def test_gpg_imports_client_key_and_checks_its_self_signatures(registry, client_key):
    g = Gpg(registry, "import")
    armored = client_key.export_public()
    assert armored.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----\nVersion: "
                              "ztrustee v3.5.0-b4\n\n")
    _, _, err = g.imp(armored)
    assert "imported: 1" in err, err
    _, out, _ = g.run("--with-colons", "--check-sigs", client_key.fpr)
    rows = [ln.split(":") for ln in out.decode().splitlines()]
    pub = [r for r in rows if r[0] == "pub"]
    sub = [r for r in rows if r[0] == "sub"]
    uid = [r for r in rows if r[0] == "uid"]
    sigs = [r for r in rows if r[0] == "sig"]
    assert len(pub) == 1 and pub[0][2] == "2048" and pub[0][3] == "1", pub
    # Capabilities: the primary certifies and signs, the subkey encrypts.
    assert set(pub[0][11]) >= set("sc") and "e" not in pub[0][11], pub[0][11]
    assert len(sub) == 1 and sub[0][2] == "2048" and sub[0][3] == "1" and sub[0][11] == "e"
    assert uid[0][9] == "ztrustee (client) <user@host.example.com>"
    # gpg checked both self-signatures: '!' is good, '-' bad, '%' error.
    assert [(s[1], s[10]) for s in sigs] == [("!", "13x"), ("!", "18x")], sigs
    fprs = [r[9] for r in rows if r[0] == "fpr"]
    assert fprs == [client_key.fpr, client_key.skey.fpr]
    assert client_key.qualified == "2048R/" + client_key.fpr


def test_gpg_refuses_a_broken_self_signature(registry, client_key):
    """The self-signature check above can fail: a flipped bit in the
    signature's value makes gpg drop the user ID."""
    pkts = z.parse_packets(client_key.public_packets())
    sig = bytearray(pkts[2][1])
    sig[-1] ^= 1
    pkts[2] = (pkts[2][0], bytes(sig))
    broken = z.armor("PUBLIC KEY BLOCK", b"".join(z.packet(t, b) for t, b in pkts))
    g = Gpg(registry, "broken")
    rc, _, err = g.run("--import", input=broken, check=False)
    assert "1 bad signature" in err and "skipped" in err, err
    assert client_key.fpr not in g.run("--with-colons", "--list-keys", check=False)[1].decode()


def test_gpg_imports_the_secret_key(registry, client_key):
    g = Gpg(registry, "secret")
    g.imp(client_key.export_secret())
    _, out, _ = g.run("--with-colons", "--list-secret-keys")
    rows = [ln.split(":") for ln in out.decode().splitlines()]
    assert [r[0] for r in rows if r[0] in ("sec", "ssb")] == ["sec", "ssb"]
    # And decrypts with it what is encrypted to the client's subkey.
    msg = z.encrypt_message(b"to the client", [client_key.public_key().encryption_key()],
                            client_key, tag9=False)
    _, out, err = g.run("--status-fd", "2", "-d", input=msg)
    assert out == b"to the client"
    assert "ENC_TO %s 1 0" % client_key.skey.fpr[24:] in status_lines(err)


def test_parse_own_key_round_trip(client_key):
    k = z.read_key(client_key.export_public())
    assert k.fpr == client_key.fpr and k.qualified == client_key.qualified
    assert k.check_self_sigs()
    assert k.encryption_key().fpr == client_key.skey.fpr
    assert [u for u, _ in k.uids] == [b"ztrustee (client) <user@host.example.com>"]


# --------------------------------------------------------------------------
# json-encrypt requests, read by gpg


def test_gpg_decrypts_and_verifies_a_json_encrypt_payload(tmp_path, peer, client_key):
    c = offline_client(tmp_path, peer, client_key)
    data = c.request_data({"handle": "a/b", "description": None})
    (name, armored), = c.encode(data)
    assert name == "payload"
    assert armored.startswith("-----BEGIN PGP MESSAGE-----\nVersion: ztrustee v3.5.0-b4\n\n")
    assert armored.rstrip().endswith("-----END PGP MESSAGE-----")
    assert re.search(r"^=[A-Za-z0-9+/]{4}$", armored, re.M), "no CRC line"
    # Without --ignore-mdc-error gpg 2.2 refuses a tag 9 packet ...
    rc, _, err = peer.run("--status-fd", "2", "-d", input=armored, check=False)
    assert rc != 0 and "DECRYPTION_FAILED" in status_lines(err), err
    # ... with it, it decrypts and verifies the client's signature.
    _, out, err = peer.run("--status-fd", "2", "--ignore-mdc-error", "-d", input=armored)
    st = status_lines(err)
    primary_keyid = peer.key.primary.fpr[24:]
    assert "ENC_TO %s 1 0" % primary_keyid in st, st        # to the PRIMARY
    assert "DECRYPTION_INFO 0 9 0" in st, st                 # no MDC, AES-256
    assert any(s.startswith("PLAINTEXT 62 ") for s in st), st  # mode 'b'
    valid = [s for s in st if s.startswith("VALIDSIG ")]
    assert len(valid) == 1 and valid[0].split()[1] == client_key.fpr, st
    # VALIDSIG ... <pk algo> <hash algo> <sig class>: RSA, SHA-512, binary.
    assert valid[0].split()[5] == "4" and valid[0].split()[7:10] == ["1", "10", "00"], valid
    got = json.loads(out)
    assert got == data
    assert b'"a\\/b"' in out and b'"description": null' in out
    assert got["version"] == "ztrustee v3.5.0-b4"
    assert got["sig_fingerprint"] == "2048R/" + client_key.fpr
    assert got["auth_token"] == ""


def test_gpg_lists_the_packets_the_reference_describes(tmp_path, peer, client_key):
    c = offline_client(tmp_path, peer, client_key)
    armored = c.payload(b'{"k":"v"}')
    _, out, _ = peer.run("--ignore-mdc-error", "--list-packets", input=armored)
    text = out.decode()
    tags = re.findall(r"^# off=\d+ ctb=[0-9a-f]+ tag=(\d+)", text, re.M)
    assert tags == ["1", "9", "8", "4", "11", "2"], text
    assert re.search(r":pubkey enc packet: version 3, algo 1, keyid %s"
                     % peer.key.primary.fpr[24:], text)
    assert ":compressed packet: algo=2" in text          # ZLIB
    assert re.search(r":onepass_sig packet: keyid %s\n\tversion 3, sigclass 0x00, "
                     r"digest 10, pubkey 1, last=1" % client_key.fpr[24:], text), text
    assert re.search(r'mode b \(62\), created \d+, name="",', text), text
    sig = text[text.index(":signature packet:"):]
    assert "version 4," in sig and "sigclass 0x00" in sig and "digest algo 10" in sig
    hashed = re.findall(r"^\thashed subpkt (\d+)", sig, re.M)
    unhashed = re.findall(r"^\tsubpkt (\d+)", sig, re.M)
    assert sorted(hashed) == ["2", "28"] and unhashed == ["16"], sig
    assert "(signer's user ID)" in sig
    assert "issuer key ID %s" % client_key.fpr[24:] in sig


def test_gpg_reads_partial_lengths(tmp_path, peer, client_key):
    """The streaming form (partial body lengths), for a large payload."""
    c = offline_client(tmp_path, peer, client_key)
    big = json.dumps({"content": base64.b64encode(os.urandom(40000)).decode()}).encode()
    armored = c.payload(big, partial=True, compression=z.COMP_NONE)
    assert b"\xe9" in z.dearmor(armored)[2][:300]  # a 512-byte partial chunk header
    _, out, err = peer.run("--status-fd", "2", "--ignore-mdc-error", "-d", input=armored)
    assert out == big and any(s.startswith("VALIDSIG ") for s in status_lines(err))


def test_gpg_sees_a_bad_signature(tmp_path, peer, client_key):
    """The tampered-signature option really breaks the signature."""
    c = offline_client(tmp_path, peer, client_key)
    armored = c.payload(b'{"x":1}', corrupt_sig=True)
    rc, _, err = peer.run("--status-fd", "2", "--ignore-mdc-error", "-d", input=armored,
                          check=False)
    st = status_lines(err)
    assert rc != 0 and any(s.startswith("BADSIG ") for s in st), st


def test_signature_time_option(tmp_path, peer, client_key):
    c = offline_client(tmp_path, peer, client_key)
    when = int(time.time()) - 600
    armored = c.payload(b"{}", sig_time=when)
    _, _, err = peer.run("--status-fd", "2", "--ignore-mdc-error", "-d", input=armored)
    valid = [s for s in status_lines(err) if s.startswith("VALIDSIG ")]
    assert valid and valid[0].split()[3] == str(when), valid


def test_unsigned_payload_has_no_signature(tmp_path, peer, client_key):
    c = offline_client(tmp_path, peer, client_key)
    armored = c.payload(b"{}", sign=False)
    _, out, err = peer.run("--status-fd", "2", "--ignore-mdc-error", "-d", input=armored)
    st = status_lines(err)
    assert out == b"{}" and not any(s.startswith(("GOODSIG", "VALIDSIG", "NEWSIG")) for s in st)


# --------------------------------------------------------------------------
# json-sign requests


def test_gpg_verifies_json_sign_detached_signature(tmp_path, peer, client_key):
    c = offline_client(tmp_path, peer, client_key, "json-sign")
    data = c.request_data({"handle": "h", "ttl": 5})
    form = dict(c.encode(data))
    assert set(form) == {"payload", "payload_sig", "client_fingerprint"}
    assert form["client_fingerprint"] == "2048R/" + client_key.fpr
    assert json.loads(form["payload"]) == data
    assert form["payload_sig"].startswith("-----BEGIN PGP SIGNATURE-----\nVersion: ztrustee")
    d = str(tmp_path)
    with open(os.path.join(d, "p"), "wb") as f:
        f.write(form["payload"])
    with open(os.path.join(d, "p.asc"), "w") as f:
        f.write(form["payload_sig"])
    _, _, err = peer.run("--status-fd", "2", "--verify", os.path.join(d, "p.asc"),
                         os.path.join(d, "p"))
    valid = [s for s in status_lines(err) if s.startswith("VALIDSIG ")]
    assert len(valid) == 1 and valid[0].split()[1] == client_key.fpr
    assert valid[0].split()[5] == "4" and valid[0].split()[7:10] == ["1", "10", "00"]
    with open(os.path.join(d, "p"), "ab") as f:
        f.write(b" ")
    rc, _, err = peer.run("--status-fd", "2", "--verify", os.path.join(d, "p.asc"),
                          os.path.join(d, "p"), check=False)
    assert rc != 0 and any(s.startswith("BADSIG") for s in status_lines(err))


def test_form_encoding_round_trips(tmp_path, peer, client_key):
    c = offline_client(tmp_path, peer, client_key, "json-sign")
    data = c.request_data({"s": "a+b&c=d %2B \u00e9 \u4e2d"})
    fields = c.encode(data)
    body = z.form_encode(fields)
    assert body.isascii()
    back = z.form_decode(body)
    assert json.loads(back["payload"]) == data
    assert back["payload_sig"] == fields[1][1]
    # '+' of the base64 armor travels as %2B, not as a space.
    assert "+" not in fields[1][1] or b"%2B" in body


# --------------------------------------------------------------------------
# what gpg writes, read by the client


def gpg_sign_encrypt(peer, client_key, data, *opts):
    return peer.run("--armor", "--sign", "--encrypt", "-r", client_key.fpr,
                    "--local-user", peer.fpr, *opts, input=data)[1].decode()


@pytest.mark.parametrize("opts", [
    (), ("--compress-algo", "zlib"), ("--compress-algo", "zip"), ("--compress-algo", "bzip2"),
    ("--compress-algo", "none"), ("--digest-algo", "SHA256"), ("--textmode",),
    ("--rfc2440",),
], ids=["default", "zlib", "zip", "bzip2", "uncompressed", "sha256", "textmode", "tag9"])
def test_client_opens_and_verifies_what_gpg_writes(tmp_path, peer, client_key, opts):
    c = offline_client(tmp_path, peer, client_key)
    data = b'{"status": 200, "next_token": "' + b"a" * 64 + b'"}\n'
    armored = gpg_sign_encrypt(peer, client_key, data, *opts)
    opened = c.open_message(armored)
    if "--textmode" in opts:
        # Text mode travels with CRLF line ends (RFC 4880 5.9).
        assert opened.fmt == b"t" and opened.data == data.replace(b"\n", b"\r\n")
    else:
        assert opened.fmt == b"b" and opened.data == data
    assert opened.integrity == ("none" if "--rfc2440" in opts else "mdc")
    assert opened.signature_by(peer.key) is not None
    # Not by another key.
    assert opened.signature_by(client_key.public_key()) is None


def test_client_refuses_a_modified_seipd(tmp_path, peer, client_key):
    c = offline_client(tmp_path, peer, client_key)
    armored = gpg_sign_encrypt(peer, client_key, b"x" * 100, "--compress-algo", "none")
    raw = bytearray(z.dearmor(armored)[2])
    raw[-30] ^= 0x01
    assert c.open_message(armored).data == b"x" * 100
    with pytest.raises(z.ZtError, match="bad MDC"):
        c.open_message(z.armor("MESSAGE", bytes(raw)))


def test_client_verifies_gpg_detached_signatures(tmp_path, peer, client_key):
    data = b'{"a": 1}'
    sig = peer.run("--armor", "--detach-sign", "--local-user", peer.fpr, input=data)[1].decode()
    assert z.verify_detached(sig, data, peer.key) is not None
    assert z.verify_detached(sig, data + b" ", peer.key) is None
    assert z.verify_detached(sig, data, client_key.public_key()) is None


def fake_response(status, body, ctype=z.FORM):
    return z.Response(status, "X", {"content-type": ctype}, body)


def test_json_encrypt_answer_read_and_token_kept(tmp_path, peer, client_key):
    c = offline_client(tmp_path, peer, client_key)
    tok = "0123456789abcdef" * 4
    data = json.dumps({"deposit_uuid": "u", "url": "", "next_token": tok}).encode()
    body = z.form_encode({"payload": gpg_sign_encrypt(peer, client_key, data)})
    ans = c.read_answer(fake_response(200, body))
    assert ans.form == "payload" and ans["deposit_uuid"] == "u" and ans.signer is not None
    assert c.tokens.read() == tok
    # An error payload: reason and status surfaced.
    data = json.dumps({"reason": "no such deposit", "status": 404}).encode()
    ans = c.read_answer(fake_response(404, z.form_encode(
        {"payload": gpg_sign_encrypt(peer, client_key, data)})))
    assert (ans.status, ans.reason, ans.payload_status) == (404, "no such deposit", 404)


def test_json_encrypt_answer_signed_by_another_key_is_refused(registry, tmp_path, peer,
                                                               client_key):
    c = offline_client(tmp_path, peer, client_key)
    other = Gpg(registry, "other")
    ofpr = other.gen("other <o@x>")
    other.imp(client_key.export_public())
    armored = other.run("--armor", "--sign", "--encrypt", "-r", client_key.fpr,
                        "--local-user", ofpr, input=b"{}")[1].decode()
    with pytest.raises(z.ProtocolError, match="Bad payload signature from server"):
        c.read_answer(fake_response(200, z.form_encode({"payload": armored})))
    # Unsigned: refused too.
    armored = peer.run("--armor", "--encrypt", "-r", client_key.fpr, input=b"{}")[1].decode()
    with pytest.raises(z.ProtocolError, match="Bad payload signature from server"):
        c.read_answer(fake_response(200, z.form_encode({"payload": armored})))


def test_json_sign_answer(tmp_path, peer, client_key):
    c = offline_client(tmp_path, peer, client_key, "json-sign")
    data = b'{"request_uuid": "r", "next_token": "' + b"b" * 64 + b'"}'
    sig = peer.run("--armor", "--detach-sign", "--local-user", peer.fpr, input=data)[1].decode()
    ans = c.read_answer(fake_response(200, z.form_encode({"payload": data, "payload_sig": sig})))
    assert ans.form == "payload" and ans["request_uuid"] == "r" and ans.signer is not None
    assert c.tokens.read() == "b" * 64
    with pytest.raises(z.ProtocolError, match="Bad payload signature from server"):
        c.read_answer(fake_response(200, z.form_encode({"payload": data})))
    with pytest.raises(z.ProtocolError, match="Bad payload signature from server"):
        c.read_answer(fake_response(200, z.form_encode({"payload": data + b" ",
                                                        "payload_sig": sig})))
    # A json-sign client does not take an encrypted payload.
    enc = gpg_sign_encrypt(peer, client_key, data)
    with pytest.raises(z.ProtocolError, match="Bad payload signature from server"):
        c.read_answer(fake_response(200, z.form_encode({"payload": enc})))


def test_plain_errors_surface_status_and_reason(tmp_path, peer, client_key):
    c = offline_client(tmp_path, peer, client_key)
    ans = c.read_answer(fake_response(401, b"reason=signature+does+not+verify"))
    assert (ans.status, ans.form, ans.reason) == (401, "plain", "signature does not verify")
    ans = c.read_answer(fake_response(500, b"oops", "text/plain"))
    assert (ans.status, ans.form, ans.reason) == (500, "plain", "oops")
    ans = c.read_answer(fake_response(502, b"", "text/plain"))
    assert (ans.form, ans.reason) == ("empty", "502 X")
    assert c.tokens.read() == ""


def test_register_answer(tmp_path, peer, client_key):
    """register's JSON: the challenge decrypted, its sha512 checked."""
    c = offline_client(tmp_path, peer, client_key)
    challenge = os.urandom(32).hex()
    enc = gpg_sign_encrypt(peer, client_key, challenge.encode())
    good = {"challenge": enc, "sha512": hashlib.sha512(challenge.encode()).hexdigest().upper(),
            "next_token": "c" * 64}
    srv = _OneShot(lambda: (200, "application/json", json.dumps(good).encode()))
    try:
        c.url = srv.url
        ans = c.register("org1")
        assert ans.status == 200 and c.challenge == challenge and ans.signer is not None
        assert c.tokens.read() == "c" * 64
        form = z.form_decode(srv.bodies[-1])
        assert form == {"fingerprint": client_key.qualified, "protocol": "json-encrypt",
                        "token_sync": "1", "org": "org1"}
        bad = dict(good, sha512="0" * 128)
        srv.answer = lambda: (200, "application/json", json.dumps(bad).encode())
        with pytest.raises(z.ProtocolError, match="sha512"):
            c.register("org1")
    finally:
        srv.stop()


# --------------------------------------------------------------------------
# the server key check (reference 5.3)


def test_gpg_made_server_key_is_accepted(server_gpg):
    k = server_gpg.key
    assert k.check_as_server_key() is k
    assert z.fingerprint_matches("2048R/" + server_gpg.fpr, k)


def test_third_party_certification_is_refused(registry, server_gpg):
    g = Gpg(registry, "certified")
    fpr = g.gen("keytrustee (keytrustee Server Key) <keytrustee@localhost>")
    other = g.gen("someone <someone@example.com>", subkey=False)
    assert z.read_key(g.export(fpr)).check_as_server_key()
    g.run("--default-key", other, "--quick-sign-key", fpr)
    with pytest.raises(z.InvalidServerKey, match="Invalid server key"):
        z.read_key(g.export(fpr)).check_as_server_key()


def test_revoked_server_key_is_refused(registry):
    g = Gpg(registry, "revoked")
    fpr = g.gen("revoked <r@x>")
    with open(os.path.join(g.home, "openpgp-revocs.d", fpr + ".rev")) as f:
        cert = f.read().replace("\n:-----BEGIN", "\n-----BEGIN")
    g.imp(cert)
    with pytest.raises(z.InvalidServerKey, match="revoked"):
        z.read_key(g.export(fpr)).check_as_server_key()


def test_expired_server_key_is_refused(registry):
    g = Gpg(registry, "expired")
    past = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() - 10 * 86400))
    fpr = g.gen("expired <e@x>", expire="2d", extra=("--faked-system-time", past))
    with pytest.raises(z.InvalidServerKey, match="expired"):
        z.read_key(g.export(fpr)).check_as_server_key()


def test_tampered_server_self_signature_is_refused(server_gpg):
    armored = server_gpg.export(server_gpg.fpr)
    pkts = z.parse_packets(z.dearmor(armored)[2])
    i = [n for n, (t, _) in enumerate(pkts) if t == z.T_SIG][0]
    body = bytearray(pkts[i][1])
    body[-2] ^= 0x40
    pkts[i] = (z.T_SIG, bytes(body))
    keys = z.parse_keys(b"".join(z.packet(t, b) for t, b in pkts))
    with pytest.raises(z.InvalidServerKey):
        keys[0].check_as_server_key()


def test_secret_material_in_a_public_block_is_refused(client_key):
    with pytest.raises(z.ZtError):
        z.parse_keys(z.dearmor(client_key.export_secret())[2])


# --------------------------------------------------------------------------
# fingerprints, armor, token file, HKP retry


def test_fingerprint_parse_rule(server_gpg):
    fpr = server_gpg.fpr
    assert z.parse_fingerprint("4096R/" + fpr) == (4096, "R", fpr)
    assert z.parse_fingerprint("  2048R/%s\n" % fpr) == (2048, "R", fpr)
    for bad in ("R/" + fpr, "4096/" + fpr, "4096R" + fpr, "4096R/" + fpr + "G", ""):
        assert z.parse_fingerprint(bad) is None, bad
    k = server_gpg.key
    assert z.fingerprint_matches("2048R/" + fpr, k)
    # Case-sensitive: the hex must be upper-case, the letter R, the bits true.
    assert not z.fingerprint_matches("2048R/" + fpr.lower(), k)
    assert not z.fingerprint_matches("2048r/" + fpr, k)
    assert not z.fingerprint_matches("4096R/" + fpr, k)
    assert not z.fingerprint_matches("2048D/" + fpr, k)


def test_armor_checks(client_key):
    a = client_key.export_public()
    assert z.dearmor(a)[2] == client_key.public_packets()
    assert z.dearmor(a.replace("\n", "\r\n"))[2] == client_key.public_packets()
    crc_line = [ln for ln in a.splitlines() if re.match(r"^=[A-Za-z0-9+/]{4}$", ln)][0]
    other = "=AAAA" if crc_line != "=AAAA" else "=BBBB"
    with pytest.raises(z.ArmorError, match="CRC"):
        z.dearmor(a.replace(crc_line, other))
    with pytest.raises(z.ArmorError, match="END"):
        z.dearmor(a.replace("-----END PGP PUBLIC KEY BLOCK-----", ""))
    with pytest.raises(z.ArmorError):
        z.dearmor(a, "MESSAGE")
    with pytest.raises(z.ArmorError):
        z.dearmor("hello")


def test_token_file_is_written_at_offset_0_without_truncating(tmp_path):
    t = z.TokenFile(str(tmp_path / "token"))
    assert t.read() == ""
    t.write("a" * 64)
    assert t.read() == "a" * 64
    t.write("b" * 64)
    assert t.read() == "b" * 64
    # A shorter token leaves the tail of the old one: why tokens must all
    # have one length.
    t.write("c" * 10)
    assert t.read() == "c" * 10 + "b" * 54
    assert os.stat(t.path).st_mode & 0o777 == 0o600


def test_auth_token_absent_without_token_sync(tmp_path, server_gpg, client_key):
    c = z.Client("https://127.0.0.1:1", key=client_key, home=str(tmp_path), token_sync=False)
    assert "auth_token" not in c.request_data({})
    c = z.Client("https://127.0.0.1:1", key=client_key, home=str(tmp_path))
    assert c.request_data({})["auth_token"] == ""
    c.tokens.write("d" * 64)
    assert c.request_data({})["auth_token"] == "d" * 64
    assert "auth_token" not in c.request_data({}, auth_token=z.OMIT)


def test_dates(server_gpg):
    assert z.zdate(0) == "1970-01-01T00:00:00+0000"
    assert z.parse_date("2026-12-07T16:49:00Z") == z.parse_date("2026-12-07T16:49:00+0000")
    for bad in ("2026-12-07T16:49:00+00:00", "2026-12-07T16:49:00.123Z",
                "2026-12-07T16:49:00", "2026-12-07 16:49:00Z", None, 5):
        with pytest.raises(ValueError):
            z.parse_date(bad)


class _OneShot:
    """A plain-HTTP server on a thread answering every request with
    answer() -> (status, content type, body); records paths and bodies."""

    def __init__(self, answer):
        self.answer = answer
        self.paths = []
        self.bodies = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def _do(self):
                n = int(self.headers.get("Content-Length") or 0)
                outer.paths.append(self.path)
                outer.bodies.append(self.rfile.read(n))
                status, ctype, body = outer.answer()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _do

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_hkp_retry_rule(tmp_path, server_gpg, client_key):
    """10 tries, sleeping 1, 2, ... 10 s after each failure (~55 s), then
    "Timed out while retrieving key from server"; off unless asked for."""
    armored = server_gpg.export(server_gpg.fpr)
    answers = []
    srv = _OneShot(lambda: answers.pop(0) if answers else (404, "text/plain", b"not found"))
    slept = []
    try:
        c = z.Client(srv.url, key=client_key, home=str(tmp_path), hkp_retry=True,
                     sleep=slept.append)
        with pytest.raises(z.KeyTimeout, match="Timed out while retrieving key from server"):
            c.fetch_key(server_gpg.fpr)
        assert slept == list(range(1, 11)) and len(srv.paths) == 10
        assert srv.paths[0] == "/pks/lookup?op=get&options=mr&search=0x" + server_gpg.fpr
        # Found at the third try: the key is taken from a body the client
        # applies its regex to (HTML around it is fine).
        del slept[:], srv.paths[:]
        answers[:] = [(404, "text/plain", b""), (500, "text/plain", b"")]
        html = ("<html><pre>%s</pre></html>" % armored).encode()
        srv.answer = lambda: answers.pop(0) if answers else (200, "text/html", html)
        assert c.fetch_key(server_gpg.fpr).fpr == server_gpg.fpr
        assert slept == [1, 2] and len(srv.paths) == 3
        # Off by default: one try, no sleep.
        del slept[:], srv.paths[:]
        srv.answer = lambda: (404, "text/plain", b"")
        c2 = z.Client(srv.url, key=client_key, home=str(tmp_path), sleep=slept.append)
        with pytest.raises(z.ZtError):
            c2.fetch_key(server_gpg.fpr)
        assert slept == [] and len(srv.paths) == 1
    finally:
        srv.stop()


def test_hkp_add_form(tmp_path, client_key):
    srv = _OneShot(lambda: (200, "text/plain", b""))
    try:
        c = z.Client(srv.url, key=client_key, home=str(tmp_path))
        assert c.hkp_add().status == 200
        assert srv.paths == ["/pks/add"]
        form = z.form_decode(srv.bodies[0])
        assert list(form) == ["keytext"]
        assert z.read_key(form["keytext"]).fpr == client_key.fpr
    finally:
        srv.stop()


def test_requests_are_form_posts_to_the_action(tmp_path, server_gpg, client_key):
    srv = _OneShot(lambda: (200, "text/plain", b""))
    try:
        c = z.Client(srv.url, key=client_key, home=str(tmp_path))
        c.server_key = server_gpg.key
        c.call("entropy", {"count": 16})
        c.put(b"secret", "h1")
        c.by_url("AbC")
        assert srv.paths == ["/?a=entropy", "/?a=put", "/?d=AbC"]
        for b in srv.bodies:
            assert list(z.form_decode(b)) == ["payload"]
    finally:
        srv.stop()
