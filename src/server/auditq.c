/*
 * auditq.c - group commit of the audit rows of deposit reads.
 *
 * A read is answered only once its audit_log row has committed ("no access
 * without its audit row"), but one commit per read would block the
 * worker's event loop for every flush and cap reads at what the disk
 * flushes one by one.  So a worker hands its finished answer and the row
 * to this queue and goes on serving; one thread inserts every read row
 * waiting in one statement (one transaction, one flush; like audit.c's
 * rows, synchronous_commit local: an audit row alone never waits for the
 * synchronous standby) and gives each answer back to its worker's event
 * loop, which sends it.  When the batch fails (the database became
 * read-only, a promotion or demotion in between, or any error) each of
 * its rows goes through audit() there instead, which journals on a
 * passive, and a row that cannot be kept anywhere makes its answer a 503.
 * A passive server does not queue at all (audit() journals).
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

#define AUDITQ_BATCH_MAX 500 /* rows per INSERT */

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

/* Run sql on the queue's connection (one more try if it broke); 0 if ok. */
static int
auditq_exec(struct auditq *q, const char *sql, int nparams, const Oid *types,
    const char *const *values, const int *lengths, const int *formats)
{
	PGresult *res = NULL;
	char err[512];
	int try, ret = -1;

	for (try = 0; try < 2; try++) {
		if (q->db != NULL && PQstatus(q->db) != CONNECTION_OK)
			PQreset(q->db);
		if (q->db == NULL &&
		    (q->db = db_connect(q->srv->conf, err, sizeof(err))) ==
			NULL) {
			log_warnx("audit queue: database: %s", err);
			return -1;
		}
		res = PQexecParams(
		    q->db, sql, nparams, types, values, lengths, formats, 0);
		if (PQresultStatus(res) == PGRES_COMMAND_OK) {
			ret = 0;
			break;
		}
		/* A broken connection gets one more try; an error does not. */
		if (PQstatus(q->db) == CONNECTION_OK) {
			log_warnx("audit queue: %s", db_error(res, q->db));
			break;
		}
		PQclear(res);
		res = NULL;
		if (try == 1)
			log_warnx("audit queue: connection lost");
	}
	PQclear(res);
	return ret;
}

/* Append v to a PostgreSQL array literal ("..." quoted, or NULL). */
static size_t
array_add(char *buf, size_t off, size_t cap, const char *v, int first)
{
	if (!first && off < cap)
		buf[off++] = ',';
	if (v == NULL || *v == '\0') {
		off += (size_t)snprintf(
		    buf + off, cap > off ? cap - off : 0, "NULL");
		return off;
	}
	if (off < cap)
		buf[off++] = '"';
	for (; *v && off + 2 < cap; v++) {
		if (*v == '"' || *v == '\\')
			buf[off++] = '\\';
		buf[off++] = *v;
	}
	if (off < cap)
		buf[off++] = '"';
	return off;
}

/*
 * The read rows of the batch in one INSERT of four arrays (one short
 * statement whatever the batch size: parsing n-row VALUES was what
 * PostgreSQL spent most on); 0 when committed.
 */
static int
auditq_insert_reads(struct auditq *q, struct auditq_item *batch, int n)
{
	char *arr[4] = {NULL, NULL, NULL, NULL};
	const char *params[4];
	size_t cap = 16 + (size_t)n * 2 * 136, off[4] = {1, 1, 1, 1};
	struct auditq_item *it;
	int i, k, ret = -1;

	for (k = 0; k < 4; k++) {
		if ((arr[k] = malloc(cap)) == NULL)
			goto out;
		arr[k][0] = '{';
	}
	for (i = 0, it = batch; i < n; i++, it = it->next) {
		off[0] = array_add(arr[0], off[0], cap, it->actor, i == 0);
		off[1] = array_add(arr[1], off[1], cap, it->org, i == 0);
		off[2] = array_add(arr[2], off[2], cap, it->object, i == 0);
		off[3] = array_add(arr[3], off[3], cap, it->remote, i == 0);
	}
	for (k = 0; k < 4; k++) {
		if (off[k] + 2 > cap)
			goto out;
		arr[k][off[k]] = '}';
		arr[k][off[k] + 1] = '\0';
		params[k] = arr[k];
	}
	ret = auditq_exec(q,
	    "INSERT INTO audit_log (actor, org, action, object, remote_addr, "
	    "result) SELECT a, o, 'deposit_read', b, r, 'ok' FROM "
	    "unnest($1::text[], $2::text[], $3::text[], $4::text[]) "
	    "AS t (a, o, b, r), (SELECT set_config('synchronous_commit', "
	    "'local', true)) s",
	    4, NULL, params, NULL, NULL);
out:
	for (k = 0; k < 4; k++)
		free(arr[k]);
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
		auditq_deliver(batch, auditq_insert_reads(q, batch, n) == 0);
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

/* A new item for w's request with its audit fields; NULL when out of memory. */
static struct auditq_item *
item_new(struct worker *w, struct evhttp_request *req, const char *actor,
    const char *org, const char *object, const char *remote)
{
	struct auditq_item *it;

	/* A passive's rows go to its journal (audit.c), not this queue. */
	if (w->srv->auditq == NULL || ha_is_passive(w->srv) ||
	    (it = calloc(1, sizeof(*it))) == NULL)
		return NULL;
	it->w = w;
	it->req = req;
	snprintf(it->actor, sizeof(it->actor), "%s", actor);
	snprintf(it->org, sizeof(it->org), "%s", org);
	snprintf(it->object, sizeof(it->object), "%s", object);
	snprintf(it->remote, sizeof(it->remote), "%s", remote ? remote : "");
	return it;
}

/* Queue it, taking over body. */
static void
item_push(struct auditq *q, struct auditq_item *it, char *body, size_t len)
{
	it->body = body;
	it->len = len;
	pthread_mutex_lock(&q->mtx);
	*q->tail = it;
	q->tail = &it->next;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->mtx);
}

int
auditq_read(struct worker *w, struct evhttp_request *req, const char *actor,
    const char *org, const char *object, const char *remote, char *body,
    size_t len)
{
	struct auditq_item *it;

	if ((it = item_new(w, req, actor, org, object, remote)) == NULL)
		return -1;
	item_push(w->srv->auditq, it, body, len);
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
		/* The batch failed: this row alone, the way audit.c keeps it.
		 */
		if (!it->ok)
			it->ok = audit(w, it->actor, it->org, "deposit_read",
				     it->object, it->remote, "ok") == 0;
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
