/*
 * auditq.c - group commit of new deposits and of the audit rows of reads.
 *
 * A read is answered only once its audit_log row has committed ("no access
 * without its audit row"), a new deposit only once it and its
 * deposit_create row have, but one commit per request would block the
 * worker's event loop for every flush and cap requests at what the disk
 * flushes one by one.  So a worker sets its finished answer aside with the
 * row and goes on serving.  A batch is one prepared statement of binary
 * arrays (one text whatever the batch size), one transaction, one flush,
 * and it grows with the load (what arrives while one commits waits for
 * the next).
 *
 * Reads: each worker commits its own rows on its own connection, without
 * blocking, from its event loop: what its loop turn set aside goes in one
 * batch, and its answers leave when the result comes in, from the same
 * thread (no hand-off, no wake-up of another thread).  The rows commit with
 * synchronous_commit local as audit.c's do.
 *
 * New deposits: a lane thread with its own connection takes every deposit
 * waiting and goes through ha_exec_prepared, gated by HA_SYNC_OK and
 * bounded in its wait for the synchronous standby exactly as api.c's
 * single insert is; each answer goes back to its worker's event loop (one
 * wake-up per worker and batch).
 *
 * When a read batch fails (the database became read-only, a promotion or
 * demotion in between, or any error) each of its rows goes through
 * audit() instead, which journals on a passive, and a row that cannot be
 * kept anywhere makes its answer a 503; a failed deposit batch is retried
 * one by one, so only a bad row fails.  A passive server does not queue at
 * all (audit() journals).
 */
#include <event2/event.h>
#include <event2/http.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "server.h"
#include "util.h"

#define AUDITQ_BATCH_MAX 500 /* rows per statement */

/*
 * Fixed OIDs of PostgreSQL's catalog (pg_type.dat): binary arrays name
 * their element type.
 */
#define OID_BYTEA 17
#define OID_TEXT 25
#define OID_UUID 2950
#define OID_BYTEA_ARRAY 1001
#define OID_TEXT_ARRAY 1009
#define OID_UUID_ARRAY 2951

/*
 * The two statements, prepared on each queue connection: every row of the
 * batch in arrays (binary, nothing to escape or parse), so one text serves
 * whatever the batch size and PostgreSQL parses it once.
 */
enum { AQ_READS, AQ_DEPOSITS, AQ_NSTMTS };
#define AQ_NCOLS 8 /* parameters of the widest statement */

static const Oid aq_read_types[] = {
    OID_TEXT_ARRAY, OID_TEXT_ARRAY, OID_TEXT_ARRAY, OID_TEXT_ARRAY};
static const Oid aq_deposit_types[] = {OID_UUID_ARRAY, OID_TEXT_ARRAY,
    OID_TEXT_ARRAY, OID_TEXT_ARRAY, OID_BYTEA_ARRAY, OID_BYTEA_ARRAY,
    OID_TEXT_ARRAY, OID_TEXT_ARRAY};

static const struct {
	const char *name;
	const char *sql;
	int nparams;
	const Oid *types;
} aq_stmts[AQ_NSTMTS] = {
    /* Like audit.c's rows: an audit row alone never waits for a standby. */
    [AQ_READS] = {"kt_aq_reads",
	"INSERT INTO audit_log (actor, org, action, object, remote_addr, "
	"result) SELECT a, o, 'deposit_read', b, r, 'ok' FROM "
	"unnest($1::text[], $2::text[], $3::text[], $4::text[]) "
	"AS t (a, o, b, r), (SELECT set_config('synchronous_commit', "
	"'local', true)) s",
	4, aq_read_types},
    /*
     * The deposits and their deposit_create rows commit together, or
     * nothing when HA_SYNC_OK is false.  Only the audit columns are
     * unnested twice, not the contents.
     */
    [AQ_DEPOSITS] = {"kt_aq_deposits",
	"WITH d AS (INSERT INTO deposits (uuid, owner, name, description, "
	"nonce, content) SELECT * FROM unnest($1::uuid[], $2::text[], "
	"$3::text[], $4::text[], $5::bytea[], $6::bytea[]) "
	"WHERE " DB_SERVER_ORIGIN " AND " HA_SYNC_OK " RETURNING uuid) "
	"INSERT INTO audit_log (actor, org, action, object, remote_addr, "
	"result) SELECT a.owner, a.org, 'deposit_create', a.uuid::text, "
	"a.remote, 'ok' FROM unnest($1::uuid[], $2::text[], $7::text[], "
	"$8::text[]) AS a (uuid, owner, org, remote) JOIN d USING (uuid)",
	8, aq_deposit_types},
};

