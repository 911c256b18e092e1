"""Legacy deposits against a real server, written to docs/legacy.md
("Deposits and their policy") and the reference (§6): put / request / get
of one's own deposit, of a listed client, by a stranger; trustee votes,
retrievals, ttl, ttb, archive, disable / enable / purge, recoverable
deposits and their signature, ?d=URL, search with dates, pending,
authorize, deny, entropy -- in both protocols.

One world of clients per protocol (module scope): a depositor, a client it
lists, a stranger, two trustees, all enrolled and active in one org, with
token sync.  Times are small (ttl and ttb of 2 s) and waited for exactly.
"""

import base64
import hashlib
import re
import time

import pytest

from legacy_env import (PROTOCOLS, TOKEN_RE, URL_TOKEN_RE, UUID_RE, expect, expect_refused,
                        start_env, unique)
import ztclient as z


@pytest.fixture(scope="module")
def env(registry, template):
    e, stop = start_env(registry, template, "legdep")
    try:
        yield e
    finally:
        stop()


class World:
    pass


@pytest.fixture(scope="module", params=PROTOCOLS)
def w(request, env):
    """The clients of one protocol."""
    proto = request.param
    o = World()
    o.env = env
    o.protocol = proto
    o.org, o.secret = env.org(unique("dep"))
    for name in ("owner", "listed", "stranger", "t1", "t2"):
        setattr(o, name, env.enrolled(unique(name), o.org, o.secret, proto))
    return o


def put_ok(c, content, **kw):
    handle = kw.pop("handle", None) or unique("h")
    ans = expect(c.put(content, handle, **kw), 200, "put %s" % handle)
    assert isinstance(ans.get("deposit_uuid"), str) and UUID_RE.match(ans["deposit_uuid"]), \
        "put: expected a deposit_uuid, got %r" % ans
    assert "url" in ans.data, "put answers should always carry url: %r" % ans
    ans.handle = handle
    return ans


def request_ok(c, **kw):
    ans = expect(c.request(**kw), 200, "request %r" % kw)
    assert isinstance(ans.get("request_uuid"), str) and ans["request_uuid"], ans
    return ans["request_uuid"]


def get_status(ans, status, what):
    """A get answer: HTTP status and the payload's status are the same."""
    assert ans.status == status and ans.get("status") == status and \
        type(ans.get("status")) is int, \
        "%s: expected HTTP %d and status %d (an integer), got %r" % (what, status, status, ans)
    return ans


def released(c, deposit_uuid, what):
    r = request_ok(c, deposit_uuid=deposit_uuid, justification=what)
    return get_status(c.get(r), 200, what)


def refused_at_get(c, deposit_uuid, what):
    r = request_ok(c, deposit_uuid=deposit_uuid, justification=what)
    ans = c.get(r)
    get_status(ans, 403, what)
    expect_refused(ans, 403, what)
    return ans


def wait_until(t):
    d = t - time.time()
    if d > 0:
        time.sleep(d)


# --------------------------------------------------------------------------
# own deposit, listed client, stranger


def test_own_deposit_put_request_get(w):
    content = b"\x00disk key\xff" * 10
    put = put_ok(w.owner, content, description="the first disk")
    assert put["url"] == "", "a deposit that is not a URL one: expected url \"\", got %r" % put
    assert TOKEN_RE.match(put["next_token"])
    u = put["deposit_uuid"]
    assert w.env.psql("SELECT count(*) FROM deposits WHERE uuid = '%s' AND owner = '%s'"
                      % (u, w.owner.fpr)) == "1"
    got = released(w.owner, u, "own deposit by uuid")
    assert w.owner.open_content(got) == content
    assert got.get("recoverable") in (False, "false"), got
    assert got.get("archive") == 0 and type(got.get("archive")) is int, \
        "archive must be a JSON integer: %r" % got
    assert got.get("content_sig_fingerprint") == w.owner.fingerprint, got
    # By handle too.
    r = request_ok(w.owner, handle=put.handle)
    got = get_status(w.owner.get(r), 200, "own deposit by handle")
    assert w.owner.open_content(got) == content


