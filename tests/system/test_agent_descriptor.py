"""kt-agent without running roles: validate (the shipped descriptor and a
catalogue of broken ones, each with its line and message), the command
line of every verb, the role-assignment wizard's rules, the CSD jar, and
parcels (layout, manifest hash, corrupt or mismatched ones refused while
the active one stays)."""

import json
import os
import shutil
import subprocess
import tarfile

import pytest

from conftest import ROOT, binary, mode, run
from agent_helpers import DESCRIPTOR, VERSION, Agent, build_csd, build_parcel

# A small valid descriptor; the catalogue below breaks it line by line.
BASE = """\
name: KTS
label: L
description: D
version: 1.0.0
parameters:
  - name: port
    label: P
    description: D
    type: port
    default: 11371
  - name: dir
    label: Dir
    description: D
    type: path
    default: /var/lib/x
roles:
  - name: R1
    label: L
    pluralLabel: Ls
    topology:
      minInstances: 1
      maxInstances: 1
    startRunner:
      program: scripts/control.sh
      args: [start, "${port}"]
      environmentVariables:
        DIR: ${dir}
    commands:
      - name: C1
        label: L
        description: D
        expectedExitCodes: [0]
        requiredRoleState: running
        commandRunner:
          program: scripts/control.sh
commands:
  - name: S1
    label: L
    description: D
    roleName: R1
    roleCommand: C1
schedules:
  - name: H
    label: Hourly
    command: S1
    cron: "0 * * * *"
"""


def mutate(edits):
    """edits: {line number: replacement text or None (delete)}; 'append'."""
    lines = BASE.splitlines()
    out = []
    for i, line in enumerate(lines, 1):
        if i in edits:
            if edits[i] is not None:
                out.extend(edits[i].split("\n"))
        else:
            out.append(line)
    if "append" in edits:
        out.append(edits["append"])
    return "\n".join(out) + "\n"


# (id, edits, expected line, expected "path: reason" text)
CATALOGUE = [
    ("unknown-top-key", {"append": "colour: red"}, 47,
     "colour: unknown key in a service"),
    ("missing-label", {2: None}, 1, "missing required key 'label' in a service"),
    ("missing-version", {4: None}, 1, "missing required key 'version' in a service"),
    ("default-not-scalar", {10: "    default: [1]"}, 10,
     "parameters[0].default: must be a string, not a list"),
    ("port-out-of-range", {10: "    default: 70000"}, 10,
     "parameters[0].default: '70000' is not a port (1-65535)"),
    ("unknown-param-type", {9: "    type: number"}, 9,
     "parameters[0].type: unknown parameter type 'number'"),
    ("duplicate-param", {11: "  - name: port"}, 11,
     "parameters[1].name: duplicate parameter name 'port' (first at line 6)"),
    ("relative-path", {15: "    default: relative/x"}, 15,
     "parameters[1].default: 'relative/x' is not an absolute path"),
    ("bad-role-name", {17: "  - name: r1"}, 17,
     "roles[0].name: 'r1' is not an entity name ([A-Z0-9_]+)"),
    ("max-below-min", {22: "      maxInstances: 0"}, 22,
     "roles[0].topology.maxInstances: maxInstances 0 is less than minInstances 1"),
    ("min-not-int", {21: "      minInstances: x"}, 21,
     "roles[0].topology.minInstances: must be an integer"),
    ("program-outside-csd", {24: "      program: /bin/sh"}, 24,
     "roles[0].startRunner.program: must be a path inside the CSD"),
    ("dangling-substitution", {25: '      args: [start, "${nope}"]'}, 25,
     "roles[0].startRunner.args[1]: has invalid substitution '${nope}': no such parameter"),
    ("unterminated-substitution", {27: "        DIR: ${dir"}, 27,
     "roles[0].startRunner.environmentVariables.DIR: unterminated substitution"),
    ("bad-env-name", {27: "        1DIR: x"}, 27,
     "roles[0].startRunner.environmentVariables.1DIR: not a valid environment variable name"),
    ("empty-exit-codes", {32: "        expectedExitCodes: []"}, 32,
     "roles[0].commands[0].expectedExitCodes: must not be empty"),
    ("exit-code-range", {32: "        expectedExitCodes: [0, 300]"}, 32,
     "roles[0].commands[0].expectedExitCodes: exit code 300 is out of range 0-255"),
    ("exit-code-not-int", {32: "        expectedExitCodes: [zero]"}, 32,
     "roles[0].commands[0].expectedExitCodes[0]: must be an integer"),
    ("bad-role-state", {33: "        requiredRoleState: paused"}, 33,
     "roles[0].commands[0].requiredRoleState: must be running or stopped, not 'paused'"),
    ("dangling-required-role", {33: "        requiredRoleState: running\n"
                                    "        requiredRoles: [R1, R9]"}, 34,
     "roles[0].commands[0].requiredRoles[1]: has invalid reference: no role 'R9'"),
    ("required-roles-not-a-list", {33: "        requiredRoleState: running\n"
                                       "        requiredRoles: R1"}, 34,
     "roles[0].commands[0].requiredRoles: must be a list, not a scalar"),
    ("missing-command-runner", {34: None, 35: None}, 29,
     "roles[0].commands[0]: missing required key 'commandRunner' in a role command"),
    ("dangling-role", {40: "    roleName: R9"}, 40,
     "commands[0].roleName: has invalid reference: no role 'R9'"),
    ("dangling-role-command", {41: "    roleCommand: C9"}, 41,
     "commands[0].roleCommand: has invalid reference: role R1 has no command 'C9'"),
    ("dangling-schedule", {45: "    command: S9"}, 45,
     "schedules[0].command: has invalid reference: no service command 'S9'"),
    ("bad-cron", {46: '    cron: "hourly"'}, 46,
     "schedules[0].cron: 'hourly' is not a 5-field cron time"),
    ("duplicate-key", {38: "    label: L\n    label: M"}, 39,
     "commands[0].label: duplicate key"),
    ("bad-run-mode", {41: "    roleCommand: C1\n    runMode: some"}, 42,
     "commands[0].runMode: must be all or single, not 'some'"),
    ("builtin-with-role", {39: "    description: D\n    builtin: start"}, 37,
     "commands[0]: a builtin command takes no roleName or roleCommand"),
    ("roles-not-a-list", {16: "roles: R1", **{i: None for i in range(17, 36)}}, 16,
     "roles: must be a list of roles, not a scalar"),
    ("unknown-role-key", {19: "    pluralLabel: Ls\n    colour: red"}, 20,
     "roles[0].colour: unknown key in a role"),
    ("yaml-tab", {18: "\tlabel: L"}, 18, "YAML: found a tab character that violates indentation"),
]


