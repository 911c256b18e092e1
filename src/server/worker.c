/*
 * worker.c - the worker threads: one event loop each, all accepting from
 * the one listening socket.  Whichever worker wakes first accepts, and
 * hands the connection to the worker with the fewest open (http.c serves
 * it from then on).  Each worker has its own database connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clientkey.h"
#include "connlimit.h"
#include "http.h"
#include "store/store.h"
#include "worker.h"

#define WORKER_TIMEOUT_SECS 30
#define WORKER_DRAIN_MSECS 500

static void
peer_text(const struct sockaddr *sa, char *out, size_t len)
{
	const void *a = NULL;

	if (sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (a == NULL ||
	    inet_ntop(sa->sa_family, a, out, (socklen_t)len) == NULL)
		out[0] = '\0';
}

/* A connection accepted by one worker for another (accept_cb). */
struct http_handoff {
	struct http_handoff *next;
	int fd;
	int plain; /* from the HKP listener: no TLS */
	char peer[INET6_ADDRSTRLEN];
	struct connlimit_addr addr;
};

/* Connections other workers accepted for this one. */
static void
handoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct http_handoff *h, *next;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&w->hand_mtx);
	h = w->hand_head;
	w->hand_head = NULL;
	pthread_mutex_unlock(&w->hand_mtx);
	for (; h != NULL; h = next) {
		next = h->next;
		http_conn_new(w, h->fd, h->peer, &h->addr, h->plain);
		free(h);
	}
}

/* Asked to close its longest-idle connections (connlimit.c). */
static void
evict_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	http_evict_idle(arg);
}

/* Refused: closed with a reset, which leaves no TIME_WAIT behind. */
static void
refuse(int fd)
{
	struct linger lg = {1, 0};

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/*
 * Whichever worker wakes first accepts, which left one worker with a
 * third more connections than the other and their answers waiting
 * longer.  A new connection goes to the worker with the fewest (this one
 * on a tie); another worker gets it through its hand-off queue, one
 * wake-up per connection.  Before that it is counted (connlimit.c), and
 * refused at once, before any TLS, when its address has its share; at
 * the limit, the worker holding the longest-idle connection closes it.
 */
static void
accept_on(struct worker *w, int fd, struct sockaddr *sa, int plain)
{
	struct worker *to = w, *evict;
	struct http_handoff *h;
	struct connlimit_addr a;
	char peer[INET6_ADDRSTRLEN];
	int i;

	connlimit_addr_of(sa, &a);
	if (connlimit_admit(w->srv, w, &a, &evict) != CONNLIMIT_ADMIT) {
		refuse(fd);
		return;
	}
	if (evict == w)
		http_evict_idle(w);
	else if (evict != NULL)
		event_active(evict->evict_ev, EV_READ, 0);
	peer_text(sa, peer, sizeof(peer));
	for (i = 0; i < w->srv->nworkers; i++) {
		struct worker *o = &w->srv->workers[i];
		if (atomic_load(&o->nconns) < atomic_load(&to->nconns))
			to = o;
	}
	atomic_fetch_add(&to->nconns, 1);
	if (to == w || (h = calloc(1, sizeof(*h))) == NULL) {
		if (to != w) {
			atomic_fetch_sub(&to->nconns, 1);
			atomic_fetch_add(&w->nconns, 1);
		}
		http_conn_new(w, fd, peer, &a, plain);
		return;
	}
	h->fd = fd;
	h->plain = plain;
	h->addr = a;
	memcpy(h->peer, peer, sizeof(h->peer));
	pthread_mutex_lock(&to->hand_mtx);
	h->next = to->hand_head;
	to->hand_head = h;
	pthread_mutex_unlock(&to->hand_mtx);
	event_active(to->hand_ev, EV_READ, 0);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	(void)l;
	(void)salen;
	accept_on(arg, fd, sa, 0);
}

/* The plain-HTTP HKP listener's (HKP_PORT). */
static void
accept_hkp_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	(void)l;
	(void)salen;
	accept_on(arg, fd, sa, 1);
}

static void
drain_done(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	event_base_loopbreak(w->base);
}

