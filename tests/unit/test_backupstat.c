/* test_backupstat.c - unit tests for src/common/backupstat.{h,c}. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backupstat.h"
#include "util.h"

static char dir[64];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_backupstat.XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	return rm_tree(dir);
}

static void
put(const char *text)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", dir, BACKUPSTAT_FILE);
	assert_int_equal(file_write_atomic(path, text, strlen(text), 0600), 0);
}

static void
test_none(void **state)
{
	json_t *h;

	(void)state;
	errno = 0;
	assert_null(backupstat_load(dir));
	assert_int_equal(errno, ENOENT);
	assert_string_equal(backupstat_state(NULL, 100), "none");
	h = backupstat_health(NULL, 100);
	assert_string_equal(
	    json_string_value(json_object_get(h, "state")), "none");
	assert_int_equal(json_object_size(h), 1);
	json_decref(h);
}

static void
test_not_a_status(void **state)
{
	static const char *bad[] = {"", "[]", "{\"result\": \"ok\"}",
	    "{\"ended\": \"x\", \"result\": \"ok\"}",
	    "{\"ended\": 5, \"result\": \"maybe\"}", "{\"ended\": 5}"};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put(bad[i]);
		errno = 0;
		assert_null(backupstat_load(dir));
		assert_int_equal(errno, EINVAL);
	}
}

static void
test_ok_then_overdue(void **state)
{
	json_t *st, *h;

	(void)state;
	put("{\"ended\": 1000, \"started\": 997, \"duration_seconds\": 3, "
	    "\"result\": \"ok\", \"exit\": 0, \"file\": \"/secret/path.tar\", "
	    "\"last_ok\": 1000}");
	assert_non_null(st = backupstat_load(dir));
	assert_int_equal(backupstat_interval(st), BACKUPSTAT_DEFAULT_INTERVAL);
	assert_string_equal(backupstat_state(st, 1000 + 7200), "ok");
	assert_string_equal(backupstat_state(st, 1000 + 7201), "overdue");
	h = backupstat_health(st, 1010);
	assert_string_equal(
	    json_string_value(json_object_get(h, "state")), "ok");
	assert_string_equal(json_string_value(json_object_get(h, "last")),
	    "1970-01-01T00:16:40Z");
	assert_int_equal(
	    json_integer_value(json_object_get(h, "age_seconds")), 10);
	assert_int_equal(
	    json_integer_value(json_object_get(h, "duration_seconds")), 3);
	assert_null(json_object_get(h, "reason"));
	assert_null(json_object_get(h, "file"));
	json_decref(h);
	json_decref(st);
}

static void
test_failed_shows_a_word_not_the_error(void **state)
{
	json_t *st, *h;
	char *s;

	(void)state;
	put("{\"ended\": 50, \"result\": \"failed\", \"exit\": 1, "
	    "\"interval_seconds\": 60, \"reason\": \"unreadable\", "
	    "\"error\": \"cannot read "
	    "/var/lib/keytrustee/.keytrustee/.ssl.bak\", "
	    "\"last_ok\": null}");
	assert_non_null(st = backupstat_load(dir));
	assert_int_equal(backupstat_interval(st), 60);
	/* failed stays failed however old */
	assert_string_equal(backupstat_state(st, 50), "failed");
	assert_string_equal(backupstat_state(st, 5000), "failed");
	h = backupstat_health(st, 60);
	assert_string_equal(
	    json_string_value(json_object_get(h, "reason")), "unreadable");
	assert_true(json_is_null(json_object_get(h, "last_ok")));
	s = json_dumps(h, 0);
	assert_non_null(s);
	assert_null(strstr(s, ".ssl"));
	assert_null(strstr(s, "/var/lib"));
	free(s);
	json_decref(h);
	json_decref(st);

	/* a reason outside the list is "other" */
	put("{\"ended\": 50, \"result\": \"failed\", \"reason\": \"/etc/x\"}");
	assert_non_null(st = backupstat_load(dir));
	h = backupstat_health(st, 60);
	assert_string_equal(
	    json_string_value(json_object_get(h, "reason")), "other");
	json_decref(h);
	json_decref(st);
}

static void
test_time(void **state)
{
	char buf[32];

	(void)state;
	backupstat_time(0, buf, sizeof(buf));
	assert_string_equal(buf, "-");
	backupstat_time(1796688000, buf, sizeof(buf));
	assert_string_equal(buf, "2026-12-08T00:00:00Z");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_none, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_a_status, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_ok_then_overdue, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_failed_shows_a_word_not_the_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_time, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
