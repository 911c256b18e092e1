"""The legacy protocol's registration against a real server, written to
docs/legacy.md and the reference (ztrustee-protocol.md §5, §7): HKP add,
fingerprint, the server key by HKP with its self-signatures only,
register, verify, request_activation and the org's auth secret rules,
keytrustee-orgtool (list, enable-client, disable-client, activate-client,
reset-token), the contacts' mail, and token sync -- each in both
protocols, json-encrypt and json-sign.

The clients are tests/system/ztclient.py, a client written to the
reference; the module has its own PostgreSQL, an SMTP sink and one server.
"""

import hashlib
import re
import subprocess

import pytest

from conftest import tool, wait_for
from legacy_env import (PROTOCOLS, TOKEN_RE, expect, expect_refused, random_source,
                        start_env, unique)
import ztclient as z

CHALLENGE_RE = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def env(registry, template):
    e, stop = start_env(registry, template, "legreg", mail=True)
    try:
        yield e
    finally:
        stop()


@pytest.fixture(scope="module")
def org(env):
    """An org with two contacts and the random auth secret add makes."""
    return env.org(unique("reg"), contacts="ops1@example.com,ops2@example.com")


def registered(env, name, org, protocol, token_sync=True):
    """A client through HKP add, fingerprint, key, register and verify (not
    yet activated)."""
    c = env.client(name, protocol, token_sync)
    c.enroll(org)
    return c


# --------------------------------------------------------------------------
# fingerprint and the server key


def test_fingerprint_is_the_servers_qualified_fingerprint(env):
    c = env.client("fp")
    resp, text = c.get_fingerprint()
    assert resp.status == 200, "GET /?a=fingerprint: expected 200, got %r" % resp
    assert resp.headers.get("content-type", "").startswith("text/plain"), resp.headers
    assert text == env.server.fingerprint, \
        "expected the server's 4096R/<40 HEX>, got %r" % text
    # The client's parse rule: bits, letter R, upper-case hex (§2).
    assert z.parse_fingerprint(text) == (4096, "R", env.server.fingerprint.split("/")[1])


def test_server_key_by_hkp_has_self_signatures_only(env):
    c = env.client("srvkey")
    hexfpr = env.server.fingerprint.split("/")[1]
    resp = c.hkp_lookup(hexfpr)
    assert resp.status == 200, "HKP lookup of the server key: expected 200, got %r" % resp
    assert resp.headers.get("content-type", "").startswith("application/pgp-keys"), \
        resp.headers
    body = resp.body.decode()
    assert body.count("-----BEGIN PGP PUBLIC KEY BLOCK-----") == 1, body[:300]
    # As the 3.5 library takes and checks it: the key whose fingerprint the
    # server gives, RSA 4096, valid 0x13 self-signatures, no certification
    # by another key.
    key = c.fetch_server_key()
    assert key.fpr == hexfpr and key.qualified == env.server.fingerprint
    others = [s.issuer.hex().upper() for _, sigs in key.uids for s in sigs
              if s.issuer != key.keyid]
    assert others == [], "the server key is served with certifications by %s" % others


def test_server_key_stays_self_signed_after_a_certified_copy_is_posted(env, registry):
    """Someone posts the server key with a certification of theirs: the
    lookup still serves the server key with its self-signatures only (a
    third-party certification would make every 3.5 client refuse it)."""
    import os
    c = env.client("certifier")
    home = registry.gnupg_home(os.path.join(registry.mkdtemp("zt-certifier-"), "g"))
    os.mkdir(home, 0o700)
    gpg = [tool("gpg"), "--homedir", home, "--batch", "--pinentry-mode", "loopback",
           "--passphrase", ""]
    hexfpr = env.server.fingerprint.split("/")[1]
    resp = c.hkp_lookup(hexfpr)
    assert resp.status == 200, "HKP lookup of the server key: expected 200, got %r" % resp
    subprocess.run(gpg + ["--import"], input=resp.body, check=True, capture_output=True)
    subprocess.run(gpg + ["--quick-gen-key", "mallory <m@example.com>", "rsa2048",
                          "sign,cert", "never"], check=True, capture_output=True)
    subprocess.run(gpg + ["--default-key", "m@example.com", "--quick-sign-key", hexfpr],
                   check=True, capture_output=True)
    certified = subprocess.run(gpg + ["--armor", "--export", hexfpr], check=True,
                               capture_output=True).stdout.decode()
    with pytest.raises(z.InvalidServerKey):
        z.read_key(certified).check_as_server_key()
    c.hkp_add(certified)
    c.fetch_server_key()  # InvalidServerKey if the certification was merged


