/*
 * httpmsg.c - HTTP/1.0 and 1.1 requests (RFC 9112), parsed in place.
 *
 * Strict where leniency lets two parsers disagree about where a request
 * ends (request smuggling): a bare CR, a folded line, white space before a
 * field's colon, a Content-Length that is not all digits or disagrees with
 * another, both Content-Length and Transfer-Encoding, any transfer coding
 * but chunked, two Host fields, or none in HTTP/1.1; any version but 1.0
 * and 1.1 is 505.  Line ends may be CRLF or a bare LF; empty lines before the
 * request line are skipped.  A field value may hold any byte but NUL, CR
 * and LF.
 */
#include <string.h>
#include <strings.h>

#include "httpmsg.h"

static int
is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int
refuse(struct httpmsg *m, int status, const char *why)
{
	m->error = why;
	return -status;
}

/*
 * The line at *p (up to end): NUL-terminated in place, *p moved past its
 * end; NULL for a bare CR or a NUL byte in it.
 */
static char *
take_line(char **p, char *end)
{
	char *s = *p, *q;

	for (q = s; q < end && *q != '\n'; q++)
		if (*q == '\0' ||
		    (*q == '\r' && (q + 1 >= end || q[1] != '\n')))
			return NULL;
	if (q >= end)
		return NULL;
	*p = q + 1;
	if (q > s && q[-1] == '\r')
		q--;
	*q = '\0';
	return s;
}

/* Does the comma-separated list v hold token t (without case)? */
static int
has_token(const char *v, const char *t)
{
	size_t n = strlen(t);

	while (*v != '\0') {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		if (strncasecmp(v, t, n) == 0) {
			const char *e = v + n;
			while (*e == ' ' || *e == '\t')
				e++;
			if (*e == ',' || *e == '\0')
				return 1;
		}
		while (*v != '\0' && *v != ',')
			v++;
	}
	return 0;
}

static const struct {
	const char *name;
	enum httpmsg_method method;
} methods[] = {
    {"GET", HTTPMSG_GET},
    {"HEAD", HTTPMSG_HEAD},
    {"POST", HTTPMSG_POST},
    {"PUT", HTTPMSG_PUT},
    {"DELETE", HTTPMSG_DELETE},
};

static int
request_line(char *line, struct httpmsg *m)
{
	char *p = line, *target, *version;
	size_t i;

	while (is_tchar((unsigned char)*p))
		p++;
	if (p == line || *p != ' ')
		return refuse(m, 400, "malformed request line");
	*p++ = '\0';
	target = p;
	while ((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f)
		p++;
	if (p == target || *p != ' ')
		return refuse(m, 400, "malformed request target");
	*p++ = '\0';
	version = p;
	if (strncmp(version, "HTTP/", 5) != 0 || version[5] < '0' ||
	    version[5] > '9' || version[6] != '.' || version[7] < '0' ||
	    version[7] > '9' || version[8] != '\0')
		return refuse(m, 400, "malformed HTTP version");
	if (version[5] != '1' || version[7] > '1')
		return refuse(m, 505, "only HTTP/1.0 and HTTP/1.1 are served");
	m->minor = version[7] - '0';
	m->method_name = line;
	m->method = HTTPMSG_OTHER;
	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(line, methods[i].name) == 0)
			m->method = methods[i].method;
	m->target = target;
	return 0;
}

/* name: OWS value OWS, split in place. */
static int
field_line(char *line, struct httpmsg *m)
{
	char *p = line, *v, *e;

	while (is_tchar((unsigned char)*p))
		p++;
	if (p == line || *p != ':')
		return refuse(m, 400, "malformed header field");
	*p++ = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	/*
	 * Other control characters in a value are the handler's to refuse
	 * (an Authorization header is then malformed); a NUL or a bare CR
	 * never gets here (take_line).
	 */
	v = p;
	p += strlen(p);
	for (e = p; e > v && (e[-1] == ' ' || e[-1] == '\t'); e--)
		;
	*e = '\0';
	if (m->nfields == HTTPMSG_MAX_FIELDS)
		return refuse(m, 431, "too many header fields");
	m->fields[m->nfields].name = line;
	m->fields[m->nfields].value = v;
	m->nfields++;
	return 0;
}

