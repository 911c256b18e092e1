"""The client's read failover (issue 19, item 6), on the real HA pair of
test_ha.py: every transport failure of a read (connection refused, reset,
EOF mid-answer, a stall past the client's TIMEOUT, a 5xx) goes on to the
passive server, then to the cache when the cache is allowed; writes go to
the active only.

The failure classes are played by a broken server written here: a real
TCP/TLS listener on loopback (a generated certificate; the client was
registered with --skip-ssl-check) that resets, closes mid-answer, answers
503 or stalls.  It stands in for a broken keytrustee-server; the client,
the passive and the HA pair are the real ones.
"""

import json
import os
import random
import select
import socket
import ssl
import struct
import threading
import time

import pytest

from conftest import free_port, run, tool
from test_client import client, err, ok, read_client_conf
from test_ha import ha  # noqa: F401  (the module's own HA pair)


def write_client_conf(confdir, conf):
    path = os.path.join(confdir, "keytrustee.conf")
    with open(path, "w") as f:
        json.dump(conf, f)
    os.chmod(path, 0o600)


@pytest.fixture
def conf(ha):
    """The HA client's keytrustee.conf, put back after the test."""
    saved = read_client_conf(ha.client)
    yield saved
    write_client_conf(ha.client, saved)


@pytest.fixture(scope="module")
def deposit(ha):
    proc = ok(client(ha.client, "put", "--name", "failover", input=b"fo"))
    return proc.stdout.decode().strip()


@pytest.fixture(scope="module")
def cert(registry):
    d = registry.mkdtemp("broken-cert-")
    crt, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    run([tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1",
         "-days", "1", "-keyout", key, "-out", crt], check=True)
    return crt, key


def read_request(tls):
    """The request's head (a GET has no body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def reset(sock):
    """Close with RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def pipe(a, b):
    """Copy bytes both ways until one side closes."""
    socks = [a, b]
    try:
        while True:
            r, _, _ = select.select(socks, [], [], 30)
            if not r:
                return
            for s in r:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)
    except OSError:
        pass


class Broken:
    """A listener on 127.0.0.1 that fails each connection the way its
    behave(conn, n) says (n counts connections from 0)."""

    def __init__(self, cert, behave):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(*cert)
        self.behave = behave
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self.count = 0
        self.conns = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            n, self.count = self.count, self.count + 1
            threading.Thread(target=self.one, args=(conn, n), daemon=True).start()

    def one(self, conn, n):
        try:
            self.behave(self, conn, n)
        except (OSError, ssl.SSLError):
            pass

    def tls(self, conn):
        return self.ctx.wrap_socket(conn, server_side=True)

    def close(self):
        self.done.set()
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def answer(tls, status, body, length=None):
    body = body.encode() if isinstance(body, str) else body
    head = ("HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\nConnection: close\r\n\r\n"
            % (status, len(body) if length is None else length))
    tls.sendall(head.encode() + body)


def refuse_tcp(srv, conn, n):
    reset(conn)


def reset_after_request(srv, conn, n):
    tls = srv.tls(conn)
    read_request(tls)
    reset(conn)


def eof_mid_answer(srv, conn, n):
    tls = srv.tls(conn)
    read_request(tls)
    answer(tls, "200 OK", '{"uuid": "x", "content": "hQIMA', length=4096)
    reset(conn)


def answer_503(srv, conn, n):
    tls = srv.tls(conn)
    read_request(tls)
    answer(tls, "503 Service Unavailable",
           '{"error": "the database is not available", "code": "database"}')
    tls.close()


def stall_after_request(srv, conn, n):
    tls = srv.tls(conn)
    read_request(tls)
    srv.done.wait(60)


def stall_before_tls(srv, conn, n):
    srv.done.wait(60)


def dead_url():
    """A loopback port nothing listens on: connection refused."""
    return "https://127.0.0.1:%d" % free_port()


def get(ha, uuid, *extra, timeout=60):
    return client(ha.client, "get", uuid, *extra, timeout=timeout)


# --------------------------------------------------------------------------
# the active killed at random points of a read loop


def test_kill9_active_at_random_every_read_succeeds(ha, deposit):
    """100 reads while a killer thread kill -9's the active at random
    moments (and starts it again): every read is answered."""
    stop, kills = threading.Event(), []

    def killer():
        rnd = random.Random()
        while not stop.is_set():
            time.sleep(rnd.uniform(0.0, 0.25))
            ha.active.proc.kill()
            ha.active.proc.wait(timeout=10)
            kills.append(time.monotonic())
            if stop.is_set():
                return
            time.sleep(rnd.uniform(0.0, 0.2))
            ha.active.start()

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    failed, by_passive = [], 0
    try:
        for i in range(100):
            proc = get(ha, deposit, "--no-cache")
            if proc.returncode != 0 or proc.stdout != b"fo":
                failed.append((i, proc.returncode, err(proc)))
            by_passive += "comes from the passive server" in err(proc)
    finally:
        stop.set()
        t.join(60)
        if not ha.active.running():
            ha.active.start()
    assert len(kills) >= 5, kills
    assert failed == []
    # The kills fell among the reads: both servers answered some.
    assert 0 < by_passive < 100, by_passive


# --------------------------------------------------------------------------
# each failure class of the active goes on to the passive


@pytest.mark.parametrize("behave", [refuse_tcp, reset_after_request, eof_mid_answer,
                                    answer_503],
                         ids=["reset", "reset-mid-request", "eof-mid-answer", "503"])
