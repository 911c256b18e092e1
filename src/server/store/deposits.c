/*
 * deposits.c - the deposits table: a client's read, list and delete, and
 * the deposit cache's scan.  New deposits are inserted in batches
 * (batch.c).
 */
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "../deposit.h"
#include "int.h"
#include "log.h"

#define CREATED_TEXT                                                        \
	"to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static const struct store_stmt stmt_read = {STMT_DEPOSIT_READ,
    "kt_deposit_read",
    "SELECT name, description, nonce, content, " CREATED_TEXT
    " FROM deposits WHERE uuid = $1::uuid AND owner = $2 AND kind = 'v1'",
    2, NULL};

enum store_result
store_deposit_read(struct store *st, const char *uuid, const char *owner,
    struct deposit **out)
{
	const char *params[2] = {uuid, owner};
	enum store_result ret;
	PGresult *res;

	*out = NULL;
	if ((ret = store_row(st, "deposit read", &stmt_read, NULL, 2, params, 1,
		 &res)) != STORE_OK)
		return ret;
	*out = deposit_new(uuid, owner, PQgetvalue(res, 0, 0),
	    PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1),
	    (const unsigned char *)PQgetvalue(res, 0, 2),
	    (size_t)PQgetlength(res, 0, 2),
	    (const unsigned char *)PQgetvalue(res, 0, 3),
	    (size_t)PQgetlength(res, 0, 3), PQgetvalue(res, 0, 4));
	PQclear(res);
	/* A nonce or ciphertext of the wrong size, or out of memory. */
	return *out != NULL ? STORE_OK : STORE_INTEGRITY;
}

enum store_result
store_deposit_list(
    struct store *st, const char *owner, const char *name, json_t **out)
{
	const char *params[2] = {owner, name};
	enum store_result ret = STORE_FAIL;
	PGresult *res;
	json_t *arr = NULL, *item;
	int i;

	*out = NULL;
	if (store_db(st) == NULL)
		return STORE_FAIL;
	res = PQexecParams(st->db,
	    "SELECT uuid::text, name, description, " CREATED_TEXT
	    " FROM deposits WHERE owner = $1 AND kind = 'v1' AND "
	    "($2::text IS NULL OR name = $2) ORDER BY created, uuid",
	    2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("deposit list: %s", store_error(res, st->db));
		goto out;
	}
	if ((arr = json_array()) == NULL)
		goto oom;
	for (i = 0; i < PQntuples(res); i++) {
		item = json_pack("{s:s, s:s, s:o, s:s}", "uuid",
		    PQgetvalue(res, i, 0), "name", PQgetvalue(res, i, 1),
		    "description",
		    PQgetisnull(res, i, 2) ? json_null()
					   : json_string(PQgetvalue(res, i, 2)),
		    "created", PQgetvalue(res, i, 3));
		if (item == NULL || json_array_append_new(arr, item) == -1)
			goto oom;
	}
	*out = arr;
	arr = NULL;
	ret = STORE_OK;
	goto out;
oom:
	log_warnx("deposit list: out of memory");
out:
	json_decref(arr);
	PQclear(res);
	return ret;
}

