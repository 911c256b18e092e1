"""Cipher policy (issue 19, item 5): the suites the server never offers
whatever SSL_CIPHERS and TLS_MIN_VERSION say, the ECDHE+AEAD default for
TLS 1.2, SHA-1 handshake signatures for TLS 1.0/1.1 only, the warning an
operator gets for asking for weak suites; checked with openssl s_client,
the operator's tool, and with testssl.sh (Debian's testssl.sh package).

The client offers weak suites at its own security level 0, so a refusal is
the server's doing, not the client's."""

import json
import os
import re
import subprocess
import time

import pytest

from conftest import give_to_service_account, run, s_client, tool, update_conf

AEAD12_ECDSA = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                "ECDHE-ECDSA-CHACHA20-POLY1305"]
AEAD12_RSA = ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
              "ECDHE-RSA-CHACHA20-POLY1305"]
TLS13 = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]
CBC_ECDSA = ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA",
             "ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384"]

# What the server never offers, as OpenSSL names the classes.  Debian's
# OpenSSL 3 has no EXPORT, LOW, RC4, DES, 3DES, SEED or IDEA suites for
# s_client to offer (those cases skip, saying so), and its one MD5 suite,
# NULL-MD5, is RSA key exchange, which no certificate here can do: testssl's
# own ClientHellos, which carry them all, check those (test_testssl_default).
WEAK = ["eNULL", "aNULL", "EXPORT", "LOW", "RC4", "DES", "3DES", "SEED", "IDEA"]

# The operator asks for everything: no encryption, no authentication, and
# OpenSSL's security level 0 (which alone allows both).
HOSTILE = "ALL:COMPLEMENTOFALL:eNULL:aNULL:@SECLEVEL=0"
# TLS 1.0/1.1 clients: lowered so only the server's policy decides.
OLD = "DEFAULT:@SECLEVEL=0"


def negotiated(port, *args):
    """(cipher, proc) of an s_client handshake; cipher None when refused."""
    proc = s_client(port, *args)
    m = re.search(r"^New, \S+, Cipher is (\S+)", proc.stdout, re.M)
    if proc.returncode != 0 or m is None or m.group(1) == "(NONE)":
        return None, proc
    return m.group(1), proc


def accepts(port, *args):
    got, proc = negotiated(port, *args)
    assert got is not None, "refused: %s\n%s\n%s" % (" ".join(args), proc.stdout[-1500:],
                                                      proc.stderr[-1500:])
    return got, proc


def refuses(port, *args):
    got, proc = negotiated(port, *args)
    assert got is None, "negotiated %s with %s\n%s" % (got, " ".join(args), proc.stdout[-1500:])


def refuses_class(port, cls, versions):
    """No suite of a weak class, over each of versions."""
    if run([tool("openssl"), "ciphers", "%s:@SECLEVEL=0" % cls]).returncode != 0:
        pytest.skip("this OpenSSL has no %s suites to offer (testssl's own "
                    "ClientHellos check them: test_testssl_default)" % cls)
    for v in versions:
        refuses(port, v, "-cipher", "%s:@SECLEVEL=0" % cls)


TO_TLS12 = ["-tls1", "-tls1_1", "-tls1_2"]


@pytest.fixture
def hostile(make_server, dbconf):
    """A server whose operator asked for weak suites and TLS 1.0."""
    update_conf(dbconf, SSL_CIPHERS=HOSTILE, TLS_MIN_VERSION="tlsv1")
    return make_server(dbconf).start()


@pytest.fixture
def legacy(make_server, dbconf):
    """TLS_MIN_VERSION tlsv1 with the default cipher list."""
    update_conf(dbconf, TLS_MIN_VERSION="tlsv1")
    return make_server(dbconf).start()


# --------------------------------------------------------------------------
# the default policy


