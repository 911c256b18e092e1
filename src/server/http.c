/*
 * http.c - HTTP/1.1 over the worker's TLS connections.  Each connection is
 * a non-blocking socket under an SSL (its bytes: httpio.c), watched by one
 * edge-triggered event that stays armed for its whole life (no epoll
 * change per request).  No allocation per request once a connection's
 * buffers exist.
 *
 * A parsed request goes to the server's handler (route_dispatch) and the
 * connection reads no further until it is answered, which may be later (a
 * read's answer waits for its audit row, auditq.c); pipelined requests
 * wait in the buffer.  A request that cannot be parsed is refused here,
 * in JSON {"error": ..., "code": ...} like every answer that is not data.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "connlimit.h"
#include "http.h"
#include "httpio.h"
#include "log.h"
#include "tls.h"
#include "util.h"

#define HTTP_MAX_HEADERS (16 * 1024)
/*
 * Bodies: the API allows 128 KiB and answers a larger one with JSON 413
 * itself (route.c); beyond twice that a body is refused from its
 * declared length before it is read, and the connection closed.
 */
#define HTTP_MAX_BODY (256 * 1024)
#define HTTP_IN_MAX (HTTP_MAX_HEADERS + 2 * HTTP_MAX_BODY)
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
	int form;    /* refusals as "reason=<text>": -1 not asked yet, 0, 1 */
};

struct http_conn {
	struct http_conn *prev, *next; /* the worker's connections */
	struct worker *w;
	struct httpio io;
	struct event *ev;  /* read and write, edge-triggered, always armed */
	struct event *tmo; /* idle, read or write timeout */
	enum conn_state state;
	int in_run;	/* inside conn_run: answers are sent at its end */
	int broken;	/* the peer is gone while a request is busy */
	int continued;	/* 100 Continue sent for this request */
	int refused;	/* closing after a refusal: linger */
	int plain;	/* plain HTTP (the HKP listener): no TLS */
	struct http_conn *idle_prev, *idle_next; /* w->idle_head's list */
	int idle;	     /* in it: no request with its handler */
	long long idle_at;   /* since when (ms) */
	struct connlimit_addr addr; /* counted against (connlimit.c) */
	size_t headlen;	 /* the current request's parsed head, or 0 */
	size_t consumed; /* the current request's bytes in the input */
	char *split; /* the target, split into path and query */
	size_t splitcap;
	struct http_req *req; /* made at the first request, then kept */
	char peer[INET6_ADDRSTRLEN];
};

static void conn_run(struct http_conn *c);

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

/* ---- the request, and the reply path --------------------------------------- */

enum httpmsg_method
http_req_method(const struct http_req *req)
{
	return req->m.method;
}

const char *
http_req_uri(const struct http_req *req)
{
	return req->m.target;
}

const char *
http_req_path(const struct http_req *req)
{
	return req->path;
}

