/* test_authcache.c - unit tests for src/server/authcache.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "authcache.h"

static struct client_auth
entry(const char *fpr, const char *state)
{
	struct client_auth e;

	memset(&e, 0, sizeof(e));
	snprintf(e.fpr, sizeof(e.fpr), "%s", fpr);
	snprintf(e.state, sizeof(e.state), "%s", state);
	snprintf(e.org, sizeof(e.org), "org");
	memset(e.nonce, 0x11, sizeof(e.nonce));
	memset(e.ct, 0x22, sizeof(e.ct));
	return e;
}

#define FPR_A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define FPR_B "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"

static void
test_used_only_while_live(void **state)
{
	struct authcache *ac = authcache_new();
	struct client_auth a = entry(FPR_A, "active"), out;

	(void)state;
	/* Not listening yet: nothing is kept, nothing is found. */
	authcache_put(ac, &a, authcache_gen(ac));
	assert_int_equal(authcache_get(ac, FPR_A, &out), -1);
	authcache_set_live(ac, 1);
	authcache_put(ac, &a, authcache_gen(ac));
	assert_int_equal(authcache_get(ac, FPR_A, &out), 0);
	assert_memory_equal(&out, &a, sizeof(a));
	/* The listener broke: every lookup goes to the database again. */
	authcache_set_live(ac, 0);
	assert_int_equal(authcache_get(ac, FPR_A, &out), -1);
	/* Back: emptied, what changed meanwhile is unknown. */
	authcache_set_live(ac, 1);
	assert_int_equal(authcache_get(ac, FPR_A, &out), -1);
	authcache_free(ac);
}

static void
test_invalidations(void **state)
{
	struct authcache *ac = authcache_new();
	struct client_auth a = entry(FPR_A, "active"),
			   b = entry(FPR_B, "pending"), out;
	unsigned long gen;

	(void)state;
	authcache_set_live(ac, 1);
	authcache_put(ac, &a, authcache_gen(ac));
	authcache_put(ac, &b, authcache_gen(ac));
	authcache_invalidate(ac, FPR_A);
	assert_int_equal(authcache_get(ac, FPR_A, &out), -1);
	assert_int_equal(authcache_get(ac, FPR_B, &out), 0);
	assert_string_equal(out.state, "pending");
	authcache_invalidate(ac, "*");
	assert_int_equal(authcache_get(ac, FPR_B, &out), -1);

	/* A row read before an invalidation is not kept after it. */
	gen = authcache_gen(ac);
	authcache_invalidate(ac, FPR_B);
	authcache_put(ac, &a, gen);
	assert_int_equal(authcache_get(ac, FPR_A, &out), -1);
	authcache_free(ac);
	authcache_free(NULL);
}

static void
test_channel(void **state)
{
	struct authcache *ac = authcache_new();
	struct client_auth a = entry(FPR_A, "active"), out;
	struct store_channel ch;

	(void)state;
	authcache_channel(ac, &ch);
	assert_string_equal(ch.name, "kt_clients");
	ch.live(ch.arg, 1);
	authcache_put(ac, &a, authcache_gen(ac));
	assert_int_equal(authcache_get(ac, FPR_A, &out), 0);
	/* What the orgtool's disable-client trigger sends. */
	ch.fn(ch.arg, FPR_A);
	assert_int_equal(authcache_get(ac, FPR_A, &out), -1);
	ch.live(ch.arg, 0);
	authcache_free(ac);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_used_only_while_live),
	    cmocka_unit_test(test_invalidations),
	    cmocka_unit_test(test_channel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
