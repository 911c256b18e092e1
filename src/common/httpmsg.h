#ifndef KT_HTTPMSG_H
#define KT_HTTPMSG_H
/*
 * httpmsg.h - the server's HTTP/1.x request parser.  It works in place on
 * the connection's input buffer: no allocation, every string it hands out
 * points into that buffer and is NUL-terminated there.
 */
#include <stddef.h>
#include <sys/types.h>

enum httpmsg_method {
	HTTPMSG_OTHER = 0, /* a well-formed token we do not serve */
	HTTPMSG_GET,
	HTTPMSG_HEAD,
	HTTPMSG_POST,
	HTTPMSG_PUT,
	HTTPMSG_DELETE,
};

#define HTTPMSG_MAX_FIELDS 64

struct httpmsg_field {
	const char *name;  /* as sent; compare without case */
	const char *value; /* without the white space around it */
};

struct httpmsg {
	enum httpmsg_method method;
	const char *method_name;
	const char *target; /* the request target, exactly as sent */
	int minor;	    /* HTTP/1.minor */
	struct httpmsg_field fields[HTTPMSG_MAX_FIELDS];
	int nfields;
	int keep_alive;	     /* what the version and Connection ask for */
	int expect_continue; /* Expect: 100-continue */
	int chunked;	     /* Transfer-Encoding: chunked */
	size_t content_length;
	const char *error; /* why a request was refused, for the answer */
	/* After httpmsg_body: the body (NUL-terminated when room allows). */
	char *body;
	size_t bodylen;
};

/*
 * The head (request line and header fields) at the start of buf[0..len):
 * > 0 its length, and m filled (the head's bytes are rewritten); 0 when
 * it is not complete yet and still within max_head bytes; < 0 the HTTP
 * status to refuse it with (400, 413, 431, 501, 505), m->error saying why.
 * Bodies larger than max_body are refused from their Content-Length.
 */
ssize_t httpmsg_head(
    char *buf, size_t len, size_t max_head, size_t max_body, struct httpmsg *m);

/*
 * The body that follows a parsed head, at buf[0..len): >= 0 the bytes it
 * takes in buf (m->body and m->bodylen set; a chunked body is decoded in
 * place), HTTPMSG_MORE when it is not all there yet, else minus the HTTP
 * status to refuse it with.
 */
#define HTTPMSG_MORE (-1)
ssize_t httpmsg_body(char *buf, size_t len, size_t max_body, struct httpmsg *m);

/* The value of header field name (without case), NULL when absent. */
const char *httpmsg_field(const struct httpmsg *m, const char *name);

/* How many times header field name appears. */
int httpmsg_field_count(const struct httpmsg *m, const char *name);

/* The text for an HTTP status code ("OK", "Not Found", ...). */
const char *httpmsg_reason(int status);

#endif
