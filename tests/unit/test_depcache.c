/*
 * test_depcache.c - unit tests for src/server/depcache.c and deposit.c:
 * the cache without its listener (its filler finds no database here, and
 * says so), driven as the listener and the API drive it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "conf.h"
#include "depcache.h"

#define OWNER "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static struct kt_conf conf; /* no DB_CONNECT: the filler reads nothing */

static struct deposit *
dep(int i, size_t ctlen)
{
	unsigned char nonce[CRYPTO_NONCE_LEN] = {0}, ct[4096];
	char uuid[CRYPTO_UUID_LEN + 1];

	memset(ct, i, sizeof(ct));
	snprintf(uuid, sizeof(uuid), "00000000-0000-4000-8000-%012d", i);
	return deposit_new(uuid, OWNER, "name", NULL, nonce, sizeof(nonce), ct,
	    ctlen, "2026-12-07T00:00:00Z");
}

static void
test_deposit_new_refuses_what_the_api_never_wrote(void **state)
{
	unsigned char nonce[CRYPTO_NONCE_LEN] = {0}, ct[32] = {0};
	const char *uuid = "00000000-0000-4000-8000-000000000001";

	(void)state;
	assert_null(deposit_new("short", OWNER, "n", NULL, nonce,
	    sizeof(nonce), ct, sizeof(ct), "t"));
	assert_null(deposit_new(uuid, "AB", "n", NULL, nonce, sizeof(nonce),
	    ct, sizeof(ct), "t"));
	assert_null(deposit_new(uuid, OWNER, "n", NULL, nonce, 11, ct,
	    sizeof(ct), "t"));
	/* Shorter than the GCM tag: not a sealed deposit. */
	assert_null(deposit_new(uuid, OWNER, "n", NULL, nonce, sizeof(nonce),
	    ct, CRYPTO_TAG_LEN - 1, "t"));
}

static void
test_deposit_answer_is_the_apis_json(void **state)
{
	unsigned char nonce[CRYPTO_NONCE_LEN] = {0}, ct[32] = {0};
	struct deposit *d;
	char *text;
	size_t len;

	(void)state;
	d = deposit_new("00000000-0000-4000-8000-000000000001", OWNER,
	    "a \"name\"", "line\nbreak", nonce, sizeof(nonce), ct, sizeof(ct),
	    "2026-12-07T01:02:03Z");
	assert_non_null(d);
	text = deposit_answer(d, (const unsigned char *)"hi!", 3, &len);
	assert_string_equal(text,
	    "{\"uuid\":\"00000000-0000-4000-8000-000000000001\","
	    "\"name\":\"a \\\"name\\\"\",\"description\":\"line\\nbreak\","
	    "\"content\":\"aGkh\",\"created\":\"2026-12-07T01:02:03Z\"}");
	assert_int_equal(len, strlen(text));
	free(text);
	deposit_unref(d);
}

static void
test_get_put_drop_while_live(void **state)
{
	struct depcache *dc = depcache_start(&conf, 1 << 20);
	struct deposit *d = dep(1, 64), *got;
	size_t n, bytes, limit;
	int live, filling;

	(void)state;
	assert_non_null(dc);
	/* Not live: nothing is kept. */
	depcache_put(dc, d, depcache_gen(dc));
	assert_null(depcache_get(dc, d->uuid));
	depcache_set_live(dc, 1);
	depcache_put(dc, d, depcache_gen(dc));
	got = depcache_get(dc, d->uuid);
	assert_ptr_equal(got, d);
	deposit_unref(got);
	depcache_stats(dc, &n, &bytes, &limit, &live, &filling);
	assert_int_equal(n, 1);
	assert_int_equal(bytes, d->size);
	assert_int_equal(limit, 1 << 20);
	assert_int_equal(live, 1);
	/* The API's DELETE, then a read of the row from before it. */
	depcache_drop(dc, d->uuid);
	assert_null(depcache_get(dc, d->uuid));
	depcache_put(dc, d, depcache_gen(dc) - 1);
	assert_null(depcache_get(dc, d->uuid));
	deposit_unref(d);
	depcache_stop(dc);
}

static void
test_flush_and_channel(void **state)
{
	struct depcache *dc = depcache_start(&conf, 1 << 20);
	struct deposit *d[3], *got;
	struct store_channel ch;
	size_t n, bytes, limit;
	int live, filling, i;

	(void)state;
	depcache_channel(dc, &ch);
	assert_string_equal(ch.name, "kt_deposits");
	ch.live(ch.arg, 1);
	for (i = 0; i < 3; i++) {
		d[i] = dep(i, 64);
		depcache_put(dc, d[i], depcache_gen(dc));
	}
	/* A deleted row's uuid, as migration 6's trigger sends it. */
	ch.fn(ch.arg, d[0]->uuid);
	assert_null(depcache_get(dc, d[0]->uuid));
	/* Any other payload drops nothing (nor reads past a short one). */
	ch.fn(ch.arg, "x");
	got = depcache_get(dc, d[1]->uuid);
	assert_ptr_equal(got, d[1]);
	deposit_unref(got);
	/* DDL or TRUNCATE: everything goes at once. */
	ch.fn(ch.arg, "*");
	for (i = 0; i < 3; i++)
		assert_null(depcache_get(dc, d[i]->uuid));
	depcache_stats(dc, &n, &bytes, &limit, &live, &filling);
	assert_int_equal(n, 0);
	assert_int_equal(bytes, 0);
	ch.live(ch.arg, 0);
	depcache_stats(dc, &n, &bytes, &limit, &live, &filling);
	assert_int_equal(live, 0);
	for (i = 0; i < 3; i++)
		deposit_unref(d[i]);
	depcache_stop(dc);
}

static void
test_bounded_by_its_limit(void **state)
{
	struct depcache *dc;
	struct deposit *d;
	size_t n, bytes, limit, one;
	int live, filling, i;

	(void)state;
	d = dep(0, 4000);
	one = d->size;
	deposit_unref(d);
	dc = depcache_start(&conf, 10 * one);
	depcache_set_live(dc, 1);
	for (i = 0; i < 1000; i++) {
		d = dep(i, 4000);
		depcache_put(dc, d, depcache_gen(dc));
		deposit_unref(d);
		depcache_stats(dc, &n, &bytes, &limit, &live, &filling);
		assert_true(bytes <= limit);
	}
	assert_true(n >= 1 && n <= 10);
	depcache_stop(dc);

	/* --deposit-cache-mb 0: no cache at all. */
	dc = depcache_start(&conf, 0);
	depcache_set_live(dc, 1);
	d = dep(1, 64);
	depcache_put(dc, d, depcache_gen(dc));
	assert_null(depcache_get(dc, d->uuid));
	deposit_unref(d);
	depcache_stop(dc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_deposit_new_refuses_what_the_api_never_wrote),
	    cmocka_unit_test(test_deposit_answer_is_the_apis_json),
	    cmocka_unit_test(test_get_put_drop_while_live),
	    cmocka_unit_test(test_flush_and_channel),
	    cmocka_unit_test(test_bounded_by_its_limit),
	};

	conf.confdir = (char *)"/nonexistent";
	return cmocka_run_group_tests(tests, NULL, NULL);
}
