"""Admin mail through a real MTA: the guide's "Notification Email and GPG
Keys" and "Configuring a Mail Transfer Agent" sections.

A real SMTP server (Debian's python3-aiosmtpd, tests/system/smtp_sink.py)
listens on a free loopback port and offers STARTTLS with a throw-away
certificate; the server's MAIL_URL points at it.  The tests read what it
delivered: the "KeyTrustee Contact Registration" mail and its link, the key
upload page, the next mail encrypted to the uploaded key (decrypted and its
signature verified with gpg here), the client registration notices, an MTA
outage (every mail arrives exactly once afterwards) and refused addresses.

The 12-hour expiry runs on the database's clock (the server compares
expires with now() in SQL), so the test controls it by moving the token's
times back 12 hours with psql; libfaketime would not reach the PostgreSQL
server process, which is where the decision is made.
"""

import email
import email.policy
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse

import pytest

from conftest import (Cluster, Server, binary, copy_confdir, free_port,
                      ktadmin, live_processes_mentioning, run, tool,
                      update_conf, wait_for)
from test_api import Client, http_request

LINK_RE = re.compile(r"https://localhost:(\d+)/\?q=([A-Za-z0-9]{43})\n")
EXPIRY_RE = re.compile(
    r"This link will expire in 12 hours, at "
    r"((Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|"
    r"Oct|Nov|Dec) [ 123]\d \d\d:\d\d:\d\d \d{4}) UTC\.")
WAIT = 30.0



class Sink:
    """The SMTP server subprocess and the messages it wrote."""

    def __init__(self, registry):
        self.registry = registry
        self.port = free_port()
        self.dir = registry.mkdtemp("mail-sink-")
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        run([tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
             "/CN=sink.localhost", "-keyout", self.key, "-out", self.cert],
            check=True)
        self.proc = None
        self.logpath = os.path.join(self.dir, "sink.log")

    def start(self):
        log = open(self.logpath, "ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, os.path.join(os.path.dirname(__file__), "smtp_sink.py"),
                 "--port", str(self.port), "--dir", self.dir, "--cert", self.cert,
                 "--key", self.key], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        finally:
            log.close()

        def up():
            import socket
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    return s.recv(100).startswith(b"220")
            except OSError:
                return False
        wait_for(up, what="the SMTP server")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def messages(self):
        out = []
        for name in sorted(os.listdir(self.dir)):
            if not name.endswith(".eml") or name.startswith("."):
                continue
            with open(os.path.join(self.dir, name), "rb") as f:
                raw = f.read()
            with open(os.path.join(self.dir, name[:-4] + ".json")) as f:
                meta = json.load(f)
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            body = msg.get_payload(decode=True).decode().replace("\r\n", "\n")
            out.append({"msg": msg, "body": body, "env": meta,
                        "to": meta["rcpt_tos"][0], "id": msg["X-KeyTrustee-Outbox-Id"]})
        return out

    def to(self, rcpt, kind=None):
        return [m for m in self.messages() if m["to"] == rcpt and
                (kind is None or m["msg"]["X-KeyTrustee-Mail"] == kind)]

    def wait_to(self, rcpt, kind=None, n=1, timeout=WAIT):
        return wait_for(lambda: len(self.to(rcpt, kind)) >= n and self.to(rcpt, kind),
                        timeout, "%d mail(s) to %s" % (n, rcpt))


class MailEnv:
    def __init__(self, registry, cluster, confdir, sink, server):
        self.registry = registry
        self.cluster = cluster
        self.confdir = confdir
        self.sink = sink
        self.server = server
        self.port = server.port
        self.verifier = registry.gnupg_home(
            os.path.join(registry.mkdtemp("mail-verify-"), "g"))
        os.mkdir(self.verifier, 0o700)
        status, _, pub = http_request(self.port, "GET", "/?a=pubkey")
        assert status == 200
        run([tool("gpg"), "--homedir", self.verifier, "--batch", "--import"],
            input=pub.decode(), check=True)
        self.server_fpr = server.fingerprint.split("/")[1]

    def orgtool(self, *args):
        return run([binary("keytrustee-orgtool"), "--confdir", self.confdir] +
                   [str(a) for a in args])

    def add(self, org, contacts):
        proc = self.orgtool("add", "-n", org, "-c", contacts)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def auth_secret(self, org):
        proc = self.orgtool("list")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)[org]["auth_secret"]

    def psql(self, sql):
        return self.cluster.psql(sql)

    def verify(self, text):
        """gpg --verify a clear-signed text; returns the signed content."""
        proc = subprocess.run(
            [tool("gpg"), "--homedir", self.verifier, "--batch", "--status-fd", "2",
             "--decrypt"], input=text.encode(), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=60)
        status = proc.stderr.decode()
        assert proc.returncode == 0, status
        assert re.search(r"^\[GNUPG:\] VALIDSIG %s " % self.server_fpr, status, re.M), status
        return proc.stdout.decode()

    def mailctl(self, *args):
        return ktadmin("mail", "--confdir", self.confdir, *args)