def validate(tmp_path, text, name="d.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path), run([binary("kt-agent"), "validate", str(path)])


def test_shipped_descriptor_is_valid():
    proc = run([binary("kt-agent"), "validate", DESCRIPTOR])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        "%s: valid: service KEYTRUSTEE_SERVER %s, 4 roles, 7 commands, 21 parameters"
        % (DESCRIPTOR, VERSION))
    assert proc.stderr == ""


def test_base_is_valid(tmp_path):
    _, proc = validate(tmp_path, BASE)
    assert proc.returncode == 0, proc.stderr


def test_catalogue_has_at_least_20():
    assert len(CATALOGUE) >= 20


@pytest.mark.parametrize("name,edits,line,text", CATALOGUE,
                         ids=[c[0] for c in CATALOGUE])
def test_broken_descriptor(tmp_path, name, edits, line, text):
    path, proc = validate(tmp_path, mutate(edits))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout == ""
    want = "%s:%d: %s" % (path, line, text)
    lines = proc.stderr.splitlines()
    assert any(l.startswith(want) for l in lines), (want, proc.stderr)
    assert lines[-1].startswith(path + ": ") and "error" in lines[-1]


def test_every_error_is_reported(tmp_path):
    edits = {10: "    default: 70000", 40: "    roleName: R9", "append": "colour: red"}
    path, proc = validate(tmp_path, mutate(edits))
    assert proc.returncode == 1
    assert "%s:10: " % path in proc.stderr
    assert "%s:40: " % path in proc.stderr
    assert "%s:47: " % path in proc.stderr
    assert proc.stderr.splitlines()[-1] == "%s: 3 errors" % path


def test_validate_missing_and_unreadable(tmp_path):
    proc = run([binary("kt-agent"), "validate", str(tmp_path / "none.yaml")])
    assert proc.returncode == 1
    assert "none.yaml:0: cannot read: No such file or directory" in proc.stderr
    _, proc = validate(tmp_path, "- a\n- b\n")
    assert proc.returncode == 1 and "the descriptor must be a mapping" in proc.stderr


# --------------------------------------------------------------------------
# the command line

