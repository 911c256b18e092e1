"""The read-audit promise (issue 20, item 4; src/server/auditq.c): a read's
audit_log row is committed before its answer leaves and flushed to disk
within AUDIT_READ_FLUSH_MS (keytrustee.conf), by the server's own flusher,
not only by PostgreSQL's WAL writer; with 0, flushed before the answer.
Writes (new deposits, deletions, registrations) are flushed before their
answer whatever the setting.

What is on disk is read from PostgreSQL itself: pg_walinspect reads only
the WAL already flushed, so a transaction's commit record is found there
once, and only once, it is durable; pg_current_wal_flush_lsn() right after
an answer says how far the log was flushed then.  The module's own cluster
runs with wal_writer_delay = 10 s (its maximum), so that what flushes a
read's row within the window is the server, and `pg_ctl stop -m
immediate` (a crash: no shutdown checkpoint, WAL not flushed is lost)
shows what a crash keeps.
"""

import os
import threading
import time

import pytest

from conftest import Cluster, Server, copy_confdir, free_port, run, tool, update_conf
from test_api import Client, new_org, sql_quote

WAL_WRITER_DELAY = "10s"


class Db:
    def __init__(self, cluster):
        self.cluster = cluster

    def psql(self, sql):
        return self.cluster.psql(sql)

    def flush_lsn(self):
        return self.psql("SELECT pg_current_wal_flush_lsn()")

    def lsn_le(self, a, b):
        return self.psql("SELECT '%s'::pg_lsn <= '%s'::pg_lsn" % (a, b)) == "t"

    def commit_end(self, since, xid):
        """The end of xid's commit record if it is on disk (flushed), else
        None; since: a flushed LSN from before the transaction."""
        if self.psql("SELECT pg_current_wal_flush_lsn() > '%s'" % since) != "t":
            return None  # nothing flushed since (pg_walinspect refuses)
        out = self.psql(
            "SELECT end_lsn FROM pg_get_wal_records_info('%s', pg_current_wal_flush_lsn()) "
            "WHERE resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%%' "
            "AND xid = '%s'::xid" % (since, xid))
        return out or None

    def immediate_stop_and_start(self):
        """A crash of PostgreSQL (no checkpoint, no flush), then its start."""
        proc = run(["runuser", "-u", "keytrustee", "--", tool("pg_ctl"), "stop", "-D",
                    self.cluster.rootdir, "-m", "immediate", "-w"], cwd="/", timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        proc = self.cluster.start()
        assert proc.returncode == 0, proc.stdout + proc.stderr
        deadline = time.monotonic() + 60
        while self.cluster.psql("SELECT 1", check=False).returncode != 0:
            assert time.monotonic() < deadline, "PostgreSQL did not come back"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def flushdb(registry, template):
    """A cluster of this module's own (its WAL writer slowed, pg_walinspect
    in), a server on it, and an active client with one deposit."""
    confdir = copy_confdir(registry, template.confdir, "readflush")
    rootdir = os.path.join(registry.mkdtemp("readflush-pg-"), "pgdata")
    cluster = Cluster(registry, rootdir, free_port())
    proc = cluster.bootstrap(confdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cluster.psql("ALTER SYSTEM SET wal_writer_delay = '%s'" % WAL_WRITER_DELAY)
    cluster.psql("SELECT pg_reload_conf()")
    cluster.psql("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
    srv = Server(registry, confdir, name="readflush")
    org = new_org(cluster, "")
    try:
        srv.start()
        client = Client(registry, "readflush")
        status, ans = client.register(srv.port, org)
        assert status == 201, ans
        status, ans = client.put(srv.port, "flushed", b"f" * 64)
        assert status == 201, ans
        yield srv, Db(cluster), client, ans["uuid"], org
    finally:
        srv.stop()
        cluster.stop()
        registry.kill_gnupg(confdir)


def with_window(srv, ms):
    update_conf(srv.confdir, AUDIT_READ_FLUSH_MS=ms)
    srv.restart()


def read_row_xid(db, client, uuid):
    return db.psql("SELECT xmin FROM audit_log WHERE action = 'deposit_read' AND "
                   "result = 'ok' AND actor = %s AND object = %s ORDER BY at DESC, xmin::text::bigint "
                   "DESC LIMIT 1" % (sql_quote(client.fpr), sql_quote(uuid)))


def test_a_read_is_answered_before_its_flush_and_flushed_within_the_window(flushdb):
    """With a window of 2 s a read's answer does not wait for the disk (its
    row is committed, its commit not yet flushed when the answer is in),
    and the row reaches the disk within the window, although PostgreSQL's
    WAL writer would take up to 10 s.  (Before issue 20 every read's row
    was flushed before its answer: this failed.)"""
    srv, db, client, uuid, _ = flushdb
    window = 2000
    with_window(srv, window)
    for attempt in range(3):
        since = db.flush_lsn()
        status, doc = client.get(srv.port, uuid)
        answered = time.monotonic()
        assert status == 200, doc
        at_answer = db.flush_lsn()
        xid = read_row_xid(db, client, uuid)
        assert xid, "the read's row is not committed at its answer"
        end = None
        while end is None and time.monotonic() - answered < window / 1000 + 5:
            end = db.commit_end(since, xid)
            if end is None:
                time.sleep(0.02)
        flushed = time.monotonic()
        assert end is not None, "the read's row was not flushed within %d ms" % window
        if not db.lsn_le(end, at_answer):
            break
        # PostgreSQL's WAL writer flushed it just then (every 10 s): again.
    else:
        pytest.fail("the read's row was flushed before its answer every time")
    # The window, plus a flush and this test's polling on a busy machine.
    assert flushed - answered <= window / 1000 + 1.5, flushed - answered


def test_window_zero_flushes_each_read_before_its_answer(flushdb):
    srv, db, client, uuid, _ = flushdb
    with_window(srv, 0)
    for _ in range(3):
        since = db.flush_lsn()
        status, doc = client.get(srv.port, uuid)
        assert status == 200, doc
        at_answer = db.flush_lsn()
        end = db.commit_end(since, read_row_xid(db, client, uuid))
        assert end is not None and db.lsn_le(end, at_answer), (end, at_answer)


def test_writes_are_flushed_before_their_answer_in_window_mode(flushdb, registry):
    """A new deposit (the deposit lane), a deletion, a registration: each
    one's commit is on disk when its answer is in, with a long read window
    and reads going on meanwhile."""
    srv, db, client, uuid, org = flushdb
    with_window(srv, 5000)
    stop = threading.Event()

    def reads():
        while not stop.is_set():
            client.get(srv.port, uuid)
    reader = threading.Thread(target=reads)
    reader.start()
    try:
        for i in range(3):
            since = db.flush_lsn()
            status, ans = client.put(srv.port, "w-%d" % i, os.urandom(100))
            assert status == 201, ans
            at_answer = db.flush_lsn()
            xid = db.psql("SELECT xmin FROM deposits WHERE uuid = %s" % sql_quote(ans["uuid"]))
            end = db.commit_end(since, xid)
            assert end is not None and db.lsn_le(end, at_answer), ("deposit", end, at_answer)

            since = db.flush_lsn()
            status, doc = client.delete(srv.port, ans["uuid"])
            assert status in (200, 204), doc
            at_answer = db.flush_lsn()
            xid = db.psql("SELECT xmin FROM audit_log WHERE action = 'deposit_delete' AND "
                          "object = %s" % sql_quote(ans["uuid"]))
            end = db.commit_end(since, xid)
            assert end is not None and db.lsn_le(end, at_answer), ("delete", end, at_answer)

            since = db.flush_lsn()
            other = Client(registry, "rf-writer-%d" % i)
            status, doc = other.register(srv.port, org)
            assert status == 201, doc
            at_answer = db.flush_lsn()
            xid = db.psql("SELECT xmin FROM clients WHERE fingerprint = %s"
                          % sql_quote(other.fpr))
            end = db.commit_end(since, xid)
            assert end is not None and db.lsn_le(end, at_answer), ("register", end, at_answer)
    finally:
        stop.set()
        reader.join(timeout=60)


def test_a_postgres_crash_loses_no_read_older_than_the_window(flushdb):
    """Reads answered, then twice the window, then PostgreSQL stopped with
    `-m immediate` (its WAL buffers lost, as in a crash) and started: every
    answered read has its row.  PostgreSQL alone (its WAL writer every
    10 s here) would lose some of them in most rounds."""
    srv, db, client, uuid, _ = flushdb
    window = 300
    with_window(srv, window)
    for rnd in range(3):
        before = int(db.psql("SELECT count(*) FROM audit_log WHERE action = 'deposit_read' "
                             "AND result = 'ok' AND actor = %s" % sql_quote(client.fpr)))
        n = 0
        for _ in range(20):
            status, doc = client.get(srv.port, uuid)
            assert status == 200, doc
            n += 1
        time.sleep(2 * window / 1000)
        db.immediate_stop_and_start()
        after = int(db.psql("SELECT count(*) FROM audit_log WHERE action = 'deposit_read' "
                            "AND result = 'ok' AND actor = %s" % sql_quote(client.fpr)))
        assert after == before + n, "round %d: %d of %d answered reads lost their rows" % (
            rnd, before + n - after, n)
