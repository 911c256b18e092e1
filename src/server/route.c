/*
 * route.c - the route table and the dispatch of a parsed request.
 *
 * Entries of one path (and one selecting query parameter) form a group.
 * The path "/" has two: a contact's registration link (/?q=TOKEN), and the
 * actions (/?a=ACTION), the group a request to "/" falls to when it
 * names neither.  Within a group a request finds its entry by its
 * parameter's value and its method; else the group says why not: 405 with
 * the methods it allows, 404 when no parameter selects anything, 400 for
 * an action it does not know.  A path no group has is 404.
 */
#include <event2/http.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>

#include "api.h"
#include "contact.h"
#include "hkp.h"
#include "http.h"
#include "info.h"
#include "legacy.h"
#include "route.h"

#define GET_HEAD (ROUTE_M(HTTPMSG_GET) | ROUTE_M(HTTPMSG_HEAD))

/* A route: methods, path, [param, value,] handler, flags, argument. */
#define R(m, path, fn) {(m), (path), NULL, NULL, (fn), 0, NULL}
#define A(m, action, fn, arg) {(m), "/", "a", (action), (fn), 0, (arg)}
/* A legacy action: POST, its part the argument, its refusals forms. */
#define L(action, part)                                                     \
	{ROUTE_M(HTTPMSG_POST), "/", "a", (action), legacy_action, ROUTE_FORM, \
	    &(part)}
#define POST ROUTE_M(HTTPMSG_POST)