# --------------------------------------------------------------------------
# the whole registration


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_whole_registration(env, org, protocol):
    name, secret = org
    c = env.client(unique("whole"), protocol)
    expect(c.hkp_add(), 200, "POST /pks/add of the client key")
    # A posted key is served (pending or registered).
    resp = c.hkp_lookup(c.fpr)
    assert resp.status == 200 and z.read_key(
        re.search(c.KEY_RE, resp.body.decode()).group(0)).fpr == c.fpr, \
        "HKP lookup of a posted client key: expected 200 and that key, got %r" % resp
    c.fetch_server_key()

    ans = expect(c.register(name), 200, "register")
    assert ans.form == "json" and ans.headers.get("content-type", "").startswith(
        "application/json"), "register: expected a JSON answer, got %r" % ans
    assert set(ans.data) == {"challenge", "sha512", "next_token"}, ans.data
    assert re.fullmatch(r"[0-9a-f]{128}", ans["sha512"]), \
        "register: expected sha512 in lower-case hex, got %r" % ans["sha512"]
    assert CHALLENGE_RE.match(c.challenge), \
        "expected the challenge to be 32 random bytes in hex, got %r" % c.challenge
    assert ans.signer is not None, "expected the challenge signed by the server key"
    assert TOKEN_RE.match(ans["next_token"]), ans["next_token"]
    assert c.tokens.read() == ans["next_token"]
    assert env.client_state(c) == "unverified"

    ans = expect(c.verify(), 200, "verify")
    assert ans.form == "payload" and ans.get("verified") == "true", \
        "verify: expected {\"verified\": \"true\"} (a string), got %r" % ans
    if protocol == "json-sign":
        # verify goes encrypted, its answer comes in the client's protocol.
        assert set(z.form_decode(ans.body)) == {"payload", "payload_sig"}, ans.body[:200]
    assert TOKEN_RE.match(ans["next_token"]) and ans["next_token"] != c.challenge
    assert env.client_state(c) == "verified"

    ans = expect(c.request_activation(name, secret, contact="whole@example.com",
                                      justification="a new database host",
                                      notify=["ops1@example.com"], group="dbs"),
                 200, "request_activation with the org's secret")
    assert env.client_state(c) == "active"

    listed = env.org_list()[name]["clients"]
    mine = [x for x in listed if x["fingerprint"] == c.fpr]
    assert len(mine) == 1 and mine[0]["state"] == "active", \
        "keytrustee-orgtool list: expected the client, active, in %s: %r" % (name, listed)

    for rcpt in ("ops1@example.com", "ops2@example.com"):
        mails = wait_for(lambda: [m for m in env.sink.to(rcpt, "client_registration")
                                  if c.fpr in m["body"]], 30,
                         "the client notice to %s naming %s" % (rcpt, c.fpr))
        assert len(mails) == 1, [m["body"] for m in mails]

    ans = expect(c.put(b"first key", unique("h")), 200, "put by the new active client")
    assert isinstance(ans.get("deposit_uuid"), str)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_register_answer_without_token_sync(env, org, protocol):
    c = env.client(unique("nosync"), protocol, token_sync=False)
    expect(c.hkp_add(), 200, "HKP add")
    c.fetch_server_key()
    ans = expect(c.register(org[0]), 200, "register without token_sync")
    assert "next_token" not in ans.data, ans.data
    ans = expect(c.verify(), 200, "verify")
    assert "next_token" not in ans.data, ans.data
    expect(c.request_activation(org[0], org[1]), 200, "request_activation")
    ans = expect(c.entropy(8), 200, "entropy without auth_token")
    assert "next_token" not in ans.data, ans.data


def test_register_without_posted_key_is_refused(env, org):
    c = env.client(unique("unposted"))
    c.fetch_server_key()
    ans = c.register(org[0])
    expect_refused(ans, 400, "register of a key never posted to /pks/add")
    assert env.client_state(c) == "<none>"


def test_register_with_malformed_fingerprint_is_refused(env, org):
    c = env.client(unique("badfp"))
    expect(c.hkp_add(), 200, "HKP add")
    for bad in ("4096R/" + c.fpr, "2048R/" + c.fpr[:-1], "2048R/" + c.fpr + "00",
                "2048R/" + "G" * 40, "' OR 1=1 --", ""):
        fields = z.form_encode([("fingerprint", bad), ("protocol", "json-encrypt"),
                                ("token_sync", "1"), ("org", org[0])])
        ans = c.read_answer(c.http("POST", "/?a=register", fields))
        expect_refused(ans, 400, "register with fingerprint %r" % bad)
    assert env.client_state(c) == "<none>"


