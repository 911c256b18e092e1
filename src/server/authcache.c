/*
 * authcache.c - the clients' state, org and sealed signing secret, cached
 * so that a signed request does not wait on PostgreSQL for its lookup.
 *
 * Kept exact by PostgreSQL's LISTEN/NOTIFY: schema migration 5 has
 * triggers that notify channel kt_clients with the fingerprint of every
 * client row inserted, updated or deleted (keytrustee-orgtool
 * disable-client, enable-client, re-registration, a psql DELETE), and with
 * "*" for a TRUNCATE, any change to orgs and any DDL (a restore from a
 * pg_dump drops and re-creates the tables).  One thread holds a connection
 * that LISTENs and drops the named entry (or all of them) as each
 * notification arrives.  The cache is used only while that connection is
 * up and listening: before LISTEN succeeds, after it breaks, and until it
 * is back (and everything is dropped), every lookup goes to the database.
 * A lookup that raced a notification (the generation changed while it
 * read the row) is not cached.
 *
 * On a passive server (a streaming replica) NOTIFY is not replicated: the
 * replica's own changes cannot happen (it is read-only) and the primary's
 * do not reach its listeners, so a server whose database is in recovery
 * must not use the cache (authcache_live() is 0 there; see the listener).
 */
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "server.h"
#include "util.h"

#define AC_BUCKETS 16384
#define AC_MAX 200000 /* entries; beyond this everything is dropped */
#define AC_CHANNEL "kt_clients"
#define DC_CHANNEL "kt_deposits" /* depcache.c's, on this connection */

struct ac_node {
	struct ac_node *next;
	struct authcache_entry e;
};

struct authcache {
	struct server *srv;
	pthread_rwlock_t lock;
	struct ac_node *b[AC_BUCKETS];
	size_t n;
	atomic_ulong gen; /* bumped by every invalidation */
	atomic_int live;  /* listening, and the cache may be used */
	int stop_pipe[2];
	pthread_t thread;
};

static unsigned
ac_hash(const char *fpr)
{
	return str_hash(fpr) % AC_BUCKETS;
}

static void
ac_node_free(struct ac_node *n)
{
	OPENSSL_cleanse(&n->e, sizeof(n->e));
	free(n);
}

/* Under the write lock. */
static void
ac_clear(struct authcache *ac)
{
	struct ac_node *n, *next;
	size_t i;

	for (i = 0; i < AC_BUCKETS; i++) {
		for (n = ac->b[i]; n != NULL; n = next) {
			next = n->next;
			ac_node_free(n);
		}
		ac->b[i] = NULL;
	}
	ac->n = 0;
}

static void
ac_invalidate(struct authcache *ac, const char *fpr)
{
	struct ac_node **pp, *n;

	pthread_rwlock_wrlock(&ac->lock);
	atomic_fetch_add(&ac->gen, 1);
	if (fpr == NULL || strcmp(fpr, "*") == 0)
		ac_clear(ac);
	else
		for (pp = &ac->b[ac_hash(fpr)]; (n = *pp) != NULL;
		     pp = &n->next)
			if (strcmp(n->e.fpr, fpr) == 0) {
				*pp = n->next;
				ac_node_free(n);
				ac->n--;
				break;
			}
	pthread_rwlock_unlock(&ac->lock);
}

int
authcache_get(
    struct authcache *ac, const char *fpr, struct authcache_entry *out)
{
	struct ac_node *n;
	int ret = -1;

	if (ac == NULL || !atomic_load(&ac->live))
		return -1;
	pthread_rwlock_rdlock(&ac->lock);
	for (n = ac->b[ac_hash(fpr)]; n != NULL; n = n->next)
		if (strcmp(n->e.fpr, fpr) == 0) {
			*out = n->e;
			ret = 0;
			break;
		}
	pthread_rwlock_unlock(&ac->lock);
	return ret;
}

unsigned long
authcache_gen(struct authcache *ac)
{
	return ac != NULL ? atomic_load(&ac->gen) : 0;
}

void
authcache_put(
    struct authcache *ac, const struct authcache_entry *e, unsigned long gen)
{
	struct ac_node *n;
	unsigned h;

	if (ac == NULL || !atomic_load(&ac->live) ||
	    (n = calloc(1, sizeof(*n))) == NULL)
		return;
	n->e = *e;
	h = ac_hash(e->fpr);
	pthread_rwlock_wrlock(&ac->lock);
	/* Only what no invalidation overtook since it was read. */
	if (atomic_load(&ac->gen) != gen || !atomic_load(&ac->live)) {
		pthread_rwlock_unlock(&ac->lock);
		ac_node_free(n);
		return;
	}
	if (ac->n >= AC_MAX)
		ac_clear(ac);
	n->next = ac->b[h];
	ac->b[h] = n;
	ac->n++;
	pthread_rwlock_unlock(&ac->lock);
}

