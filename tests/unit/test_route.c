/* test_route.c - unit tests for src/server/route.c's table and matching. */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/queue.h>

#include <cmocka.h>

#include "api.h"
#include "contact.h"
#include "hkp.h"
#include "info.h"
#include "legacy.h"
#include "route.h"

/* route_find on a request target split as the HTTP layer splits it. */
static unsigned need;

static const struct route *
find(enum httpmsg_method method, const char *path, const char *query,
    struct handler_match *m, struct verdict *v, struct evkeyvalq *q)
{
	TAILQ_INIT(q);
	return route_find(method, path,
	    query != NULL && evhttp_parse_query_str(query, q) == 0 ? q : NULL,
	    need, m, v);
}

#define FIND(method, path, query)                                           \
	find((method), (path), (query), &m, &v, &q)

static void
test_api_routes(void **state)
{
	const struct route *r;
	struct handler_match m;
	struct verdict v;
	struct evkeyvalq q;

	(void)state;
	r = FIND(HTTPMSG_POST, "/v1/register", NULL);
	assert_non_null(r);
	assert_ptr_equal(r->fn, api_register);
	assert_null(m.rest);
	r = FIND(HTTPMSG_GET, "/v1/deposits", "name=a");
	assert_ptr_equal(r->fn, api_deposit_list);
	evhttp_clear_headers(&q);
	r = FIND(HTTPMSG_POST, "/v1/deposits", NULL);
	assert_ptr_equal(r->fn, api_deposit_create);
	r = FIND(HTTPMSG_GET, "/v1/deposits/0b9c", NULL);
	assert_ptr_equal(r->fn, api_deposit_get);
	assert_string_equal(m.rest, "0b9c");
	r = FIND(HTTPMSG_DELETE, "/v1/deposits/x", NULL);
	assert_ptr_equal(r->fn, api_deposit_delete);
	assert_string_equal(m.rest, "x");
}

static void
test_method_not_allowed_names_the_methods(void **state)
{
	static const struct {
		enum httpmsg_method m;
		const char *path, *allow;
	} cases[] = {
	    {HTTPMSG_PUT, "/", "GET, HEAD, POST"},
	    {HTTPMSG_GET, "/v1/register", "POST"},
	    {HTTPMSG_PUT, "/v1/deposits", "GET, POST"},
	    {HTTPMSG_DELETE, "/v1/deposits", "GET, POST"},
	    {HTTPMSG_HEAD, "/v1/deposits", "GET, POST"},
	    {HTTPMSG_POST, "/v1/deposits/u", "GET, DELETE"},
	    {HTTPMSG_POST, "/health", "GET, HEAD"},
	    {HTTPMSG_DELETE, "/", "GET, HEAD, POST"},
	    {HTTPMSG_OTHER, "/", "GET, HEAD, POST"},
	};
	struct handler_match m;
	struct verdict v;
	struct evkeyvalq q;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_null(FIND(cases[i].m, cases[i].path, NULL));
		assert_int_equal(v.status, 405);
		assert_string_equal(v.code, "method_not_allowed");
		assert_string_equal(v.allow, cases[i].allow);
	}
}

static void
test_not_found(void **state)
{
	static const char *const paths[] = {"/no/such/thing",
	    "/v1/nothing-here", "/health/extra", "/v1/deposits/",
	    "/v1/deposits/u/x", "/v1", "/v1/registerx", ""};
	struct handler_match m;
	struct verdict v;
	struct evkeyvalq q;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		assert_null(FIND(HTTPMSG_GET, paths[i], NULL));
		assert_int_equal(v.status, 404);
		assert_string_equal(v.code, "not_found");
		assert_null(v.allow);
	}
	/* Whatever the method: no resource, so no method of it either. */
	assert_null(FIND(HTTPMSG_POST, "/no/such/thing", NULL));
	assert_int_equal(v.status, 404);
}

