/*
 * conn.c - a store's connection: made lazily, made again when it broke,
 * its hot statements prepared once per session (PostgreSQL parses and
 * plans them once instead of on every request), and the bounded wait of a
 * write for the synchronous standby.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "int.h"
#include "log.h"
#include "util.h"

/* How long a commit may wait for the synchronous standby. */
#define STORE_COMMIT_MSECS 2000

struct store *
store_new(const struct kt_conf *conf, const char *name)
{
	struct store *st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	st->conf = conf;
	snprintf(st->name, sizeof(st->name), "%s", name);
	return st;
}

void
store_free(struct store *st)
{
	int k;

	if (st == NULL)
		return;
	PQfinish(st->db);
	for (k = 0; k < STORE_BUFS; k++)
		free(st->arr[k].buf);
	free(st);
}

PGconn *
store_db(struct store *st)
{
	char err[512];

	if (st->db != NULL && PQstatus(st->db) != CONNECTION_OK)
		PQreset(st->db); /* a new session: nothing prepared there */
	if (st->db == NULL &&
	    (st->db = db_connect(st->conf, err, sizeof(err))) == NULL) {
		log_warnx("%s: database: %s", st->name, err);
		return NULL;
	}
	if (PQstatus(st->db) != CONNECTION_OK) {
		log_warnx("%s: database: connection lost", st->name);
		return NULL;
	}
	return st->db;
}

int
store_prepare(struct store *st, const struct store_stmt *s)
{
	PGresult *res;
	int pid = PQbackendPID(st->db);

	if (pid != st->pid) {
		st->prepared = 0;
		st->pid = pid;
	}
	if (st->prepared & (1u << s->id))
		return 0;
	res = PQprepare(st->db, s->name, s->sql, s->nparams, s->types);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		if (PQstatus(st->db) == CONNECTION_OK)
			log_warnx("%s: prepare %s: %s", st->name, s->name,
			    store_error(res, st->db));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	st->prepared |= 1u << s->id;
	return 0;
}

PGresult *
store_prepared(struct store *st, const struct store_stmt *s,
    const char *const *values, const int *lengths, const int *formats,
    int binary, int retry)
{
	PGresult *res = NULL;
	int try;

	for (try = 0; try <= retry; try++) {
		PQclear(res);
		res = NULL;
		if (try == 1)
			PQreset(st->db);
		if (store_db(st) == NULL)
			return NULL;
		if (store_prepare(st, s) == -1) {
			if (PQstatus(st->db) == CONNECTION_OK)
				return NULL; /* logged */
			continue;
		}
		res = PQexecPrepared(st->db, s->name, s->nparams, values,
		    lengths, formats, binary);
		if (PQstatus(st->db) == CONNECTION_OK)
			break;
	}
	return res;
}

PGresult *
store_exec(struct store *st, const char *sql, int n, const char *const *params)
{
	PGresult *res = NULL;
	int try;

	for (try = 0; try < 2; try++) {
		PQclear(res);
		res = NULL;
		if (store_db(st) == NULL)
			return NULL;
		res = PQexecParams(st->db, sql, n, NULL, params, NULL, NULL, 0);
		if (PQstatus(st->db) == CONNECTION_OK)
			break;
	}
	return res;
}

enum store_result
store_row(struct store *st, const char *what, const struct store_stmt *s,
    const char *sql, int n, const char *const *params, int binary,
    PGresult **res)
{
	*res = NULL;
	if (s != NULL)
		*res = store_prepared(st, s, params, NULL, NULL, binary, 1);
	else if (store_db(st) != NULL)
		*res = PQexecParams(
		    st->db, sql, n, NULL, params, NULL, NULL, binary);
	if (PQresultStatus(*res) != PGRES_TUPLES_OK) {
		log_warnx("%s: %s", what, store_error(*res, st->db));
		PQclear(*res);
		*res = NULL;
		return STORE_FAIL;
	}
	if (PQntuples(*res) == 0) {
		PQclear(*res);
		*res = NULL;
		return STORE_NOT_FOUND;
	}
	return STORE_OK;
}

