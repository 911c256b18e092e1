"""keytrustee-server --max-connections and --max-connections-per-address
(MAX_CONNECTIONS_PER_ADDRESS in keytrustee.conf): the options' --help, bad
values and missing argument, and a bad value in the file.  What the limits
do is in test_conn_hoarding.py."""

from conftest import binary, run, update_conf


def test_help_documents_max_connections():
    proc = run([binary("keytrustee-server"), "--help"])
    assert proc.returncode == 0
    assert "--max-connections N" in proc.stdout and "default 10000" in proc.stdout
    assert "closes\n                     the longest-idle" in proc.stdout
    assert "--max-connections-per-address N" in proc.stdout
    assert "MAX_CONNECTIONS_PER_ADDRESS in\n                     keytrustee.conf, 512" \
        in proc.stdout


def test_bad_and_missing_max_connections():
    for bad in ("0", "-1", "x", "1000001"):
        proc = run([binary("keytrustee-server"), "--max-connections", bad])
        assert proc.returncode == 2
        assert proc.stderr.startswith('error: --max-connections: "%s"' % bad)
    proc = run([binary("keytrustee-server"), "--max-connections"])
    assert proc.returncode == 2 and "requires an argument" in proc.stderr


def test_bad_and_missing_max_connections_per_address():
    opt = "--max-connections-per-address"
    for bad in ("0", "-1", "x", "1000001", ""):
        proc = run([binary("keytrustee-server"), opt, bad])
        assert proc.returncode == 2
        assert proc.stderr.startswith('error: %s: "%s" is not a number from 1 '
                                      'to 1000000' % (opt, bad))
    proc = run([binary("keytrustee-server"), opt])
    assert proc.returncode == 2 and "requires an argument" in proc.stderr


def test_bad_max_connections_per_address_in_the_conf(dbconf, make_server):
    for bad in (0, "50", 1000001):
        update_conf(dbconf, MAX_CONNECTIONS_PER_ADDRESS=bad)
        srv = make_server(dbconf).spawn()
        assert srv.wait(timeout=30) != 0
        assert "MAX_CONNECTIONS_PER_ADDRESS: must be an integer from 1 to " \
            "1000000" in srv.log()
