/* test_httpmsg.c - unit tests for src/common/httpmsg.{h,c}. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "httpmsg.h"

#define MAXH 1024
#define MAXB 4096

/* Parse text (a copy: the parser writes into it) head then body. */
struct parsed {
	char buf[8192];
	struct httpmsg m;
	ssize_t head, body;
};

static void
parse(struct parsed *p, const char *text)
{
	size_t n = strlen(text);

	assert_true(n < sizeof(p->buf));
	memcpy(p->buf, text, n + 1);
	p->body = 0;
	p->head = httpmsg_head(p->buf, n, MAXH, MAXB, &p->m);
	if (p->head > 0)
		p->body = httpmsg_body(
		    p->buf + p->head, n - (size_t)p->head, MAXB, &p->m);
}

static void
test_simple_get(void **state)
{
	struct parsed p;
	const char *t = "GET /v1/deposits/x?a=1 HTTP/1.1\r\nHost: h\r\n"
			"Authorization:  KT1 fp=1  \r\n\r\n";

	(void)state;
	parse(&p, t);
	assert_int_equal(p.head, (ssize_t)strlen(t));
	assert_int_equal(p.body, 0);
	assert_int_equal(p.m.method, HTTPMSG_GET);
	assert_string_equal(p.m.method_name, "GET");
	assert_string_equal(p.m.target, "/v1/deposits/x?a=1");
	assert_int_equal(p.m.minor, 1);
	assert_int_equal(p.m.keep_alive, 1);
	assert_int_equal(p.m.nfields, 2);
	assert_string_equal(httpmsg_field(&p.m, "host"), "h");
	assert_string_equal(httpmsg_field(&p.m, "AUTHORIZATION"), "KT1 fp=1");
	assert_null(httpmsg_field(&p.m, "Content-Type"));
	assert_int_equal(p.m.bodylen, 0);
}

static void
test_methods_and_versions(void **state)
{
	static const struct {
		const char *text;
		enum httpmsg_method method;
		int keep_alive;
	} cases[] = {
	    {"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", HTTPMSG_HEAD, 1},
	    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
		HTTPMSG_POST, 1},
	    {"PUT / HTTP/1.1\r\nHost: h\r\n\r\n", HTTPMSG_PUT, 1},
	    {"DELETE / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
		HTTPMSG_DELETE, 0},
	    {"PATCH / HTTP/1.1\r\nHost: h\r\n\r\n", HTTPMSG_OTHER, 1},
	    {"get / HTTP/1.1\r\nHost: h\r\n\r\n", HTTPMSG_OTHER, 1},
	    {"GET / HTTP/1.0\r\n\r\n", HTTPMSG_GET, 0},
	    {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", HTTPMSG_GET,
		1},
	    /* HTTP/1.0 may leave Host out (RFC 9112, 3.2). */
	    {"GET / HTTP/1.0\r\nHost: h\r\n\r\n", HTTPMSG_GET, 0},
	    {"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n",
		HTTPMSG_GET, 0},
	    /* Bare LF line ends, and empty lines before the request. */
	    {"\r\n\nGET / HTTP/1.1\nHost: h\n\n", HTTPMSG_GET, 1},
	};
	struct parsed p;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		parse(&p, cases[i].text);
		assert_int_equal(p.head, (ssize_t)strlen(cases[i].text));
		assert_int_equal(p.m.method, cases[i].method);
		assert_int_equal(p.m.keep_alive, cases[i].keep_alive);
	}
}

