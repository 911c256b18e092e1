"""The key process (src/server/keyproc*.c): the serving process never holds
a private key.

After TLS handshakes and an admin mail signed by the server, the memory of
the serving process (every readable mapping of /proc/PID/maps, read through
/proc/PID/mem) must hold neither the TLS private key nor the server's
OpenPGP secret keys, while the key process's memory does (the control that
shows the search finds them).  The values come from the test's own copies:
`openssl pkey -text` of the TLS key file and `gpg --export-secret-keys` of a
copy of the config dir, parsed here (RFC 4880 secret-key packets).
OpenSSL keeps big numbers as little-endian words, so each value is looked
for in both byte orders.

Also: killing the key process makes the server exit non-zero at once with a
log line naming it; an RSA TLS key (ktadmin init --tls-key rsa) serves TLS
1.2 and 1.3 through it, without RSA key exchange; SIGHUP reloads move
between key types."""

import os
import re
import signal
import subprocess
import time

import pytest

from conftest import (copy_confdir, ktadmin, live_processes_mentioning, read_conf, run,
                      s_client, tls_connects, tool, update_conf, wait_for)
from test_mail import MailEnv, Sink

WINDOW = 24  # bytes of each value looked for: 2^-192 by chance


# --------------------------------------------------------------------------
# the secret values


def _hexblock(text, label):
    """The colon-separated hex block after 'label:' in openssl -text output."""
    m = re.search(r"^%s:?\s*\n((?:\s+[0-9a-f:]+\n)+)" % re.escape(label), text, re.M)
    assert m, "no %s in:\n%s" % (label, text)
    return int(re.sub(r"[^0-9a-f]", "", m.group(1)), 16)


def tls_secrets(keyfile):
    """The TLS key's private values: EC scalar, or RSA d, p, q."""
    text = run([tool("openssl"), "pkey", "-in", keyfile, "-text", "-noout"],
               check=True).stdout
    if "priv:" in text:
        return {"TLS EC private scalar": _hexblock(text, "priv")}
    return {"TLS RSA d": _hexblock(text, "privateExponent"),
            "TLS RSA p": _hexblock(text, "prime1"),
            "TLS RSA q": _hexblock(text, "prime2")}


def _packets(data):
    off = 0
    while off < len(data):
        b = data[off]
        assert b & 0x80, "not OpenPGP at %d" % off
        if b & 0x40:
            tag, l1 = b & 0x3F, data[off + 1]
            if l1 < 192:
                hl, n = 2, l1
            elif l1 < 224:
                hl, n = 3, ((l1 - 192) << 8) + data[off + 2] + 192
            else:
                assert l1 == 255
                hl, n = 6, int.from_bytes(data[off + 2:off + 6], "big")
        else:
            tag, lt = (b >> 2) & 0xF, b & 3
            hl = {0: 2, 1: 3, 2: 5}[lt]
            n = int.from_bytes(data[off + 1:off + hl], "big")
        yield tag, data[off + hl:off + hl + n]
        off += hl + n


def _mpis(body, off, count):
    out = []
    for _ in range(count):
        bits = int.from_bytes(body[off:off + 2], "big")
        n = (bits + 7) // 8
        out.append(int.from_bytes(body[off + 2:off + 2 + n], "big"))
        off += 2 + n
    return out, off