VERBS = ["validate", "assign", "actions", "exec", "start", "stop", "status", "run",
         "history", "schedule", "parcel"]


def test_help():
    proc = run([binary("kt-agent"), "--help"])
    assert proc.returncode == 0 and proc.stdout.startswith("usage: kt-agent")
    for verb in VERBS:
        assert verb in proc.stdout
        proc2 = run([binary("kt-agent"), verb, "--help"])
        assert proc2.returncode == 0, (verb, proc2.stderr)
        assert proc2.stdout.startswith("usage: kt-agent [global options] " + verb)


@pytest.mark.parametrize("verb", VERBS)
def test_bad_option(verb):
    proc = run([binary("kt-agent"), verb, "--bogus"])
    assert proc.returncode == 2
    assert 'error: unknown option "--bogus"' in proc.stderr
    assert "hint: run 'kt-agent %s --help' for usage" % verb in proc.stderr


@pytest.mark.parametrize("argv", [
    ["--state"], ["assign", "--descriptor"], ["assign", "--hosts"],
    ["assign", "--descriptor", DESCRIPTOR, "--hosts", "h", "--set"],
    ["exec", "Start", "--role"], ["actions", "--role"], ["start", "--timeout"],
    ["parcel", "install", "--manifest"],
])
def test_missing_argument(argv):
    proc = run([binary("kt-agent")] + argv)
    assert proc.returncode == 2, proc.stderr
    assert "requires an argument" in proc.stderr


@pytest.mark.parametrize("argv,text", [
    ([], "error: a command is required"),
    (["frobnicate"], "error: unknown command 'frobnicate'"),
    (["validate"], "error: a descriptor file is required"),
    (["exec"], "error: a command name is required"),
    (["assign", "--hosts", "h"], "error: --descriptor is required"),
    (["assign", "--descriptor", DESCRIPTOR], "error: --hosts is required"),
    (["parcel"], "error: parcel needs install, activate, deactivate or list"),
    (["parcel", "install"], "error: parcel install needs one FILE"),
    (["parcel", "explode"], "error: unknown parcel command 'explode'"),
    (["start", "--timeout", "0"], "error: --timeout: '0' is not 1-3600 seconds"),
    (["history", "x"], "error: 'x' is not a process number"),
])
def test_usage_errors(argv, text):
    proc = run([binary("kt-agent")] + argv)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert text in proc.stderr


def test_no_deployment(tmp_path):
    agent = Agent(str(tmp_path))
    for verb in ("actions", "status", "start", "stop", "run"):
        proc = agent(verb)
        assert proc.returncode == 1, verb
        assert "error: this host has no deployment in %s" % agent.state in proc.stderr
        assert "hint: assign the roles first" in proc.stderr


# --------------------------------------------------------------------------
# the role-assignment wizard


def deployment(agent):
    with open(os.path.join(agent.state, "deployment.json")) as f:
        return json.load(f)


def test_assign_one_host(tmp_path):
    agent = Agent(str(tmp_path), host="kts1")
    proc = agent("assign", "--descriptor", DESCRIPTOR, "--hosts", "kts1")
    assert proc.returncode == 0, proc.stderr
    dep = deployment(agent)
    assert dep["roles"] == {"KEYTRUSTEE_ACTIVE_SERVER": ["kts1"], "DB_ACTIVE": ["kts1"]}
    assert dep["descriptor"] == DESCRIPTOR
    assert dep["csd"] == ROOT  # the descriptor's dir/..
    assert mode(os.path.join(agent.state, "deployment.json")) == 0o600
    assert "KEYTRUSTEE_PASSIVE_SERVER  (none)" in proc.stdout


def test_assign_two_hosts_proposes_passive(tmp_path):
    agent = Agent(str(tmp_path))
    proc = agent("assign", "--descriptor", DESCRIPTOR, "--hosts", "kts1,kts2")
    assert proc.returncode == 0, proc.stderr
    roles = deployment(agent)["roles"]
    assert roles["KEYTRUSTEE_ACTIVE_SERVER"] == ["kts1"] and roles["DB_ACTIVE"] == ["kts1"]
    assert roles["KEYTRUSTEE_PASSIVE_SERVER"] == ["kts2"] and roles["DB_PASSIVE"] == ["kts2"]
    proc = agent("assign", "--descriptor", DESCRIPTOR, "--hosts", "kts1,kts2",
                 "--passive", "kts1")
    assert proc.returncode == 0, proc.stderr
    roles = deployment(agent)["roles"]
    assert roles["KEYTRUSTEE_ACTIVE_SERVER"] == ["kts2"]
    assert roles["KEYTRUSTEE_PASSIVE_SERVER"] == ["kts1"]


