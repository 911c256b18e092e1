/*
 * auditq.c - group commit of new deposits and of the audit rows of reads.
 *
 * A read is answered only once its audit_log row has committed ("no access
 * without its audit row"), a new deposit only once it and its
 * deposit_create row have, but one commit per request would block the
 * worker's event loop for every flush and cap requests at what the disk
 * flushes one by one.  So a handler sets its finished answer aside with
 * the row and the worker goes on serving; a batch is one statement (of
 * binary arrays, store/batch.c), one transaction, one flush, and it grows
 * with the load (what arrives while one commits waits for the next).  The
 * handler's function is then called from its worker's loop.
 *
 * Reads: each worker commits its own rows on its own non-blocking
 * connection, watched by its event loop: what its loop turn set aside goes
 * in one batch, and the handlers are called when the result comes in, in
 * the same thread (no hand-off, no wake-up of another thread).
 *
 * New deposits: a lane thread with its own connection takes every deposit
 * waiting, gated by the synchronous standby and bounded in its wait as
 * every write is (store_deposit_insert); each result goes back to its
 * worker's loop (one wake-up per worker and batch).
 *
 * When a read batch fails (the database became read-only, a promotion or
 * demotion in between, or any error) each of its rows goes through
 * audit() instead, which journals on a passive; a failed deposit batch is
 * retried one by one, so only a bad row fails.  A passive server does not
 * queue at all (audit() journals).
 *
 * How durable a read's row is when its answer leaves: with
 * AUDIT_READ_FLUSH_MS 0, flushed to disk (its batch commits with
 * synchronous_commit local).  Else written: the batch commits with
 * synchronous_commit off (visible to every query, kept if the server
 * dies, lost if PostgreSQL or the machine crashes before the log reaches
 * the disk), and the flusher, a thread with its own connection, makes it
 * durable within AUDIT_READ_FLUSH_MS: the first batch committed since its
 * last flush starts a window, and at the window's end one tiny synchronous
 * commit flushes the log up to it (store_wal_flush), every worker's rows
 * at once, while the workers go on.  So a read no longer waits for the
 * disk; at most AUDIT_READ_FLUSH_MS of answered reads (plus one flush's
 * time) can lose their rows, and only in a crash of the database or the
 * machine.  Writes are not here: they are flushed before their answer in
 * every mode.
 */
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "auditq.h"
#include "ha.h"
#include "log.h"
#include "util.h"

#define AUDITQ_BATCH_MAX 500 /* rows per statement */

struct auditq_item {
	struct auditq_item *next;
	struct worker *w;
	auditq_done_fn *done;
	void *arg;
	int result; /* 1 committed, 2 seen before, 0 failed, -1 refused */
	char actor[PGP_FPR_LEN + 1];
	char org[72];
	char object[CRYPTO_UUID_LEN + 1];
	char remote[64];
	/* a new deposit: its row, owned */
	char *name, *desc;
	unsigned char nonce[CRYPTO_NONCE_LEN];
	unsigned char *ct;
	size_t ctlen;
	unsigned char seen[CRYPTO_HASH_LEN]; /* its request's answer */
	int status;
	char *location, *body;
};

/*
 * The deposits' lane: one committing thread, its connection and its
 * items; it batches everything that arrived while its last statement ran.
 * An audit row of a read never waits behind a deposit's wait for the
 * synchronous standby: reads are not here.
 */
struct auditq_lane {
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	struct auditq_item *head, **tail;
	int stop;
	pthread_t thread;
	int started;
	struct store *store;
	struct deposit_row rows[AUDITQ_BATCH_MAX];
	const char *remote[AUDITQ_BATCH_MAX];
	int seen[AUDITQ_BATCH_MAX];
};

/*
 * One worker's part, all in its own thread but done (the lane's results,
 * handed back under done_mtx): its reads' connection, watched by its
 * loop, the rows its loop turn set aside, and the batch out, whose
 * handlers are called when its result comes in.
 */
