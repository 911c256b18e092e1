/*
 * audit.c - one row of the append-only audit_log per state change, deposit
 * access and refusal: who, what, when, from where; never secret material.
 */
#include <string.h>

#include "log.h"
#include "server.h"

int
audit(struct worker *w, const char *actor, const char *org,
    const char *action, const char *object, const char *remote,
    const char *result)
{
	const char *params[6] = { actor, org, action, object,
		remote != NULL && *remote != '\0' ? remote : NULL, result };
	PGconn *db;
	PGresult *res;
	const char *state;
	int ret = 0;

	/* A passive's database is read-only: its journal takes the row. */
	if (ha_is_passive(w->srv))
		return ha_journal(w->srv, actor, org, action, object, remote,
		    result);
	if ((db = worker_db(w)) == NULL)
		return -1;
	/*
	 * Reads are audited too, and must go on while the passive is down:
	 * an audit row alone never waits for the synchronous standby (a
	 * write's own audit row commits with the write).
	 */
	res = PQexecParams(db,
	    "INSERT INTO audit_log (actor, org, action, object, remote_addr, "
	    "result) SELECT $1, $2, $3, $4, $5, $6 FROM (SELECT "
	    "set_config('synchronous_commit', 'local', true)) s",
	    6, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/* Promoted or demoted since the last check: read-only now. */
		if (state != NULL && strcmp(state, "25006") == 0)
			ret = ha_journal(w->srv, actor, org, action, object,
			    remote, result);
		else {
			log_warnx("audit_log: %s", db_error(res, db));
			ret = -1;
		}
	}
	PQclear(res);
	return ret;
}

/* libpq's primary message only: its detail may quote the row's values. */
const char *
db_error(PGresult *res, PGconn *db)
{
	const char *m = res != NULL ?
	    PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	if (m == NULL)
		m = PQstatus(db) != CONNECTION_OK ? "connection lost" :
		    "unknown error";
	return m;
}
