/*
 * http.c - the HTTPS front: one event loop per worker thread, all
 * accepting from one listening socket.  Each connection is a non-blocking
 * socket under an SSL, watched by one edge-triggered event that stays
 * armed for its whole life (no epoll change per request), its requests
 * parsed in place in one input buffer (httpmsg.c) and its answers built
 * in one output buffer that leaves in one SSL_write: one TLS record and
 * one system call for an answer of up to 16 KiB.  No allocation per
 * request once a connection's buffers exist.
 *
 * A request is handed to its handler (route) and the connection reads no
 * further until it is answered, which may be later (a read's answer waits
 * for its audit row, auditq.c); pipelined requests wait in the buffer.
 * Requests are routed here; every answer that is not data is JSON
 * {"error": ..., "code": ...}.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "httpmsg.h"
#include "log.h"
#include "server.h"
#include "util.h"

#define HTTP_MAX_HEADERS (16 * 1024)
/*
 * Bodies: the API allows 128 KiB and answers a larger one with JSON 413
 * itself (route_v1); beyond twice that a body is refused from its
 * declared length before it is read, and the connection closed.
 */
#define HTTP_MAX_BODY (256 * 1024)
#define API_MAX_BODY (128 * 1024)
/* The input buffer: a head and a body, with room for chunk framing. */
#define HTTP_IN_MIN 4096
#define HTTP_IN_MAX (HTTP_MAX_HEADERS + 2 * HTTP_MAX_BODY)
/* Buffers grown beyond this are given back between requests. */
#define HTTP_KEEP_BUF (32 * 1024)
#define HTTP_TIMEOUT_SECS 30
#define HTTP_DRAIN_MSECS 500
/*
 * After a refusal the client may still be sending what was refused: the
 * connection's input is read and dropped for up to this long and this
 * much, so that the client's TCP reads the answer instead of a reset.
 */
#define HTTP_LINGER_SECS 5
#define HTTP_LINGER_MAX (16 * 1024 * 1024)

enum conn_state {
	CONN_HANDSHAKE, /* TLS handshake */
	CONN_IDLE,	/* reading the next request */
	CONN_BUSY,	/* a request is with its handler */
	CONN_CLOSING,	/* the last answer is leaving; then close */
	CONN_LINGER,	/* answered and shut: the rest of the input dropped */
};

struct http_req {
	struct http_conn *c;
	struct httpmsg m;
	const char *path, *query; /* in c->split */
	char xhdr[1024];	  /* extra answer header lines */
	size_t xlen;
	int close;   /* answer with Connection: close, then close */
	int replied; /* an answer was built */
};

struct http_conn {
	struct http_conn *prev, *next; /* the worker's connections */
	struct worker *w;
	int fd;
	SSL *ssl;
	struct event *ev;  /* read and write, edge-triggered, always armed */
	struct event *tmo; /* idle, read or write timeout */
	enum conn_state state;
	int in_run;	/* inside conn_run: answers are sent at its end */
	int drained;	/* SSL_read said WANT_READ since the last read edge */
	int broken;	/* the peer is gone while a request is busy */
	int eof;	/* the peer sent all it will (closed its side) */
	int continued;	/* 100 Continue sent for this request */
	int refused;	/* closing after a refusal: linger */
	size_t dropped; /* input dropped while lingering */
	char *in;
	size_t inlen, incap;
	size_t headlen;	 /* the current request's parsed head, or 0 */
	size_t consumed; /* the current request's bytes in in */
	char *out;
	size_t outlen, outoff, outcap;
	char *split; /* the target, split into path and query */
	size_t splitcap;
	struct http_req *req; /* made at the first request, then kept */
	char peer[INET6_ADDRSTRLEN];
};

static void conn_run(struct http_conn *c);

