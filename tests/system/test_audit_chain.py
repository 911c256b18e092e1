"""The audit chain (issue 20, items 1, 3 and 5; docs/audit.md).

A running server seals audit_log into audit_chain segments, MACed by its
key process under a key derived from the data key.  `ktadmin audit
--verify` walks the chain and names the first row changed, removed or
inserted, or the segment whose record or MAC is wrong; export + prune keep
the log bounded and still verifiable.  Each tampering is done as the
PostgreSQL superuser, the way someone with database access would.

This module has its own cluster (it tampers with the audit log)."""

import hashlib
import hmac
import json
import os
import re
import struct
import time

import pytest

from conftest import (Cluster, Server, copy_confdir, free_port, ktadmin,
                      mode, read_conf, run, tool, wait_for)
from test_db_role import psql_as
from test_keyproc import pgp_secrets



@pytest.fixture(scope="module")
def kts(registry, template):
    class K:
        pass
    k = K()
    k.registry = registry
    k.confdir = copy_confdir(registry, template.confdir, "chain")
    k.cluster = Cluster(registry, os.path.join(registry.mkdtemp("chain-pg-"), "db"),
                        free_port())
    boot = k.cluster.bootstrap(k.confdir)
    assert boot.returncode == 0, boot.stdout + boot.stderr
    k.server_ci = read_conf(k.confdir)["DB_CONNECT"]
    k.srv = Server(registry, k.confdir, name="chain").start()
    yield k
    k.srv.stop()
    registry.kill_gnupg(k.confdir)
    k.cluster.stop()


def sql(k, text):
    """As the superuser (the cluster's psql); an INSERT's RETURNING value
    without psql's command tag."""
    return k.cluster.psql(text).split("\nINSERT ")[0]


def add_rows(k, n, **cols):
    """n audit rows appended as the server's role appends them."""
    actor = cols.get("actor", "'0123456789ABCDEF0123456789ABCDEF01234567'")
    remote = cols.get("remote_addr", "'127.0.0.1'")
    count = cols.get("count", "1")
    psql_as(k.server_ci,
            "insert into audit_log (actor, org, action, object, remote_addr, "
            "result, count) select %s, 'org1', 'deposit_read', "
            "gen_random_uuid()::text, %s, 'ok', %s from generate_series(1, %d)"
            % (actor, remote, count, n))


def pending(k):
    return int(sql(k, "select count(*) from audit_log where xact >= "
                      "coalesce((select max(xact_hi) from audit_chain), "
                      "(select max(xact_hi) from audit_anchor), 0)"))


def sealed(k):
    wait_for(lambda: pending(k) == 0, timeout=30, what="audit rows sealed")


def verify(k, *extra):
    return ktadmin("audit", "--verify", "--confdir", k.confdir, *extra)


def assert_intact(k):
    p = verify(k)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "audit chain intact" in p.stdout
    return p


def assert_broken(k, pattern, *extra):
    p = verify(k, *extra)
    assert p.returncode == 1, p.stdout + p.stderr
    assert re.search(pattern, p.stderr), p.stderr
    return p


class Snapshot:
    """The audit tables as they are, to put back after a tampering (the
    server is stopped meanwhile, so nothing is sealed in between)."""

    def __init__(self, k):
        self.k = k

    def __enter__(self):
        self.k.srv.stop()
        sql(self.k, "drop table if exists bak_log, bak_chain;"
                    "create table bak_log as table audit_log;"
                    "create table bak_chain as table audit_chain")
        return self

    def __exit__(self, *exc):
        sql(self.k, "begin; set local session_replication_role = replica;"
                    "delete from audit_log; insert into audit_log select * from bak_log;"
                    "delete from audit_chain; insert into audit_chain select * from bak_chain;"
                    "drop table bak_log, bak_chain; commit")
        assert_intact(self.k)
        self.k.srv.start()
        return False


def tamper(k, text):
    sql(k, "begin; set local session_replication_role = replica; %s; commit" % text)


