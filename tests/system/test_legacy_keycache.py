"""A legacy client's key, checked once by each legacy thread and kept
(clientkey.c's key ring, docs/legacy.md "Security of the payloads"): a
change of the key the client's row holds, or the key's expiry, is seen at
the client's next request, exactly as a server that imports the key for
every request sees it.

The server runs one worker and one legacy thread, so that the key a
request checked is the one the next request finds in its ring.  Each test makes requests
first (the key is then in the ring), changes what the row holds with
psql (what an operator or a re-registration would do), and expects the
next request refused; a ring that never let go of a key would let it
through (200).
"""

import struct
import subprocess
import threading
import time

import pytest

from conftest import tool, wait_for
from legacy_env import PROTOCOLS, expect, expect_refused, sql_quote, start_env, unique
import ztclient as z


@pytest.fixture(scope="module")
def env(registry, template):
    e, stop = start_env(registry, template, "legkc")
    try:
        e.server.stop()
        e.server.extra_args = ["--threads", "1", "--legacy-threads", "1"]
        e.server.start()
        yield e
    finally:
        stop()


@pytest.fixture(scope="module")
def org(env):
    return env.org(unique("kc"))


class ExpiringKey(z.ClientKey):
    """A client key whose user ID's self-signature says the key expires
    at expires_at (a Unix time)."""

    expires_at = None

    def _self_sig(self, uid=None):
        uid = self.uid if uid is None else uid
        pk = self.pkey
        hashed = [
            z.subpacket(z.SP_ISSUER_FPR, b"\x04" + bytes.fromhex(pk.fpr)),
            z.subpacket(z.SP_CREATED, struct.pack(">I", self.created)),
            z.subpacket(z.SP_KEY_EXPIRES, struct.pack(">I", self.expires_at - self.created)),
            z.subpacket(z.SP_KEY_FLAGS, bytes([z.KF_CERTIFY | z.KF_SIGN])),
            z.subpacket(z.SP_PREF_SYM, bytes([z.SYM_AES256, z.SYM_AES192, z.SYM_AES128])),
            z.subpacket(z.SP_PREF_HASH, bytes([z.HASH_SHA512, z.HASH_SHA256])),
            z.subpacket(z.SP_FEATURES, b"\x01"),
        ]
        material = pk.hash_material() + b"\xb4" + struct.pack(">I", len(uid)) + uid
        return z.make_signature(self.primary_priv, pk.keyid, 0x13, material, hashed,
                                [z.subpacket(z.SP_ISSUER, pk.keyid)])


def revoked_export(key):
    """key's public key with a key revocation signature (0x20) by itself
    on its primary: the same fingerprint, no longer usable."""
    pk = key.pkey
    rev = z.make_signature(
        key.primary_priv, pk.keyid, 0x20, pk.hash_material(),
        [z.subpacket(z.SP_ISSUER_FPR, b"\x04" + bytes.fromhex(pk.fpr)),
         z.subpacket(z.SP_CREATED, struct.pack(">I", int(time.time()) - 60))],
        [z.subpacket(z.SP_ISSUER, pk.keyid)])
    packets = key.public_packets()
    first = z.packet(z.T_PUBKEY, pk.body)
    assert packets.startswith(first)
    return z.armor("PUBLIC KEY BLOCK", first + z.packet(z.T_SIG, rev) + packets[len(first):])


def set_pubkey(env, client, armored):
    env.psql("UPDATE clients SET pubkey = %s WHERE fingerprint = %s" % (
        sql_quote(armored), sql_quote(client.fpr)))


def stored_pubkey(env, client):
    return env.psql("SELECT pubkey FROM clients WHERE fingerprint = %s" % sql_quote(client.fpr))


