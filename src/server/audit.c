/*
 * audit.c - one row of the append-only audit_log per state change, deposit
 * access and refusal: who, what, when, from where; never secret material.
 */
#include "log.h"
#include "server.h"

int
audit(struct worker *w, const char *actor, const char *org,
    const char *action, const char *object, const char *remote,
    const char *result)
{
	const char *params[6] = { actor, org, action, object,
		remote != NULL && *remote != '\0' ? remote : NULL, result };
	PGconn *db = worker_db(w);
	PGresult *res;
	int ret = 0;

	if (db == NULL)
		return -1;
	res = stmt_exec(w, db, STMT_AUDIT, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_warnx("audit_log: %s", db_error(res, db));
		ret = -1;
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
