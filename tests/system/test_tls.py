"""TLS policy: minimum version, ciphers, certificate replacement (the guide's
"Replacing Key Trustee Server Certificates"), SIGHUP reload, and the
configurations the server must refuse."""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import (cert_fingerprint, free_port, give_to_service_account, read_conf, run, s_client,
                      served_cert_fingerprint, tool, update_conf, write_conf)

PASSWORD = "password"

CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_inter]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def openssl(*args, cwd=None):
    return run([tool("openssl")] + list(args), check=True, cwd=cwd)


class PKI:
    """A test root CA, an intermediate CA, and server pairs signed by them."""

    def __init__(self, d):
        self.d = d
        self.cnf = self.p("ca.cnf")
        with open(self.cnf, "w") as f:
            f.write(CNF)
        self.serial = 1000
        # root CA key + self-signed cert
        self.root_key, self.root = self.p("root.key"), self.p("root.pem")
        openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.root_key,
                "-out", self.root, "-days", "30", "-subj", "/CN=KTS Test Root CA",
                "-config", self.cnf, "-extensions", "v3_root")
        # intermediate CA signed by the root
        self.inter_key, self.inter = self.p("inter.key"), self.p("inter.pem")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", self.inter_key)
        self.sign(self.inter_key, self.inter, "/CN=KTS Test Intermediate CA",
                  self.root, self.root_key, "v3_inter")
        # the guide's case: a password-protected key, a CSR, signed by the CA
        self.enc_key, self.enc_cert = self.p("new-pk.pem"), self.p("new.pem")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-aes256", "-pass", "pass:" + PASSWORD, "-out", self.enc_key)
        self.sign(self.enc_key, self.enc_cert, "/CN=localhost", self.root,
                  self.root_key, "v3_server", passin=PASSWORD)
        # an unencrypted pair signed by the root (SIGHUP in place)
        self.plain_key, self.plain_cert = self.p("plain-pk.pem"), self.p("plain.pem")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", self.plain_key)
        self.sign(self.plain_key, self.plain_cert, "/CN=localhost", self.root,
                  self.root_key, "v3_server")
        # a pair signed by the intermediate (chain via SSL_CA)
        self.leaf_key, self.leaf_cert = self.p("leaf-pk.pem"), self.p("leaf.pem")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", self.leaf_key)
        self.sign(self.leaf_key, self.leaf_cert, "/CN=localhost", self.inter,
                  self.inter_key, "v3_server")
        # a stray key that matches no certificate
        self.stray_key = self.p("stray-pk.pem")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", self.stray_key)
        for name in os.listdir(d):
            os.chmod(self.p(name), 0o600)

    def p(self, name):
        return os.path.join(self.d, name)

    def sign(self, key, out, subj, ca, ca_key, ext, passin=None):
        csr = out + ".csr"
        args = ["req", "-new", "-key", key, "-subj", subj, "-config", self.cnf, "-out", csr]
        if passin:
            args += ["-passin", "pass:" + passin]
        openssl(*args)
        self.serial += 1
        openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                "-set_serial", str(self.serial), "-days", "30", "-sha256",
                "-extfile", self.cnf, "-extensions", ext, "-out", out)


@pytest.fixture(scope="module")
def pki(registry):
    return PKI(registry.mkdtemp("pki-"))


def handshake_ok(proc):
    out = proc.stdout
    return proc.returncode == 0 and ("Protocol  : TLS" in out or "New, TLS" in out)


def expect_handshake(port, *args, ok=True):
    proc = s_client(port, *args)
    if ok:
        assert handshake_ok(proc), "handshake %s failed:\n%s\n%s" % (
            " ".join(args), proc.stdout[-2000:], proc.stderr[-2000:])
    else:
        assert not handshake_ok(proc), "handshake %s succeeded:\n%s" % (
            " ".join(args), proc.stdout[-2000:])
    return proc


