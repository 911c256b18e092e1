"""A catalogue of bad legacy requests against a real server, written to
docs/legacy.md ("Errors", "Security of the payloads", "Token sync"): each
is refused with its status and a reason the client can show, in the form
docs/legacy.md gives (a plain reason=... body when the request's signer is
not established, an answer in the client's protocol carrying reason and
status when it is), nothing changes in the database (every table but the
audit log and the replay cache, compared through psql) and no audit row
says ok.  Then: every request gets an answer, never a bare close.

Cases that pass signature and token checks use clients without token sync
(an accepted token advances, which is a change); cases about signatures
and tokens use clients with token sync, whose token must not move.
"""

import hashlib
import socket
import time

import pytest

from conftest import no_verify_context
from legacy_env import PROTOCOLS, expect, start_env, unique
import ztclient as z

DROP = object()


@pytest.fixture(scope="module")
def env(registry, template):
    e, stop = start_env(registry, template, "legbad")
    try:
        yield e
    finally:
        stop()


class World:
    pass


@pytest.fixture(scope="module")
def w(env):
    o = World()
    o.env = env
    o.org, o.secret = env.org(unique("bad"))
    o.ts, o.nt, o.dep, o.req = {}, {}, {}, {}
    for p in PROTOCOLS:
        short = "enc" if p == "json-encrypt" else "sig"
        o.ts[p] = env.enrolled("ts-" + short, o.org, o.secret, p)
        o.nt[p] = env.enrolled("nt-" + short, o.org, o.secret, p, token_sync=False)
        put = expect(o.nt[p].put(b"existing", unique("h")), 200, "setup put")
        o.dep[p] = put["deposit_uuid"]
        r = expect(o.nt[p].request(deposit_uuid=o.dep[p]), 200, "setup request")
        o.req[p] = r["request_uuid"]
    o.mallory = env.enrolled("mallory", o.org, o.secret, "json-encrypt", token_sync=False)
    o.unregistered = z.ClientKey.generate("ztrustee (client) <eve@eve.example.com>", 2048)
    return o


# --------------------------------------------------------------------------
# request builders


def put_fields(c, **over):
    content = z.encrypt_message(b"deposit", [c.key.public_key().encryption_key()], c.key,
                                tag9=False)
    f = {"trustees": "", "clients": "", "handle": unique("bad"), "description": None,
         "recoverable": False, "url": False, "archive": "0", "content": content,
         "sha512": hashlib.sha512(content.encode()).hexdigest()}
    for k, v in over.items():
        if v is DROP:
            f.pop(k, None)
        else:
            f[k] = v
    return f


def act(action, fields=None, **kw):
    """A builder: c sends action with fields (callable(w, c, p) or dict)."""
    def build(w, c, p):
        f = fields(w, c, p) if callable(fields) else dict(fields or {})
        return lambda: c.call(action, f, **kw)
    return build


def act_kw(action, fields, kwf):
    """Like act, the call's keywords computed from the world."""
    def build(w, c, p):
        f = fields(w, c, p) if callable(fields) else dict(fields or {})
        return lambda: c.call(action, f, **kwf(w, c, p))
    return build


def raw_json(text):
    """A builder sending raw bytes as the request's JSON (signed)."""
    def build(w, c, p):
        head = '"version": "%s", "sig_fingerprint": "%s"' % (z.VERSION, c.fingerprint)
        data = text.replace(b"HEAD", head.encode())
        return lambda: c.call("entropy", mutate=lambda kind, v: data if kind == "data" else v)
    return build


def data_mut(action, fields, fn):
    """A builder changing the request's JSON object before it is signed."""
    def build(w, c, p):
        def mutate(kind, v):
            if kind == "data":
                fn(w, c, p, v)
            return v
        return lambda: c.call(action, fields, mutate=mutate)
    return build