struct auditq_worker {
	struct auditq *q;
	struct worker *w;
	struct store *store;
	struct event *rev;  /* the connection's socket is readable */
	struct event *wev;  /* ... writable again, while a batch is sent */
	struct event *kick; /* the end of a loop turn that set rows aside */
	struct auditq_item *pending, **ptail;
	struct auditq_item *flight; /* the batch out */
	struct audit_row rows[AUDITQ_BATCH_MAX];
	pthread_mutex_t done_mtx;
	struct auditq_item *done_head, **done_tail;
	struct event *done_ev;
};

/*
 * The reads' durability window: since, the monotonic time (ms) of the
 * first batch committed without a flush after the last one began, 0 when
 * none; dirty mirrors since != 0 for the workers' lock-free look.
 */
struct auditq_flusher {
	pthread_mutex_t mtx;
	pthread_cond_t cond; /* on CLOCK_MONOTONIC */
	long long since;
	atomic_int dirty;
	int stop;
	pthread_t thread;
	int started;
	struct store *store;
};

struct auditq {
	struct server *srv;
	int flush_ms; /* AUDIT_READ_FLUSH_MS; 0: reads commit durably */
	struct auditq_lane lane;
	struct auditq_flusher flusher;
	struct auditq_worker *workers; /* by worker id */
	int nworkers;
};

static void
item_free(struct auditq_item *it)
{
	free(it->name);
	free(it->desc);
	free(it->ct); /* sealed */
	free(it->location);
	free(it->body);
	free(it);
}

static void
items_free(struct auditq_item *list)
{
	struct auditq_item *next;

	for (; list != NULL; list = next) {
		next = list->next;
		item_free(list);
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

/* Tell a thread waiting on cond to stop, and wait for its end (if any). */
static void
thread_end(pthread_mutex_t *mtx, pthread_cond_t *cond, int *stop,
    pthread_t *thread)
{
	pthread_mutex_lock(mtx);
	*stop = 1;
	pthread_cond_signal(cond);
	pthread_mutex_unlock(mtx);
	if (thread != NULL)
		pthread_join(*thread, NULL);
}

/* Call each item's handler with its result, and free it. */
static void
items_done(struct auditq_item *list)
{
	struct auditq_item *next;

	for (; list != NULL; list = next) {
		next = list->next;
		list->done(list->arg, list->result);
		item_free(list);
	}
}

/* ---- the deposits' lane ------------------------------------------------- */

/*
 * Hand each result (it->result) back to its worker's loop: one lock and
 * one wake-up per worker for the whole batch.
 */
static void
lane_deliver(struct auditq *q, struct auditq_item *batch)
{
	struct auditq_item *mine, **mt, *rest, **rt, *it, *next;
	struct auditq_worker *aw;

	while (batch != NULL) {
		aw = &q->workers[batch->w->id];
		mine = rest = NULL;
		mt = &mine;
		rt = &rest;
		for (it = batch; it != NULL; it = next) {
			next = it->next;
			it->next = NULL;
			if (it->w == batch->w) {
				*mt = it;
				mt = &it->next;
			} else {
				*rt = it;
				rt = &it->next;
			}
		}
		pthread_mutex_lock(&aw->done_mtx);
		*aw->done_tail = mine;
		aw->done_tail = mt;
		pthread_mutex_unlock(&aw->done_mtx);
		event_active(aw->done_ev, EV_READ, 0);
		batch = rest;
	}
}

/*
 * The batch's deposits in one statement, each item's result set: 1
 * committed (2 for a request seen before), else all -1 refused or 0
 * failed, which is returned.
 */
static int
lane_insert(struct auditq_lane *l, struct auditq_item *batch)
{
	struct auditq_item *it;
	int n = 0, r;

	for (it = batch; it != NULL; it = it->next, n++) {
		l->rows[n] = (struct deposit_row){it->object, it->actor,
		    it->org, it->name, it->desc, it->nonce, it->ct, it->ctlen,
		    {it->seen, it->status, it->location, it->body}};
		l->remote[n] = it->remote;
	}
	switch (store_deposit_insert(l->store, l->rows, l->remote, n,
	    l->seen)) {
	case STORE_OK:
		r = 1;
		break;
	case STORE_NO_SYNC:
		r = -1;
		break;
	default:
		r = 0;
	}
	for (it = batch, n = 0; it != NULL; it = it->next, n++)
		it->result = r == 1 && l->seen[n] ? 2 : r;
	return r;
}

/* Insert the batch of new deposits; hand back. */
static void
lane_run(struct auditq *q, struct auditq_item *batch)
{
	struct auditq_item *it, *next;

	if (lane_insert(&q->lane, batch) != 0 || batch->next == NULL) {
		lane_deliver(q, batch);
		return;
	}
	/* One of them is refused: find which, one by one. */
	for (it = batch; it != NULL; it = next) {
		next = it->next;
		it->next = NULL;
		lane_insert(&q->lane, it);
		lane_deliver(q, it);
	}
}

/* The lane's thread: takes every item waiting (up to a batch), commits. */
static void *
lane_main(void *arg)
{
	struct auditq *q = arg;
	struct auditq_lane *l = &q->lane;
	struct auditq_item *batch;
	int n;

	for (;;) {
		pthread_mutex_lock(&l->mtx);
		while (l->head == NULL && !l->stop)
			pthread_cond_wait(&l->cond, &l->mtx);
		if (l->head == NULL) {
			pthread_mutex_unlock(&l->mtx);
			break;
		}
		batch = batch_take(&l->head, &l->tail, &n);
		pthread_mutex_unlock(&l->mtx);
		lane_run(q, batch);
	}
	return NULL;
}

/* A worker's side of the lane: call the handlers of the results back. */
static void
lane_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auditq_worker *aw = arg;
	struct auditq_item *list;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&aw->done_mtx);
	list = aw->done_head;
	aw->done_head = NULL;
	aw->done_tail = &aw->done_head;
	pthread_mutex_unlock(&aw->done_mtx);
	items_done(list);
}