const char *
http_req_query(const struct http_req *req)
{
	return req->query;
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
http_peer(const struct http_req *req)
{
	return req->c->peer;
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

/* ---- idle connections, longest-idle first -------------------------------- */

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Say when the worker's oldest went idle, for the other threads. */
static void
idle_publish(struct worker *w)
{
	atomic_store_explicit(&w->idle_since,
	    w->idle_head != NULL ? w->idle_head->idle_at : LLONG_MAX,
	    memory_order_relaxed);
}

/* Idle from now on: the end of the list (no lock: this thread's). */
static void
conn_idle_add(struct http_conn *c)
{
	struct worker *w = c->w;

	if (c->idle)
		return;
	c->idle = 1;
	c->idle_at = now_ms();
	c->idle_next = NULL;
	c->idle_prev = w->idle_tail;
	if (w->idle_tail != NULL)
		w->idle_tail->idle_next = c;
	else
		w->idle_head = c;
	w->idle_tail = c;
	if (w->idle_head == c)
		idle_publish(w);
}

/* A request is in progress, or the connection is gone. */
static void
conn_idle_del(struct http_conn *c)
{
	struct worker *w = c->w;

	if (!c->idle)
		return;
	c->idle = 0;
	if (c->idle_prev != NULL)
		c->idle_prev->idle_next = c->idle_next;
	else
		w->idle_head = c->idle_next;
	if (c->idle_next != NULL)
		c->idle_next->idle_prev = c->idle_prev;
	else
		w->idle_tail = c->idle_prev;
	if (c->idle_prev == NULL)
		idle_publish(w);
}

/* A request goes to its handler. */
static void
conn_busy(struct http_conn *c)
{
	c->state = CONN_BUSY;
	conn_idle_del(c);
}

/* The request is answered: forget it, keep what was pipelined behind it. */
static void
conn_done(struct http_conn *c)
{
	c->state = c->req->close ? CONN_CLOSING : CONN_IDLE;
	conn_idle_add(c);
	httpio_consume(&c->io, c->consumed);
	c->consumed = 0;
	c->headlen = 0;
	c->continued = 0;
	event_add(c->tmo, c->w->timeout);
}

void
http_reply(struct http_req *req, int status, const char *ctype,
    const char *body, size_t len)
{
	struct http_conn *c = req->c;
	struct httpio *io = &c->io;
	int head = req->m.method == HTTPMSG_HEAD;

	if (req->replied) {
		log_warnx("a second answer to one request was dropped");
		return;
	}
	req->replied = 1;
	if (atomic_load(&c->w->srv->draining))
		req->close = 1;
	if (httpio_room(io, 512 + strlen(ctype) + req->xlen + (head ? 0 : len)) ==
	    -1) {
		log_warnx("cannot answer a request: out of memory");
		req->close = 1;
		c->broken = 1;
	} else {
		httpio_str(io, "HTTP/1.1 ");
		httpio_num(io, (size_t)status);
		httpio_add(io, " ", 1);
		httpio_str(io, httpmsg_reason(status));
		httpio_add(io, "\r\n", 2);
		httpio_str(io, worker_date(c->w));
		httpio_str(io, "Content-Type: ");
		httpio_str(io, ctype);
		httpio_str(io, "\r\nContent-Length: ");
		httpio_num(io, len);
		httpio_str(io,
		    "\r\nCache-Control: no-store\r\n"
		    "X-Content-Type-Options: nosniff\r\n");
		if (!c->plain)
			httpio_str(io,
			    "Strict-Transport-Security: max-age=31536000\r\n");
		httpio_add(io, req->xhdr, req->xlen);
		if (req->close)
			httpio_str(io, "Connection: close\r\n");
		else if (req->m.minor == 0)
			httpio_str(io, "Connection: keep-alive\r\n");
		httpio_add(io, "\r\n", 2);
		if (!head)
			httpio_add(io, body, len);
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
		http_reply(req, 500, "application/json", oom,
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
	struct verdict v;

	verdict_refuse(&v, status, code, msg);
	http_reply_verdict(req, &v);
}

/* Are this request's refusals forms (the route table says)? */
static int
refuses_as_form(struct http_req *req)
{
	server_form_fn *fn = req->c->w->srv->refuses_as_form;

	if (req->form == -1)
		req->form = req->path != NULL && fn != NULL &&
		    fn((int)req->m.method, req->path, req->query);
	return req->form;
}

/* A refusal as the legacy clients read it: "reason=<URL-encoded text>". */
static void
reply_reason(struct http_req *req, const struct verdict *v)
{
	char buf[sizeof(v->buf) + 64], *enc, *body = NULL;
	const char *text = verdict_text(v, buf, sizeof(buf));

	if ((enc = evhttp_uriencode(text, -1, 1)) != NULL &&
	    (body = malloc(strlen(enc) + 8)) != NULL) {
		snprintf(body, strlen(enc) + 8, "reason=%s", enc);
		http_reply(req, v->status, HTTP_FORM_CTYPE, body, strlen(body));
	} else
		http_reply(req, 500, HTTP_FORM_CTYPE, "reason=out+of+memory",
		    strlen("reason=out+of+memory"));
	free(enc);
	free(body);
}

void
http_reply_verdict(struct http_req *req, const struct verdict *v)
{
	char retry[16];
	json_t *o;

	if (v->retry_after > 0) {
		snprintf(retry, sizeof(retry), "%d", v->retry_after);
		http_add_header(req, "Retry-After", retry);
	}
	if (v->allow != NULL)
		http_add_header(req, "Allow", v->allow);
	if (v->close)
		req->close = 1;
	if (refuses_as_form(req)) {
		reply_reason(req, v);
		return;
	}
	o = json_pack("{s:s, s:s}", "error", v->msg, "code", v->code);
	if (o != NULL && v->active != NULL)
		json_object_set_new(o, "active", json_string(v->active));
	http_reply_json(req, v->status, o);
	json_decref(o);
}

/* ---- the connection ------------------------------------------------------- */

/* Close and free the connection; graceful sends close_notify first. */
static void
conn_free(struct http_conn *c, int graceful)
{
	struct worker *w = c->w;

	if (graceful && c->state != CONN_HANDSHAKE && !c->plain)
		(void)SSL_shutdown(c->io.ssl);
	ERR_clear_error();
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	conn_idle_del(c);
	event_free(c->ev);
	event_free(c->tmo);
	SSL_free(c->io.ssl);
	connlimit_release(w->srv, &c->addr);
	atomic_fetch_sub(&w->nconns, 1);
	close(c->io.fd);
	httpio_free_buffers(&c->io);
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
	struct httpio *io = &c->io;
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
		req->form = -1;
		r = httpmsg_head(
		    io->in, io->inlen, HTTP_MAX_HEADERS, HTTP_MAX_BODY, &req->m);
		if (r == 0)
			return 0;
		if (r < 0)
			goto refuse;
		c->headlen = (size_t)r;
	}
	r = httpmsg_body(io->in + c->headlen, io->inlen - c->headlen,
	    HTTP_MAX_BODY, &req->m);
	if (r == HTTPMSG_MORE) {
		if (io->incap >= HTTP_IN_MAX && io->inlen + 1 >= io->incap) {
			req->m.error = "request body too large";
			r = -413;
			goto refuse;
		}
		if (req->m.expect_continue && !c->continued &&
		    httpio_room(io, 32) == 0) {
			httpio_str(io, "HTTP/1.1 100 Continue\r\n\r\n");
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
	conn_busy(c);
	(c->plain ? c->w->srv->handle_plain : c->w->srv->handle)(c->w, req);
	req->m.body[req->m.bodylen] = saved;
	if (req->replied)
		conn_done(c);
	return 1;
refuse:
	req->close = 1;
	c->refused = 1;
	/* Its route, when it names one, says how the refusal is written. */
	if (req->m.target != NULL && req->path == NULL &&
	    conn_split(c, req) == 0)
		(void)refuses_as_form(req);
	req->m.method = HTTPMSG_OTHER; /* the answer has its body */
	c->consumed = io->inlen;
	conn_busy(c);
	http_reply_error(req, (int)-r, refusal_code((int)-r),
	    req->m.error != NULL ? req->m.error : "malformed request");
	conn_done(c);
	return 1;
}

/* The lingering connection's input, dropped until the peer is done. */
static void
conn_drop(struct http_conn *c)
{
	if (httpio_drop(&c->io, HTTP_LINGER_MAX) == -1)
		conn_free(c, 0);
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

	if (!c->plain)
		(void)SSL_shutdown(c->io.ssl);
	ERR_clear_error();
	(void)shutdown(c->io.fd, SHUT_WR);
	c->state = CONN_LINGER;
	httpio_free_buffers(&c->io);
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
	struct httpio *io = &c->io;
	int r;

	if (c->broken) {
		if (c->state != CONN_BUSY)
			conn_free(c, 0);
		return;
	}
	c->in_run = 1;
	if (c->state == CONN_HANDSHAKE) {
		if ((r = SSL_do_handshake(io->ssl)) != 1) {
			switch (SSL_get_error(io->ssl, r)) {
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
		if ((r = httpio_flush(io)) == -1) {
			c->in_run = 0;
			conn_fail(c);
			return;
		}
		if (r == 0 || c->state == CONN_BUSY)
			break;
		if (c->state == CONN_CLOSING) {
			if (c->refused && !io->eof)
				conn_linger(c);
			else
				conn_free(c, 1);
			return;
		}
		if (io->inlen > 0 && conn_request(c))
			continue;
		if (io->outlen > 0) /* 100 Continue */
			continue;
		/* Nothing more will come until the next read edge. */
		if (io->drained)
			break;
		if (io->eof) { /* nor ever: what it sent is answered */
			conn_free(c, 1);
			return;
		}
		r = httpio_read(io, c->headlen > 0 ? &c->req->m : NULL);
		if (r == -1) {
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
		c->io.drained = 0;
	conn_run(c);
}

/* No progress for the idle timeout: a request with its handler waits. */
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

/* A connection that could not be set up: uncounted and closed. */
static void
conn_abandon(struct http_conn *c)
{
	if (c->ev != NULL)
		event_free(c->ev);
	if (c->tmo != NULL)
		event_free(c->tmo);
	SSL_free(c->io.ssl);
	http_conn_abandon(c->w, c->io.fd, &c->addr);
	free(c);
}

void
http_conn_abandon(struct worker *w, int fd, const struct connlimit_addr *a)
{
	connlimit_release(w->srv, a);
	atomic_fetch_sub(&w->nconns, 1);
	close(fd);
}

void
http_conn_new(struct worker *w, int fd, const char *peer,
    const struct connlimit_addr *a, int plain)
{
	struct http_conn *c;
	SSL_CTX *ctx;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warnx("connection dropped: out of memory");
		http_conn_abandon(w, fd, a);
		return;
	}
	c->w = w;
	c->io.fd = fd;
	c->io.inmax = HTTP_IN_MAX;
	c->addr = *a;
	c->plain = plain;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	if ((c->ev = event_new(w->base, fd,
		 EV_READ | EV_WRITE | EV_ET | EV_PERSIST, conn_cb, c)) ==
		NULL ||
	    (c->tmo = evtimer_new(w->base, conn_timeout, c)) == NULL) {
		log_warnx("connection dropped: out of memory");
		conn_abandon(c);
		return;
	}
	if (plain) { /* the HKP listener's: no TLS */
		c->state = CONN_IDLE;
	} else {
		/* TCP_NODELAY is inherited from the listening socket. */
		ctx = server_ctx_get(w->srv);
		c->io.ssl = SSL_new(ctx);
		SSL_CTX_free(ctx); /* the SSL holds its own reference */
		if (c->io.ssl == NULL || SSL_set_fd(c->io.ssl, fd) != 1) {
			log_ssl("cannot set up a TLS connection");
			conn_abandon(c);
			return;
		}
		SSL_set_accept_state(c->io.ssl);
		/*
		 * Read-ahead: a record's header and body, and whatever
		 * follows, in one read(2).  Safe here because httpio_read
		 * drains the SSL until it says WANT_READ, so nothing waits
		 * in its buffer unseen.
		 */
		SSL_set_read_ahead(c->io.ssl, 1);
		SSL_set_mode(c->io.ssl,
		    SSL_MODE_ENABLE_PARTIAL_WRITE |
			SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		c->state = CONN_HANDSHAKE;
	}
	if (event_add(c->ev, NULL) == -1) {
		log_warnx("connection dropped: cannot watch it");
		conn_abandon(c);
		return;
	}
	event_add(c->tmo, w->timeout);
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	conn_idle_add(c); /* until its first request */
	conn_run(c); /* the ClientHello (the request) is often there already */
}

void
http_evict_idle(struct worker *w)
{
	int n = atomic_exchange(&w->evict_pending, 0);

	/* close_notify when nothing else is on its way. */
	while (n-- > 0 && w->idle_head != NULL)
		conn_free(w->idle_head, w->idle_head->state == CONN_IDLE &&
			w->idle_head->io.outlen == 0);
}

void
http_conn_close_all(struct worker *w)
{
	while (w->conns != NULL) {
		w->conns->state = CONN_IDLE;
		conn_free(w->conns, 0);
	}
}