struct auditq_item {
	struct auditq_item *next;
	struct worker *w;
	struct http_req *req;
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

/* A one-dimensional array in PostgreSQL's binary format (array_recv). */
struct pgarr {
	unsigned char *buf;
	size_t len, cap;
	int fail; /* out of memory */
};

/* A connection to commit on, its statements prepared (aq_db). */
struct aq_conn {
	PGconn *db;
	int prepared; /* aq_stmts are prepared on db's session */
	int pid;      /* ... whose backend is this one */
};

/*
 * The deposits' lane: one committing thread, its connection and its
 * items; it batches everything that arrived while its last statement ran.
 * An audit row of a read never waits behind a deposit's wait for the
 * synchronous standby: reads are not here.
 */
struct auditq_lane {
	struct auditq *q;
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	struct auditq_item *head, **tail;
	int stop;
	pthread_t thread;
	int started;
	struct aq_conn conn;
	struct pgarr arr[AQ_NCOLS]; /* kept from batch to batch */
};

#define AQ_READ_COLS 4

/*
 * A worker's reads, all in its own thread: its connection (non-blocking,
 * watched by its event loop), the rows its loop turn set aside, and the
 * batch out, whose answers leave when its result comes in.
 */
struct auditq_reads {
	struct worker *w;
	struct aq_conn conn;
	struct event *rev;  /* the connection's socket is readable */
	struct event *wev;  /* ... writable again, while a batch is sent */
	struct event *kick; /* the end of a loop turn that set rows aside */
	struct auditq_item *pending, **ptail;
	struct auditq_item *flight; /* the batch out */
	int ok;			    /* its statement succeeded */
	struct pgarr arr[AQ_READ_COLS];
};

struct auditq {
	struct server *srv;
	struct auditq_lane deposits;
	struct auditq_reads *reads; /* one per worker, by worker id */
	int nreads;
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

static void
pgarr_put32(struct pgarr *a, uint32_t v)
{
	a->buf[a->len++] = (unsigned char)(v >> 24);
	a->buf[a->len++] = (unsigned char)(v >> 16);
	a->buf[a->len++] = (unsigned char)(v >> 8);
	a->buf[a->len++] = (unsigned char)v;
}

/* Room for need more bytes; 0, or -1 (and a->fail) when out of memory. */
static int
pgarr_room(struct pgarr *a, size_t need)
{
	unsigned char *p;
	size_t cap;

	if (a->fail)
		return -1;
	if (a->len + need <= a->cap)
		return 0;
	for (cap = a->cap ? a->cap : 4096; cap < a->len + need; cap *= 2)
		;
	if ((p = realloc(a->buf, cap)) == NULL) {
		a->fail = 1;
		return -1;
	}
	a->buf = p;
	a->cap = cap;
	return 0;
}

/* Start an array of n elements of type elem. */
static void
pgarr_begin(struct pgarr *a, Oid elem, int n)
{
	a->len = 0;
	a->fail = 0;
	if (pgarr_room(a, 20) == -1)
		return;
	pgarr_put32(a, 1); /* dimensions */
	pgarr_put32(a, 0); /* flags: has nulls, set by pgarr_add */
	pgarr_put32(a, elem);
	pgarr_put32(a, (uint32_t)n);
	pgarr_put32(a, 1); /* lower bound */
}

/* The next element: len bytes of v in the type's binary form, or NULL. */
static void
pgarr_add(struct pgarr *a, const void *v, size_t len)
{
	if (pgarr_room(a, 4 + (v != NULL ? len : 0)) == -1)
		return;
	if (v == NULL) {
		a->buf[7] = 1;
		pgarr_put32(a, 0xffffffffu); /* -1: NULL */
		return;
	}
	pgarr_put32(a, (uint32_t)len);
	memcpy(a->buf + a->len, v, len);
	a->len += len;
}

/* Text, "" as NULL (an unknown address, no actor). */
static void
pgarr_add_text(struct pgarr *a, const char *v)
{
	pgarr_add(
	    a, v != NULL && *v != '\0' ? v : NULL, v != NULL ? strlen(v) : 0);
}

/* A uuid (canonical text, checked by the caller) as its 16 bytes. */
static void
pgarr_add_uuid(struct pgarr *a, const char *uuid)
{
	unsigned char bin[16];
	size_t i, k = 0;

	for (i = 0; uuid[i] != '\0' && k < sizeof(bin); i++) {
		if (uuid[i] == '-')
			continue;
		if (crypto_hex_decode(uuid + i, 2, bin + k, 1) == -1)
			break;
		k++;
		i++;
	}
	if (k != sizeof(bin)) {
		a->fail = 1;
		return;
	}
	pgarr_add(a, bin, sizeof(bin));
}

/* The arrays as the statement's binary parameters; -1 when one failed. */
static int
pgarr_params(
    struct pgarr *arr, int n, const char **params, int *lens, int *fmts)
{
	int k;

