/*
 * auditq.c - group commit of new deposits and of the audit rows of reads.
 *
 * A read is answered only once its audit_log row has committed ("no access
 * without its audit row"), a new deposit only once it and its
 * deposit_create row have, but one commit per request would block the
 * worker's event loop for every flush and cap requests at what the disk
 * flushes one by one.  So a worker hands its finished answer and the row
 * to this queue and goes on serving.  Two lanes, reads and new deposits,
 * each a thread with its own connection, take every item waiting in their
 * lane: a batch is one prepared statement of binary arrays (one text
 * whatever the batch size), one transaction, one flush, and it grows with
 * the load (what arrives while one commits waits for the next).  Read rows
 * commit with synchronous_commit local as audit.c's do; deposits go through
 * ha_exec_prepared, gated by HA_SYNC_OK and bounded in their wait for the
 * synchronous standby exactly as api.c's single insert is.  Each answer
 * goes back to its worker's event loop (one wake-up per worker and batch),
 * which sends it.  When a read batch fails (the database became
 * read-only, a promotion or demotion in between, or any error) each of
 * its rows goes through audit() there instead, which journals on a
 * passive, and a row that cannot be kept anywhere makes its answer a 503;
 * a failed deposit batch is retried one by one, so only a bad row fails.
 * A passive server does not queue at all (audit() journals).
 */
#include <event2/event.h>
#include <event2/http.h>
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
	"$3::text[], $4::text[], $5::bytea[], $6::bytea[]) WHERE "
	DB_SERVER_ORIGIN " AND " HA_SYNC_OK
	" RETURNING uuid) "
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

/*
 * A lane: one committing thread, its connection and its items.  Reads and
 * new deposits have a lane each, so that an audit row never waits behind
 * a deposit's wait for the synchronous standby, and each lane batches
 * everything that arrived while its last statement ran.
 */
enum { AQ_LANE_READS, AQ_LANE_DEPOSITS, AQ_NLANES };

struct auditq_lane {
	struct auditq *q;
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	struct auditq_item *head, **tail;
	int stop;
	pthread_t thread;
	int started;
	PGconn *db;
	int prepared;		    /* aq_stmts are prepared on db's session */
	int pid;		    /* ... whose backend is this one */
	struct pgarr arr[AQ_NCOLS]; /* kept from batch to batch */
};

struct auditq {
	struct server *srv;
	struct auditq_lane lanes[AQ_NLANES];
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
    struct auditq_lane *c, int n, const char **params, int *lens, int *fmts)
{
	int k;

	for (k = 0; k < n; k++) {
		if (c->arr[k].fail || c->arr[k].len > INT_MAX)
			return -1;
		params[k] = (const char *)c->arr[k].buf;
		lens[k] = (int)c->arr[k].len;
		fmts[k] = 1;
	}
	return 0;
}

/*
 * The queue connection, connected and its statements prepared; NULL when
 * the database cannot be reached.
 */
