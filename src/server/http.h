/*
 * http.h - a request as its handler sees it, and the answer: the one
 * reply path.  Handlers (route.c's table) answer through these functions;
 * checks (auth, HA, throttle) return verdicts instead and never answer.
 * An answer may be sent later than the handler returns (after an audit
 * row's commit): the connection reads no further until it is.
 */
#ifndef KT_HTTP_H
#define KT_HTTP_H

#include <jansson.h>
#include <stddef.h>

#include "httpmsg.h"
#include "server.h"
#include "verdict.h"

struct connlimit_addr;

struct http_req;

/* The request: method, target, path and query, a header field, the body. */
enum httpmsg_method http_req_method(const struct http_req *req);
/* The request target as sent (what a signature covers). */
const char *http_req_uri(const struct http_req *req);
const char *http_req_path(const struct http_req *req);
const char *http_req_query(const struct http_req *req);
/* A header field (NULL when absent), and how often it appears. */
const char *http_req_header(const struct http_req *req, const char *name);
int http_req_header_count(const struct http_req *req, const char *name);
/* The body, NUL-terminated during the handler's call. */
const unsigned char *http_req_body(const struct http_req *req, size_t *len);
/* The peer's address, for the audit log ("" when unknown). */
const char *http_peer(const struct http_req *req);

/* An answer header (not Connection: the HTTP layer writes that one). */
void http_add_header(struct http_req *req, const char *name,
    const char *value);
void http_reply(struct http_req *req, int status, const char *ctype,
    const char *body, size_t len);
void http_reply_json(struct http_req *req, int status, json_t *obj);
/*
 * Errors name what is wrong; they never echo the request.  A refusal is
 * JSON {"error", "code"[, "active"]} with its headers (Retry-After,
 * Allow), or, where the route table says its clients read that
 * (server_form_fn), the form "reason=<text>".
 */
#define HTTP_FORM_CTYPE "application/x-www-form-urlencoded"
void http_reply_error(struct http_req *req, int status, const char *code,
    const char *msg);
void http_reply_verdict(struct http_req *req, const struct verdict *v);

/* The worker threads' connections (worker.c calls these). */
/*
 * Serve fd, admitted and counted from a (connlimit.c) and in w->nconns;
 * plain: from the HKP listener, no TLS.
 */
void http_conn_new(struct worker *w, int fd, const char *peer,
    const struct connlimit_addr *a, int plain);
/* An admitted fd that will not be served: uncounted and closed. */
void http_conn_abandon(
    struct worker *w, int fd, const struct connlimit_addr *a);
/* Close the w->evict_pending longest-idle connections (w's thread). */
void http_evict_idle(struct worker *w);
void http_conn_close_all(struct worker *w);

#endif
