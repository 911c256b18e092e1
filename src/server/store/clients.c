/*
 * clients.c - organizations and their clients: what a signed request
 * needs of its client, and what a registration reads and writes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "int.h"
#include "log.h"
#include "mail.h"
#include "util.h"

static const struct store_stmt stmt_auth = {STMT_AUTH_CLIENT,
    "kt_auth_client",
    "SELECT c.state, c.secret_nonce, c.secret_ct, o.name "
    "FROM clients c JOIN orgs o ON o.id = c.org_id "
    "WHERE c.fingerprint = $1",
    1, NULL};

/* A sealed secret of the right size into a; -1 when it is not. */
static int
sealed_secret(PGresult *res, int nonce_col, struct client_auth *a)
{
	if ((size_t)PQgetlength(res, 0, nonce_col) != sizeof(a->nonce) ||
	    (size_t)PQgetlength(res, 0, nonce_col + 1) != sizeof(a->ct))
		return -1;
	memcpy(a->nonce, PQgetvalue(res, 0, nonce_col), sizeof(a->nonce));
	memcpy(a->ct, PQgetvalue(res, 0, nonce_col + 1), sizeof(a->ct));
	return 0;
}

enum store_result
store_client_auth(struct store *st, const char *fpr, struct client_auth *out)
{
	const char *params[1] = {fpr};
	enum store_result ret;
	PGresult *res;

	if ((ret = store_row(st, "auth", &stmt_auth, NULL, 1, params, 1,
		 &res)) != STORE_OK)
		return ret;
	if (sealed_secret(res, 1, out) == -1)
		ret = STORE_INTEGRITY;
	snprintf(out->fpr, sizeof(out->fpr), "%s", fpr);
	snprintf(out->state, sizeof(out->state), "%s", PQgetvalue(res, 0, 0));
	snprintf(out->org, sizeof(out->org), "%s", PQgetvalue(res, 0, 3));
	PQclear(res);
	return ret;
}

static const struct store_stmt stmt_org = {STMT_ORG, "kt_org",
    "SELECT id::text, auth_secret FROM orgs WHERE name = $1", 1, NULL};

enum store_result
store_org_get(struct store *st, const char *name, struct org_row *out)
{
	const char *params[1] = {name};
	enum store_result ret;
	PGresult *res;

	memset(out, 0, sizeof(*out));
	if ((ret = store_row(st, "register", &stmt_org, NULL, 1, params, 0,
		 &res)) != STORE_OK)
		return ret;
	if ((out->auth_secret = strdup(PQgetvalue(res, 0, 1))) == NULL)
		ret = STORE_FAIL;
	snprintf(out->id, sizeof(out->id), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return ret;
}

void
store_org_clear(struct org_row *o)
{
	if (o->auth_secret != NULL)
		freezero(o->auth_secret, strlen(o->auth_secret));
	o->auth_secret = NULL;
}

enum store_result
store_client_get(struct store *st, const char *fpr, struct client_row *out)
{
	const char *params[1] = {fpr};
	enum store_result ret;
	PGresult *res;

	memset(out, 0, sizeof(*out));
	if ((ret = store_row(st, "register", NULL,
		 "SELECT org_id::text, state, secret_nonce, secret_ct "
		 "FROM clients WHERE fingerprint = $1",
		 1, params, 1, &res)) != STORE_OK)
		return ret;
	snprintf(out->org_id, sizeof(out->org_id), "%s", PQgetvalue(res, 0, 0));
	snprintf(out->a.fpr, sizeof(out->a.fpr), "%s", fpr);
	snprintf(out->a.state, sizeof(out->a.state), "%s",
	    PQgetvalue(res, 0, 1));
	if (sealed_secret(res, 2, &out->a) == -1)
		ret = STORE_INTEGRITY;
	PQclear(res);
	return ret;
}

enum store_result
store_client_insert(struct store *st, const struct client_new *c)
{
	const char *params[11];
	int lens[11] = {0}, fmts[11] = {0}, timed_out;
	enum store_result ret = STORE_FAIL;
	PGresult *res;

	params[0] = c->fpr;
	params[1] = c->org_id;
	params[2] = c->hostname;
	params[3] = c->pubkey;
	params[4] = (const char *)c->nonce;
	lens[4] = CRYPTO_NONCE_LEN;
	fmts[4] = 1;
	params[5] = (const char *)c->ct;
	lens[5] = CRYPTO_KEY_LEN + CRYPTO_TAG_LEN;
	fmts[5] = 1;
	params[6] = c->state;
	params[7] = store_text(c->remote);
	params[8] = c->org;
	params[9] = c->subject;
	params[10] = c->body;
	/*
	 * The client, its audit row and the notice to each of the org's
	 * contacts in one statement (one transaction).
	 */
	res = store_exec_bounded(st, NULL,
	    "WITH g AS (SELECT " HA_SYNC_OK " AS ok), "
	    "c AS (INSERT INTO clients (fingerprint, org_id, hostname, "
	    "pubkey, secret_nonce, secret_ct, state, remote_addr) "
	    "SELECT $1, $2::bigint, $3, $4, $5, $6, $7, $8 "
	    "WHERE (SELECT ok FROM g) "
	    "ON CONFLICT (fingerprint) DO NOTHING RETURNING fingerprint), "
	    "a AS (" STORE_AUDIT_INSERT "SELECT now(), c.fingerprint, $9, "
	    "'register', c.fingerprint, $8, 'created_' || $7 FROM c "
	    "RETURNING id), "
	    MAIL_NOTICE_CTE("c, ", "o.id = $2::bigint", "$10", "$11") " "
	    "SELECT (SELECT count(*) FROM a), (SELECT ok FROM g), "
	    "CASE WHEN EXISTS (SELECT 1 FROM a) "
	    "THEN pg_notify('" MAIL_CHANNEL "', 'client')::text END",
	    11, params, lens, fmts, &timed_out);
	if (timed_out)
		ret = STORE_NO_SYNC;
	else if (PQresultStatus(res) != PGRES_TUPLES_OK ||
	    PQntuples(res) != 1)
		log_warnx("register: %s", store_error(res, st->db));
	else if (strcmp(PQgetvalue(res, 0, 1), "t") != 0)
		ret = STORE_NO_SYNC;
	else
		ret = strcmp(PQgetvalue(res, 0, 0), "1") == 0 ? STORE_OK
							      : STORE_CONFLICT;
	PQclear(res);
	return ret;
}