def warm(client, n=3):
    """Requests the worker verifies with the key it then keeps."""
    for _ in range(n):
        expect(client.entropy(4), 200, "entropy by an active client")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_key_revoked_in_the_row_is_refused_at_the_next_request(env, org, protocol):
    c = env.enrolled(unique("rev"), org[0], org[1], protocol, token_sync=False)
    warm(c)
    before = stored_pubkey(env, c)
    set_pubkey(env, c, revoked_export(c.key))
    expect_refused(c.entropy(4), 401, "the next request after its key was revoked")
    expect_refused(c.search(), 401, "and the one after")
    # Back to the key as registered: accepted again at the next request.
    set_pubkey(env, c, before)
    warm(c, 1)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_another_key_in_the_row_is_refused_at_the_next_request(env, org, protocol):
    c = env.enrolled(unique("swap"), org[0], org[1], protocol, token_sync=False)
    other = env.enrolled(unique("other"), org[0], org[1], protocol, token_sync=False)
    warm(c)
    warm(other, 1)
    before = stored_pubkey(env, c)
    set_pubkey(env, c, stored_pubkey(env, other))
    expect_refused(c.entropy(4), 401, "a request signed by a key the row no longer holds")
    warm(other, 1)
    set_pubkey(env, c, before)
    warm(c, 1)


def test_a_signature_made_after_the_key_expired_is_refused(env, org):
    """The key is kept with its expiry: a request signed (within the
    server's 300 s ahead, docs/legacy.md) after the key expired is
    refused; one signed before it, accepted."""
    t0 = int(time.time())
    key = ExpiringKey.generate("ztrustee (client) <exp@example.com>")
    key.expires_at = t0 + 120
    c = env.enrolled(unique("exp"), org[0], org[1], "json-encrypt", token_sync=False, key=key)
    warm(c)
    assert time.time() < t0 + 60, "the enrollment took too long for this test"
    expect_refused(c.entropy(4, sig_time=t0 + 240), 401,
                   "a request signed after the client's key expired")
    warm(c, 1)


def test_a_disabled_client_with_its_key_kept_is_refused(env, org):
    c = env.enrolled(unique("off"), org[0], org[1], "json-encrypt", token_sync=False)
    warm(c)
    env.orgtool_ok("disable-client", "--fingerprint", c.fingerprint)
    expect_refused(c.entropy(4), 403, "the next request of a disabled client")
    env.orgtool_ok("enable-client", "--fingerprint", c.fingerprint)
    warm(c, 1)


def test_a_worker_serves_its_other_connections_while_a_legacy_request_waits(env, org):
    """The one worker hands a legacy request to a legacy thread and goes on
    (legacy_pool.c): while the request waits on PostgreSQL (a lock held on
    the clients table), the worker still answers another connection.  A
    worker serving the request itself (--legacy-threads 0, as before)
    answers nothing until the lock goes."""
    c = env.enrolled(unique("busy"), org[0], org[1], "json-encrypt", token_sync=False)
    warm(c, 1)
    other = env.client(unique("other"), timeout=5)
    cl = env.cluster
    locker = subprocess.Popen(
        [tool("runuser"), "-u", "keytrustee", "--", tool("psql"), "-h", cl.rootdir, "-p",
         str(cl.port), "-d", "keytrustee", "-X", "-Atc",
         "BEGIN; LOCK TABLE clients IN ACCESS EXCLUSIVE MODE; "
         "SELECT pg_sleep(60); COMMIT;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
    held = ("SELECT count(*) FROM pg_locks WHERE relation = 'clients'::regclass "
            "AND mode = 'AccessExclusiveLock' AND granted")
    got, t = {}, None
    try:
        wait_for(lambda: env.psql(held) == "1", timeout=30, what="the lock")
        t = threading.Thread(target=lambda: got.update(ans=c.entropy(4)))
        t.start()
        # The request is in the legacy thread, waiting for the lock.
        wait_for(lambda: env.psql(
            "SELECT count(*) FROM pg_locks WHERE relation = 'clients'::regclass "
            "AND NOT granted") != "0", timeout=30, what="the request waiting")
        t0 = time.monotonic()
        try:
            resp, text = other.get_fingerprint()
        except OSError as e:
            pytest.fail("the worker answered nothing while a legacy request waited: %s" % e)
        assert resp.status == 200 and text == env.server.fingerprint, resp
        assert time.monotonic() - t0 < 5
        assert t.is_alive(), "the legacy request did not wait for the lock"
    finally:
        env.psql("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE relation = "
                 "'clients'::regclass AND mode = 'AccessExclusiveLock' AND granted")
        locker.wait(timeout=30)
        if t is not None:
            t.join(timeout=60)
    assert "ans" in got, "the legacy request got no answer"
    expect(got["ans"], 200, "the legacy request once the lock went")