def test_default_tls12_is_ecdhe_aead_only(server):
    for name in AEAD12_ECDSA:
        got, _ = accepts(server.port, "-tls1_2", "-cipher", name)
        assert got == name
    # CBC suites (testssl: LUCKY13) are not offered over TLS 1.2
    for name in CBC_ECDSA:
        refuses(server.port, "-tls1_2", "-cipher", name + ":@SECLEVEL=0")
    # a client offering everything gets an AEAD suite
    got, _ = accepts(server.port, "-tls1_2", "-cipher", "ALL:@SECLEVEL=0")
    assert got in AEAD12_ECDSA


def test_default_tls13_suites_unchanged(server):
    for name in TLS13:
        got, _ = accepts(server.port, "-tls1_3", "-ciphersuites", name)
        assert got == name


@pytest.mark.parametrize("cls", WEAK)
def test_weak_class_refused_default(server, cls):
    refuses_class(server.port, cls, ["-tls1_2"])


# --------------------------------------------------------------------------
# an operator asking for weak suites


@pytest.mark.parametrize("cls", WEAK)
def test_weak_class_refused_hostile(hostile, cls):
    refuses_class(hostile.port, cls, TO_TLS12)
    # while what the operator asked for otherwise still works
    for v in TO_TLS12:
        accepts(hostile.port, v, "-cipher", OLD)


def test_hostile_settings_warn(hostile):
    log = hostile.log()
    warn = [l for l in log.splitlines() if "SSL_CIPHERS" in l]
    assert warn, log
    text = "\n".join(warn)
    # names the suites left out and why, and the security level kept
    assert "ECDHE-ECDSA-NULL-SHA" in text and "AECDH-AES128-SHA" in text, text
    assert "never offered" in text, text
    assert "@SECLEVEL=0" in text, text


def test_only_weak_suites_refused_at_start(make_server, dbconf):
    # the outside test's string: DEFAULT counts only first, so this is
    # nothing but NULL and anonymous suites
    update_conf(dbconf, SSL_CIPHERS="eNULL:aNULL:DEFAULT", TLS_MIN_VERSION="tlsv1")
    srv = make_server(dbconf).spawn()
    try:
        rc = srv.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("server started with only NULL/anonymous suites:\n" + srv.log())
    log = srv.log()
    assert rc != 0, log
    assert "SSL_CIPHERS" in log and "eNULL:aNULL:DEFAULT" in log, log
    assert "never offered" in log, log
    assert "DEFAULT" in log and "first" in log, log


def test_overlong_list_refused(make_server, dbconf):
    update_conf(dbconf, SSL_CIPHERS=":".join(["ECDHE-ECDSA-AES128-GCM-SHA256"] * 200))
    srv = make_server(dbconf).spawn()
    assert srv.wait(timeout=15) != 0
    assert "SSL_CIPHERS: longer than" in srv.log(), srv.log()


def test_default_list_gives_no_warning(server):
    assert "SSL_CIPHERS" not in server.log(), server.log()


# --------------------------------------------------------------------------
# TLS 1.0 and 1.1: SHA-1 where they need it, nowhere else


def test_legacy_versions_work_with_default_list(legacy):
    for v in ("-tls1", "-tls1_1"):
        got, proc = accepts(legacy.port, v, "-cipher", OLD)
        assert got in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA"), got
    got, _ = accepts(legacy.port, "-tls1_2")
    assert got in AEAD12_ECDSA
    accepts(legacy.port, "-tls1_3")


def test_legacy_tls12_still_aead_only(legacy):
    # the CBC suites are there for TLS 1.0/1.1 clients only
    for name in CBC_ECDSA:
        refuses(legacy.port, "-tls1_2", "-cipher", name + ":@SECLEVEL=0")


