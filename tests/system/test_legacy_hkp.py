"""HKP against a real server, written to docs/legacy.md ("Transport") and
the reference (§1, §5): /pks/add and /pks/lookup over the HTTPS port, the
plain-HTTP listener HKP_PORT opens (and that it serves nothing but /pks/*),
what /pks/add refuses (size, one RSA key with an RSA encryption subkey,
no secret key, 20 keys a minute per address), lookups of the server key, of
posted and of registered clients' keys, and 404 for unknown keys.
"""

import os
import re
import subprocess

import pytest

from conftest import free_port, read_conf, tool
from legacy_env import expect, expect_refused, random_source, start_env, unique
import ztclient as z


@pytest.fixture(scope="module")
def env(registry, template):
    e, stop = start_env(registry, template, "leghkp", conf={"HKP_PORT": free_port()})
    e.hkp_port = read_conf(e.confdir)["HKP_PORT"]
    e.hkp_url = "http://127.0.0.1:%d" % e.hkp_port
    try:
        yield e
    finally:
        stop()


def served_key(resp):
    """The one key of a lookup answer, as the client's regex finds it."""
    text = resp.body.decode("utf-8", "replace")
    blocks = re.findall(z.Client.KEY_RE, text)
    assert len(blocks) == 1, "expected one armored key in the answer, got %d: %r" % (
        len(blocks), text[:300])
    return z.read_key(blocks[0])


def expect_lookup(c, fpr, what, **kw):
    resp = c.hkp_lookup(fpr, **kw)
    assert resp.status == 200, "%s: expected 200, got %r" % (what, resp)
    assert resp.headers.get("content-type", "").startswith("application/pgp-keys"), \
        "%s: expected application/pgp-keys, got %r" % (what, resp.headers)
    k = served_key(resp)
    assert k.fpr == fpr, "%s: expected key %s, got %s" % (what, fpr, k.fpr)
    return k


def expect_unknown(c, fpr, what, **kw):
    resp = c.hkp_lookup(fpr, **kw)
    assert resp.status == 404, "%s: expected 404, got %r" % (what, resp)


# --------------------------------------------------------------------------
# add and lookup


def test_add_then_lookup_over_https(env):
    c = env.client("hkp1")
    expect_unknown(c, c.fpr, "lookup before the add")
    resp = c.hkp_add()
    assert resp.status == 200, "POST /pks/add: expected 200, got %r" % resp
    k = expect_lookup(c, c.fpr, "lookup of a posted key")
    assert k.check_self_sigs() and k.encryption_key().fpr == c.key.skey.fpr


def test_add_twice_is_fine(env):
    c = env.client("hkp2")
    assert c.hkp_add().status == 200
    assert c.hkp_add().status == 200, "posting the same key again (a client retrying)"
    expect_lookup(c, c.fpr, "lookup after two adds")


def test_lookup_of_unknown_key_is_404(env):
    c = env.client("hkp3")
    expect_unknown(c, "0123456789ABCDEF0123456789ABCDEF01234567", "an unknown fingerprint")
    expect_unknown(c, c.fpr, "a key never posted")


def test_lookup_of_the_server_key(env):
    c = env.client("hkp4")
    k = expect_lookup(c, env.server.fingerprint.split("/")[1], "the server key")
    k.check_as_server_key()


def test_lookup_of_a_registered_client(env):
    org, secret = env.org(unique("hkp"))
    c = env.enrolled("hkpreg", org, secret)
    other = env.client("hkpother")
    k = expect_lookup(other, c.fpr, "another client's lookup of a registered client's key")
    assert k.qualified == c.fingerprint


# --------------------------------------------------------------------------
# the plain-HTTP listener


def test_plain_http_listener_serves_hkp(env):
    c = env.client("plain1", hkp_url=env.hkp_url)
    resp = c.hkp_add()
    assert resp.status == 200, "POST /pks/add over plain HTTP: expected 200, got %r" % resp
    expect_lookup(c, c.fpr, "lookup over plain HTTP")
    expect_lookup(c, env.server.fingerprint.split("/")[1], "the server key over plain HTTP")
    expect_unknown(c, "0123456789ABCDEF0123456789ABCDEF01234567", "unknown over plain HTTP")
    # The same store as the HTTPS port's.
    expect_lookup(c, c.fpr, "the key over HTTPS", url=env.url)


@pytest.mark.parametrize("method,target", [
    ("GET", "/?a=fingerprint"), ("GET", "/?a=pubkey"), ("POST", "/?a=register"),
    ("POST", "/?a=put"), ("POST", "/?d=" + "A" * 43), ("GET", "/v1/deposits"),
    ("POST", "/v1/register"), ("GET", "/health"), ("GET", "/"), ("GET", "/?q=" + "A" * 43),
    ("GET", "/pks"), ("GET", "/pksx/lookup?op=get&search=0x00"),
])
def test_plain_http_listener_serves_nothing_else(env, method, target):
    c = env.client("plain2")
    resp = c.http(method, target, b"" if method == "POST" else None, url=env.hkp_url)
    assert resp.status == 404, \
        "%s %s on the plain-HTTP HKP port: expected 404, got %r" % (method, target, resp)
    assert b"BEGIN PGP" not in resp.body and b"4096R/" not in resp.body


def test_plain_http_listener_does_not_speak_tls(env):
    import socket
    from conftest import no_verify_context
    import ssl
    with socket.create_connection(("127.0.0.1", env.hkp_port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, OSError)):
            no_verify_context().wrap_socket(raw, server_hostname="localhost")


# --------------------------------------------------------------------------
# what /pks/add refuses


