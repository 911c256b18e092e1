/* test_throttle.c - unit tests for src/server/throttle.c and its verdict. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "throttle.h"

static void
test_blocks_after_five_failures_in_a_window(void **state)
{
	struct throttle *t = throttle_new(5, 60, "too many");
	struct verdict v;
	int i, retry = -1;

	(void)state;
	assert_non_null(t);
	for (i = 0; i < 5; i++) {
		assert_int_equal(throttle_check(t, "192.0.2.1", &v), 0);
		assert_int_equal(throttle_blocked(t, "192.0.2.1", &retry), 0);
		throttle_fail(t, "192.0.2.1");
	}
	assert_int_equal(throttle_blocked(t, "192.0.2.1", &retry), 1);
	assert_in_range(retry, 1, 60);
	assert_int_equal(throttle_check(t, "192.0.2.1", &v), -1);
	assert_int_equal(v.status, 429);
	assert_string_equal(v.code, "throttled");
	assert_string_equal(v.msg, "too many");
	assert_in_range(v.retry_after, 1, 60);
	assert_null(v.allow);
	/* Another address is not held for it. */
	assert_int_equal(throttle_check(t, "192.0.2.2", &v), 0);
	assert_int_equal(throttle_check(t, "2001:db8::1", &v), 0);
	throttle_free(t);
}

/* A block ends with its window, on the lock-free path too. */
static void
test_a_block_ends_with_its_window(void **state)
{
	struct throttle *t = throttle_new(2, 1, "wait");
	struct timespec pause = {1, 200 * 1000 * 1000};
	int retry = -1;

	(void)state;
	assert_non_null(t);
	throttle_fail(t, "192.0.2.7");
	assert_int_equal(throttle_blocked(t, "192.0.2.7", &retry), 0);
	throttle_fail(t, "192.0.2.7");
	assert_int_equal(throttle_blocked(t, "192.0.2.7", &retry), 1);
	assert_int_equal(throttle_blocked(t, "192.0.2.8", &retry), 0);
	nanosleep(&pause, NULL);
	assert_int_equal(throttle_blocked(t, "192.0.2.7", &retry), 0);
	/* And it can block again. */
	throttle_fail(t, "192.0.2.7");
	throttle_fail(t, "192.0.2.7");
	assert_int_equal(throttle_blocked(t, "192.0.2.7", &retry), 1);
	throttle_free(t);
}

static void
test_a_full_table_drops_the_oldest(void **state)
{
	struct throttle *t = throttle_new(5, 60, "too many");
	struct verdict v;
	char addr[64];
	int i, k;

	(void)state;
	for (k = 0; k < 5; k++)
		throttle_fail(t, "198.51.100.7");
	assert_int_equal(throttle_check(t, "198.51.100.7", &v), -1);
	/* Far more addresses than slots: none blocked that did not fail 5x. */
	for (i = 0; i < 20000; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16,
		    (i >> 8) & 255, i & 255);
		throttle_fail(t, addr);
		assert_int_equal(throttle_check(t, addr, &v), 0);
	}
	throttle_free(t);
	throttle_free(NULL);
}

static void
test_take_counts_every_attempt(void **state)
{
	struct throttle *t = throttle_new(3, 60, "slow down");
	struct verdict v;
	int i;

	(void)state;
	for (i = 0; i < 3; i++)
		assert_int_equal(throttle_take(t, "192.0.2.9", &v), 0);
	assert_int_equal(throttle_take(t, "192.0.2.9", &v), -1);
	assert_int_equal(v.status, 429);
	assert_string_equal(v.msg, "slow down");
	/* A refused attempt is not counted again; others go on. */
	assert_int_equal(throttle_take(t, "192.0.2.10", &v), 0);
	throttle_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_blocks_after_five_failures_in_a_window),
	    cmocka_unit_test(test_a_block_ends_with_its_window),
	    cmocka_unit_test(test_a_full_table_drops_the_oldest),
	    cmocka_unit_test(test_take_counts_every_attempt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
