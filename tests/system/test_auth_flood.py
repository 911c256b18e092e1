"""System tests of failed authentication from one source (issue 19, item 2):
requests with a missing, malformed, stale or unknown-client Authorization
cost the append-only audit_log a few rows a minute per source address (one
per reason, each carrying its count; src/server/authfail.c), and an address
that fails AUTH_FAILURES_PER_MINUTE times (keytrustee.conf) is answered 429
with Retry-After for the rest of its minute (src/server/throttle.c), loopback
included.  Other addresses, and valid clients' requests, go on as before.

Each test runs its own server on a copy of the session's conf dir (the
session's PostgreSQL) and uses source addresses of its own in 127/8, so the
audit rows it counts are its own.
"""

import http.client
import json
import secrets
import time

import pytest

from conftest import no_verify_context, update_conf, wait_for
from test_api import Client, as_json, new_org, sql_quote

LIMIT = 50
FLOOD = 2000


def source():
    """A loopback address no other test uses."""
    return "127.%d.%d.%d" % (100 + secrets.randbelow(100), secrets.randbelow(256),
                            2 + secrets.randbelow(250))


class Conn:
    """One keep-alive HTTPS connection from a given source address."""

    def __init__(self, port, src):
        self.conn = http.client.HTTPSConnection(
            "127.0.0.1", port, context=no_verify_context(), timeout=30,
            source_address=(src, 0))

    def request(self, method, path, headers=(), body=b""):
        self.conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers:
            self.conn.putheader(k, v)
        if body or method == "POST":
            self.conn.putheader("Content-Length", str(len(body)))
        self.conn.endheaders(body if body else None)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def close(self):
        self.conn.close()


def bad_headers(i):
    """The i-th bad Authorization: none, malformed, an unknown client, stale."""
    now = int(time.time())
    kind = i % 4
    if kind == 0:
        return "no_header", []
    if kind == 1:
        return "malformed", [("Authorization", "Basic " + secrets.token_hex(8))]
    fpr = secrets.token_hex(20).upper()
    sig = secrets.token_hex(32)
    if kind == 2:
        return "unknown_client", [("Authorization", "KT1-HMAC-SHA256 fp=%s,ts=%d,sig=%s"
                                   % (fpr, now, sig))]
    return "stale", [("Authorization", "KT1-HMAC-SHA256 fp=%s,ts=%d,sig=%s"
                      % (fpr, now - 3600, sig))]


class Audit:
    def __init__(self, cluster):
        self.cluster = cluster

    def rows(self, src):
        """(action, actor, result, count) of src's rows, ordered."""
        out = self.cluster.psql(
            "SELECT action, coalesce(actor, '-'), result, count FROM audit_log "
            "WHERE remote_addr = %s ORDER BY result" % sql_quote(src))
        return [tuple(line.split("|")[:3]) + (int(line.split("|")[3]),)
                for line in out.splitlines() if line]

    def nrows(self, src, action=None):
        cond = "" if action is None else " AND action = %s" % sql_quote(action)
        return int(self.cluster.psql("SELECT count(*) FROM audit_log WHERE remote_addr = %s%s"
                                     % (sql_quote(src), cond)))


@pytest.fixture
def flood_server(registry, dbconf, make_server, session_db):
    update_conf(dbconf, AUTH_FAILURES_PER_MINUTE=LIMIT)
    srv = make_server(dbconf, name="flood").start()
    return srv, Audit(session_db.cluster)


def signed(c, conn, method, uri, body=b""):
    headers = [("Authorization", c.auth_header(method, uri, body))]
    if body:
        headers.append(("Content-Type", "application/json"))
    return conn.request(method, uri, headers, body)


def register_from(c, port, org, src):
    status, ans = c.register(port, org, source=src)
    assert status == 201, ans
    return c