	for (k = 0; k < n; k++) {
		if (arr[k].fail || arr[k].len > INT_MAX)
			return -1;
		params[k] = (const char *)arr[k].buf;
		lens[k] = (int)arr[k].len;
		fmts[k] = 1;
	}
	return 0;
}

/*
 * The queue connection, connected and its statements prepared; NULL when
 * the database cannot be reached.
 */
static PGconn *
aq_db(struct server *srv, struct aq_conn *c)
{
	PGresult *res = NULL;
	char err[512];
	int i;

	if (c->db != NULL && PQstatus(c->db) != CONNECTION_OK) {
		c->prepared = 0;
		PQreset(c->db);
	}
	if (c->db == NULL &&
	    (c->db = db_connect(srv->conf, err, sizeof(err))) == NULL) {
		log_warnx("audit queue: database: %s", err);
		return NULL;
	}
	if (PQstatus(c->db) != CONNECTION_OK) {
		log_warnx("audit queue: database: connection lost");
		return NULL;
	}
	if (c->prepared && c->pid == PQbackendPID(c->db))
		return c->db;
	/* Whatever a half-done earlier try left in this session. */
	res = PQexec(c->db, "DEALLOCATE ALL");
	for (i = 0; i < AQ_NSTMTS && PQresultStatus(res) == PGRES_COMMAND_OK;
	     i++) {
		PQclear(res);
		res = PQprepare(c->db, aq_stmts[i].name, aq_stmts[i].sql,
		    aq_stmts[i].nparams, aq_stmts[i].types);
	}
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_warnx("audit queue: prepare: %s", db_error(res, c->db));
		PQclear(res);
		return NULL;
	}
	PQclear(res);
	c->prepared = 1;
	c->pid = PQbackendPID(c->db);
	return c->db;
}

/* The read rows of the batch as the four arrays of kt_aq_reads. */
static int
reads_params(struct pgarr *arr, struct auditq_item *batch, int n,
    const char **params, int *lens, int *fmts)
{
	struct auditq_item *it;
	int k;

	for (k = 0; k < AQ_READ_COLS; k++)
		pgarr_begin(&arr[k], OID_TEXT, n);
	for (it = batch; it != NULL; it = it->next) {
		pgarr_add_text(&arr[0], it->actor);
		pgarr_add_text(&arr[1], it->org);
		pgarr_add_text(&arr[2], it->object);
		pgarr_add_text(&arr[3], it->remote);
	}
	return pgarr_params(arr, AQ_READ_COLS, params, lens, fmts);
}

/*
 * Hand each answer back to its worker's loop: one lock and one wake-up
 * per worker for the whole batch.
 */
static void
auditq_deliver(struct auditq_item *batch, int ok)
{
	struct auditq_item *mine, **mt, *rest, **rt, *it, *next;
	struct worker *w;

	while (batch != NULL) {
		w = batch->w;
		mine = rest = NULL;
		mt = &mine;
		rt = &rest;
		for (it = batch; it != NULL; it = next) {
			next = it->next;
			it->next = NULL;
			if (it->w == w) {
				it->ok = ok;
				*mt = it;
				mt = &it->next;
			} else {
				*rt = it;
				rt = &it->next;
			}
		}
		pthread_mutex_lock(&w->done_mtx);
		*w->done_tail = mine;
		w->done_tail = mt;
		pthread_mutex_unlock(&w->done_mtx);
		event_active(w->done_ev, EV_READ, 0);
		batch = rest;
	}
}

/*
 * New deposits with their audit rows, in one statement through
 * ha_exec_prepared, gated by HA_SYNC_OK and bounded in its wait for a
 * synchronous standby as api.c's single insert is: 1 committed, -1
 * refused (no synchronous standby, or the wait timed out), 0 failed.
 */
static int
auditq_insert_deposits(struct auditq_lane *c, struct auditq_item *batch, int n)
{
	static const Oid elem[AQ_NCOLS] = {OID_UUID, OID_TEXT, OID_TEXT,
	    OID_TEXT, OID_BYTEA, OID_BYTEA, OID_TEXT, OID_TEXT};
	const char *params[AQ_NCOLS];
	int lens[AQ_NCOLS], fmts[AQ_NCOLS], k, timed_out = 0, ret = 0;
	struct auditq_item *it;
	PGresult *res = NULL;
	PGconn *db;

	for (k = 0; k < AQ_NCOLS; k++)
		pgarr_begin(&c->arr[k], elem[k], n);
	for (it = batch; it != NULL; it = it->next) {
		pgarr_add_uuid(&c->arr[0], it->object);
		pgarr_add(&c->arr[1], it->actor, strlen(it->actor));
		pgarr_add(&c->arr[2], it->name, strlen(it->name));
		pgarr_add(&c->arr[3], it->desc,
		    it->desc != NULL ? strlen(it->desc) : 0);
		pgarr_add(&c->arr[4], it->nonce, sizeof(it->nonce));
		pgarr_add(&c->arr[5], it->ct, it->ctlen);
		pgarr_add(&c->arr[6], it->org, strlen(it->org));
		pgarr_add_text(&c->arr[7], it->remote);
	}
	if (pgarr_params(c->arr, AQ_NCOLS, params, lens, fmts) == -1) {
		log_warnx("deposit create: out of memory");
		return 0;
	}
	if ((db = aq_db(c->q->srv, &c->conn)) == NULL)
		return 0;
	res = ha_exec_prepared(batch->w, db, aq_stmts[AQ_DEPOSITS].name,
	    AQ_NCOLS, params, lens, fmts, 0, &timed_out);
	if (timed_out) {
		c->conn.prepared = 0; /* the connection may have been reset */
		ret = -1;
		goto out;
	}
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_warnx("deposit create: %s", db_error(res, db));
		goto out;
	}
	/* HA_SYNC_OK was false: the standby went away just now. */
	ret = strcmp(PQcmdTuples(res), "0") == 0 ? -1 : 1;
out:
	PQclear(res);
	return ret;
}