/* ---- the reads' durability window ----------------------------------------- */

/* A batch of reads committed without its flush: open a window, or join it. */
static void
flusher_note(struct auditq_flusher *f)
{
	if (atomic_load(&f->dirty))
		return; /* a window is open: the flush at its end covers this */
	pthread_mutex_lock(&f->mtx);
	if (f->since == 0) {
		f->since = mono_ms();
		atomic_store(&f->dirty, 1);
		pthread_cond_signal(&f->cond);
	}
	pthread_mutex_unlock(&f->mtx);
}

/* The window's end, as pthread_cond_timedwait's CLOCK_MONOTONIC time. */
static struct timespec
flusher_deadline(long long since, int ms)
{
	struct timespec now, until;
	long long left = since + ms - mono_ms();

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (left < 0)
		left = 0;
	until.tv_sec = now.tv_sec + left / 1000;
	until.tv_nsec = now.tv_nsec + (left % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	return until;
}

/*
 * The flusher's thread: waits for a window to open, then for its end (or
 * the queue's stop), and flushes; a window that opens meanwhile is
 * flushed at its own end.  A failed flush is logged: PostgreSQL's own
 * WAL writer still writes the rows out (within 3 × wal_writer_delay) if
 * it runs, and a crashed one lost them with the flush.
 */
static void *
flusher_main(void *arg)
{
	struct auditq *q = arg;
	struct auditq_flusher *f = &q->flusher;
	struct timespec until;
	int stop = 0;

	pthread_mutex_lock(&f->mtx);
	for (;;) {
		while (f->since == 0 && !f->stop)
			pthread_cond_wait(&f->cond, &f->mtx);
		if (f->since == 0)
			break; /* stopped, nothing left to flush */
		until = flusher_deadline(f->since, q->flush_ms);
		while (!f->stop &&
		    pthread_cond_timedwait(&f->cond, &f->mtx, &until) == 0)
			;
		stop = f->stop;
		f->since = 0;
		atomic_store(&f->dirty, 0);
		pthread_mutex_unlock(&f->mtx);
		/* A passive commits no reads; its rows go to the journal. */
		if (!ha_is_passive(q->srv->ha) &&
		    store_wal_flush(f->store) == STORE_FAIL)
			log_warnx("audit queue: the audit rows of reads "
				  "answered in the last %d ms may not be on "
				  "disk yet",
			    q->flush_ms);
		pthread_mutex_lock(&f->mtx);
		if (stop && f->since == 0)
			break;
	}
	pthread_mutex_unlock(&f->mtx);
	return NULL;
}

static void
flusher_init(struct auditq_flusher *f)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&f->mtx, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cond, &ca);
	pthread_condattr_destroy(&ca);
}

