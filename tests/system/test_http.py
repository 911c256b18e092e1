"""System tests of the server's HTTP/1.1 layer (src/server/http.c over
src/common/httpmsg.c), spoken over raw TLS sockets: pipelined requests,
signed reads whose answers wait for their audit rows, a chunked body,
Expect: 100-continue, HTTP/1.0, a request sent a byte at a time, malformed
requests answered in JSON and closed, a refused body read and dropped so
that its refusal is read, and a client that leaves while its read is in
flight.

Reuses test_api's helpers, conftest's session PostgreSQL and a module
server.
"""

import base64
import json
import socket
import time

import pytest

from conftest import no_verify_context
# env, open_org: test_api's module fixtures (an org without a secret).
from test_api import env, http_request, open_org, registered  # noqa: F401


@pytest.fixture(scope="module")
def dave(env, registry, open_org):  # noqa: F811 (the fixture)
    return registered(env, registry, open_org, "dave")


class Conn:
    """One TLS connection, read as a stream of HTTP answers."""

    def __init__(self, port, timeout=15):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.s = no_verify_context().wrap_socket(raw, server_hostname="localhost")
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def answer(self):
        """(status, headers with lower-case names, body) of the next answer."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        hdrs = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        if status == 100:
            return status, hdrs, b""
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, hdrs, body

    def closed(self):
        """True when the server closes the connection (nothing more comes)."""
        try:
            while True:
                self._fill()
        except EOFError:
            return True
        except (socket.timeout, TimeoutError):
            return False

    def close(self):
        self.s.close()


def signed(c, method, uri, body=b"", ctype="application/json", extra=""):
    head = "%s %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: %s\r\n" % (
        method, uri, c.auth_header(method, uri, body))
    if body or method == "POST":
        head += "Content-Type: %s\r\nContent-Length: %d\r\n" % (ctype, len(body))
    return (head + extra + "\r\n").encode() + body


def put_body(name, content):
    return json.dumps({"name": name, "content": base64.b64encode(content).decode()}).encode()


def test_pipelined_signed_reads_answer_in_order(env, dave):
    uuids = []
    for i in range(3):
        status, ans = dave.put(env.port, "pipe-%d" % i, b"%d" % i * 50)
        assert status == 201
        uuids.append(ans["uuid"])
    conn = Conn(env.port)
    try:
        # Reads (each waits for its audit row), a miss, a write, an unsigned
        # request: all in one write, answered in the order sent.
        batch = b"".join(signed(dave, "GET", "/v1/deposits/" + u) for u in uuids)
        batch += signed(dave, "GET", "/v1/deposits/00000000-0000-4000-8000-000000000000")
        batch += signed(dave, "POST", "/v1/deposits", put_body("pipe-new", b"n"))
        batch += b"GET /?a=fingerprint HTTP/1.1\r\nHost: localhost\r\n\r\n"
        conn.send(batch)
        for i, u in enumerate(uuids):
            status, _, body = conn.answer()
            assert status == 200, body
            doc = json.loads(body)
            assert doc["uuid"] == u
            assert base64.b64decode(doc["content"]) == b"%d" % i * 50
        assert conn.answer()[0] == 404
        status, hdrs, body = conn.answer()
        assert status == 201 and hdrs["location"].endswith(json.loads(body)["uuid"])
        status, _, body = conn.answer()
        assert status == 200 and body.decode() == env.server.fingerprint
    finally:
        conn.close()


def test_chunked_body_is_decoded(env, dave):
    body = put_body("chunked", b"c" * 3000)
    chunks = b""
    for i in range(0, len(body), 1000):
        part = body[i:i + 1000]
        chunks += b"%x;ext=1\r\n%s\r\n" % (len(part), part)
    chunks += b"0\r\n\r\n"
    head = ("POST /v1/deposits HTTP/1.1\r\nHost: localhost\r\nAuthorization: %s\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            % dave.auth_header("POST", "/v1/deposits", body)).encode()
    conn = Conn(env.port)
    try:
        conn.send(head + chunks)
        status, _, ans = conn.answer()
        assert status == 201, ans
        status, got = dave.get(env.port, json.loads(ans)["uuid"])
        assert status == 200 and base64.b64decode(got["content"]) == b"c" * 3000
    finally:
        conn.close()


def test_expect_100_continue(env, dave):
    body = put_body("expect", b"e" * 2000)
    conn = Conn(env.port)
    try:
        conn.send(signed(dave, "POST", "/v1/deposits", body, extra="Expect: 100-continue\r\n")
                  [:-len(body)])
        assert conn.answer()[0] == 100
        conn.send(body)
        status, _, ans = conn.answer()
        assert status == 201, ans
    finally:
        conn.close()


def test_http10_closes_unless_keep_alive(env):
    conn = Conn(env.port, timeout=5)
    try:
        conn.send(b"GET /?a=fingerprint HTTP/1.0\r\n\r\n")
        status, hdrs, _ = conn.answer()
        assert status == 200 and hdrs["connection"] == "close"
        assert conn.closed()
    finally:
        conn.close()
    conn = Conn(env.port, timeout=2)
    try:
        for _ in range(2):
            conn.send(b"GET /?a=fingerprint HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, hdrs, _ = conn.answer()
            assert status == 200 and hdrs["connection"] == "keep-alive"
        assert not conn.closed()
    finally:
        conn.close()


def test_request_a_byte_at_a_time(env, dave):
    uuid = dave.put(env.port, "slow", b"s" * 10)[1]["uuid"]
    conn = Conn(env.port)
    try:
        for b in signed(dave, "GET", "/v1/deposits/" + uuid):
            conn.send(bytes([b]))
        status, _, body = conn.answer()
        assert status == 200 and json.loads(body)["uuid"] == uuid
    finally:
        conn.close()


@pytest.mark.parametrize("raw, status, code", [
    (b"GARBAGE\r\n\r\n", 400, "bad_request"),
    (b"GET / HTTP/2.0\r\n\r\n", 505, "http_version"),
    (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, "bad_request"),
    (b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400, "bad_request"),
    (b"POST /v1/deposits HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400,
     "bad_request"),
    (b"POST /v1/deposits HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "not_implemented"),
    (b"POST /v1/deposits HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
     400, "bad_request"),
    (b"POST /v1/deposits HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
     "bad_request"),
    (b"POST /v1/deposits HTTP/1.1\r\nExpect: nothing\r\n\r\n", 417, "expectation_failed"),
    # RFC 9112: only HTTP/1.0 and 1.1; Host exactly once in 1.1, never twice.
    (b"GET /?a=fingerprint HTTP/1.9\r\nHost: localhost\r\n\r\n", 505, "http_version"),
    (b"GET /?a=fingerprint HTTP/1.1\r\n\r\n", 400, "bad_request"),
    (b"GET /?a=fingerprint HTTP/1.1\r\nHost: localhost\r\nHost: evil\r\n\r\n", 400,
     "bad_request"),
    (b"GET /?a=fingerprint HTTP/1.0\r\nHost: localhost\r\nhost: evil\r\n\r\n", 400,
     "bad_request"),
], ids=["request-line", "version", "field-name", "folded", "two-lengths", "coding",
        "length-and-chunked", "chunk-size", "expect", "version-1.9", "no-host",
        "two-hosts", "two-hosts-1.0"])
def test_malformed_request_json_and_closed(env, raw, status, code):
    before = env.deposits_snapshot()
    conn = Conn(env.port, timeout=5)
    try:
        # What follows a request that cannot be parsed is never run.
        conn.send(raw + b"GET /?a=fingerprint HTTP/1.1\r\nHost: localhost\r\n\r\n")
        got, hdrs, body = conn.answer()
        assert got == status, body
        assert "application/json" in hdrs["content-type"]
        assert hdrs["connection"] == "close"
        assert json.loads(body)["code"] == code
        assert conn.closed()
    finally:
        conn.close()
    assert env.deposits_snapshot() == before


def too_large_head(n):
    return (b"POST /v1/deposits HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % n)


def test_refused_body_is_dropped_and_the_refusal_read(env):
    """A client that sends all of a body refused by its length gets to send
    it (the server reads it and drops it) and reads the 413, not a reset."""
    body = b"x" * (3 * 1024 * 1024)
    before = env.deposits_snapshot()
    for _ in range(3):
        conn = Conn(env.port, timeout=10)
        try:
            conn.send(too_large_head(len(body)) + body)
            got, hdrs, data = conn.answer()
            assert got == 413, data
            assert hdrs["connection"] == "close"
            assert json.loads(data)["code"] == "too_large"
            assert conn.closed()
        finally:
            conn.close()
    assert env.deposits_snapshot() == before
    assert env.server.proc.poll() is None


def test_refused_client_is_not_read_for_ever(env):
    """What is dropped after a refusal is bounded (16 MiB, 5 s): a client
    that goes on sending is cut off, well before what it declared."""
    conn = Conn(env.port, timeout=10)
    chunk = b"y" * (1024 * 1024)
    sent = 0
    try:
        conn.send(too_large_head(64 * len(chunk)))
        with pytest.raises(OSError):
            while sent < 64 * len(chunk):
                conn.send(chunk)
                sent += len(chunk)
    finally:
        conn.close()
    assert sent < 64 * len(chunk)
    assert http_request(env.port, "GET", "/?a=fingerprint")[0] == 200


def test_client_gone_while_its_read_waits(env, dave):
    uuid = dave.put(env.port, "gone", b"g" * 10)[1]["uuid"]
    for _ in range(20):
        conn = Conn(env.port)
        conn.send(signed(dave, "GET", "/v1/deposits/" + uuid) * 3)
        conn.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()  # a reset, while the reads wait for their audit rows
    time.sleep(0.5)
    status, got = dave.get(env.port, uuid)
    assert status == 200 and got["uuid"] == uuid
    assert env.server.proc.poll() is None


def test_connections_spread_over_workers(dbconf, make_server):
    """Whichever worker wakes first accepts; each new connection goes to the
    worker with the fewest open (/health "connections", one per worker)."""
    srv = make_server(dbconf, name="spread", extra_args=["--threads", "3"]).start()
    conns = []
    try:
        for _ in range(30):
            conns.append(Conn(srv.port))
            conns[-1].send(b"GET /?a=fingerprint HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert conns[-1].answer()[0] == 200
        status, _, data = http_request(srv.port, "GET", "/health")
        per_worker = json.loads(data)["connections"]
        assert len(per_worker) == 3 and sum(per_worker) == 31, per_worker
        assert max(per_worker) - min(per_worker) <= 1, per_worker
    finally:
        for c in conns:
            c.close()


def test_requests_before_the_client_closes_its_side_are_answered(env):
    """A client that sends its requests and then its close_notify (what
    `openssl s_client` does at the end of its input) still gets every
    answer, then the server's close_notify."""
    import ssl
    raw = socket.create_connection(("127.0.0.1", env.port), timeout=10)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = no_verify_context().wrap_bio(inc, out, server_hostname="localhost")

    def pump():
        if out.pending:
            raw.sendall(out.read())

    def more():
        chunk = raw.recv(65536)
        if not chunk:
            inc.write_eof()
        else:
            inc.write(chunk)
        return chunk

    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pump()
                more()
        pump()
        tls.write(b"GET /?a=fingerprint HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        try:
            tls.unwrap()  # our close_notify
        except ssl.SSLWantReadError:
            pass
        pump()
        data, closed = b"", False
        while not closed:
            try:
                data += tls.read(65536)
            except ssl.SSLWantReadError:
                closed = not more()
            except ssl.SSLZeroReturnError:
                closed = True
    finally:
        raw.close()
    assert data.count(b"HTTP/1.1 200 OK\r\n") == 2, data[:300]