def test_deposit_is_sealed_at_rest(w):
    put = put_ok(w.owner, b"sealed")
    # The row holds neither the armored text nor its base64 body.
    row = w.env.psql("SELECT encode(content, 'escape') FROM deposits WHERE uuid = '%s'"
                     % put["deposit_uuid"])
    assert "BEGIN PGP MESSAGE" not in row and "Version: ztrustee" not in row


def test_description_null_is_accepted(w):
    put = put_ok(w.owner, b"v", description=None)
    assert put["url"] == ""


def test_listed_client_gets_it(w):
    content = b"shared with listed"
    put = put_ok(w.owner, content, clients=[w.listed])
    got = released(w.listed, put["deposit_uuid"], "a client listed in clients")
    # Encrypted to the listed client too: it opens it with its own keys.
    assert w.listed.open_content(got) == content
    assert got["content_sig_fingerprint"] == w.owner.fingerprint


def test_stranger_is_refused(w):
    put = put_ok(w.owner, b"not for strangers", clients=[w.listed])
    mark = w.env.audit_mark()
    expect_refused(w.stranger.request(deposit_uuid=put["deposit_uuid"]), 403,
                   "request by a client neither depositor nor listed")
    assert not w.env.audit_since(mark, "result = 'ok' AND actor = '%s'" % w.stranger.fpr)


def test_unknown_deposit_is_404(w):
    expect_refused(w.owner.request(deposit_uuid="00000000-0000-4000-8000-000000000000"), 404,
                   "request of an unknown deposit")
    expect_refused(w.owner.request(handle=unique("nosuch")), 404,
                   "request of an unknown handle")
    expect_refused(w.owner.get("00000000-0000-4000-8000-000000000000"), 404,
                   "get of an unknown request")


def test_others_get_of_my_request_is_refused(w):
    put = put_ok(w.owner, b"mine", clients=[w.listed])
    r = request_ok(w.owner, deposit_uuid=put["deposit_uuid"])
    ans = w.stranger.get(r)
    assert ans.status in (403, 404), \
        "get of another client's request: expected 403 or 404, got %r" % ans
    assert "content" not in (ans.data or {}), ans


# --------------------------------------------------------------------------
# trustees


def test_all_trustees_must_authorize(w):
    content = b"needs two votes"
    put = put_ok(w.owner, content, trustees=[w.t1, w.t2])
    r = request_ok(w.owner, deposit_uuid=put["deposit_uuid"], justification="restore db1")
    got = get_status(w.owner.get(r), 201, "get before any vote")
    assert "content" not in got.data, got
    for t in (w.t1, w.t2):
        p = expect(t.pending(), 200, "pending of a trustee")
        mine = [x for x in p["requests"] if x.get("request_uuid") == r]
        assert len(mine) == 1, "pending of trustee %s: expected request %s, got %r" % (
            t.name, r, p["requests"])
        x = mine[0]
        assert x["client_fingerprint"] == w.owner.fingerprint, x
        assert x["uuid"] == put["deposit_uuid"] and x["justification"] == "restore db1", x
        assert "role" in x, x
        c, e = z.parse_date(x["creation"]), z.parse_date(x["expiration"])
        assert abs(c - time.time()) < 120 and 43000 < e - c <= 43200 + 1, x
    expect(w.t1.authorize(r), 200, "authorize by the first trustee")
    get_status(w.owner.get(r), 201, "get after one of two votes")
    assert r not in [x["request_uuid"] for x in w.t1.pending()["requests"]], \
        "a trustee who voted still sees the request as pending"
    expect(w.t2.authorize(r), 200, "authorize by the second trustee")
    got = get_status(w.owner.get(r), 200, "get after both votes")
    assert w.owner.open_content(got) == content