@pytest.fixture(scope="module")
def menv(registry, template):
    confdir = copy_confdir(registry, template.confdir, "mail")
    registry.gnupg_home(os.path.join(confdir, ".contacts-gnupg"))
    registry.gnupg_home(os.path.join(confdir, ".clients-gnupg"))
    rootdir = os.path.join(registry.mkdtemp("mail-pg-"), "pgdata")
    cluster = Cluster(registry, rootdir, free_port())
    proc = cluster.bootstrap(confdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sink = Sink(registry)
    sink.start()
    port = free_port()
    update_conf(confdir, PORT=port, HOSTNAME="localhost",
                MAIL_URL="smtp://127.0.0.1:%d" % sink.port)
    server = Server(registry, confdir, port=port, name="mailsrv")
    server.start()
    env = MailEnv(registry, cluster, confdir, sink, server)
    try:
        yield env
    finally:
        server.stop()
        sink.stop()
        cluster.stop()
        for home in (confdir, os.path.join(confdir, ".contacts-gnupg"),
                     os.path.join(confdir, ".clients-gnupg")):
            registry.kill_gnupg(home)


def token_of(m):
    found = LINK_RE.search(m["body"])
    assert found, m["body"]
    return found.group(2)


def sha(token):
    return hashlib.sha256(token.encode()).hexdigest()


def form(key):
    return urllib.parse.urlencode({"key": key}).encode()


# --------------------------------------------------------------------------


def test_sender_sleeps_while_nothing_is_queued(menv):
    """With an empty outbox the sender waits for a NOTIFY (or its minute),
    it does not poll the database: min(next_attempt) of no rows is NULL,
    and greatest(0, NULL) is 0, which once made it loop without pause
    (thousands of transactions a second, a core of the machine)."""
    assert menv.psql("SELECT count(*) FROM mail_outbox WHERE state = 'queued'") == "0"
    sql = "SELECT xact_commit FROM pg_stat_database WHERE datname = 'keytrustee'"
    before = int(menv.psql(sql))
    time.sleep(3)
    # The HA monitor's checks (two every 200 ms) and these queries remain.
    assert int(menv.psql(sql)) - before < 300


def test_contact_registration_mail_as_in_the_guide(menv):
    before = time.time()
    proc = menv.add("disaster-recov", "finn@example.com,jake@example.com")
    assert "Queued contact registration mail to finn@example.com" in proc.stderr
    for rcpt in ("finn@example.com", "jake@example.com"):
        m = menv.sink.wait_to(rcpt)[0]
        msg = m["msg"]
        assert msg["Subject"] == "KeyTrustee Contact Registration"
        assert m["env"]["mail_from"] == "keytrustee@localhost"
        assert "keytrustee@localhost" in msg["From"]
        # STARTTLS was offered, so it was used.
        assert m["env"]["tls"] is True
        text = menv.verify(m["body"])
        assert "administrator contact\nfor keytrustee services at your " \
               "organization [disaster-recov]." in text
        found = LINK_RE.search(text)
        assert found and int(found.group(1)) == menv.port
        exp = EXPIRY_RE.search(text)
        assert exp, text
        when = time.mktime(time.strptime(exp.group(1), "%a %b %d %H:%M:%S %Y")) \
            - time.timezone
        assert abs(when - (before + 12 * 3600)) < 120
    # Two different tokens, stored only as hashes.
    tokens = {token_of(menv.sink.to(r)[0]) for r in ("finn@example.com", "jake@example.com")}
    assert len(tokens) == 2
    for t in tokens:
        assert menv.psql("SELECT count(*) FROM contact_tokens WHERE token_hash = '%s'"
                         % sha(t)) == "1"
        assert menv.psql("SELECT count(*) FROM contact_tokens WHERE token_hash = '%s'"
                         % t) == "0"
    # The signing agent lives only while mail is signed.
    def agents():
        return [p for p in live_processes_mentioning(menv.confdir)
                if "gpg-agent" in p and
                re.search(r"--homedir %s( |$)" % re.escape(menv.confdir), p)]
    wait_for(lambda: not agents(), timeout=15, what="the agent to stop")
    # Once sent, the outbox no longer holds the link.
    assert menv.psql("SELECT count(*) FROM mail_outbox WHERE state = 'sent' "
                     "AND body LIKE '%?q=%'") == "0"


def test_bad_address_queues_nothing(menv):
    proc = menv.orgtool("add", "-n", "badaddr", "-c", "ok@example.com,not-an-address")
    assert proc.returncode == 1 and "error: invalid contact address" in proc.stderr
    assert menv.psql("SELECT count(*) FROM orgs WHERE name = 'badaddr'") == "0"
    assert menv.psql("SELECT count(*) FROM mail_outbox WHERE rcpt = 'ok@example.com'") == "0"
    assert menv.psql("SELECT count(*) FROM contact_tokens WHERE contact = "
                     "'ok@example.com'") == "0"


def test_adding_a_contact_mails_only_the_new_one(menv):
    menv.add("grow", "a1@example.com")
    menv.sink.wait_to("a1@example.com")
    menv.add("grow", "a1@example.com,marceline@example.com")
    menv.sink.wait_to("marceline@example.com")
    time.sleep(1)
    assert len(menv.sink.to("a1@example.com")) == 1


def test_link_page_key_upload_and_encrypted_mail(menv):
    menv.add("keyorg", "pb@example.com,lsp@example.com")
    token = token_of(menv.sink.wait_to("pb@example.com")[0])
    status, hdrs, page = http_request(menv.port, "GET", "/?q=" + token)
    page = page.decode()
    assert status == 200 and hdrs["content-type"].startswith("text/html")
    assert menv.server.fingerprint in page
    assert "-----BEGIN PGP PUBLIC KEY BLOCK-----" in page
    assert "pb@example.com" in page and "keyorg" in page
    # Self-contained: nothing fetched from anywhere.
    assert not re.search(r"<script|<link|<img|src=|https?://", page, re.I), page
    assert "default-src 'none'" in hdrs["content-security-policy"]

    contact = Client(menv.registry, "pb")
    status, _, done = http_request(
        menv.port, "POST", "/?q=" + token, form(contact.pubkey),
        [("Content-Type", "application/x-www-form-urlencoded")])
    assert status == 200, done
    assert contact.keyfpr in done.decode()
    assert menv.psql("SELECT fingerprint FROM contact_keys WHERE contact = "
                     "'pb@example.com'") == contact.keyfpr
    # Single use.
    status, _, gone = http_request(menv.port, "GET", "/?q=" + token)
    assert status == 410 and b"already used" in gone
    status, _, _ = http_request(
        menv.port, "POST", "/?q=" + token, form(contact.pubkey),
        [("Content-Type", "application/x-www-form-urlencoded")])
    assert status == 410

    # A client registers (pending: no auth code): both contacts are told;
    # pb's copy is encrypted to pb's key and signed by the server.
    client = Client(menv.registry, "kpclient")
    status, ans = client.register(menv.port, "keyorg", hostname="db1.example.com")
    assert status == 201 and ans["state"] == "pending"
    enc = menv.sink.wait_to("pb@example.com", "client_registration")[0]
    assert "-----BEGIN PGP MESSAGE-----" in enc["body"]
    assert client.fpr not in enc["body"]
    signed = contact.decrypt(enc["body"])
    text = menv.verify(signed)
    assert "organization [keyorg]" in text
    assert "Fingerprint:  " + client.fpr in text
    assert "Hostname:     db1.example.com" in text
    assert "State:        pending" in text
    assert "keytrustee-orgtool enable-client --fingerprint " + client.fpr in text
    assert menv.psql("SELECT encrypted_to FROM mail_outbox WHERE rcpt = 'pb@example.com' "
                     "AND kind = 'client_registration'") == contact.keyfpr
    # The contact without a key gets it clear-signed.
    plain = menv.sink.wait_to("lsp@example.com", "client_registration")[0]
    assert "-----BEGIN PGP SIGNED MESSAGE-----" in plain["body"]
    assert client.fpr in menv.verify(plain["body"])


def test_active_client_notice(menv):
    menv.add("actorg", "bmo@example.com")
    menv.sink.wait_to("bmo@example.com")
    client = Client(menv.registry, "actclient")
    status, ans = client.register(menv.port, "actorg", auth=menv.auth_secret("actorg"),
                                  hostname="web7.example.com")
    assert status == 201 and ans["state"] == "active"
    m = menv.sink.wait_to("bmo@example.com", "client_registration")[0]
    assert m["msg"]["Subject"] == "KeyTrustee Client Registration: actorg (active)"
    text = menv.verify(m["body"])
    assert "State:        active" in text and "web7.example.com" in text
    # Registering again is not news.
    status, _ = client.register(menv.port, "actorg", auth=menv.auth_secret("actorg"))
    assert status == 200
    time.sleep(1)
    assert len(menv.sink.to("bmo@example.com", "client_registration")) == 1


def test_link_expires_after_12_hours(menv):
    menv.add("exporg", "ice@example.com")
    token = token_of(menv.sink.wait_to("ice@example.com")[0])
    assert http_request(menv.port, "GET", "/?q=" + token)[0] == 200
    # 12 hours pass on the clock that decides: the database's.
    menv.psql("UPDATE contact_tokens SET created = created - interval '12 hours', "
              "expires = expires - interval '12 hours' WHERE token_hash = '%s'" % sha(token))
    status, _, body = http_request(menv.port, "GET", "/?q=" + token)
    assert status == 410 and b"expired" in body
    contact = Client(menv.registry, "ice")
    status, _, _ = http_request(
        menv.port, "POST", "/?q=" + token, form(contact.pubkey),
        [("Content-Type", "application/x-www-form-urlencoded")])
    assert status == 410
    assert menv.psql("SELECT count(*) FROM contact_keys WHERE contact = "
                     "'ice@example.com'") == "0"
    status, _, j = http_request(menv.port, "GET", "/?q=" + token,
                                headers=[("Accept", "application/json")])
    assert status == 410 and json.loads(j)["code"] == "link_expired"


def test_unknown_and_malformed_links_are_404(menv):
    for q in ("A" * 43, "short", "A" * 44, "%00" * 5, "a-b" * 14):
        status, _, body = http_request(menv.port, "GET", "/?q=" + q)
        assert status == 404, q
    status, _, j = http_request(menv.port, "GET", "/?q=" + "B" * 43,
                                headers=[("Accept", "application/json")])
    assert status == 404 and json.loads(j) == {
        "error": "this registration link is not known to this server",
        "code": "unknown_link"}
    assert http_request(menv.port, "DELETE", "/?q=" + "B" * 43)[0] == 405


def test_bad_key_uploads_are_refused_and_keep_the_link(menv):
    menv.add("badkey", "gunter@example.com")
    token = token_of(menv.sink.wait_to("gunter@example.com")[0])
    contact = Client(menv.registry, "gunter")
    lines = contact.pubkey.strip().splitlines()
    no_end = "\n".join(lines[:-1])
    no_begin = "\n".join(lines[1:])
    garbage = ("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5\n"
               "-----END PGP PUBLIC KEY BLOCK-----")
    secret = run([tool("gpg"), "--homedir", contact.home, "--batch", "--armor",
                  "--pinentry-mode", "loopback", "--passphrase", "",
                  "--export-secret-keys", contact.keyfpr], check=True).stdout
    signonly = Client(menv.registry, "gunter2", encrypt_subkey=False)
    for bad in ("", "hello", no_end, no_begin, garbage, secret, signonly.pubkey):
        status, _, body = http_request(
            menv.port, "POST", "/?q=" + token, form(bad),
            [("Content-Type", "application/x-www-form-urlencoded")])
        assert status == 400, (bad[:60], body)
    # The raw body works too (curl --data-binary @key.asc), and the link
    # is still good after the refusals.
    status, _, j = http_request(
        menv.port, "POST", "/?q=" + token, contact.pubkey.encode(),
        [("Content-Type", "application/pgp-keys"), ("Accept", "application/json")])
    assert status == 200 and json.loads(j)["fingerprint"] == contact.keyfpr


def outbox_ids(menv, where):
    out = menv.psql("SELECT id FROM mail_outbox WHERE " + where + " ORDER BY id")
    return [int(x) for x in out.split()] if out else []


def delivered_ids(menv):
    return [int(m["id"]) for m in menv.sink.messages()]


def test_mta_down_then_up_every_mail_arrives_once(menv):
    menv.sink.stop()
    menv.add("outage", "o1@example.com,o2@example.com,o3@example.com")
    client = Client(menv.registry, "outclient")
    assert client.register(menv.port, "outage")[0] == 201
    mine = "org_id = (SELECT id FROM orgs WHERE name = 'outage')"
    ids = outbox_ids(menv, mine)
    assert len(ids) == 6
    wait_for(lambda: menv.psql("SELECT bool_and(attempts >= 1 AND state = 'queued' "
                               "AND last_error IS NOT NULL) FROM mail_outbox WHERE "
                               + mine) == "t", what="first failed attempts")
    proc = menv.mailctl("--status")
    assert proc.returncode == 0 and "o1@example.com" in proc.stdout
    # ktadmin mail --retry while the MTA is down: nothing lost, exit 1.
    proc = menv.mailctl("--retry")
    assert proc.returncode == 1 and "deferred" in proc.stdout
    assert "did not go" in proc.stderr
    menv.sink.start()
    # The server's own retry (backoff) delivers them.
    wait_for(lambda: set(ids) <= set(delivered_ids(menv)), timeout=90,
             what="the server's retry after the outage")
    assert menv.psql("SELECT count(*) FROM mail_outbox WHERE state <> 'sent' AND "
                     + mine) == "0"
    # Pushing again sends nothing twice.
    proc = menv.mailctl("--retry")
    time.sleep(1)
    got = [i for i in delivered_ids(menv) if i in ids]
    assert sorted(got) == sorted(ids), got


def test_ktadmin_mail_retry_pushes_the_queue(menv):
    menv.sink.stop()
    menv.add("pushorg", "p1@example.com,p2@example.com")
    mine = "org_id = (SELECT id FROM orgs WHERE name = 'pushorg')"
    wait_for(lambda: menv.psql("SELECT bool_and(attempts >= 1) FROM mail_outbox WHERE "
                               + mine) == "t", what="first failed attempts")
    # Back off far into the future: only the push can send them now.
    menv.psql("UPDATE mail_outbox SET next_attempt = now() + interval '1 day' WHERE "
              + mine)
    menv.sink.start()
    proc = menv.mailctl("--retry")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = outbox_ids(menv, mine)
    assert set(ids) <= set(delivered_ids(menv))
    got = [i for i in delivered_ids(menv) if i in ids]
    assert sorted(got) == sorted(ids)


# Last: the refused rows it leaves make every later --retry exit 1.
def test_rejected_recipient_is_recorded_and_does_not_block(menv):
    menv.add("mixed", "good1@example.com,nobody@reject.invalid,good2@example.com")
    menv.sink.wait_to("good1@example.com")
    menv.sink.wait_to("good2@example.com")
    wait_for(lambda: menv.psql("SELECT state FROM mail_outbox WHERE rcpt = "
                               "'nobody@reject.invalid'") == "failed", what="failed row")
    err = menv.psql("SELECT last_error FROM mail_outbox WHERE rcpt = 'nobody@reject.invalid'")
    assert "550" in err
    proc = menv.mailctl("--status")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"failed [1-9]", proc.stdout.splitlines()[0])
    assert "nobody@reject.invalid" in proc.stdout and "550" in proc.stdout
    # A temporary refusal (451) stays queued with its reason.
    menv.add("later", "busy@defer.invalid")
    wait_for(lambda: menv.psql("SELECT attempts FROM mail_outbox WHERE rcpt = "
                               "'busy@defer.invalid'") not in ("", "0"), what="an attempt")
    assert menv.psql("SELECT state || ' ' || (last_error LIKE '%451%')::text "
                     "FROM mail_outbox WHERE rcpt = 'busy@defer.invalid'") == "queued true"