def test_register_with_unknown_protocol_is_refused(env, org):
    c = env.client(unique("badproto"))
    expect(c.hkp_add(), 200, "HKP add")
    c.fetch_server_key()
    expect_refused(c.register(org[0], protocol="json-magic"), 400,
                   "register with protocol json-magic")
    assert env.client_state(c) == "<none>"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wrong_challenge_response_is_refused(env, org, protocol):
    c = env.client(unique("wrongresp"), protocol)
    expect(c.hkp_add(), 200, "HKP add")
    c.fetch_server_key()
    expect(c.register(org[0]), 200, "register")
    expect_refused(c.verify("0" * 64), 403, "verify with a wrong response")
    assert env.client_state(c) == "unverified"
    ans = expect(c.verify(), 200, "verify with the right response afterwards")
    assert ans.get("verified") == "true"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_actions_refused_until_verified_and_active(env, org, protocol):
    c = env.client(unique("early"), protocol)
    expect(c.hkp_add(), 200, "HKP add")
    c.fetch_server_key()
    expect(c.register(org[0]), 200, "register")
    expect_refused(c.put(b"k", "h"), 403, "put by a client not verified yet")
    expect_refused(c.request_activation(org[0], org[1]), 403,
                   "request_activation before verify")
    expect(c.verify(), 200, "verify")
    expect_refused(c.put(b"k", "h"), 403, "put by a verified client not activated")
    expect_refused(c.search(), 403, "search by a verified client not activated")
    assert env.psql("SELECT count(*) FROM deposits WHERE owner = '%s'" % c.fpr) == "0"


# --------------------------------------------------------------------------
# activation and the org's auth secret


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_activation_without_secret_is_pending_until_enable_client(env, org, protocol):
    c = registered(env, unique("pend"), org[0], protocol)
    expect(c.request_activation(org[0], ""), 200, "request_activation with auth \"\"")
    assert env.client_state(c) == "pending"
    expect_refused(c.put(b"k", unique("h")), 403, "put by a pending client")
    listed = {x["fingerprint"]: x["state"] for x in env.org_list()[org[0]]["clients"]}
    assert listed.get(c.fpr) == "pending", listed
    env.orgtool_ok("enable-client", "--fingerprint", c.fingerprint)
    assert env.client_state(c) == "active"
    expect(c.put(b"k", unique("h")), 200, "put after keytrustee-orgtool enable-client")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_activation_with_wrong_secret_is_403(env, org, protocol):
    c = registered(env, unique("wrongauth"), org[0], protocol)
    mark = env.audit_mark()
    expect_refused(c.request_activation(org[0], "not-the-secret"), 403,
                   "request_activation with a wrong auth secret")
    assert env.client_state(c) == "verified"
    assert not env.audit_since(mark, "result = 'ok'")
    expect(c.request_activation(org[0], org[1]), 200, "then with the right one")
    assert env.client_state(c) == "active"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_org_without_secret_activates_at_once(env, protocol):
    name, secret = env.org(unique("open"), auth="")
    assert secret == ""
    c = registered(env, unique("open"), name, protocol)
    expect(c.request_activation(name, ""), 200, "request_activation in an org without secret")
    assert env.client_state(c) == "active"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_activate_client_from_the_server_host(env, org, protocol):
    c = registered(env, unique("act"), org[0], protocol)
    assert env.client_state(c) == "verified"
    env.orgtool_ok("activate-client", "-n", org[0], "--fingerprint", c.fingerprint)
    assert env.client_state(c) == "active"
    listed = {x["fingerprint"]: x["state"] for x in env.org_list()[org[0]]["clients"]}
    assert listed.get(c.fpr) == "active", listed
    expect(c.put(b"k", unique("h")), 200, "put after activate-client")


def test_set_auth_changes_the_rule(env):
    """set-auth replaces the secret: the old one is wrong from then on."""
    name, old = env.org(unique("rot"))
    env.orgtool_ok("set-auth", "-n", name, "-s", "NewS3cret!")
    c = registered(env, unique("rot"), name, "json-encrypt")
    expect_refused(c.request_activation(name, old), 403, "the replaced secret")
    expect(c.request_activation(name, "NewS3cret!"), 200, "the new secret")
    assert env.client_state(c) == "active"