# --------------------------------------------------------------------------
# the chain's own encoding, as docs/audit.md specifies it

def enc_row(r):
    out = b"KTA1" + struct.pack(">qqq", r["id"], r["xact"], r["at_us"])
    for c in ("actor", "org", "action", "object", "remote_addr", "result"):
        v = r[c]
        if v is None:
            out += b"\xff\xff\xff\xff"
        else:
            b = v.encode()
            out += struct.pack(">I", len(b)) + b
    return out + struct.pack(">q", r["count"])


def seg_hash(prev, digests, s):
    h = hashlib.sha256(b"KTS1" + prev)
    for d in digests:
        h.update(d)
    h.update(struct.pack(">qqqqqq", s["seq"], s["xact_lo"], s["xact_hi"], s["nrows"],
                         s["first_at_us"], s["last_at_us"]))
    return h.digest()


def hkdf_sha256(ikm, info, n=32):
    prk = hmac.new(b"\0" * 32, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:n]


ROWSQL = ("select id, xact, (extract(epoch from at) * 1000000)::bigint, "
          "actor, org, action, object, remote_addr, result, count from audit_log "
          "where xact >= %d and xact < %d order by xact, id")


def db_rows(k, lo, hi):
    out = sql(k, "select coalesce(json_agg(json_build_array(id, xact, at_us, actor, "
                 "org, action, object, remote_addr, result, count)), '[]') from ("
                 + ROWSQL.replace("::bigint, ", "::bigint as at_us, ", 1) % (lo, hi)
                 + ") r")
    keys = ("id", "xact", "at_us", "actor", "org", "action", "object",
            "remote_addr", "result", "count")
    return [dict(zip(keys, r)) for r in json.loads(out)]


def db_segments(k):
    out = sql(k, "select coalesce(json_agg(json_build_object('seq', seq, 'xact_lo', "
                 "xact_lo, 'xact_hi', xact_hi, 'nrows', nrows, 'first_at_us', "
                 "(extract(epoch from first_at) * 1000000)::bigint, 'last_at_us', "
                 "(extract(epoch from last_at) * 1000000)::bigint, 'prev', "
                 "encode(prev, 'hex'), 'hash', encode(hash, 'hex'), 'mac', "
                 "encode(mac, 'hex'), 'digests', encode(digests, 'hex')) "
                 "order by seq), '[]') from audit_chain")
    return json.loads(out)


# --------------------------------------------------------------------------


def test_rows_are_sealed_and_verify(kts):
    add_rows(kts, 50)
    add_rows(kts, 3, count="7", remote_addr="NULL")   # failed-auth tallies
    add_rows(kts, 2, remote_addr="''")
    sealed(kts)
    p = assert_intact(kts)
    assert re.search(r"; 0 rows not sealed yet", p.stdout), p.stdout
    # The chain matches the documented encoding, and the MACs the key
    # process made are HMAC-SHA256 under HKDF(data key) (docs/audit.md).
    _, datakey = pgp_secrets(kts.registry, kts.confdir)
    key = hkdf_sha256(datakey, b"keytrustee audit chain v1")
    prev = b"\0" * 32
    segs = db_segments(kts)
    assert segs and segs[0]["seq"] == 1 and segs[0]["xact_lo"] == 0
    for s in segs:
        rows = db_rows(kts, s["xact_lo"], s["xact_hi"])
        digests = [hashlib.sha256(enc_row(r)).digest() for r in rows]
        assert bytes.fromhex(s["digests"]) == b"".join(d[:8] for d in digests)
        h = seg_hash(prev, digests, s)
        assert h.hex() == s["hash"] and s["prev"] == prev.hex()
        msg = struct.pack(">qqq", s["seq"], s["xact_hi"], s["nrows"]) + h
        assert hmac.new(key, b"KTM1" + msg, hashlib.sha256).hexdigest() == s["mac"]
        prev = h
    # NULL and '' remote addresses are both there, and differ
    assert sql(kts, "select count(*) from audit_log where remote_addr = ''") == "2"
    assert sql(kts, "select count(*) from audit_log where remote_addr is null "
                    "and count = 7") == "3"


