"""Registration with each kind of OpenPGP key an operator's clients make
with gpg, checked and encrypted to in the server's memory (clientkey.c,
librnp): each kind registers, its secret decrypts with gpg in the client's
own home and signs a working deposit request; keys gpg would not take (or
that cannot be encrypted to) are refused with 400 bad_pubkey and nothing is
inserted.

Uses test_api's module server, Client helper and org fixture helpers.
"""

import base64
import datetime
import json
import os
import re

import pytest

from conftest import run, tool
from test_api import Client, as_json, env, http_request, new_org, sql_quote  # noqa: F401 (env)

KINDS = [
    ("rsa2048", "rsa2048"),
    ("rsa3072", "rsa3072"),
    ("rsa4096", "rsa4096"),
    ("ed25519", "cv25519"),
    ("nistp256", "nistp256"),
    ("nistp384", "nistp384"),
]
BLOCK = "PGP PUBLIC KEY BLOCK"


@pytest.fixture(scope="module")
def org(env):
    return new_org(env.cluster, "")


# --------------------------------------------------------------------------
# helpers


def crc24(data):
    crc = 0xB704CE
    for b in data:
        crc ^= b << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def armor(data, crc=None):
    """ASCII armor of data as gpg writes it; crc overrides the checksum."""
    b64 = base64.b64encode(data).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    crc = crc24(data) if crc is None else crc
    return ("-----BEGIN %s-----\n\n%s\n=%s\n-----END %s-----\n"
            % (BLOCK, "\n".join(lines), base64.b64encode(crc.to_bytes(3, "big")).decode(),
               BLOCK))


def dearmor(text):
    body = text.split("\n\n", 1)[1].split("-----END", 1)[0]
    return base64.b64decode("".join(l for l in body.split() if not l.startswith("=")))


def subkeys(c):
    """The fingerprints of c's subkeys, in the order gpg lists them."""
    out = run([tool("gpg"), "--homedir", c.home, "--batch", "--with-colons",
               "--list-options", "show-unusable-subkeys", "--list-keys", c.keyfpr],
              check=True).stdout
    fprs, sub = [], False
    for line in out.splitlines():
        f = line.split(":")
        if f[0] in ("pub", "sub"):
            sub = f[0] == "sub"
        elif f[0] == "fpr" and sub:
            fprs.append(f[9])
    return fprs


def revoke_subkey(c, index):
    """Revoke c's subkey number index (1-based) with gpg --edit-key."""
    script = "key %d\nrevkey\ny\n0\n\ny\nsave\n" % index
    run([tool("gpg"), "--homedir", c.home, "--batch", "--pinentry-mode", "loopback",
         "--passphrase", "", "--command-fd", "0", "--status-fd", "2",
         "--edit-key", c.keyfpr], input=script, check=True)
    c.pubkey = run([tool("gpg"), "--homedir", c.home, "--batch", "--armor", "--export",
                    c.keyfpr], check=True).stdout


def add_subkey(c, algo):
    run([tool("gpg"), "--homedir", c.home, "--batch", "--passphrase", "", "--quick-add-key",
         c.keyfpr, algo, "encr", "never"], check=True)
    c.pubkey = run([tool("gpg"), "--homedir", c.home, "--batch", "--armor", "--export",
                    c.keyfpr], check=True).stdout


def packets(c, message):
    """gpg's view of an encrypted message (decrypted with c's key)."""
    proc = run([tool("gpg"), "--homedir", c.home, "--batch", "--pinentry-mode", "loopback",
                "--passphrase", "", "--show-session-key", "--list-packets"], input=message)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


def days_ago(n):
    """A --faked-system-time value n days back."""
    then = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=n)
    return then.strftime("%Y%m%dT%H%M%S")


def register_raw(env, org, pubkey):
    doc = {"org": org, "hostname": "h.example.com", "pubkey": pubkey}
    status, _, data = http_request(env.port, "POST", "/v1/register", json.dumps(doc).encode(),
                                   [("Content-Type", "application/json")])
    return status, as_json(data)


def assert_refused(env, org, pubkey, fprs=()):
    clients = env.psql("SELECT count(*) FROM clients")
    refused = env.audit_count("register", "bad_pubkey")
    status, ans = register_raw(env, org, pubkey)
    assert status == 400 and ans["code"] == "bad_pubkey", (status, ans)
    assert set(ans) == {"error", "code"}
    assert env.psql("SELECT count(*) FROM clients") == clients
    assert env.audit_count("register", "bad_pubkey") == refused + 1
    for fpr in fprs:
        assert env.psql("SELECT count(*) FROM clients WHERE fingerprint = %s"
                        % sql_quote(fpr.upper())) == "0"


# --------------------------------------------------------------------------
# each kind of key registers and works