def test_wrong_secret_is_throttled_per_address(env, org):
    c = registered(env, unique("throttle"), org[0], "json-encrypt", token_sync=False)
    codes = [c.request_activation(org[0], "wrong").status for _ in range(5)]
    assert codes == [403] * 5, "five wrong secrets: expected 403 each, got %s" % codes
    ans = c.request_activation(org[0], "wrong")
    expect_refused(ans, 429, "a sixth wrong secret from the same address")
    expect_refused(c.request_activation(org[0], org[1]), 429,
                   "even the right secret, from that address, for the window")
    c.source = random_source()
    expect(c.request_activation(org[0], org[1]), 200, "the right secret from another address")
    assert env.client_state(c) == "active"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_disable_and_enable_client_take_effect_at_the_next_request(env, org, protocol):
    c = env.enrolled(unique("dis"), org[0], org[1], protocol)
    expect(c.entropy(4), 200, "entropy by an active client")
    env.orgtool_ok("disable-client", "--fingerprint", c.fingerprint)
    expect_refused(c.entropy(4), 403, "the next request of a disabled client")
    expect_refused(c.put(b"k", unique("h")), 403, "put by a disabled client")
    env.orgtool_ok("enable-client", "--fingerprint", c.fingerprint)
    expect(c.entropy(4), 200, "the next request after enable-client")


# --------------------------------------------------------------------------
# token sync (§7)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_answer_carries_a_new_fixed_length_token(env, org, protocol):
    c = env.enrolled(unique("tok"), org[0], org[1], protocol)
    seen = {c.tokens.read()}
    for send in (lambda: c.entropy(16), c.search, c.pending,
                 lambda: c.request(deposit_uuid="00000000-0000-4000-8000-000000000000")):
        ans = send()
        tok = ans.get("next_token")
        assert isinstance(tok, str) and TOKEN_RE.match(tok), \
            "expected next_token, 64 lower-case hex digits, in every answer: %r" % ans
        assert tok not in seen, "a token came twice: %r" % tok
        seen.add(tok)
        assert c.tokens.read() == tok
    # The last one was an error (unknown deposit) and still carried it.
    assert ans.status == 404, ans


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wrong_or_missing_token_is_refused_and_does_not_advance(env, org, protocol):
    c = env.enrolled(unique("badtok"), org[0], org[1], protocol)
    good = c.tokens.read()
    for bad, what in (("f" * 64, "a wrong token"), ("", "an empty token"),
                      (z.OMIT, "no auth_token"), (good.upper(), "the token in upper case"),
                      (good[:-1], "a truncated token")):
        ans = c.entropy(4, auth_token=bad)
        expect_refused(ans, 403, "a request with %s" % what)
        assert ans.get("next_token") is None, \
            "a refused token must not advance: %s got %r" % (what, ans)
        assert c.tokens.read() == good
    ans = expect(c.entropy(4), 200, "the right token after the refusals")
    assert ans["next_token"] != good


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reset_token_lets_a_restored_client_go_on(env, org, protocol):
    c = env.enrolled(unique("restore"), org[0], org[1], protocol)
    backup = c.tokens.read()
    expect(c.entropy(4), 200, "a request that advances the token")
    expect(c.entropy(4), 200, "and another")
    c.tokens.write(backup)          # the client restored from its backup
    expect_refused(c.entropy(4), 403, "a stale token")
    env.orgtool_ok("reset-token", "--fingerprint", c.fingerprint)
    ans = expect(c.entropy(4), 200, "the stale token after reset-token")
    assert TOKEN_RE.match(ans["next_token"])
    expect(c.entropy(4), 200, "and the client goes on")
    expect_refused(c.entropy(4, auth_token=backup), 403, "the old token once more")


def test_reset_token_of_unknown_client_fails(env):
    proc = env.orgtool("reset-token", "--fingerprint", "F" * 40)
    assert proc.returncode == 1 and proc.stderr.startswith("error: "), \
        "reset-token of an unknown client: expected exit 1 and an error, got %d %r" % (
            proc.returncode, proc.stderr)


def test_sha512_of_challenge_is_of_its_utf8_bytes(env, org):
    c = env.client(unique("sha"))
    expect(c.hkp_add(), 200, "HKP add")
    c.fetch_server_key()
    ans = expect(c.register(org[0]), 200, "register")
    assert ans["sha512"] == hashlib.sha512(c.challenge.encode("utf-8")).hexdigest()