def test_ktadmin_mail_cli_errors(menv):
    proc = ktadmin("mail", "--help")
    assert proc.returncode == 0 and "--status" in proc.stdout and "--retry" in proc.stdout
    proc = ktadmin("mail", "--bogus")
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")
    assert "hint:" in proc.stderr
    proc = ktadmin("mail", "--confdir")
    assert proc.returncode == 2 and "error: " in proc.stderr
    proc = ktadmin("mail", "--confdir", menv.confdir)
    assert proc.returncode == 2 and "give --status or --retry" in proc.stderr
    proc = ktadmin("mail", "--status", "--retry", "--confdir", menv.confdir)
    assert proc.returncode == 2 and "one of" in proc.stderr
    proc = ktadmin("mail", "--status", "extra", "--confdir", menv.confdir)
    assert proc.returncode == 2 and "unexpected argument" in proc.stderr
    proc = ktadmin("mail", "--status", "--confdir", "/nonexistent/kt")
    assert proc.returncode == 1 and "error: cannot read the configuration" in proc.stderr
    proc = ktadmin("--help")
    assert "mail" in proc.stdout


def test_orgtool_add_help_mentions_the_mail():
    proc = run([binary("keytrustee-orgtool"), "add", "--help"])
    assert proc.returncode == 0 and "Contact Registration" in proc.stdout
