"""Interoperability of the legacy protocol's OpenPGP messages
(src/common/pgpmsg*.c) with real GnuPG and librnp (the rnp CLI).

``build/tests/pgpmsg_tool`` (tests/unit/pgpmsg_tool.c) plays the server: it
reads the binary export of a throwaway unprotected key as the key process
does and answers the RSA callbacks.  Two throwaway GnuPG homes, a server
(RSA primary S+E, RSA encryption subkey) and a client shaped like the
zTrustee client's key (RSA primary C+S, RSA encryption subkey), and rnp
homes holding the same keys, are made once for the module.

Directions proved:
- requests: gpg writes SEIPD (tag 18, MDC) and, with --rfc2440, tag 9 (no
  MDC) messages as the zTrustee client does (ZLIB, one-pass signature,
  SHA-512), to the server's subkey or primary, with AES-128/192/256,
  definite or partial lengths; rnp writes SEIPD.  pgpmsg decrypts them,
  and gpg and rnp verify the client's signature on the packets it returns.
- answers: pgpmsg_sign + pgpmsg_encrypt (plain and ZLIB) are decrypted and
  verified by gpg (GOODSIG, GOODMDC) and rnp; pgpmsg_detached signatures
  verify with gpg and rnp, and fail on other data.
- public keys: pgpmsg_pubkey_parse reads gpg's exports, armored or not,
  with gpg's fingerprints and the encryption subkey gpg would use.
"""

import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, tool

TOOL = os.path.join(ROOT, "build", "tests", "pgpmsg_tool")
REQUEST = b'{"version": "ztrustee v3.5.0-b4", "sig_fingerprint": "x"}'


def sh(argv, input=None, timeout=120):
    """Run argv with bytes in and out; never hang."""
    return subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout,
                          stdin=None if input is not None else subprocess.DEVNULL)


def ok(proc):
    assert proc.returncode == 0, "%s exited %d:\n%s" % (
        " ".join(map(str, proc.args)), proc.returncode,
        proc.stderr.decode(errors="replace"))
    return proc


class Keys:
    pass


def gpg(home, *args, input=None):
    return sh([tool("gpg"), "--homedir", home, "--batch", "--yes",
               "--trust-model", "always", "--status-fd", "2"] + list(args),
              input=input)


def colons(home, secret=False):
    """(primary fpr, [subkey fprs]) of the one key in home."""
    out = ok(gpg(home, "--with-colons", "-K" if secret else "-k")).stdout
    fprs, prim = [], None
    for line in out.decode().splitlines():
        f = line.split(":")
        if f[0] in ("pub", "sec", "sub", "ssb"):
            kind = f[0]
        elif f[0] == "fpr":
            if kind in ("pub", "sec"):
                prim = f[9]
            else:
                fprs.append(f[9])
    return prim, fprs