def test_failed_auth_tallies_are_chained(kts):
    """Item 5: the server's own failed-authentication tallies (one row per
    address and reason, count = the requests) are sealed like any row,
    and a count changed afterwards is named."""
    from test_auth_flood import Conn, bad_headers, source
    src = source()
    conn = Conn(kts.srv.port, src)
    for i in range(9):
        _, hdrs = bad_headers(1)   # malformed, nine times
        status, _, _ = conn.request("GET", "/v1/deposits", hdrs)
        assert status == 401
    conn.close()
    kts.srv.restart()              # a stop writes the minute's tallies
    rid, count = sql(kts, "select id, count from audit_log where remote_addr = '%s'"
                          % src).split("|")
    assert int(count) == 9
    sealed(kts)
    assert_intact(kts)
    with Snapshot(kts):
        tamper(kts, "update audit_log set count = 1 where id = %s" % rid)
        assert_broken(kts, r"row %s was changed" % rid)


def test_pending_rows_are_not_an_error(kts):
    with Snapshot(kts):
        add_rows(kts, 4)   # the server is stopped: nothing seals them
        p = assert_intact(kts)
        assert re.search(r"; 4 rows not sealed yet", p.stdout), p.stdout


def some_row(k, where="true"):
    return int(sql(k, "select id from audit_log where %s and xact < "
                      "(select max(xact_hi) from audit_chain) order by id desc "
                      "limit 1" % where))


def test_changed_row_is_named(kts):
    with Snapshot(kts):
        rid = some_row(kts)
        tamper(kts, "update audit_log set result = 'denied' where id = %d" % rid)
        assert_broken(kts, r"row %d was changed" % rid)


def test_changed_failed_auth_count_is_named(kts):
    with Snapshot(kts):
        rid = some_row(kts, "count = 7")
        tamper(kts, "update audit_log set count = 1 where id = %d" % rid)
        assert_broken(kts, r"row %d was changed" % rid)


def test_null_made_empty_is_named(kts):
    with Snapshot(kts):
        rid = some_row(kts, "remote_addr is null")
        tamper(kts, "update audit_log set remote_addr = '' where id = %d" % rid)
        assert_broken(kts, r"row %d was changed" % rid)


def test_removed_row_is_named(kts):
    with Snapshot(kts):
        rid = some_row(kts)
        tamper(kts, "delete from audit_log where id = %d" % rid)
        assert_broken(kts, r"row %d was removed" % rid)


def test_inserted_row_is_named(kts):
    with Snapshot(kts):
        # an old-looking row, put into the sealed range of segment 1
        rid = int(sql(kts, "insert into audit_log (at, actor, action, object, "
                           "result, xact) select now() - interval '1 day', "
                           "'someone', 'deposit_read', 'x', 'ok', xact_lo "
                           "from audit_chain where seq = 1 returning id"))
        assert_broken(kts, r"row %d was inserted into the sealed range of segment 1"
                      % rid)


def test_reordered_row_is_named(kts):
    # two transactions written while no server seals: one segment
    kts.srv.stop()
    add_rows(kts, 3)
    add_rows(kts, 3)
    kts.srv.start()
    sealed(kts)
    with Snapshot(kts):
        seg = db_segments(kts)[-1]
        rows = db_rows(kts, seg["xact_lo"], seg["xact_hi"])
        assert len({r["xact"] for r in rows}) == 2, rows
        rid = rows[0]["id"]
        tamper(kts, "update audit_log set xact = %d where id = %d"
               % (seg["xact_hi"] - 1, rid))
        assert_broken(kts, r"row %d (is out of order|was changed)" % rid)