/* Insert the batch of new deposits; hand back. */
static void
auditq_run(struct auditq_lane *c, struct auditq_item *deps)
{
	struct auditq_item *it, *next;
	int nd = 0, r;

	for (it = deps; it != NULL; it = it->next)
		nd++;
	r = auditq_insert_deposits(c, deps, nd);
	if (r != 0 || nd == 1) {
		auditq_deliver(deps, r);
		return;
	}
	/* One of them is refused: find which, one by one. */
	for (it = deps; it != NULL; it = next) {
		next = it->next;
		it->next = NULL;
		auditq_deliver(it, auditq_insert_deposits(c, it, 1));
	}
}

/*
 * The first items of the list *head (its last next pointer *tail), up to
 * a batch: taken off the list, their count in *n.
 */
static struct auditq_item *
batch_take(struct auditq_item **head, struct auditq_item ***tail, int *n)
{
	struct auditq_item *batch = *head, *it;

	for (*n = 1, it = batch; *n < AUDITQ_BATCH_MAX && it->next != NULL;
	     (*n)++)
		it = it->next;
	*head = it->next;
	if (*head == NULL)
		*tail = head;
	it->next = NULL;
	return batch;
}

/* The lane's thread: takes every item waiting (up to a batch), commits. */
static void *
auditq_main(void *arg)
{
	struct auditq_lane *c = arg;
	struct auditq_item *batch;
	int n;

	for (;;) {
		pthread_mutex_lock(&c->mtx);
		while (c->head == NULL && !c->stop)
			pthread_cond_wait(&c->cond, &c->mtx);
		if (c->head == NULL) {
			pthread_mutex_unlock(&c->mtx);
			break;
		}
		batch = batch_take(&c->head, &c->tail, &n);
		pthread_mutex_unlock(&c->mtx);
		auditq_run(c, batch);
	}
	return NULL;
}