/* Content-Length: digits only; every copy the same. */
static int
content_length(struct httpmsg *m, size_t max_body)
{
	size_t n = 0;
	int i, seen = 0;

	for (i = 0; i < m->nfields; i++) {
		const char *p = m->fields[i].value;
		size_t k = 0;

		if (strcasecmp(m->fields[i].name, "Content-Length") != 0)
			continue;
		if (*p == '\0')
			return refuse(m, 400, "malformed Content-Length");
		for (; *p != '\0'; p++) {
			if (*p < '0' || *p > '9')
				return refuse(
				    m, 400, "malformed Content-Length");
			if (k > (max_body + 1) / 10 + 1) {
				k = max_body +
				    1; /* too large whatever follows */
				continue;
			}
			k = k * 10 + (size_t)(*p - '0');
		}
		if (seen && k != n)
			return refuse(m, 400, "conflicting Content-Length");
		n = k;
		seen = 1;
	}
	if (n > max_body)
		return refuse(m, 413, "request body too large");
	m->content_length = n;
	return 0;
}

ssize_t
httpmsg_head(
    char *buf, size_t len, size_t max_head, size_t max_body, struct httpmsg *m)
{
	char *p = buf, *end, *line;
	const char *v;
	size_t lim = len < max_head ? len : max_head, i;
	int r;

	memset(m, 0, sizeof(*m));
	/* Empty lines before the request line are not a request. */
	for (i = 0; i < lim && (buf[i] == '\r' || buf[i] == '\n'); i++)
		;
	for (end = NULL; i < lim; i++)
		if (buf[i] == '\n' &&
		    ((i + 1 < lim && buf[i + 1] == '\n') ||
			(i + 2 < lim && buf[i + 1] == '\r' &&
			    buf[i + 2] == '\n'))) {
			end = buf + i + (buf[i + 1] == '\n' ? 2 : 3);
			break;
		}
	if (end == NULL)
		return len >= max_head ? refuse(m, 431,
					     "request header "
					     "block too large")
				       : 0;
	while (*p == '\r' || *p == '\n')
		p++;
	if ((line = take_line(&p, end)) == NULL)
		return refuse(m, 400, "malformed request line");
	if ((r = request_line(line, m)) != 0)
		return r;
	while ((line = take_line(&p, end)) != NULL && *line != '\0') {
		if (*line == ' ' || *line == '\t')
			return refuse(m, 400, "folded header field");
		if ((r = field_line(line, m)) != 0)
			return r;
	}
	if (line == NULL)
		return refuse(m, 400, "malformed header field");
	if ((r = content_length(m, max_body)) != 0)
		return r;
	if ((v = httpmsg_field(m, "Transfer-Encoding")) != NULL) {
		if (httpmsg_field_count(m, "Transfer-Encoding") > 1 ||
		    strcasecmp(v, "chunked") != 0)
			return refuse(m, 501,
			    "only the chunked transfer "
			    "coding is accepted");
		if (httpmsg_field(m, "Content-Length") != NULL)
			return refuse(m, 400,
			    "both Content-Length and "
			    "Transfer-Encoding");
		m->chunked = 1;
	}
	if ((v = httpmsg_field(m, "Expect")) != NULL) {
		if (strcasecmp(v, "100-continue") != 0)
			return refuse(m, 417,
			    "only Expect: 100-continue is "
			    "understood");
		m->expect_continue = 1;
	}
	/* RFC 9112, 3.2: one Host, and HTTP/1.1 must send it. */
	if (httpmsg_field_count(m, "Host") > 1)
		return refuse(m, 400, "more than one Host header field");
	if (m->minor == 1 && httpmsg_field(m, "Host") == NULL)
		return refuse(m, 400, "an HTTP/1.1 request without Host");
	m->keep_alive = m->minor >= 1;
	for (i = 0; i < (size_t)m->nfields; i++) {
		if (strcasecmp(m->fields[i].name, "Connection") != 0)
			continue;
		if (has_token(m->fields[i].value, "close"))
			m->keep_alive = 0;
		else if (has_token(m->fields[i].value, "keep-alive") &&
		    m->minor == 0)
			m->keep_alive = 1;
	}
	return (ssize_t)(p - buf);
}

/*
 * One pass over a chunked body: its encoded length and decoded size, or
 * HTTPMSG_MORE, or minus a status.  With decode set (a pass that found it
 * complete), the data is moved down to buf in place.
 */
