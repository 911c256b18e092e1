"""keytrustee-server --max-connections: connections beyond the limit fail
at their TLS handshake at once; a closed one makes room again; the option's
--help, bad values and missing argument."""

import socket
import ssl
import time

from conftest import binary, no_verify_context, run


def handshake(port, timeout=5):
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return no_verify_context().wrap_socket(raw, server_hostname="localhost")
    except (OSError, ssl.SSLError):
        raw.close()
        raise


def test_help_documents_max_connections():
    proc = run([binary("keytrustee-server"), "--help"])
    assert proc.returncode == 0
    assert "--max-connections N" in proc.stdout and "default 10000" in proc.stdout


def test_bad_and_missing_max_connections():
    for bad in ("0", "-1", "x", "1000001"):
        proc = run([binary("keytrustee-server"), "--max-connections", bad])
        assert proc.returncode == 2
        assert proc.stderr.startswith('error: --max-connections: "%s"' % bad)
    proc = run([binary("keytrustee-server"), "--max-connections"])
    assert proc.returncode == 2 and "requires an argument" in proc.stderr


def test_connections_beyond_the_limit_are_refused(dbconf, make_server):
    srv = make_server(dbconf, extra_args=["--max-connections", "3"]).start()
    # start() made (and closed) one connection; wait until it is uncounted
    held = []
    deadline = time.monotonic() + 10
    while len(held) < 3 and time.monotonic() < deadline:
        try:
            held.append(handshake(srv.port))
        except (OSError, ssl.SSLError):
            time.sleep(0.1)
    assert len(held) == 3
    try:
        t0 = time.monotonic()
        try:
            handshake(srv.port).close()
            refused = False
        except ssl.SSLError as e:
            refused = "handshake failure" in str(e).lower() or "alert" in str(e).lower()
        assert refused and time.monotonic() - t0 < 5
        assert "connection refused: 3 connections open" in srv.log()
        held.pop().close()
        ok = False
        deadline = time.monotonic() + 5
        while not ok and time.monotonic() < deadline:
            try:
                held.append(handshake(srv.port))
                ok = True
            except (OSError, ssl.SSLError):
                time.sleep(0.1)
        assert ok
    finally:
        for c in held:
            c.close()
