"""Connection hoarding (issue 19, item 3): one address holds at most
MAX_CONNECTIONS_PER_ADDRESS connections (the next is closed at once, before
any TLS), and at --max-connections a new connection closes the longest-idle
one, of any address and on any worker thread, instead of being refused.  So
one address holding all it may can never lock another out.

The server listens on 127.0.0.1; the clients bind 127.0.0.2, 127.0.0.3 ...
as their source address, which the server sees as different addresses."""

import json
import select
import socket
import ssl
import time

import pytest

from conftest import Server, no_verify_context, update_conf, wait_for

HOARDER = "127.0.0.2"
OTHER = "127.0.0.3"


def tls_from(src, port, timeout=5):
    """A TLS connection from source address src (handshake done)."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.settimeout(timeout)
    try:
        raw.bind((src, 0))
        raw.connect(("127.0.0.1", port))
        return no_verify_context().wrap_socket(raw, server_hostname="localhost")
    except (OSError, ssl.SSLError):
        raw.close()
        raise


def get(s, path):
    """GET path on an open connection (kept open): (status, body)."""
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, "connection closed before the answer"
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, "connection closed inside the answer"
        body += chunk
    return int(lines[0].split()[1]), body


def closed(s, timeout):
    """True when the server closed s within timeout (no request sent).
    What arrives unasked (TLS 1.3 session tickets) is read and ignored."""
    deadline = time.monotonic() + timeout
    saved = s.gettimeout()
    s.settimeout(0)
    try:
        while True:
            try:
                if s.recv(4096) == b"":
                    return True
            except ssl.SSLWantReadError:
                pass
            except (OSError, ssl.SSLError):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            select.select([s], [], [], left)
    finally:
        s.settimeout(saved)


def open_count(port):
    """Connections the server counts, from a connection of 127.0.0.1."""
    with tls_from("127.0.0.1", port) as s:
        status, body = get(s, "/health")
    return sum(json.loads(body)["connections"]) - 1


def settled(srv):
    """Wait until start()'s probe connection is gone from the counts."""
    wait_for(lambda: open_count(srv.port) == 0, timeout=10,
             what="no connection open")
    # the counting connection itself is freed once its EOF is read
    time.sleep(0.2)


def hold(src, port, n, gap=0.0):
    held = []
    try:
        for _ in range(n):
            held.append(tls_from(src, port))
            if gap:
                time.sleep(gap)
    except BaseException:
        for s in held:
            s.close()
        raise
    return held


def refused_at_once(src, port):
    """The connection is closed before its handshake completes, fast."""
    t0 = time.monotonic()
    try:
        tls_from(src, port).close()
        return False
    except (OSError, ssl.SSLError):
        return time.monotonic() - t0 < 3


def test_one_address_cannot_lock_out_another(dbconf, make_server):
    """127.0.0.2 takes its whole share (50, from keytrustee.conf), which
    here is also every connection the server allows; its 51st is refused
    before TLS, and 127.0.0.3 is still served: the longest-idle of
    127.0.0.2's (its first) makes room."""
    update_conf(dbconf, MAX_CONNECTIONS_PER_ADDRESS=50)
    srv = make_server(dbconf, extra_args=["--max-connections", "50"]).start()
    assert "at most 50 connections, 50 from one address" in srv.log()
    settled(srv)
    held = hold(HOARDER, srv.port, 50, gap=0.005)
    try:
        assert not any(closed(s, 0) for s in held)
        assert refused_at_once(HOARDER, srv.port)
        assert "connection from 127.0.0.2 refused: 50 connections open " \
            "from that address" in srv.log()
        # the refusal evicted nothing
        assert not any(closed(s, 0.2) for s in held)

        with tls_from(OTHER, srv.port) as s:
            status, body = get(s, "/health")
            assert status == 200, body
            assert json.loads(body)["status"] == "ok"
        assert closed(held[0], 5), "the longest-idle connection stays open"
        assert not any(closed(s, 0) for s in held[1:])
        assert "closing the longest-idle" in srv.log()

        # 127.0.0.2 is one short of its share again: one more is admitted
        held.append(tls_from(HOARDER, srv.port))
        status, _ = get(held[-1], "/health")
        assert status == 200
    finally:
        for s in held:
            s.close()


def test_option_overrides_the_conf_and_a_closed_one_makes_room(dbconf,
                                                              make_server):
    update_conf(dbconf, MAX_CONNECTIONS_PER_ADDRESS=50)
    srv = make_server(
        dbconf, extra_args=["--max-connections-per-address", "5"]).start()
    assert "at most 10000 connections, 5 from one address" in srv.log()
    settled(srv)
    held = hold(HOARDER, srv.port, 5)
    try:
        assert refused_at_once(HOARDER, srv.port)
        with tls_from(OTHER, srv.port) as s:
            assert get(s, "/health")[0] == 200
        # nothing was evicted: the global limit is far away
        assert not any(closed(s, 0.2) for s in held)
        held.pop(0).close()
        s = wait_for(lambda: _try(HOARDER, srv.port), timeout=5,
                     what="a connection from 127.0.0.2 after one closed")
        held.append(s)
        assert get(s, "/health")[0] == 200
    finally:
        for s in held:
            s.close()


def _try(src, port):
    try:
        return tls_from(src, port)
    except (OSError, ssl.SSLError):
        return None


@pytest.mark.parametrize("threads", [1, 2])
def test_the_limit_evicts_the_longest_idle_across_threads(dbconf, make_server,
                                                         threads):
    """20 connections, the limit, spread over the worker threads; each new
    one closes the one idle longest, whichever thread holds it (with one,
    the acceptor closes it itself): a request makes a connection the most
    recently idle."""
    srv = make_server(dbconf, extra_args=["--max-connections", "20",
                                          "--threads", str(threads)]).start()
    settled(srv)
    held = hold(HOARDER, srv.port, 20, gap=0.03)
    fresh = []
    try:
        # held[0] answers a request: now the most recently idle
        assert get(held[0], "/health")[0] == 200
        for k in range(1, 7):
            time.sleep(0.03)
            s = tls_from(OTHER, srv.port)
            fresh.append(s)
            assert get(s, "/health")[0] == 200
            assert closed(held[k], 5), "held[%d] was not evicted" % k
            alive = [i for i in range(len(held)) if i > k or i == 0]
            assert not [i for i in alive if closed(held[i], 0)], k
        # held[0] was spared and still serves
        assert get(held[0], "/health")[0] == 200
        # and the server counts what is open: 20 (+ the counting one)
        assert open_count(srv.port) <= 20
    finally:
        for s in held + fresh:
            s.close()


class NofileServer(Server):
    """The server under `prlimit --nofile=N:N`."""

    nofile = 600

    def argv(self):
        return ["prlimit", "--nofile=%d:%d" % (self.nofile, self.nofile),
                "--"] + super().argv()


def test_the_limit_fits_the_descriptors(registry, dbconf):
    """With fewer descriptors than --max-connections needs, the limit is
    what they allow (so connections beyond evict, instead of failing at
    accept), and the server says so."""
    srv = NofileServer(registry, dbconf)
    try:
        srv.start()
        log = srv.log()
        assert "the descriptor limit is 600" in log
        assert "serving at most 344 connections" in log
        assert "at most 344 connections, 512 from one address" in log
        assert get(tls_from(OTHER, srv.port), "/health")[0] == 200
    finally:
        srv.stop()
        registry.kill_gnupg(dbconf)