def test_flood_costs_a_few_rows_with_counts_and_429s(registry, flood_server):
    srv, audit = flood_server
    a, b = source(), source()
    conn = Conn(srv.port, a)
    sent = {"no_header": 0, "malformed": 0, "unknown_client": 0, "stale": 0}
    statuses = []
    try:
        for i in range(FLOOD):
            why, headers = bad_headers(i)
            status, hdrs, data = conn.request("GET", "/v1/deposits", headers)
            statuses.append(status)
            if status == 401:
                sent[why] += 1
            else:
                assert status == 429, data
                assert as_json(data)["code"] == "throttled"
                assert 1 <= int(hdrs["retry-after"]) <= 60
    finally:
        conn.close()
    # The limit, then 429 for the rest of the minute (loopback included).
    assert statuses[:LIMIT] == [401] * LIMIT
    assert statuses[LIMIT:] == [429] * (FLOOD - LIMIT)
    # Nothing was written per request: the tallies wait for their minute.
    assert audit.nrows(a) == 0

    # Another address is served: refused 401 (not 429), and a valid
    # client from it is answered.
    other = Conn(srv.port, b)
    try:
        status, _, data = other.request("GET", "/v1/deposits")
        assert status == 401 and as_json(data)["code"] == "unauthorized"
        org = new_org(audit.cluster, "")
        c = register_from(Client(registry, "floodok"), srv.port, org, b)
        status, _, data = signed(c, other, "POST", "/v1/deposits",
                                 json.dumps({"name": "n", "content": "AAAA"}).encode())
        assert status == 201, data
        status, _, data = signed(c, other, "GET", "/v1/deposits/" + as_json(data)["uuid"])
        assert status == 200, data
    finally:
        other.close()

    # Shutdown writes the tallies: one row per reason, with its count.
    assert srv.stop() == 0
    rows = audit.rows(a)
    want = sorted([("auth", "-", why, n) for why, n in sent.items() if n]
                  + [("auth", "-", "throttled", FLOOD - LIMIT)], key=lambda r: r[2])
    assert rows == want
    assert sum(r[3] for r in rows) == FLOOD
    # b's one failure is its own tally, its client's requests rows as ever.
    assert ("auth", "-", "no_header", 1) in audit.rows(b)
    assert audit.nrows(b, "deposit_create") == 1 and audit.nrows(b, "deposit_read") == 1


def test_tallies_are_written_every_minute(flood_server):
    srv, audit = flood_server
    a = source()
    conn = Conn(srv.port, a)
    try:
        for i in range(10):
            status, _, _ = conn.request("GET", "/v1/deposits", bad_headers(0)[1])
            assert status == 401
    finally:
        conn.close()
    # Within the minute (and a margin), without a shutdown.
    wait_for(lambda: audit.nrows(a) > 0, timeout=75, what="the minute's tally",
             interval=1.0)
    assert srv.running()
    assert audit.rows(a) == [("auth", "-", "no_header", 10)]
    row_at = audit.cluster.psql("SELECT extract(epoch FROM now() - at)::int FROM audit_log "
                                "WHERE remote_addr = %s" % sql_quote(a))
    assert 0 <= int(row_at) <= 80  # the time of its first failure


def test_valid_client_is_never_throttled_and_audited_per_request(registry, flood_server):
    srv, audit = flood_server
    a = source()
    org = new_org(audit.cluster, "")
    c = register_from(Client(registry, "floodvalid"), srv.port, org, a)
    conn = Conn(srv.port, a)
    try:
        status, _, data = signed(c, conn, "POST", "/v1/deposits",
                                 json.dumps({"name": "v", "content": "AAAA"}).encode())
        assert status == 201, data
        uuid = as_json(data)["uuid"]
        for _ in range(2 * LIMIT):
            status, _, data = signed(c, conn, "GET", "/v1/deposits/" + uuid)
            assert status == 200, data
        # Each read has its row, written before its answer, as before.
        assert audit.nrows(a, "deposit_read") == 2 * LIMIT
        assert audit.nrows(a, "auth") == 0
        # A known client's bad signature is a row of its own, naming it.
        hdr = c.auth_header("GET", "/v1/deposits", b"", secret=b"x" * 32)
        status, _, _ = conn.request("GET", "/v1/deposits", [("Authorization", hdr)])
        assert status == 401
        assert audit.nrows(a, "auth") == 1
        assert ("auth", c.fpr, "bad_signature", 1) in audit.rows(a)
    finally:
        conn.close()


@pytest.mark.parametrize("value", [0, -1, "60", 1.5, 1000001])
def test_bad_limit_refuses_to_start(registry, dbconf, make_server, value):
    update_conf(dbconf, AUTH_FAILURES_PER_MINUTE=value)
    srv = make_server(dbconf, name="badlimit").spawn()
    assert srv.wait(timeout=30) != 0
    assert "AUTH_FAILURES_PER_MINUTE" in srv.log()


def test_legacy_requests_of_no_client_are_tallied_and_limited(flood_server):
    """The legacy protocol's requests the server cannot trace to a client
    (here a payload it cannot decrypt) count and are audited the same way."""
    srv, audit = flood_server
    a, b = source(), source()
    body = b"payload=" + b"A" * 64
    form = [("Content-Type", "application/x-www-form-urlencoded")]
    conn = Conn(srv.port, a)
    statuses = []
    try:
        for _ in range(LIMIT + 30):
            status, hdrs, data = conn.request("POST", "/?a=put", form, body)
            statuses.append(status)
            if status == 429:
                assert data.startswith(b"reason=") and int(hdrs["retry-after"]) >= 1
    finally:
        conn.close()
    assert statuses == [400] * LIMIT + [429] * 30
    assert audit.nrows(a) == 0
    # The other address is refused for its payload, not throttled.
    other = Conn(srv.port, b)
    try:
        assert other.request("POST", "/?a=put", form, body)[0] == 400
    finally:
        other.close()
    assert srv.stop() == 0
    assert audit.rows(a) == [("put", "-", "bad_payload", LIMIT), ("put", "-", "throttled", 30)]
