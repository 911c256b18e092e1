/*
 * seen.c - the request signatures seen lately, one table for both
 * protocols (docs/api.md, "Replayed requests"; docs/legacy.md).  A /v1
 * write claims its request's digest in its own statement, with its answer
 * (deposits.c, batch.c: STORE_SEEN_INSERT); the legacy protocol claims
 * every request's here, with none.  Expired rows go a few at a time with
 * each claim (STORE_SEEN_PURGE).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "int.h"
#include "log.h"

static const struct store_stmt stmt_seen = {STMT_SEEN, "kt_seen",
    "WITH x AS (" STORE_SEEN_PURGE "), "
    "s AS (" STORE_SEEN_INSERT "SELECT $1, " STORE_SEEN_EXPIRES
    ", NULL, NULL, NULL FROM (SELECT "
    "set_config('synchronous_commit', 'local', true)) s "
    "ON CONFLICT (digest) DO NOTHING RETURNING 1) "
    "SELECT count(*) FROM s",
    1, NULL};

enum store_result
store_seen(struct store *st, const unsigned char *digest, size_t len)
{
	const char *params[1] = {(const char *)digest};
	int lens[1] = {(int)len}, fmts[1] = {1}, timed_out;
	enum store_result ret = STORE_FAIL;
	PGresult *res;

	/* Remembered (and the expired forgotten) whatever the standby. */
	res = store_exec_bounded(
	    st, &stmt_seen, NULL, 1, params, lens, fmts, &timed_out);
	if (timed_out)
		ret = STORE_NO_SYNC;
	else if (PQresultStatus(res) != PGRES_TUPLES_OK ||
	    PQntuples(res) != 1) {
		if (store_is_readonly(res))
			ret = STORE_READONLY;
		else
			log_warnx(
			    "seen signatures: %s", store_error(res, st->db));
	} else
		ret = strcmp(PQgetvalue(res, 0, 0), "1") == 0 ? STORE_OK
							      : STORE_CONFLICT;
	PQclear(res);
	return ret;
}

enum store_result
store_seen_answer(struct store *st, const unsigned char *digest, size_t len,
    int *status, char **location, char **body)
{
	const char *params[1] = {(const char *)digest};
	int lens[1] = {(int)len}, fmts[1] = {1};
	enum store_result ret = STORE_FAIL;
	PGresult *res;

	*status = 0;
	*location = *body = NULL;
	if (store_db(st) == NULL)
		return STORE_FAIL;
	/* Expired or not: a row still here was claimed by this request. */
	res = PQexecParams(st->db,
	    "SELECT status, location, body FROM seen_signatures "
	    "WHERE digest = $1 AND status IS NOT NULL",
	    1, NULL, params, lens, fmts, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("seen answer: %s", store_error(res, st->db));
		goto out;
	}
	if (PQntuples(res) != 1) {
		ret = STORE_NOT_FOUND;
		goto out;
	}
	*status = atoi(PQgetvalue(res, 0, 0));
	if ((!PQgetisnull(res, 0, 1) &&
		(*location = strdup(PQgetvalue(res, 0, 1))) == NULL) ||
	    (*body = strdup(
		 PQgetisnull(res, 0, 2) ? "" : PQgetvalue(res, 0, 2))) ==
		NULL) {
		log_warnx("seen answer: out of memory");
		free(*location);
		*location = NULL;
		goto out;
	}
	ret = STORE_OK;
out:
	PQclear(res);
	return ret;
}
