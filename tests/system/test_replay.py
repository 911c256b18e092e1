"""System tests of replayed signed requests (docs/api.md, "Replayed
requests"): a signed /v1 write counts once.  The same signed POST sent
again -- one after the other, or at once from many threads, or after the
server restarted -- makes one deposit and every copy gets the first
answer; a signed DELETE sent again deletes once; a request outside the
clock window is refused; a replayed GET stays a read and writes nothing;
the legacy protocol's replays, kept in the same table, are still refused
(401).

Reuses test_api's helpers (requests signed with hashlib and hmac, sent
with http.client), conftest's session PostgreSQL and a module server; the
legacy part uses legacy_env's server and zTrustee clients.
"""

import base64
import json
import os
import threading
import time

import pytest

from test_api import (Client, env, http_request, new_org, registered,  # noqa: F401 (env: fixture)
                      sql_quote)


@pytest.fixture(scope="module")
def org(env):
    return new_org(env.cluster, "")


@pytest.fixture(scope="module")
def dave(env, registry, org):
    return registered(env, registry, org, "dave")


def signed(c, method, uri, doc=None, ts=None):
    """The bytes of one signed request, to send as many times as wanted."""
    body = json.dumps(doc).encode() if doc is not None else b""
    headers = [("Authorization", c.auth_header(method, uri, body, ts))]
    if body:
        headers.append(("Content-Type", "application/json"))
    return method, uri, body, headers


def send(port, req):
    method, uri, body, headers = req
    return http_request(port, method, uri, body, headers)


def new_deposit_req(c, name, ts=None):
    doc = {"name": name, "content": base64.b64encode(os.urandom(48)).decode()}
    return signed(c, "POST", "/v1/deposits", doc, ts)


def deposits_named(env, c, name):
    return int(env.psql("SELECT count(*) FROM deposits WHERE owner = %s AND name = %s"
                        % (sql_quote(c.fpr), sql_quote(name))))


def audit_rows(env, action, obj=None, result=None, actor=None):
    conds = ["action = %s" % sql_quote(action)]
    if obj is not None:
        conds.append("object = %s" % sql_quote(obj))
    if result is not None:
        conds.append("result = %s" % sql_quote(result))
    if actor is not None:
        conds.append("actor = %s" % sql_quote(actor))
    return int(env.psql("SELECT count(*) FROM audit_log WHERE " + " AND ".join(conds)))


def seen_rows(env):
    return int(env.psql("SELECT count(*) FROM seen_signatures"))


def at_once(n, fn):
    """fn() from n threads released together; their results in order."""
    results = [None] * n
    errors = []
    gate = threading.Barrier(n)

    def run(i):
        try:
            gate.wait(timeout=30)
            results[i] = fn()
        except Exception as e:  # noqa: BLE001 (re-raised below)
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results


# --------------------------------------------------------------------------
# POST


def test_post_replayed_one_after_another_makes_one_deposit(env, dave):
    name = "seq-%s" % os.urandom(4).hex()
    req = new_deposit_req(dave, name)
    answers = [send(env.port, req) for _ in range(22)]
    first_status, first_hdrs, first_body = answers[0]
    assert first_status == 201, first_body
    uuid = json.loads(first_body)["uuid"]
    assert first_hdrs["location"] == "/v1/deposits/" + uuid
    for status, hdrs, body in answers[1:]:
        assert (status, hdrs.get("location"), body) == (201, first_hdrs["location"], first_body)
    assert deposits_named(env, dave, name) == 1
    assert audit_rows(env, "deposit_create", uuid) == 1
    assert audit_rows(env, "replay", result="answered", actor=dave.fpr) >= 21
    # The deposit is there and is the one sent.
    status, got = dave.get(env.port, uuid)
    assert status == 200 and got["name"] == name


def test_post_replayed_at_once_from_threads_makes_one_deposit(env, dave):
    for _ in range(3):
        name = "par-%s" % os.urandom(4).hex()
        req = new_deposit_req(dave, name)
        answers = at_once(16, lambda: send(env.port, req))
        bodies = {body for _, _, body in answers}
        assert {status for status, _, _ in answers} == {201}, answers
        assert len(bodies) == 1, bodies
        uuid = json.loads(bodies.pop())["uuid"]
        assert {h["location"] for _, h, _ in answers} == {"/v1/deposits/" + uuid}
        assert deposits_named(env, dave, name) == 1
        assert audit_rows(env, "deposit_create", uuid) == 1


