/*
 * hkp.c - the keys HKP serves besides the server's own: a registered
 * client's (clients.pubkey), and the keys posted to /pks/add that wait
 * for a register to claim them (hkp_keys, a day at most).
 */
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "int.h"
#include "log.h"

#define HKP_KEEP "interval '24 hours'"

static const struct store_stmt stmt_hkp_key = {STMT_HKP_KEY, "kt_hkp_key",
    "SELECT pubkey FROM clients WHERE fingerprint = $1 "
    "UNION ALL SELECT pubkey FROM hkp_keys WHERE fingerprint = $1 "
    "AND added > now() - " HKP_KEEP " LIMIT 1",
    1, NULL};

enum store_result
store_hkp_key(struct store *st, const char *fpr, char **armored)
{
	const char *params[1] = {fpr};
	enum store_result ret;
	PGresult *res;

	*armored = NULL;
	if ((ret = store_row(st, "HKP lookup", &stmt_hkp_key, NULL, 1, params,
		 0, &res)) != STORE_OK)
		return ret;
	if ((*armored = strdup(PQgetvalue(res, 0, 0))) == NULL)
		ret = STORE_FAIL;
	PQclear(res);
	return ret;
}

static const struct store_stmt stmt_hkp_add = {STMT_HKP_ADD, "kt_hkp_add",
    "WITH g AS (SELECT " HA_SYNC_OK " AS ok), "
    "x AS (DELETE FROM hkp_keys WHERE added <= now() - " HKP_KEEP
    " AND (SELECT ok FROM g)), "
    "k AS (INSERT INTO hkp_keys (fingerprint, pubkey, remote_addr) "
    "SELECT $1, $2, $3 WHERE (SELECT ok FROM g) "
    "ON CONFLICT (fingerprint) DO UPDATE SET pubkey = EXCLUDED.pubkey, "
    "remote_addr = EXCLUDED.remote_addr, added = now() "
    "RETURNING fingerprint), "
    "a AS (" STORE_AUDIT_INSERT "SELECT now(), NULL, NULL, 'hkp.add', "
    "fingerprint, $3, 'ok' FROM k) "
    "SELECT (SELECT ok FROM g)",
    3, NULL};

enum store_result
store_hkp_add(struct store *st, const char *fpr, const char *armored,
    const char *remote)
{
	const char *params[3] = {fpr, armored, store_text(remote)};
	enum store_result ret;
	PGresult *res;

	/* The key, its audit row, and the keys nobody claimed in a day. */
	ret =
	    store_gated(st, "HKP add", &stmt_hkp_add, params, NULL, NULL, &res);
	PQclear(res);
	return ret;
}