@pytest.fixture(scope="module")
def keys(registry):
    if not os.access(TOOL, os.X_OK):
        pytest.fail("%s is not built (make %s)" % (TOOL, "build/tests/pgpmsg_tool"))
    tool("rnp")
    tool("rnpkeys")
    k = Keys()
    k.base = registry.mkdtemp("pgpmsg-")
    k.srv = registry.gnupg_home(os.path.join(k.base, "srv"))
    k.cli = registry.gnupg_home(os.path.join(k.base, "cli"))
    for home, uid, usage in ((k.srv, "kts <kts@example.com>", "sign,encr"),
                             (k.cli, "ztrustee (client) <root@host>", "sign")):
        os.mkdir(home, 0o700)
        ok(gpg(home, "--passphrase", "", "--quick-gen-key", uid, "rsa2048",
               usage, "never"))
        prim, _ = colons(home)
        ok(gpg(home, "--passphrase", "", "--quick-add-key", prim, "rsa2048",
               "encr", "never"))
    k.sfp, (k.ssub,) = colons(k.srv)
    k.cfp, (k.csub,) = colons(k.cli)
    k.path = lambda name: os.path.join(k.base, name)
    # What the server and the client hold of each other.
    with open(k.path("srv.sec"), "wb") as f:
        f.write(ok(gpg(k.srv, "--export-secret-keys", k.sfp)).stdout)
    for home, name in ((k.srv, "srv"), (k.cli, "cli")):
        with open(k.path(name + ".pub"), "wb") as f:
            f.write(ok(gpg(home, "--armor", "--export")).stdout)
        with open(k.path(name + ".pub.bin"), "wb") as f:
            f.write(ok(gpg(home, "--export")).stdout)
    with open(k.path("cli.sec.asc"), "wb") as f:
        f.write(ok(gpg(k.cli, "--armor", "--export-secret-keys")).stdout)
    ok(gpg(k.cli, "--import", k.path("srv.pub")))
    ok(gpg(k.srv, "--import", k.path("cli.pub")))
    # rnp: the client's home (its secret, the server's key), the server's
    # (the client's key, to verify requests).
    k.rnpcli, k.rnpsrv = k.path("rnpcli"), k.path("rnpsrv")
    for home, files in ((k.rnpcli, ("cli.sec.asc", "srv.pub")),
                        (k.rnpsrv, ("cli.pub",))):
        os.mkdir(home, 0o700)
        for name in files:
            ok(sh([tool("rnpkeys"), "--homedir", home, "--import",
                   k.path(name)]))
    try:
        yield k
    finally:
        for home in (k.srv, k.cli):
            registry.kill_gnupg(home)
        shutil.rmtree(k.base, ignore_errors=True)


def decrypt(k, msg):
    """pgpmsg_decrypt of msg: (packets, integrity, key ID used)."""
    p = ok(sh([TOOL, "decrypt", k.path("srv.sec"), k.ssub], input=msg))
    err = p.stderr.decode()
    integrity = int(re.search(r"^integrity=(\d)$", err, re.M).group(1))
    keyid = re.search(r"^keyid=([0-9A-F]{16})$", err, re.M).group(1)
    return p.stdout, integrity, keyid


def packet_tags(k, msg):
    """gpg --list-packets of msg: [(tag, partial?, mdc?)] of the top level."""
    out = sh([tool("gpg"), "--homedir", k.cli, "--batch", "--list-packets"],
             input=msg).stdout.decode(errors="replace")
    return [(int(m.group(1)), "partial" in m.group(0))
            for m in re.finditer(r"^# off=\d+ ctb=\w+ tag=(\d+) .*$", out, re.M)]


def gpg_verifies(k, packets, data):
    """The server's gpg verifies the client's signed packets."""
    p = gpg(k.srv, "--decrypt", input=packets)
    status = p.stderr.decode(errors="replace")
    assert p.returncode == 0, status
    assert p.stdout == data
    assert "[GNUPG:] VALIDSIG %s " % k.cfp in status, status


def rnp_decrypts(k, home, blob, data, signer):
    """librnp (rnp in one of the rnp homes) reads blob, a signed message
    or packets, as data with a good signature by signer (a fingerprint)."""
    src = k.path("blob")
    with open(src, "wb") as f:
        f.write(blob)
    p = sh([tool("rnp"), "--homedir", home, "--decrypt", src,
            "--output", "-"])
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, err
    assert p.stdout == data
    assert "Good signature" in err and signer[-16:].lower() in err, err


# --------------------------------------------------------------------------
# public keys


@pytest.mark.parametrize("name", ["srv.pub", "cli.pub", "cli.pub.bin"])
def test_pubkey_of_gpg_export(keys, name):
    out = ok(sh([TOOL, "pubkey", keys.path(name)])).stdout.decode()
    prim, sub = (keys.sfp, keys.ssub) if name.startswith("srv") else \
        (keys.cfp, keys.csub)
    assert out.splitlines() == [
        "primary " + prim,
        "subkey %s 12" % sub,    # gpg's "encr": both encryption flags
        "encrypt " + sub,
    ]


# --------------------------------------------------------------------------
# requests: gpg and rnp write, pgpmsg decrypts