def test_two_requests_of_one_content_are_two_deposits(env, dave):
    """Only the same signed request is a replay: the same deposit signed
    again (another second) is a new request."""
    name = "twice-%s" % os.urandom(4).hex()
    doc = {"name": name, "content": base64.b64encode(b"same").decode()}
    now = int(time.time())
    a = send(env.port, signed(dave, "POST", "/v1/deposits", doc, now - 1))
    b = send(env.port, signed(dave, "POST", "/v1/deposits", doc, now))
    assert a[0] == b[0] == 201 and a[2] != b[2]
    assert deposits_named(env, dave, name) == 2


def test_the_kept_answer_is_the_answer_and_nothing_secret(env, dave):
    name = "kept-%s" % os.urandom(4).hex()
    status, hdrs, body = send(env.port, new_deposit_req(dave, name))
    assert status == 201
    row = env.psql("SELECT status || '|' || location || '|' || body FROM seen_signatures "
                   "WHERE body = %s" % sql_quote(body.decode()))
    assert row == "201|%s|%s" % (hdrs["location"], body.decode())


def test_refused_write_is_judged_again(env, dave):
    """A write that changed nothing is not remembered: its replay gets the
    same refusal, not a kept answer (and a retry after a 503 may pass)."""
    req = signed(dave, "POST", "/v1/deposits", {"name": "x", "content": "not base64!"})
    before = seen_rows(env)
    for _ in range(3):
        status, _, body = send(env.port, req)
        assert status == 400 and json.loads(body)["code"] == "bad_content"
    assert seen_rows(env) == before


# --------------------------------------------------------------------------
# DELETE


def test_delete_replayed_deletes_once(env, dave):
    status, ans = dave.put(env.port, "del-%s" % os.urandom(4).hex(), b"bye")
    assert status == 201
    uuid = ans["uuid"]
    req = signed(dave, "DELETE", "/v1/deposits/" + uuid)
    first = send(env.port, req)
    assert first[0] == 200 and json.loads(first[2]) == {"deleted": uuid}
    for _ in range(5):
        again = send(env.port, req)
        assert (again[0], again[2]) == (first[0], first[2])
    assert audit_rows(env, "deposit_delete", uuid) == 1
    assert audit_rows(env, "deposit_delete", uuid, "ok") == 1
    assert audit_rows(env, "replay", uuid, "answered") == 5
    assert int(env.psql("SELECT count(*) FROM deposits WHERE uuid = '%s'" % uuid)) == 0


def test_delete_replayed_at_once_deletes_once(env, dave):
    for _ in range(3):
        status, ans = dave.put(env.port, "pdel-%s" % os.urandom(4).hex(), b"bye")
        assert status == 201
        uuid = ans["uuid"]
        req = signed(dave, "DELETE", "/v1/deposits/" + uuid)
        answers = at_once(12, lambda: send(env.port, req))
        assert {(s, b) for s, _, b in answers} == {
            (200, json.dumps({"deleted": uuid}, separators=(",", ":")).encode())}, answers
        assert audit_rows(env, "deposit_delete", uuid, "ok") == 1
        assert audit_rows(env, "deposit_delete", uuid) == 1


def test_another_delete_of_a_deleted_deposit_is_404(env, dave):
    """A new request (not a replay) finds the deposit gone."""
    status, ans = dave.put(env.port, "gone-%s" % os.urandom(4).hex(), b"x")
    uuid = ans["uuid"]
    now = int(time.time())
    assert send(env.port, signed(dave, "DELETE", "/v1/deposits/" + uuid, ts=now - 1))[0] == 200
    status, _, body = send(env.port, signed(dave, "DELETE", "/v1/deposits/" + uuid, ts=now))
    assert status == 404 and json.loads(body)["code"] == "not_found"


# --------------------------------------------------------------------------
# restart, window, reads


