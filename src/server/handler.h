/*
 * handler.h - the shape of a request handler: what route.c's table calls
 * with a request it matched.  A handler answers through http.h's reply
 * functions, now or later (it may set the request aside until an audit
 * row commits); nothing else answers.
 */
#ifndef KT_HANDLER_H
#define KT_HANDLER_H

#include "server.h"

/* What the route matched besides the path; valid during the call only. */
struct handler_match {
	const char *rest;  /* the segment a "/{name}" at its end matched */
	const char *value; /* the selecting query parameter's value */
	const void *arg;   /* the route's argument (the handler's own) */
};

typedef void handler_fn(struct worker *w, struct http_req *req,
    const struct handler_match *m);

#endif
