/*
 * legacy.c - the legacy protocol's clients and their tokens
 * (docs/legacy.md).  Its deposits, requests and votes are in policy.c,
 * the signatures seen in seen.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "int.h"
#include "log.h"
#include "mail.h"
#include "util.h"

#define CLIENT_COLS                                                         \
	"c.fingerprint, coalesce(c.qualified, ''), c.state, "               \
	"coalesce(o.name, ''), coalesce(c.org_id::text, ''), c.protocol, "   \
	"c.token IS NOT NULL, coalesce(c.token, ''), c.token_reset, "       \
	"coalesce(c.challenge_sha512, ''), c.pubkey "                       \
	"FROM clients c LEFT JOIN orgs o ON o.id = c.org_id "

static enum store_result
client_from(PGresult *res, struct legacy_client *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->fpr, sizeof(c->fpr), "%s", PQgetvalue(res, 0, 0));
	snprintf(c->qualified, sizeof(c->qualified), "%s",
	    PQgetvalue(res, 0, 1));
	snprintf(c->state, sizeof(c->state), "%s", PQgetvalue(res, 0, 2));
	snprintf(c->org, sizeof(c->org), "%s", PQgetvalue(res, 0, 3));
	snprintf(c->org_id, sizeof(c->org_id), "%s", PQgetvalue(res, 0, 4));
	snprintf(c->protocol, sizeof(c->protocol), "%s",
	    PQgetvalue(res, 0, 5));
	c->token_sync = strcmp(PQgetvalue(res, 0, 6), "t") == 0;
	snprintf(c->token, sizeof(c->token), "%s", PQgetvalue(res, 0, 7));
	c->token_reset = strcmp(PQgetvalue(res, 0, 8), "t") == 0;
	snprintf(c->challenge, sizeof(c->challenge), "%s",
	    PQgetvalue(res, 0, 9));
	if ((c->pubkey = strdup(PQgetvalue(res, 0, 10))) == NULL)
		return STORE_FAIL;
	return STORE_OK;
}

/* A key ID is the fingerprint's last 16 hex digits. */
static const struct store_stmt stmt_client_fpr = {STMT_LEGACY_CLIENT_FPR,
    "kt_legacy_client_fpr", "SELECT " CLIENT_COLS "WHERE c.fingerprint = $1", 1,
    NULL};
static const struct store_stmt stmt_client_keyid = {STMT_LEGACY_CLIENT_KEYID,
    "kt_legacy_client_keyid",
    "SELECT " CLIENT_COLS "WHERE right(c.fingerprint, 16) = $1 LIMIT 2", 1,
    NULL};

enum store_result
store_legacy_client(struct store *st, const char *fpr, const char *keyid,
    struct legacy_client *out)
{
	const char *params[1] = {fpr != NULL ? fpr : keyid};
	enum store_result ret;
	PGresult *res;

	memset(out, 0, sizeof(*out));
	if ((ret = store_row(st, "legacy client",
		 fpr != NULL ? &stmt_client_fpr : &stmt_client_keyid, NULL, 1,
		 params, 0, &res)) != STORE_OK)
		return ret;
	/* Two clients of one key ID: neither is named by it. */
	ret = PQntuples(res) == 1 ? client_from(res, out) : STORE_NOT_FOUND;
	PQclear(res);
	return ret;
}

void
store_legacy_client_clear(struct legacy_client *c)
{
	free(c->pubkey);
	c->pubkey = NULL;
	explicit_bzero(c->token, sizeof(c->token));
}

static const struct store_stmt stmt_register = {STMT_LEGACY_REGISTER,
    "kt_legacy_register",
    "WITH g AS (SELECT " HA_SYNC_OK " AS ok), "
    "c AS (INSERT INTO clients (fingerprint, qualified, org_id, "
    "hostname, pubkey, secret_nonce, secret_ct, state, protocol, "
    "token, token_reset, challenge_sha512, remote_addr) "
    "SELECT $1, $2, (SELECT id FROM orgs WHERE name = $10), $3, $4, "
    "$5, $6, 'unverified', $7, $8, false, $9, $11 "
    "WHERE (SELECT ok FROM g) "
    "ON CONFLICT (fingerprint) DO UPDATE SET protocol = "
    "EXCLUDED.protocol, token = EXCLUDED.token, token_reset = false, "
    "challenge_sha512 = EXCLUDED.challenge_sha512, qualified = "
    "EXCLUDED.qualified RETURNING fingerprint, xmax = 0 AS new), "
    "h AS (DELETE FROM hkp_keys WHERE fingerprint = $1 AND "
    "(SELECT ok FROM g)), "
    "a AS (" STORE_AUDIT_INSERT "SELECT now(), c.fingerprint, $10, "
    "'register', c.fingerprint, $11, CASE WHEN c.new THEN 'created' "
    "ELSE 'again' END FROM c) "
    "SELECT (SELECT ok FROM g), (SELECT count(*) FROM c)",
    11, NULL};