# Older protocols need SHA-1 and so are refused by the client's default
# security level in OpenSSL 3: lower it so only the server's policy decides.
OLD = ["-cipher", "DEFAULT@SECLEVEL=0"]


# --------------------------------------------------------------------------
# minimum version and ciphers


def test_default_policy_versions(server):
    expect_handshake(server.port, "-tls1_3")
    expect_handshake(server.port, "-tls1_2")
    expect_handshake(server.port, "-tls1_1", *OLD, ok=False)
    expect_handshake(server.port, "-tls1", *OLD, ok=False)


def test_default_policy_plain_s_client(server):
    # openssl s_client -connect 127.0.0.1:PORT -tls1_1 </dev/null
    proc = s_client(server.port, "-tls1_1")
    assert proc.returncode != 0


def test_min_version_tls13(make_server, dbconf):
    update_conf(dbconf, TLS_MIN_VERSION="tlsv1.3")
    srv = make_server(dbconf).start()
    expect_handshake(srv.port, "-tls1_3")
    expect_handshake(srv.port, "-tls1_2", ok=False)
    expect_handshake(srv.port, "-tls1_1", *OLD, ok=False)


@pytest.mark.parametrize("setting,allowed,refused", [
    ("tlsv1.1", ["-tls1_1", "-tls1_2", "-tls1_3"], ["-tls1"]),
    ("tlsv1", ["-tls1", "-tls1_1", "-tls1_2"], []),
])
def test_min_version_older(make_server, dbconf, setting, allowed, refused):
    # The guide: tlsv1 "allow any TLS version of 1.0 or higher".
    update_conf(dbconf, TLS_MIN_VERSION=setting)
    srv = make_server(dbconf).start()
    for v in allowed:
        expect_handshake(srv.port, v, *OLD)
    for v in refused:
        expect_handshake(srv.port, v, *OLD, ok=False)