@pytest.mark.parametrize("algo,enc", KINDS, ids=[k[0] for k in KINDS])
def test_key_kind_registers(env, registry, org, algo, enc):
    c = Client(registry, "kind-" + algo, algo=algo, enc_algo=enc)
    status, ans = c.register(env.port, org)  # decrypts the secret with gpg
    assert status == 201, ans
    assert ans["fingerprint"] == c.keyfpr.upper() and c.state == "active"
    # SEIPD with MDC (no AEAD), AES-256, to the encryption subkey.
    dump = packets(c, ans["secret"])
    assert ":encrypted data packet:" in dump and "mdc_method: 2" in dump, dump
    assert ":aead encrypted packet:" not in dump, dump
    assert re.search(r"session key: '9:[0-9A-F]{64}'", dump), dump
    [sub] = subkeys(c)
    assert re.search(r":pubkey enc packet: version 3, algo \d+, keyid %s" % sub[-16:], dump), dump
    # The secret signs requests the server accepts.
    content = os.urandom(64)
    status, dep = c.put(env.port, "kind-" + algo, content)
    assert status == 201, dep
    status, got = c.get(env.port, dep["uuid"])
    assert status == 200 and base64.b64decode(got["content"]) == content
    # Registering again: the same client, its secret encrypted again.
    first = c.secret
    status, ans = c.register(env.port, org)
    assert status == 200 and ans["state"] == "active" and c.secret == first


def test_encrypts_to_the_usable_subkey(env, registry, org):
    # Two encryption subkeys: the secret goes to the newer, as gpg's
    # would; once that one is revoked, to the older.
    c = Client(registry, "tworev", algo="ed25519", enc_algo="cv25519",
               gpg_args=["--faked-system-time", days_ago(1)])
    add_subkey(c, "cv25519")
    older, newer = subkeys(c)
    status, ans = c.register(env.port, org)
    assert status == 201, ans
    dump = packets(c, ans["secret"])
    assert "keyid %s" % newer[-16:] in dump and older[-16:] not in dump, dump
    revoke_subkey(c, 2)
    first = c.secret
    status, ans = c.register(env.port, org)
    assert status == 200 and c.secret == first, ans
    dump = packets(c, ans["secret"])
    assert "keyid %s" % older[-16:] in dump and newer[-16:] not in dump, dump


# --------------------------------------------------------------------------
# refused


def test_refuses_sign_only_key(env, registry, org):
    c = Client(registry, "ksign", algo="ed25519", encrypt_subkey=False)
    assert_refused(env, org, c.pubkey, [c.keyfpr])


def test_refuses_expired_encryption_subkey(env, registry, org):
    # Made three days ago with gpg's clock, the subkey for one day.
    c = Client(registry, "kexp", algo="ed25519", enc_algo="cv25519", enc_expire="1d",
               gpg_args=["--faked-system-time", days_ago(3)])
    assert len(subkeys(c)) == 1
    assert_refused(env, org, c.pubkey, [c.keyfpr])


def test_refuses_sha1_self_signatures(env, registry, org):
    # gpg 2.2 would still take these; RNP's default rules call a SHA-1
    # key signature made after 2024-01-19 insecure, and so does the server.
    c = Client(registry, "ksha1", algo="rsa2048", gpg_args=["--cert-digest-algo", "SHA1"])
    assert "digest algo 2," in run([tool("gpg"), "--homedir", c.home, "--batch",
                                    "--list-packets"], input=c.pubkey).stdout
    assert_refused(env, org, c.pubkey, [c.keyfpr])


def test_refuses_revoked_encryption_subkey(env, registry, org):
    c = Client(registry, "krev", algo="rsa2048")
    revoke_subkey(c, 1)
    assert_refused(env, org, c.pubkey, [c.keyfpr])


def test_refuses_two_keys(env, registry, org):
    a = Client(registry, "two-a", algo="ed25519", enc_algo="cv25519")
    b = Client(registry, "two-b", algo="ed25519", enc_algo="cv25519")
    # Two armored blocks, two keys in one block, and the same key twice
    # (gpg counts that as two as well).
    assert_refused(env, org, a.pubkey + b.pubkey, [a.keyfpr, b.keyfpr])
    assert_refused(env, org, armor(dearmor(a.pubkey) + dearmor(b.pubkey)),
                   [a.keyfpr, b.keyfpr])
    assert_refused(env, org, a.pubkey + a.pubkey, [a.keyfpr])
    # Each alone is fine.
    status, ans = a.register(env.port, org)
    assert status == 201, ans


def test_refuses_garbage_inside_armor(env, org):
    # Well-formed armor (right checksum) around bytes that are no key.
    assert_refused(env, org, armor(os.urandom(300)))
    assert_refused(env, org, armor(b"\x99" + os.urandom(200)))
    assert_refused(env, org, "-----BEGIN %s-----\n\n!!!! not base64 !!!!\n-----END %s-----\n"
                   % (BLOCK, BLOCK))


def test_refuses_bad_checksum_and_armor(env, registry, org):
    c = Client(registry, "kcrc", algo="ed25519", enc_algo="cv25519")
    data = dearmor(c.pubkey)
    assert_refused(env, org, armor(data, crc=crc24(data) ^ 1), [c.keyfpr])
    # A changed byte under the right checksum of the original.
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0x40
    assert_refused(env, org, armor(bytes(bad), crc=crc24(data)), [c.keyfpr])
    # A malformed checksum line, and no END line (gpg would read on to the
    # end of the text; like the contact page, we want the whole block).
    assert_refused(env, org, armor(data).replace("\n=", "\n=A"), [c.keyfpr])
    assert_refused(env, org, c.pubkey.split("-----END")[0], [c.keyfpr])
    # What gpg also reads: our own armor of the key, and text around it.
    status, ans = register_raw(env, org, "Hello\n" + armor(data) + "bye\n")
    assert status == 201, ans
    assert ans["fingerprint"] == c.keyfpr.upper()