def test_votes_one_of_two(w):
    put = put_ok(w.owner, b"one vote", trustees=[w.t1, w.t2], votes=1)
    r = request_ok(w.owner, deposit_uuid=put["deposit_uuid"])
    get_status(w.owner.get(r), 201, "get before the vote")
    expect(w.t2.authorize(r), 200, "authorize by one trustee")
    get_status(w.owner.get(r), 200, "get after votes=1 authorization")


def test_one_deny_denies(w):
    put = put_ok(w.owner, b"denied", trustees=[w.t1, w.t2], votes=1)
    r = request_ok(w.owner, deposit_uuid=put["deposit_uuid"])
    expect(w.t1.deny(r), 200, "deny by a trustee")
    ans = w.owner.get(r)
    get_status(ans, 403, "get after a deny")
    expect_refused(ans, 403, "get after a deny")
    get_status(w.owner.get(r), 403, "get after a deny, again")
    assert r not in [x["request_uuid"] for x in w.t2.pending()["requests"]]


def test_only_trustees_vote(w):
    put = put_ok(w.owner, b"votes", trustees=[w.t1])
    r = request_ok(w.owner, deposit_uuid=put["deposit_uuid"])
    assert r not in [x["request_uuid"] for x in expect(w.stranger.pending(), 200,
                                                         "pending")["requests"]]
    expect_refused(w.stranger.authorize(r), 403, "authorize by a client not a trustee")
    expect_refused(w.listed.deny(r), 403, "deny by a client not a trustee")
    get_status(w.owner.get(r), 201, "still waiting for its trustee")


def test_no_trustees_no_pending(w):
    put = put_ok(w.owner, b"free")
    r = request_ok(w.owner, deposit_uuid=put["deposit_uuid"])
    assert r not in [x["request_uuid"] for x in w.owner.pending()["requests"]]
    get_status(w.owner.get(r), 200, "a deposit without trustees")


# --------------------------------------------------------------------------
# policy: retrievals, ttl, ttb, archive, disable, purge


def test_retrievals_exhausted(w):
    put = put_ok(w.owner, b"twice", retrievals=2, clients=[w.listed])
    released(w.owner, put["deposit_uuid"], "first retrieval")
    released(w.listed, put["deposit_uuid"], "second retrieval")
    refused_at_get(w.owner, put["deposit_uuid"], "a third retrieval of retrievals=2")


def test_ttl_expired_is_404(w):
    t0 = time.time()
    put = put_ok(w.owner, b"short-lived", ttl=2)
    released(w.owner, put["deposit_uuid"], "within its ttl")
    wait_until(t0 + 3)
    expect_refused(w.owner.request(deposit_uuid=put["deposit_uuid"]), 404,
                   "request of a deposit past its ttl")


def test_ttb_403_before_200_after(w):
    t0 = time.time()
    content = b"not before"
    put = put_ok(w.owner, content, ttb=2)
    refused_at_get(w.owner, put["deposit_uuid"], "get before its ttb")
    wait_until(t0 + 3)
    got = released(w.owner, put["deposit_uuid"], "get after its ttb")
    assert w.owner.open_content(got) == content


def test_archive_is_returned_as_integer(w):
    put = put_ok(w.owner, b"archived", archive=True)
    got = released(w.owner, put["deposit_uuid"], "archived deposit")
    assert got["archive"] == 1 and type(got["archive"]) is int, got


def test_disabled_then_enabled(w):
    put = put_ok(w.owner, b"toggle")
    u = put["deposit_uuid"]
    expect(w.owner.disable([u]), 200, "disable by its depositor")
    refused_at_get(w.owner, u, "get of a disabled deposit")
    expect(w.owner.enable([u]), 200, "enable by its depositor")
    released(w.owner, u, "get after enable")


