/*
 * http.c - the HTTPS front: one event loop per worker thread, all
 * accepting from one listening socket, each connection a
 * bufferevent_openssl under libevent's evhttp.  Requests are routed here;
 * every answer that is not data is JSON {"error": ..., "code": ...}.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>
#include <sys/queue.h>
#include <libpq-fe.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "server.h"

#define HTTP_MAX_HEADERS (16 * 1024)
/*
 * Bodies: the API allows 128 KiB and answers a larger one with JSON 413
 * itself; evhttp's own limit (twice that) bounds what is buffered and
 * answers beyond it with libevent's HTML 413 and closes the connection
 * (libevent 2.1 has no hook to shape that answer).
 */
#define HTTP_MAX_BODY (256 * 1024)
#define API_MAX_BODY (128 * 1024)
#define HTTP_TIMEOUT_SECS 30
#define HTTP_DRAIN_MSECS 500

void
http_reply(struct evhttp_request *req, int status, const char *ctype,
    const char *body, size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *buf;

	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "Strict-Transport-Security", "max-age=31536000");
	if ((buf = evbuffer_new()) == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
		evbuffer_add(buf, body, len);
	evhttp_send_reply(req, status, NULL, buf);
	evbuffer_free(buf);
}

void
http_reply_json(struct evhttp_request *req, int status, json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT);

	if (s == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	http_reply(req, status, "application/json", s, strlen(s));
	free(s);
}

void
http_reply_error(struct evhttp_request *req, int status, const char *code,
    const char *msg)
{
	json_t *o = json_pack("{s:s, s:s}", "error", msg, "code", code);

	if (o == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	http_reply_json(req, status, o);
	json_decref(o);
}

const char *
http_peer(struct evhttp_request *req)
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port = 0;

	if (c == NULL)
		return "";
	evhttp_connection_get_peer(c, &addr, &port);
	return addr != NULL ? addr : "";
}

PGconn *
worker_db(struct worker *w)
{
	char err[512];

	if (w->db != NULL && PQstatus(w->db) != CONNECTION_OK) {
		w->prepared = 0;  /* a new session has none */
		PQreset(w->db);
	}
	if (w->db == NULL &&
	    (w->db = db_connect(w->srv->conf, err, sizeof(err))) == NULL) {
		log_warnx("worker %d: database: %s", w->id, err);
		return NULL;
	}
	if (PQstatus(w->db) != CONNECTION_OK) {
		log_warnx("worker %d: database: connection lost", w->id);
		return NULL;
	}
	return w->db;
}

static int
worker_db_version(struct worker *w)
{
	int v;

	if (worker_db(w) == NULL)
		return -1;
	if ((v = db_schema_version(w->db)) < 0 &&
	    PQstatus(w->db) != CONNECTION_OK) {
		/* The connection broke under us: one more try. */
		w->prepared = 0;
		PQreset(w->db);
		v = db_schema_version(w->db);
	}
	return v;
}

static void
route_health(struct worker *w, struct evhttp_request *req)
{
	int v = worker_db_version(w), writes = 0;
	/* Reachable but on another schema than this binary's is not ok. */
	int ok = v == DB_SCHEMA_VERSION;
	json_t *o, *repl = ha_health(w->srv, &writes);
	size_t dn, dbytes, dlimit;
	int dlive, dfilling;

	depcache_stats(w->srv->depcache, &dn, &dbytes, &dlimit, &dlive,
	    &dfilling);
	o = json_pack("{s:s, s:s, s:b, s:i, s:i, s:o?, s:b, s:b, "
	    "s:{s:b, s:I, s:I, s:I, s:b}}",
	    "status", ok ? "ok" : "degraded",
	    "role", ha_is_passive(w->srv) ? "passive" : "active",
	    "database", v >= 0,
	    "schema_version", v >= 0 ? v : 0,
	    "schema_version_expected", DB_SCHEMA_VERSION,
	    "replication", repl,
	    "writes", ok && writes,
	    "draining", atomic_load(&w->srv->draining) != 0,
	    "deposit_cache", "live", dlive, "deposits", (json_int_t)dn,
	    "bytes", (json_int_t)dbytes, "limit_bytes", (json_int_t)dlimit,
	    "filling", dfilling);
	if (o == NULL) {
		http_reply_error(req, HTTP_INTERNAL, "internal", "out of memory");
		return;
	}
	http_reply_json(req, ok ? HTTP_OK : HTTP_SERVUNAVAIL, o);
	json_decref(o);
}

