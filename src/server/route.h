/*
 * route.h - the one table of what the server answers: {methods, path or
 * action, handler}.  The HTTP layer hands every parsed request to
 * route_dispatch (through struct server's handle); it finds the handler
 * or answers 404, 405 or 400 itself.
 */
#ifndef KT_ROUTE_H
#define KT_ROUTE_H

#include <event2/keyvalq_struct.h>

#include "handler.h"
#include "httpmsg.h"
#include "server.h"
#include "verdict.h"

#define ROUTE_M(m) (1u << (m))
#define ROUTE_ANY (~0u)

struct route {
	unsigned methods; /* ROUTE_M(HTTPMSG_GET) | ...; ROUTE_ANY */
	const char *path; /* exact, or ending in "/{name}": any one segment */
	const char *param; /* "/" only: the query parameter that selects it */
	const char *value; /* ... and its value (an action); NULL: any */
	handler_fn *fn;
	unsigned flags;
	const void *arg; /* handed to fn in its match */
};

/* Served on the plain-HTTP HKP listener too (only these are). */
#define ROUTE_PLAIN 1u
/* Its clients read refusals as the form "reason=<text>", not JSON. */
#define ROUTE_FORM 2u

/* Route req and call its handler, or answer 404/405/400/413. */
void route_dispatch(struct worker *w, struct http_req *req);
/* The same on the plain-HTTP HKP listener: only ROUTE_PLAIN routes. */
void route_dispatch_plain(struct worker *w, struct http_req *req);
/*
 * The route of method on path with the parsed query q (NULL: none or not
 * parsable), among the routes with every flag of need: its entry with m
 * filled, or NULL with v refusing (404, 405 with its Allow, 400 for an
 * unknown action).
 */
const struct route *route_find(enum httpmsg_method method, const char *path,
    const struct evkeyvalq *q, unsigned need, struct handler_match *m,
    struct verdict *v);
/*
 * server_form_fn: a request of method (enum httpmsg_method) to
 * path?query falls in a group whose routes for method are ROUTE_FORM (a
 * POST to "/?a=" of any action, "/?d=", HKP).
 */
int route_refuses_as_form(int method, const char *path, const char *query);

#endif