def test_purged_is_404(w):
    put = put_ok(w.owner, b"gone")
    u = put["deposit_uuid"]
    expect(w.owner.purge([u]), 200, "purge by its depositor")
    assert w.env.psql("SELECT count(*) FROM deposits WHERE uuid = '%s'" % u) == "0", \
        "purge deletes the row"
    expect_refused(w.owner.request(deposit_uuid=u), 404, "request of a purged deposit")


def test_only_the_depositor_manages(w):
    put = put_ok(w.owner, b"mine to manage", clients=[w.listed])
    u = put["deposit_uuid"]
    expect_refused(w.listed.disable([u]), 403, "disable by a listed client")
    expect_refused(w.stranger.purge([u]), 403, "purge by a stranger")
    expect_refused(w.stranger.enable([u]), 403, "enable by a stranger")
    released(w.listed, u, "still released after the refusals")


def test_enable_disable_purge_several(w):
    us = [put_ok(w.owner, b"%d" % i)["deposit_uuid"] for i in range(3)]
    expect(w.owner.disable(us), 200, "disable of three")
    for u in us:
        refused_at_get(w.owner, u, "each disabled")
    expect(w.owner.purge(us[:2]), 200, "purge of two")
    assert w.env.psql("SELECT count(*) FROM deposits WHERE uuid IN ('%s')"
                      % "','".join(us)) == "1"


# --------------------------------------------------------------------------
# recoverable deposits


def test_recoverable_deposit_and_its_signature(w):
    content = bytes(range(256)) * 3
    put = put_ok(w.owner, content, recoverable=True, clients=[w.listed],
                 deposit_group="grp1")
    for c in (w.owner, w.listed):
        got = released(c, put["deposit_uuid"], "recoverable deposit by %s" % c.name)
        assert got.get("recoverable") in (True, "true"), got
        text = got["content"]
        # As sent: base64 in 76-column lines, CRLF, a trailing CRLF.
        assert text == base64.encodebytes(content).decode().replace("\n", "\r\n"), text[:100]
        assert got["content_sig_fingerprint"] == w.owner.fingerprint
        assert got["recoverable_signature"].startswith("-----BEGIN PGP SIGNATURE-----")
        # The client fetches the depositor's key by HKP and checks it.
        c.keycache.clear()
        assert c.open_content(got) == content


def test_recoverable_sha512_is_of_the_base64(w):
    content = b"recoverable bytes"
    b64 = base64.encodebytes(content).decode().replace("\n", "\r\n")
    ans = w.owner.put(content, unique("h"), recoverable=True,
                      sha512=hashlib.sha512(content).hexdigest())
    expect_refused(ans, 400, "recoverable put whose sha512 is of the raw bytes")
    put_ok(w.owner, content, recoverable=True, sha512=hashlib.sha512(b64.encode()).hexdigest())


# --------------------------------------------------------------------------
# ?d=URL


def test_url_deposit(w):
    content = b"by url"
    put = put_ok(w.owner, content, url=True, clients=[w.listed])
    url = put["url"]
    assert URL_TOKEN_RE.match(url), "expected a 43-character URL token, got %r" % url
    got = get_status(w.listed.by_url(url), 200, "POST /?d=URL by a listed client")
    assert w.listed.open_content(got) == content
    expect_refused(w.stranger.by_url(url), 403, "POST /?d=URL by a stranger")
    expect_refused(w.listed.by_url("A" * 43), 404, "POST /?d= of an unknown URL")


def test_url_deposit_with_trustees(w):
    content = b"by url, voted"
    put = put_ok(w.owner, content, url=True, trustees=[w.t1])
    ans = get_status(w.owner.by_url(put["url"]), 201, "POST /?d=URL waiting for a trustee")
    r = ans.get("request_uuid")
    assert isinstance(r, str), "a 201 from ?d= carries the request_uuid to get later: %r" % ans
    expect(w.t1.authorize(r), 200, "authorize")
    got = get_status(w.owner.get(r), 200, "get of the ?d= request after the vote")
    assert w.owner.open_content(got) == content


# --------------------------------------------------------------------------
# search