def test_replay_across_a_restart(env, dave):
    name = "restart-%s" % os.urandom(4).hex()
    post = new_deposit_req(dave, name)
    first = send(env.port, post)
    assert first[0] == 201
    uuid = json.loads(first[2])["uuid"]
    status, ans = dave.put(env.port, "restart-del-%s" % os.urandom(4).hex(), b"x")
    dele = signed(dave, "DELETE", "/v1/deposits/" + ans["uuid"])
    deleted = send(env.port, dele)
    assert deleted[0] == 200
    env.server.restart()
    again = send(env.port, post)
    assert (again[0], again[1]["location"], again[2]) == (201, "/v1/deposits/" + uuid, first[2])
    assert deposits_named(env, dave, name) == 1
    assert send(env.port, dele)[0::2] == deleted[0::2]
    assert audit_rows(env, "deposit_delete", ans["uuid"]) == 1


def test_window_is_300_s_either_way(env, dave):
    now = int(time.time())
    for skew in (-301, -100000, 302, 100000):
        name = "win-%s" % os.urandom(4).hex()
        status, _, body = send(env.port, new_deposit_req(dave, name, now + skew))
        assert status == 401 and json.loads(body)["code"] == "unauthorized", skew
        assert deposits_named(env, dave, name) == 0
    # Inside the window: accepted once, its replays answered the same.
    for skew in (-295, 50, 295):
        name = "win-%s" % os.urandom(4).hex()
        req = new_deposit_req(dave, name, now + skew)
        first = send(env.port, req)
        assert first[0] == 201, (skew, first)
        assert send(env.port, req)[2] == first[2]
        assert deposits_named(env, dave, name) == 1


def test_expired_seen_rows_are_forgotten_by_the_next_writes(env, dave):
    env.psql("INSERT INTO seen_signatures (digest, expires, status, body) "
             "SELECT decode(md5(i::text) || md5(i::text), 'hex'), now() - interval '1 s', "
             "201, '{}' FROM generate_series(1, 300) i")
    expired = "SELECT count(*) FROM seen_signatures WHERE expires < now()"
    assert int(env.psql(expired)) >= 300
    assert send(env.port, new_deposit_req(dave, "purge-%s" % os.urandom(4).hex()))[0] == 201
    status, ans = dave.put(env.port, "purge-%s" % os.urandom(4).hex(), b"x")
    assert send(env.port, signed(dave, "DELETE", "/v1/deposits/" + ans["uuid"]))[0] == 200
    assert int(env.psql(expired)) == 0


def test_replayed_get_is_a_read_that_writes_no_seen_row(env, dave):
    status, ans = dave.put(env.port, "read-%s" % os.urandom(4).hex(), b"read me")
    assert status == 201
    get = signed(dave, "GET", "/v1/deposits/" + ans["uuid"])
    lst = signed(dave, "GET", "/v1/deposits")
    before = seen_rows(env)
    for _ in range(5):
        status, _, body = send(env.port, get)
        assert status == 200 and json.loads(body)["uuid"] == ans["uuid"]
        assert send(env.port, lst)[0] == 200
    assert seen_rows(env) == before


# --------------------------------------------------------------------------
# the legacy protocol: the same table, its replays still refused


@pytest.fixture(scope="module")
def legacy(registry, template):
    from legacy_env import start_env
    e, stop = start_env(registry, template, "legreplay")
    try:
        yield e
    finally:
        stop()


def test_legacy_replay_is_still_401_and_kept_in_the_one_table(legacy):
    import hashlib

    import ztclient as z
    from legacy_env import expect, unique

    org, secret = legacy.org(unique("rp"))
    c = legacy.enrolled("rp", org, secret, "json-encrypt", token_sync=False)
    content = z.encrypt_message(b"deposit", [c.key.public_key().encryption_key()], c.key,
                                tag9=False)
    fields = {"trustees": "", "clients": "", "handle": unique("rp"), "description": None,
              "recoverable": False, "url": False, "archive": "0", "content": content,
              "sha512": hashlib.sha512(content.encode()).hexdigest()}
    raw = z.form_encode(c.encode(c.request_data(fields)))
    deposits = "SELECT count(*) FROM deposits WHERE kind = 'legacy'"
    before = int(legacy.psql(deposits))
    unanswered = int(legacy.psql("SELECT count(*) FROM seen_signatures WHERE status IS NULL"))
    expect(c.post("/?a=put", raw), 200, "the original put")
    for _ in range(3):
        ans = c.post("/?a=put", raw)
        assert ans.status == 401, ans
    assert int(legacy.psql(deposits)) == before + 1
    assert int(legacy.psql("SELECT count(*) FROM seen_signatures WHERE status IS NULL")) \
        > unanswered
