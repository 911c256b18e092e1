/*
 * auditq.c - group commit of the audit rows of deposit reads.
 *
 * A read is answered only once its audit_log row has committed ("no access
 * without its audit row"), but one synchronous commit per read would cap
 * reads at what the disk flushes one by one, and would block the worker's
 * event loop for every flush.  So a worker hands its finished answer and
 * the row to this queue and goes on serving; one thread inserts every row
 * waiting in one multi-row INSERT (one transaction, one flush) and gives
 * each answer back to its worker's event loop, which sends it — or a 503
 * when the insert failed, so nothing is read without its row.
 */
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "server.h"
#include "util.h"

#define AUDITQ_BATCH_MAX 500 /* rows per INSERT (4 parameters each) */

struct auditq_item {
	struct auditq_item *next;
	struct worker *w;
	struct evhttp_request *req;
	char *body; /* the answer, owned */
	size_t len;
	int ok;
	char actor[PGP_FPR_LEN + 1];
	char org[72];
	char object[CRYPTO_UUID_LEN + 1];
	char remote[64];
};

struct auditq {
	struct server *srv;
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	struct auditq_item *head, **tail;
	int stop;
	pthread_t thread;
	PGconn *db;
};

static void
item_free(struct auditq_item *it)
{
	if (it->body != NULL)
		freezero(it->body, it->len);
	free(it);
}

/* One INSERT for the batch; 0 when it committed. */
static int
auditq_insert(struct auditq *q, struct auditq_item *batch, int n)
{
	const char **params = NULL;
	char *sql = NULL, err[512];
	size_t cap = 160 + (size_t)n * 64, off;
	struct auditq_item *it;
	PGresult *res = NULL;
	int i, ret = -1, try;

	if ((params = calloc((size_t)n * 4, sizeof(*params))) == NULL ||
	    (sql = malloc(cap)) == NULL)
		goto out;
	off = (size_t)snprintf(sql, cap,
	    "INSERT INTO audit_log (actor, org, "
	    "action, object, remote_addr, result) VALUES ");
	for (i = 0, it = batch; i < n; i++, it = it->next) {
		off += (size_t)snprintf(sql + off, cap - off,
		    "%s($%d, $%d, 'deposit_read', $%d, $%d, 'ok')",
		    i ? ", " : "", 4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 4);
		params[4 * i] = it->actor;
		params[4 * i + 1] = it->org;
		params[4 * i + 2] = it->object;
		params[4 * i + 3] = *it->remote ? it->remote : NULL;
	}
	for (try = 0; try < 2; try++) {
		if (q->db != NULL && PQstatus(q->db) != CONNECTION_OK)
			PQreset(q->db);
		if (q->db == NULL &&
		    (q->db = db_connect(q->srv->conf, err, sizeof(err))) ==
			NULL) {
			log_warnx("audit queue: database: %s", err);
			goto out;
		}
		res = PQexecParams(
		    q->db, sql, 4 * n, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_COMMAND_OK) {
			ret = 0;
			goto out;
		}
		/* A broken connection gets one more try; an error does not. */
		if (PQstatus(q->db) == CONNECTION_OK) {
			log_warnx("audit_log: %s", db_error(res, q->db));
			goto out;
		}
		PQclear(res);
		res = NULL;
	}
	log_warnx("audit_log: connection lost");
out:
	PQclear(res);
	free(params);
	free(sql);
	return ret;
}

static void
auditq_deliver(struct auditq_item *batch, int ok)
{
	struct auditq_item *it, *next;

	for (it = batch; it != NULL; it = next) {
		struct worker *w = it->w;

		next = it->next;
		it->ok = ok;
		it->next = NULL;
		pthread_mutex_lock(&w->done_mtx);
		*w->done_tail = it;
		w->done_tail = &it->next;
		pthread_mutex_unlock(&w->done_mtx);
		event_active(w->done_ev, EV_READ, 0);
	}
}

static void *
auditq_main(void *arg)
{
	struct auditq *q = arg;
	struct auditq_item *batch, *it;
	int n;

	for (;;) {
		pthread_mutex_lock(&q->mtx);
		while (q->head == NULL && !q->stop)
			pthread_cond_wait(&q->cond, &q->mtx);
		if (q->head == NULL) {
			pthread_mutex_unlock(&q->mtx);
			break;
		}
		batch = q->head;
		for (n = 1, it = batch;
		     n < AUDITQ_BATCH_MAX && it->next != NULL; n++)
			it = it->next;
		q->head = it->next;
		if (q->head == NULL)
			q->tail = &q->head;
		it->next = NULL;
		pthread_mutex_unlock(&q->mtx);
		auditq_deliver(batch, auditq_insert(q, batch, n) == 0);
	}
	return NULL;
}

struct auditq *
auditq_start(struct server *srv)
{
	struct auditq *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->srv = srv;
	q->tail = &q->head;
	pthread_mutex_init(&q->mtx, NULL);
	pthread_cond_init(&q->cond, NULL);
	if (pthread_create(&q->thread, NULL, auditq_main, q) != 0) {
		free(q);
		return NULL;
	}
	return q;
}

/* Commits what is queued, then stops. */
void
auditq_stop(struct auditq *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mtx);
	q->stop = 1;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->mtx);
	pthread_join(q->thread, NULL);
	PQfinish(q->db);
	pthread_mutex_destroy(&q->mtx);
	pthread_cond_destroy(&q->cond);
	free(q);
}

int
auditq_read(struct worker *w, struct evhttp_request *req, const char *actor,
    const char *org, const char *object, const char *remote, char *body,
    size_t len)
{
	struct auditq *q = w->srv->auditq;
	struct auditq_item *it;

	if (q == NULL || (it = calloc(1, sizeof(*it))) == NULL)
		return -1;
	it->w = w;
	it->req = req;
	snprintf(it->actor, sizeof(it->actor), "%s", actor);
	snprintf(it->org, sizeof(it->org), "%s", org);
	snprintf(it->object, sizeof(it->object), "%s", object);
	snprintf(it->remote, sizeof(it->remote), "%s", remote ? remote : "");
	it->body = body;
	it->len = len;
	pthread_mutex_lock(&q->mtx);
	*q->tail = it;
	q->tail = &it->next;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->mtx);
	return 0;
}

/* The worker's side: send the answers whose rows are in (or a 503). */
void
auditq_done_cb(int fd, short what, void *arg)
{
	struct worker *w = arg;
	struct auditq_item *list, *it, *next;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&w->done_mtx);
	list = w->done_head;
	w->done_head = NULL;
	w->done_tail = &w->done_head;
	pthread_mutex_unlock(&w->done_mtx);
	for (it = list; it != NULL; it = next) {
		next = it->next;
		if (it->ok)
			http_reply(it->req, HTTP_OK, "application/json",
			    it->body, it->len);
		else
			http_reply_error(it->req, 503, "database",
			    "the database is not available");
		item_free(it);
	}
}

/* Items handed back after the loop stopped: their requests are gone. */
void
auditq_done_drop(struct worker *w)
{
	struct auditq_item *it, *next;

	for (it = w->done_head; it != NULL; it = next) {
		next = it->next;
		item_free(it);
	}
	w->done_head = NULL;
	w->done_tail = &w->done_head;
}
