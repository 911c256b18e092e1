"""keytrustee-orgtool for the legacy clients (docs/legacy.md): reset-token,
activate-client, and enable-client / disable-client on a client that has
no organization yet.

The server's legacy protocol is not merged yet, so the clients it would
make are rows written here with psql, in the states of schema 8
(unverified, verified, pending, active, disabled; an org only from
activation on; a token or none).  Each verb's effect and refusals are read
back from the database: state, org_id, token_reset, the audit row and, for
activate-client, the notices queued in mail_outbox.  The database is the
one of test_mail's module fixture, with a real server and SMTP server
running: the server sends a notice at once (and empties its body in the
outbox), so its text is read where it arrives, and a notice queued while
the server's sender sleeps shows that the NOTIFY wakes it."""

import json
import secrets

import pytest

from conftest import binary, run, runnable_by_others, wait_for
from test_mail import menv  # noqa: F401  (the module's fixture)

VERBS = ["activate-client", "reset-token"]
TOKEN = "ab" * 32
NOTICE = "KeyTrustee Client Registration: %s (active)"


def new_fpr():
    return secrets.token_hex(20).upper()


def orgtool(env, *args):
    argv = [binary("keytrustee-orgtool")]
    if env is not None:
        argv += ["--confdir", env.confdir]
    return run(argv + [str(a) for a in args])


def ok(proc):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def refused(proc, start):
    """Exit 1 and an error: line starting with start."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: " + start), proc.stderr
    return proc


def sql_text(value):
    return "NULL" if value is None else "'%s'" % value


def add_client(env, fpr, state, org=None, token=None, protocol="json-encrypt",
               hostname=None):
    """A client row as the legacy front would write it; the sealed secret
    is any 12 and 48 bytes."""
    env.psql(
        "INSERT INTO clients (fingerprint, org_id, hostname, pubkey, "
        "secret_nonce, secret_ct, state, protocol, qualified, token, "
        "challenge_sha512) VALUES ('%s', (SELECT id FROM orgs WHERE name = %s), "
        "'%s', 'dummy key', decode(repeat('0a', 12), 'hex'), "
        "decode(repeat('0b', 48), 'hex'), '%s', '%s', '2048R/%s', %s, '%s')"
        % (fpr, sql_text(org), hostname or "legacy-%s.example.com" % fpr[:6].lower(),
           state, protocol, fpr, sql_text(token), "c" * 128))


def client(env, fpr):
    """(state, org name or '', token_reset, token or '<null>')."""
    out = env.psql(
        "SELECT c.state, coalesce(o.name, ''), c.token_reset, "
        "coalesce(c.token, '<null>') FROM clients c "
        "LEFT JOIN orgs o ON o.id = c.org_id WHERE c.fingerprint = '%s'" % fpr)
    state, org, reset, token = out.split("|")
    return state, org, reset == "t", token


def audit(env, fpr):
    out = env.psql("SELECT actor, coalesce(org, ''), action, object, result "
                   "FROM audit_log WHERE object = '%s' ORDER BY id" % fpr)
    return [line.split("|") for line in out.splitlines() if line]


def notices(env, org):
    """The client notices queued for org: [(rcpt, subject)]."""
    out = env.psql(
        "SELECT json_agg(json_build_array(rcpt, subject) ORDER BY id) "
        "FROM mail_outbox WHERE kind = 'client_registration' "
        "AND org_id = (SELECT id FROM orgs WHERE name = '%s')" % org)
    return [tuple(m) for m in json.loads(out)] if out else []


def delivered(env, rcpt, fpr):
    """The client notice about fpr that reached rcpt's mailbox."""
    def find():
        return [m for m in env.sink.to(rcpt, "client_registration")
                if "Fingerprint:  %s\n" % fpr in m["body"]]
    return wait_for(find, 30, "the notice about %s to %s" % (fpr, rcpt))[0]


def queued(env):
    """How many client notices were ever queued."""
    return int(env.psql("SELECT count(*) FROM mail_outbox "
                        "WHERE kind = 'client_registration'"))


def assert_unchanged(env, fpr, was, nqueued):
    assert client(env, fpr) == was
    assert audit(env, fpr) == []
    assert queued(env) == nqueued


