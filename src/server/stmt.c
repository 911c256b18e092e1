/*
 * stmt.c - the hot statements, prepared once per worker connection
 * (PQprepare on first use; a reset connection prepares them again), so
 * PostgreSQL parses and plans them once instead of on every request.  The
 * audit insert is not among them: audit.c sets synchronous_commit per row
 * and journals on a passive.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "server.h"

static const struct {
	const char *name;
	const char *sql;
	int nparams;
} stmts[STMT_COUNT] = {
    [STMT_AUTH_CLIENT] = {"kt_auth_client",
	"SELECT c.state, c.secret_nonce, c.secret_ct, o.name "
	"FROM clients c JOIN orgs o ON o.id = c.org_id "
	"WHERE c.fingerprint = $1",
	1},
    [STMT_DEPOSIT_READ] = {"kt_deposit_read",
	"SELECT name, description, nonce, content, "
	"to_char(created AT TIME ZONE 'UTC', "
	"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
	"FROM deposits WHERE uuid = $1::uuid AND owner = $2",
	2},
};

PGresult *
stmt_exec(struct worker *w, PGconn *db, enum stmt_id id,
    const char *const *values, const int *lengths, const int *formats,
    int binary)
{
	PGresult *res = NULL;
	int try;

	if (db != w->prepared_on) {
		/* A new connection: nothing is prepared there. */
		w->prepared = 0;
		w->prepared_on = db;
	}
	/*
	 * These are reads: a connection that broke since the last request
	 * (PostgreSQL restarted, a standby promoted) is made again once,
	 * with its statements prepared again, not failed.
	 */
	for (try = 0; try < 2; try++) {
		if (try == 1) {
			PQclear(res);
			res = NULL;
			w->prepared = 0;
			PQreset(db);
		}
		if (!(w->prepared & (1u << id))) {
			res = PQprepare(db, stmts[id].name, stmts[id].sql,
			    stmts[id].nparams, NULL);
			if (PQresultStatus(res) != PGRES_COMMAND_OK) {
				if (PQstatus(db) == CONNECTION_OK)
					return res; /* the caller reports it */
				continue;
			}
			PQclear(res);
			w->prepared |= 1u << id;
		}
		res = PQexecPrepared(db, stmts[id].name, stmts[id].nparams,
		    values, lengths, formats, binary);
		if (PQstatus(db) == CONNECTION_OK)
			return res;
	}
	w->prepared = 0; /* worker_db resets the connection next time */
	return res;
}