@pytest.mark.parametrize("cipher,algo", [("AES", 7), ("AES192", 8), ("AES256", 9)])
@pytest.mark.parametrize("to_primary", [False, True])
def test_gpg_seipd_request(keys, cipher, algo, to_primary):
    rcpt = keys.sfp + "!" if to_primary else keys.sfp
    p = gpg(keys.cli, "--armor", "--emit-version", "--cipher-algo", cipher,
            "--compress-algo", "zlib", "--digest-algo", "SHA512",
            "-u", keys.cfp, "-r", rcpt, "--sign", "--encrypt", input=REQUEST)
    msg = ok(p).stdout
    assert b"\nVersion: GnuPG" in msg  # an armor header to skip
    # gpg's own reading of it: tag 18 with the cipher asked for
    st = gpg(keys.srv, "--decrypt", input=msg).stderr.decode()
    assert "[GNUPG:] DECRYPTION_INFO 2 %d" % algo in st, st
    packets, integrity, keyid = decrypt(keys, msg)
    assert integrity == 1
    assert keyid == (keys.sfp if to_primary else keys.ssub)[-16:]
    gpg_verifies(keys, packets, REQUEST)
    rnp_decrypts(keys, keys.rnpsrv, packets, REQUEST, keys.cfp)


@pytest.mark.parametrize("cipher", ["AES", "AES256"])
def test_gpg_tag9_request(keys, cipher):
    """The zTrustee client's shape: --rfc2440 makes gpg write tag 9."""
    p = gpg(keys.cli, "--rfc2440", "--armor", "--cipher-algo", cipher,
            "--compress-algo", "zlib", "--digest-algo", "SHA512",
            "-u", keys.cfp, "-r", keys.sfp + "!", "--sign", "--encrypt",
            input=REQUEST)
    msg = ok(p).stdout
    assert [t for t, _ in packet_tags(keys, msg)] == [1, 9]
    packets, integrity, keyid = decrypt(keys, msg)
    assert integrity == 0
    assert keyid == keys.sfp[-16:]
    gpg_verifies(keys, packets, REQUEST)
    rnp_decrypts(keys, keys.rnpsrv, packets, REQUEST, keys.cfp)


@pytest.mark.parametrize("compat,tag", [([], 18), (["--rfc2440"], 9)])
def test_gpg_partial_lengths(keys, compat, tag):
    """From a pipe gpg streams the encrypted packet in partial lengths."""
    data = os.urandom(300 * 1024)
    p = gpg(keys.cli, *compat, "--cipher-algo", "AES256", "-z", "0",
            "-u", keys.cfp, "-r", keys.sfp, "--sign", "--encrypt", input=data)
    msg = ok(p).stdout
    tags = packet_tags(keys, msg)
    assert tags[-1] == (tag, True), tags
    packets, integrity, _ = decrypt(keys, msg)
    assert integrity == (tag == 18)
    gpg_verifies(keys, packets, data)


def test_rnp_request(keys):
    src = keys.path("request.json")
    with open(src, "wb") as f:
        f.write(REQUEST)
    p = sh([tool("rnp"), "--homedir", keys.rnpcli, "--encrypt", "--sign",
            "-r", keys.sfp, "-u", keys.cfp, "--zlib", "--armor", "--cipher",
            "AES256", src, "--output", "-"])
    msg = ok(p).stdout
    assert msg.startswith(b"-----BEGIN PGP MESSAGE-----")
    packets, integrity, _ = decrypt(keys, msg)
    assert integrity == 1
    gpg_verifies(keys, packets, REQUEST)