@pytest.fixture(scope="module")
def org(menv):  # noqa: F811
    menv.add("legacy-org", "finn@example.com,jake@example.com")
    menv.add("other-org", "bmo@example.com")
    return "legacy-org"


# --------------------------------------------------------------------------
# reset-token


@pytest.mark.parametrize("token", [TOKEN, ""])
def test_reset_token(menv, org, token):  # noqa: F811
    fpr = new_fpr()
    add_client(menv, fpr, "active", org, token=token)
    proc = ok(orgtool(menv, "reset-token", "--fingerprint", fpr))
    assert proc.stdout == ""
    assert "Token of client %s reset" % fpr in proc.stderr
    # The token is left as it is: the server takes the next one it gets.
    assert client(menv, fpr) == ("active", org, True, token)
    assert audit(menv, fpr) == [["orgtool", org, "client.reset_token", fpr, "ok"]]


def test_reset_token_qualified_fingerprint_of_a_client_without_org(menv, org):  # noqa: F811
    fpr = new_fpr()
    add_client(menv, fpr, "verified", token=TOKEN, protocol="json-sign")
    ok(orgtool(menv, "reset-token", "--fingerprint", "2048R/" + fpr.lower()))
    assert client(menv, fpr) == ("verified", "", True, TOKEN)
    assert audit(menv, fpr) == [["orgtool", "", "client.reset_token", fpr, "ok"]]


def test_reset_token_twice(menv, org):  # noqa: F811
    fpr = new_fpr()
    add_client(menv, fpr, "disabled", org, token=TOKEN)
    ok(orgtool(menv, "reset-token", "--fingerprint", fpr))
    proc = ok(orgtool(menv, "reset-token", "--fingerprint", fpr))
    assert "already reset" in proc.stderr and "nothing changed" in proc.stderr
    assert client(menv, fpr) == ("disabled", org, True, TOKEN)
    assert [r[4] for r in audit(menv, fpr)] == ["ok", "unchanged"]


@pytest.mark.parametrize("state,with_org", [("active", True), ("verified", False)])
def test_reset_token_refuses_a_client_without_token_sync(menv, org, state, with_org):  # noqa: F811
    fpr = new_fpr()
    add_client(menv, fpr, state, org if with_org else None, token=None)
    proc = refused(orgtool(menv, "reset-token", "--fingerprint", fpr),
                   "client %s does not sync tokens" % fpr)
    assert "\ndetail: " in proc.stderr
    assert client(menv, fpr) == (state, org if with_org else "", False, "<null>")
    assert audit(menv, fpr) == []


def test_reset_token_of_a_v1_client(menv, org):  # noqa: F811
    """A /v1 client (no token) is refused the same way."""
    fpr = new_fpr()
    add_client(menv, fpr, "active", org, protocol="v1")
    refused(orgtool(menv, "reset-token", "--fingerprint", fpr),
            "client %s does not sync tokens" % fpr)
    assert client(menv, fpr)[2] is False


# --------------------------------------------------------------------------
# activate-client


@pytest.mark.parametrize("state,given", [
    ("verified", lambda f: f),
    ("verified", lambda f: "2048R/" + f.lower()),
    ("pending", lambda f: f),
], ids=["verified", "verified-qualified-lower-case", "pending"])
def test_activate_client(menv, org, state, given):  # noqa: F811
    fpr = new_fpr()
    add_client(menv, fpr, state, org if state == "pending" else None,
               token=TOKEN, hostname="nav7.example.com")
    before = notices(menv, org)
    proc = ok(orgtool(menv, "activate-client", "-n", org, "--fingerprint", given(fpr)))
    assert proc.stdout == ""
    assert "Client %s (organization %s): %s -> active" % (fpr, org, state) in proc.stderr
    for rcpt in ("finn@example.com", "jake@example.com"):
        assert "Queued client registration mail to %s\n" % rcpt in proc.stderr
    assert client(menv, fpr) == ("active", org, False, TOKEN)
    assert audit(menv, fpr) == [["orgtool", org, "client.activate", fpr, "ok"]]
    # The server's client notice, to each contact of the org.
    assert notices(menv, org)[len(before):] == [
        ("finn@example.com", NOTICE % org), ("jake@example.com", NOTICE % org)]
    for rcpt in ("finn@example.com", "jake@example.com"):
        m = delivered(menv, rcpt, fpr)
        assert m["msg"]["Subject"] == NOTICE % org
        assert "  Hostname:     nav7.example.com\n" in m["body"]
        assert "  State:        active\n" in m["body"]
        assert "disable-client --fingerprint %s\n" % fpr in m["body"]
    # And list shows it in the org.
    data = json.loads(ok(orgtool(menv, "list")).stdout)
    assert {"fingerprint": fpr, "state": "active", "hostname": "nav7.example.com"} \
        .items() <= [c for c in data[org]["clients"] if c["fingerprint"] == fpr][0].items()


