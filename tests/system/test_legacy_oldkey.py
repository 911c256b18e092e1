"""A config dir made before the legacy protocol keeps working for it
(issue 18, item 3; docs/legacy.md "The server key").

ktadmin init used to make the server key's primary sign and certify only,
with an encryption subkey; today's primary may encrypt too.  The clients
encrypt to the primary whatever its flags say (reference section 3), and
they pin its fingerprint, so an existing config dir must keep its key and
still answer them.  Here the session's config dir is turned back into
the old shape with the operator's own tool (gpg --edit-key change-usage:
a new self-signature, the same fingerprint) and the whole protocol runs
against it, in both protocols.
"""

import os
import subprocess

import pytest

from conftest import gpg_fingerprints, run, tool
from legacy_env import PROTOCOLS, expect, start_env, unique
import ztclient as z


def primary_usage(homedir):
    """The primary key's own capabilities as gpg lists them ("sc", "sce";
    the upper-case letters after them are the whole key's)."""
    out = run([tool("gpg"), "--homedir", homedir, "--batch", "--with-colons",
               "--list-keys"], check=True).stdout
    caps = next(ln.split(":")[11] for ln in out.splitlines() if ln.startswith("pub:"))
    return "".join(ch for ch in caps if ch.islower())


def make_old_style(confdir):
    """The primary: sign and certify only, as ktadmin init made it."""
    fpr = gpg_fingerprints(confdir)[0]
    usage = primary_usage(confdir)
    assert "e" in usage, "expected today's ktadmin init key to encrypt with its primary: %r" % usage
    # change-usage toggles: E off.
    p = subprocess.run([tool("gpg"), "--homedir", confdir, "--batch", "--expert",
                        "--pinentry-mode", "loopback", "--passphrase", "",
                        "--command-fd", "0", "--status-fd", "2", "--edit-key", fpr],
                       input="change-usage\nE\nQ\nsave\n", capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert primary_usage(confdir) == "sc", \
        "expected the primary to sign and certify only, got %r" % primary_usage(confdir)
    assert gpg_fingerprints(confdir)[0] == fpr
    # The agent gpg started runs as root; the server starts its own.
    run([tool("gpgconf"), "--homedir", confdir, "--kill", "all"], check=True)


@pytest.fixture(scope="module")
def env(registry, template):
    e, stop = start_env(registry, template, "legold", prepare=make_old_style)
    try:
        yield e
    finally:
        stop()


def test_the_served_key_is_the_old_one(env, registry):
    """The fingerprint the clients pinned, and a primary that does not
    say it encrypts: what the rest of this module runs against."""
    fpr = gpg_fingerprints(env.confdir)[0]
    c = env.client(unique("oldfp"), token_sync=False)
    assert c.get_fingerprint()[1] == "4096R/" + fpr
    c.fetch_server_key()            # the client's own checks of it
    resp = c.hkp_lookup(fpr)
    assert resp.status == 200, resp
    armored = z.Client.KEY_RE.search(resp.body.decode()).group(0)
    home = registry.mkdtemp("oldkey-gpg-")
    registry.gnupg_home(home)
    path = os.path.join(home, "server.asc")
    with open(path, "w") as f:
        f.write(armored)
    run([tool("gpg"), "--homedir", home, "--batch", "--import", path], check=True)
    assert primary_usage(home) == "sc"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_register_put_request_get(env, protocol):
    org, secret = env.org(unique("old"))
    c = env.enrolled(unique("old"), org, secret, protocol)
    put = expect(c.put(b"kept across the upgrade", unique("old")), 200, "put")
    r, got = c.fetch(put["deposit_uuid"])
    expect(r, 200, "request")
    expect(got, 200, "get")
    assert c.open_content(got) == b"kept across the upgrade"