def test_assign_breaking_a_rule_writes_nothing(tmp_path):
    agent = Agent(str(tmp_path))
    proc = agent("assign", "--descriptor", DESCRIPTOR, "--hosts", "kts1,kts2",
                 "--active", "kts1", "--passive", "kts1")
    assert proc.returncode == 1
    assert ("error: placement rule broken: KEYTRUSTEE_ACTIVE_SERVER neverWith "
            "KEYTRUSTEE_PASSIVE_SERVER (%s:" % DESCRIPTOR) in proc.stderr
    assert "detail: KEYTRUSTEE_ACTIVE_SERVER is on kts1, KEYTRUSTEE_PASSIVE_SERVER is too" \
        in proc.stderr
    assert "DB_PASSIVE neverWith DB_ACTIVE" in proc.stderr
    assert not os.path.exists(os.path.join(agent.state, "deployment.json"))


@pytest.mark.parametrize("args,text", [
    (["--hosts", "kts1", "--active", "kts9"], "error: --active: kts9 is not one of --hosts"),
    (["--hosts", "kts1,kts1"], "error: --hosts: kts1 is listed twice"),
    (["--hosts", "bad host"], "error: --hosts: 'bad host' is not a host name"),
    (["--hosts", "kts1", "--set", "nope=1"], "error: --set: the descriptor has no parameter 'nope'"),
    (["--hosts", "kts1", "--set", "keytrustee_server_port=0"],
     "error: --set keytrustee_server_port: '0' is not a port (1-65535)"),
    (["--hosts", "kts1", "--set", "backup_roll=5000"],
     "error: --set backup_roll: 5000 is above the maximum 1000"),
    (["--hosts", "kts1", "--set", "keytrustee_server_tls_min_version=ssl3"],
     "error: --set keytrustee_server_tls_min_version: 'ssl3' is not one of validValues"),
    (["--hosts", "kts1", "--set", "noequals"], "error: --set: 'noequals' is not NAME=VALUE"),
])
def test_assign_refuses(tmp_path, args, text):
    agent = Agent(str(tmp_path))
    proc = agent("assign", "--descriptor", DESCRIPTOR, *args)
    assert proc.returncode in (1, 2)
    assert text in proc.stderr
    assert not os.path.exists(os.path.join(agent.state, "deployment.json"))


