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

enum store_result
store_hkp_key(struct store *st, const char *fpr, char **armored)
{
	const char *params[1] = {fpr};
	enum store_result ret;
	PGresult *res;

	*armored = NULL;
	if ((ret = store_row(st, "HKP lookup", NULL,
		 "SELECT pubkey FROM clients WHERE fingerprint = $1 "
		 "UNION ALL SELECT pubkey FROM hkp_keys WHERE fingerprint = $1 "
		 "AND added > now() - " HKP_KEEP " LIMIT 1",
		 1, params, 0, &res)) != STORE_OK)
		return ret;
	if ((*armored = strdup(PQgetvalue(res, 0, 0))) == NULL)
		ret = STORE_FAIL;
	PQclear(res);
	return ret;
}

enum store_result
store_hkp_add(struct store *st, const char *fpr, const char *armored,
    const char *remote)
{
	const char *params[3] = {fpr, armored, store_text(remote)};
	enum store_result ret;
	PGresult *res;

	/* The key, its audit row, and the keys nobody claimed in a day. */
	ret = store_gated(st, "HKP add",
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
	    3, params, NULL, NULL, &res);
	PQclear(res);
	return ret;
}
