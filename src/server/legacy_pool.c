/*
 * legacy_pool.c - the legacy threads (see legacy_pool.h): one queue of
 * jobs under a mutex, the threads taking them in turn, and for each
 * worker a list of the jobs done, which an event of its loop sends.
 */
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clientkey.h"
#include "legacy_pool.h"
#include "log.h"
#include "store/store.h"

/* A worker's answers made: sent by its loop (back_cb). */
struct legacy_back {
	struct worker *w;
	pthread_mutex_t mtx;
	struct pool_job *done;
	struct event *ev;
};

struct legacy_pool {
	struct server *srv;
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	struct pool_job *head, *tail; /* waiting for a thread */
	int stopping;
	int n, started;
	pthread_t *threads;
	struct worker *ctx;	  /* each thread's: store, keys, srv */
	struct legacy_back *back; /* [w->id] */
};

/* In the worker's loop: send the answers made for its connections. */
static void
back_cb(evutil_socket_t fd, short what, void *arg)
{
	struct legacy_back *b = arg;
	struct pool_job *j, *next;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&b->mtx);
	j = b->done;
	b->done = NULL;
	pthread_mutex_unlock(&b->mtx);
	for (; j != NULL; j = next) {
		next = j->next;
		j->done(j, 1);
	}
}

struct pool_thread {
	struct legacy_pool *p;
	struct worker *ctx;
};

static void *
pool_main(void *arg)
{
	struct legacy_pool *p = ((struct pool_thread *)arg)->p;
	struct worker *ctx = ((struct pool_thread *)arg)->ctx;
	struct legacy_back *b;
	struct pool_job *j;

	free(arg);
	for (;;) {
		pthread_mutex_lock(&p->mtx);
		while (p->head == NULL && !p->stopping)
			pthread_cond_wait(&p->cond, &p->mtx);
		if (p->stopping) {
			pthread_mutex_unlock(&p->mtx);
			return NULL;
		}
		j = p->head;
		if ((p->head = j->next) == NULL)
			p->tail = NULL;
		pthread_mutex_unlock(&p->mtx);
		j->next = NULL;
		j->run(ctx, j);
		b = &p->back[j->w->id];
		pthread_mutex_lock(&b->mtx);
		j->next = b->done;
		b->done = j;
		pthread_mutex_unlock(&b->mtx);
		event_active(b->ev, EV_READ, 0);
	}
}

struct legacy_pool *
legacy_pool_start(struct server *srv, int n, char *err, size_t errlen)
{
	struct legacy_pool *p;
	struct pool_thread *t;
	char name[32];
	int i, e;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		goto oom;
	p->srv = srv;
	pthread_mutex_init(&p->mtx, NULL);
	pthread_cond_init(&p->cond, NULL);
	if (n == 0)
		return p;
	p->n = n;
	if ((p->threads = calloc((size_t)n, sizeof(*p->threads))) == NULL ||
	    (p->ctx = calloc((size_t)n, sizeof(*p->ctx))) == NULL ||
	    (p->back = calloc((size_t)srv->nworkers, sizeof(*p->back))) == NULL)
		goto oom;
	for (i = 0; i < srv->nworkers; i++) {
		p->back[i].w = &srv->workers[i];
		pthread_mutex_init(&p->back[i].mtx, NULL);
		if ((p->back[i].ev = event_new(srv->workers[i].base, -1, 0,
			 back_cb, &p->back[i])) == NULL)
			goto oom;
	}
	for (i = 0; i < n; i++) {
		p->ctx[i].srv = srv;
		p->ctx[i].id = -1; /* no loop, no connections */
		snprintf(name, sizeof(name), "legacy thread %d", i);
		if ((p->ctx[i].store = store_new(srv->conf, name)) == NULL ||
		    (p->ctx[i].keys = clientkey_ring_new()) == NULL)
			goto oom;
	}
	for (i = 0; i < n; i++) {
		if ((t = malloc(sizeof(*t))) == NULL)
			goto oom;
		t->p = p;
		t->ctx = &p->ctx[i];
		if ((e = pthread_create(&p->threads[i], NULL, pool_main, t)) !=
		    0) {
			free(t);
			snprintf(
			    err, errlen, "pthread_create: %s", strerror(e));
			legacy_pool_stop(p);
			legacy_pool_free(p);
			return NULL;
		}
		p->started++;
	}
	return p;
oom:
	snprintf(err, errlen, "cannot start the legacy threads: out of memory");
	legacy_pool_stop(p);
	legacy_pool_free(p);
	return NULL;
}

int
legacy_pool_submit(struct legacy_pool *p, struct pool_job *j)
{
	int ret = -1;

	if (p == NULL || p->n == 0)
		return -1;
	pthread_mutex_lock(&p->mtx);
	if (!p->stopping) {
		j->next = NULL;
		if (p->tail != NULL)
			p->tail->next = j;
		else
			p->head = j;
		p->tail = j;
		pthread_cond_signal(&p->cond);
		ret = 0;
	}
	pthread_mutex_unlock(&p->mtx);
	return ret;
}

void
legacy_pool_stop(struct legacy_pool *p)
{
	struct pool_job *j, *next;
	int i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mtx);
	p->stopping = 1;
	j = p->head;
	p->head = p->tail = NULL;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->mtx);
	for (i = 0; i < p->started; i++)
		pthread_join(p->threads[i], NULL);
	p->started = 0;
	/* Their connections close with the workers: nothing is sent. */
	for (; j != NULL; j = next) {
		next = j->next;
		j->done(j, 0);
	}
}

void
legacy_pool_free(struct legacy_pool *p)
{
	struct pool_job *j, *next;
	int i;

	if (p == NULL)
		return;
	for (i = 0; p->back != NULL && i < p->srv->nworkers; i++) {
		for (j = p->back[i].done; j != NULL; j = next) {
			next = j->next;
			j->done(j, 0);
		}
		if (p->back[i].ev != NULL)
			event_free(p->back[i].ev);
		pthread_mutex_destroy(&p->back[i].mtx);
	}
	for (i = 0; p->ctx != NULL && i < p->n; i++) {
		store_free(p->ctx[i].store);
		clientkey_ring_free(p->ctx[i].keys);
	}
	pthread_mutex_destroy(&p->mtx);
	pthread_cond_destroy(&p->cond);
	free(p->back);
	free(p->ctx);
	free(p->threads);
	free(p);
}