static void item_answer(struct worker *w, struct auditq_item *it);

/* Answer every item of list (ok: its rows committed) and free it. */
static void
reads_answer(struct worker *w, struct auditq_item *list, int ok)
{
	struct auditq_item *it, *next;

	for (it = list; it != NULL; it = next) {
		next = it->next;
		it->ok = ok;
		item_answer(w, it);
	}
}

static void
reads_close(struct auditq_reads *r)
{
	if (r->rev != NULL)
		event_free(r->rev);
	if (r->wev != NULL)
		event_free(r->wev);
	r->rev = r->wev = NULL;
	PQfinish(r->conn.db);
	r->conn.db = NULL;
	r->conn.prepared = 0;
}

/* The batch out failed or its connection broke: each row on its own. */
static void
reads_fail(struct auditq_reads *r, const char *why)
{
	struct auditq_item *list = r->flight;

	log_warnx("audit queue: worker %d: %s", r->w->id, why);
	r->flight = NULL;
	r->ok = 0;
	reads_close(r);
	reads_answer(r->w, list, 0);
}

static void reads_send(struct auditq_reads *r);

/* The result of the batch out, as it comes in. */
static void
reads_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auditq_reads *r = arg;
	struct auditq_item *list;
	PGresult *res;

	(void)fd;
	(void)what;
	if (!PQconsumeInput(r->conn.db)) {
		reads_fail(r, PQerrorMessage(r->conn.db));
		reads_send(r);
		return;
	}
	while (r->flight != NULL && !PQisBusy(r->conn.db)) {
		if ((res = PQgetResult(r->conn.db)) != NULL) {
			r->ok = PQresultStatus(res) == PGRES_COMMAND_OK;
			if (!r->ok)
				log_warnx("audit queue: %s",
				    db_error(res, r->conn.db));
			PQclear(res);
			continue;
		}
		/* Done: the answers leave, and the next batch goes. */
		list = r->flight;
		r->flight = NULL;
		reads_answer(r->w, list, r->ok);
		r->ok = 0;
		reads_send(r);
	}
	if (r->flight == NULL && PQstatus(r->conn.db) != CONNECTION_OK)
		reads_close(r);
}