/* Room for n more bytes of output; -1 when out of memory. */
static int
out_room(struct http_conn *c, size_t n)
{
	size_t cap;
	char *p;

	if (c->outlen + n <= c->outcap)
		return 0;
	for (cap = c->outcap ? c->outcap : 4096; cap < c->outlen + n; cap *= 2)
		;
	/* Not realloc: what is there (answers, deposits) is cleared. */
	if ((p = malloc(cap)) == NULL)
		return -1;
	if (c->out != NULL) {
		memcpy(p, c->out, c->outlen);
		freezero(c->out, c->outcap);
	}
	c->out = p;
	c->outcap = cap;
	return 0;
}

static void
out_add(struct http_conn *c, const void *p, size_t n)
{
	memcpy(c->out + c->outlen, p, n);
	c->outlen += n;
}

static void
out_str(struct http_conn *c, const char *s)
{
	out_add(c, s, strlen(s));
}

static void
out_num(struct http_conn *c, size_t v)
{
	char d[24];
	size_t i = sizeof(d);

	do
		d[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	out_add(c, d + i, sizeof(d) - i);
}

/* "Date: ...\r\n", made once a second per worker. */
static const char *
worker_date(struct worker *w)
{
	time_t now = time(NULL);
	struct tm tm;

	if (now != w->date_at && gmtime_r(&now, &tm) != NULL) {
		strftime(w->date, sizeof(w->date),
		    "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
		w->date_at = now;
	}
	return w->date;
}

void
http_add_header(struct http_req *req, const char *name, const char *value)
{
	size_t n = strlen(name), v = strlen(value);

	if (req->xlen + n + v + 4 > sizeof(req->xhdr)) {
		log_warnx("answer header %s left out: no room", name);
		return;
	}
	memcpy(req->xhdr + req->xlen, name, n);
	memcpy(req->xhdr + req->xlen + n, ": ", 2);
	memcpy(req->xhdr + req->xlen + n + 2, value, v);
	memcpy(req->xhdr + req->xlen + n + 2 + v, "\r\n", 2);
	req->xlen += n + v + 4;
}

/* The request is answered: forget it, keep what was pipelined behind it. */
static void
conn_done(struct http_conn *c)
{
	c->state = c->req->close ? CONN_CLOSING : CONN_IDLE;
	if (c->consumed < c->inlen)
		memmove(c->in, c->in + c->consumed, c->inlen - c->consumed);
	/* The request's bytes (its body: deposit contents) are not kept. */
	if (c->consumed > 0)
		OPENSSL_cleanse(c->in + c->inlen - c->consumed, c->consumed);
	c->inlen -= c->consumed;
	c->consumed = 0;
	c->headlen = 0;
	c->continued = 0;
	if (c->inlen == 0 && c->incap > HTTP_KEEP_BUF) {
		freezero(c->in, c->incap);
		c->in = NULL;
		c->incap = 0;
	}
	event_add(c->tmo, c->w->timeout);
}

void
http_reply(struct http_req *req, int status, const char *ctype,
    const char *body, size_t len)
{
	struct http_conn *c = req->c;
	int head = req->m.method == HTTPMSG_HEAD;

	if (req->replied) {
		log_warnx("a second answer to one request was dropped");
		return;
	}
	req->replied = 1;
	if (atomic_load(&c->w->srv->draining))
		req->close = 1;
	if (out_room(c, 512 + strlen(ctype) + req->xlen + (head ? 0 : len)) ==
	    -1) {
		log_warnx("cannot answer a request: out of memory");
		req->close = 1;
		c->broken = 1;
	} else {
		out_str(c, "HTTP/1.1 ");
		out_num(c, (size_t)status);
		out_add(c, " ", 1);
		out_str(c, httpmsg_reason(status));
		out_add(c, "\r\n", 2);
		out_str(c, worker_date(c->w));
		out_str(c, "Content-Type: ");
		out_str(c, ctype);
		out_str(c, "\r\nContent-Length: ");
		out_num(c, len);
		out_str(c,
		    "\r\nCache-Control: no-store\r\n"
		    "X-Content-Type-Options: nosniff\r\n"
		    "Strict-Transport-Security: max-age=31536000\r\n");
		out_add(c, req->xhdr, req->xlen);
		if (req->close)
			out_str(c, "Connection: close\r\n");
		else if (req->m.minor == 0)
			out_str(c, "Connection: keep-alive\r\n");
		out_add(c, "\r\n", 2);
		if (!head)
			out_add(c, body, len);
	}
	/* Answered later than its request was read: send it now. */
	if (!c->in_run) {
		conn_done(c);
		conn_run(c);
	}
}

void
http_reply_json(struct http_req *req, int status, json_t *obj)
{
	static const char oom[] =
	    "{\"error\":\"out of memory\",\"code\":\"internal\"}";
	char *s = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;

	if (s == NULL) {
		http_reply(req, HTTP_INTERNAL, "application/json", oom,
		    sizeof(oom) - 1);
		return;
	}
	http_reply(req, status, "application/json", s, strlen(s));
	free(s);
}

void
http_reply_error(
    struct http_req *req, int status, const char *code, const char *msg)
{
	json_t *o = json_pack("{s:s, s:s}", "error", msg, "code", code);

	http_reply_json(req, status, o);
	json_decref(o);
}

const char *
http_peer(struct http_req *req)
{
	return req->c->peer;
}

enum httpmsg_method
http_req_method(const struct http_req *req)
{
	return req->m.method;
}

const char *
http_req_header(const struct http_req *req, const char *name)
{
	return httpmsg_field(&req->m, name);
}

int
http_req_header_count(const struct http_req *req, const char *name)
{
	return httpmsg_field_count(&req->m, name);
}

const unsigned char *
http_req_body(const struct http_req *req, size_t *len)
{
	*len = req->m.bodylen;
	return req->m.bodylen > 0 ? (const unsigned char *)req->m.body
				  : (const unsigned char *)"";
}

const char *
http_req_uri(const struct http_req *req)
{
	return req->m.target;
}

const char *
http_req_query(const struct http_req *req)
{
	return req->query;
}

PGconn *
worker_db(struct worker *w)
{
	char err[512];

	if (w->db != NULL && PQstatus(w->db) != CONNECTION_OK) {
		w->prepared = 0; /* a new session has none */
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
route_health(struct worker *w, struct http_req *req)
{
	int v = worker_db_version(w), writes = 0;
	/* Reachable but on another schema than this binary's is not ok. */
	int ok = v == DB_SCHEMA_VERSION;
	json_t *o, *conns, *repl = ha_health(w->srv, &writes);
	size_t dn, dbytes, dlimit;
	int dlive, dfilling, i;

	depcache_stats(
	    w->srv->depcache, &dn, &dbytes, &dlimit, &dlive, &dfilling);
	o = json_pack("{s:s, s:s, s:b, s:i, s:i, s:o?, s:b, s:b, "
		      "s:{s:b, s:I, s:I, s:I, s:b}}",
	    "status", ok ? "ok" : "degraded", "role",
	    ha_is_passive(w->srv) ? "passive" : "active", "database", v >= 0,
	    "schema_version", v >= 0 ? v : 0, "schema_version_expected",
	    DB_SCHEMA_VERSION, "replication", repl, "writes", ok && writes,
	    "draining", atomic_load(&w->srv->draining) != 0, "deposit_cache",
	    "live", dlive, "deposits", (json_int_t)dn, "bytes",
	    (json_int_t)dbytes, "limit_bytes", (json_int_t)dlimit, "filling",
	    dfilling);
	/* Open connections per worker thread (accept_cb balances them). */
	if (o != NULL && (conns = json_array()) != NULL) {
		for (i = 0; i < w->srv->nworkers; i++)
			json_array_append_new(conns,
			    json_integer(
				atomic_load(&w->srv->workers[i].nconns)));
		json_object_set_new(o, "connections", conns);
	}
	if (o == NULL) {
		http_reply_error(
		    req, HTTP_INTERNAL, "internal", "out of memory");
		return;
	}
	http_reply_json(req, ok ? HTTP_OK : HTTP_SERVUNAVAIL, o);
	json_decref(o);
}

/* "/?a=ACTION": the Key Trustee Server's own actions. */
static void
route_action(struct worker *w, struct http_req *req, const char *query)
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
route_contact(struct worker *w, struct http_req *req, const char *query)
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
method_not_allowed(struct http_req *req, const char *allow)
{
	http_add_header(req, "Allow", allow);
	http_reply_error(req, 405, "method_not_allowed",
	    "method not allowed on this resource");
}

/* /v1/...: the JSON API. */
static void
route_v1(struct worker *w, struct http_req *req, const char *path,
    enum httpmsg_method cmd)
{
	const char *rest;

	if (req->m.bodylen > API_MAX_BODY) {
		req->close = 1;
		http_reply_error(
		    req, 413, "too_large", "request body larger than 128 KiB");
		return;
	}
	if (strcmp(path, "/v1/register") == 0) {
		if (cmd != HTTPMSG_POST)
			method_not_allowed(req, "POST");
		else
			api_register(w, req);
	} else if (strcmp(path, "/v1/deposits") == 0) {
		if (cmd != HTTPMSG_GET && cmd != HTTPMSG_POST)
			method_not_allowed(req, "GET, POST");
		else
			api_deposits(w, req, NULL);
	} else if (strncmp(path, "/v1/deposits/", 13) == 0 &&
	    *(rest = path + 13) != '\0' && strchr(rest, '/') == NULL) {
		if (cmd != HTTPMSG_GET && cmd != HTTPMSG_DELETE)
			method_not_allowed(req, "GET, DELETE");
		else
			api_deposits(w, req, rest);
	} else
		http_reply_error(
		    req, HTTP_NOTFOUND, "not_found", "no such resource");
}

static void
route(struct worker *w, struct http_req *req)
{
	enum httpmsg_method cmd = req->m.method;
	const char *path = req->path, *query = req->query;

	if (*path == '\0')
		path = "/";
	if (strncmp(path, "/v1/", 4) == 0) {
		route_v1(w, req, path, cmd);
		return;
	}
	if (strcmp(path, "/") == 0 && route_contact(w, req, query))
		return;
	if (cmd != HTTPMSG_GET && cmd != HTTPMSG_HEAD) {
		method_not_allowed(req, "GET, HEAD");
		return;
	}
	if (strcmp(path, "/") == 0)
		route_action(w, req, query);
	else if (strcmp(path, "/health") == 0)
		route_health(w, req);
	else
		http_reply_error(
		    req, HTTP_NOTFOUND, "not_found", "no such resource");
}

/* The connection's input and output buffers, cleared and freed. */
static void
conn_free_buffers(struct http_conn *c)
{
	freezero(c->in, c->incap);
	freezero(c->out, c->outcap);
	c->in = c->out = NULL;
	c->inlen = c->incap = c->outlen = c->outoff = c->outcap = 0;
}

/* Close and free the connection; graceful sends close_notify first. */
static void
conn_free(struct http_conn *c, int graceful)
{
	struct worker *w = c->w;

	if (graceful && c->state != CONN_HANDSHAKE)
		(void)SSL_shutdown(c->ssl);
	ERR_clear_error();
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	event_free(c->ev);
	event_free(c->tmo);
	SSL_free(c->ssl); /* counted out of --max-connections (connlimit.c) */
	atomic_fetch_sub(&w->nconns, 1);
	close(c->fd);
	conn_free_buffers(c);
	free(c->split);
	free(c->req);
	free(c);
}

/*
 * The connection cannot go on.  A request with its handler keeps it until
 * it is answered (its answer then goes nowhere).
 */
static void
conn_fail(struct http_conn *c)
{
	if (c->state == CONN_BUSY) {
		c->broken = 1;
		event_del(c->ev);
		return;
	}
	conn_free(c, 0);
}

/* SSL_write what is waiting: 1 all sent, 0 the socket is full, -1 failed. */
static int
conn_flush(struct http_conn *c)
{
	int n;

	while (c->outoff < c->outlen) {
		size_t left = c->outlen - c->outoff;
		n = SSL_write(c->ssl, c->out + c->outoff,
		    left > INT_MAX ? INT_MAX : (int)left);
		if (n > 0) {
			c->outoff += (size_t)n;
			continue;
		}
		switch (SSL_get_error(c->ssl, n)) {
		case SSL_ERROR_WANT_WRITE:
		case SSL_ERROR_WANT_READ:
			return 0;
		default:
			ERR_clear_error();
			return -1;
		}
	}
	/* Nor are the answers' once sent. */
	if (c->outlen > 0)
		OPENSSL_cleanse(c->out, c->outlen);
	c->outoff = c->outlen = 0;
	if (c->outcap > HTTP_KEEP_BUF) {
		freezero(c->out, c->outcap);
		c->out = NULL;
		c->outcap = 0;
	}
	return 1;
}

/* The input buffer moves to to: a parsed head's strings move with it. */
static void
conn_rebase(struct http_conn *c, char *to)
{
	struct httpmsg *m;
	int i;

#define REBASE(p) ((p) = to + ((p)-c->in))
	if (c->headlen == 0)
		return;
	m = &c->req->m;
	REBASE(m->method_name);
	REBASE(m->target);
	for (i = 0; i < m->nfields; i++) {
		REBASE(m->fields[i].name);
		REBASE(m->fields[i].value);
	}
#undef REBASE
}

/*
 * SSL_read into the input buffer until it would block: 1 read something,
 * 0 nothing there (c->drained), -1 closed or failed.  A full buffer at its
 * limit reads nothing more: the parser refuses what it holds.
 */
/* After an SSL_read of n: 0 it would block (c->drained), -1 it failed. */
static int
conn_read_end(struct http_conn *c, int n)
{
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		c->drained = 1;
		return 0;
	default: /* close_notify, EOF, a reset or a TLS error */
		ERR_clear_error();
		return -1;
	}
}

static int
conn_read(struct http_conn *c)
{
	int got = 0, n;

	/* An idle connection holds no buffer until a request comes. */
	if (c->incap == 0) {
		char first[HTTP_IN_MIN];
		if ((n = SSL_read(c->ssl, first, sizeof(first) - 1)) <= 0)
			return conn_read_end(c, n);
		if ((c->in = malloc(HTTP_IN_MIN)) == NULL) {
			OPENSSL_cleanse(first, (size_t)n);
			return -1;
		}
		c->incap = HTTP_IN_MIN;
		memcpy(c->in, first, (size_t)n);
		OPENSSL_cleanse(first, (size_t)n);
		c->inlen = (size_t)n;
		got = 1;
	}
	for (;;) {
		if (c->inlen + 1 >= c->incap) {
			size_t cap = c->incap * 2;
			char *p;
			if (c->incap >= HTTP_IN_MAX)
				return got;
			if (cap > HTTP_IN_MAX)
				cap = HTTP_IN_MAX;
			if ((p = malloc(cap)) == NULL)
				return got ? got : -1;
			memcpy(p, c->in, c->inlen);
			conn_rebase(c, p);
			freezero(c->in, c->incap);
			c->in = p;
			c->incap = cap;
		}
		/* One byte is kept free: the body is NUL-terminated there. */
		n = SSL_read(
		    c->ssl, c->in + c->inlen, (int)(c->incap - c->inlen - 1));
		if (n > 0) {
			c->inlen += (size_t)n;
			got = 1;
			continue;
		}
		if (conn_read_end(c, n) == 0)
			return got;
		/* The peer is done sending: answer what it sent, then close. */
		c->eof = 1;
		return got ? 1 : -1;
	}
}

/* The path and query of the target, split in c->split; -1 out of memory. */
static int
conn_split(struct http_conn *c, struct http_req *req)
{
	const char *t = req->m.target, *p;
	size_t n = strlen(t);
	char *s, *q;

	if (n + 2 > c->splitcap) {
		if ((s = realloc(c->split, n + 2)) == NULL)
			return -1;
		c->split = s;
		c->splitcap = n + 2;
	}
	/* The absolute form names the scheme and host before the path. */
	p = t;
	if (strncasecmp(t, "https://", 8) == 0 ||
	    strncasecmp(t, "http://", 7) == 0) {
		p = strchr(strstr(t, "//") + 2, '/');
		if (p == NULL)
			p = "/";
	}
	memcpy(c->split, p, strlen(p) + 1);
	if ((q = strchr(c->split, '#')) != NULL)
		*q = '\0';
	req->query = NULL;
	if ((q = strchr(c->split, '?')) != NULL) {
		*q = '\0';
		req->query = q + 1;
	}
	req->path = c->split;
	return 0;
}

static const char *
refusal_code(int status)
{
	switch (status) {
	case 413:
		return "too_large";
	case 417:
		return "expectation_failed";
	case 431:
		return "headers_too_large";
	case 501:
		return "not_implemented";
	case 505:
		return "http_version";
	default:
		return "bad_request";
	}
}

/*
 * The next request in the buffer: 1 handled (answered, or with its
 * handler), 0 not all there yet.  A request that cannot be parsed is
 * answered and the connection closed after the answer: where the next
 * request would begin is not known.
 */
static int
conn_request(struct http_conn *c)
{
	struct http_req *req;
	ssize_t r;
	char saved;

	/* Idle connections hold no request state. */
	if (c->req == NULL && (c->req = malloc(sizeof(*c->req))) == NULL) {
		log_warnx("connection closed: out of memory");
		c->broken = 1;
		return 1;
	}
	req = c->req;

	if (c->headlen == 0) {
		memset(req, 0, sizeof(*req));
		req->c = c;
		r = httpmsg_head(
		    c->in, c->inlen, HTTP_MAX_HEADERS, HTTP_MAX_BODY, &req->m);
		if (r == 0)
			return 0;
		if (r < 0)
			goto refuse;
		c->headlen = (size_t)r;
	}
	r = httpmsg_body(
	    c->in + c->headlen, c->inlen - c->headlen, HTTP_MAX_BODY, &req->m);
	if (r == HTTPMSG_MORE) {
		if (c->incap >= HTTP_IN_MAX && c->inlen + 1 >= c->incap) {
			req->m.error = "request body too large";
			r = -413;
			goto refuse;
		}
		if (req->m.expect_continue && !c->continued &&
		    out_room(c, 32) == 0) {
			out_str(c, "HTTP/1.1 100 Continue\r\n\r\n");
			c->continued = 1;
		}
		return 0;
	}
	if (r < 0)
		goto refuse;
	c->consumed = c->headlen + (size_t)r;
	req->close = !req->m.keep_alive;
	if (conn_split(c, req) == -1) {
		req->m.error = "out of memory";
		r = -500;
		goto refuse;
	}
	/* Handlers may take the body as a C string. */
	saved = req->m.body[req->m.bodylen];
	req->m.body[req->m.bodylen] = '\0';
	c->state = CONN_BUSY;
	route(c->w, req);
	req->m.body[req->m.bodylen] = saved;
	if (req->replied)
		conn_done(c);
	return 1;
refuse:
	req->close = 1;
	c->refused = 1;
	req->m.method = HTTPMSG_OTHER; /* the answer has its body */
	c->consumed = c->inlen;
	c->state = CONN_BUSY;
	http_reply_error(req, (int)-r, refusal_code((int)-r),
	    req->m.error != NULL ? req->m.error : "malformed request");
	conn_done(c);
	return 1;
}

/*
 * Read and drop what the lingering connection's peer sends: the
 * connection goes when the peer closes, fails, or sends too much.
 */
static void
conn_drop(struct http_conn *c)
{
	char buf[16384];
	ssize_t n;

	for (;;) {
		n = read(c->fd, buf, sizeof(buf));
		if (n > 0) {
			c->dropped += (size_t)n;
			if (c->dropped <= HTTP_LINGER_MAX)
				continue;
		} else if (n == -1 && errno == EINTR)
			continue;
		else if (n == -1 && errno == EAGAIN)
			return; /* the next read edge calls again */
		conn_free(c, 0);
		return;
	}
}

/*
 * The refusal is sent: say so (close_notify, then our FIN), hold nothing
 * but the socket, and drop the peer's input until it closes too, at most
 * HTTP_LINGER_SECS and HTTP_LINGER_MAX.
 */
static void
conn_linger(struct http_conn *c)
{
	struct timeval tv = {HTTP_LINGER_SECS, 0};

	(void)SSL_shutdown(c->ssl);
	ERR_clear_error();
	(void)shutdown(c->fd, SHUT_WR);
	c->state = CONN_LINGER;
	conn_free_buffers(c);
	event_add(c->tmo, &tv);
	c->in_run = 0;
	conn_drop(c);
}

/*
 * Everything the connection can do now: finish the handshake, send what
 * is waiting, take the requests that are in.  It returns when the socket
 * would block (the edge-triggered event calls again), when a request is
 * with its handler (its answer calls again), or after freeing c.
 */
static void
conn_run(struct http_conn *c)
{
	int r;

	if (c->broken) {
		if (c->state != CONN_BUSY)
			conn_free(c, 0);
		return;
	}
	c->in_run = 1;
	if (c->state == CONN_HANDSHAKE) {
		if ((r = SSL_do_handshake(c->ssl)) != 1) {
			switch (SSL_get_error(c->ssl, r)) {
			case SSL_ERROR_WANT_READ:
			case SSL_ERROR_WANT_WRITE:
				c->in_run = 0;
				return;
			default:
				conn_free(c, 0);
				return;
			}
		}
		c->state = CONN_IDLE;
	}
	for (;;) {
		if (c->broken) { /* an answer could not be built */
			conn_free(c, 0);
			return;
		}
		if ((r = conn_flush(c)) == -1) {
			c->in_run = 0;
			conn_fail(c);
			return;
		}
		if (r == 0 || c->state == CONN_BUSY)
			break;
		if (c->state == CONN_CLOSING) {
			if (c->refused && !c->eof)
				conn_linger(c);
			else
				conn_free(c, 1);
			return;
		}
		if (c->inlen > 0 && conn_request(c))
			continue;
		if (c->outlen > 0) /* 100 Continue */
			continue;
		/* Nothing more will come until the next read edge. */
		if (c->drained)
			break;
		if (c->eof) { /* nor ever: what it sent is answered */
			conn_free(c, 1);
			return;
		}
		if ((r = conn_read(c)) == -1) {
			c->in_run = 0;
			conn_fail(c);
			return;
		}
		if (r == 0)
			break;
	}
	c->in_run = 0;
}

static void
conn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;

	(void)fd;
	if (c->state == CONN_LINGER) {
		conn_drop(c);
		return;
	}
	if (what & EV_READ)
		c->drained = 0;
	conn_run(c);
}

/* No progress for HTTP_TIMEOUT_SECS: a request with its handler waits. */
static void
conn_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->state == CONN_BUSY) {
		event_add(c->tmo, c->w->timeout);
		return;
	}
	conn_free(c, 0);
}

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
	char peer[INET6_ADDRSTRLEN];
};

