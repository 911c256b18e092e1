"""Every binary: --help, bad option, missing argument (as pg_ctl's
t/001_start_stop.pl does for each tool)."""

import pytest

from conftest import binary, run

COMMANDS = {
    "ktadmin": ["ktadmin"],
    "ktadmin init": ["ktadmin", "init"],
    "ktadmin db": ["ktadmin", "db"],
    "keytrustee-server": ["keytrustee-server"],
}


def argv(cmd, *args):
    words = COMMANDS[cmd]
    return [binary(words[0])] + words[1:] + list(args)


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(cmd, flag):
    proc = run(argv(cmd, flag), timeout=10)
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout.lower()
    # the usage names the command
    assert COMMANDS[cmd][-1] in proc.stdout


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_unknown_option(cmd):
    proc = run(argv(cmd, "--no-such-option"), timeout=10)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "error:" in proc.stderr
    assert "no-such-option" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(
    "cmd,args,named",
    [
        # an option that takes a value, given none
        ("ktadmin init", ["--confdir"], "confdir"),
        ("ktadmin init", ["--tls-key"], "tls-key"),
        ("ktadmin db", ["--bootstrap", "--confdir", "/nonexistent", "--port"], "port"),
        ("keytrustee-server", ["--confdir"], "confdir"),
        ("keytrustee-server", ["--port"], "port"),
        # a required option left out
        ("ktadmin db", ["--bootstrap", "--confdir", "/nonexistent"], "pg-rootdir"),
        ("ktadmin db", ["--status"], "pg-rootdir"),
        ("ktadmin db", ["--stop"], "pg-rootdir"),
        ("ktadmin db", ["--start", "--background"], "pg-rootdir"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_missing_argument(cmd, args, named):
    proc = run(argv(cmd, *args), timeout=10)
    assert proc.returncode != 0, proc.stdout
    assert "error:" in proc.stderr
    assert named in proc.stderr, proc.stderr


def test_ktadmin_without_command():
    proc = run(argv("ktadmin"), timeout=10)
    assert proc.returncode != 0
    assert "error:" in proc.stderr or "usage" in proc.stderr.lower()


def test_ktadmin_unknown_command():
    proc = run(argv("ktadmin", "frobnicate"), timeout=10)
    assert proc.returncode == 2, proc.returncode
    assert "error:" in proc.stderr
    assert "frobnicate" in proc.stderr


def test_ktadmin_db_without_action(tmp_path):
    proc = run(argv("ktadmin db", "--pg-rootdir", str(tmp_path / "pg")), timeout=10)
    assert proc.returncode != 0
    assert "error:" in proc.stderr
    # names the actions it wanted
    assert "--bootstrap" in proc.stderr or "bootstrap" in proc.stderr


@pytest.mark.parametrize(
    "cmd,args,named",
    [
        ("ktadmin init", ["--confdir", "/nonexistent/x", "--tls-key", "dsa"], "tls-key"),
        ("keytrustee-server", ["--confdir", "/nonexistent", "--port", "notaport"], "port"),
        ("keytrustee-server", ["--confdir", "/nonexistent", "--port", "70000"], "port"),
        ("keytrustee-server", ["--confdir", "/nonexistent", "--threads", "-3"], "threads"),
        ("keytrustee-server", ["--confdir", "/nonexistent", "--legacy-threads", "-1"],
         "legacy-threads"),
        ("keytrustee-server", ["--confdir", "/nonexistent", "--legacy-threads", "257"],
         "legacy-threads"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_bad_value(cmd, args, named):
    proc = run(argv(cmd, *args), timeout=10)
    assert proc.returncode != 0
    assert "error:" in proc.stderr
    assert named in proc.stderr, proc.stderr


def test_server_missing_confdir(tmp_path):
    proc = run(argv("keytrustee-server", "--confdir", str(tmp_path / "absent"),
                    "--listen", "127.0.0.1", "--port", "1"), timeout=15)
    assert proc.returncode != 0
    assert str(tmp_path / "absent") in proc.stderr