/* The result of the statement just sent, its wait bounded. */
static PGresult *
store_wait(struct store *st, int *timed_out)
{
	long long deadline = mono_ms() + STORE_COMMIT_MSECS, left;
	PGresult *res, *last = NULL;
	struct pollfd pfd;
	PGcancel *cancel;
	char err[256];

	pfd.fd = PQsocket(st->db);
	pfd.events = POLLIN;
	while (PQisBusy(st->db)) {
		left = deadline - mono_ms();
		if (left <= 0 && !*timed_out) {
			/*
			 * A commit waiting for a standby that went away: cancel
			 * the wait.  The row stays committed on the active and
			 * reaches the passive when it streams again, but the
			 * client is not told it succeeded.
			 */
			*timed_out = 1;
			log_warnx("%s: a write waited %d ms for the "
				  "synchronous standby; cancelled",
			    st->name, STORE_COMMIT_MSECS);
			if ((cancel = PQgetCancel(st->db)) != NULL) {
				(void)PQcancel(cancel, err, sizeof(err));
				PQfreeCancel(cancel);
			}
			deadline = mono_ms() + STORE_COMMIT_MSECS;
			continue;
		}
		if (left <= 0) {
			/* Not even the cancel came back: a new connection. */
			PQreset(st->db);
			return NULL;
		}
		if (poll(&pfd, 1, (int)left) == -1 && errno != EINTR)
			return NULL;
		if (!PQconsumeInput(st->db))
			break;
	}
	while ((res = PQgetResult(st->db)) != NULL) {
		PQclear(last);
		last = res;
	}
	if (*timed_out) {
		PQclear(last);
		return NULL;
	}
	return last;
}

PGresult *
store_exec_bounded(struct store *st, const struct store_stmt *s,
    const char *sql, int n, const char *const *params, const int *lens,
    const int *fmts, int *timed_out)
{
	int sent;

	*timed_out = 0;
	if (store_db(st) == NULL || (s != NULL && store_prepare(st, s) == -1))
		return NULL;
	if (s != NULL)
		sent = PQsendQueryPrepared(st->db, s->name, n, params, lens,
		    fmts, 0);
	else
		sent = PQsendQueryParams(st->db, sql, n, NULL, params, lens,
		    fmts, 0);
	return sent ? store_wait(st, timed_out) : NULL;
}

const char *
store_error(PGresult *res, PGconn *db)
{
	const char *m = res != NULL ?
	    PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	if (m == NULL)
		m = db == NULL || PQstatus(db) != CONNECTION_OK ?
		    "connection lost" : "unknown error";
	return m;
}

int
store_is_readonly(PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	/* read_only_sql_transaction: promoted or demoted since a check. */
	return state != NULL && strcmp(state, "25006") == 0;
}

enum store_result
store_gated(struct store *st, const char *what, const struct store_stmt *s,
    const char *const *params, const int *lens, const int *fmts, PGresult **out)
{
	enum store_result ret = STORE_FAIL;
	PGresult *res;
	int timed_out;

	*out = NULL;
	res = store_exec_bounded(
	    st, s, NULL, s->nparams, params, lens, fmts, &timed_out);
	if (timed_out)
		ret = STORE_NO_SYNC;
	else if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1)
		log_warnx("%s: %s", what, store_error(res, st->db));
	else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
		ret = STORE_NO_SYNC;
	else {
		*out = res;
		return STORE_OK;
	}
	PQclear(res);
	return ret;
}

enum store_result
store_gated_count(struct store *st, const char *what,
    const struct store_stmt *s, const char *const *params, const int *lens,
    const int *fmts)
{
	enum store_result ret;
	PGresult *res;

	if ((ret = store_gated(st, what, s, params, lens, fmts, &res)) !=
	    STORE_OK)
		return ret;
	if (PQnfields(res) > 1 && strcmp(PQgetvalue(res, 0, 1), "0") != 0)
		ret = STORE_OK;
	else if (PQnfields(res) > 2 && strcmp(PQgetvalue(res, 0, 2), "t") == 0)
		ret = STORE_FORBIDDEN;
	else
		ret = STORE_NOT_FOUND;
	PQclear(res);
	return ret;
}

const char *
store_text(const char *s)
{
	return s != NULL && *s != '\0' ? s : NULL;
}

int
store_schema_version(struct store *st)
{
	int v;

	if (store_db(st) == NULL)
		return -1;
	if ((v = db_schema_version(st->db)) < 0 &&
	    PQstatus(st->db) != CONNECTION_OK) {
		/* The connection broke under us: one more try. */
		PQreset(st->db);
		v = db_schema_version(st->db);
	}
	return v;
}