def test_activate_client_notice_is_signed_by_the_server(menv):  # noqa: F811
    """Queued while the server's sender sleeps (it wakes on a NOTIFY, or
    after a minute), the notice reaches the contact, signed."""
    menv.add("legacy-mail", "marceline@example.com")
    menv.sink.wait_to("marceline@example.com")
    wait_for(lambda: menv.psql("SELECT count(*) FROM mail_outbox "
                               "WHERE state = 'queued'") == "0", 30, "an empty outbox")
    fpr = new_fpr()
    add_client(menv, fpr, "verified", hostname="kms3.example.com")
    ok(orgtool(menv, "activate-client", "-n", "legacy-mail", "--fingerprint", fpr))
    m = delivered(menv, "marceline@example.com", fpr)
    assert m["msg"]["Subject"] == NOTICE % "legacy-mail"
    text = menv.verify(m["body"])
    assert "Fingerprint:  %s" % fpr in text and "kms3.example.com" in text


def test_activate_client_already_active(menv, org):  # noqa: F811
    fpr = new_fpr()
    add_client(menv, fpr, "active", org)
    n = queued(menv)
    proc = ok(orgtool(menv, "activate-client", "-n", org, "--fingerprint", fpr))
    assert "already active" in proc.stderr and "nothing changed" in proc.stderr
    assert client(menv, fpr)[:2] == ("active", org)
    assert audit(menv, fpr) == [["orgtool", org, "client.activate", fpr, "unchanged"]]
    assert queued(menv) == n


def test_activate_client_refuses_an_unverified_client(menv, org):  # noqa: F811
    fpr = new_fpr()
    add_client(menv, fpr, "unverified", token=TOKEN)
    n = queued(menv)
    proc = refused(orgtool(menv, "activate-client", "-n", org, "--fingerprint", fpr),
                   "client %s has not answered its registration challenge" % fpr)
    assert "\nhint: " in proc.stderr
    assert_unchanged(menv, fpr, ("unverified", "", False, TOKEN), n)


def test_activate_client_refuses_a_disabled_client(menv, org):  # noqa: F811
    fpr = new_fpr()
    add_client(menv, fpr, "disabled", org)
    n = queued(menv)
    proc = refused(orgtool(menv, "activate-client", "-n", org, "--fingerprint", fpr),
                   "client %s is disabled" % fpr)
    assert "enable-client --fingerprint %s" % fpr in proc.stderr
    assert_unchanged(menv, fpr, ("disabled", org, False, "<null>"), n)


def test_activate_client_refuses_another_org(menv, org):  # noqa: F811
    fpr = new_fpr()
    add_client(menv, fpr, "pending", "other-org")
    n = queued(menv)
    refused(orgtool(menv, "activate-client", "-n", org, "--fingerprint", fpr),
            "client %s is in organization other-org, not %s" % (fpr, org))
    assert_unchanged(menv, fpr, ("pending", "other-org", False, "<null>"), n)


def test_activate_client_unknown_org(menv, org):  # noqa: F811
    fpr = new_fpr()
    add_client(menv, fpr, "verified")
    n = queued(menv)
    proc = refused(orgtool(menv, "activate-client", "-n", "no-such-org",
                           "--fingerprint", fpr),
                   'no organization named "no-such-org"')
    assert "\nhint: " in proc.stderr
    assert_unchanged(menv, fpr, ("verified", "", False, "<null>"), n)