static const struct route routes[] = {
    /* The /v1 JSON API (api_*.c). */
    R(POST, "/v1/register", api_register),
    R(ROUTE_M(HTTPMSG_GET), "/v1/deposits", api_deposit_list),
    R(POST, "/v1/deposits", api_deposit_create),
    R(ROUTE_M(HTTPMSG_GET), "/v1/deposits/{uuid}", api_deposit_get),
    R(ROUTE_M(HTTPMSG_DELETE), "/v1/deposits/{uuid}", api_deposit_delete),
    /* What anyone may ask (info.c). */
    R(GET_HEAD, "/health", info_health),
    /* HKP, for the legacy clients (hkp.c); on the HKP_PORT listener too. */
    {GET_HEAD, "/pks/lookup", NULL, NULL, hkp_lookup, ROUTE_PLAIN | ROUTE_FORM,
	NULL},
    {POST, "/pks/add", NULL, NULL, hkp_add, ROUTE_PLAIN | ROUTE_FORM, NULL},
    /* The contact link: the page answers every method itself. */
    {ROUTE_ANY, "/", "q", NULL, contact_page, 0, NULL},
    /* A legacy url deposit (legacy.c). */
    {POST, "/", "d", NULL, legacy_url, ROUTE_FORM, NULL},
    /*
     * The actions: the Key Trustee Server's own, and the legacy
     * protocol's (legacy*.c; each names its part in its argument).  The
     * last group of "/".
     */
    A(GET_HEAD, "fingerprint", info_fingerprint, NULL),
    A(GET_HEAD, "pubkey", info_pubkey, NULL),
    L("register", legacy_register),
    L("verify", legacy_verify),
    L("request_activation", legacy_activation),
    L("put", legacy_put),
    L("request", legacy_request),
    L("get", legacy_get),
    L("search", legacy_search),
    L("pending", legacy_pending),
    L("authorize", legacy_authorize),
    L("deny", legacy_deny),
    L("enable", legacy_enable),
    L("disable", legacy_disable),
    L("purge", legacy_purge),
    L("entropy", legacy_entropy),
    /* Any other action posted: refused in the client's protocol. */
    L(NULL, legacy_unknown),
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/*
 * The bodies of the JSON API: 128 KiB at most, answered with JSON 413
 * (the HTTP layer refuses more than twice that before reading it).
 */
#define API_PREFIX "/v1/"
#define API_MAX_BODY (128 * 1024)

/* Does pattern match path?  *rest: the segment its "/{name}" matched. */
static int
path_match(const char *pattern, const char *path, const char **rest)
{
	const char *var = strrchr(pattern, '/');
	size_t n;

	*rest = NULL;
	if (var == NULL || var[1] != '{')
		return strcmp(pattern, path) == 0;
	n = (size_t)(var - pattern) + 1;
	if (strncmp(path, pattern, n) != 0)
		return 0;
	path += n;
	if (*path == '\0' || strchr(path, '/') != NULL)
		return 0;
	*rest = path;
	return 1;
}

static int
same_group(const struct route *a, const struct route *b)
{
	return strcmp(a->path, b->path) == 0 &&
	    (a->param == NULL ? b->param == NULL
			      : b->param != NULL &&
		    strcmp(a->param, b->param) == 0);
}

/* "GET, HEAD, POST" of the methods in mask, into buf. */
static const char *
allow_text(unsigned mask, char *buf, size_t len)
{
	static const struct {
		enum httpmsg_method m;
		const char *name;
	} names[] = {{HTTPMSG_GET, "GET"}, {HTTPMSG_HEAD, "HEAD"},
	    {HTTPMSG_POST, "POST"}, {HTTPMSG_PUT, "PUT"},
	    {HTTPMSG_DELETE, "DELETE"}};
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (mask & ROUTE_M(names[i].m))
			off += (size_t)snprintf(buf + off,
			    off < len ? len - off : 0, "%s%s", off ? ", " : "",
			    names[i].name);
	return buf;
}

/* The values of g's group as "a, b, c", into buf. */
static const char *
group_values(const struct route *g, char *buf, size_t len)
{
	const struct route *r;
	size_t off = 0;

	buf[0] = '\0';
	for (r = routes; r < routes + NROUTES; r++)
		if (same_group(g, r) && r->value != NULL)
			off += (size_t)snprintf(buf + off,
			    off < len ? len - off : 0, "%s%s", off ? ", " : "",
			    r->value);
	return buf;
}

/*
 * The group of path the request falls in: the first whose parameter it
 * has (or that has none), else the path's last group; NULL: no group.
 */
static const struct route *
route_group(const char *path, const struct evkeyvalq *q, unsigned need,
    const char **rest)
{
	const struct route *r, *g = NULL;

	for (r = routes; r < routes + NROUTES; r++) {
		if ((r->flags & need) != need || !path_match(r->path, path, rest))
			continue;
		g = r;
		if (r->param == NULL ||
		    (q != NULL && evhttp_find_header(q, r->param) != NULL))
			break;
	}
	if (g != NULL)
		(void)path_match(g->path, path, rest);
	return g;
}

const struct route *
route_find(enum httpmsg_method method, const char *path,
    const struct evkeyvalq *q, unsigned need, struct handler_match *m,
    struct verdict *v)
{
	const struct route *g, *r, *any = NULL;
	const char *val = NULL;
	char values[160];
	unsigned allow = 0, anyallow = 0;
	int named = 0;

	memset(m, 0, sizeof(*m));
	if ((g = route_group(path, q, need, &m->rest)) == NULL) {
		verdict_refuse(v, 404, "not_found", "no such resource");
		return NULL;
	}
	if (g->param != NULL && q != NULL)
		val = evhttp_find_header(q, g->param);
	m->value = val;
	/*
	 * The group's entries for this value (all, when it names none); a
	 * value no entry names falls to the group's catch-all (an entry of
	 * no value) for its method, if it has one.
	 */
	for (r = routes; r < routes + NROUTES; r++) {
		if (!same_group(g, r) || (r->flags & need) != need)
			continue;
		if (val != NULL && r->value == NULL) {
			if (any == NULL && (r->methods & ROUTE_M(method)))
				any = r;
			anyallow |= r->methods;
			continue;
		}
		if (val != NULL && strcmp(r->value, val) != 0)
			continue;
		named = 1;
		allow |= r->methods;
		if ((r->methods & ROUTE_M(method)) &&
		    (val != NULL || g->param == NULL)) {
			m->arg = r->arg;
			return r;
		}
	}
	if (!named && any != NULL) {
		m->arg = any->arg;
		return any;
	}
	/* A group of nothing but a catch-all (/?d=): its methods. */
	if (!named && *group_values(g, values, sizeof(values)) == '\0') {
		named = 1;
		allow = anyallow;
	}
	if (!named) {
		verdict_refuse(v, 400, "unknown_action", v->buf);
		snprintf(v->buf, sizeof(v->buf),
		    "unknown action in parameter %s (known: %s)", g->param,
		    group_values(g, values, sizeof(values)));
		return NULL;
	}
	if (!(allow & ROUTE_M(method))) {
		verdict_refuse(v, 405, "method_not_allowed",
		    "method not allowed on this resource");
		v->allow = allow_text(allow, v->buf, sizeof(v->buf));
		return NULL;
	}
	/* A group selected by a parameter the request does not have. */
	for (r = routes; !same_group(g, r); r++)
		;
	verdict_refuse(v, 404, "not_found", v->buf);
	snprintf(v->buf, sizeof(v->buf), "no such resource; try /?%s=%s",
	    r->param, r->value != NULL ? r->value : "");
	return NULL;
}

int
route_refuses_as_form(int method, const char *path, const char *query)
{
	const struct route *g, *r;
	const char *rest;
	struct evkeyvalq q;
	int form = 0;

	TAILQ_INIT(&q);
	g = route_group(*path != '\0' ? path : "/",
	    query != NULL && evhttp_parse_query_str(query, &q) == 0 ? &q : NULL,
	    0, &rest);
	/* A group whose routes for this method are all the clients' forms. */
	for (r = routes; g != NULL && r < routes + NROUTES; r++)
		if (same_group(g, r) && (r->methods & ROUTE_M(method))) {
			form = (r->flags & ROUTE_FORM) != 0;
			if (!form)
				break;
		}
	evhttp_clear_headers(&q);
	return form;
}

static void
dispatch(struct worker *w, struct http_req *req, unsigned need)
{
	const char *path = http_req_path(req), *query = http_req_query(req);
	struct evkeyvalq q;
	const struct route *r;
	struct handler_match m;
	struct verdict v;
	size_t len;

	if (*path == '\0')
		path = "/";
	(void)http_req_body(req, &len);
	if (strncmp(path, API_PREFIX, strlen(API_PREFIX)) == 0 &&
	    len > API_MAX_BODY) {
		verdict_refuse(&v, 413, "too_large",
		    "request body larger than 128 KiB");
		v.close = 1;
		http_reply_verdict(req, &v);
		return;
	}
	TAILQ_INIT(&q);
	r = route_find(http_req_method(req), path,
	    query != NULL && evhttp_parse_query_str(query, &q) == 0 ? &q : NULL,
	    need, &m, &v);
	if (r != NULL)
		r->fn(w, req, &m);
	else
		http_reply_verdict(req, &v);
	evhttp_clear_headers(&q);
}

void
route_dispatch(struct worker *w, struct http_req *req)
{
	dispatch(w, req, 0);
}

void
route_dispatch_plain(struct worker *w, struct http_req *req)
{
	dispatch(w, req, ROUTE_PLAIN);
}
