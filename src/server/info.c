/* info.c - the server's identity and health (see info.h). */
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "backupstat.h"
#include "conf.h"
#include "db.h"
#include "depcache.h"
#include "ha.h"
#include "http.h"
#include "info.h"

void
info_fingerprint(struct worker *w, struct http_req *req,
    const struct handler_match *m)
{
	(void)m;
	http_reply(req, 200, "text/plain", w->srv->qfpr, strlen(w->srv->qfpr));
}

void
info_pubkey(struct worker *w, struct http_req *req,
    const struct handler_match *m)
{
	(void)m;
	http_reply(req, 200, "application/pgp-keys", w->srv->pubkey,
	    w->srv->pubkeylen);
}

/*
 * Role, database (reachable, on this binary's schema), replication, the
 * deposit cache, the open connections per worker thread, and the last
 * backup (a failed or overdue one does not make the server degraded: it
 * still serves, and a load balancer must not take it out for that).
 */
void
info_health(struct worker *w, struct http_req *req,
    const struct handler_match *m)
{
	struct server *srv = w->srv;
	int v = store_schema_version(w->store), writes = 0;
	/* Reachable but on another schema than this binary's is not ok. */
	int ok = v == DB_SCHEMA_VERSION;
	json_t *o, *conns, *repl = ha_health(srv->ha, &writes);
	size_t dn, dbytes, dlimit;
	int dlive, dfilling, i;

	(void)m;
	depcache_stats(srv->depcache, &dn, &dbytes, &dlimit, &dlive, &dfilling);
	o = json_pack("{s:s, s:s, s:b, s:i, s:i, s:o?, s:b, s:b, "
		      "s:{s:b, s:I, s:I, s:I, s:b}}",
	    "status", ok ? "ok" : "degraded", "role",
	    ha_is_passive(srv->ha) ? "passive" : "active", "database", v >= 0,
	    "schema_version", v >= 0 ? v : 0, "schema_version_expected",
	    DB_SCHEMA_VERSION, "replication", repl, "writes", ok && writes,
	    "draining", atomic_load(&srv->draining) != 0, "deposit_cache",
	    "live", dlive, "deposits", (json_int_t)dn, "bytes",
	    (json_int_t)dbytes, "limit_bytes", (json_int_t)dlimit, "filling",
	    dfilling);
	/* Open connections per worker thread (worker.c balances them). */
	if (o != NULL && (conns = json_array()) != NULL) {
		for (i = 0; i < srv->nworkers; i++)
			json_array_append_new(conns,
			    json_integer(atomic_load(&srv->workers[i].nconns)));
		json_object_set_new(o, "connections", conns);
	}
	if (o != NULL) {
		json_t *st = backupstat_load(srv->conf->confdir);

		json_object_set_new(
		    o, "backup", backupstat_health(st, (long long)time(NULL)));
		json_decref(st);
	}
	if (o == NULL) {
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	http_reply_json(req, ok ? 200 : 503, o);
	json_decref(o);
}