def gpg_key(registry, algo, subalgo):
    home = registry.gnupg_home(os.path.join(registry.mkdtemp("zt-hkpgpg-"), "g"))
    os.mkdir(home, 0o700)
    gpg = [tool("gpg"), "--homedir", home, "--batch", "--pinentry-mode", "loopback",
           "--passphrase", ""]
    subprocess.run(gpg + ["--quick-gen-key", "ztrustee (client) <x@y>", algo, "sign,cert",
                          "never"], check=True, capture_output=True, timeout=300)
    out = subprocess.run(gpg + ["--with-colons", "--list-keys"], check=True,
                         capture_output=True).stdout.decode()
    fpr = [ln.split(":")[9] for ln in out.splitlines() if ln.startswith("fpr")][0]
    subprocess.run(gpg + ["--quick-add-key", fpr, subalgo, "encr", "never"], check=True,
                   capture_output=True, timeout=300)
    return fpr, subprocess.run(gpg + ["--armor", "--export", fpr], check=True,
                               capture_output=True).stdout.decode()


def big_key_text(ck, size):
    """ck's key with enough self-signed user IDs to be over size bytes,
    binary and armored."""
    uids = []
    while True:
        uids.append(("ztrustee (client %d %s) <u@h>" % (len(uids), "x" * 900)).encode())
        if len(ck.public_packets(extra_uids=uids)) > size:
            return ck.export_public(extra_uids=uids)


def refused_add(env, c, keytext, status, what, fpr=None):
    mark = env.audit_mark()
    before = env.snapshot()
    resp = c.hkp_add(keytext) if keytext is not None else c.http(
        "POST", "/pks/add", b"other=1")
    ans = c.read_answer(resp)
    expect_refused(ans, status, what)
    if fpr:
        expect_unknown(c, fpr, "lookup after the refused add (%s)" % what)
    env.unchanged(before, mark, what)


def test_add_refuses_two_keys(env):
    c = env.client("two")
    a = z.ClientKey.generate("ztrustee (client) <a@h>", 2048)
    b = z.ClientKey.generate("ztrustee (client) <b@h>", 2048)
    one_block = z.armor("PUBLIC KEY BLOCK", a.public_packets() + b.public_packets())
    refused_add(env, c, one_block, 400, "two keys in one block", a.fpr)
    refused_add(env, c, a.export_public() + b.export_public(), 400, "two armored keys", a.fpr)


def test_add_refuses_a_key_without_encryption_subkey(env):
    c = env.client("nosub")
    refused_add(env, c, c.key.export_public(subkey=False), 400, "no encryption subkey", c.fpr)


def test_add_refuses_a_secret_key(env):
    c = env.client("secret")
    refused_add(env, c, c.key.export_secret(), 400, "a secret key", c.fpr)
    disguised = c.key.export_secret().replace("PRIVATE KEY BLOCK", "PUBLIC KEY BLOCK")
    refused_add(env, c, disguised, 400, "a secret key dressed as public", c.fpr)


@pytest.mark.parametrize("algo,subalgo", [("ed25519", "cv25519"), ("dsa2048", "elg2048"),
                                          ("rsa2048", "cv25519")],
                         ids=["ecc", "dsa-elgamal", "rsa-with-ecdh-subkey"])
def test_add_refuses_non_rsa_keys(env, registry, algo, subalgo):
    c = env.client("nonrsa")
    fpr, text = gpg_key(registry, algo, subalgo)
    refused_add(env, c, text, 400, "a %s/%s key" % (algo, subalgo), fpr)


def test_add_refuses_a_broken_self_signature(env):
    c = env.client("brokensig")
    pkts = z.parse_packets(c.key.public_packets())
    sig = bytearray(pkts[2][1])
    sig[-1] ^= 1
    pkts[2] = (pkts[2][0], bytes(sig))
    text = z.armor("PUBLIC KEY BLOCK", b"".join(z.packet(t, b) for t, b in pkts))
    refused_add(env, c, text, 400, "a key whose self-signature does not verify", c.fpr)


@pytest.mark.parametrize("keytext", [
    None, "", "hello", "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n"
    "-----END PGP PUBLIC KEY BLOCK-----\n", "-----BEGIN PGP MESSAGE-----\n\nAAAA\n"
    "-----END PGP MESSAGE-----\n"],
    ids=["no-keytext", "empty", "not-armored", "garbage-key", "a-message"])
def test_add_refuses_garbage(env, keytext):
    c = env.client("garbage")
    refused_add(env, c, keytext, 400, "keytext %r" % (keytext,))


def test_add_refuses_a_key_over_64k(env):
    c = env.client("big")
    text = big_key_text(c.key, 66 * 1024)
    assert len(z.form_encode({"keytext": text})) < 128 * 1024, "the body stays under 128 KiB"
    refused_add(env, c, text, 413, "a key over 64 KiB", c.fpr)


def test_add_is_rate_limited_per_address(env):
    src = random_source()
    # 21 distinct keys (a key's fingerprint covers its creation time) from
    # one RSA pair: no minute of key generation.
    base = z.ClientKey.generate("ztrustee (client) <r@h>", 2048)
    keys = [z.ClientKey(base.primary_priv, base.sub_priv, "ztrustee (client) <r%d@h>" % i,
                        base.created - i) for i in range(21)]
    assert len({k.fpr for k in keys}) == 21
    c = env.client("rate", source=src)
    codes = [c.hkp_add(k.export_public()).status for k in keys[:20]]
    assert codes == [200] * 20, "20 adds a minute from one address: expected 200 each, " \
        "got %s" % codes
    ans = c.read_answer(c.hkp_add(keys[20].export_public()))
    expect_refused(ans, 429, "the 21st add within a minute from one address")
    expect_unknown(c, keys[20].fpr, "the refused 21st key")
    other = env.client("rate2")
    expect(other.read_answer(other.hkp_add(keys[20].export_public())), 200,
           "the same key from another address")