static PGconn *
aq_db(struct auditq_lane *c)
{
	PGresult *res = NULL;
	char err[512];
	int i;

	if (c->db != NULL && PQstatus(c->db) != CONNECTION_OK) {
		c->prepared = 0;
		PQreset(c->db);
	}
	if (c->db == NULL &&
	    (c->db = db_connect(c->q->srv->conf, err, sizeof(err))) == NULL) {
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

/*
 * The read rows of the batch in one INSERT of four arrays; 0 when
 * committed.  A broken connection gets one more try; an error does not.
 */
static int
auditq_insert_reads(struct auditq_lane *c, struct auditq_item *batch, int n)
{
	const char *params[4];
	int lens[4], fmts[4], try, k, ret = -1;
	struct auditq_item *it;
	PGresult *res = NULL;
	PGconn *db;

	for (k = 0; k < 4; k++)
		pgarr_begin(&c->arr[k], OID_TEXT, n);
	for (it = batch; it != NULL; it = it->next) {
		pgarr_add_text(&c->arr[0], it->actor);
		pgarr_add_text(&c->arr[1], it->org);
		pgarr_add_text(&c->arr[2], it->object);
		pgarr_add_text(&c->arr[3], it->remote);
	}
	if (pgarr_params(c, 4, params, lens, fmts) == -1) {
		log_warnx("audit queue: out of memory");
		return -1;
	}
	for (try = 0; try < 2; try++) {
		if ((db = aq_db(c)) == NULL)
			return -1;
		res = PQexecPrepared(
		    db, aq_stmts[AQ_READS].name, 4, params, lens, fmts, 0);
		if (PQresultStatus(res) == PGRES_COMMAND_OK) {
			ret = 0;
			break;
		}
		if (PQstatus(db) == CONNECTION_OK) {
			log_warnx("audit queue: %s", db_error(res, db));
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
	if (pgarr_params(c, AQ_NCOLS, params, lens, fmts) == -1) {
		log_warnx("deposit create: out of memory");
		return 0;
	}
	if ((db = aq_db(c)) == NULL)
		return 0;
	res = ha_exec_prepared(batch->w, db, aq_stmts[AQ_DEPOSITS].name,
	    AQ_NCOLS, params, lens, fmts, 0, &timed_out);
	if (timed_out) {
		c->prepared = 0; /* the connection may have been reset */
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

/* Split the batch into reads and new deposits; insert; hand back. */
static void
auditq_run(struct auditq_lane *c, struct auditq_item *batch)
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
		auditq_deliver(reads, auditq_insert_reads(c, reads, nr) == 0);
	if (deps == NULL)
		return;
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

/* The lane's thread: takes every item waiting (up to a batch), commits. */
static void *
auditq_main(void *arg)
{
	struct auditq_lane *c = arg;
	struct auditq_item *batch, *it;
	int n;

	for (;;) {
		pthread_mutex_lock(&c->mtx);
		while (c->head == NULL && !c->stop)
			pthread_cond_wait(&c->cond, &c->mtx);
		if (c->head == NULL) {
			pthread_mutex_unlock(&c->mtx);
			break;
		}
		batch = c->head;
		for (n = 1, it = batch;
		     n < AUDITQ_BATCH_MAX && it->next != NULL; n++)
			it = it->next;
		c->head = it->next;
		if (c->head == NULL)
			c->tail = &c->head;
		it->next = NULL;
		pthread_mutex_unlock(&c->mtx);
		auditq_run(c, batch);
	}
	return NULL;
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
	for (i = 0; i < AQ_NLANES; i++) {
		c = &q->lanes[i];
		c->q = q;
		c->tail = &c->head;
		pthread_mutex_init(&c->mtx, NULL);
		pthread_cond_init(&c->cond, NULL);
	}
	for (i = 0; i < AQ_NLANES; i++) {
		c = &q->lanes[i];
		if (pthread_create(&c->thread, NULL, auditq_main, c) != 0) {
			auditq_stop(q);
			return NULL;
		}
		c->started = 1;
	}
	return q;
}

/* Commits what is queued, then stops. */
void
auditq_stop(struct auditq *q)
{
	struct auditq_lane *c;
	int i, k;

	if (q == NULL)
		return;
	for (i = 0; i < AQ_NLANES; i++) {
		c = &q->lanes[i];
		pthread_mutex_lock(&c->mtx);
		c->stop = 1;
		pthread_cond_signal(&c->cond);
		pthread_mutex_unlock(&c->mtx);
	}
	for (i = 0; i < AQ_NLANES; i++) {
		c = &q->lanes[i];
		if (c->started)
			pthread_join(c->thread, NULL);
		PQfinish(c->db);
		for (k = 0; k < AQ_NCOLS; k++)
			free(c->arr[k].buf);
		pthread_mutex_destroy(&c->mtx);
		pthread_cond_destroy(&c->cond);
	}
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

/* Queue it in its lane, taking over body. */
static void
item_push(struct auditq *q, struct auditq_item *it, char *body, size_t len)
{
	struct auditq_lane *c =
	    &q->lanes[it->create ? AQ_LANE_DEPOSITS : AQ_LANE_READS];

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
	struct auditq_item *it;

	if ((it = item_new(w, req, actor, org, object, remote)) == NULL)
		return -1;
	item_push(w->srv->auditq, it, body, len);
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
