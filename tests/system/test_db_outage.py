"""The server's log while its PostgreSQL is down: every request still gets
its 503, but a warning repeated over and over is written once, then at
most once every few seconds with how many were left out since
(src/common/log.c).  Before, each failed request wrote its own line
(13,443 lines in 3 s of an outage under load).

The module has its own cluster, which it stops under a running server.
"""

import re
import threading
import time

import pytest

from conftest import Server
from test_api import Client, http_request, new_org
# orgdb: a module's own cluster, bootstrapped into a copy of the template.
from test_orgtool import orgdb  # noqa: F401

# log.c: the first of a run of the same warning, then one every LOG_REPEAT_SECS.
REPEAT_SECS = 5


@pytest.fixture(scope="module")
def outage(registry, orgdb):  # noqa: F811 (the fixture)
    """A server on a cluster of its own (test_orgtool's fixture: this
    module's), and an active client of it."""
    org = new_org(orgdb, "")
    srv = Server(registry, orgdb.confdir, name="outage").start()
    try:
        client = Client(registry, "outage")
        status, ans = client.register(srv.port, org)
        assert status == 201, ans
        yield srv, orgdb, client
    finally:
        srv.stop()


def hammer(port, client, seconds, threads=4):
    """Signed deposit lists (each needs the database) for seconds, from a
    few threads; the statuses seen."""
    statuses = []
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def one():
        while time.monotonic() < end:
            hdr = client.auth_header("GET", "/v1/deposits", b"")
            st = http_request(port, "GET", "/v1/deposits",
                              headers=[("Authorization", hdr)], timeout=30)[0]
            with lock:
                statuses.append(st)

    ts = [threading.Thread(target=one) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return statuses


def warnings_after(log, offset):
    return [l for l in log[offset:].splitlines() if "[WARNING]" in l]


def test_outage_warnings_are_counted_not_repeated(outage):
    srv, cluster, client = outage
    status, _, data = client.call(srv.port, "GET", "/v1/deposits")
    assert status == 200, data
    cluster.stop()
    mark = len(srv.log())
    seconds = REPEAT_SECS + 2
    statuses = hammer(srv.port, client, seconds)
    # Every request was answered, and as a database outage.
    assert len(statuses) >= 100, len(statuses)
    assert set(statuses) == {503}, set(statuses)
    warns = warnings_after(srv.log(), mark)
    # Each distinct warning: its first line, then at most one per period.
    per_text = {}
    for w in warns:
        text = re.sub(r"^\S+ \S+\[WARNING\]: ", "", w)
        text = re.sub(r" \(\d+ more since .*\)$", "", text)
        per_text[text] = per_text.get(text, 0) + 1
    bound = seconds // REPEAT_SECS + 2
    assert all(n <= bound for n in per_text.values()), "\n".join(warns)
    assert len(warns) < len(statuses) // 4, "\n".join(warns)
    # What was left out is counted, not lost.
    more = [int(m.group(1)) for m in
            (re.search(r"\((\d+) more since ", w) for w in warns) if m]
    assert more and sum(more) > 0, "\n".join(warns)

    # The database back: served again.
    assert cluster.start().returncode == 0
    deadline = time.monotonic() + 30
    while True:
        status, _, data = client.call(srv.port, "GET", "/v1/deposits")
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 200, data
