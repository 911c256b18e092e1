/*
 * test_dbrole.c - unit tests for src/common/dbrole.{h,c}: the conninfos of
 * the two roles (no database needed) and the admin file's checks.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "dbrole.h"
#include "util.h"

static void
test_merge_overrides_and_orders(void **state)
{
	char err[256], *ci;

	(void)state;
	ci = dbrole_conninfo_merge(
	    "dbname=keytrustee user=keytrustee password=aa port=5 "
	    "host=127.0.0.1 sslmode=disable",
	    "user=keytrustee_server password=bb", err, sizeof(err));
	assert_non_null(ci);
	assert_string_equal(ci,
	    "host=127.0.0.1 port=5 dbname=keytrustee user=keytrustee_server "
	    "password=bb sslmode=disable");
	free(ci);
}

static void
test_merge_quotes_what_must_be(void **state)
{
	char err[256], *ci;

	(void)state;
	ci = dbrole_conninfo_merge("host=/tmp/a\\ dir port=1",
	    "password='it''s' user='x\\\\y'", err, sizeof(err));
	/* conninfo quoting: '' is not an escape, \' is */
	assert_null(ci);
	ci = dbrole_conninfo_merge("host='/tmp/a dir' port=1",
	    "password='it\\'s' user='x\\\\y'", err, sizeof(err));
	assert_non_null(ci);
	assert_string_equal(
	    ci, "host='/tmp/a dir' port=1 user='x\\\\y' password='it\\'s'");
	free(ci);
}

static void
test_merge_refuses_bad_conninfo(void **state)
{
	char err[256], *ci;

	(void)state;
	ci = dbrole_conninfo_merge("nosuchkey=1", "", err, sizeof(err));
	assert_null(ci);
	assert_non_null(strstr(err, "DB_CONNECT cannot be parsed"));
}

struct dir {
	char path[64];
	struct kt_conf c;
	char file[128];
};

static void
dir_make(struct dir *d, const char *text, mode_t mode)
{
	int fd;

	memset(d, 0, sizeof(*d));
	snprintf(d->path, sizeof(d->path), "/tmp/test_dbrole.XXXXXX");
	assert_non_null(mkdtemp(d->path));
	d->c.confdir = d->path;
	d->c.path = "keytrustee.conf";
	d->c.db_connect = "host=127.0.0.1 port=7 dbname=keytrustee "
			  "user=keytrustee_server password=s";
	snprintf(d->file, sizeof(d->file), "%s/%s", d->path, DBROLE_ADMIN_FILE);
	if (text == NULL)
		return;
	fd = open(d->file, O_WRONLY | O_CREAT | O_EXCL, mode);
	assert_true(fd != -1);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void
dir_free(struct dir *d)
{
	unlink(d->file);
	rmdir(d->path);
}

static void
test_admin_conninfo_from_file(void **state)
{
	struct dir d;
	char err[256], *ci;

	(void)state;
	dir_make(&d, "user=keytrustee password=a\n", 0600);
	ci = dbrole_admin_conninfo(&d.c, err, sizeof(err));
	assert_non_null(ci);
	assert_string_equal(ci,
	    "host=127.0.0.1 port=7 dbname=keytrustee user=keytrustee "
	    "password=a");
	free(ci);
	dir_free(&d);
}

static void
test_admin_conninfo_without_file_is_db_connect(void **state)
{
	struct dir d;
	char err[256], *ci;

	(void)state;
	dir_make(&d, NULL, 0);
	ci = dbrole_admin_conninfo(&d.c, err, sizeof(err));
	assert_non_null(ci);
	assert_string_equal(ci, d.c.db_connect);
	free(ci);
	dir_free(&d);
}

static void
test_admin_file_refused_when_readable_by_others(void **state)
{
	struct dir d;
	char err[256];

	(void)state;
	dir_make(&d, "user=keytrustee password=a\n", 0644);
	assert_null(dbrole_admin_conninfo(&d.c, err, sizeof(err)));
	assert_non_null(strstr(err, DBROLE_ADMIN_FILE));
	assert_non_null(strstr(err, "0644"));
	dir_free(&d);
}

static void
test_admin_file_not_a_conninfo(void **state)
{
	struct dir d;
	char err[256];

	(void)state;
	dir_make(&d, "hunter2\n", 0600);
	assert_null(dbrole_admin_conninfo(&d.c, err, sizeof(err)));
	assert_non_null(strstr(err, DBROLE_ADMIN_FILE));
	assert_non_null(strstr(err, "cannot be parsed"));
	assert_null(strstr(err, "hunter2"));
	dir_free(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_merge_overrides_and_orders),
	    cmocka_unit_test(test_merge_quotes_what_must_be),
	    cmocka_unit_test(test_merge_refuses_bad_conninfo),
	    cmocka_unit_test(test_admin_conninfo_from_file),
	    cmocka_unit_test(test_admin_conninfo_without_file_is_db_connect),
	    cmocka_unit_test(test_admin_file_refused_when_readable_by_others),
	    cmocka_unit_test(test_admin_file_not_a_conninfo),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
