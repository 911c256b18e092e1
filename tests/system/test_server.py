"""keytrustee-server's HTTP surface, keep-alive, and SIGTERM under load."""

import http.client
import json
import os
import re
import signal
import threading
import time

import pytest

from conftest import (FPR_RE, free_port, gpg_fingerprints, ktadmin, no_verify_context,
                      run, tool, update_conf)


def get(port, path, timeout=10):
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                       context=no_verify_context())
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


def test_fingerprint_as_in_the_guide(server):
    # curl -k https://keytrustee.example.com:11371/?a=fingerprint
    proc = run([tool("curl"), "-sS", "-k", server.url + "/?a=fingerprint"], timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert FPR_RE.match(proc.stdout), repr(proc.stdout)
    assert proc.stdout == "4096R/" + gpg_fingerprints(server.confdir)[0]


def test_fingerprint_over_localhost_name(server):
    proc = run([tool("curl"), "-sS", "-k",
                "https://localhost:%d/?a=fingerprint" % server.port], timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == server.fingerprint


def test_pubkey_imports_with_same_fingerprint(server, registry):
    status, _, body = get(server.port, "/?a=pubkey")
    assert status == 200
    text = body.decode()
    assert text.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert "-----END PGP PUBLIC KEY BLOCK-----" in text
    assert "PRIVATE" not in text
    home = registry.gnupg_home(os.path.join(registry.mkdtemp("gpgimport-"), "gnupg"))
    os.mkdir(home, 0o700)
    try:
        proc = run([tool("gpg"), "--homedir", home, "--batch", "--import"], input=text)
        assert proc.returncode == 0, proc.stderr
        assert gpg_fingerprints(home) == gpg_fingerprints(server.confdir)[:1]
        secret = run([tool("gpg"), "--homedir", home, "--batch", "--with-colons",
                      "--list-secret-keys"])
        assert "sec:" not in secret.stdout
    finally:
        registry.kill_gnupg(home)


def test_health(server):
    status, ctype, body = get(server.port, "/health")
    assert status == 200
    assert "application/json" in ctype
    doc = json.loads(body)
    assert doc["role"] == "active"
    db = doc["database"]
    if isinstance(db, dict):
        db = db["reachable"]
    assert db is True
    assert isinstance(doc["schema_version"], int) and doc["schema_version"] >= 1


def test_unknown_path_is_404_json(server):
    for path in ("/no/such/thing", "/v1/nothing-here", "/health/extra"):
        status, ctype, body = get(server.port, path)
        assert status == 404, (path, status, body)
        assert "application/json" in ctype
        doc = json.loads(body)
        assert isinstance(doc["error"], str) and doc["error"]
        assert isinstance(doc["code"], str) and doc["code"]
        # the request is not echoed back raw
        assert "nothing-here" not in doc["error"]


def test_unknown_action_is_json_error(server):
    status, ctype, body = get(server.port, "/?a=<script>nosuchaction")
    assert status in (400, 404), (status, body)
    assert "application/json" in ctype
    doc = json.loads(body)
    assert doc["error"] and doc["code"]
    assert "<script>" not in body.decode()


def test_keep_alive_curl(server):
    proc = run([tool("curl"), "-sS", "-k", "-v", server.url + "/?a=fingerprint",
                server.url + "/health"], timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert "Re-using existing connection" in proc.stderr, proc.stderr
    assert proc.stdout.startswith(server.fingerprint)


def test_keep_alive_http_client(server):
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=10,
                                       context=no_verify_context())
    try:
        conn.request("GET", "/?a=fingerprint")
        r1 = conn.getresponse()
        assert r1.read().decode() == server.fingerprint
        sock = conn.sock
        assert sock is not None, "server closed the connection after one request"
        conn.request("GET", "/?a=fingerprint")
        r2 = conn.getresponse()
        assert r2.read().decode() == server.fingerprint
        assert conn.sock is sock
        conn.request("GET", "/nope")
        r3 = conn.getresponse()
        assert r3.status == 404
        r3.read()
        assert conn.sock is sock
    finally:
        conn.close()


def test_https_only(server):
    # a plain HTTP request on the port does not get an answer in the clear
    proc = run([tool("curl"), "-sS", "--max-time", "5",
                "http://127.0.0.1:%d/?a=fingerprint" % server.port], timeout=20)
    assert server.fingerprint not in proc.stdout
    assert server.running()


def test_health_reports_unreachable_database(make_server, confcopy):
    # initialized but DB_CONNECT points to a port where nothing listens
    dead = free_port()
    update_conf(confcopy, DB_PORT=dead,
                DB_CONNECT="host=127.0.0.1 port=%d dbname=keytrustee user=keytrustee "
                           "connect_timeout=2" % dead)
    srv = make_server(confcopy).start()
    status, _, body = get(srv.port, "/health", timeout=30)
    doc = json.loads(body)
    db = doc["database"]
    if isinstance(db, dict):
        db = db["reachable"]
    assert db is False, doc
    assert status in (200, 503)
    # the fingerprint does not need the database
    assert get(srv.port, "/?a=fingerprint")[2].decode() == srv.fingerprint


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_exits_zero_when_idle(make_server, dbconf, sig):
    srv = make_server(dbconf).start()
    srv.signal(sig)
    assert srv.wait(timeout=10) == 0, srv.log()


def test_sigterm_with_idle_keep_alive_connection(make_server, dbconf):
    # a client that keeps its connection open must not hold up the exit
    srv = make_server(dbconf).start()
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=15,
                                       context=no_verify_context())
    try:
        conn.request("GET", "/?a=fingerprint")
        assert conn.getresponse().read().decode() == srv.fingerprint
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        rc = srv.wait(timeout=10)
        assert rc == 0, srv.log()
        assert time.monotonic() - t0 < 10
    finally:
        conn.close()


def test_sigterm_during_load(make_server, dbconf, session_db):
    cluster = session_db.cluster
    schema_before = cluster.schema_version()
    srv = make_server(dbconf, extra_args=["--threads", "2"]).start()
    expected = srv.fingerprint.encode()

    lock = threading.Lock()
    good = [0]
    bad = []
    errors = [0]
    stop_at = time.monotonic() + 3.0
    stop = threading.Event()

    def hammer():
        conn = None
        while not stop.is_set() and time.monotonic() < stop_at:
            try:
                if conn is None:
                    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=5,
                                                       context=no_verify_context())
                conn.request("GET", "/?a=fingerprint")
                resp = conn.getresponse()
                body = resp.read()
            except http.client.IncompleteRead as e:
                # headers said more than the body delivered: a cut 200
                with lock:
                    bad.append(("truncated", e.partial[:100]))
                conn.close()
                conn = None
                continue
            except (OSError, http.client.HTTPException):
                # refused or cut off after TERM: fine, as long as no
                # response was delivered short
                with lock:
                    errors[0] += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.01)
                continue
            with lock:
                if resp.status == 200 and body == expected:
                    good[0] += 1
                elif resp.status == 503:
                    pass  # draining may say so
                else:
                    bad.append((resp.status, body[:100]))
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        with lock:
            before_term = good[0]
        srv.signal(signal.SIGTERM)
        t0 = time.monotonic()
        rc = srv.wait(timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
    print("load: good=%d errors=%d bad=%d before_term=%d elapsed=%.2f" % (good[0], errors[0], len(bad), before_term, elapsed))
    assert before_term > 0, "no request succeeded before SIGTERM:\n" + srv.log()
    assert rc == 0, "exit %s after SIGTERM:\n%s" % (rc, srv.log())
    assert elapsed < 10
    assert not bad, "bad responses: %r" % bad[:5]

    # after a restart, the database is intact
    assert ktadmin("db", "--status", "--pg-rootdir", cluster.rootdir).returncode == 0
    assert cluster.schema_version() == schema_before
    srv.start()
    status, _, body = get(srv.port, "/health")
    doc = json.loads(body)
    assert doc["schema_version"] == schema_before
    db = doc["database"]
    assert (db["reachable"] if isinstance(db, dict) else db) is True
    assert get(srv.port, "/?a=fingerprint")[2] == expected


def test_server_logs_to_stderr(server):
    log = server.log()
    assert log.strip(), "no log lines on stderr"
    assert re.search(r"[0-9A-F]{40}|%d" % server.port, log)