static int
flusher_start(struct auditq *q)
{
	struct auditq_flusher *f = &q->flusher;

	if (q->flush_ms == 0)
		return 0; /* every batch is flushed as it commits */
	if ((f->store = store_new(q->srv->conf, "audit flusher")) == NULL ||
	    pthread_create(&f->thread, NULL, flusher_main, q) != 0)
		return -1;
	f->started = 1;
	return 0;
}

/* After the workers' batches: what they committed is flushed, then it ends. */
static void
flusher_stop(struct auditq *q)
{
	struct auditq_flusher *f = &q->flusher;

	thread_end(&f->mtx, &f->cond, &f->stop, f->started ? &f->thread : NULL);
	store_free(f->store);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->mtx);
}

/* ---- a worker's reads ---------------------------------------------------- */

/* The batch's rows kept (ok), else each on its own; then their handlers. */
static void
reads_done(struct auditq_worker *aw, struct auditq_item *list, int ok)
{
	struct server *srv = aw->q->srv;
	struct auditq_item *it;

	for (it = list; it != NULL; it = it->next)
		it->result = ok || audit(srv->ha, aw->w->store,
				       AUDIT_ROW(.actor = it->actor,
					   .org = it->org,
					   .action = "deposit_read",
					   .object = it->object,
					   .remote = it->remote,
					   .result = "ok")) == 0;
	items_done(list);
}

static void
reads_close(struct auditq_worker *aw)
{
	if (aw->rev != NULL)
		event_free(aw->rev);
	if (aw->wev != NULL)
		event_free(aw->wev);
	aw->rev = aw->wev = NULL;
	store_batch_close(aw->store);
}

/* The batch out failed or its connection broke: each row on its own. */
static void
reads_fail(struct auditq_worker *aw)
{
	struct auditq_item *list = aw->flight;

	aw->flight = NULL;
	reads_close(aw);
	reads_done(aw, list, 0);
}

static void reads_send(struct auditq_worker *aw);

/* The result of the batch out, as it comes in. */
static void
reads_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auditq_worker *aw = arg;
	struct auditq_item *list;
	int r;

	(void)fd;
	(void)what;
	if (aw->flight == NULL)
		return;
	switch (r = store_batch_poll(aw->store)) {
	case 2: /* not all in yet */
		return;
	case -1:
		reads_fail(aw);
		break;
	default: /* done: the handlers, and the next batch */
		list = aw->flight;
		aw->flight = NULL;
		if (r == 1 && aw->q->flush_ms > 0)
			flusher_note(&aw->q->flusher);
		reads_done(aw, list, r);
	}
	reads_send(aw);
}

/* The batch did not fit the socket: the rest as it drains. */
static void
reads_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auditq_worker *aw = arg;
	int f;

	(void)fd;
	(void)what;
	if ((f = store_batch_flush(aw->store)) == 1)
		event_add(aw->wev, NULL);
	else if (f == -1) {
		reads_fail(aw);
		reads_send(aw);
	}
}