/* 1 when the stop pipe is readable. */
static int
ac_wait(struct authcache *ac, int fd, int msecs)
{
	struct pollfd p[2] = {{ac->stop_pipe[0], POLLIN, 0}, {fd, POLLIN, 0}};

	poll(p, fd >= 0 ? 2 : 1, msecs);
	return (p[0].revents & POLLIN) != 0;
}

/* Connect and LISTEN; NULL when the cache must stay off for now. */
static PGconn *
ac_listen(struct authcache *ac)
{
	char err[512];
	PGconn *db;
	PGresult *res;
	int ok;

	if ((db = db_connect(ac->srv->conf, err, sizeof(err))) == NULL)
		return NULL;
	/* A replica gets no notifications of the primary's changes. */
	res = PQexec(db, "SELECT pg_is_in_recovery()");
	ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    strcmp(PQgetvalue(res, 0, 0), "f") == 0;
	PQclear(res);
	if (ok) {
		res = PQexec(db, "LISTEN " AC_CHANNEL "; LISTEN " DC_CHANNEL);
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
	}
	if (!ok) {
		PQfinish(db);
		return NULL;
	}
	return db;
}

/* One notification, to this cache or the deposit cache. */
static void
ac_notified(struct authcache *ac, const PGnotify *nt)
{
	struct depcache *dc = ac->srv->depcache;

	if (strcmp(nt->relname, DC_CHANNEL) != 0) {
		ac_invalidate(ac, nt->extra);
		return;
	}
	/* A uuid is dropped; "*" empties and "+" reads the table in. */
	if (strcmp(nt->extra, "*") == 0)
		depcache_flush(dc);
	else if (strcmp(nt->extra, "+") != 0) {
		depcache_drop(dc, nt->extra);
		return;
	}
	depcache_fill(dc);
}

static void *
ac_main(void *arg)
{
	struct authcache *ac = arg;
	PGconn *db = NULL;
	PGnotify *nt;

	for (;;) {
		if (db == NULL) {
			if ((db = ac_listen(ac)) == NULL) {
				if (ac_wait(ac, -1, 1000))
					break;
				continue;
			}
			/* What changed while not listening is unknown. */
			ac_invalidate(ac, "*");
			atomic_store(&ac->live, 1);
			depcache_set_live(ac->srv->depcache, 1);
			log_debug(
			    "client and deposit caches on (LISTEN %s, %s)",
			    AC_CHANNEL, DC_CHANNEL);
		}
		if (ac_wait(ac, PQsocket(db), -1))
			break;
		if (PQconsumeInput(db) == 0 || PQstatus(db) != CONNECTION_OK) {
			atomic_store(&ac->live, 0);
			ac_invalidate(ac, "*");
			depcache_set_live(ac->srv->depcache, 0);
			log_warnx("client and deposit caches off: the LISTEN "
				  "connection broke; every request reads the "
				  "database");
			PQfinish(db);
			db = NULL;
			continue;
		}
		while ((nt = PQnotifies(db)) != NULL) {
			ac_notified(ac, nt);
			PQfreemem(nt);
		}
	}
	atomic_store(&ac->live, 0);
	depcache_set_live(ac->srv->depcache, 0);
	PQfinish(db);
	return NULL;
}

struct authcache *
authcache_start(struct server *srv)
{
	struct authcache *ac;

	if ((ac = calloc(1, sizeof(*ac))) == NULL)
		return NULL;
	ac->srv = srv;
	pthread_rwlock_init(&ac->lock, NULL);
	if (pipe(ac->stop_pipe) == -1) {
		free(ac);
		return NULL;
	}
	if (pthread_create(&ac->thread, NULL, ac_main, ac) != 0) {
		close(ac->stop_pipe[0]);
		close(ac->stop_pipe[1]);
		free(ac);
		return NULL;
	}
	return ac;
}

void
authcache_stop(struct authcache *ac)
{
	if (ac == NULL)
		return;
	(void)!write(ac->stop_pipe[1], "x", 1);
	pthread_join(ac->thread, NULL);
	close(ac->stop_pipe[0]);
	close(ac->stop_pipe[1]);
	pthread_rwlock_wrlock(&ac->lock);
	ac_clear(ac);
	pthread_rwlock_unlock(&ac->lock);
	pthread_rwlock_destroy(&ac->lock);
	free(ac);
}