static ssize_t
chunks(char *buf, size_t len, size_t max_body, int decode, struct httpmsg *m)
{
	size_t i = 0, out = 0, size;
	int digits;

	for (;;) {
		for (size = 0, digits = 0; i < len; i++, digits++) {
			char c = buf[i];
			int d = c >= '0' && c <= '9' ? c - '0'
			    : c >= 'a' && c <= 'f'   ? c - 'a' + 10
			    : c >= 'A' && c <= 'F'   ? c - 'A' + 10
						     : -1;
			if (d < 0)
				break;
			if (size > max_body)
				return refuse(m, 413, "request body too large");
			size = size * 16 + (size_t)d;
		}
		if (i >= len)
			return HTTPMSG_MORE;
		if (digits == 0)
			return refuse(m, 400, "malformed chunk size");
		/* Chunk extensions are ignored, up to the line's end. */
		for (; i < len && buf[i] != '\n'; i++)
			if (buf[i] == '\0' ||
			    (buf[i] == '\r' && i + 1 < len &&
				buf[i + 1] != '\n'))
				return refuse(m, 400, "malformed chunk line");
		if (i >= len)
			return HTTPMSG_MORE;
		i++;
		if (size == 0)
			break;
		if (size > max_body - out)
			return refuse(m, 413, "request body too large");
		if (len - i < size)
			return HTTPMSG_MORE;
		if (decode)
			memmove(buf + out, buf + i, size);
		out += size;
		i += size;
		if (i < len && buf[i] == '\r')
			i++;
		if (i >= len)
			return HTTPMSG_MORE;
		if (buf[i] != '\n')
			return refuse(m, 400, "chunk without its line end");
		i++;
	}
	/* Trailer fields, ignored, up to an empty line. */
	for (;;) {
		size_t start = i;

		for (; i < len && buf[i] != '\n'; i++)
			if (buf[i] == '\0')
				return refuse(m, 400, "malformed trailer");
		if (i >= len)
			return HTTPMSG_MORE;
		i++;
		if (i - start == 1 || (i - start == 2 && buf[start] == '\r'))
			break;
	}
	if (decode) {
		m->body = buf;
		m->bodylen = out;
	}
	return (ssize_t)i;
}

ssize_t
httpmsg_body(char *buf, size_t len, size_t max_body, struct httpmsg *m)
{
	ssize_t r;

	if (!m->chunked) {
		if (len < m->content_length)
			return HTTPMSG_MORE;
		m->body = buf;
		m->bodylen = m->content_length;
		return (ssize_t)m->content_length;
	}
	if ((r = chunks(buf, len, max_body, 0, m)) < 0)
		return r;
	return chunks(buf, len, max_body, 1, m);
}

const char *
httpmsg_field(const struct httpmsg *m, const char *name)
{
	int i;

	for (i = 0; i < m->nfields; i++)
		if (strcasecmp(m->fields[i].name, name) == 0)
			return m->fields[i].value;
	return NULL;
}

int
httpmsg_field_count(const struct httpmsg *m, const char *name)
{
	int i, n = 0;

	for (i = 0; i < m->nfields; i++)
		n += strcasecmp(m->fields[i].name, name) == 0;
	return n;
}

const char *
httpmsg_reason(int status)
{
	static const struct {
		int status;
		const char *text;
	} reasons[] = {
	    {100, "Continue"},
	    {200, "OK"},
	    {201, "Created"},
	    {204, "No Content"},
	    {301, "Moved Permanently"},
	    {302, "Found"},
	    {304, "Not Modified"},
	    {400, "Bad Request"},
	    {401, "Unauthorized"},
	    {403, "Forbidden"},
	    {404, "Not Found"},
	    {405, "Method Not Allowed"},
	    {408, "Request Timeout"},
	    {409, "Conflict"},
	    {411, "Length Required"},
	    {413, "Content Too Large"},
	    {414, "URI Too Long"},
	    {415, "Unsupported Media Type"},
	    {417, "Expectation Failed"},
	    {429, "Too Many Requests"},
	    {431, "Request Header Fields Too Large"},
	    {500, "Internal Server Error"},
	    {501, "Not Implemented"},
	    {502, "Bad Gateway"},
	    {503, "Service Unavailable"},
	    {504, "Gateway Timeout"},
	    {505, "HTTP Version Not Supported"},
	};
	size_t i;

	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == status)
			return reasons[i].text;
	return status < 300 ? "OK"
	    : status < 500  ? "Bad Request"
			    : "Internal Server Error";
}