/* The connection, made and watched by the worker's loop; -1 when none. */
static int
reads_open(struct auditq_worker *aw)
{
	int fd, fresh;

	if ((fd = store_batch_open(aw->store, &fresh)) == -1) {
		reads_close(aw);
		return -1;
	}
	if (!fresh && aw->rev != NULL)
		return 0;
	if (aw->rev != NULL)
		event_free(aw->rev);
	if (aw->wev != NULL)
		event_free(aw->wev);
	if ((aw->rev = event_new(aw->w->base, fd, EV_READ | EV_PERSIST,
		 reads_read_cb, aw)) == NULL ||
	    (aw->wev = event_new(aw->w->base, fd, EV_WRITE, reads_write_cb,
		 aw)) == NULL ||
	    event_add(aw->rev, NULL) == -1) {
		log_warnx("audit queue: worker %d: cannot watch its database "
			  "connection",
		    aw->w->id);
		reads_close(aw);
		return -1;
	}
	return 0;
}

/* Send what the worker set aside as one batch, unless one is out. */
static void
reads_send(struct auditq_worker *aw)
{
	struct auditq_item *it;
	int n, f;

	while (aw->flight == NULL && aw->pending != NULL) {
		aw->flight = batch_take(&aw->pending, &aw->ptail, &n);
		if (reads_open(aw) == -1) {
			reads_fail(aw);
			continue;
		}
		n = 0;
		for (it = aw->flight; it != NULL; it = it->next)
			aw->rows[n++] = (struct audit_row){.actor = it->actor,
			    .org = it->org, .object = it->object,
			    .remote = it->remote};
		if ((f = store_batch_send(aw->store, aw->rows, n,
			 aw->q->flush_ms == 0)) == -1) {
			reads_fail(aw);
			continue;
		}
		if (f == 1)
			event_add(aw->wev, NULL);
	}
}

static void
reads_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	reads_send(arg);
}

/* ---- the queue ------------------------------------------------------------- */

static int
worker_part_init(struct auditq *q, struct auditq_worker *aw, struct worker *w)
{
	char name[48];

	aw->q = q;
	aw->w = w;
	aw->ptail = &aw->pending;
	aw->done_tail = &aw->done_head;
	pthread_mutex_init(&aw->done_mtx, NULL);
	snprintf(name, sizeof(name), "audit queue of worker %d", w->id);
	if ((aw->store = store_new(q->srv->conf, name)) == NULL ||
	    (aw->kick = event_new(w->base, -1, 0, reads_kick_cb, aw)) == NULL ||
	    (aw->done_ev = event_new(w->base, -1, 0, lane_done_cb, aw)) ==
		NULL)
		return -1;
	return 0;
}

struct auditq *
auditq_start(struct server *srv)
{
	struct auditq_lane *l;
	struct auditq *q;
	int i;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->srv = srv;
	q->flush_ms = srv->conf->audit_read_flush_ms;
	flusher_init(&q->flusher);
	l = &q->lane;
	l->tail = &l->head;
	pthread_mutex_init(&l->mtx, NULL);
	pthread_cond_init(&l->cond, NULL);
	if ((l->store = store_new(srv->conf, "deposit lane")) == NULL ||
	    (q->workers = calloc((size_t)srv->nworkers,
		 sizeof(*q->workers))) == NULL) {
		auditq_stop(q);
		return NULL;
	}
	q->nworkers = srv->nworkers;
	for (i = 0; i < q->nworkers; i++)
		if (worker_part_init(q, &q->workers[i], &srv->workers[i]) ==
		    -1) {
			auditq_stop(q);
			return NULL;
		}
	if (pthread_create(&l->thread, NULL, lane_main, q) != 0) {
		auditq_stop(q);
		return NULL;
	}
	l->started = 1;
	if (flusher_start(q) == -1) {
		auditq_stop(q);
		return NULL;
	}
	return q;
}

