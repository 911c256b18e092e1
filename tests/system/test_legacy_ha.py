"""The legacy protocol on an HA pair, written to docs/legacy.md ("HA"): the
passive answers the reads (fingerprint, HKP lookups, search and pending of
clients without token sync) and refuses every write with 503 naming the
active; the active refuses writes with 503 while the passive's database is
down, and takes them again when it is back.

The pair is set up by the guide's steps, as tests/system/test_ha.py does
(two PostgreSQL clusters, synchronous replication); the tests run in file
order and the last one stops the passive's database.
"""

import contextlib
import os
import time

import pytest

from conftest import Cluster, Server, copy_confdir, free_port, ktadmin, update_conf, wait_for
from legacy_env import LegacyEnv, expect, expect_refused, unique
from test_ha import MASTER, copy_without_ssl


@pytest.fixture(scope="module")
def ha(registry, template):
    aconf = copy_confdir(registry, template.confdir, "legha-active")
    aport = free_port()
    update_conf(aconf, PORT=aport)
    acluster = Cluster(registry, os.path.join(registry.mkdtemp("legha-pga-"), "db"),
                       free_port())
    proc = ktadmin("db", "--bootstrap", "--confdir", aconf, "--pg-rootdir", acluster.rootdir,
                   "--port", acluster.port, "--listen", MASTER)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pconf = copy_without_ssl(registry, aconf)
    proc = ktadmin("init", "--confdir", pconf, "--hostname", "localhost")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pcluster = Cluster(registry, os.path.join(registry.mkdtemp("legha-pgp-"), "db"),
                       free_port())
    proc = ktadmin("db", "--bootstrap", "--passive", "--confdir", pconf, "--pg-rootdir",
                   pcluster.rootdir, "--port", pcluster.port, "--master-host", MASTER,
                   "--master-port", acluster.port)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = ktadmin("db", "--enable-synchronous-replication", "--confdir", aconf,
                   "--pg-rootdir", acluster.rootdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    active = Server(registry, aconf, port=aport, name="legha-active").start()
    passive = Server(registry, pconf, name="legha-passive").start()
    env = LegacyEnv(registry, acluster, aconf, active)
    env.passive = passive
    env.pcluster = pcluster
    env.active_url = "https://%s:%d" % (MASTER, aport)
    env.org_name, env.secret = env.org(unique("ha"))
    env.nt = env.enrolled("ha-nt", env.org_name, env.secret, token_sync=False)
    env.ts = env.enrolled("ha-ts", env.org_name, env.secret)
    env.sig = env.enrolled("ha-sig", env.org_name, env.secret, "json-sign", token_sync=False)
    try:
        yield env
    finally:
        passive.stop()
        active.stop()
        pcluster.stop()
        acluster.stop()
        registry.kill_gnupg(pconf)
        registry.kill_gnupg(aconf)


@contextlib.contextmanager
def on(c, url):
    """The client talking to another server of the pair."""
    old = c.url, c.hkp_url
    c.url = c.hkp_url = url
    try:
        yield c
    finally:
        c.url, c.hkp_url = old


def test_fingerprint_and_server_key_on_the_passive(ha):
    c = ha.client("ha-fp")
    with on(c, ha.passive.url):
        resp, text = c.get_fingerprint()
        assert resp.status == 200 and text == ha.server.fingerprint, \
            "the passive's ?a=fingerprint: expected the active's, got %r %r" % (resp, text)
        c.fetch_server_key()


def test_hkp_lookup_on_the_passive(ha):
    c = ha.client("ha-look")
    with on(c, ha.passive.url):
        k = c.fetch_key(ha.nt.fpr)
    assert k.fpr == ha.nt.fpr


@pytest.mark.parametrize("who", ["nt", "sig"])
def test_reads_on_the_passive(ha, who):
    c = getattr(ha, who)
    handle = unique("ha-read")
    put = expect(c.put(b"replicated", handle), 200, "put on the active")
    with on(c, ha.passive.url):
        ans = expect(c.search(handle), 200, "search on the passive")
        assert [m["uuid"] for m in ans["matches"]] == [put["deposit_uuid"]], ans
        expect(c.pending(), 200, "pending on the passive")


@pytest.mark.parametrize("what", ["put", "request", "purge", "entropy-token-sync",
                                  "search-token-sync", "register"])
def test_writes_on_the_passive_are_503_naming_the_active(ha, what):
    c = ha.ts if what.endswith("token-sync") else ha.nt
    put = expect(ha.nt.put(b"x", unique("ha-w")), 200, "put on the active")
    if what == "register":
        # Its key posted on the active first: that write is not the test's.
        n = ha.client("ha-newreg")
        expect(n.hkp_add(url=ha.server.url), 200, "HKP add on the active")
        n.url = ha.passive.url
        n.fetch_server_key()
    before = ha.snapshot()
    token = c.tokens.read()
    with on(c, ha.passive.url):
        if what == "put":
            ans = c.put(b"on passive", unique("ha-p"))
        elif what == "request":
            ans = c.request(deposit_uuid=put["deposit_uuid"])
        elif what == "purge":
            ans = c.purge([put["deposit_uuid"]])
        elif what == "entropy-token-sync":
            ans = c.entropy(4)
        elif what == "search-token-sync":
            ans = c.search(None)
        else:
            ans = n.register(ha.org_name)
    expect_refused(ans, 503, "%s on the passive" % what)
    assert ha.active_url in ans.reason, \
        "%s on the passive: expected the reason to name the active %s, got %r" % (
            what, ha.active_url, ans.reason)
    assert c.tokens.read() == token
    assert ha.snapshot() == before, "%s on the passive changed the database" % what
    if what.endswith("token-sync"):
        expect(c.entropy(4), 200, "the token-sync client on the active afterwards")


def test_writes_refused_while_the_passive_database_is_down(ha):
    c = ha.nt
    kept = expect(c.put(b"before", unique("ha-before")), 200, "put before the stop")
    assert ktadmin("db", "--stop", "--pg-rootdir", ha.pcluster.rootdir).returncode == 0
    try:
        t0 = time.monotonic()
        while True:
            ans = c.put(b"during", unique("ha-during"))
            if ans.status == 503:
                break
            assert ans.status == 200, ans
            assert time.monotonic() - t0 < 2.0, "writes still accepted 2 s after the stop"
        expect_refused(ans, 503, "put on the active while the passive is down")
        t1 = time.monotonic()
        expect_refused(c.request(deposit_uuid=kept["deposit_uuid"]), 503,
                       "request (a write) while the passive is down")
        assert time.monotonic() - t1 < 2.0, "the 503 must come at once, not after a hang"
        ans = expect(c.search(None), 200,
                     "search (a read) on the active while the passive is down")
        assert kept["deposit_uuid"] in [m["uuid"] for m in ans["matches"]], ans
        resp, text = c.get_fingerprint()
        assert resp.status == 200
    finally:
        assert ha.pcluster.start().returncode == 0
    wait_for(lambda: c.put(b"after", unique("ha-after")).status == 200, 30,
             "a put accepted once the passive's database is back")