/* "/?a=ACTION": the Key Trustee Server's own actions. */
static void
route_action(struct worker *w, struct evhttp_request *req, const char *query)
{
	struct evkeyvalq q;
	const char *a;

	TAILQ_INIT(&q);
	if (query == NULL || evhttp_parse_query_str(query, &q) != 0 ||
	    (a = evhttp_find_header(&q, "a")) == NULL) {
		evhttp_clear_headers(&q);
		http_reply_error(req, HTTP_NOTFOUND, "not_found",
		    "no such resource; try /?a=fingerprint");
		return;
	}
	if (strcmp(a, "fingerprint") == 0)
		http_reply(req, HTTP_OK, "text/plain", w->srv->qfpr,
		    strlen(w->srv->qfpr));
	else if (strcmp(a, "pubkey") == 0)
		http_reply(req, HTTP_OK, "application/pgp-keys", w->srv->pubkey,
		    w->srv->pubkeylen);
	else
		http_reply_error(req, HTTP_BADREQUEST, "unknown_action",
		    "unknown action in parameter a (known: fingerprint, "
		    "pubkey)");
	evhttp_clear_headers(&q);
}

/* "/?q=TOKEN": the contact registration link; 1 when it was that. */
static int
route_contact(struct worker *w, struct evhttp_request *req, const char *query)
{
	struct evkeyvalq q;
	const char *t;
	int ret = 0;

	TAILQ_INIT(&q);
	if (query != NULL && evhttp_parse_query_str(query, &q) == 0 &&
	    (t = evhttp_find_header(&q, "q")) != NULL) {
		contact_page(w, req, t);
		ret = 1;
	}
	evhttp_clear_headers(&q);
	return ret;
}

static void
method_not_allowed(struct evhttp_request *req, const char *allow)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
	    allow);
	http_reply_error(req, 405, "method_not_allowed",
	    "method not allowed on this resource");
}

/* /v1/...: the JSON API. */
static void
route_v1(struct worker *w, struct evhttp_request *req, const char *path,
    enum evhttp_cmd_type cmd)
{
	const char *rest;

	if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) >
	    API_MAX_BODY) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Connection", "close");
		http_reply_error(req, 413, "too_large",
		    "request body larger than 128 KiB");
		return;
	}
	if (strcmp(path, "/v1/register") == 0) {
		if (cmd != EVHTTP_REQ_POST)
			method_not_allowed(req, "POST");
		else
			api_register(w, req);
	} else if (strcmp(path, "/v1/deposits") == 0) {
		if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_POST)
			method_not_allowed(req, "GET, POST");
		else
			api_deposits(w, req, NULL);
	} else if (strncmp(path, "/v1/deposits/", 13) == 0 &&
	    *(rest = path + 13) != '\0' && strchr(rest, '/') == NULL) {
		if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_DELETE)
			method_not_allowed(req, "GET, DELETE");
		else
			api_deposits(w, req, rest);
	} else
		http_reply_error(req, HTTP_NOTFOUND, "not_found",
		    "no such resource");
}

static void
route(struct evhttp_request *req, void *arg)
{
	struct worker *w = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;

	if (atomic_load(&w->srv->draining))
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Connection", "close");
	if (path == NULL || *path == '\0')
		path = "/";
	if (strncmp(path, "/v1/", 4) == 0) {
		route_v1(w, req, path, cmd);
		return;
	}
	if (strcmp(path, "/") == 0 && route_contact(w, req, query))
		return;
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		method_not_allowed(req, "GET, HEAD");
		return;
	}
	if (strcmp(path, "/") == 0)
		route_action(w, req, query);
	else if (strcmp(path, "/health") == 0)
		route_health(w, req);
	else
		http_reply_error(req, HTTP_NOTFOUND, "not_found",
		    "no such resource");
}

/*
 * evhttp adds an answer's headers and its body to the output as two
 * chains, and the TLS bufferevent makes one SSL_write, one record and one
 * write(2) of each.  Made contiguous as they come (one TLS record holds up
 * to 16 KiB), an answer leaves in one record and one system call.
 */
#define TLS_COALESCE_MAX 16384
static void
tls_coalesce_cb(struct evbuffer *out, const struct evbuffer_cb_info *info,
    void *arg)
{
	(void)arg;
	if (info->n_added > 0 &&
	    evbuffer_get_length(out) <= TLS_COALESCE_MAX &&
	    evbuffer_peek(out, -1, NULL, NULL, 0) > 1)
		(void)evbuffer_pullup(out, -1);
}