static void
test_content_length_body(void **state)
{
	struct parsed p;
	char buf[128];
	struct httpmsg m;
	const char *t =
	    "POST /v1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET";
	ssize_t h;

	(void)state;
	parse(&p, t);
	assert_true(p.head > 0);
	assert_int_equal(p.body, 5);
	assert_int_equal(p.m.bodylen, 5);
	assert_memory_equal(p.m.body, "hello", 5);
	/* The pipelined bytes after the body are not part of it. */
	assert_memory_equal(p.m.body + 5, "GET", 3);

	/* Not all there yet: more is needed, nothing is lost. */
	strcpy(
	    buf, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc");
	h = httpmsg_head(buf, strlen(buf), MAXH, MAXB, &m);
	assert_true(h > 0);
	assert_int_equal(httpmsg_body(buf + h, 3, MAXB, &m), HTTPMSG_MORE);
	memcpy(buf + h + 3, "defghij", 7);
	assert_int_equal(httpmsg_body(buf + h, 10, MAXB, &m), 10);
	assert_memory_equal(m.body, "abcdefghij", 10);

	/* A head not complete yet. */
	strcpy(buf, "GET / HTTP/1.1\r\nHost: x\r\n");
	assert_int_equal(httpmsg_head(buf, strlen(buf), MAXH, MAXB, &m), 0);
}

static void
test_chunked(void **state)
{
	struct parsed p;
	char buf[256];
	struct httpmsg m;
	const char *t =
	    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
	    "0\r\nTrailer: x\r\n\r\nNEXT";
	size_t enc;
	ssize_t h;

	(void)state;
	parse(&p, t);
	assert_true(p.head > 0);
	assert_int_equal(p.m.chunked, 1);
	enc = strlen(t) - (size_t)p.head - 4;
	assert_int_equal(p.body, (ssize_t)enc);
	assert_int_equal(p.m.bodylen, 31);
	assert_memory_equal(p.m.body, "helloabcdefghijklmnopqrstuvwxyz", 31);
	assert_memory_equal(p.buf + p.head + enc, "NEXT", 4);

	/* Each prefix of the body asks for more and changes nothing. */
	strcpy(buf,
	    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "3\r\nabc\r\n0\r\n\r\n");
	h = httpmsg_head(buf, strlen(buf), MAXH, MAXB, &m);
	assert_true(h > 0);
	for (enc = 0; enc < strlen(buf + h); enc++)
		assert_int_equal(
		    httpmsg_body(buf + h, enc, MAXB, &m), HTTPMSG_MORE);
	assert_int_equal(httpmsg_body(buf + h, enc, MAXB, &m), (ssize_t)enc);
	assert_memory_equal(m.body, "abc", 3);
}

static void
test_refused(void **state)
{
	static const struct {
		const char *text;
		int status;
	} cases[] = {
	    {"GET /\r\n\r\n", 400},
	    {"GET  / HTTP/1.1\r\n\r\n", 400},
	    {"GET / HTTP/2.0\r\n\r\n", 505},
	    /* Only 1.0 and 1.1 (RFC 9112, 2.3). */
	    {"GET / HTTP/1.9\r\nHost: h\r\n\r\n", 505},
	    {"GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505},
	    {"GET / HTTP/0.9\r\n\r\n", 505},
	    /* Host: exactly one in HTTP/1.1, never two (RFC 9112, 3.2). */
	    {"GET / HTTP/1.1\r\n\r\n", 400},
	    {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
	    {"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400},
	    {"GET / HTTP/1.0\r\nHost: a\r\nHOST: b\r\n\r\n", 400},
	    {"GET / HTTP/1.1x\r\n\r\n", 400},
	    {"GET / FTP/1.1\r\n\r\n", 400},
	    {"G(T / HTTP/1.1\r\n\r\n", 400},
	    {"GET /\x01 HTTP/1.1\r\n\r\n", 400},
	    {"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400},
	    {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400},
	    {"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400},
	    {"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 400},
	    {"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400},
	    {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
	    {"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400},
	    {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: "
	     "2\r\n\r\n",
		400},
	    {"POST / HTTP/1.1\r\nContent-Length: 4097\r\n\r\n", 413},
	    {"POST / HTTP/1.1\r\nContent-Length: "
	     "99999999999999999999999\r\n\r\n",
		413},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	     "Transfer-Encoding: chunked\r\n\r\n",
		501},
	    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	     "Content-Length: 3\r\n\r\n",
		400},
	    {"POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", 417},
	    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "zz\r\n",
		400},
	    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "3\r\nabcX0\r\n\r\n",
		400},
	    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "1001\r\n",
		413},
	    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "fffffffffffffffffffffff\r\n",
		413},
	};
	struct parsed p;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		parse(&p, cases[i].text);
		if (p.head > 0)
			assert_int_equal(p.body, -cases[i].status);
		else
			assert_int_equal(p.head, -cases[i].status);
		assert_non_null(p.m.error);
	}
}

static void
test_limits(void **state)
{
	char *buf = malloc(MAXH + 64);
	struct httpmsg m;
	size_t n;
	int i;

	(void)state;
	assert_non_null(buf);
	/* No end of head within MAXH bytes: 431 once that many are in. */
	n = (size_t)snprintf(buf, MAXH + 64, "GET / HTTP/1.1\r\nX: ");
	memset(buf + n, 'a', MAXH + 64 - n);
	assert_int_equal(httpmsg_head(buf, MAXH - 1, MAXH, MAXB, &m), 0);
	assert_int_equal(httpmsg_head(buf, MAXH, MAXH, MAXB, &m), -431);
	free(buf);

	/* Too many fields. */
	buf = malloc(8192);
	assert_non_null(buf);
	n = (size_t)snprintf(buf, 8192, "GET / HTTP/1.1\r\n");
	for (i = 0; i <= HTTPMSG_MAX_FIELDS; i++)
		n += (size_t)snprintf(buf + n, 8192 - n, "X%d: y\r\n", i);
	n += (size_t)snprintf(buf + n, 8192 - n, "\r\n");
	assert_int_equal(httpmsg_head(buf, n, 8192, MAXB, &m), -431);
	free(buf);
}

static void
test_field_helpers(void **state)
{
	struct parsed p;

	(void)state;
	parse(&p,
	    "GET / HTTP/1.1\r\nHost: h\r\n"
	    "Authorization: a\r\nauthorization: b\r\n"
	    "Expect: 100-Continue\r\n\r\n");
	assert_true(p.head > 0);
	assert_int_equal(httpmsg_field_count(&p.m, "Authorization"), 2);
	assert_string_equal(httpmsg_field(&p.m, "authorization"), "a");
	assert_int_equal(p.m.expect_continue, 1);
	assert_string_equal(httpmsg_reason(404), "Not Found");
	assert_string_equal(
	    httpmsg_reason(431), "Request Header Fields Too Large");
	assert_string_equal(httpmsg_reason(499), "Bad Request");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_simple_get),
	    cmocka_unit_test(test_methods_and_versions),
	    cmocka_unit_test(test_content_length_body),
	    cmocka_unit_test(test_chunked),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_field_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
