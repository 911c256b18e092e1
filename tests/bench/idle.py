"""Server memory (RSS) with many TLS connections held open and idle."""

import socket
import ssl
import threading
import time

OPENERS = 4
IDLE_TIMEOUT_S = 30  # HTTP_TIMEOUT_SECS, src/server/http.c


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def measure(pid, port, n, log):
    """Open n TLS connections (full handshakes, nothing sent after), read the
    server's VmRSS while they are all open, close them.  Bounded: each
    connection has a 5 s timeout and the whole opening 120 s."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    before = rss_mib(pid)
    conns = []
    fails = []
    t0 = time.monotonic()

    def opener(k):
        # The handshakes run in OpenSSL without the GIL: OPENERS threads
        # open them side by side, so that all are up well inside the
        # server's 30 s idle timeout, which closes the first ones else.
        # (list.append is atomic: each connection is in conns, and so
        # closed below, as soon as it is open.)
        for _ in range(k):
            if time.monotonic() - t0 > 120:
                break
            try:
                raw = socket.create_connection(("127.0.0.1", port), timeout=5)
                conns.append(ctx.wrap_socket(raw, server_hostname="localhost"))
            except (OSError, ssl.SSLError) as e:
                fails.append(e)

    try:
        threads = [threading.Thread(target=opener, args=(n // OPENERS + (i < n % OPENERS),))
                   for i in range(OPENERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        failed = len(fails)
        opened = time.monotonic() - t0
        if opened > IDLE_TIMEOUT_S:
            log("idle: opening took %.0f s, longer than the server's %d s idle timeout: "
                "the first connections are closed by then" % (opened, IDLE_TIMEOUT_S))
        time.sleep(1)
        # still open? a closed one reads EOF at once
        alive = 0
        for c in conns:
            c.setblocking(False)
            try:
                if c.recv(1) == b"":
                    continue
            except (ssl.SSLWantReadError, BlockingIOError):
                pass
            except (OSError, ssl.SSLError):
                continue
            alive += 1
        rss = rss_mib(pid)
        log("idle: %d connections open (%d alive after 1 s, %d failed) in %.1f s; "
            "RSS %.1f MiB (before %.1f)" % (len(conns), alive, failed, opened, rss, before))
    finally:
        for c in conns:
            try:
                c.close()
            except OSError:
                pass
    return {"wanted": n, "held": alive, "failed": failed, "rss_mib": rss,
            "rss_before_mib": before, "per_conn_kib": (rss - before) * 1024 / max(alive, 1)}
