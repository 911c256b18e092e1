/*
 * contacts.c - the links of the "KeyTrustee Contact Registration" mail
 * (contact_tokens, by the hash of their token) and the keys the contacts
 * register through them (contact_keys).
 */
#include <stdio.h>
#include <string.h>

#include "int.h"
#include "log.h"

enum store_result
store_contact_token(struct store *st, struct contact_token *t)
{
	const char *params[1] = {t->hash};
	enum store_result ret;
	PGresult *res;

	if ((ret = store_row(st, "contact link", NULL,
		 "SELECT o.name, t.contact, t.used IS NOT NULL, "
		 "t.expires <= now(), to_char(t.expires AT TIME ZONE 'UTC', "
		 "'YYYY-MM-DD HH24:MI:SS') "
		 "FROM contact_tokens t JOIN orgs o ON o.id = t.org_id "
		 "WHERE t.token_hash = $1",
		 1, params, 0, &res)) != STORE_OK)
		return ret;
	snprintf(t->org, sizeof(t->org), "%s", PQgetvalue(res, 0, 0));
	snprintf(t->contact, sizeof(t->contact), "%s", PQgetvalue(res, 0, 1));
	t->used = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
	t->expired = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
	snprintf(t->expires, sizeof(t->expires), "%s", PQgetvalue(res, 0, 4));
	PQclear(res);
	return STORE_OK;
}

enum store_result
store_contact_key(struct store *st, const struct contact_token *t,
    const char *fpr, const char *pubkey, const char *remote)
{
	const char *params[4] = {t->hash, fpr, pubkey, store_text(remote)};
	enum store_result ret = STORE_FAIL;
	PGresult *res;

	if (store_db(st) == NULL)
		return STORE_FAIL;
	/* Used once: the token is taken in the transaction storing the key. */
	res = PQexecParams(st->db,
	    "WITH t AS (UPDATE contact_tokens SET used = now() "
	    "WHERE token_hash = $1 AND used IS NULL AND expires > now() "
	    "RETURNING org_id, contact), "
	    "k AS (INSERT INTO contact_keys (org_id, contact, fingerprint, "
	    "pubkey) SELECT org_id, contact, $2, $3 FROM t "
	    "ON CONFLICT (org_id, contact) DO UPDATE SET fingerprint = "
	    "EXCLUDED.fingerprint, pubkey = EXCLUDED.pubkey, registered = "
	    "now() RETURNING org_id, contact) " STORE_AUDIT_INSERT
	    "SELECT now(), k.contact, o.name, 'contact.key', $2, $4, 'ok' "
	    "FROM k JOIN orgs o ON o.id = k.org_id RETURNING id",
	    4, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		log_warnx("contact key: %s", store_error(res, st->db));
	else
		ret = PQntuples(res) == 1 ? STORE_OK : STORE_NOT_FOUND;
	PQclear(res);
	return ret;
}