static void
test_actions(void **state)
{
	const struct route *r;
	struct handler_match m;
	struct verdict v;
	struct evkeyvalq q;

	(void)state;
	r = FIND(HTTPMSG_GET, "/", "a=fingerprint");
	assert_ptr_equal(r->fn, info_fingerprint);
	assert_string_equal(m.value, "fingerprint");
	evhttp_clear_headers(&q);
	r = FIND(HTTPMSG_HEAD, "/", "a=pubkey");
	assert_ptr_equal(r->fn, info_pubkey);
	evhttp_clear_headers(&q);
	r = FIND(HTTPMSG_HEAD, "/health", NULL);
	assert_ptr_equal(r->fn, info_health);

	/* An action the table does not have: 400, naming those it has. */
	assert_null(FIND(HTTPMSG_GET, "/", "a=%3Cscript%3Enosuchaction"));
	assert_int_equal(v.status, 400);
	assert_string_equal(v.code, "unknown_action");
	assert_string_equal(v.msg,
	    "unknown action in parameter a (known: fingerprint, pubkey, "
	    "register, verify, request_activation, put, request, get, "
	    "search, pending, authorize, deny, enable, disable, purge, "
	    "entropy)");
	assert_null(strchr(v.msg, '<'));
	evhttp_clear_headers(&q);

	/* A known action with a method it does not take. */
	assert_null(FIND(HTTPMSG_POST, "/", "a=fingerprint"));
	assert_int_equal(v.status, 405);
	assert_string_equal(v.allow, "GET, HEAD");
	evhttp_clear_headers(&q);
	assert_null(FIND(HTTPMSG_GET, "/", "a=put"));
	assert_int_equal(v.status, 405);
	assert_string_equal(v.allow, "POST");
	evhttp_clear_headers(&q);

	/* The legacy actions take their part as the route's argument. */
	r = FIND(HTTPMSG_POST, "/", "a=put");
	assert_ptr_equal(r->fn, legacy_action);
	assert_ptr_equal(m.arg, &legacy_put);
	evhttp_clear_headers(&q);
	r = FIND(HTTPMSG_POST, "/", "d=abc");
	assert_ptr_equal(r->fn, legacy_url);
	assert_string_equal(m.value, "abc");
	evhttp_clear_headers(&q);
	/* Any other action posted is the client's to be refused in. */
	r = FIND(HTTPMSG_POST, "/", "a=nosuchaction");
	assert_ptr_equal(r->fn, legacy_action);
	assert_ptr_equal(m.arg, &legacy_unknown);
	evhttp_clear_headers(&q);
	r = FIND(HTTPMSG_POST, "/", "a=");
	assert_ptr_equal(m.arg, &legacy_unknown);
	evhttp_clear_headers(&q);
	assert_null(FIND(HTTPMSG_GET, "/", "d=abc"));
	assert_int_equal(v.status, 405);
	assert_string_equal(v.allow, "POST");
	evhttp_clear_headers(&q);

	/* Whose refusals are forms (reason=...), and whose JSON. */
	assert_true(route_refuses_as_form(HTTPMSG_POST, "/", "a=put"));
	assert_true(route_refuses_as_form(HTTPMSG_POST, "/", "a=nosuch"));
	assert_true(route_refuses_as_form(HTTPMSG_POST, "/", "d=abc"));
	assert_true(route_refuses_as_form(HTTPMSG_POST, "/pks/add", NULL));
	assert_true(route_refuses_as_form(HTTPMSG_GET, "/pks/lookup",
	    "op=get&search=0x00"));
	assert_false(route_refuses_as_form(HTTPMSG_GET, "/", "a=nosuch"));
	assert_false(route_refuses_as_form(HTTPMSG_GET, "/", "a=fingerprint"));
	assert_false(route_refuses_as_form(HTTPMSG_POST, "/v1/register", NULL));
	assert_false(route_refuses_as_form(HTTPMSG_GET, "/v1/deposits/x", NULL));
	assert_false(route_refuses_as_form(HTTPMSG_GET, "/nowhere", NULL));
	assert_false(route_refuses_as_form(HTTPMSG_POST, "/", "q=TOKEN"));

	/* "/" naming nothing (or a query that does not parse). */
	assert_null(FIND(HTTPMSG_GET, "/", NULL));
	assert_int_equal(v.status, 404);
	assert_string_equal(v.msg, "no such resource; try /?a=fingerprint");
	assert_null(FIND(HTTPMSG_GET, "/", "b=1"));
	assert_int_equal(v.status, 404);
	evhttp_clear_headers(&q);
	assert_null(FIND(HTTPMSG_GET, "/", "a"));
	assert_int_equal(v.status, 404);
	evhttp_clear_headers(&q);
}

static void
test_contact_link_takes_every_method(void **state)
{
	static const enum httpmsg_method methods[] = {HTTPMSG_GET,
	    HTTPMSG_HEAD, HTTPMSG_POST, HTTPMSG_PUT, HTTPMSG_DELETE,
	    HTTPMSG_OTHER};
	const struct route *r;
	struct handler_match m;
	struct verdict v;
	struct evkeyvalq q;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		/* The page answers methods itself (HTML for a browser). */
		r = FIND(methods[i], "/", "q=TOKEN&a=fingerprint");
		assert_non_null(r);
		assert_ptr_equal(r->fn, contact_page);
		assert_string_equal(m.value, "TOKEN");
		evhttp_clear_headers(&q);
	}
}

static void
test_hkp_and_the_plain_listener(void **state)
{
	const struct route *r;
	struct handler_match m;
	struct verdict v;
	struct evkeyvalq q;

	(void)state;
	r = FIND(HTTPMSG_GET, "/pks/lookup", "op=get&search=0x0");
	assert_ptr_equal(r->fn, hkp_lookup);
	evhttp_clear_headers(&q);
	r = FIND(HTTPMSG_POST, "/pks/add", NULL);
	assert_ptr_equal(r->fn, hkp_add);
	assert_null(FIND(HTTPMSG_GET, "/pks/add", NULL));
	assert_int_equal(v.status, 405);
	assert_string_equal(v.allow, "POST");
	/* The HKP listener serves HKP and nothing else. */
	need = ROUTE_PLAIN;
	r = FIND(HTTPMSG_HEAD, "/pks/lookup", NULL);
	assert_ptr_equal(r->fn, hkp_lookup);
	r = FIND(HTTPMSG_POST, "/pks/add", NULL);
	assert_ptr_equal(r->fn, hkp_add);
	assert_null(FIND(HTTPMSG_GET, "/", "a=fingerprint"));
	assert_int_equal(v.status, 404);
	evhttp_clear_headers(&q);
	assert_null(FIND(HTTPMSG_GET, "/health", NULL));
	assert_int_equal(v.status, 404);
	assert_null(FIND(HTTPMSG_POST, "/v1/register", NULL));
	assert_int_equal(v.status, 404);
	need = 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_api_routes),
	    cmocka_unit_test(test_method_not_allowed_names_the_methods),
	    cmocka_unit_test(test_not_found),
	    cmocka_unit_test(test_actions),
	    cmocka_unit_test(test_contact_link_takes_every_method),
	    cmocka_unit_test(test_hkp_and_the_plain_listener),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