def test_forged_rechain_fails_the_mac(kts):
    """Change a row and rebuild every digest and hash after it, as one
    without the audit key can: the MAC of that segment gives it away."""
    with Snapshot(kts):
        rid = some_row(kts)
        tamper(kts, "update audit_log set actor = 'nobody' where id = %d" % rid)
        prev = b"\0" * 32
        first = None
        for s in db_segments(kts):
            rows = db_rows(kts, s["xact_lo"], s["xact_hi"])
            digests = [hashlib.sha256(enc_row(r)).digest() for r in rows]
            h = seg_hash(prev, digests, s)
            if h.hex() != s["hash"] and first is None:
                first = s["seq"]
            tamper(kts, "update audit_chain set digests = '\\x%s', prev = '\\x%s', "
                        "hash = '\\x%s' where seq = %d"
                   % (b"".join(d[:8] for d in digests).hex(), prev.hex(), h.hex(),
                      s["seq"]))
            prev = h
        assert first is not None
        assert_broken(kts, r"segment %d: its MAC does not verify" % first)


def test_removed_segment_is_named(kts):
    add_rows(kts, 2)
    sealed(kts)
    with Snapshot(kts):
        n = len(db_segments(kts))
        assert n >= 2, "needs two segments"
        tamper(kts, "delete from audit_chain where seq = 1")
        assert_broken(kts, r"segment 1 is missing")


def test_removed_head_is_not_sealed_again(kts):
    """The last segment removed with its MAC: its rows look pending, and
    the running server's chainer, which sealed it, refuses to seal them
    again under a new MAC; it says so in its log."""
    add_rows(kts, 2)
    sealed(kts)
    last = db_segments(kts)[-1]["seq"]
    tamper(kts, "delete from audit_chain where seq = %d" % last)
    wait_for(lambda: "went back from segment %d" % last in kts.srv.log(),
             timeout=15, what="the chainer's warning")
    assert pending(kts) > 0
    time.sleep(2.5)
    assert len(db_segments(kts)) == last - 1
    p = assert_intact(kts)
    assert not re.search(r"; 0 rows not sealed yet", p.stdout), p.stdout
    # put it back (a copy of the segment would do; a restart re-arms)
    kts.srv.stop()
    kts.srv.start()
    sealed(kts)
    assert_intact(kts)


def test_server_role_cannot_prune_or_forge(kts):
    before = sql(kts, "select count(*), max(seq) from audit_chain")
    for text in ("delete from audit_chain",
                 "update audit_chain set mac = hash",
                 "truncate audit_chain",
                 "insert into audit_anchor (seq, xact_hi, nrows, hash, mac, "
                 "pruned_rows) values (99, 1, 1, '', '', 0)",
                 "insert into audit_exports (seq_lo, seq_hi, sha256, path) "
                 "values (1, 99, '', '')",
                 "insert into audit_log (action, result, xact) values ('x', 'ok', 1)",
                 "delete from audit_log",
                 "begin; set local session_replication_role = replica; "
                 "delete from audit_chain; commit"):
        p = psql_as(kts.server_ci, text, check=False)
        assert p.returncode != 0, text
        assert "permission denied" in p.stderr, (text, p.stderr)
    assert sql(kts, "select count(*), max(seq) from audit_chain") == before
    # and the superuser's own UPDATE is refused by the append-only trigger
    p = kts.cluster.psql("update audit_chain set mac = hash", check=False)
    assert p.returncode != 0 and "append-only" in p.stderr, p.stderr


