"""Helpers of the legacy-protocol system tests (test_legacy_*.py): a module
environment of a real PostgreSQL and a real keytrustee-server (optionally
mailing to an SMTP sink), organizations made with keytrustee-orgtool,
zTrustee clients (tests/system/ztclient.py) each connecting from its own
loopback address, and the database checks the bad-input tests make.

The tests are written to docs/legacy.md; where it leaves a detail open
they follow what the reference (ztrustee-protocol.md) implies.  Those
choices, for the server to follow or dispute:

- register: a key never posted, a malformed fingerprint (bits or letter
  not the key's, not 40 hex) or an unknown protocol: 400; verify with a
  wrong response: 403, the client stays unverified; request_activation
  before verify, and any action of a verified client not yet active: 403.
  The clients table's states are the words docs/legacy.md uses.
- a wrong auth secret is throttled as /v1/register is: five 403s, then 429
  from that address for the window, the right secret included.
- token sync: a refused token's answer carries no next_token; a request
  whose token was accepted but whose action fails (404) carries one.
- trustees and clients travel as qualified fingerprints, comma-joined.
- policy refusals (ttb not reached, retrievals used, deposit disabled) come
  at get (request 200, get 403); a stranger is refused at request (403);
  past ttl, purged, unknown: 404 at request.  Only the depositor enables,
  disables, purges; only trustees vote; others get 403.  A denied or
  voted request leaves the voters' pending lists.
- search sees the client's own deposits; after/before take the date as
  Java writes it (+0000) and with a literal Z.
- error answers: 401 (signature, signer, time, replay) and unreadable
  payloads or armor: the plain reason=... form; errors after the request
  is verified: a payload with reason and status; malformed JSON: either.
- /pks/add: the same key again is 200; a key over 64 KiB is 413; a bad
  key 400; the plain-HTTP listener answers 404 to anything not /pks/*.
- HA: a 503 names the active as https://<its host>:<PORT>.
- "nothing changed": every public table but audit_log, audit_chain (the
  chainer seals audit_log's new rows whenever it ticks) and tables named
  like seen, replay, throttle, rate_limit or attempt.
"""

import json
import os
import re
import secrets
import string

from conftest import Cluster, Server, binary, copy_confdir, free_port, run, update_conf
import ztclient as z

PROTOCOLS = ["json-encrypt", "json-sign"]
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TOKEN_RE = re.compile(r"^[0-9a-f]{64}$")
URL_TOKEN_RE = re.compile(r"^[A-Za-z0-9]{43}$")

# Tables a refused request may legitimately touch: the append-only audit
# log (checked apart: no new row says ok), the signatures seen (the replay
# cache remembers every verified signature, docs/legacy.md) and
# per-address throttling state.
VOLATILE_TABLES = r"^(audit_log|audit_chain|.*(seen|replay|throttl|rate_?limit|attempt).*)$"


def sql_quote(s):
    return "'" + s.replace("'", "''") + "'"


def random_source():
    """A loopback address of its own for a client (per-address limits --
    HKP adds, wrong auth secrets -- never meet another test's)."""
    return "127.%d.%d.%d" % (secrets.randbelow(200) + 20, secrets.randbelow(254) + 1,
                             secrets.randbelow(253) + 2)


def unique(prefix):
    return prefix + "-" + secrets.token_hex(4)


def expect(ans, status, what):
    """Assert an Answer's status, saying what was expected."""
    assert ans.status == status, "%s: expected HTTP %d, got %r" % (what, status, ans)
    return ans


def expect_refused(ans, status, what):
    """A refusal: the status, and a reason the client can show."""
    assert ans.status == status, "%s: expected HTTP %d, got %r" % (what, status, ans)
    assert ans.reason_source in ("data", "form") and isinstance(ans.reason, str) and \
        ans.reason.strip(), "%s: expected a reason with the %d (a payload with reason, " \
        "or a reason=... body), got %r" % (what, status, ans)
    if ans.form == "payload":
        assert ans.payload_status == status, \
            "%s: an error payload's status must be the HTTP status %d: %r" % (what, status, ans)
    return ans