void
auditq_stop(struct auditq *q)
{
	struct auditq_lane *l;
	int i;

	if (q == NULL)
		return;
	l = &q->lane;
	thread_end(&l->mtx, &l->cond, &l->stop, l->started ? &l->thread : NULL);
	store_free(l->store);
	pthread_mutex_destroy(&l->mtx);
	pthread_cond_destroy(&l->cond);
	for (i = 0; i < q->nworkers; i++) {
		struct auditq_worker *aw = &q->workers[i];
		reads_close(aw); /* waits for the batch out */
		items_free(aw->flight);
		items_free(aw->pending);
		/* Handed back after the loop stopped: their requests are gone. */
		items_free(aw->done_head);
		store_free(aw->store);
		if (aw->kick != NULL)
			event_free(aw->kick);
		if (aw->done_ev != NULL)
			event_free(aw->done_ev);
		pthread_mutex_destroy(&aw->done_mtx);
	}
	flusher_stop(q); /* the reads answered are flushed */
	free(q->workers);
	free(q);
}

/* A new item for w with its audit fields; NULL when out of memory. */
static struct auditq_item *
item_new(struct worker *w, const char *actor, const char *org,
    const char *object, const char *remote, auditq_done_fn *done, void *arg)
{
	struct auditq_item *it;

	if ((it = calloc(1, sizeof(*it))) == NULL)
		return NULL;
	it->w = w;
	it->done = done;
	it->arg = arg;
	snprintf(it->actor, sizeof(it->actor), "%s", actor);
	snprintf(it->org, sizeof(it->org), "%s", org);
	snprintf(it->object, sizeof(it->object), "%s", object);
	snprintf(it->remote, sizeof(it->remote), "%s", remote ? remote : "");
	return it;
}

int
auditq_read(struct auditq *q, struct worker *w, const struct audit_row *r,
    auditq_done_fn *done, void *arg)
{
	struct auditq_worker *aw;
	struct auditq_item *it;

	/* A passive's rows go to its journal (audit.c), not this queue. */
	if (q == NULL || ha_is_passive(q->srv->ha) ||
	    (it = item_new(w, r->actor, r->org, r->object, r->remote, done,
		 arg)) == NULL)
		return -1;
	/* Set aside; the batch goes at the end of this loop turn. */
	aw = &q->workers[w->id];
	*aw->ptail = it;
	aw->ptail = &it->next;
	if (aw->flight == NULL)
		event_active(aw->kick, EV_READ, 0);
	return 0;
}

int
auditq_create(struct auditq *q, struct worker *w, const struct deposit_row *d,
    const char *remote, auditq_done_fn *done, void *arg)
{
	struct auditq_lane *l;
	struct auditq_item *it;

	if (q == NULL || ha_is_passive(q->srv->ha) ||
	    (it = item_new(w, d->owner, d->org, d->uuid, remote, done, arg)) ==
		NULL)
		return -1;
	if ((it->name = strdup(d->name)) == NULL ||
	    (d->desc != NULL && (it->desc = strdup(d->desc)) == NULL)) {
		item_free(it);
		return -1;
	}
	if ((d->ans.location != NULL &&
		(it->location = strdup(d->ans.location)) == NULL) ||
	    (it->body = strdup(d->ans.body)) == NULL) {
		item_free(it);
		return -1;
	}
	memcpy(it->seen, d->ans.seen, CRYPTO_HASH_LEN);
	it->status = d->ans.status;
	memcpy(it->nonce, d->nonce, CRYPTO_NONCE_LEN);
	it->ct = d->ct; /* taken over: the caller forgets it */
	it->ctlen = d->ctlen;
	l = &q->lane;
	pthread_mutex_lock(&l->mtx);
	/* The thread is woken once; what queues meanwhile joins its batch. */
	if (l->head == NULL)
		pthread_cond_signal(&l->cond);
	*l->tail = it;
	l->tail = &it->next;
	pthread_mutex_unlock(&l->mtx);
	return 0;
}