def pgp_secrets(registry, confdir):
    """d, p, q of the OpenPGP primary and subkey, from a copy's export, and
    the data key (which the serving process is meant to hold)."""
    home = copy_confdir(registry, confdir, "kp-export")
    gpg = [tool("gpg"), "--homedir", home, "--batch", "--pinentry-mode", "loopback",
           "--passphrase", ""]
    try:
        proc = subprocess.run(gpg + ["--export-secret-keys"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=60)
        assert proc.returncode == 0 and proc.stdout, proc.stderr.decode()
        dk = subprocess.run(gpg + ["--decrypt", os.path.join(home, "datakey.gpg")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert dk.returncode == 0 and len(dk.stdout) == 32, dk.stderr.decode()
    finally:
        registry.kill_gnupg(home)
    found = {}
    for tag, body in _packets(proc.stdout):
        if tag not in (5, 7):
            continue
        assert body[0] == 4 and body[5] == 1, "not a v4 RSA key"
        _, off = _mpis(body, 6, 2)          # n, e
        assert body[off] == 0, "protected secret key"
        (d, p, q, _u), _ = _mpis(body, off + 1, 4)
        name = "OpenPGP primary" if tag == 5 else "OpenPGP subkey"
        found.update({name + " d": d, name + " p": p, name + " q": q})
    assert len(found) == 6, found.keys()
    return found, dk.stdout


def patterns(value):
    """The value's lowest and highest WINDOW bytes as OpenSSL's words keep
    them (little-endian) and as a buffer would (big-endian)."""
    n = (value.bit_length() + 7) // 8
    le = value.to_bytes(n, "little")
    be = value.to_bytes(n, "big")
    return [le[:WINDOW], be[:WINDOW]]


# --------------------------------------------------------------------------
# process memory


def read_memory(pid):
    """Every readable mapping of pid, as a list of bytes."""
    chunks = []
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            perms = fields[1]
            path = fields[5] if len(fields) > 5 else ""
            if perms[0] != "r" or path in ("[vvar]", "[vsyscall]"):
                continue
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(lo)
                chunks.append(mem.read(hi - lo))
            except OSError:
                continue
    assert chunks, "nothing readable in pid %d" % pid
    return chunks


def held(chunks, secrets):
    """Names of the secrets any of whose patterns is in the memory."""
    out = set()
    for name, value in secrets.items():
        for pat in patterns(value):
            if any(pat in c for c in chunks):
                out.add(name)
                break
    return out


def keyproc_pid(srv):
    m = wait_for(lambda: re.search(r"key process \(pid (\d+)\) holds", srv.log()),
                 what="the key process's start line")
    pid = int(m.group(1))
    with open("/proc/%d/status" % pid) as f:
        assert re.search(r"^PPid:\s+%d$" % srv.proc.pid, f.read(), re.M)
    return pid


def handshakes(port, n=4):
    for args in (["-tls1_3"], ["-tls1_2"]) * (n // 2):
        proc = s_client(port, *args)
        assert proc.returncode == 0 and "Cipher is (NONE)" not in proc.stdout, \
            proc.stdout[-1500:] + proc.stderr[-1500:]


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def rsa_template(registry):
    """A conf dir made with ktadmin init --tls-key rsa."""
    parent = registry.mkdtemp("rsa-template-")
    confdir = registry.gnupg_home(os.path.join(parent, "conf"))
    old = os.umask(0o022)
    try:
        proc = ktadmin("init", "--confdir", confdir, "--hostname", "localhost",
                       "--tls-key", "rsa", timeout=300)
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return confdir


def tls_key_file(confdir):
    p = read_conf(confdir)["SSL_PRIVATE_KEY"]
    return p if os.path.isabs(p) else os.path.join(confdir, p)


def check_memory(registry, srv):
    secrets = tls_secrets(tls_key_file(srv.confdir))
    pgp, datakey = pgp_secrets(registry, srv.confdir)
    secrets.update(pgp)
    kp = keyproc_pid(srv)
    serving_mem = read_memory(srv.proc.pid)
    serving = held(serving_mem, secrets)
    keyproc = held(read_memory(kp), secrets)
    # The controls first: the search finds every value where it is, and
    # reads the serving process (which holds the data key, by design).
    assert keyproc == set(secrets), "not found in the key process: %s" % (
        set(secrets) - keyproc)
    assert any(datakey in c for c in serving_mem), "data key not found"
    assert not serving, "the serving process holds: %s" % sorted(serving)


# --------------------------------------------------------------------------


def test_serving_process_holds_no_private_key(registry, session_db, make_server, dbconf):
    sink = Sink(registry)
    sink.start()
    try:
        update_conf(dbconf, HOSTNAME="localhost",
                    MAIL_URL="smtp://127.0.0.1:%d" % sink.port)
        srv = make_server(dbconf).start()
        handshakes(srv.port)
        env = MailEnv(registry, session_db.cluster, dbconf, sink, srv)
        env.add("kpmem", "kp@example.com")
        m = sink.wait_to("kp@example.com")[0]
        # signed in the serving process, by the key process, for gpg
        assert "administrator contact" in env.verify(m["body"])
        check_memory(registry, srv)
        # no gpg-agent was started for the mail
        assert not [p for p in live_processes_mentioning(dbconf) if "gpg-agent" in p and
                    re.search(r"--homedir %s( |$)" % re.escape(dbconf), p)]
    finally:
        sink.stop()


def test_rsa_tls_key_through_the_key_process(registry, make_server, rsa_template):
    confdir = copy_confdir(registry, rsa_template, "rsasrv")
    srv = make_server(confdir).start()
    for v in ("-tls1_3", "-tls1_2"):
        proc = s_client(srv.port, v)
        assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
        assert "Peer signature type: RSA-PSS" in proc.stdout + proc.stderr
    # PKCS#1 v1.5 signatures (TLS 1.2 clients that offer only those)
    proc = s_client(srv.port, "-tls1_2", "-sigalgs", "RSA+SHA256")
    assert proc.returncode == 0, proc.stdout[-1500:]
    assert re.search(r"Peer signature type: RSA\s*$", proc.stdout + proc.stderr, re.M)
    # no RSA key exchange: the key process cannot do it (see tls.c)
    proc = s_client(srv.port, "-tls1_2", "-cipher", "AES128-SHA")
    assert proc.returncode != 0 or "Cipher is (NONE)" in proc.stdout
    assert srv.running()
    check_memory(registry, srv)


def test_rsa_key_with_only_krsa_ciphers_is_refused(registry, make_server, rsa_template):
    confdir = copy_confdir(registry, rsa_template, "rsakrsa")
    update_conf(confdir, SSL_CIPHERS="AES128-SHA:AES256-SHA")
    srv = make_server(confdir).spawn()
    rc = srv.wait(timeout=20)
    assert rc != 0
    log = srv.log()
    assert "SSL_CIPHERS" in log and "kRSA" in log, log


def test_kill_key_process_stops_the_server(make_server, dbconf):
    srv = make_server(dbconf).start()
    kp = keyproc_pid(srv)
    handshakes(srv.port, 2)
    t0 = time.monotonic()
    os.kill(kp, signal.SIGKILL)
    rc = srv.wait(timeout=5)
    assert time.monotonic() - t0 < 5
    assert rc != 0
    lines = [l for l in srv.log().splitlines()
             if "key process (pid %d)" % kp in l and "exiting" in l]
    # SIGCHLD says how it died; a worker whose call failed first says so
    assert len(lines) == 1 and lines[0].endswith("; exiting"), srv.log()
    assert "killed by signal 9" in lines[0] or "closed its channel" in lines[0]
    assert not tls_connects(srv.port)


def test_server_stop_ends_the_key_process(make_server, dbconf):
    srv = make_server(dbconf).start()
    kp = keyproc_pid(srv)
    assert srv.stop() == 0
    wait_for(lambda: not os.path.exists("/proc/%d" % kp) or
             open("/proc/%d/stat" % kp).read().rsplit(")", 1)[1].split()[0] == "Z",
             timeout=5, what="the key process to end")


def test_key_process_is_not_dumpable(make_server, dbconf):
    srv = make_server(dbconf).start()
    kp = keyproc_pid(srv)
    # PR_SET_DUMPABLE 0 makes /proc/PID files root's
    st = os.stat("/proc/%d/mem" % kp)
    assert st.st_uid == 0, st
    with open("/proc/%d/comm" % kp) as f:
        assert f.read().strip() == "kt-keyproc"


def _status(pid, field):
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"^%s:\s+(.*)$" % field, f.read(), re.M)
    assert m, "no %s in /proc/%d/status" % (field, pid)
    return m.group(1).split()


def test_no_new_privileges_after_dropping_root(make_server, dbconf):
    """Started as root, the server and its key process run as the
    keytrustee account with PR_SET_NO_NEW_PRIVS: nothing they run can gain
    privileges again (a setuid program would run as the account)."""
    import pwd
    assert os.geteuid() == 0, "this test starts the server as root"
    account = pwd.getpwnam("keytrustee").pw_uid
    assert os.stat(dbconf).st_uid == account
    srv = make_server(dbconf).start()
    for pid in (srv.proc.pid, keyproc_pid(srv)):
        assert _status(pid, "Uid") == [str(account)] * 4, pid
        assert _status(pid, "NoNewPrivs") == ["1"], pid


def test_sighup_moves_between_key_types(registry, make_server, dbconf, rsa_template):
    srv = make_server(dbconf).start()
    ec = {k: read_conf(dbconf)[k] for k in ("SSL_CERTIFICATE", "SSL_PRIVATE_KEY")}
    # the RSA pair of the other template, copied in beside the EC one
    rsa = {}
    for k, name in (("SSL_CERTIFICATE", "rsa-cert.pem"), ("SSL_PRIVATE_KEY", "rsa-pk.pem")):
        src = read_conf(rsa_template)[k]
        src = src if os.path.isabs(src) else os.path.join(rsa_template, src)
        dst = os.path.join(dbconf, ".ssl", name)
        run(["cp", "-p", src, dst], check=True)
        rsa[k] = dst
    for conf, sigtype in ((rsa, "RSA-PSS"), (ec, "ECDSA"), (rsa, "RSA-PSS")):
        update_conf(dbconf, **conf)
        before = srv.log().count("SIGHUP: reloaded")
        srv.signal(signal.SIGHUP)
        wait_for(lambda: srv.log().count("SIGHUP: reloaded") > before, timeout=10,
                 what="the reload")
        for v in ("-tls1_3", "-tls1_2"):
            proc = s_client(srv.port, v)
            assert proc.returncode == 0, proc.stdout[-1500:]
            assert "Peer signature type: %s" % sigtype in proc.stdout + proc.stderr
    assert srv.running()