enum store_result
store_deposit_delete(struct store *st, const char *uuid,
    const struct audit_row *a, const struct store_answer *ans)
{
	char status[12];
	const char *params[8] = {uuid, a->actor, a->org, store_text(a->remote),
	    (const char *)ans->seen, status, ans->location, ans->body};
	int lens[8] = {0, 0, 0, 0, CRYPTO_HASH_LEN, 0, 0, 0};
	int fmts[8] = {0, 0, 0, 0, 1, 0, 0, 0};
	enum store_result ret = STORE_FAIL;
	PGresult *res;
	int timed_out;

	snprintf(status, sizeof(status), "%d", ans->status);
	/*
	 * The deletion, its audit row and its answer commit together; a
	 * request seen before deletes nothing.  One that waited for the
	 * row while its twin deleted it finds none, and finds its twin's
	 * answer after (the next statement sees that commit): so a
	 * "not_found" row is written only then, when it is not one.
	 */
	res = store_exec_bounded(st, NULL,
	    "WITH g AS (SELECT " HA_SYNC_OK " AS ok), "
	    "k AS (SELECT EXISTS (SELECT 1 FROM seen_signatures WHERE "
	    "digest = $5) AS seen), "
	    "x AS (" STORE_SEEN_PURGE "), "
	    "d AS (DELETE FROM deposits WHERE uuid = $1::uuid AND "
	    "owner = $2 AND kind = 'v1' AND (SELECT ok FROM g) AND "
	    "NOT (SELECT seen FROM k) RETURNING uuid), "
	    "s AS (" STORE_SEEN_INSERT "SELECT $5, " STORE_SEEN_EXPIRES
	    ", $6::int, $7, $8 FROM d ON CONFLICT (digest) DO NOTHING), "
	    "a AS (" STORE_AUDIT_INSERT "SELECT now(), $2, $3, "
	    "'deposit_delete', $1, $4, 'ok' FROM d) "
	    "SELECT (SELECT count(*) FROM d), (SELECT ok FROM g), "
	    "(SELECT seen FROM k)",
	    8, params, lens, fmts, &timed_out);
	if (timed_out)
		ret = STORE_NO_SYNC;
	else if (PQresultStatus(res) != PGRES_TUPLES_OK ||
	    PQntuples(res) != 1)
		log_warnx("deposit delete: %s", store_error(res, st->db));
	else if (strcmp(PQgetvalue(res, 0, 1), "t") != 0)
		ret = STORE_NO_SYNC;
	else if (strcmp(PQgetvalue(res, 0, 2), "t") == 0)
		ret = STORE_CONFLICT;
	else if (strcmp(PQgetvalue(res, 0, 0), "0") != 0)
		ret = STORE_OK;
	else
		ret = STORE_NOT_FOUND;
	PQclear(res);
	if (ret == STORE_NOT_FOUND) {
		/* Its twin's, committed while this one waited? */
		res = PQexecParams(st->db,
		    "SELECT 1 FROM seen_signatures WHERE digest = $1", 1, NULL,
		    params + 4, lens + 4, fmts + 4, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			log_warnx("deposit delete: %s", store_error(res, st->db));
			ret = STORE_FAIL;
		} else if (PQntuples(res) == 1)
			ret = STORE_CONFLICT;
		else if (store_audit(st, AUDIT_ROW(.actor = a->actor,
					     .org = a->org, .action = a->action,
					     .object = a->object,
					     .remote = a->remote,
					     .result = "not_found")) != STORE_OK)
			ret = STORE_FAIL;
		PQclear(res);
	}
	return ret;
}

#define SCAN_SELECT                                                         \
	"SELECT uuid::text, owner, name, description, nonce, content, "     \
	CREATED_TEXT " FROM deposits "
/* deposits.uuid: plain uuid is the output column, text, sorted unindexed. */
#define SCAN_ORDER "ORDER BY deposits.uuid LIMIT $2"

int
store_deposit_scan(struct store *st, const char *after, int limit,
    store_deposit_fn *fn, void *arg, char last[CRYPTO_UUID_LEN + 1])
{
	char lim[16];
	const char *params[2] = {after, lim};
	struct deposit *d;
	PGresult *res;
	int i, n, stop;

	if (store_db(st) == NULL)
		return -1;
	snprintf(lim, sizeof(lim), "%d", limit);
	/* Two texts: "$1 IS NULL OR uuid > $1" would scan the whole table. */
	if (*after)
		res = PQexecParams(st->db,
		    SCAN_SELECT "WHERE kind = 'v1' AND uuid > $1::uuid "
		    SCAN_ORDER, 2, NULL,
		    params, NULL, NULL, 1);
	else
		res = PQexecParams(st->db,
		    SCAN_SELECT "WHERE kind = 'v1' ORDER BY deposits.uuid "
		    "LIMIT $1", 1, NULL,
		    params + 1, NULL, NULL, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("%s: %s", st->name, store_error(res, st->db));
		PQclear(res);
		return -1;
	}
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		d = deposit_new(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		    PQgetvalue(res, i, 2),
		    PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3),
		    (const unsigned char *)PQgetvalue(res, i, 4),
		    (size_t)PQgetlength(res, i, 4),
		    (const unsigned char *)PQgetvalue(res, i, 5),
		    (size_t)PQgetlength(res, i, 5), PQgetvalue(res, i, 6));
		if (d == NULL)
			continue; /* not one the API wrote: read on demand */
		stop = fn(arg, d) == -1;
		deposit_unref(d);
		if (stop)
			break;
	}
	if (n > 0)
		snprintf(last, CRYPTO_UUID_LEN + 1, "%s",
		    PQgetvalue(res, n - 1, 0));
	PQclear(res);
	return n;
}