def test_ssl_ciphers_restricts_tls12(make_server, dbconf):
    update_conf(dbconf, SSL_CIPHERS="ECDHE-ECDSA-AES256-GCM-SHA384")
    srv = make_server(dbconf).start()
    proc = expect_handshake(srv.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384")
    assert "ECDHE-ECDSA-AES256-GCM-SHA384" in proc.stdout
    expect_handshake(srv.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256",
                     ok=False)
    # TLS 1.3 suites are not governed by SSL_CIPHERS
    expect_handshake(srv.port, "-tls1_3")


def test_ssl_ciphers_guide_syntax(make_server, dbconf):
    # "a list of keywords, separated by colons, commas, or spaces"
    update_conf(dbconf, SSL_CIPHERS="ECDHE-ECDSA-AES256-GCM-SHA384, CAMELLIA256-SHA")
    srv = make_server(dbconf).start()
    expect_handshake(srv.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384")
    expect_handshake(srv.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256",
                     ok=False)


# --------------------------------------------------------------------------
# replacing the certificate, as in the guide


def guide_replace(confdir, pki, cert, key, ca_file, password_script=None):
    """Steps 1-4 of "Replacing Key Trustee Server Certificates"."""
    ssl_dir = os.path.join(confdir, ".ssl")
    # 1. back up the original certificate and key files
    run(["cp", "-r", ssl_dir, os.path.join(confdir, ".ssl.bak")], check=True)
    # 2. provide the root (or intermediate) CA certificate
    ca_dst = os.path.join(ssl_dir, "ssl-cert-keytrustee-ca.pem")
    shutil.copyfile(ca_file, ca_dst)
    new_cert = os.path.join(ssl_dir, "new-certificate.pem")
    new_key = os.path.join(ssl_dir, "new-private_key.pem")
    shutil.copyfile(cert, new_cert)
    shutil.copyfile(key, new_key)
    # 3. owner keytrustee, file permissions 600
    for p in (new_cert, new_key, ca_dst):
        give_to_service_account(p)
        os.chmod(p, 0o600)
    # 4. edit keytrustee.conf (written by hand, in the guide's spacing)
    conf = read_conf(confdir)
    conf["SSL_CERTIFICATE"] = new_cert
    conf["SSL_PRIVATE_KEY"] = new_key
    conf["SSL_CA"] = ca_dst
    if password_script:
        conf["SSL_PRIVATE_KEY_PASSWORD_SCRIPT"] = password_script
    lines = ['    "%s" : %s' % (k, json.dumps(v)) for k, v in conf.items()]
    path = os.path.join(confdir, "keytrustee.conf")
    with open(path, "w") as f:
        f.write("{\n" + " ,\n".join(lines) + "\n}\n")
    os.chmod(path, 0o600)
    return new_cert


def curl_verified(port, cafile):
    return run([tool("curl"), "-sS", "--cacert", cafile,
                "--resolve", "localhost:%d:127.0.0.1" % port,
                "https://localhost:%d/?a=fingerprint" % port], timeout=20)


def verify_with(port, cafile):
    proc = s_client(port, "-CAfile", cafile, "-verify_return_error",
                    "-verify_hostname", "localhost")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Verify return code: 0 (ok)" in proc.stdout
    return proc


def test_replace_certificate_guide(make_server, dbconf, pki):
    srv = make_server(dbconf).start()
    # the self-signed certificate does not verify against the test CA
    assert curl_verified(srv.port, pki.root).returncode != 0
    new_cert = guide_replace(dbconf, pki, pki.enc_cert, pki.enc_key, pki.root,
                             password_script="/bin/echo -n password")
    # 5. restart
    srv.restart()
    proc = curl_verified(srv.port, pki.root)
    assert proc.returncode == 0, proc.stderr + srv.log()
    assert proc.stdout == srv.fingerprint
    verify_with(srv.port, pki.root)
    assert served_cert_fingerprint(srv.port) == cert_fingerprint(new_cert)
    # the backup is as the guide leaves it
    assert os.path.isfile(os.path.join(dbconf, ".ssl.bak", "ssl-cert-keytrustee.pem"))
    # and the TLS policy still holds
    expect_handshake(srv.port, "-tls1_1", *OLD, ok=False)


def test_ssl_ca_chain_is_sent(make_server, dbconf, pki):
    # "If you have separate root CA and intermediate CA certificate files,
    # then you must concatenate them into a single file."
    bundle = os.path.join(os.path.dirname(dbconf), "bundle.pem")
    with open(bundle, "w") as out:
        for p in (pki.inter, pki.root):
            with open(p) as f:
                out.write(f.read())
    guide_replace(dbconf, pki, pki.leaf_cert, pki.leaf_key, bundle)
    srv = make_server(dbconf).start()
    # the client trusts only the root: the server must send the intermediate
    proc = verify_with(srv.port, pki.root)
    proc = s_client(srv.port, "-showcerts", "-CAfile", pki.root)
    assert proc.stdout.count("-----BEGIN CERTIFICATE-----") >= 2
    assert curl_verified(srv.port, pki.root).returncode == 0


def install_in_place(confdir, cert, key):
    """Overwrite the configured cert and key files (atomically, 0600)."""
    conf = read_conf(confdir)
    for src, k in ((key, "SSL_PRIVATE_KEY"), (cert, "SSL_CERTIFICATE")):
        dst = conf[k] if os.path.isabs(conf[k]) else os.path.join(confdir, conf[k])
        tmp = dst + ".new"
        shutil.copyfile(src, tmp)
        give_to_service_account(tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, dst)


def wait_for_served(port, want, timeout=10):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = served_cert_fingerprint(port)
        if got == want:
            return got
        time.sleep(0.2)
    return got


def test_sighup_reloads_certificate(make_server, dbconf, pki):
    srv = make_server(dbconf).start()
    old = served_cert_fingerprint(srv.port)
    assert old == cert_fingerprint(os.path.join(dbconf, ".ssl", "ssl-cert-keytrustee.pem"))
    install_in_place(dbconf, pki.plain_cert, pki.plain_key)
    srv.signal(signal.SIGHUP)
    new = cert_fingerprint(pki.plain_cert)
    assert wait_for_served(srv.port, new) == new, srv.log()
    assert srv.running()
    verify_with(srv.port, pki.root)
    assert curl_verified(srv.port, pki.root).stdout == srv.fingerprint


def test_sighup_after_guide_replacement(make_server, dbconf, pki):
    # the guide's procedure, with SIGHUP in place of the restart
    srv = make_server(dbconf).start()
    new_cert = guide_replace(dbconf, pki, pki.enc_cert, pki.enc_key, pki.root,
                             password_script="/bin/echo -n password")
    srv.signal(signal.SIGHUP)
    want = cert_fingerprint(new_cert)
    assert wait_for_served(srv.port, want) == want, srv.log()
    assert srv.running()
    proc = curl_verified(srv.port, pki.root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == srv.fingerprint


def test_sighup_with_bad_key_keeps_old_certificate(make_server, dbconf, pki):
    srv = make_server(dbconf).start()
    old = served_cert_fingerprint(srv.port)
    conf = read_conf(dbconf)
    key = os.path.join(dbconf, conf["SSL_PRIVATE_KEY"])
    shutil.copyfile(pki.stray_key, key)
    os.chmod(key, 0o600)
    srv.signal(signal.SIGHUP)
    time.sleep(1.0)
    assert srv.running(), "server died on a bad reload:\n" + srv.log()
    assert served_cert_fingerprint(srv.port) == old
    assert srv.log().count("SSL_") >= 1 or "key" in srv.log().lower()


# --------------------------------------------------------------------------
# configurations the server must refuse


def _key_path(confdir):
    conf = read_conf(confdir)
    p = conf["SSL_PRIVATE_KEY"]
    return p if os.path.isabs(p) else os.path.join(confdir, p)


def _cert_path(confdir):
    conf = read_conf(confdir)
    p = conf["SSL_CERTIFICATE"]
    return p if os.path.isabs(p) else os.path.join(confdir, p)


def bad_key_0644(d, pki):
    os.chmod(_key_path(d), 0o644)
    return ["SSL_PRIVATE_KEY", "0644"]


def bad_key_0640(d, pki):
    os.chmod(_key_path(d), 0o640)
    return ["SSL_PRIVATE_KEY", "0640"]


def bad_cert_key_mismatch(d, pki):
    dst = os.path.join(d, ".ssl", "stray-pk.pem")
    shutil.copyfile(pki.stray_key, dst)
    os.chmod(dst, 0o600)
    update_conf(d, SSL_PRIVATE_KEY=dst)
    return [("SSL_PRIVATE_KEY", "SSL_CERTIFICATE")]


def bad_tls_min_unknown(d, pki):
    update_conf(d, TLS_MIN_VERSION="tlsv9")
    return ["TLS_MIN_VERSION", "tlsv9"]


def bad_tls_min_sslv3(d, pki):
    update_conf(d, TLS_MIN_VERSION="sslv3")
    return ["TLS_MIN_VERSION"]


def bad_tls_min_not_string(d, pki):
    update_conf(d, TLS_MIN_VERSION=1.2)
    return ["TLS_MIN_VERSION"]


def bad_ciphers_match_nothing(d, pki):
    update_conf(d, SSL_CIPHERS="NO-SUCH-CIPHER")
    return ["SSL_CIPHERS"]


def _encrypted_pair(d, pki, script):
    cert = os.path.join(d, ".ssl", "enc.pem")
    key = os.path.join(d, ".ssl", "enc-pk.pem")
    shutil.copyfile(pki.enc_cert, cert)
    shutil.copyfile(pki.enc_key, key)
    give_to_service_account(cert, key)
    os.chmod(cert, 0o600)
    os.chmod(key, 0o600)
    update_conf(d, SSL_CERTIFICATE=cert, SSL_PRIVATE_KEY=key,
                SSL_PRIVATE_KEY_PASSWORD_SCRIPT=script)


def bad_password_script_fails(d, pki):
    _encrypted_pair(d, pki, "/bin/false")
    return ["SSL_PRIVATE_KEY_PASSWORD_SCRIPT"]


def bad_password_script_missing(d, pki):
    _encrypted_pair(d, pki, "/nonexistent/password-script --flag")
    return ["SSL_PRIVATE_KEY_PASSWORD_SCRIPT"]


def bad_password_wrong(d, pki):
    _encrypted_pair(d, pki, "/bin/echo -n wrongpassword")
    return [("SSL_PRIVATE_KEY_PASSWORD_SCRIPT", "SSL_PRIVATE_KEY")]


def bad_cert_missing(d, pki):
    os.unlink(_cert_path(d))
    return ["SSL_CERTIFICATE"]


def bad_key_missing(d, pki):
    os.unlink(_key_path(d))
    return ["SSL_PRIVATE_KEY"]


def bad_ca_missing(d, pki):
    update_conf(d, SSL_CA=os.path.join(d, ".ssl", "ssl-cert-keytrustee-ca.pem"))
    return ["SSL_CA"]


def bad_json(d, pki):
    conf = read_conf(d)
    text = json.dumps(conf, indent=4, sort_keys=True).splitlines()
    lineno = next(i for i, l in enumerate(text, 1) if '"TLS_MIN_VERSION"' in l)
    text[lineno - 1] = '    "TLS_MIN_VERSION": tlsv1.2,'
    path = os.path.join(d, "keytrustee.conf")
    with open(path, "w") as f:
        f.write("\n".join(text) + "\n")
    return ["keytrustee.conf:%d" % lineno]


def bad_json_not_object(d, pki):
    path = os.path.join(d, "keytrustee.conf")
    with open(path, "w") as f:
        f.write('["SSL_CERTIFICATE"]\n')
    return ["keytrustee.conf"]


BAD = [bad_key_0644, bad_key_0640, bad_cert_key_mismatch, bad_tls_min_unknown,
       bad_tls_min_sslv3, bad_tls_min_not_string, bad_ciphers_match_nothing,
       bad_password_script_fails, bad_password_script_missing, bad_password_wrong,
       bad_cert_missing, bad_key_missing, bad_ca_missing, bad_json,
       bad_json_not_object]


@pytest.mark.parametrize("breakit", BAD, ids=[f.__name__[4:] for f in BAD])
def test_refuses_bad_config(make_server, dbconf, pki, breakit):
    wants = breakit(dbconf, pki)
    srv = make_server(dbconf).spawn()
    try:
        rc = srv.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("server still running 10 s after start with a bad config:\n"
                    + srv.log())
    log = srv.log()
    assert rc != 0, log
    for want in wants:
        alts = want if isinstance(want, tuple) else (want,)
        assert any(a in log for a in alts), "none of %r in stderr:\n%s" % (alts, log)
    # and it never listened
    assert not os.path.exists("/proc/%d" % srv.proc.pid) or srv.proc.poll() is not None


def test_refuses_quickly(make_server, dbconf, pki):
    bad_tls_min_unknown(dbconf, pki)
    srv = make_server(dbconf)
    t0 = time.monotonic()
    srv.spawn()
    srv.wait(timeout=10)
    assert time.monotonic() - t0 < 5
    assert srv.returncode != 0


def test_unknown_key_only_warns(make_server, dbconf):
    update_conf(dbconf, NO_SUCH_SETTING_XYZ=1)
    srv = make_server(dbconf).start()
    assert "NO_SUCH_SETTING_XYZ" in srv.log()
    assert served_cert_fingerprint(srv.port)


def test_password_script_guide_example(make_server, dbconf, pki):
    _encrypted_pair(dbconf, pki, "/bin/echo -n password")
    srv = make_server(dbconf).start()
    assert served_cert_fingerprint(srv.port) == cert_fingerprint(pki.enc_cert)