class LegacyEnv:
    """A server, its cluster and config dir, and the clients of a module."""

    def __init__(self, registry, cluster, confdir, server, sink=None):
        self.registry = registry
        self.cluster = cluster
        self.confdir = confdir
        self.server = server
        self.sink = sink
        self.clients = []

    @property
    def url(self):
        return self.server.url

    @property
    def port(self):
        return self.server.port

    # tools
    def orgtool(self, *args):
        return run([binary("keytrustee-orgtool"), "--confdir", self.confdir] +
                   [str(a) for a in args])

    def orgtool_ok(self, *args):
        proc = self.orgtool(*args)
        assert proc.returncode == 0, "keytrustee-orgtool %s: expected exit 0, got %d\n%s%s" % (
            " ".join(map(str, args)), proc.returncode, proc.stdout, proc.stderr)
        return proc

    def psql(self, sql):
        return self.cluster.psql(sql)

    def org(self, name=None, contacts="ops@example.com", auth=None):
        """A new org (orgtool add); auth: None keeps the random secret add
        makes, "" turns it off.  Returns (name, secret)."""
        name = name or unique("org")
        self.orgtool_ok("add", "-n", name, "-c", contacts)
        if auth is not None:
            self.orgtool_ok("set-auth", "-n", name, "-s", auth)
        return name, self.auth_secret(name)

    def org_list(self):
        return json.loads(self.orgtool_ok("list").stdout)

    def auth_secret(self, org):
        return self.org_list()[org]["auth_secret"]

    def client_state(self, client):
        return self.psql("SELECT coalesce(max(state), '<none>') FROM clients WHERE "
                         "fingerprint = %s" % sql_quote(client.fpr))

    # clients
    def client(self, name, protocol="json-encrypt", token_sync=True, **kw):
        home = self.registry.mkdtemp("zt-" + name + "-")
        kw.setdefault("source", random_source())
        kw.setdefault("distinct_sig_times", True)
        c = z.Client(self.url, name=name, host="%s.example.com" % name, protocol=protocol,
                     token_sync=token_sync, home=home, **kw)
        self.clients.append(c)
        return c

    def enrolled(self, name, org, auth, protocol="json-encrypt", token_sync=True, **kw):
        """A client through the whole registration and activated in org."""
        c = self.client(name, protocol, token_sync, **kw)
        c.enroll(org, auth, contact="%s@example.com" % name, justification="tests")
        state = self.client_state(c)
        assert state == "active", "%s after request_activation with the right secret: " \
            "expected state active, got %s" % (name, state)
        return c

    # what the bad-input tests compare
    def snapshot(self):
        """Every row of every table but the volatile ones, as one md5 per
        table (one psql run).  Of mail_outbox only the ids: the mailer
        updates its rows as it delivers earlier mail, whenever it gets to
        it, while a mail a request queued would be a new id."""
        sql = (
            "SELECT coalesce(string_agg(table_name || '=' || (xpath('/row/h/text()', "
            "query_to_xml(format('SELECT count(*) || '':'' || md5(coalesce(string_agg("
            "%s::text, E''\\n'' ORDER BY %s::text), '''')) AS h FROM %I t', col, col, "
            "table_name), "
            "false, true, '')))[1]::text, ' ' ORDER BY table_name), '') "
            "FROM (SELECT table_name, CASE table_name WHEN 'mail_outbox' THEN 't.id' "
            "ELSE 't' END AS col FROM information_schema.tables WHERE table_schema = 'public' AND "
            "table_type = 'BASE TABLE' AND table_name !~ " + sql_quote(VOLATILE_TABLES) + ") tt")
        return dict(kv.split("=", 1) for kv in self.psql(sql).split())

    def audit_mark(self):
        return int(self.psql("SELECT coalesce(max(id), 0) FROM audit_log"))

    def audit_since(self, mark, where="true"):
        out = self.psql("SELECT id || '|' || coalesce(actor, '') || '|' || action || '|' || "
                        "coalesce(object, '') || '|' || result FROM audit_log WHERE id > %d "
                        "AND (%s) ORDER BY id" % (mark, where))
        return [ln.split("|") for ln in out.splitlines() if ln]

    def unchanged(self, before, mark, what):
        """Assert the database is as before and no audit row since mark
        says ok."""
        after = self.snapshot()
        changed = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
        assert not changed, "%s: expected no change in the database, tables changed: %s" % (
            what, ", ".join(changed))
        oks = self.audit_since(mark, "result = 'ok'")
        assert not oks, "%s: expected no audit row saying ok, got %r" % (what, oks)


def start_env(registry, template, name, mail=False, conf=None, prepare=None):
    """A module environment: its own cluster (bootstrapped into a copy of
    the session's initialized conf dir, prepare(confdir) done to it
    first), an SMTP sink when mail, and a started server.  Returns (env,
    stop)."""
    confdir = copy_confdir(registry, template.confdir, name)
    if prepare is not None:
        prepare(confdir)
    rootdir = os.path.join(registry.mkdtemp(name + "-pg-"), "pgdata")
    cluster = Cluster(registry, rootdir, free_port())
    proc = cluster.bootstrap(confdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sink = None
    changes = dict(conf or {})
    port = free_port()
    changes.setdefault("PORT", port)
    if mail:
        from test_mail import Sink
        sink = Sink(registry)
        sink.start()
        changes.update(HOSTNAME="localhost", MAIL_URL="smtp://127.0.0.1:%d" % sink.port)
        registry.gnupg_home(os.path.join(confdir, ".contacts-gnupg"))
    update_conf(confdir, **changes)
    server = Server(registry, confdir, port=changes["PORT"], name=name)
    server.start()
    env = LegacyEnv(registry, cluster, confdir, server, sink)

    def stop():
        server.stop()
        if sink is not None:
            sink.stop()
        cluster.stop()
        registry.kill_gnupg(confdir)
    return env, stop


def random_name(n=8):
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(n))
