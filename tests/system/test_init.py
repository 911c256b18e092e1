"""ktadmin init: the config dir, the OpenPGP key, the self-signed TLS pair."""

import json
import os
import re
import shutil

from conftest import (FPR_RE, cert_fingerprint, gpg_fingerprints, ktadmin, mode,
                      read_conf, run, tool, update_conf)

SSL = ".ssl"
CERT = ".ssl/ssl-cert-keytrustee.pem"
KEY = ".ssl/ssl-cert-keytrustee-pk.pem"


def cert_text(path):
    return run([tool("openssl"), "x509", "-noout", "-text", "-in", path], check=True).stdout


def cert_matches_key(cert, key):
    a = run([tool("openssl"), "x509", "-noout", "-pubkey", "-in", cert], check=True).stdout
    b = run([tool("openssl"), "pkey", "-pubout", "-in", key], check=True).stdout
    return a == b


def test_output_line(template):
    lines = template.init_proc.stdout.strip().splitlines()
    assert lines, template.init_proc.stderr
    m = re.fullmatch(r"Initialized directory for (4096R/[0-9A-F]{40})", lines[-1])
    assert m, lines[-1]
    assert m.group(1) == template.fingerprint


def test_modes(template):
    d = template.confdir
    assert mode(d) == 0o700
    assert mode(os.path.join(d, "keytrustee.conf")) == 0o600
    assert mode(os.path.join(d, SSL)) == 0o700
    assert mode(os.path.join(d, CERT)) == 0o600
    assert mode(os.path.join(d, KEY)) == 0o600
    assert os.path.isfile(os.path.join(d, "logging.conf"))
    # nothing in the dir is group/other writable
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            p = os.path.join(root, name)
            if os.path.islink(p):
                continue
            assert mode(p) & 0o022 == 0, (p, oct(mode(p)))


def test_owned_by_the_service_account(template):
    """As root, the config dir is given to keytrustee, as the guide's tar tvf
    listing shows, and no gpg-agent of root's is left in it."""
    import pwd
    uid = pwd.getpwnam("keytrustee").pw_uid
    for root, dirs, files in os.walk(template.confdir):
        for name in [""] + dirs + files:
            p = os.path.join(root, name)
            assert os.lstat(p).st_uid == uid, p
    assert not [f for f in os.listdir(template.confdir) if f.startswith("S.")]


def test_conf_contents(template):
    conf = read_conf(template.confdir)
    assert isinstance(conf, dict)
    assert conf["TLS_MIN_VERSION"] == "tlsv1.2"
    assert conf["SSL_CIPHERS"] == ""
    assert conf["PORT"] == 11371
    assert conf["DB_PORT"] == 11381
    assert conf["HOSTNAME"] == "localhost"
    assert "MAIL_URL" in conf
    for key, rel in (("SSL_CERTIFICATE", CERT), ("SSL_PRIVATE_KEY", KEY)):
        path = conf[key]
        if not os.path.isabs(path):
            path = os.path.join(template.confdir, path)
        assert os.path.samefile(path, os.path.join(template.confdir, rel)), key


def test_openpgp_key(template):
    out = run([tool("gpg"), "--homedir", template.confdir, "--batch", "--with-colons",
               "--list-secret-keys"], check=True).stdout
    sec = [l.split(":") for l in out.splitlines() if l.startswith("sec:")]
    assert len(sec) == 1, out
    assert sec[0][2] == "4096", "key length %s" % sec[0][2]
    assert sec[0][3] == "1", "algorithm %s (1 = RSA)" % sec[0][3]
    uids = [l.split(":")[9] for l in out.splitlines() if l.startswith("uid:")]
    assert uids == ["keytrustee (keytrustee Server Key) <keytrustee@localhost>"]
    assert FPR_RE.match(template.fingerprint)


def test_cert_is_ecdsa_p256_by_default(template):
    text = cert_text(os.path.join(template.confdir, CERT))
    assert "id-ecPublicKey" in text
    assert "prime256v1" in text or "P-256" in text
    assert cert_matches_key(os.path.join(template.confdir, CERT),
                            os.path.join(template.confdir, KEY))
    assert "localhost" in text


def test_rerun_keeps_keyring_and_conf(registry, confcopy):
    before = gpg_fingerprints(confcopy)
    cert_before = cert_fingerprint(os.path.join(confcopy, CERT))
    update_conf(confcopy, PORT=12345)
    proc = ktadmin("init", "--confdir", confcopy, "--hostname", "localhost", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == \
        "Initialized directory for 4096R/" + before[0]
    assert gpg_fingerprints(confcopy) == before
    # only what is missing is made: the cert and the edited conf stay
    assert cert_fingerprint(os.path.join(confcopy, CERT)) == cert_before
    assert read_conf(confcopy)["PORT"] == 12345
    assert mode(confcopy) == 0o700
    assert mode(os.path.join(confcopy, "keytrustee.conf")) == 0o600


def test_rerun_recreates_deleted_ssl(confcopy):
    before = gpg_fingerprints(confcopy)
    old_cert = cert_fingerprint(os.path.join(confcopy, CERT))
    shutil.rmtree(os.path.join(confcopy, SSL))
    proc = ktadmin("init", "--confdir", confcopy, "--hostname", "localhost", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert gpg_fingerprints(confcopy) == before
    assert mode(os.path.join(confcopy, SSL)) == 0o700
    assert mode(os.path.join(confcopy, CERT)) == 0o600
    assert mode(os.path.join(confcopy, KEY)) == 0o600
    assert cert_fingerprint(os.path.join(confcopy, CERT)) != old_cert
    assert cert_matches_key(os.path.join(confcopy, CERT), os.path.join(confcopy, KEY))
    assert "id-ecPublicKey" in cert_text(os.path.join(confcopy, CERT))


def test_tls_key_rsa(confcopy):
    # Reuse the keyring (RSA 4096 OpenPGP generation is slow): only the
    # certificate is missing, so only it is made, with an RSA key.
    shutil.rmtree(os.path.join(confcopy, SSL))
    proc = ktadmin("init", "--confdir", confcopy, "--hostname", "localhost",
                   "--tls-key", "rsa", timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = cert_text(os.path.join(confcopy, CERT))
    assert "rsaEncryption" in text
    assert "id-ecPublicKey" not in text
    assert cert_matches_key(os.path.join(confcopy, CERT), os.path.join(confcopy, KEY))
    assert mode(os.path.join(confcopy, KEY)) == 0o600


def test_conf_is_json_object(template):
    with open(os.path.join(template.confdir, "keytrustee.conf")) as f:
        assert isinstance(json.load(f), dict)