def form_mut(action, fields, fn, **kw):
    """A builder changing the form fields after signing: fn(w, c, p, fields)
    returns the new list of pairs."""
    def build(w, c, p):
        return lambda: c.call(action, fields, mutate=lambda kind, v: v if kind == "data"
                              else fn(w, c, p, v), **kw)
    return build


def body(raw):
    """A builder posting a raw form body to ?a=entropy."""
    def build(w, c, p):
        return lambda: c.post("/?a=entropy", raw)
    return build


def payload_text(fn):
    """A builder changing the armored json-encrypt payload's text."""
    return form_mut("entropy", {"count": 4},
                    lambda w, c, p, f: [("payload", fn(f[0][1]))])


def payload_binary(fn):
    """A builder changing the payload's binary packets (re-armored with a
    right CRC)."""
    def text(armored):
        _, _, data = z.dearmor(armored)
        return z.armor("MESSAGE", fn(data))
    return payload_text(text)


def flip(data, i, tag, mask):
    """The message with bits mask flipped in the middle of its packet i
    (whose tag must be tag)."""
    pkts = z.parse_packets(data)
    t, b = pkts[i]
    assert t == tag
    b = bytearray(b)
    b[len(b) // 2] ^= mask
    pkts[i] = (t, bytes(b))
    return b"".join(z.packet(t, b) for t, b in pkts)


def flip_pkesk(data):
    return flip(data, 0, z.T_PKESK, 0x55)


def flip_sed(data):
    return flip(data, 1, z.T_SED, 0x01)


def replay(w, c, p):
    """A put that succeeds, then the same bytes once more."""
    f = c.encode(c.request_data(put_fields(c)))
    raw = z.form_encode(f)
    expect(c.post("/?a=put", raw), 200, "the original put of the replay")
    return lambda: c.post("/?a=put", raw)


def set_key(k, v):
    def fn(w, c, p, d):
        d[k] = v(w, c, p) if callable(v) else v
    return fn


def drop_key(k):
    def fn(w, c, p, d):
        d.pop(k, None)
    return fn


def names_mallory(w, c, p, d):
    d["sig_fingerprint"] = w.mallory.fingerprint


def form_names_mallory(w, c, p, f):
    return [(k, w.mallory.fingerprint if k == "client_fingerprint" else v) for k, v in f]


def signed_by_unregistered(w, c, p):
    """eve's own key, naming itself: an unknown client."""
    eve = z.Client(c.url, key=w.unregistered, home=c.home, protocol=p, token_sync=False,
                   source=c.source)
    eve.server_key = c.server_key
    return lambda: eve.call("entropy", {"count": 4})


def sig_over_other_bytes(w, c, p, f):
    d = dict(f)
    return [("payload", d["payload"].replace(b'"count": 4', b'"count": 5')),
            ("payload_sig", d["payload_sig"]), ("client_fingerprint", d["client_fingerprint"])]


def bad_sig_armor(w, c, p, f):
    garbage = ("-----BEGIN PGP SIGNATURE-----\n\nbm90IGEgc2lnbmF0dXJl\n"
               "-----END PGP SIGNATURE-----\n")
    return [(k, garbage if k == "payload_sig" else v) for k, v in f]


def no_payload_sig(w, c, p, f):
    return [(k, v) for k, v in f if k != "payload_sig"]


def no_client_fingerprint(w, c, p, f):
    return [(k, v) for k, v in f if k != "client_fingerprint"]


def duplicate_payload(w, c, p, f):
    return f + [f[0]]


def deep(n):
    return b"{HEAD, \"count\": 4, \"x\": " + b"[" * n + b"]" * n + b"}"


E, S, B = ("json-encrypt",), ("json-sign",), tuple(PROTOCOLS)
NOW = time.time

# (id, protocols, client kind, builder, status, form): form is 'plain'
# (reason=...), 'payload' (an answer in the client's protocol), or None
# where docs/legacy.md allows either.
CASES = [
    # the form and the body
    ("form-empty-body", E, "ts", body(b""), 400, "plain"),
    ("form-no-payload", E, "ts", body(b"count=5&version=x"), 400, "plain"),
    ("form-payload-twice", B, "ts", form_mut("entropy", {"count": 4}, duplicate_payload),
     400, "plain"),
    ("form-bad-percent-escape", E, "ts", body(b"payload=%ZZ%"), 400, "plain"),
    ("form-not-utf8", E, "ts", body(b"payload=%FF%FE%FD"), 400, "plain"),
    ("body-over-128k", E, "ts", body(b"payload=" + b"A" * (130 * 1024)), 413, "plain"),
    ("unknown-action", B, "nt", act("frobnicate", {}), 400, None),
    ("empty-action", B, "nt", act("", {}), 400, None),
    # armor and packets (json-encrypt)
    ("payload-not-armored", E, "ts", payload_text(lambda t: "hello"), 400, "plain"),
    ("payload-empty", E, "ts", payload_text(lambda t: ""), 400, "plain"),
    ("armor-no-end-line", E, "ts", payload_text(
        lambda t: t.replace("-----END PGP MESSAGE-----", "")), 400, "plain"),
    ("armor-bad-crc", E, "ts", payload_text(
        lambda t: "\n".join(("=AAAA" if ln.startswith("=") and len(ln) == 5 and ln != "=AAAA"
                             else "=BBBB" if ln == "=AAAA" else ln)
                            for ln in t.split("\n"))), 400, "plain"),
    ("armor-bad-base64", E, "ts", payload_text(
        lambda t: t.replace("\n\n", "\n\n*!*", 1)), 400, "plain"),
    ("armor-public-key-block", E, "ts", form_mut(
        "entropy", {"count": 4}, lambda w, c, p, f: [("payload", c.key.export_public())]),
     400, "plain"),
    ("packets-truncated", E, "ts", payload_binary(lambda d: d[:len(d) // 2]), 400, "plain"),
    ("session-key-tampered", E, "ts", payload_binary(flip_pkesk), 400, "plain"),
    ("encrypted-to-another-key", E, "ts", act_kw(
        "entropy", {"count": 4}, lambda w, c, p: {"recipient": w.mallory.key.pkey}),
     400, "plain"),
    ("ciphertext-tampered", E, "ts", payload_binary(flip_sed), (400, 401), "plain"),
    # signatures
    ("unsigned-payload", E, "ts", act("entropy", {"count": 4}, sign=False), 401, "plain"),
    ("json-sign-without-payload_sig", S, "ts", form_mut("entropy", {"count": 4},
                                                        no_payload_sig), 401, "plain"),
    ("payload_sig-over-other-bytes", S, "ts", form_mut("entropy", {"count": 4},
                                                       sig_over_other_bytes), 401, "plain"),
    ("payload_sig-bad-armor", S, "ts", form_mut("entropy", {"count": 4}, bad_sig_armor),
     400, "plain"),
    ("json-sign-without-client_fingerprint", S, "ts",
     form_mut("entropy", {"count": 4}, no_client_fingerprint), 400, "plain"),
    ("signed-by-another-client", B, "ts", act_kw(
        "entropy", {"count": 4}, lambda w, c, p: {"signer": w.mallory.key}), 401, "plain"),
    ("client_fingerprint-of-another-client", S, "ts", form_mut(
        "entropy", {"count": 4}, form_names_mallory), 401, "plain"),
    ("sig_fingerprint-of-another-client", B, "ts",
     data_mut("entropy", {"count": 4}, names_mallory), 401, "plain"),
    ("sig_fingerprint-unknown", B, "ts", data_mut(
        "entropy", {"count": 4}, set_key("sig_fingerprint", "2048R/" + "A" * 40)), 401,
     "plain"),
    ("signer-not-registered", B, "ts", signed_by_unregistered, 401, "plain"),
    ("signature-tampered", B, "ts", act("entropy", {"count": 4}, corrupt_sig=True), 401,
     "plain"),
    ("signature-10-minutes-old", B, "ts", act_kw(
        "entropy", {"count": 4}, lambda w, c, p: {"sig_time": NOW() - 600}), 401, "plain"),
    ("signature-10-minutes-ahead", B, "ts", act_kw(
        "entropy", {"count": 4}, lambda w, c, p: {"sig_time": NOW() + 600}), 401, "plain"),
    ("replayed-request", B, "nt", replay, 401, "plain"),
    # tokens
    ("token-wrong", B, "ts", act("entropy", {"count": 4}, auth_token="0" * 64), 403,
     "payload"),
    ("token-missing", B, "ts", act("entropy", {"count": 4}, auth_token=z.OMIT), 403,
     "payload"),
    # the JSON
    ("json-invalid", B, "nt", raw_json(b"{HEAD, \"count\": "), 400, None),
    ("json-array", B, "nt", raw_json(b"[1, 2]"), 400, None),
    ("json-string", B, "nt", raw_json(b"\"entropy\""), 400, None),
    ("json-not-utf8", B, "nt", raw_json(b"{HEAD, \"count\": 4, \"x\": \"\xff\xfe\"}"), 400,
     None),
    ("json-duplicate-keys", B, "nt", raw_json(b"{HEAD, \"count\": 4, \"count\": 5}"), 400,
     None),
    ("json-deep-nesting", B, "nt", raw_json(deep(200)), 400, None),
    ("json-trailing-garbage", B, "nt", raw_json(b"{HEAD, \"count\": 4} x"), 400, None),
    ("version-missing", B, "nt", data_mut("entropy", {"count": 4}, drop_key("version")),
     400, None),
    ("version-not-a-string", B, "nt", data_mut("entropy", {"count": 4},
                                               set_key("version", 35)), 400, None),
    # put
    ("put-content-missing", B, "nt", act("put", lambda w, c, p: put_fields(c, content=DROP)),
     400, "payload"),
    ("put-sha512-missing", B, "nt", act("put", lambda w, c, p: put_fields(c, sha512=DROP)),
     400, "payload"),
    ("put-sha512-mismatch", B, "nt", act("put", lambda w, c, p: put_fields(
        c, sha512=hashlib.sha512(b"something else").hexdigest())), 400, "payload"),
    ("put-sha512-number", B, "nt", act("put", lambda w, c, p: put_fields(c, sha512=12)),
     400, "payload"),
    ("put-handle-missing", B, "nt", act("put", lambda w, c, p: put_fields(c, handle=DROP)),
     400, "payload"),
    ("put-handle-control-char", B, "nt", act("put", lambda w, c, p: put_fields(
        c, handle="a\nb\x1b")), 400, "payload"),
    ("put-retrievals-string", B, "nt", act("put", lambda w, c, p: put_fields(
        c, retrievals="5")), 400, "payload"),
    ("put-ttl-negative", B, "nt", act("put", lambda w, c, p: put_fields(c, ttl=-5)), 400,
     "payload"),
    ("put-ttb-fraction", B, "nt", act("put", lambda w, c, p: put_fields(c, ttb=1.5)), 400,
     "payload"),
    ("put-recoverable-number", B, "nt", act("put", lambda w, c, p: put_fields(
        c, recoverable=5)), 400, "payload"),
    ("put-recoverable-without-signature", B, "nt", act("put", lambda w, c, p: put_fields(
        c, recoverable=True, content="ZGVwb3NpdA==\r\n",
        sha512=hashlib.sha512(b"ZGVwb3NpdA==\r\n").hexdigest())), 400, "payload"),
    ("put-trustees-array", B, "nt", act("put", lambda w, c, p: put_fields(
        c, trustees=[w.mallory.fingerprint])), 400, "payload"),
    ("put-clients-unknown", B, "nt", act("put", lambda w, c, p: put_fields(
        c, clients="2048R/" + "B" * 40)), 400, "payload"),
    ("put-votes-over-trustees", B, "nt", act("put", lambda w, c, p: put_fields(
        c, trustees=w.mallory.fingerprint, votes=2)), 400, "payload"),
    ("put-archive-not-1-or-0", B, "nt", act("put", lambda w, c, p: put_fields(
        c, archive="yes")), 400, "payload"),
    # request, get, votes, deposits
    ("request-neither-uuid-nor-handle", B, "nt", act("request", {
        "deposit_uuid": None, "handle": None, "timeout": 60, "justification": ""}), 400,
     "payload"),
    ("request-uuid-malformed", B, "nt", act("request", {
        "deposit_uuid": "not-a-uuid'; --", "handle": None, "timeout": 60,
        "justification": ""}), 400, "payload"),
    ("request-timeout-string", B, "nt", act("request", lambda w, c, p: {
        "deposit_uuid": w.dep[p], "handle": None, "timeout": "60", "justification": ""}),
     400, "payload"),
    ("request-timeout-negative", B, "nt", act("request", lambda w, c, p: {
        "deposit_uuid": w.dep[p], "handle": None, "timeout": -1, "justification": ""}),
     400, "payload"),
    ("get-request_uuid-missing", B, "nt", act("get", {"disable": False}), 400, "payload"),
    ("get-request_uuid-malformed", B, "nt", act("get", {"request_uuid": "1 OR 1=1",
                                                        "disable": False}), 400, "payload"),
    ("get-disable-not-bool", B, "nt", act("get", lambda w, c, p: {
        "request_uuid": w.req[p], "disable": "maybe"}), 400, "payload"),
    ("authorize-r-missing", B, "nt", act("authorize", {}), 400, "payload"),
    ("deny-r-number", B, "nt", act("deny", {"r": 7}), 400, "payload"),
    ("enable-uuids-not-array", B, "nt", act("enable", lambda w, c, p: {
        "deposit_uuids": w.dep[p]}), 400, "payload"),
    ("purge-uuids-with-number", B, "nt", act("purge", lambda w, c, p: {
        "deposit_uuids": [w.dep[p], 5]}), 400, "payload"),
    ("disable-uuids-malformed", B, "nt", act("disable", {"deposit_uuids": ["zzz"]}), 400,
     "payload"),
    # entropy, search
    ("entropy-count-negative", B, "nt", act("entropy", {"count": -1}), 400, "payload"),
    ("entropy-count-string", B, "nt", act("entropy", {"count": "32"}), 400, "payload"),
    ("entropy-count-huge", B, "nt", act("entropy", {"count": 10 ** 9}), 400, "payload"),
    ("entropy-count-missing", B, "nt", act("entropy", {}), 400, "payload"),
    ("search-after-bad-date", B, "nt", act("search", {"string": None,
                                                      "after": "2026-01-01 10:00:00"}), 400,
     "payload"),
    ("search-before-fractional-seconds", B, "nt", act("search", {
        "string": None, "before": "2026-01-01T10:00:00.123Z"}), 400, "payload"),
    ("search-string-number", B, "nt", act("search", {"string": 5}), 400, "payload"),
]

PARAMS = [pytest.param(c, p, id="%s-%s" % (c[0], "enc" if p == "json-encrypt" else "sig"))
          for c in CASES for p in c[1]]


@pytest.mark.parametrize("case,protocol", PARAMS)
def test_refused_and_nothing_changes(w, case, protocol):
    cid, _, kind, build, status, form = case
    c = (w.ts if kind == "ts" else w.nt)[protocol]
    token = c.tokens.read()
    send = build(w, c, protocol)
    before = w.env.snapshot()
    mark = w.env.audit_mark()
    ans = send()
    what = "%s (%s)" % (cid, protocol)
    statuses = status if isinstance(status, tuple) else (status,)
    assert ans.status in statuses, "%s: expected HTTP %s, got %r" % (
        what, " or ".join(map(str, statuses)), ans)
    assert ans.reason_source in ("data", "form") and ans.reason and ans.reason.strip(), \
        "%s: expected a reason (a payload with reason, or a reason=... body), got %r" % (
            what, ans)
    if form == "plain":
        assert ans.form == "plain" and ans.headers.get("content-type", "").startswith(
            z.FORM), "%s: expected a plain reason=... answer (%s), got %r" % (what, z.FORM, ans)
    elif form == "payload":
        assert ans.form == "payload" and ans.payload_status == ans.status, \
            "%s: expected an answer in the client's protocol with reason and status, " \
            "got %r" % (what, ans)
    if kind == "ts":
        assert ans.get("next_token") is None and c.tokens.read() == token, \
            "%s: a refused request must not advance the token: %r" % (what, ans)
    w.env.unchanged(before, mark, what)


def test_tokens_survive_the_refusals(w):
    """After the whole catalogue, the token-sync clients' tokens still work."""
    for p in PROTOCOLS:
        expect(w.ts[p].entropy(4), 200, "a good request of %s after the refusals" % p)


def test_nothing_of_the_payload_in_the_log(w):
    marker = "MARKER" + unique("m")
    c = w.nt["json-sign"]
    c.call("put", put_fields(c, handle="a\n" + marker, description=marker))
    c.call("entropy", {"count": marker})
    assert marker not in w.env.server.log()


# --------------------------------------------------------------------------
# every request answered


def raw_exchange(port, data, timeout=10):
    """Send data on one TLS connection, half-close nothing, read until the
    server closes or stays silent for timeout; the bytes read."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with no_verify_context().wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(data)
            out = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    out += chunk
                    if out.count(b"HTTP/1.1 ") >= data.count(b" HTTP/1.1\r\n") and \
                            _complete(out):
                        break
            except socket.timeout:
                pass
            return out


def _complete(out):
    """True when the last response in out has its whole body."""
    head, sep, rest = out.rpartition(b"HTTP/1.1 ")[2].partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(rest) >= int(line.split(b":")[1])
    return False


def post(target, body, extra=b""):
    return (b"POST " + target + b" HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n" + extra +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


@pytest.mark.parametrize("raw,status", [
    (post(b"/?a=put", b"payload=garbage"), b"400"),
    (post(b"/?a=register", b"%%%"), b"400"),
    (post(b"/?a=verify", b""), b"400"),
    (post(b"/?a=nothing", b"payload=x"), b"400"),
    (post(b"/pks/add", b"keytext=x"), b"400"),
    (post(b"/?a=put", b"payload=x", b"Connection: close\r\n"), b"400"),
    (b"POST /?a=put HTTP/1.1\r\nHost: localhost\r\nContent-Length: 307200\r\n\r\n", b"413"),
], ids=["put-garbage", "register-garbage", "verify-empty", "unknown-action", "pks-add-garbage",
        "connection-close", "oversize-declared"])
def test_every_request_gets_an_answer(env, raw, status):
    out = raw_exchange(env.port, raw)
    assert out.startswith(b"HTTP/1.1 " + status + b" "), \
        "expected an HTTP %s answer, got %r (an empty result is a close without answer)" % (
            status.decode(), out[:200])
    head, _, rest = out.partition(b"\r\n\r\n")
    # The plain error form: reason=<URL-encoded text>.
    assert b"\r\ncontent-type: application/x-www-form-urlencoded" in head.lower() and \
        rest.startswith(b"reason="), "expected a reason=... answer, got %r" % out[:400]


def test_pipelined_bad_requests_each_answered(env):
    reqs = [post(b"/?a=put", b"payload=garbage"), post(b"/?a=entropy", b""),
            b"GET /?a=fingerprint HTTP/1.1\r\nHost: localhost\r\n\r\n"]
    out = raw_exchange(env.port, b"".join(reqs))
    statuses = [chunk[:3] for chunk in out.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [b"400", b"400", b"200"], \
        "expected three answers in order, got %r" % out[:600]
