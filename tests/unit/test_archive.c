/* test_archive.c - unit tests for src/common/archive.{h,c}. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "archive.h"

#define BLOCK 512

static void
path_rules(void **state)
{
	char top[16] = "";

	(void)state;
	assert_true(archive_path_ok("var/lib/x", top, sizeof(top)));
	assert_string_equal(top, "var");
	assert_true(archive_path_ok("var/other/", top, sizeof(top)));
	assert_false(archive_path_ok("etc/x", top, sizeof(top)));
	top[0] = '\0';
	assert_false(archive_path_ok("/etc/passwd", top, sizeof(top)));
	assert_false(archive_path_ok("a/../../b", top, sizeof(top)));
	assert_false(archive_path_ok("..", top, sizeof(top)));
	assert_false(archive_path_ok("./a", top, sizeof(top)));
	assert_false(archive_path_ok("", top, sizeof(top)));
	assert_false(
	    archive_path_ok("a-name-longer-than-top/x", top, sizeof(top)));
	assert_true(archive_path_ok("a/..b/c..", top, sizeof(top)));
}

static void
symlink_rules(void **state)
{
	(void)state;
	assert_true(archive_symlink_ok("sub/file"));
	assert_true(archive_symlink_ok("..hidden"));
	assert_false(archive_symlink_ok("../x"));
	assert_false(archive_symlink_ok("a/../../x"));
	assert_false(archive_symlink_ok("/etc"));
	assert_false(archive_symlink_ok(""));
}

/* A ustar header for name, of type, with size (checksum is not checked). */
static void
header(char *h, const char *name, char type, size_t size, const char *link)
{
	memset(h, 0, BLOCK);
	snprintf(h, 100, "%s", name);
	snprintf(h + 100, 8, "%07o", 0600);
	snprintf(h + 124, 12, "%011o", (unsigned)size);
	h[156] = type;
	if (link != NULL)
		snprintf(h + 157, 100, "%s", link);
	memcpy(h + 257, "ustar", 5);
}

struct seen {
	int n;
	char names[4][64];
	char types[4];
	unsigned long long sizes[4];
	unsigned int modes[4];
	char links[4][64];
};

static int
collect(const struct archive_member *m, void *arg)
{
	struct seen *s = arg;

	if (s->n == 4)
		return -1;
	snprintf(s->names[s->n], 64, "%s", m->name);
	snprintf(s->links[s->n], 64, "%s", m->link);
	s->types[s->n] = m->type;
	s->sizes[s->n] = m->size;
	s->modes[s->n] = m->mode;
	s->n++;
	return 0;
}

static char tmpl[] = "/tmp/test_archive.XXXXXX";

static const char *
write_tmp(const char *data, size_t len)
{
	int fd;

	snprintf(tmpl, sizeof(tmpl), "/tmp/test_archive.XXXXXX");
	fd = mkstemp(tmpl);
	assert_true(fd != -1);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return tmpl;
}

static void
scan_members(void **state)
{
	static char buf[BLOCK * 10];
	char *p = buf;
	struct seen s;
	const char *path;
	char longname[300];

	(void)state;
	memset(buf, 0, sizeof(buf));
	header(p, "conf/", '5', 0, NULL);
	p += BLOCK;
	header(p, "conf/keytrustee.conf", '0', 3, NULL);
	memcpy(p + BLOCK, "{}\n", 3);
	p += 2 * BLOCK;
	header(p, "conf/link", '2', 0, "keytrustee.conf");
	p += BLOCK;
	/* a GNU long name for the next member */
	memset(longname, 'n', sizeof(longname));
	memcpy(longname, "conf/", 5);
	longname[sizeof(longname) - 1] = '\0';
	header(p, "././@LongLink", 'L', strlen(longname) + 1, NULL);
	memcpy(p + BLOCK, longname, strlen(longname) + 1);
	p += 2 * BLOCK;
	header(p, "truncated-in-header", '0', 0, NULL);
	p += BLOCK;
	p += 2 * BLOCK; /* end of archive */

	memset(&s, 0, sizeof(s));
	path = write_tmp(buf, (size_t)(p - buf));
	assert_int_equal(archive_scan(path, collect, &s), 4);
	assert_string_equal(s.names[0], "conf/");
	assert_int_equal(s.types[0], '5');
	assert_string_equal(s.names[1], "conf/keytrustee.conf");
	assert_int_equal(s.sizes[1], 3);
	assert_int_equal(s.modes[1], 0600);
	assert_string_equal(s.links[1], "");
	assert_int_equal(s.types[2], '2');
	assert_string_equal(s.links[2], "keytrustee.conf");
	assert_int_equal(strncmp(s.names[3], "conf/nnnn", 9), 0);
	unlink(path);

	/* the callback stops the walk */
	memset(&s, 0, sizeof(s));
	s.n = 4;
	path = write_tmp(buf, (size_t)(p - buf));
	assert_int_equal(archive_scan(path, collect, &s), -1);
	unlink(path);
}

static void
scan_refuses_bad_files(void **state)
{
	static char buf[BLOCK * 3];
	struct seen s;
	const char *path;

	(void)state;
	memset(&s, 0, sizeof(s));
	/* data shorter than its size field */
	memset(buf, 0, sizeof(buf));
	header(buf, "big", '0', 100000, NULL);
	path = write_tmp(buf, sizeof(buf));
	assert_int_equal(archive_scan(path, collect, &s), -1);
	unlink(path);
	/* not a tar header */
	memset(buf, 'x', sizeof(buf));
	path = write_tmp(buf, sizeof(buf));
	assert_int_equal(archive_scan(path, collect, &s), -1);
	assert_int_equal(archive_kind(path), 0);
	unlink(path);
	/* a header cut short */
	header(buf, "a", '0', 0, NULL);
	path = write_tmp(buf, 100);
	assert_int_equal(archive_scan(path, collect, &s), -1);
	unlink(path);
	/* empty */
	path = write_tmp(buf, 0);
	assert_int_equal(archive_scan(path, collect, &s), -1);
	unlink(path);
	assert_int_equal(archive_scan("/nonexistent/x.tar", collect, &s), -1);
	assert_int_equal(archive_kind("/nonexistent/x.tar"), -1);
}

static void
kinds(void **state)
{
	static char buf[BLOCK];
	const char *path;

	(void)state;
	header(buf, "a", '0', 0, NULL);
	path = write_tmp(buf, sizeof(buf));
	assert_int_equal(archive_kind(path), 1);
	unlink(path);
	path = write_tmp("-----BEGIN PGP MESSAGE-----\n", 28);
	assert_int_equal(archive_kind(path), 2);
	unlink(path);
	path = write_tmp("\x85\x02\x0c", 3); /* an OpenPGP packet tag */
	assert_int_equal(archive_kind(path), 2);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(path_rules),
	    cmocka_unit_test(symlink_rules),
	    cmocka_unit_test(scan_members),
	    cmocka_unit_test(scan_refuses_bad_files),
	    cmocka_unit_test(kinds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