static struct bufferevent *
tls_bevcb(struct event_base *base, void *arg)
{
	struct worker *w = arg;
	SSL_CTX *ctx = server_ctx_get(w->srv);
	struct bufferevent *bev;
	SSL *ssl = SSL_new(ctx);

	SSL_CTX_free(ctx);  /* the SSL holds its own reference */
	/*
	 * Fail closed: given NULL, libevent 2.1 would serve the connection
	 * over a plain socket.  Neither allocation fails but out of memory,
	 * where exiting (the supervisor restarts us) is the safe answer.
	 */
	if (ssl == NULL) {
		log_ssl("SSL_new");
		fatalx("cannot make a TLS connection: refusing to serve "
		    "plain HTTP");
	}
	/* Counted against --max-connections (or marked to be refused). */
	(void)conn_admit(w->srv, ssl);
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		fatalx("cannot make a TLS bufferevent: refusing to serve "
		    "plain HTTP");
	/* Clients that close without close_notify are not an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	if (evbuffer_add_cb(bufferevent_get_output(bev), tls_coalesce_cb,
	    NULL) == NULL)
		fatalx("cannot make a TLS bufferevent: out of memory");
	return bev;
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
	struct timeval tv = { 0, HTTP_DRAIN_MSECS * 1000 };

	(void)fd;
	(void)what;
	if (w->bound != NULL) {
		evhttp_del_accept_socket(w->http, w->bound);
		w->bound = NULL;
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
 * An event loop whose epoll changes are batched per loop turn: evhttp and
 * the TLS bufferevents turn reading and writing off and on around every
 * request (four epoll_ctl calls a request without the change list).
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
worker_init(struct server *srv, struct worker *w, int id, char *err,
    size_t errlen)
{
	struct evconnlistener *l;

	w->srv = srv;
	w->id = id;
	pthread_mutex_init(&w->done_mtx, NULL);
	w->done_tail = &w->done_head;
	if ((w->base = worker_base()) == NULL ||
	    (w->http = evhttp_new(w->base)) == NULL ||
	    (w->stop_ev = event_new(w->base, -1, 0, worker_stop, w)) == NULL ||
	    (w->done_ev = event_new(w->base, -1, 0, auditq_done_cb, w)) ==
	    NULL) {
		snprintf(err, errlen, "cannot create the event loop");
		return -1;
	}
	evhttp_set_bevcb(w->http, tls_bevcb, w);
	evhttp_set_gencb(w->http, route, w);
	evhttp_set_max_headers_size(w->http, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(w->http, HTTP_MAX_BODY);
	evhttp_set_timeout(w->http, HTTP_TIMEOUT_SECS);
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_POST | EVHTTP_REQ_DELETE | EVHTTP_REQ_PUT);
	/* Every worker accepts from the same socket; it is closed by main. */
	l = evconnlistener_new(w->base, NULL, NULL, LEV_OPT_CLOSE_ON_EXEC, 0,
	    srv->lfd);
	if (l == NULL || (w->bound = evhttp_bind_listener(w->http, l)) == NULL) {
		if (l != NULL)
			evconnlistener_free(l);
		snprintf(err, errlen, "cannot listen: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int
http_workers_start(struct server *srv, char *err, size_t errlen)
{
	int i;

	if ((srv->workers = calloc((size_t)srv->nworkers,
	    sizeof(*srv->workers))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < srv->nworkers; i++)
		if (worker_init(srv, &srv->workers[i], i, err, errlen) == -1)
			return -1;
	/* The client cache's listener drives the deposit cache: after it. */
	if ((srv->auditq = auditq_start(srv)) == NULL ||
	    (srv->depcache = depcache_start(srv, srv->depcache_limit)) ==
		NULL ||
	    (srv->authcache = authcache_start(srv)) == NULL) {
		snprintf(err, errlen, "cannot start the audit queue or the "
		    "caches");
		return -1;
	}
	for (i = 0; i < srv->nworkers; i++) {
		int e = pthread_create(&srv->workers[i].thread, NULL,
		    worker_main, &srv->workers[i]);
		if (e != 0) {
			snprintf(err, errlen, "pthread_create: %s", strerror(e));
			return -1;
		}
	}
	return 0;
}

void
http_workers_stop(struct server *srv)
{
	int i;

	for (i = 0; i < srv->nworkers; i++)
		event_active(srv->workers[i].stop_ev, EV_READ, 0);
	for (i = 0; i < srv->nworkers; i++)
		pthread_join(srv->workers[i].thread, NULL);
	/* Rows still queued commit; their answers have no loop left. */
	auditq_stop(srv->auditq);
	srv->auditq = NULL;
	authcache_stop(srv->authcache);
	srv->authcache = NULL;
	depcache_stop(srv->depcache);
	srv->depcache = NULL;
	for (i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];
		auditq_done_drop(w);
		evhttp_free(w->http);
		event_free(w->stop_ev);
		event_free(w->done_ev);
		pthread_mutex_destroy(&w->done_mtx);
		event_base_free(w->base);
		PQfinish(w->db);
	}
	free(srv->workers);
	srv->workers = NULL;
}
