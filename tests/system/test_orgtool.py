"""keytrustee-orgtool: the guide's "Managing Key Trustee Server Organizations"
scenario, the list format field for field, validation that writes nothing,
client enable/disable, audit rows, and --help / bad option / missing
argument for every verb.

This module has its own cluster so that it can assert the whole list (and
`{}` on an empty database); the session's cluster is left alone."""

import base64
import datetime
import json
import os
import re

import pytest

from conftest import Cluster, binary, copy_confdir, free_port, run, runnable_by_others

UUID_RE = re.compile(r"^[A-Za-z0-9]{43}$")
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
GUIDE_FIELDS = {"auth_secret", "contacts", "creation", "expiration",
                "key_info", "name", "state", "uuid"}
VERBS = ["add", "list", "disable-client", "enable-client", "set-auth"]
FPR = "0123456789ABCDEF0123456789ABCDEF01234567"
FPR2 = "89ABCDEF0123456789ABCDEF0123456789ABCDEF"


@pytest.fixture(scope="module")
def orgdb(registry, template):
    confdir = copy_confdir(registry, template.confdir, "orgtool")
    rootdir = os.path.join(registry.mkdtemp("orgtool-pg-"), "pgdata")
    cluster = Cluster(registry, rootdir, free_port())
    proc = cluster.bootstrap(confdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cluster.confdir = confdir
    yield cluster
    cluster.stop()
    registry.kill_gnupg(confdir)


def orgtool(cluster, *args, confdir_first=True):
    argv = [binary("keytrustee-orgtool")]
    if cluster is not None and confdir_first:
        argv += ["--confdir", cluster.confdir]
    argv += [str(a) for a in args]
    if cluster is not None and not confdir_first:
        argv += ["--confdir", cluster.confdir]
    return run(argv)


def ok(proc):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def org_list(cluster):
    proc = ok(orgtool(cluster, "list"))
    return json.loads(proc.stdout), proc


def audit(cluster, where="true"):
    out = cluster.psql("select actor, org, action, coalesce(object, ''), result "
                       "from audit_log where %s order by id" % where)
    return [line.split("|") for line in out.splitlines() if line]


def add_client(cluster, org, fpr, state="pending"):
    cluster.psql(
        "insert into clients (fingerprint, org_id, hostname, pubkey, "
        "secret_nonce, secret_ct, state) select '%s', id, 'host-%s.example.com', "
        "'dummy key', '\\x00'::bytea, '\\x01'::bytea, '%s' from orgs "
        "where name = '%s'" % (fpr, fpr[:4].lower(), state, org))


def client_state(cluster, fpr):
    return cluster.psql("select state from clients where fingerprint = '%s'" % fpr)


# --------------------------------------------------------------------------
# the guide's scenario, in order (module-scoped database)


def test_list_empty_database(orgdb):
    data, proc = org_list(orgdb)
    assert data == {}
    assert proc.stdout == "{}\n"


def test_add_creates_organization(orgdb):
    proc = ok(orgtool(orgdb, "add", "-n", "disaster-recov", "-c",
                      "finn@example.com,jake@example.com"))
    assert proc.stdout == ""
    assert "Adding organization to database" in proc.stderr
    assert "Initializing random secret" in proc.stderr
    data, _ = org_list(orgdb)
    org = data["disaster-recov"]
    assert org["contacts"] == ["finn@example.com", "jake@example.com"]


def test_list_matches_the_guide_field_for_field(orgdb):
    data, proc = org_list(orgdb)
    assert list(data) == ["disaster-recov"]
    org = data["disaster-recov"]
    assert set(org) == GUIDE_FIELDS | {"clients"}
    assert len(base64.b64decode(org["auth_secret"], validate=True)) == 16
    assert len(org["auth_secret"]) == 24
    assert UUID_RE.match(org["uuid"]), org["uuid"]
    assert ISO_RE.match(org["creation"]), org["creation"]
    assert org["expiration"] == "9999-12-31T15:59:59"
    assert org["key_info"] is None
    assert org["name"] == "disaster-recov"
    assert org["state"] == 0
    assert org["clients"] == []
    # Pretty-printed like the guide: 2-space indent, sorted keys.
    assert proc.stdout == json.dumps(data, indent=2, sort_keys=True) + "\n"
    assert '\n  "disaster-recov": {\n    "auth_secret": ' in proc.stdout
    assert '"key_info": null,' in proc.stdout


def test_creation_is_utc_now(orgdb):
    data, _ = org_list(orgdb)
    creation = datetime.datetime.strptime(data["disaster-recov"]["creation"],
                                          "%Y-%m-%dT%H:%M:%S")
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert abs((now - creation).total_seconds()) < 600, (now, creation)


def test_add_contact_to_existing_organization(orgdb):
    before, _ = org_list(orgdb)
    proc = ok(orgtool(orgdb, "add", "-n", "disaster-recov", "-c",
                      "marceline@example.com"))
    assert proc.stdout == ""
    assert "Initializing random secret" not in proc.stderr
    after, _ = org_list(orgdb)
    org = after["disaster-recov"]
    assert org["contacts"] == ["finn@example.com", "jake@example.com",
                               "marceline@example.com"]
    # Nothing else changed.
    for k in ("auth_secret", "uuid", "creation", "expiration"):
        assert org[k] == before["disaster-recov"][k]


def test_add_existing_contacts_is_deduplicated(orgdb):
    ok(orgtool(orgdb, "add", "-n", "disaster-recov", "-c",
               "jake@example.com,JAKE@example.com,finn@example.com"))
    data, _ = org_list(orgdb)
    assert data["disaster-recov"]["contacts"] == [
        "finn@example.com", "jake@example.com", "marceline@example.com"]


def test_set_auth_as_in_the_guide(orgdb):
    proc = ok(orgtool(orgdb, "set-auth", "-n", "disaster-recov", "-s",
                      "ThisISAs3cr3t!"))
    assert proc.stdout == ""
    assert "ThisISAs3cr3t!" not in proc.stderr
    data, _ = org_list(orgdb)
    org = data["disaster-recov"]
    assert org["auth_secret"] == "ThisISAs3cr3t!"
    assert len(org["contacts"]) == 3
    assert set(org) == GUIDE_FIELDS | {"clients"}


def test_set_auth_empty_for_automatic_approval(orgdb):
    ok(orgtool(orgdb, "set-auth", "-n", "disaster-recov", "-s", ""))
    data, _ = org_list(orgdb)
    assert data["disaster-recov"]["auth_secret"] == ""


def test_set_auth_unknown_org(orgdb):
    before, _ = org_list(orgdb)
    proc = orgtool(orgdb, "set-auth", "-n", "no-such-org", "-s", "x")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ")
    assert "no-such-org" in proc.stderr
    assert org_list(orgdb)[0] == before


def test_confdir_after_the_command(orgdb):
    proc = ok(orgtool(orgdb, "list", confdir_first=False))
    assert "disaster-recov" in json.loads(proc.stdout)


def test_second_org_gets_its_own_secret_and_uuid(orgdb):
    ok(orgtool(orgdb, "add", "-n", "Ops_2", "-c", "a.b+c@mail.example.org"))
    data, _ = org_list(orgdb)
    assert sorted(data) == ["Ops_2", "disaster-recov"]
    a, b = data["Ops_2"], data["disaster-recov"]
    assert a["uuid"] != b["uuid"] and UUID_RE.match(a["uuid"])
    assert len(base64.b64decode(a["auth_secret"], validate=True)) == 16
    assert a["contacts"] == ["a.b+c@mail.example.org"]


# --------------------------------------------------------------------------
# validation: exit 1, nothing written


@pytest.mark.parametrize("name", ["disaster recov", "a/b", "\u00e9quipe", "",
                                  "x" * 65, "semi;colon", "dot.ted"])
def test_add_bad_name_writes_nothing(orgdb, name):
    before, _ = org_list(orgdb)
    nrows = audit(orgdb)
    proc = orgtool(orgdb, "add", "-n", name, "-c", "finn@example.com")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith('error: invalid organization name "')
    assert "\nhint: " in proc.stderr
    assert org_list(orgdb)[0] == before
    assert audit(orgdb) == nrows


def test_name_of_64_characters_is_fine(orgdb):
    name = "n" * 64
    ok(orgtool(orgdb, "add", "-n", name, "-c", "n@example.com"))
    assert name in org_list(orgdb)[0]


@pytest.mark.parametrize("contacts,bad", [
    ("finn@example.com, jake@example.com", " jake@example.com"),
    ("noatsign", "noatsign"),
    ("a@b", "a@b"),
    ("finn@example.com,,jake@example.com", None),
    ("finn@example.com,", None),
    ("", None),
    ("two@@example.com", "two@@example.com"),
    ("ctl\x01@example.com", None),
    ("x" * 250 + "@example.com", None),
])
def test_add_bad_contacts_write_nothing(orgdb, contacts, bad):
    before, _ = org_list(orgdb)
    nrows = audit(orgdb)
    for org in ("disaster-recov", "brand-new-org"):
        proc = orgtool(orgdb, "add", "-n", org, "-c", contacts)
        assert proc.returncode == 1, proc.stderr
        assert proc.stdout == ""
        assert proc.stderr.startswith("error: ")
        if bad is not None:
            assert '"%s"' % bad in proc.stderr
    assert org_list(orgdb)[0] == before
    assert audit(orgdb) == nrows


# --------------------------------------------------------------------------
# clients


def test_enable_disable_round_trip(orgdb):
    add_client(orgdb, "disaster-recov", FPR, "pending")
    data, _ = org_list(orgdb)
    (c,) = data["disaster-recov"]["clients"]
    assert c["fingerprint"] == FPR and c["state"] == "pending"
    assert c["hostname"] == "host-0123.example.com"
    assert ISO_RE.match(c["registered"])

    ok(orgtool(orgdb, "enable-client", "--fingerprint", FPR))
    assert client_state(orgdb, FPR) == "active"
    ok(orgtool(orgdb, "disable-client", "--fingerprint", "4096R/" + FPR))
    assert client_state(orgdb, FPR) == "disabled"
    ok(orgtool(orgdb, "enable-client", "--fingerprint", "4096R/" + FPR.lower()))
    assert client_state(orgdb, FPR) == "active"
    assert org_list(orgdb)[0]["disaster-recov"]["clients"][0]["state"] == "active"

    rows = audit(orgdb, "object = '%s'" % FPR)
    assert [r[2] for r in rows] == ["client.enable", "client.disable",
                                    "client.enable"]
    for r in rows:
        assert r[0] == "orgtool" and r[1] == "disaster-recov" and r[4] == "ok"


def test_enable_is_idempotent(orgdb):
    add_client(orgdb, "Ops_2", FPR2, "active")
    proc = ok(orgtool(orgdb, "enable-client", "--fingerprint", FPR2))
    assert "already" in proc.stderr
    assert client_state(orgdb, FPR2) == "active"
    ok(orgtool(orgdb, "disable-client", "--fingerprint", FPR2))
    proc = ok(orgtool(orgdb, "disable-client", "--fingerprint", FPR2))
    assert "already" in proc.stderr
    assert client_state(orgdb, FPR2) == "disabled"


@pytest.mark.parametrize("verb", ["enable-client", "disable-client"])
def test_unknown_fingerprint(orgdb, verb):
    nrows = audit(orgdb)
    proc = orgtool(orgdb, verb, "--fingerprint", "F" * 40)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: no client with fingerprint " + "F" * 40)
    assert audit(orgdb) == nrows


@pytest.mark.parametrize("fpr", ["1234", "G" * 40, "4096R/" + "A" * 39,
                                 "/" + "A" * 40, "A" * 41])
def test_malformed_fingerprint(orgdb, fpr):
    proc = orgtool(orgdb, "enable-client", "--fingerprint", fpr)
    assert proc.returncode == 1
    assert proc.stderr.startswith('error: invalid fingerprint "')


# --------------------------------------------------------------------------
# audit


def test_audit_rows_never_hold_the_secret(orgdb):
    ok(orgtool(orgdb, "set-auth", "-n", "Ops_2", "-s", "An0ther-S3cret"))
    secrets = {"ThisISAs3cr3t!", "An0ther-S3cret"}
    data, _ = org_list(orgdb)
    secrets |= {o["auth_secret"] for o in data.values() if o["auth_secret"]}
    rows = audit(orgdb)
    actions = [r[2] for r in rows]
    assert actions.count("org.add") >= 2
    assert "org.add_contacts" in actions
    assert actions.count("org.set_auth") >= 3
    dump = orgdb.psql("select audit_log::text from audit_log")
    for s in secrets:
        assert s not in dump
    add = [r for r in rows if r[2] == "org.add" and r[1] == "disaster-recov"]
    assert add == [["orgtool", "disaster-recov", "org.add",
                    "finn@example.com,jake@example.com", "ok"]]
    more = [r for r in rows if r[2] == "org.add_contacts"]
    assert more[0][1:] == ["disaster-recov", "org.add_contacts",
                           "marceline@example.com", "ok"]


# --------------------------------------------------------------------------
# the command line


def test_top_level_help():
    proc = orgtool(None, "--help")
    assert proc.returncode == 0
    assert proc.stderr == ""
    for verb in VERBS:
        assert verb in proc.stdout
    assert "add [-h] -n NAME -c CONTACTS" in proc.stdout


def test_no_command_and_unknown_command():
    proc = orgtool(None)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")
    proc = orgtool(None, "frobnicate")
    assert proc.returncode == 2
    assert proc.stderr.startswith('error: unknown command "frobnicate"')
    assert "\nhint: " in proc.stderr


@pytest.mark.parametrize("verb", VERBS)
def test_verb_help(verb):
    for flag in ("-h", "--help"):
        proc = orgtool(None, verb, flag)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("usage: keytrustee-orgtool ")
        assert verb in proc.stdout
        assert proc.stderr == ""


@pytest.mark.parametrize("verb", VERBS)
def test_verb_bad_option(verb):
    proc = orgtool(None, verb, "--no-such-option")
    assert proc.returncode == 2
    assert proc.stderr.startswith('error: unknown option "--no-such-option"')
    assert "\nhint: " in proc.stderr
    proc = orgtool(None, verb, "-Z")
    assert proc.returncode == 2
    assert proc.stderr.startswith('error: unknown option "-Z"')


@pytest.mark.parametrize("argv", [
    ["add", "-n", "x"],
    ["add", "-c", "a@example.com"],
    ["add", "-n"],
    ["add", "-n", "x", "-c"],
    ["set-auth", "-n", "x"],
    ["set-auth", "-s", "x"],
    ["set-auth", "-n", "x", "-s"],
    ["enable-client"],
    ["enable-client", "--fingerprint"],
    ["disable-client"],
    ["disable-client", "--fingerprint"],
    ["list", "extra"],
])
def test_verb_missing_argument(argv):
    proc = orgtool(None, *argv)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ")
    assert "\nhint: " in proc.stderr
    assert proc.stdout == ""


def test_must_be_root(registry, orgdb):
    """As another user the tool refuses before touching anything."""
    tool_path = runnable_by_others(registry, binary("keytrustee-orgtool"))
    proc = run(["runuser", "-u", "nobody", "--", tool_path,
                "--confdir", orgdb.confdir, "list"], cwd="/")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: keytrustee-orgtool must be run as root"
    proc = run(["runuser", "-u", "nobody", "--", tool_path,
                "list", "--help"], cwd="/")
    assert proc.returncode == 0


def test_database_unreachable(registry, orgdb):
    confdir = copy_confdir(registry, orgdb.confdir, "orgtool-down")
    path = os.path.join(confdir, "keytrustee.conf")
    with open(path) as f:
        conf = json.load(f)
    conf["DB_CONNECT"] = ("host=127.0.0.1 port=%d dbname=keytrustee "
                          "user=keytrustee password=x" % free_port())
    with open(path, "w") as f:
        json.dump(conf, f)
    proc = run([binary("keytrustee-orgtool"), "--confdir", confdir, "list"])
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: cannot connect to the database\n")
    assert "\ndetail: " in proc.stderr
    assert proc.stdout == ""

    del conf["DB_CONNECT"]
    with open(path, "w") as f:
        json.dump(conf, f)
    proc = run([binary("keytrustee-orgtool"), "--confdir", confdir, "add",
                "-n", "x", "-c", "a@example.com"])
    assert proc.returncode == 1
    assert "DB_CONNECT" in proc.stderr
    registry.kill_gnupg(confdir)


def test_missing_confdir(registry):
    missing = os.path.join(registry.mkdtemp("orgtool-none-"), "nope")
    proc = run([binary("keytrustee-orgtool"), "--confdir", missing, "list"])
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ")
    assert missing in proc.stderr


def test_set_auth_bad_name_and_control_characters(orgdb):
    before, _ = org_list(orgdb)
    nrows = audit(orgdb)
    proc = orgtool(orgdb, "set-auth", "-n", "a b", "-s", "x")
    assert proc.returncode == 1
    assert proc.stderr.startswith('error: invalid organization name "a b"')
    proc = orgtool(orgdb, "set-auth", "-n", "disaster-recov", "-s", "bad\nsecret")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ")
    assert "secret" not in proc.stderr.replace("-s SECRET", "")
    assert org_list(orgdb)[0] == before
    assert audit(orgdb) == nrows