def test_activate_client_bad_org_name(menv, org):  # noqa: F811
    fpr = new_fpr()
    add_client(menv, fpr, "verified")
    n = queued(menv)
    refused(orgtool(menv, "activate-client", "-n", "bad name", "--fingerprint", fpr),
            'invalid organization name "bad name"')
    assert_unchanged(menv, fpr, ("verified", "", False, "<null>"), n)


@pytest.mark.parametrize("verb", VERBS)
def test_unknown_client(menv, org, verb):  # noqa: F811
    fpr = new_fpr()
    args = ["-n", org] if verb == "activate-client" else []
    n = queued(menv)
    proc = refused(orgtool(menv, verb, *args, "--fingerprint", fpr),
                   "no client with fingerprint %s" % fpr)
    assert "\nhint: " in proc.stderr
    assert audit(menv, fpr) == []
    assert queued(menv) == n


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("fpr", ["1234", "G" * 40, "4096R/" + "A" * 39, "/" + "A" * 40,
                                 "A" * 41, "4096/" + "A" * 40])
def test_malformed_fingerprint(menv, org, verb, fpr):  # noqa: F811
    args = ["-n", org] if verb == "activate-client" else []
    refused(orgtool(menv, verb, *args, "--fingerprint", fpr), 'invalid fingerprint "')


# --------------------------------------------------------------------------
# enable-client and disable-client


@pytest.mark.parametrize("verb", ["enable-client", "disable-client"])
@pytest.mark.parametrize("state", ["verified", "unverified"])
def test_enable_disable_refuse_a_client_not_activated(menv, org, verb, state):  # noqa: F811
    fpr = new_fpr()
    add_client(menv, fpr, state, token=TOKEN)
    proc = refused(orgtool(menv, verb, "--fingerprint", fpr),
                   "client %s is not activated in an organization yet (state %s)"
                   % (fpr, state))
    assert ("hint: activate it with 'keytrustee-orgtool activate-client -n ORG "
            "--fingerprint %s'" % fpr) in proc.stderr
    assert ("registration challenge" in proc.stderr) == (state == "unverified")
    assert client(menv, fpr) == (state, "", False, TOKEN)
    assert audit(menv, fpr) == []


def test_enable_disable_after_activation(menv, org):  # noqa: F811
    fpr = new_fpr()
    add_client(menv, fpr, "verified", token=TOKEN)
    ok(orgtool(menv, "activate-client", "-n", org, "--fingerprint", fpr))
    ok(orgtool(menv, "disable-client", "--fingerprint", fpr))
    assert client(menv, fpr)[:2] == ("disabled", org)
    refused(orgtool(menv, "activate-client", "-n", org, "--fingerprint", fpr),
            "client %s is disabled" % fpr)
    ok(orgtool(menv, "enable-client", "--fingerprint", "2048R/" + fpr))
    assert client(menv, fpr)[:2] == ("active", org)
    assert [r[2:] for r in audit(menv, fpr)] == [
        ["client.activate", fpr, "ok"], ["client.disable", fpr, "ok"],
        ["client.enable", fpr, "ok"]]


def test_enable_a_pending_legacy_client(menv, org):  # noqa: F811
    """request_activation without the code leaves it pending in its org:
    enable-client approves it, as the guide's clients."""
    fpr = new_fpr()
    add_client(menv, fpr, "pending", org, token=TOKEN, protocol="json-sign")
    proc = ok(orgtool(menv, "enable-client", "--fingerprint", fpr))
    assert "Client %s (organization %s): pending -> active" % (fpr, org) in proc.stderr
    assert client(menv, fpr) == ("active", org, False, TOKEN)


# --------------------------------------------------------------------------
# the command line


def help_of(verb):
    proc = orgtool(None, verb, "--help")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout


def options_of(text):
    return text[text.index("\noptions:\n"):]


def test_top_level_help_lists_both():
    proc = ok(orgtool(None, "--help"))
    assert "  keytrustee-orgtool activate-client [-h] -n NAME --fingerprint " \
        "FINGERPRINT\n" in proc.stdout
    assert "  keytrustee-orgtool reset-token [-h] --fingerprint FINGERPRINT\n" \
        in proc.stdout