/* w serves the accepted socket fd from now on (counted in w->nconns). */
static void
conn_new(struct worker *w, int fd, const char *peer)
{
	struct http_conn *c;
	SSL_CTX *ctx;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warnx("connection dropped: out of memory");
		atomic_fetch_sub(&w->nconns, 1);
		close(fd);
		return;
	}
	c->w = w;
	c->fd = fd;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	/* TCP_NODELAY is inherited from the listening socket (main.c). */
	ctx = server_ctx_get(w->srv);
	c->ssl = SSL_new(ctx);
	SSL_CTX_free(ctx); /* the SSL holds its own reference */
	if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1 ||
	    (c->ev = event_new(w->base, fd,
		 EV_READ | EV_WRITE | EV_ET | EV_PERSIST, conn_cb, c)) ==
		NULL ||
	    (c->tmo = evtimer_new(w->base, conn_timeout, c)) == NULL ||
	    event_add(c->ev, NULL) == -1) {
		log_ssl("cannot set up a TLS connection");
		if (c->ev != NULL)
			event_free(c->ev);
		if (c->tmo != NULL)
			event_free(c->tmo);
		SSL_free(c->ssl);
		atomic_fetch_sub(&w->nconns, 1);
		close(fd);
		free(c);
		return;
	}
	/* Counted against --max-connections (or marked to be refused). */
	(void)conn_admit(w->srv, c->ssl);
	SSL_set_accept_state(c->ssl);
	/*
	 * Read-ahead: a record's header and body, and whatever follows, in
	 * one read(2).  Safe here because conn_read drains the SSL until it
	 * says WANT_READ, so nothing waits in its buffer unseen.
	 */
	SSL_set_read_ahead(c->ssl, 1);
	SSL_set_mode(c->ssl,
	    SSL_MODE_ENABLE_PARTIAL_WRITE |
		SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	event_add(c->tmo, w->timeout);
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	c->state = CONN_HANDSHAKE;
	conn_run(c); /* the ClientHello is often there already */
}

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
		conn_new(w, h->fd, h->peer);
		free(h);
	}
}

