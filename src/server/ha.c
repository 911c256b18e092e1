/*
 * ha.c - active/passive high availability.  A monitor thread asks the
 * server's own PostgreSQL every HA_CHECK_MSECS whether it is a standby
 * (pg_is_in_recovery(): then this server is the passive one) and how
 * replication stands (pg_stat_replication on the active,
 * pg_stat_wal_receiver on the passive), and caches the answer; requests
 * read the cache under a mutex and never query it themselves.
 *
 * Writes need both servers (the guide): a passive refuses them with 503
 * naming the active; the active refuses them at once while synchronous
 * replication is configured and no synchronous standby streams.  The cache
 * may be up to HA_CHECK_MSECS old, so each write statement also carries
 * HA_SYNC_OK (see server.h) and writes nothing when it is false, and
 * ha_exec bounds the wait of a commit for a standby that vanished in
 * between: the commit is cancelled and the write refused, never hung.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "server.h"
#include "util.h"

#define HA_CHECK_MSECS 200
#define HA_COMMIT_MSECS 2000
#define HA_JOURNAL "audit-passive.log"

static long long
ha_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The host of a primary_conninfo (never its password). */
static void
ha_conninfo_host(const char *conninfo, char *out, size_t outlen)
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

/* One check; fills st, returns -1 when the database did not answer. */
static int
ha_check(PGconn *db, struct ha_state *st)
{
	PGresult *res;
	int ret = -1;

	res = PQexec(db, "SELECT pg_is_in_recovery()");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		goto out;
	st->passive = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (st->passive)
		res = PQexec(db,
		    "SELECT coalesce((SELECT status FROM "
		    "pg_stat_wal_receiver), "
		    "'stopped'), "
		    "coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), "
		    "pg_last_wal_replay_lsn()), 0)::bigint, "
		    "CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM "
		    "pg_last_wal_replay_lsn() THEN 0 ELSE "
		    "coalesce(extract(epoch "
		    "FROM now() - pg_last_xact_replay_timestamp()), 0) "
		    "END::float8, current_setting('primary_conninfo')");
	else
		res = PQexec(db,
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
	if (st->passive) {
		st->receiving = strcmp(PQgetvalue(res, 0, 0), "streaming") == 0;
		st->sync_required = st->sync_streaming = st->standbys = 0;
		st->lag_bytes = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		st->lag_seconds = strtod(PQgetvalue(res, 0, 2), NULL);
		ha_conninfo_host(PQgetvalue(res, 0, 3), st->active_host,
		    sizeof(st->active_host));
		explicit_bzero(
		    PQgetvalue(res, 0, 3), strlen(PQgetvalue(res, 0, 3)));
	} else {
		st->receiving = 0;
		st->active_host[0] = '\0';
		st->sync_required = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		st->standbys = atoi(PQgetvalue(res, 0, 1));
		st->sync_streaming = atoi(PQgetvalue(res, 0, 2)) > 0;
		st->lag_bytes = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
		st->lag_seconds = strtod(PQgetvalue(res, 0, 4), NULL);
	}
	ret = 0;
out:
	PQclear(res);
	return ret;
}

/*
 * Promoted: the reads this server served as the passive go from its
 * journal into audit_log, in one transaction, and the journal is renamed
 * aside.  Under journal_mtx, so no worker appends meanwhile.
 */
static void
ha_journal_import(struct server *srv, PGconn *db)
{
	static const char *const keys[] = {
	    "at", "actor", "org", "action", "object", "remote_addr", "result"};
	char path[PATH_MAX], aside[PATH_MAX + 64], stamp[32];
	char *text = NULL, *line, *save = NULL;
	const char *params[7];
	PGresult *res = NULL;
	json_t *o;
	struct tm tm;
	time_t now = time(NULL);
	size_t len, i;
	int n = 0, ok = 1;

	pthread_mutex_lock(&srv->journal_mtx);
	if (srv->journal_fd != -1)
		close(srv->journal_fd);
	srv->journal_fd = -1;
	if (path_join(path, sizeof(path), srv->conf->confdir, HA_JOURNAL) ==
		-1 ||
	    !file_exists(path))
		goto out;
	if (file_read(path, 256 * 1024 * 1024, &text, &len) == -1) {
		log_warn("%s", path);
		goto out;
	}
	res = PQexec(db, "BEGIN; SET LOCAL synchronous_commit = local");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_warnx("audit journal: %s", PQerrorMessage(db));
		goto out;
	}
	for (line = strtok_r(text, "\n", &save); line != NULL && ok;
	     line = strtok_r(NULL, "\n", &save)) {
		if ((o = json_loads(line, 0, NULL)) == NULL)
			continue; /* a torn last line */
		for (i = 0; i < 7; i++)
			params[i] =
			    json_string_value(json_object_get(o, keys[i]));
		if (params[0] != NULL && params[3] != NULL &&
		    params[6] != NULL) {
			PQclear(res);
			res = PQexecParams(db,
			    "INSERT INTO audit_log (at, actor, org, action, "
			    "object, remote_addr, result) VALUES "
			    "($1::timestamptz, $2, $3, $4, $5, $6, $7)",
			    7, NULL, params, NULL, NULL, 0);
			ok = PQresultStatus(res) == PGRES_COMMAND_OK;
			n += ok;
		}
		json_decref(o);
	}
	PQclear(res);
	res = PQexec(db, ok ? "COMMIT" : "ROLLBACK");
	if (!ok || PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_warnx("audit journal %s not imported: %s", path,
		    PQerrorMessage(db));
		goto out;
	}
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(aside, sizeof(aside), "%s.imported-%s", path, stamp);
	if (rename(path, aside) == -1)
		log_warn("rename %s", path);
	log_info("HA: imported %d audit rows of the passive's journal into "
		 "audit_log (kept as %s)",
	    n, aside);
out:
	PQclear(res);
	free(text);
	pthread_mutex_unlock(&srv->journal_mtx);
}