def test_export_prune_verify_round_trip(kts, registry):
    outdir = registry.mkdtemp("chain-export-")
    out = os.path.join(outdir, "audit-1.jsonl")
    # nothing exported: nothing may be pruned
    p = ktadmin("audit", "--prune-before", "2999-01-01", "--confdir", kts.confdir)
    assert p.returncode == 1 and "nothing to prune" in p.stderr, p.stderr
    total = int(sql(kts, "select count(*) from audit_log"))
    add_rows(kts, 20)
    sealed(kts)
    cut = sql(kts, "select to_char(now() + interval '1 millisecond', "
                   "'YYYY-MM-DD\"T\"HH24:MI:SS.USOF')")
    time.sleep(0.05)
    p = ktadmin("audit", "--export", "--before", cut, "--output", out,
                "--confdir", kts.confdir)
    assert p.returncode == 0, p.stdout + p.stderr
    assert mode(out) == 0o600
    exported = int(re.search(r"\((\d+) rows\)", p.stdout).group(1))
    # an export is never overwritten
    kept = open(out).read()
    p = ktadmin("audit", "--export", "--before", cut, "--output", out,
                "--confdir", kts.confdir)
    assert p.returncode == 1 and "never overwritten" in p.stderr, p.stderr
    assert open(out).read() == kept
    assert exported == total + 20
    # later rows: not exported, not pruned
    add_rows(kts, 5)
    sealed(kts)
    p = ktadmin("audit", "--prune-before", cut, "--confdir", kts.confdir)
    assert p.returncode == 0, p.stdout + p.stderr
    assert int(sql(kts, "select count(*) from audit_log")) == 5
    assert sql(kts, "select count(*) from audit_anchor") == "1"
    p = assert_intact(kts)
    assert re.search(r"intact: \d+ segments, 5 rows sealed", p.stdout), p.stdout
    # the file verifies alone
    p = verify(kts, "--file", out)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "intact" in p.stdout
    # the chain goes on from the anchor
    add_rows(kts, 3)
    sealed(kts)
    assert_intact(kts)
    # a changed export fails, naming the row
    lines = open(out).read().splitlines()
    i = next(i for i, l in enumerate(lines) if '"row"' in l)
    row = json.loads(lines[i])
    row["row"]["result"] = "forged"
    lines[i] = json.dumps(row)
    bad = os.path.join(outdir, "audit-bad.jsonl")
    with open(bad, "w") as f:
        f.write("\n".join(lines) + "\n")
    assert_broken(kts, r"row %d was changed" % row["row"]["id"], "--file", bad)
    # a row dropped from the file
    del lines[i]
    with open(bad, "w") as f:
        f.write("\n".join(lines) + "\n")
    assert_broken(kts, r"row %d was removed" % row["row"]["id"], "--file", bad)
    # a truncated file
    with open(bad, "w") as f:
        f.write("\n".join(open(out).read().splitlines()[:-1]) + "\n")
    assert_broken(kts, r"truncated", "--file", bad)
    # a row the prune left behind in the pruned range is caught
    with Snapshot(kts):
        rid = int(sql(kts, "insert into audit_log (action, result, xact) "
                           "values ('deposit_read', 'ok', 1) returning id"))
        assert_broken(kts, r"row %d was inserted before the chain's anchor" % rid)


def test_usage_errors(kts):
    for args, msg in ((("audit", "--verify", "--export"), "give one of"),
                      (("audit", "--export", "--output", "/tmp/x"), "--export needs"),
                      (("audit", "--verify", "--before", "2020-01-01"),
                       "--before and --output go with --export"),
                      (("audit", "--export", "--file", "x", "--before", "2020-01-01",
                        "--output", "y"), "--file goes with --verify"),
                      (("audit", "--verify", "extra"), "unexpected argument")):
        p = ktadmin(*args, "--confdir", kts.confdir)
        assert p.returncode == 2, (args, p.stderr)
        assert msg in p.stderr, (args, p.stderr)
    p = ktadmin("audit", "--help")
    assert p.returncode == 0 and "--prune-before" in p.stdout
    p = ktadmin("--help")
    assert p.returncode == 0 and "audit" in p.stdout
    p = ktadmin("audit", "--bogus")
    assert p.returncode == 2 and p.stderr.startswith("error: ") and "hint:" in p.stderr
    p = ktadmin("audit", "--verify", "--confdir")
    assert p.returncode == 2 and "requires an argument" in p.stderr, p.stderr
    p = ktadmin("audit", "--verify", "--confdir", "/nonexistent/kt")
    assert p.returncode == 1 and "cannot read the configuration" in p.stderr
    p = ktadmin("audit", "--prune-before", "not a date", "--confdir", kts.confdir)
    assert p.returncode == 2 and "is not a date" in p.stderr, p.stderr
    p = verify(kts, "--file", "/nonexistent/x.jsonl")
    assert p.returncode == 1 and "cannot open" in p.stderr, p.stderr


