"""The audit chain on an HA pair (issue 20, item 1; docs/audit.md): the
active seals, the passive replicates the segments and never writes its
own, and `ktadmin audit --verify` on the passive checks the same chain with
its own copy of the data key -- and sees a tampering done on the active."""

import re

from conftest import ktadmin, wait_for
from test_audit_chain import db_segments
from test_ha import ha  # noqa: F401  (the module's HA pair)


def verify(confdir):
    return ktadmin("audit", "--verify", "--confdir", confdir)


def test_passive_verifies_the_same_chain(ha):  # noqa: F811
    ha.acluster.psql("insert into audit_log (actor, action, object, result) "
                     "select 'ha', 'deposit_read', i::text, 'ok' "
                     "from generate_series(1, 40) i")
    ha.acluster.psql("insert into audit_log (actor, action, object, result) "
                     "values ('ha', 'deposit_read', 'last', 'ok')")

    def sealed_both():
        a = ha.acluster.psql("select count(*), max(seq) from audit_chain")
        p = ha.pcluster.psql("select count(*), max(seq) from audit_chain")
        last = ha.pcluster.psql("select count(*) from audit_log where object = 'last' "
                                "and xact < (select max(xact_hi) from audit_chain)")
        return a == p and last == "1"

    wait_for(sealed_both, timeout=30, what="the segment on the passive")
    # the passive wrote none of its own (its database is a replica anyway)
    assert db_segments(type("K", (), {"cluster": ha.pcluster})) == \
        db_segments(type("K", (), {"cluster": ha.acluster}))
    pa, pp = verify(ha.aconf), verify(ha.pconf)
    assert pa.returncode == 0, pa.stderr
    assert pp.returncode == 0, pp.stderr
    segs = re.search(r"intact: (\d+) segments", pa.stdout).group(1)
    assert re.search(r"intact: %s segments" % segs, pp.stdout), pp.stdout
    # a row changed on the active, by its superuser: the passive sees it
    rid = ha.acluster.psql("select id from audit_log where object = 'last'")
    ha.acluster.psql("begin; set local session_replication_role = replica; "
                     "update audit_log set result = 'denied' where id = %s; commit"
                     % rid)
    wait_for(lambda: ha.pcluster.psql("select result from audit_log where id = %s"
                                      % rid) == "denied",
             timeout=30, what="the change replicated")
    pp = verify(ha.pconf)
    assert pp.returncode == 1, pp.stdout + pp.stderr
    assert "row %s was changed" % rid in pp.stderr, pp.stderr
    ha.acluster.psql("begin; set local session_replication_role = replica; "
                     "update audit_log set result = 'ok' where id = %s; commit" % rid)