/* Check once with the monitor's connection and publish the result. */
static void
ha_refresh(struct server *srv, PGconn **db)
{
	struct ha_state st, cur;
	char err[512];
	int was_known, was_passive, ok = 0;

	pthread_mutex_lock(&srv->ha_mtx);
	st = srv->ha;
	pthread_mutex_unlock(&srv->ha_mtx);
	was_known = st.known;
	was_passive = st.passive;
	if (*db != NULL && PQstatus(*db) != CONNECTION_OK)
		PQreset(*db);
	if (*db == NULL)
		*db = db_connect(srv->conf, err, sizeof(err));
	cur = st;
	if (*db != NULL && PQstatus(*db) == CONNECTION_OK &&
	    ha_check(*db, &cur) == 0) {
		ok = 1;
		st = cur; /* a check that failed halfway changes nothing */
	}
	st.db_up = ok;
	if (ok)
		st.known = 1; /* when down, the last known role stays */
	st.checked_ms = ha_now_ms();
	pthread_mutex_lock(&srv->ha_mtx);
	srv->ha = st;
	pthread_mutex_unlock(&srv->ha_mtx);
	if (ok && (!was_known || was_passive != st.passive))
		log_info("HA: this server is the %s one",
		    st.passive ? "passive" : "active");
	/* Promoted now, or started as the active with a journal left over. */
	if (ok && !st.passive && (!was_known || was_passive))
		ha_journal_import(srv, *db);
}

static void *
ha_main(void *arg)
{
	struct server *srv = arg;
	struct timespec ts = {0, HA_CHECK_MSECS * 1000000L};
	PGconn *db = NULL;

	while (!atomic_load(&srv->ha_stop)) {
		nanosleep(&ts, NULL);
		ha_refresh(srv, &db);
	}
	PQfinish(db);
	return NULL;
}

