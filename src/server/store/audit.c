/*
 * audit.c - rows of the append-only audit_log written on their own: one
 * row as it happens, and a passive's journal imported on promotion.  The
 * writes that commit with their row use STORE_AUDIT_INSERT (int.h) in
 * their own statement.
 */
#include <stdio.h>
#include <string.h>

#include "int.h"
#include "log.h"

/* The row's values as the statement's $1..$7. */
static void
audit_params(const struct audit_row *r, const char *p[7])
{
	p[0] = r->at;
	p[1] = r->actor;
	p[2] = r->org;
	p[3] = r->action;
	p[4] = r->object;
	p[5] = store_text(r->remote);
	p[6] = r->result;
}

#define AUDIT_VALUES                                                         \
	"SELECT coalesce($1::timestamptz, now()), $2, $3, $4, $5, $6, $7"

enum store_result
store_audit(struct store *st, const struct audit_row *r)
{
	const char *params[7];
	enum store_result ret = STORE_OK;
	PGresult *res;

	if (store_db(st) == NULL)
		return STORE_FAIL;
	audit_params(r, params);
	/* An audit row alone never waits for the synchronous standby. */
	res = PQexecParams(st->db,
	    STORE_AUDIT_INSERT AUDIT_VALUES " FROM (SELECT "
	    "set_config('synchronous_commit', 'local', true)) s",
	    7, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		if (store_is_readonly(res))
			ret = STORE_READONLY;
		else {
			log_warnx("audit_log: %s", store_error(res, st->db));
			ret = STORE_FAIL;
		}
	}
	PQclear(res);
	return ret;
}

enum store_result
store_audit_import(struct store *st, const struct audit_row *rows, int n)
{
	const char *params[7];
	PGresult *res;
	int i, ok;

	if (store_db(st) == NULL)
		return STORE_FAIL;
	res = PQexec(st->db, "BEGIN; SET LOCAL synchronous_commit = local");
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	for (i = 0; i < n && ok; i++) {
		PQclear(res);
		audit_params(&rows[i], params);
		res = PQexecParams(st->db, STORE_AUDIT_INSERT AUDIT_VALUES, 7,
		    NULL, params, NULL, NULL, 0);
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	}
	if (!ok)
		log_warnx("%s: audit journal: %s", st->name,
		    store_error(res, st->db));
	PQclear(res);
	res = PQexec(st->db, ok ? "COMMIT" : "ROLLBACK");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		ok = 0;
	PQclear(res);
	return ok ? STORE_OK : STORE_FAIL;
}