@pytest.mark.parametrize("verb", VERBS)
def test_verb_help(verb):
    for flag in ("-h", "--help"):
        proc = orgtool(None, verb, flag)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        assert proc.stdout == help_of(verb)
    text = help_of(verb)
    first, blank, rest = text.split("\n", 2)
    usage = "reset-token [-h] --fingerprint FINGERPRINT" if verb == "reset-token" \
        else "activate-client [-h] -n NAME --fingerprint FINGERPRINT"
    assert first == "usage: keytrustee-orgtool [--confdir DIR] " + usage
    assert blank == ""
    # The same layout as the other client verbs: the fingerprint as
    # enable-client has it, the common options last.
    enable = options_of(help_of("enable-client"))
    if verb == "reset-token":
        assert options_of(text) == enable
    else:
        assert options_of(text) == enable.replace(
            "\noptions:\n", "\noptions:\n  -n, --name NAME       the organization to "
            "activate the client in\n")
    for line in text.splitlines():
        assert len(line) <= 80 or line.startswith("usage: "), line


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("opt", ["--no-such-option", "-Z"])
def test_verb_bad_option(verb, opt):
    proc = orgtool(None, verb, opt)
    assert proc.returncode == 2
    assert proc.stderr.startswith('error: unknown option "%s"' % opt)
    assert "\nhint: run 'keytrustee-orgtool %s --help' for usage" % verb in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("opt", ["-n", "--name"])
def test_reset_token_takes_no_name(opt):
    proc = orgtool(None, "reset-token", opt, "x", "--fingerprint", "A" * 40)
    assert proc.returncode == 2
    assert proc.stderr.startswith('error: unknown option "%s"' % opt)


@pytest.mark.parametrize("argv,says", [
    (["reset-token"], "reset-token: the option --fingerprint FINGERPRINT is required"),
    (["reset-token", "--fingerprint"], 'option "--fingerprint" requires an argument'),
    (["reset-token", "A" * 40], 'reset-token: unexpected argument "' + "A" * 40),
    (["activate-client", "--fingerprint", "A" * 40],
     "activate-client: the option -n NAME is required"),
    (["activate-client", "-n", "org"],
     "activate-client: the option --fingerprint FINGERPRINT is required"),
    (["activate-client", "-n"], 'option "-n" requires an argument'),
    (["activate-client", "-n", "org", "--fingerprint"],
     'option "--fingerprint" requires an argument'),
    (["activate-client", "-n", "org", "--fingerprint", "A" * 40, "extra"],
     'activate-client: unexpected argument "extra"'),
])
def test_verb_missing_argument(argv, says):
    proc = orgtool(None, *argv)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: " + says), proc.stderr
    assert "\nhint: " in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("argv", [["reset-token", "--fingerprint", "A" * 40],
                                  ["activate-client", "-n", "o", "--fingerprint", "A" * 40]])
def test_must_be_root(registry, menv, argv):  # noqa: F811
    tool_path = runnable_by_others(registry, binary("keytrustee-orgtool"))
    proc = run(["runuser", "-u", "nobody", "--", tool_path,
                "--confdir", menv.confdir] + argv, cwd="/")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: keytrustee-orgtool must be run as root"
    proc = run(["runuser", "-u", "nobody", "--", tool_path, argv[0], "--help"], cwd="/")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: ")


def test_long_options_take_an_equals_sign(menv, org):  # noqa: F811
    fpr = new_fpr()
    add_client(menv, fpr, "verified", token=TOKEN)
    ok(orgtool(menv, "activate-client", "--name=" + org, "--fingerprint=" + fpr))
    ok(orgtool(menv, "reset-token", "--fingerprint=" + fpr))
    assert client(menv, fpr) == ("active", org, True, TOKEN)


def test_audit_never_holds_a_token(menv, org):  # noqa: F811
    fpr = new_fpr()
    add_client(menv, fpr, "active", org, token=TOKEN)
    ok(orgtool(menv, "reset-token", "--fingerprint", fpr))
    rows = menv.psql("SELECT string_agg(audit_log::text, ' ') FROM audit_log "
                     "WHERE action LIKE 'client.%'")
    assert fpr in rows and TOKEN not in rows