int
ha_start(struct server *srv, char *err, size_t errlen)
{
	PGconn *db = NULL;
	int e;

	pthread_mutex_init(&srv->ha_mtx, NULL);
	pthread_mutex_init(&srv->journal_mtx, NULL);
	srv->journal_fd = -1;
	if (srv->conf->db_connect != NULL) {
		/* The role is known before the first request when it can be. */
		ha_refresh(srv, &db);
		PQfinish(db);
	}
	if ((e = pthread_create(&srv->ha_thread, NULL, ha_main, srv)) != 0) {
		snprintf(err, errlen, "pthread_create: %s", strerror(e));
		return -1;
	}
	return 0;
}

void
ha_stop(struct server *srv)
{
	atomic_store(&srv->ha_stop, 1);
	pthread_join(srv->ha_thread, NULL);
	if (srv->journal_fd != -1)
		close(srv->journal_fd);
	srv->journal_fd = -1;
}

void
ha_snapshot(struct server *srv, struct ha_state *out)
{
	pthread_mutex_lock(&srv->ha_mtx);
	*out = srv->ha;
	pthread_mutex_unlock(&srv->ha_mtx);
}

int
ha_is_passive(struct server *srv)
{
	struct ha_state st;

	ha_snapshot(srv, &st);
	return st.passive;
}

/* "https://HOST:PORT" of the active server, as the passive knows it. */
static void
ha_active_url(const struct server *srv, const struct ha_state *st, char *out,
    size_t outlen)
{
	if (st->active_host[0] == '\0' || st->active_host[0] == '/')
		snprintf(out, outlen, "unknown");
	else if (strchr(st->active_host, ':') != NULL)
		snprintf(out, outlen, "https://[%s]:%d", st->active_host,
		    srv->conf->port);
	else
		snprintf(out, outlen, "https://%s:%d", st->active_host,
		    srv->conf->port);
}

void
ha_refuse_no_sync(struct http_req *req)
{
	http_add_header(req, "Retry-After", "5");
	http_reply_error(req, 503, "no_sync_standby",
	    "writes need both Key Trustee Servers: the passive server is not "
	    "streaming, so this write is refused; reads still work");
}

int
ha_write_gate(struct worker *w, struct http_req *req)
{
	struct ha_state st;
	char url[300];
	json_t *o;

	ha_snapshot(w->srv, &st);
	if (st.passive) {
		ha_active_url(w->srv, &st, url, sizeof(url));
		o = json_pack("{s:s, s:s, s:s}", "error",
		    "this is the passive Key Trustee Server: it serves reads "
		    "only; send writes to the active server",
		    "code", "passive", "active", url);
		if (o == NULL) {
			http_reply_error(
			    req, HTTP_INTERNAL, "internal", "out of memory");
			return -1;
		}
		http_reply_json(req, 503, o);
		json_decref(o);
		return -1;
	}
	if (st.sync_required && !st.sync_streaming) {
		ha_refuse_no_sync(req);
		return -1;
	}
	return 0;
}

json_t *
ha_health(struct server *srv, int *writes)
{
	struct ha_state st;
	char url[300];
	json_t *r;

	ha_snapshot(srv, &st);
	if (st.passive) {
		ha_active_url(srv, &st, url, sizeof(url));
		*writes = 0;
		r = json_pack("{s:s, s:s, s:s, s:I, s:f}", "state",
		    st.receiving ? "streaming" : "disconnected", "active", url,
		    "active_host", st.active_host, "lag_bytes",
		    (json_int_t)st.lag_bytes, "lag_seconds", st.lag_seconds);
	} else {
		*writes = st.db_up && (!st.sync_required || st.sync_streaming);
		r = json_pack("{s:s, s:b, s:b, s:i, s:I, s:f}", "state",
		    st.standbys > 0
			? "streaming"
			: (st.sync_required ? "disconnected" : "none"),
		    "synchronous", st.sync_required, "synchronous_standby",
		    st.sync_streaming, "standbys", st.standbys, "lag_bytes",
		    (json_int_t)st.lag_bytes, "lag_seconds", st.lag_seconds);
	}
	if (r != NULL)
		json_object_set_new(r, "checked_ms_ago",
		    json_integer(ha_now_ms() - st.checked_ms));
	return r;
}

