/*
 * repl.c - what this server's own PostgreSQL says of replication: whether
 * it is a standby (then this server is the passive one), and how
 * replication stands (pg_stat_replication on the active,
 * pg_stat_wal_receiver on the passive).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "int.h"

/* The host of a primary_conninfo (never its password). */
static void
conninfo_host(const char *conninfo, char *out, size_t outlen)
{
	PQconninfoOption *opts, *o;

	*out = '\0';
	if ((opts = PQconninfoParse(conninfo, NULL)) == NULL)
		return;
	for (o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "host") == 0 && o->val != NULL)
			snprintf(out, outlen, "%s", o->val);
		if (o->val != NULL)
			explicit_bzero(o->val, strlen(o->val));
	}
	PQconninfoFree(opts);
}

enum store_result
store_repl_status(struct store *st, struct repl_status *out)
{
	struct repl_status r;
	PGresult *res;
	enum store_result ret = STORE_FAIL;

	if (store_db(st) == NULL)
		return STORE_FAIL;
	memset(&r, 0, sizeof(r));
	res = PQexec(st->db, "SELECT pg_is_in_recovery()");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		goto out;
	r.passive = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (r.passive)
		res = PQexec(st->db,
		    "SELECT coalesce((SELECT status FROM "
		    "pg_stat_wal_receiver), 'stopped'), "
		    "coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), "
		    "pg_last_wal_replay_lsn()), 0)::bigint, "
		    "CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM "
		    "pg_last_wal_replay_lsn() THEN 0 ELSE "
		    "coalesce(extract(epoch "
		    "FROM now() - pg_last_xact_replay_timestamp()), 0) "
		    "END::float8, current_setting('primary_conninfo')");
	else
		res = PQexec(st->db,
		    "SELECT current_setting('synchronous_standby_names') <> "
		    "'', "
		    "count(*) FILTER (WHERE state = 'streaming'), "
		    "count(*) FILTER (WHERE state = 'streaming' AND sync_state "
		    "IN ('sync', 'quorum')), "
		    "coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), "
		    "replay_lsn)), 0)::bigint, "
		    "coalesce(extract(epoch FROM max(greatest(write_lag, "
		    "flush_lag, replay_lag))), 0)::float8 "
		    "FROM pg_stat_replication");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		goto out;
	if (r.passive) {
		r.receiving = strcmp(PQgetvalue(res, 0, 0), "streaming") == 0;
		r.lag_bytes = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		r.lag_seconds = strtod(PQgetvalue(res, 0, 2), NULL);
		conninfo_host(PQgetvalue(res, 0, 3), r.active_host,
		    sizeof(r.active_host));
		explicit_bzero(
		    PQgetvalue(res, 0, 3), strlen(PQgetvalue(res, 0, 3)));
	} else {
		r.sync_required = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		r.standbys = atoi(PQgetvalue(res, 0, 1));
		r.sync_streaming = atoi(PQgetvalue(res, 0, 2)) > 0;
		r.lag_bytes = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
		r.lag_seconds = strtod(PQgetvalue(res, 0, 4), NULL);
	}
	*out = r; /* a check that failed halfway changes nothing */
	ret = STORE_OK;
out:
	PQclear(res);
	return ret;
}