def test_assign_invalid_descriptor(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(mutate({40: "    roleName: R9"}))
    proc = Agent(str(tmp_path))("assign", "--descriptor", str(path), "--hosts", "h")
    assert proc.returncode == 1
    assert "bad.yaml:40: commands[0].roleName" in proc.stderr
    assert "is not a valid descriptor" in proc.stderr


def test_actions_on_a_host_without_roles(tmp_path):
    agent = Agent(str(tmp_path), host="kts2")
    assert agent("assign", "--descriptor", DESCRIPTOR, "--hosts", "kts1").returncode == 0
    proc = agent("actions")
    assert proc.returncode == 0
    assert "unavailable: no role on this host" in proc.stdout
    proc = agent("exec", "SetupKeyTrusteeServerDatabase")
    assert proc.returncode == 1
    assert "error: role DB_ACTIVE is not assigned to host kts2; it is on kts1" in proc.stderr
    proc = agent("exec", "NoSuchCommand")
    assert proc.returncode == 1 and "no command 'NoSuchCommand' in the Actions menu" in proc.stderr


def test_two_agents_two_hosts(tmp_path):
    """Two agents, each with its own state dir and host name, on one
    two-host assignment: each offers the Actions of its own roles."""
    a1 = Agent(str(tmp_path / "kts1"), host="kts1")
    a2 = Agent(str(tmp_path / "kts2"), host="kts2")
    for a in (a1, a2):
        proc = a("assign", "--descriptor", DESCRIPTOR, "--hosts", "kts1,kts2",
                 "--active", "kts1", "--passive", "kts2")
        assert proc.returncode == 0, proc.stderr
    m1 = {l.split()[0]: l for l in a1("actions").stdout.splitlines()}
    m2 = {l.split()[0]: l for l in a2("actions").stdout.splitlines()}
    assert m1["SetupKeyTrusteeServerDatabase"].endswith("available")
    assert "no KEYTRUSTEE_PASSIVE_SERVER on this host" in m1["BackupAndSetupCronJob-Passive"]
    assert "needs KEYTRUSTEE_PASSIVE_SERVER running" in m2["BackupAndSetupCronJob-Passive"]
    assert "no DB_ACTIVE on this host" in m2["SetupSyncReplicationCommand"]
    proc = a2("actions", "--role", "DB_PASSIVE")
    assert proc.returncode == 0
    assert proc.stdout.split()[0] == "SetupPassiveDatabase" and \
        proc.stdout.rstrip().endswith("available")
    proc = a1("actions", "--role", "DB_PASSIVE")
    assert proc.returncode == 1
    assert "error: role DB_PASSIVE is not assigned to host kts1; it is on kts2" in proc.stderr
    proc = a2("status")
    assert proc.returncode == 3
    roles = [l for l in proc.stdout.splitlines() if not l.startswith("  ")]
    assert [l.split()[:2] for l in roles] == [
        ["DB_PASSIVE", "stopped"], ["KEYTRUSTEE_PASSIVE_SERVER", "stopped"]]
    # under the server role, its last backup (the indented line)
    assert proc.stdout.splitlines()[2].startswith("  backup: ")


# --------------------------------------------------------------------------
# CSD and parcels


def test_csd_jar_layout(tmp_path):
    import zipfile
    jar = build_csd(str(tmp_path))
    assert os.path.basename(jar) == "KEYTRUSTEE_SERVER-%s.jar" % VERSION
    with zipfile.ZipFile(jar) as z:
        names = set(z.namelist())
        assert {"descriptor/keytrustee.yaml", "scripts/control.sh"} <= names
        assert z.read("descriptor/keytrustee.yaml") == open(DESCRIPTOR, "rb").read()
        info = z.getinfo("scripts/control.sh")
        assert (info.external_attr >> 16) & 0o111


def test_parcel_layout_and_manifest(tmp_path):
    import hashlib
    repo = str(tmp_path / "repo")
    parcel = build_parcel(VERSION, repo)
    assert os.path.basename(parcel) == "KEYTRUSTEE_SERVER-%s-bookworm.parcel" % VERSION
    top = "KEYTRUSTEE_SERVER-%s" % VERSION
    with tarfile.open(parcel, "r:gz") as t:
        names = t.getnames()
        assert all(n == top or n.startswith(top + "/") for n in names)
        for n in ("bin", "lib", "meta/parcel.json", "meta/keytrustee_env.sh",
                  "bin/keytrustee-server", "bin/ktadmin", "bin/ktbackup.sh",
                  "bin/kt-backup-schedule.sh", "bin/kt-agent"):
            assert top + "/" + n in names, n
        meta = json.load(t.extractfile(top + "/meta/parcel.json"))
    assert meta["schema_version"] == 1 and meta["name"] == "KEYTRUSTEE_SERVER"
    assert meta["version"] == VERSION and meta["setActiveSymlink"] is True
    assert "keytrustee-server" in meta["provides"]
    assert meta["scripts"]["defines"] == "keytrustee_env.sh"
    for k in ("packages", "components", "users", "groups"):
        assert k in meta
    with open(os.path.join(repo, "manifest.json")) as f:
        man = json.load(f)
    entry = [p for p in man["parcels"] if p["parcelName"] == os.path.basename(parcel)]
    assert entry[0]["hash"] == hashlib.sha1(open(parcel, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("repo"))
    p1 = build_parcel(VERSION, d)
    return d, p1


def test_parcel_install_activate_list_deactivate(tmp_path, repo):
    d, p1 = repo
    agent = Agent(str(tmp_path))
    top = "KEYTRUSTEE_SERVER-%s" % VERSION
    proc = agent("parcel", "install", p1)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Installed %s in %s/%s" % (top, agent.parcels, top)
    assert os.access(os.path.join(agent.parcels, top, "bin", "kt-agent"), os.X_OK)
    assert [e for e in os.listdir(agent.parcels) if e.startswith(".")] == []
    proc = agent("parcel", "install", p1)
    assert proc.returncode == 0 and "already installed" in proc.stdout
    assert agent("parcel", "list").stdout.split() == [top, "distributed"]
    proc = agent("parcel", "activate", top)
    assert proc.returncode == 0, proc.stderr
    assert os.readlink(os.path.join(agent.parcels, "KEYTRUSTEE_SERVER")) == top
    assert agent("parcel", "list").stdout.split() == [top, "activated"]
    proc = agent("parcel", "activate", "KEYTRUSTEE_SERVER-9.9")
    assert proc.returncode == 1 and "parcel KEYTRUSTEE_SERVER-9.9 is not installed" in proc.stderr
    assert agent("parcel", "deactivate").stdout.strip() == "Deactivated " + top
    assert not os.path.lexists(os.path.join(agent.parcels, "KEYTRUSTEE_SERVER"))


def refused(agent, parcel, text, manifest=None):
    before = sorted(os.listdir(agent.parcels))
    link = os.readlink(os.path.join(agent.parcels, "KEYTRUSTEE_SERVER"))
    args = ["parcel", "install", parcel] + (["--manifest", manifest] if manifest else [])
    proc = agent(*args)
    assert proc.returncode == 1, proc.stdout
    assert text in proc.stderr, proc.stderr
    assert sorted(os.listdir(agent.parcels)) == before
    assert os.readlink(os.path.join(agent.parcels, "KEYTRUSTEE_SERVER")) == link


def test_corrupt_and_mismatched_parcels_are_refused(tmp_path, repo):
    d, p1 = repo
    agent = Agent(str(tmp_path / "a"))
    top = "KEYTRUSTEE_SERVER-%s" % VERSION
    assert agent("parcel", "install", p1).returncode == 0
    assert agent("parcel", "activate", top).returncode == 0
    bad = tmp_path / "bad"
    bad.mkdir()
    # 1. one flipped byte: the hash no longer matches the manifest
    name2 = "KEYTRUSTEE_SERVER-2.0.0-bookworm.parcel"
    repo2 = str(tmp_path / "repo2")
    p2 = build_parcel("2.0.0", repo2)
    data = bytearray(open(p2, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(p2, "wb").write(bytes(data))
    refused(agent, p2, "%s: hash mismatch: SHA-1 " % p2)
    # 2. not in the manifest
    shutil.copy(p1, str(bad / name2))
    shutil.copy(os.path.join(d, "manifest.json"), str(bad / "manifest.json"))
    refused(agent, str(bad / name2), "lists no parcel %s" % name2)
    # 3. no manifest at all
    os.unlink(str(bad / "manifest.json"))
    refused(agent, str(bad / name2), "manifest.json")
    # 4. right hash, but the file's name and its top dir disagree
    import hashlib
    h = hashlib.sha1(open(str(bad / name2), "rb").read()).hexdigest()
    (bad / "manifest.json").write_text(json.dumps(
        {"parcels": [{"parcelName": name2, "hash": h}]}))
    refused(agent, str(bad / name2),
            "member 'KEYTRUSTEE_SERVER-1.0.0/' is outside the one top dir KEYTRUSTEE_SERVER-2.0.0/")
    # 5. a parcel of another product
    other = bad / "OTHER-1.0-bookworm.parcel"
    other.write_bytes(b"x")
    refused(agent, str(other), "not a KEYTRUSTEE_SERVER parcel file name")
    # 6. not a gzip tar, hash right
    junk = bad / "KEYTRUSTEE_SERVER-3.0-bookworm.parcel"
    junk.write_bytes(b"not a tarball")
    (bad / "manifest.json").write_text(json.dumps({"parcels": [
        {"parcelName": junk.name, "hash": hashlib.sha1(b"not a tarball").hexdigest()}]}))
    refused(agent, str(junk), "not a gzip tar")
    # 7. a parcel.json naming another version
    stage = tmp_path / "stage"
    top4 = "KEYTRUSTEE_SERVER-4.0"
    with tarfile.open(p1, "r:gz") as t:
        t.extractall(str(stage))
    os.rename(str(stage / top), str(stage / top4))
    p4 = bad / (top4 + "-bookworm.parcel")
    with tarfile.open(str(p4), "w:gz") as t:
        t.add(str(stage / top4), arcname=top4)
    (bad / "manifest.json").write_text(json.dumps({"parcels": [
        {"parcelName": p4.name, "hash": hashlib.sha1(p4.read_bytes()).hexdigest()}]}))
    refused(agent, str(p4), "meta/parcel.json names KEYTRUSTEE_SERVER-1.0.0, the file "
            "KEYTRUSTEE_SERVER-4.0")
    assert agent("parcel", "list").stdout.split() == [top, "activated"]