/* The batch did not fit the socket: the rest as it drains. */
static void
reads_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auditq_reads *r = arg;
	int f;

	(void)fd;
	(void)what;
	if ((f = PQflush(r->conn.db)) == 1)
		event_add(r->wev, NULL);
	else if (f == -1) {
		reads_fail(r, PQerrorMessage(r->conn.db));
		reads_send(r);
	}
}

/*
 * The worker's connection, made (blocking, like the worker's own) and
 * set non-blocking under its loop's watch; NULL when there is none.
 */
static PGconn *
reads_db(struct auditq_reads *r)
{
	struct event_base *base = r->w->base;
	PGconn *db;

	if (r->conn.db != NULL && PQstatus(r->conn.db) != CONNECTION_OK)
		reads_close(r);
	if (r->conn.db != NULL)
		return r->conn.db;
	if ((db = aq_db(r->w->srv, &r->conn)) == NULL)
		return NULL;
	if (PQsetnonblocking(db, 1) != 0 ||
	    (r->rev = event_new(base, PQsocket(db), EV_READ | EV_PERSIST,
		 reads_read_cb, r)) == NULL ||
	    (r->wev = event_new(
		 base, PQsocket(db), EV_WRITE, reads_write_cb, r)) == NULL ||
	    event_add(r->rev, NULL) == -1) {
		log_warnx("audit queue: worker %d: cannot watch its database "
			  "connection",
		    r->w->id);
		reads_close(r);
		return NULL;
	}
	return db;
}

/* Send what the worker set aside as one batch, unless one is out. */
static void
reads_send(struct auditq_reads *r)
{
	const char *params[AQ_READ_COLS];
	int lens[AQ_READ_COLS], fmts[AQ_READ_COLS], n, f;
	PGconn *db;

	while (r->flight == NULL && r->pending != NULL) {
		r->flight = batch_take(&r->pending, &r->ptail, &n);
		if ((db = reads_db(r)) == NULL) {
			reads_fail(r, "no database connection");
			continue;
		}
		if (reads_params(r->arr, r->flight, n, params, lens, fmts) ==
		    -1) {
			reads_fail(r, "out of memory");
			continue;
		}
		if (!PQsendQueryPrepared(db, aq_stmts[AQ_READS].name,
			AQ_READ_COLS, params, lens, fmts, 0) ||
		    (f = PQflush(db)) == -1) {
			reads_fail(r, PQerrorMessage(db));
			continue;
		}
		if (f == 1)
			event_add(r->wev, NULL);
	}
}

static void
reads_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	reads_send(arg);
}

struct auditq *
auditq_start(struct server *srv)
{
	struct auditq_lane *c;
	struct auditq *q;
	int i;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->srv = srv;
	c = &q->deposits;
	c->q = q;
	c->tail = &c->head;
	pthread_mutex_init(&c->mtx, NULL);
	pthread_cond_init(&c->cond, NULL);
	if ((q->reads = calloc((size_t)srv->nworkers, sizeof(*q->reads))) ==
	    NULL) {
		auditq_stop(q);
		return NULL;
	}
	q->nreads = srv->nworkers;
	for (i = 0; i < q->nreads; i++) {
		struct auditq_reads *r = &q->reads[i];
		r->w = &srv->workers[i];
		r->ptail = &r->pending;
		if ((r->kick = event_new(
			 r->w->base, -1, 0, reads_kick_cb, r)) == NULL) {
			auditq_stop(q);
			return NULL;
		}
	}
	if (pthread_create(&c->thread, NULL, auditq_main, c) != 0) {
		auditq_stop(q);
		return NULL;
	}
	c->started = 1;
	return q;
}