enum store_result
store_legacy_register(struct store *st, const struct legacy_register *r)
{
	const char *params[11];
	int lens[11] = {0}, fmts[11] = {0};

	params[0] = r->fpr;
	params[1] = r->qualified;
	params[2] = r->hostname;
	params[3] = r->pubkey;
	params[4] = (const char *)r->nonce;
	lens[4] = CRYPTO_NONCE_LEN;
	fmts[4] = 1;
	params[5] = (const char *)r->ct;
	lens[5] = CRYPTO_KEY_LEN + CRYPTO_TAG_LEN;
	fmts[5] = 1;
	params[6] = r->protocol;
	params[7] = r->token; /* NULL: no token sync */
	params[8] = r->challenge_sha512;
	params[9] = r->org;
	params[10] = store_text(r->remote);
	/*
	 * A new client, unverified; one registered before (a client run
	 * again, restored) keeps its state and org but takes the new
	 * challenge, protocol and token.  The key leaves hkp_keys.
	 */
	return store_gated_count(
	    st, "legacy register", &stmt_register, params, lens, fmts);
}

static const struct store_stmt stmt_verified = {STMT_LEGACY_VERIFIED,
    "kt_legacy_verified",
    "WITH g AS (SELECT " HA_SYNC_OK " AS ok), "
    "c AS (UPDATE clients SET challenge_sha512 = NULL, state = CASE "
    "WHEN state = 'unverified' THEN 'verified' ELSE state END "
    "WHERE fingerprint = $1 AND challenge_sha512 IS NOT NULL AND "
    "(SELECT ok FROM g) RETURNING fingerprint), "
    "a AS (" STORE_AUDIT_INSERT "SELECT now(), fingerprint, NULL, "
    "'verify', fingerprint, $2, 'ok' FROM c) "
    "SELECT (SELECT ok FROM g), (SELECT count(*) FROM c)",
    2, NULL};

enum store_result
store_legacy_verified(struct store *st, const char *fpr, const char *remote)
{
	const char *params[2] = {fpr, store_text(remote)};

	return store_gated_count(
	    st, "legacy verify", &stmt_verified, params, NULL, NULL);
}

static const struct store_stmt stmt_activate = {STMT_LEGACY_ACTIVATE,
    "kt_legacy_activate",
    "WITH g AS (SELECT " HA_SYNC_OK " AS ok), "
    "c AS (UPDATE clients SET org_id = $2::bigint, state = $3 "
    "WHERE fingerprint = $1 AND state IN ('verified', 'pending', "
    "'active') AND (SELECT ok FROM g) RETURNING fingerprint), "
    "a AS (" STORE_AUDIT_INSERT "SELECT now(), fingerprint, $4, "
    "'request_activation', fingerprint, $5, $3 FROM c), " MAIL_NOTICE_CTE("c, ",
	"o.id = $2::bigint", "$6",
	"$7") " "
	      "SELECT (SELECT ok FROM g), (SELECT count(*) FROM c), "
	      "CASE WHEN EXISTS (SELECT 1 FROM m) "
	      "THEN pg_notify('" MAIL_CHANNEL "', 'client')::text END",
    7, NULL};

enum store_result
store_legacy_activate(struct store *st, const struct legacy_activation *a)
{
	const char *params[7] = {a->fpr, a->org_id, a->state, a->org,
	    store_text(a->remote), a->subject, a->body};

	/* The client's org and state, its audit row, its org's notice. */
	return store_gated_count(
	    st, "legacy activation", &stmt_activate, params, NULL, NULL);
}

static const struct store_stmt stmt_token = {STMT_LEGACY_TOKEN,
    "kt_legacy_token",
    "WITH g AS (SELECT " HA_SYNC_OK " AS ok), "
    "c AS (UPDATE clients SET token = $3, token_reset = false "
    "WHERE fingerprint = $1 AND token IS NOT NULL AND "
    "(token = $2 OR token_reset) AND (SELECT ok FROM g) "
    "RETURNING 1) "
    "SELECT (SELECT ok FROM g), (SELECT count(*) FROM c)",
    3, NULL};

enum store_result
store_legacy_token(struct store *st, const char *fpr, const char *from,
    const char *to)
{
	const char *params[3] = {fpr, from, to};

	/*
	 * Compare and swap: only one of two requests with one token gets
	 * to go on; after a reset (orgtool reset-token) whatever it sends.
	 */
	return store_gated_count(st, "token", &stmt_token, params, NULL, NULL);
}