def test_search(w):
    stem = unique("srch")
    t0 = int(time.time())
    a = put_ok(w.owner, b"a", handle=stem + "-a", description="first")
    b = put_ok(w.owner, b"b", handle=stem + "-b", description=None, url=True)
    ans = expect(w.owner.search(stem + "-a"), 200, "search by handle")
    m = ans["matches"]
    assert [x["uuid"] for x in m] == [a["deposit_uuid"]], m
    x = m[0]
    assert x["handle"] == stem + "-a" and x["description"] == "first", x
    assert "state" in x and "url" in x, x
    assert abs(z.parse_date(x["creation"]) - t0) < 120, \
        "creation must be yyyy-MM-ddTHH:mm:ss with Z or +0000: %r" % x["creation"]
    # No keyword (string null): every deposit of the client.
    allm = {x["uuid"]: x for x in expect(w.owner.search(None), 200, "search null")["matches"]}
    assert {a["deposit_uuid"], b["deposit_uuid"]} <= set(allm)
    assert allm[b["deposit_uuid"]]["url"] == b["url"]
    for x in allm.values():
        z.parse_date(x["creation"])


def test_search_after_before(w):
    stem = unique("dated")
    put = put_ok(w.owner, b"d", handle=stem)
    u = put["deposit_uuid"]
    now = time.time()

    def found(**kw):
        ans = expect(w.owner.search(stem, **kw), 200, "search %r" % kw)
        return [x["uuid"] for x in ans["matches"]]

    assert found(after=z.zdate(now - 3600)) == [u]
    assert found(after=z.zdate(now + 3600)) == []
    assert found(before=z.zdate(now + 3600)) == [u]
    assert found(before=z.zdate(now - 3600)) == []
    assert found(after=z.zdate(now - 3600), before=z.zdate(now + 3600)) == [u]
    # The date as yyyy-MM-dd'T'HH:mm:ssZ with a literal Z works as well.
    zulu = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600))
    assert found(after=zulu) == [u]


def test_search_sees_only_ones_own(w):
    stem = unique("private")
    put_ok(w.owner, b"p", handle=stem)
    ans = expect(w.stranger.search(stem), 200, "search by a stranger")
    assert ans["matches"] == [], ans


# --------------------------------------------------------------------------
# requests: timeout


def test_expired_request_is_404(w):
    put = put_ok(w.owner, b"slow", trustees=[w.t1])
    t0 = time.time()
    r = request_ok(w.owner, deposit_uuid=put["deposit_uuid"], timeout=1)
    wait_until(t0 + 2.5)
    expect_refused(w.owner.get(r), 404, "get of a request past its timeout")
    assert r not in [x["request_uuid"] for x in w.t1.pending()["requests"]]


# --------------------------------------------------------------------------
# entropy


def test_entropy(w):
    a = expect(w.owner.entropy(32), 200, "entropy 32")
    b = expect(w.owner.entropy(32), 200, "entropy 32 again")
    ra = base64.b64decode(a["entropy"], validate=True)
    rb = base64.b64decode(b["entropy"], validate=True)
    assert len(ra) == 32 and len(rb) == 32 and ra != rb
    one = base64.b64decode(expect(w.owner.entropy(1), 200, "entropy 1")["entropy"])
    assert len(one) == 1


# --------------------------------------------------------------------------
# audit


def test_actions_are_audited(w):
    mark = w.env.audit_mark()
    put = put_ok(w.owner, b"audited")
    released(w.owner, put["deposit_uuid"], "audited get")
    rows = w.env.audit_since(mark, "actor = '%s'" % w.owner.fpr)
    assert len(rows) >= 3, "put, request and get each write an audit row: %r" % rows
    assert all(r[4] == "ok" for r in rows), rows
    assert any(put["deposit_uuid"] in r[3] for r in rows), rows


def test_deposit_uuid_looks_like_v4(w):
    u = put_ok(w.owner, b"u")["deposit_uuid"]
    assert re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", u)