/*
 * After the workers' loops stopped: the deposits queued commit, a read
 * batch out is waited for; reads not sent yet were never answered.
 */
void
auditq_stop(struct auditq *q)
{
	struct auditq_lane *c;
	struct auditq_item *it, *next;
	PGresult *res;
	int i, k;

	if (q == NULL)
		return;
	c = &q->deposits;
	pthread_mutex_lock(&c->mtx);
	c->stop = 1;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->mtx);
	if (c->started)
		pthread_join(c->thread, NULL);
	PQfinish(c->conn.db);
	for (k = 0; k < AQ_NCOLS; k++)
		free(c->arr[k].buf);
	pthread_mutex_destroy(&c->mtx);
	pthread_cond_destroy(&c->cond);
	for (i = 0; i < q->nreads; i++) {
		struct auditq_reads *r = &q->reads[i];
		if (r->flight != NULL && r->conn.db != NULL &&
		    PQsetnonblocking(r->conn.db, 0) == 0)
			while ((res = PQgetResult(r->conn.db)) != NULL)
				PQclear(res);
		for (it = r->flight; it != NULL; it = next) {
			next = it->next;
			item_free(it);
		}
		for (it = r->pending; it != NULL; it = next) {
			next = it->next;
			item_free(it);
		}
		reads_close(r);
		if (r->kick != NULL)
			event_free(r->kick);
		for (k = 0; k < AQ_READ_COLS; k++)
			free(r->arr[k].buf);
	}
	free(q->reads);
	free(q);
}

/* A new item for w's request with its audit fields; NULL when out of memory. */
static struct auditq_item *
item_new(struct worker *w, struct http_req *req, const char *actor,
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

/* Queue a new deposit in the lane, taking over body. */
static void
item_push(struct auditq *q, struct auditq_item *it, char *body, size_t len)
{
	struct auditq_lane *c = &q->deposits;

	it->body = body;
	it->len = len;
	pthread_mutex_lock(&c->mtx);
	/* The thread is woken once; what queues meanwhile joins its batch. */
	if (c->head == NULL)
		pthread_cond_signal(&c->cond);
	*c->tail = it;
	c->tail = &it->next;
	pthread_mutex_unlock(&c->mtx);
}

int
auditq_read(struct worker *w, struct http_req *req, const char *actor,
    const char *org, const char *object, const char *remote, char *body,
    size_t len)
{
	struct auditq_reads *r;
	struct auditq_item *it;

	if ((it = item_new(w, req, actor, org, object, remote)) == NULL)
		return -1;
	it->body = body;
	it->len = len;
	/* Set aside; the batch goes at the end of this loop turn. */
	r = &w->srv->auditq->reads[w->id];
	*r->ptail = it;
	r->ptail = &it->next;
	if (r->flight == NULL)
		event_active(r->kick, EV_READ, 0);
	return 0;
}

int
auditq_create(struct worker *w, struct http_req *req, const char *uuid,
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

/* Send one answer whose row is in (or a 503), and free the item. */
static void
item_answer(struct worker *w, struct auditq_item *it)
{
	if (it->create) {
		if (it->ok == 1)
			http_reply(it->req, 201, "application/json", it->body,
			    it->len);
		else if (it->ok == -1)
			ha_refuse_no_sync(it->req);
		else
			http_reply_error(it->req, 503, "database",
			    "the database is not available");
		item_free(it);
		return;
	}
	/* The batch failed: this row alone, the way audit.c keeps it. */
	if (!it->ok)
		it->ok = audit(w, it->actor, it->org, "deposit_read",
			     it->object, it->remote, "ok") == 0;
	if (it->ok)
		http_reply(
		    it->req, HTTP_OK, "application/json", it->body, it->len);
	else
		http_reply_error(
		    it->req, 503, "database", "the database is not available");
	item_free(it);
}

/* The worker's side of the deposits' lane: send the answers handed back. */
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
		item_answer(w, it);
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