/*
 * Whichever worker wakes first accepts, which left one worker with a
 * third more connections than the other and their answers waiting
 * longer.  A new connection goes to the worker with the fewest (this one
 * on a tie); another worker gets it through its hand-off queue, one
 * wake-up per connection.
 */
static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct worker *w = arg, *to = w;
	struct http_handoff *h;
	char peer[INET6_ADDRSTRLEN];
	int i;

	(void)l;
	(void)salen;
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
		conn_new(w, fd, peer);
		return;
	}
	h->fd = fd;
	memcpy(h->peer, peer, sizeof(h->peer));
	pthread_mutex_lock(&to->hand_mtx);
	h->next = to->hand_head;
	to->hand_head = h;
	pthread_mutex_unlock(&to->hand_mtx);
	event_active(to->hand_ev, EV_READ, 0);
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
	struct timeval tv = {0, HTTP_DRAIN_MSECS * 1000};

	(void)fd;
	(void)what;
	if (w->listener != NULL) {
		evconnlistener_free(w->listener);
		w->listener = NULL;
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
	static const struct timeval idle = {HTTP_TIMEOUT_SECS, 0};

	w->srv = srv;
	w->id = id;
	pthread_mutex_init(&w->done_mtx, NULL);
	pthread_mutex_init(&w->hand_mtx, NULL);
	w->done_tail = &w->done_head;
	if ((w->base = worker_base()) == NULL ||
	    (w->hand_ev = event_new(w->base, -1, 0, handoff_cb, w)) == NULL ||
	    (w->stop_ev = event_new(w->base, -1, 0, worker_stop, w)) == NULL ||
	    (w->done_ev = event_new(w->base, -1, 0, auditq_done_cb, w)) ==
		NULL) {
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
	if (w->listener == NULL) {
		snprintf(err, errlen, "cannot listen: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int
http_workers_start(struct server *srv, char *err, size_t errlen)
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
	/* The client cache's listener drives the deposit cache: after it. */
	if ((srv->auditq = auditq_start(srv)) == NULL ||
	    (srv->depcache = depcache_start(srv, srv->depcache_limit)) ==
		NULL ||
	    (srv->authcache = authcache_start(srv)) == NULL) {
		snprintf(err, errlen,
		    "cannot start the audit queue or the "
		    "caches");
		return -1;
	}
	for (i = 0; i < srv->nworkers; i++) {
		int e = pthread_create(&srv->workers[i].thread, NULL,
		    worker_main, &srv->workers[i]);
		if (e != 0) {
			snprintf(
			    err, errlen, "pthread_create: %s", strerror(e));
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
		while (w->conns != NULL) {
			w->conns->state = CONN_IDLE;
			conn_free(w->conns, 0);
		}
		while (w->hand_head != NULL) {
			struct http_handoff *h = w->hand_head;
			w->hand_head = h->next;
			close(h->fd);
			free(h);
		}
		event_free(w->hand_ev);
		pthread_mutex_destroy(&w->hand_mtx);
		if (w->listener != NULL)
			evconnlistener_free(w->listener);
		event_free(w->stop_ev);
		event_free(w->done_ev);
		pthread_mutex_destroy(&w->done_mtx);
		event_base_free(w->base);
		PQfinish(w->db);
	}
	free(srv->workers);
	srv->workers = NULL;
}
