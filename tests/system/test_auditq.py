"""System tests of the group commit (src/server/auditq.c) under concurrent
requests, where the deposits and read audit rows of many requests go in
one prepared statement of binary arrays: every field arrives as sent
(NULL and empty description, quotes, backslashes, non-ASCII), every
answer has its committed rows, and a row PostgreSQL refuses fails alone,
the others of its batch committed.

Reuses test_api's helpers, conftest's session PostgreSQL and a module
server.
"""

import base64
import os
import threading

import pytest

from test_api import Client, env, new_org, sql_quote  # noqa: F401 (env: fixture)

THREADS = 16


@pytest.fixture(scope="module")
def client(env, registry):
    c = Client(registry, "batcher")
    status, _ = c.register(env.port, new_org(env.cluster, ""))
    assert status == 201
    return c


def in_parallel(jobs):
    """Run the callables on THREADS threads at once; their results, in order."""
    results = [None] * len(jobs)
    start = threading.Barrier(THREADS)

    def worker(k):
        start.wait(timeout=60)
        for i in range(k, len(jobs), THREADS):
            try:
                results[i] = jobs[i]()
            except Exception as e:  # noqa: BLE001 (reported below)
                results[i] = e
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for r in results:
        assert not isinstance(r, Exception), repr(r)
    return results


def test_concurrent_puts_and_reads_keep_every_field_and_row(env, client):
    descs = [None, "", "it's \"quoted\" \\ back", "ключ für 鍵", "x" * 1024]
    sent = []
    for i in range(80):
        sent.append(("batch-%d-%s" % (i, "é" * (i % 3)), os.urandom(1 + i * 37 % 3000),
                     descs[i % len(descs)]))
    answers = in_parallel([lambda s=s: client.put(env.port, s[0], s[1], s[2])
                           for s in sent])
    assert all(st == 201 for st, _ in answers), answers
    uuids = [a["uuid"] for _, a in answers]
    assert len(set(uuids)) == len(uuids)
    inlist = ", ".join(sql_quote(u) for u in uuids)
    assert env.psql("SELECT count(*) FROM deposits WHERE uuid::text IN (%s) AND owner = %s"
                    % (inlist, sql_quote(client.fpr))) == str(len(uuids))
    assert env.psql("SELECT count(*) FROM audit_log WHERE action = 'deposit_create' AND "
                    "result = 'ok' AND actor = %s AND remote_addr = '127.0.0.1' AND "
                    "object IN (%s)" % (sql_quote(client.fpr), inlist)) == str(len(uuids))
    # NULL stays NULL, "" stays "".
    assert env.psql("SELECT count(*) FROM deposits WHERE uuid::text IN (%s) AND "
                    "description IS NULL" % inlist) == str(sum(1 for s in sent if s[2] is None))
    assert env.psql("SELECT count(*) FROM deposits WHERE uuid::text IN (%s) AND "
                    "description = ''" % inlist) == str(sum(1 for s in sent if s[2] == ""))
    reads = in_parallel([lambda u=u: client.get(env.port, u) for u in uuids])
    for (name, content, desc), (st, doc) in zip(sent, reads):
        assert st == 200, doc
        assert doc["name"] == name
        assert doc.get("description") == desc
        assert base64.b64decode(doc["content"]) == content
    assert env.psql("SELECT count(*) FROM audit_log WHERE action = 'deposit_read' AND "
                    "result = 'ok' AND object IN (%s)" % inlist) == str(len(uuids))


def test_a_row_postgres_refuses_fails_alone(env, client):
    """A CHECK constraint (added for the test) refuses one name: that
    request gets the single insert's 503, nothing of it is stored, and the
    requests batched with it are committed and answered 201."""
    env.psql("ALTER TABLE deposits ADD CONSTRAINT test_no_poison "
             "CHECK (name <> 'poison') NOT VALID")
    try:
        for rnd in range(3):
            names = ["ok-%d-%d" % (rnd, i) for i in range(THREADS * 2)]
            names[THREADS] = "poison"
            answers = in_parallel([lambda n=n: client.put(env.port, n, b"v")
                                   for n in names])
            for n, (st, doc) in zip(names, answers):
                if n == "poison":
                    assert st == 503 and doc["code"] == "database", doc
                else:
                    assert st == 201, (n, doc)
                    assert env.psql("SELECT name FROM deposits WHERE uuid = %s"
                                    % sql_quote(doc["uuid"])) == n
    finally:
        env.psql("ALTER TABLE deposits DROP CONSTRAINT test_no_poison")
    assert env.psql("SELECT count(*) FROM deposits WHERE name = 'poison'") == "0"
    assert "test_no_poison" in env.server.log()


def reads_backends(env):
    """Backends of the workers' read-audit connections (they ran kt_aq_reads)."""
    out = env.psql("SELECT pid FROM pg_stat_activity WHERE query LIKE "
                   "'INSERT INTO audit_log%''deposit_read''%unnest%'")
    return [int(p) for p in out.split()]


def test_reads_survive_their_audit_connections_killed(env, client):
    """Each worker commits its reads' rows on its own connection; with those
    backends terminated, the next reads are still answered only with their
    rows committed (the broken batch's rows one by one, then a new
    connection)."""
    status, ans = client.put(env.port, "killed", b"k" * 100)
    assert status == 201
    uuid = ans["uuid"]
    in_parallel([lambda: client.get(env.port, uuid) for _ in range(THREADS * 2)])
    pids = reads_backends(env)
    assert pids, "no read-audit connection seen"
    before = env.audit_count("deposit_read", "ok", client.fpr)
    env.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN (%s)"
             % ",".join(map(str, pids)))
    got = in_parallel([lambda: client.get(env.port, uuid) for _ in range(THREADS * 4)])
    assert all(status == 200 for status, _ in got), [s for s, _ in got]
    assert env.audit_count("deposit_read", "ok", client.fpr) == before + THREADS * 4
    assert not set(reads_backends(env)) & set(pids)