def test_tampered_requests(keys):
    """A flipped bit: the MDC refuses tag 18; for tag 9 (no MDC) only the
    signature inside can tell, and it does."""
    for compat in ([], ["--rfc2440"]):
        msg = bytearray(ok(gpg(keys.cli, *compat, "--cipher-algo", "AES256",
                               "-u", keys.cfp, "-r", keys.sfp, "--sign",
                               "--encrypt", input=REQUEST * 20)).stdout)
        msg[-60] ^= 0x04
        p = sh([TOOL, "decrypt", keys.path("srv.sec"), keys.ssub],
               input=bytes(msg))
        if not compat:
            assert p.returncode == 1
            assert b"modification detection code" in p.stderr
            continue
        assert p.returncode == 0, p.stderr
        v = gpg(keys.srv, "--decrypt", input=p.stdout)
        assert b"[GNUPG:] GOODSIG" not in v.stderr
        assert v.returncode != 0


def test_request_to_another_key(keys):
    msg = ok(gpg(keys.cli, "-r", keys.cfp, "--encrypt", input=REQUEST)).stdout
    p = sh([TOOL, "decrypt", keys.path("srv.sec"), keys.ssub], input=msg)
    assert p.returncode == 1
    assert b"error: decrypt: no PKESK of the message could be decrypted: " \
        b"not a key of this server" in p.stderr


# --------------------------------------------------------------------------
# answers: pgpmsg writes, gpg and rnp read


@pytest.mark.parametrize("zlib", [False, True])
@pytest.mark.parametrize("size", [20, 200 * 1024])
def test_answer_read_by_gpg_and_rnp(keys, zlib, size):
    data = b'{"status": 200}' if size == 20 else os.urandom(size)
    argv = [TOOL, "answer", keys.path("srv.sec"), keys.ssub,
            keys.path("cli.pub")] + (["zlib"] if zlib else [])
    msg = ok(sh(argv, input=data)).stdout
    assert msg.startswith(b"-----BEGIN PGP MESSAGE-----\nVersion: keytrustee\n\n")
    # to the client's encryption subkey, in a SEIPD with MDC
    st = gpg(keys.cli, "--list-packets", input=msg).stdout.decode()
    assert ":pubkey enc packet: version 3, algo 1, keyid %s" % keys.csub[-16:] in st
    p = gpg(keys.cli, "--decrypt", input=msg)
    status = p.stderr.decode(errors="replace")
    assert p.returncode == 0, status
    assert p.stdout == data
    for want in ("[GNUPG:] DECRYPTION_INFO 2 9",  # MDC, AES-256
                 "[GNUPG:] GOODSIG %s " % keys.sfp[-16:],
                 "[GNUPG:] VALIDSIG %s " % keys.sfp,
                 "[GNUPG:] DECRYPTION_OKAY", "[GNUPG:] GOODMDC"):
        assert want in status, status
    rnp_decrypts(keys, keys.rnpcli, msg, data, keys.sfp)


def test_detached_signature(keys):
    payload = b'{"verified": "true", "next_token": null}'
    sig = ok(sh([TOOL, "detach", keys.path("srv.sec"), keys.ssub],
                input=payload)).stdout
    assert sig.startswith(b"-----BEGIN PGP SIGNATURE-----\n\n")
    for name, data in (("payload", payload), ("other", payload + b" ")):
        with open(keys.path(name), "wb") as f:
            f.write(data)
    with open(keys.path("payload.sig"), "wb") as f:
        f.write(sig)
    st = gpg(keys.cli, "--verify", keys.path("payload.sig"), keys.path("payload"))
    assert st.returncode == 0
    assert b"[GNUPG:] VALIDSIG %s " % keys.sfp.encode() in st.stderr
    # the detached signature of type binary, SHA-512
    assert re.search(rb"VALIDSIG \w+ \S+ \d+ 0 4 0 1 10 00 ", st.stderr)
    st = gpg(keys.cli, "--verify", keys.path("payload.sig"), keys.path("other"))
    assert st.returncode != 0 and b"[GNUPG:] BADSIG" in st.stderr
    for name, good in (("payload", True), ("other", False)):
        p = sh([tool("rnp"), "--homedir", keys.rnpcli, "--verify",
                keys.path("payload.sig"), "--source", keys.path(name)])
        err = p.stderr.decode(errors="replace")
        assert (p.returncode == 0) == good, err
        assert ("Signature(s) verified successfully" in err) == good, err
