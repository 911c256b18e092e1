/*
 * verdict.h - what a check decided (request signature, HA write gate,
 * throttle): go on, or refuse with this status and reason.  Checks return
 * a verdict and never answer; the handler that asked answers it
 * (http_reply_verdict), or goes on.
 */
#ifndef KT_VERDICT_H
#define KT_VERDICT_H

#include <stdio.h>

struct verdict {
	int status;	  /* 0: go on; else the HTTP status to refuse with */
	const char *code; /* the error's "code" */
	const char *msg;  /* its "error": static text, or text in buf */
	int retry_after;  /* seconds for Retry-After; 0: none */
	const char *active; /* a passive's refusal: the active's URL, or NULL */
	const char *allow;  /* a 405's Allow: the methods, or NULL */
	int close;	    /* close the connection after the answer */
	char buf[320];
};

static inline int
verdict_ok(const struct verdict *v)
{
	return v->status == 0;
}

/*
 * Its message as one line for a client that reads nothing else (the
 * legacy protocol's reason): with the active server's URL, when a
 * passive names it.  v->msg, or out.
 */
static inline const char *
verdict_text(const struct verdict *v, char *out, size_t len)
{
	if (v->active == NULL)
		return v->msg;
	snprintf(out, len, "%s: %s", v->msg, v->active);
	return out;
}

/* Refuse with status, code and a static message; returns -1. */
static inline int
verdict_refuse(struct verdict *v, int status, const char *code,
    const char *msg)
{
	v->status = status;
	v->code = code;
	v->msg = msg;
	v->retry_after = 0;
	v->active = v->allow = NULL;
	v->close = 0;
	return -1;
}

/* 503: the database is not reachable now. */
#define VERDICT_DB_DOWN(v)                                                  \
	verdict_refuse((v), 503, "database", "the database is not available")
/* 500: a stored row failed its integrity check. */
#define VERDICT_INTEGRITY(v)                                                \
	verdict_refuse((v), 500, "integrity",                               \
	    "stored data failed its integrity check")
/* 500: anything else that is the server's own fault. */
#define VERDICT_INTERNAL(v)                                                 \
	verdict_refuse((v), 500, "internal", "internal error")

#endif