/* SIGTERM: stop accepting, let what is in flight finish, then leave. */
static void
worker_stop(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct timeval tv = {0, WORKER_DRAIN_MSECS * 1000};

	(void)fd;
	(void)what;
	if (w->listener != NULL) {
		evconnlistener_free(w->listener);
		w->listener = NULL;
	}
	if (w->hkp_listener != NULL) {
		evconnlistener_free(w->hkp_listener);
		w->hkp_listener = NULL;
	}
	event_base_once(w->base, -1, EV_TIMEOUT, drain_done, w, &tv);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	event_base_dispatch(w->base);
	return NULL;
}

/*
 * An event loop whose epoll changes are batched per loop turn (a
 * connection's own event never changes; the listener's and timers' do).
 * Descriptors are never dup'ed here, which is what the flag asks of us.
 */
static struct event_base *
worker_base(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	if (cfg == NULL)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

static int
worker_init(
    struct server *srv, struct worker *w, int id, char *err, size_t errlen)
{
	static const struct timeval idle = {WORKER_TIMEOUT_SECS, 0};
	char name[32];

	w->srv = srv;
	w->id = id;
	atomic_store(&w->idle_since, LLONG_MAX);
	pthread_mutex_init(&w->hand_mtx, NULL);
	snprintf(name, sizeof(name), "worker %d", id);
	if ((w->store = store_new(srv->conf, name)) == NULL ||
	    (w->keys = clientkey_ring_new()) == NULL ||
	    (w->base = worker_base()) == NULL ||
	    (w->hand_ev = event_new(w->base, -1, 0, handoff_cb, w)) == NULL ||
	    (w->evict_ev = event_new(w->base, -1, 0, evict_cb, w)) == NULL ||
	    (w->stop_ev = event_new(w->base, -1, 0, worker_stop, w)) == NULL) {
		snprintf(err, errlen, "cannot create the event loop");
		return -1;
	}
	/* Every connection's timer has the same length: an O(1) queue. */
	if ((w->timeout = event_base_init_common_timeout(w->base, &idle)) ==
	    NULL)
		w->timeout = &idle;
	/* Every worker accepts from the same socket; it is closed by main. */
	w->listener = evconnlistener_new(
	    w->base, accept_cb, w, LEV_OPT_CLOSE_ON_EXEC, 0, srv->lfd);
	if (w->listener == NULL ||
	    (srv->hkp_lfd != -1 &&
		(w->hkp_listener = evconnlistener_new(w->base, accept_hkp_cb,
		     w, LEV_OPT_CLOSE_ON_EXEC, 0, srv->hkp_lfd)) == NULL)) {
		snprintf(err, errlen, "cannot listen: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int
workers_init(struct server *srv, char *err, size_t errlen)
{
	int i;

	if ((srv->workers = calloc(
		 (size_t)srv->nworkers, sizeof(*srv->workers))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < srv->nworkers; i++)
		if (worker_init(srv, &srv->workers[i], i, err, errlen) == -1)
			return -1;
	return 0;
}

int
workers_run(struct server *srv, char *err, size_t errlen)
{
	int i, e;

	for (i = 0; i < srv->nworkers; i++)
		if ((e = pthread_create(&srv->workers[i].thread, NULL,
			 worker_main, &srv->workers[i])) != 0) {
			snprintf(
			    err, errlen, "pthread_create: %s", strerror(e));
			return -1;
		}
	return 0;
}

void
workers_stop(struct server *srv)
{
	int i;

	for (i = 0; i < srv->nworkers; i++)
		event_active(srv->workers[i].stop_ev, EV_READ, 0);
	for (i = 0; i < srv->nworkers; i++)
		pthread_join(srv->workers[i].thread, NULL);
}

void
workers_free(struct server *srv)
{
	int i;

	for (i = 0; srv->workers != NULL && i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];
		http_conn_close_all(w);
		while (w->hand_head != NULL) {
			struct http_handoff *h = w->hand_head;
			w->hand_head = h->next;
			http_conn_abandon(w, h->fd, &h->addr);
			free(h);
		}
		if (w->hand_ev != NULL)
			event_free(w->hand_ev);
		if (w->evict_ev != NULL)
			event_free(w->evict_ev);
		pthread_mutex_destroy(&w->hand_mtx);
		if (w->listener != NULL)
			evconnlistener_free(w->listener);
		if (w->hkp_listener != NULL)
			evconnlistener_free(w->hkp_listener);
		if (w->stop_ev != NULL)
			event_free(w->stop_ev);
		if (w->base != NULL)
			event_base_free(w->base);
		store_free(w->store);
		clientkey_ring_free(w->keys);
	}
	free(srv->workers);
	srv->workers = NULL;
}