/* The result of the statement just sent on db, its wait bounded. */
static PGresult *
ha_wait(struct worker *w, PGconn *db, int *timed_out)
{
	long long deadline = ha_now_ms() + HA_COMMIT_MSECS, left;
	PGresult *res, *last = NULL;
	struct pollfd pfd;
	PGcancel *cancel;
	char err[256];

	pfd.fd = PQsocket(db);
	pfd.events = POLLIN;
	while (PQisBusy(db)) {
		left = deadline - ha_now_ms();
		if (left <= 0 && !*timed_out) {
			/*
			 * A commit waiting for a standby that went away: cancel
			 * the wait.  The row stays committed on the active and
			 * reaches the passive when it streams again, but the
			 * client is not told it succeeded.
			 */
			*timed_out = 1;
			log_warnx("worker %d: a write waited %d ms for the "
				  "synchronous standby; cancelled",
			    w->id, HA_COMMIT_MSECS);
			if ((cancel = PQgetCancel(db)) != NULL) {
				(void)PQcancel(cancel, err, sizeof(err));
				PQfreeCancel(cancel);
			}
			deadline = ha_now_ms() + HA_COMMIT_MSECS;
			continue;
		}
		if (left <= 0) {
			/* Not even the cancel came back: a new connection. */
			PQreset(db);
			return NULL;
		}
		if (poll(&pfd, 1, (int)left) == -1 && errno != EINTR)
			return NULL;
		if (!PQconsumeInput(db))
			break;
	}
	while ((res = PQgetResult(db)) != NULL) {
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
ha_exec(struct worker *w, PGconn *db, const char *sql, int n,
    const char *const *params, const int *lens, const int *fmts, int rfmt,
    int *timed_out)
{
	*timed_out = 0;
	if (!PQsendQueryParams(db, sql, n, NULL, params, lens, fmts, rfmt))
		return NULL;
	return ha_wait(w, db, timed_out);
}

PGresult *
ha_exec_prepared(struct worker *w, PGconn *db, const char *stmt, int n,
    const char *const *params, const int *lens, const int *fmts, int rfmt,
    int *timed_out)
{
	*timed_out = 0;
	if (!PQsendQueryPrepared(db, stmt, n, params, lens, fmts, rfmt))
		return NULL;
	return ha_wait(w, db, timed_out);
}

int
ha_journal(struct server *srv, const char *actor, const char *org,
    const char *action, const char *object, const char *remote,
    const char *result)
{
	char path[PATH_MAX], at[32], *line = NULL;
	struct tm tm;
	time_t now = time(NULL);
	json_t *o;
	size_t n;
	int ret = -1;

	gmtime_r(&now, &tm);
	strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
	o = json_pack("{s:s, s:s?, s:s?, s:s, s:s?, s:s?, s:s}", "at", at,
	    "actor", actor, "org", org, "action", action, "object", object,
	    "remote_addr", remote != NULL && *remote != '\0' ? remote : NULL,
	    "result", result);
	if (o == NULL || (line = json_dumps(o, JSON_COMPACT)) == NULL)
		goto out;
	pthread_mutex_lock(&srv->journal_mtx);
	if (srv->journal_fd == -1 &&
	    path_join(path, sizeof(path), srv->conf->confdir, HA_JOURNAL) == 0)
		srv->journal_fd = open(path,
		    O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		    0600);
	if (srv->journal_fd != -1) {
		n = strlen(line);
		line[n] = '\n'; /* one write(2) of the line and its newline */
		ret = write(srv->journal_fd, line, n + 1) == (ssize_t)(n + 1)
		    ? 0
		    : -1;
		line[n] = '\0';
	}
	pthread_mutex_unlock(&srv->journal_mtx);
	if (ret == -1)
		log_warn("%s/%s", srv->conf->confdir, HA_JOURNAL);
out:
	free(line);
	json_decref(o);
	return ret;
}