def test_backlog_is_sealed_in_bounded_segments(kts, capsys):
    """100k rows written while the server was down (20 transactions of
    5000): sealed at its start in segments cut at transaction boundaries
    past 10000 rows, and what that cost the chainer (its log line)."""
    kts.srv.stop()
    first = int(sql(kts, "select coalesce(max(seq), 0) from audit_chain")) + 1
    for _ in range(20):
        add_rows(kts, 5000)
    mark = len(kts.srv.log())
    kts.srv.start()
    wait_for(lambda: pending(kts) == 0, timeout=120, what="the backlog sealed")
    segs = [s for s in db_segments(kts) if s["seq"] >= first]
    assert sum(s["nrows"] for s in segs) >= 100000
    assert len(segs) >= 10 and max(s["nrows"] for s in segs) <= 10000, \
        [s["nrows"] for s in segs]
    t0 = time.monotonic()
    p = assert_intact(kts)
    took = time.monotonic() - t0
    total = int(re.search(r"segments, (\d+) rows sealed", p.stdout).group(1))
    # the first seal after a start says what it cost
    m = wait_for(lambda: re.search(r"audit chain: sealed (\d+) rows in (\d+) segment"
                                   r"\(s\), ([\d.]+) ms CPU", kts.srv.log()[mark:]),
                 timeout=10, what="the chainer's cost line")
    rows, ms = int(m.group(1)), float(m.group(3))
    assert rows >= 100000
    with capsys.disabled():
        print("\nchainer: %d rows in %s segments, %.1f ms CPU (%.1f ms per 10k rows); "
              "verify: %d rows in %.2f s" % (rows, m.group(2), ms, ms * 10000 / rows,
                                              total, took))


def test_rows_from_before_the_chain_are_sealed_first(registry, template, make_server):
    """A database at schema 11 with audit rows: migration 12 gives every
    row there is the migration's transaction as its xact (a constant
    default rewrites nothing), and the first segment seals them all, in id
    order."""
    confdir = copy_confdir(registry, template.confdir, "chain-old")
    cluster = Cluster(registry, os.path.join(registry.mkdtemp("chain-old-pg-"), "db"),
                      free_port())
    boot = cluster.bootstrap(confdir)
    assert boot.returncode == 0, boot.stdout + boot.stderr
    # back to schema 11 as it was: no chain, no xact
    cluster.psql("drop table audit_chain, audit_anchor, audit_exports;"
                 "drop function kt_append_only();"
                 "alter table audit_log drop column xact;"
                 "drop index if exists audit_log_at, audit_log_object;"
                 "delete from schema_migrations where version >= 12")
    cluster.psql("insert into audit_log (actor, action, object, remote_addr, result, "
                 "count) select 'old', 'deposit_read', i::text, '10.0.0.1', 'ok', 1 "
                 "from generate_series(1, 300) i")
    old = int(cluster.psql("select count(*) from audit_log"))
    s = make_server(confdir).start()
    k = type("K", (), {})()
    k.cluster, k.confdir = cluster, confdir
    wait_for(lambda: pending(k) == 0, timeout=30, what="old rows sealed")
    assert cluster.schema_version() >= 12
    # every old row has one xact: the migration's, below the first seal
    assert cluster.psql("select count(distinct xact) from audit_log "
                        "where actor = 'old'") == "1"
    seg1 = db_segments(k)[0]
    assert seg1["seq"] == 1 and seg1["nrows"] >= old
    ids = [r["id"] for r in db_rows(k, seg1["xact_lo"], seg1["xact_hi"])]
    assert ids[:old] == sorted(ids[:old])
    p = assert_intact(k)
    s.stop()
