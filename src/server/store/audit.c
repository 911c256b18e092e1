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

/* The row's values as the statement's $1..$8 (count into its buffer). */
static void
audit_params(const struct audit_row *r, const char *p[8], char count[16])
{
	p[0] = r->at;
	p[1] = r->actor;
	p[2] = r->org;
	p[3] = r->action;
	p[4] = r->object;
	p[5] = store_text(r->remote);
	p[6] = r->result;
	snprintf(count, 16, "%d", r->count > 1 ? r->count : 1);
	p[7] = count;
}

#define AUDIT_INSERT                                                         \
	"INSERT INTO audit_log (" STORE_AUDIT_COLUMNS ", count) "            \
	"SELECT coalesce($1::timestamptz, now()), $2, $3, $4, $5, $6, $7, "  \
	"$8::int"

enum store_result
store_audit(struct store *st, const struct audit_row *r)
{
	const char *params[8];
	char count[16];
	enum store_result ret = STORE_OK;
	PGresult *res;

	audit_params(r, params, count);
	/*
	 * An audit row alone never waits for the synchronous standby.  On a
	 * connection found broken (the database restarted since its last
	 * use) it is written on a new one rather than the access refused.
	 */
	res = store_exec(st,
	    AUDIT_INSERT " FROM (SELECT "
	    "set_config('synchronous_commit', 'local', true)) s",
	    8, params);
	if (res == NULL)
		return STORE_FAIL;
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
	const char *params[8];
	char count[16];
	PGresult *res;
	int i, ok;

	if (store_db(st) == NULL)
		return STORE_FAIL;
	res = PQexec(st->db, "BEGIN; SET LOCAL synchronous_commit = local");
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	for (i = 0; i < n && ok; i++) {
		PQclear(res);
		audit_params(&rows[i], params, count);
		res = PQexecParams(st->db, AUDIT_INSERT, 8, NULL, params, NULL,
		    NULL, 0);
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