def test_active_failure_reads_from_passive(ha, conf, cert, deposit, behave):
    broken = Broken(cert, behave)
    try:
        write_client_conf(ha.client, dict(conf, SERVER=broken.url))
        t0 = time.monotonic()
        proc = ok(get(ha, deposit, "--no-cache"))
        assert proc.stdout == b"fo"
        assert "comes from the passive server" in err(proc)
        assert time.monotonic() - t0 < 10
        assert broken.count >= 1
    finally:
        broken.close()


@pytest.mark.parametrize("behave", [stall_after_request, stall_before_tls],
                         ids=["stall-answer", "stall-handshake"])
def test_active_stall_past_timeout_reads_from_passive(ha, conf, cert, deposit, behave):
    """A server that takes the connection and then says nothing: after the
    conf's TIMEOUT (2 s here, 10 by default) the read goes to the passive."""
    broken = Broken(cert, behave)
    try:
        write_client_conf(ha.client, dict(conf, SERVER=broken.url, TIMEOUT=2))
        t0 = time.monotonic()
        proc = ok(get(ha, deposit, "--no-cache", timeout=30))
        took = time.monotonic() - t0
        assert proc.stdout == b"fo" and "passive server" in err(proc)
        assert 1.5 < took < 10, took
    finally:
        broken.close()


def first_fails_then_passive(ha, first):
    """A listener whose first connection fails as first() says and whose
    later ones are piped to the real passive server (TLS end to end)."""

    def behave(srv, conn, n):
        if n == 0:
            return first(srv, conn, n)
        up = socket.create_connection(("127.0.0.1", ha.passive.port))
        try:
            pipe(conn, up)
        finally:
            up.close()
            conn.close()
    return behave


@pytest.mark.parametrize("first", [answer_503, refuse_tcp], ids=["503", "reset"])
def test_passive_not_ready_at_first_is_tried_again(ha, conf, cert, deposit, first):
    """The active is gone (refused) and the passive fails the first read (a
    passive not ready at that instant: 503, or a reset): the client tries
    the round again after a pause instead of giving up, and reads from it."""
    broken = Broken(cert, first_fails_then_passive(ha, first))
    try:
        write_client_conf(ha.client, dict(conf, SERVER=dead_url(),
                                          PASSIVE_SERVER=broken.url))
        proc = ok(get(ha, deposit, "--no-cache"))
        assert proc.stdout == b"fo" and "passive server" in err(proc)
        assert broken.count == 2
    finally:
        broken.close()


# --------------------------------------------------------------------------
# both fail: the cache when allowed, else an error naming both


def test_both_fail_cache_then_error_naming_both(ha, conf, cert, deposit):
    ok(get(ha, deposit))  # fills the cache
    active = Broken(cert, answer_503)
    dead = dead_url()
    try:
        write_client_conf(ha.client, dict(conf, SERVER=active.url, PASSIVE_SERVER=dead))
        proc = ok(get(ha, deposit))
        assert proc.stdout == b"fo" and "local cache" in err(proc)
        t0 = time.monotonic()
        proc = get(ha, deposit, "--no-cache")
        assert proc.returncode == 1 and proc.stdout == b""
        e = err(proc)
        # Each server's failure is named, in the order they were tried.
        assert active.url in e and "503" in e and dead in e, e
        assert e.index(active.url) < e.index(dead), e
        assert "hint: check that the server is up" in e
        # The rounds are bounded: a pause or two, not a hang.
        assert time.monotonic() - t0 < 5
    finally:
        active.close()


def test_writes_never_go_to_the_passive(ha, conf, cert):
    """A put whose active answers 503 is refused with the active's answer;
    nothing is sent to the passive (writes keep their rule)."""
    active = Broken(cert, answer_503)
    passive = Broken(cert, answer_503)
    try:
        write_client_conf(ha.client, dict(conf, SERVER=active.url,
                                          PASSIVE_SERVER=passive.url))
        proc = client(ha.client, "put", "--name", "w", input=b"w")
        assert proc.returncode == 1 and active.url in err(proc)
        assert active.count == 1 and passive.count == 0
    finally:
        active.close()
        passive.close()


@pytest.mark.parametrize("value", ["0", "-1", "\"10\"", "1.5", "86401"])
def test_bad_timeout_is_refused(ha, conf, deposit, value):
    path = os.path.join(ha.client, "keytrustee.conf")
    with open(path) as f:
        text = f.read()
    text = text.rstrip().rstrip("}") + ', "TIMEOUT": %s}\n' % value
    with open(path, "w") as f:
        f.write(text)
    proc = get(ha, deposit, "--no-cache")
    assert proc.returncode == 1
    assert "keytrustee.conf: TIMEOUT: " in err(proc), err(proc)


def test_timeout_kept_when_register_rewrites_the_conf(ha, deposit):
    """TIMEOUT is set by hand; register (again) writes the conf anew from
    its options and keeps it."""
    from test_client import register
    c = read_client_conf(ha.client)
    write_client_conf(ha.client, dict(c, TIMEOUT=7))
    try:
        ok(register(ha.client, ha.active.url, "ha-org", "--skip-ssl-check",
                    "--passive-server", ha.passive.url))
        assert read_client_conf(ha.client)["TIMEOUT"] == 7
        assert ok(get(ha, deposit, "--no-cache")).stdout == b"fo"
    finally:
        c = read_client_conf(ha.client)
        c.pop("TIMEOUT", None)
        write_client_conf(ha.client, c)
