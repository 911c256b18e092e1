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
	int ok;	    /* 1 committed, 0 failed, -1 refused (no sync standby) */
	int create; /* a new deposit (else a read) */
	/* a new deposit: its row, owned */
	char *name, *desc;
	unsigned char nonce[CRYPTO_NONCE_LEN];
	unsigned char *ct;
	size_t ctlen;
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
	free(it->name);
	free(it->desc);
	free(it->ct);
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

/*
 * New deposits with their audit rows, in one statement through ha_exec,
 * gated by HA_SYNC_OK and bounded in its wait for a synchronous standby
 * as api.c's single insert is: 1 committed, -1 refused (no synchronous
 * standby, or the wait timed out), 0 failed.
 */
static int
auditq_insert_deposits(struct auditq *q, struct auditq_item *batch, int n)
{
	const char **params = NULL;
	int *lens = NULL, *fmts = NULL;
	char *sql = NULL, err[512];
	size_t cap = 800 + (size_t)n * 160, off;
	struct auditq_item *it;
	PGresult *res = NULL;
	int i, k, timed_out = 0, ret = 0;

	if ((params = calloc((size_t)n * 8, sizeof(*params))) == NULL ||
	    (lens = calloc((size_t)n * 8, sizeof(*lens))) == NULL ||
	    (fmts = calloc((size_t)n * 8, sizeof(*fmts))) == NULL ||
	    (sql = malloc(cap)) == NULL)
		goto out;
	off = (size_t)snprintf(sql, cap,
	    "WITH v (uuid, owner, name, "
	    "description, nonce, content, org, remote) AS (VALUES ");
	for (i = 0, it = batch; i < n; i++, it = it->next) {
		k = 8 * i;
		/* Every parameter cast: its type is known, binary or not. */
		off += (size_t)snprintf(sql + off, cap - off,
		    "%s($%d::uuid, $%d::text, $%d::text, $%d::text, "
		    "$%d::bytea, $%d::bytea, $%d::text, $%d::text)",
		    i ? ", " : "", k + 1, k + 2, k + 3, k + 4, k + 5, k + 6,
		    k + 7, k + 8);
		params[k] = it->object;
		params[k + 1] = it->actor;
		params[k + 2] = it->name;
		params[k + 3] = it->desc;
		params[k + 4] = (const char *)it->nonce;
		lens[k + 4] = CRYPTO_NONCE_LEN;
		fmts[k + 4] = 1;
		params[k + 5] = (const char *)it->ct;
		lens[k + 5] = (int)it->ctlen;
		fmts[k + 5] = 1;
		params[k + 6] = it->org;
		params[k + 7] = *it->remote ? it->remote : NULL;
	}
	snprintf(sql + off, cap - off,
	    "), d AS (INSERT INTO deposits (uuid, "
	    "owner, name, description, nonce, content) SELECT uuid, owner, "
	    "name, description, nonce, content FROM v WHERE " DB_SERVER_ORIGIN
	    " AND " HA_SYNC_OK
	    " RETURNING uuid) "
	    "INSERT INTO audit_log (actor, org, action, object, remote_addr, "
	    "result) SELECT v.owner, v.org, 'deposit_create', v.uuid::text, "
	    "v.remote, 'ok' FROM v JOIN d USING (uuid)");
	if (q->db != NULL && PQstatus(q->db) != CONNECTION_OK)
		PQreset(q->db);
	if (q->db == NULL &&
	    (q->db = db_connect(q->srv->conf, err, sizeof(err))) == NULL) {
		log_warnx("audit queue: database: %s", err);
		goto out;
	}
	res = ha_exec(
	    batch->w, q->db, sql, 8 * n, params, lens, fmts, 0, &timed_out);
	if (timed_out) {
		ret = -1;
		goto out;
	}
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_warnx("deposit create: %s", db_error(res, q->db));
		goto out;
	}
	/* HA_SYNC_OK was false: the standby went away just now. */
	ret = strcmp(PQcmdTuples(res), "0") == 0 ? -1 : 1;
out:
	PQclear(res);
	free(params);
	free(lens);
	free(fmts);
	free(sql);
	return ret;
}

/* Split the batch into reads and new deposits; insert; hand back. */
static void
auditq_run(struct auditq *q, struct auditq_item *batch)
{
	struct auditq_item *reads = NULL, **rt = &reads, *deps = NULL;
	struct auditq_item **dt = &deps, *it, *next;
	int nr = 0, nd = 0, r;

	for (it = batch; it != NULL; it = next) {
		next = it->next;
		it->next = NULL;
		if (it->create) {
			*dt = it;
			dt = &it->next;
			nd++;
		} else {
			*rt = it;
			rt = &it->next;
			nr++;
		}
	}
	if (reads != NULL)
		auditq_deliver(reads, auditq_insert_reads(q, reads, nr) == 0);
	if (deps == NULL)
		return;
	r = auditq_insert_deposits(q, deps, nd);
	if (r != 0 || nd == 1) {
		auditq_deliver(deps, r);
		return;
	}
	/* One of them is refused: find which, one by one. */
	for (it = deps; it != NULL; it = next) {
		next = it->next;
		it->next = NULL;
		auditq_deliver(it, auditq_insert_deposits(q, it, 1));
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
		auditq_run(q, batch);
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

int
auditq_create(struct worker *w, struct evhttp_request *req, const char *uuid,
    const char *owner, const char *org, const char *name, const char *desc,
    const unsigned char nonce[CRYPTO_NONCE_LEN], unsigned char *ct,
    size_t ctlen, const char *remote, char *body, size_t len)
{
	struct auditq_item *it;

	if ((it = item_new(w, req, owner, org, uuid, remote)) == NULL)
		return -1;
	if ((it->name = strdup(name)) == NULL ||
	    (desc != NULL && (it->desc = strdup(desc)) == NULL)) {
		item_free(it);
		return -1;
	}
	it->create = 1;
	memcpy(it->nonce, nonce, CRYPTO_NONCE_LEN);
	it->ct = ct;
	it->ctlen = ctlen;
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
		if (it->create) {
			if (it->ok == 1)
				http_reply(it->req, 201, "application/json",
				    it->body, it->len);
			else if (it->ok == -1)
				ha_refuse_no_sync(it->req);
			else
				http_reply_error(it->req, 503, "database",
				    "the database is not available");
			item_free(it);
			continue;
		}
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
