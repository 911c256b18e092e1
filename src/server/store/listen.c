/*
 * listen.c - PostgreSQL's LISTEN/NOTIFY, which keeps the server's caches
 * exact: one thread holds a connection that LISTENs on their channels and
 * hands each notification to its channel's function as it arrives.
 *
 * A cache may be used only while that connection is up and listening:
 * before LISTEN succeeds, after the connection breaks, and until it is
 * back (when the caches are emptied: what changed meanwhile is unknown),
 * each channel is told it is not live.  On a passive server (a streaming
 * replica) NOTIFY is not replicated: the replica's own changes cannot
 * happen (it is read-only) and the primary's do not reach its listeners,
 * so a database in recovery is not listened to at all.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "int.h"
#include "log.h"

#define LISTEN_RETRY_MSECS 1000
#define LISTEN_MAX_CHANNELS 4

struct store_listener {
	const struct kt_conf *conf;
	struct store_channel ch[LISTEN_MAX_CHANNELS];
	int n;
	int stop_pipe[2];
	pthread_t thread;
};

/* LISTEN on every channel, in one statement: 0, or -1 (logged). */
static int
listen_on(PGconn *db, const char *const *names, int n)
{
	char sql[256];
	PGresult *res;
	size_t off = 0;
	int i, ret = 0;

	/* Channel names are the server's own constants. */
	for (i = 0; i < n; i++)
		off += (size_t)snprintf(sql + off,
		    off < sizeof(sql) ? sizeof(sql) - off : 0, "%sLISTEN %s",
		    i ? "; " : "", names[i]);
	res = PQexec(db, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_warnx("%s: %s", sql, store_error(res, db));
		ret = -1;
	}
	PQclear(res);
	return ret;
}

PGconn *
store_listen_conn(const struct kt_conf *conf, const char *channel)
{
	char err[512];
	PGconn *db;

	if ((db = db_connect(conf, err, sizeof(err))) == NULL) {
		log_warnx("LISTEN %s: database: %s", channel, err);
		return NULL;
	}
	if (listen_on(db, &channel, 1) == -1) {
		PQfinish(db);
		return NULL;
	}
	return db;
}

/* Connect and LISTEN; NULL while the caches must stay off. */
static PGconn *
listener_connect(struct store_listener *l)
{
	const char *names[LISTEN_MAX_CHANNELS];
	char err[512];
	PGconn *db;
	int i;

	if ((db = db_connect(l->conf, err, sizeof(err))) == NULL)
		return NULL;
	/* A replica gets no notifications of the primary's changes. */
	for (i = 0; i < l->n; i++)
		names[i] = l->ch[i].name;
	if (db_is_standby(db) != 0 || listen_on(db, names, l->n) == -1) {
		PQfinish(db);
		return NULL;
	}
	return db;
}

static void
listener_live(struct store_listener *l, int on)
{
	int i;

	for (i = 0; i < l->n; i++)
		l->ch[i].live(l->ch[i].arg, on);
}

/* Wait for fd (if any) or the stop pipe: 1 when told to stop. */
static int
listener_wait(struct store_listener *l, int fd, int msecs)
{
	struct pollfd p[2] = {{l->stop_pipe[0], POLLIN, 0}, {fd, POLLIN, 0}};

	poll(p, fd >= 0 ? 2 : 1, msecs);
	return (p[0].revents & POLLIN) != 0;
}

static void *
listener_main(void *arg)
{
	struct store_listener *l = arg;
	PGconn *db = NULL;
	PGnotify *nt;
	int i;

	for (;;) {
		if (db == NULL) {
			if ((db = listener_connect(l)) == NULL) {
				if (listener_wait(l, -1, LISTEN_RETRY_MSECS))
					break;
				continue;
			}
			listener_live(l, 1);
			log_debug("caches on: listening to the database");
		}
		if (listener_wait(l, PQsocket(db), -1))
			break;
		if (PQconsumeInput(db) == 0 || PQstatus(db) != CONNECTION_OK) {
			listener_live(l, 0);
			log_warnx("client and deposit caches off: the LISTEN "
				  "connection broke; every request reads the "
				  "database");
			PQfinish(db);
			db = NULL;
			continue;
		}
		while ((nt = PQnotifies(db)) != NULL) {
			for (i = 0; i < l->n; i++)
				if (strcmp(nt->relname, l->ch[i].name) == 0)
					l->ch[i].fn(l->ch[i].arg, nt->extra);
			PQfreemem(nt);
		}
	}
	listener_live(l, 0);
	PQfinish(db);
	return NULL;
}

struct store_listener *
store_listen_start(
    const struct kt_conf *conf, const struct store_channel *ch, int n)
{
	struct store_listener *l;

	if (n > LISTEN_MAX_CHANNELS || (l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->conf = conf;
	memcpy(l->ch, ch, (size_t)n * sizeof(*ch));
	l->n = n;
	if (pipe(l->stop_pipe) == -1) {
		free(l);
		return NULL;
	}
	if (pthread_create(&l->thread, NULL, listener_main, l) != 0) {
		close(l->stop_pipe[0]);
		close(l->stop_pipe[1]);
		free(l);
		return NULL;
	}
	return l;
}

void
store_listen_stop(struct store_listener *l)
{
	if (l == NULL)
		return;
	(void)!write(l->stop_pipe[1], "x", 1);
	pthread_join(l->thread, NULL);
	close(l->stop_pipe[0]);
	close(l->stop_pipe[1]);
	free(l);
}