@pytest.mark.parametrize("fixture", ["legacy", "hostile"])
def test_sha1_signature_only_below_tls12(request, fixture):
    srv = request.getfixturevalue(fixture)
    # TLS 1.2 with a client that accepts only SHA-1 signatures: refused
    # (security level 0 would have signed with SHA-1)
    refuses(srv.port, "-tls1_2", "-sigalgs", "ECDSA+SHA1", "-cipher", OLD)
    _, proc = accepts(srv.port, "-tls1_2", "-sigalgs", "ECDSA+SHA256:ECDSA+SHA1",
                      "-cipher", OLD)
    assert "Peer signing digest: SHA256" in proc.stdout + proc.stderr
    # TLS 1.0/1.1 sign with SHA-1: it is allowed there
    _, proc = accepts(srv.port, "-tls1", "-cipher", OLD)
    assert "Peer signing digest: SHA1" in proc.stdout + proc.stderr


def rsa_pair(confdir):
    d = os.path.join(confdir, ".ssl")
    key, cert = os.path.join(d, "rsa-pk.pem"), os.path.join(d, "rsa.pem")
    run([tool("openssl"), "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes",
         "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True)
    give_to_service_account(key, cert)
    os.chmod(key, 0o600)
    os.chmod(cert, 0o600)
    return cert, key


def test_rsa_key_legacy_and_aead(make_server, dbconf):
    # an RSA key: TLS 1.0 signs with MD5+SHA-1 (through the key process);
    # TLS 1.2 stays ECDHE-RSA with AEAD
    cert, key = rsa_pair(dbconf)
    update_conf(dbconf, SSL_CERTIFICATE=cert, SSL_PRIVATE_KEY=key, TLS_MIN_VERSION="tlsv1")
    srv = make_server(dbconf).start()
    got, _ = accepts(srv.port, "-tls1", "-cipher", OLD)
    assert got in ("ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA"), got
    got, _ = accepts(srv.port, "-tls1_2", "-cipher", "ALL:@SECLEVEL=0")
    assert got in AEAD12_RSA, got
    refuses(srv.port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA:@SECLEVEL=0")
    refuses(srv.port, "-tls1_2", "-sigalgs", "RSA+SHA1", "-cipher", OLD)
    for cls in ("eNULL", "aNULL"):
        refuses_class(srv.port, cls, TO_TLS12)


# --------------------------------------------------------------------------
# testssl.sh against the default configuration

# testssl's sections for protocols, cipher classes and the cipher
# vulnerabilities take ~50 s here; its certificate checks (--server-defaults)
# find only the self-signed certificate itself (chain of trust CRITICAL,
# ten-year validity and no CRL/OCSP URI HIGH) and are left out, as are the
# vulnerabilities that are not about the cipher list (Heartbleed, ROBOT...).


def test_testssl_default(server, registry):
    out = os.path.join(registry.mkdtemp("testssl-"), "testssl.json")
    t0 = time.monotonic()
    proc = run([tool("testssl"), "--quiet", "--color", "0", "--warnings", "off",
                "--sneaky", "--ip", "127.0.0.1", "--protocols", "--std",
                "--rc4", "--lucky13", "--sweet32", "--freak", "--logjam", "--beast",
                "--jsonfile", out,
                "localhost:%d" % server.port], timeout=300)
    took = time.monotonic() - t0
    with open(out) as f:
        findings = json.load(f)
    # what it found above OK and INFO, for the record (pytest -s)
    print("testssl took %.0f s" % took)
    for f in findings:
        if f.get("severity") not in ("OK", "INFO"):
            print("testssl: %s %s: %s" % (f.get("severity"), f["id"], f.get("finding")))
    assert len(findings) > 20, proc.stdout[-3000:]
    bad = [f for f in findings if f.get("severity") in ("MEDIUM", "HIGH", "CRITICAL")]
    assert not bad, json.dumps(bad, indent=1)
    # the classes themselves, by testssl's own ClientHellos
    by_id = {f["id"]: f for f in findings}
    for fid in ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT",
                "cipherlist_LOW", "cipherlist_3DES_IDEA", "cipherlist_AVERAGE",
                "RC4", "LUCKY13", "SWEET32", "FREAK", "LOGJAM", "BEAST",
                "SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert fid in by_id, fid
        assert by_id[fid]["severity"] in ("OK", "INFO"), by_id[fid]
