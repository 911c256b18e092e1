/* test_util.c - unit tests for src/common/util.{h,c}. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "util.h"

struct tmpdir {
	char path[128];
};

static void
write_file(const char *path, const char *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd != -1);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static mode_t
file_mode(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static int
setup_dir(void **state)
{
	struct tmpdir *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	snprintf(t->path, sizeof(t->path), "/tmp/kt-test-util.XXXXXX");
	if (mkdtemp(t->path) == NULL) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int
teardown_dir(void **state)
{
	struct tmpdir *t = *state;
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->path);
	if (system(cmd) != 0)
		return -1;
	free(t);
	return 0;
}

static void
test_file_write_atomic_mode_and_content(void **state)
{
	struct tmpdir *t = *state;
	char path[PATH_MAX], *buf = NULL;
	size_t len = 0;

	assert_int_equal(path_join(path, sizeof(path), t->path, "f"), 0);
	assert_int_equal(file_write_atomic(path, "hello\n", 6, 0600), 0);
	assert_int_equal(file_mode(path), 0600);
	assert_int_equal(file_read(path, 100, &buf, &len), 0);
	assert_int_equal(len, 6);
	assert_string_equal(buf, "hello\n");
	free(buf);

	/* Replacing keeps the new mode and content, never the old ones. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(file_write_atomic(path, "x", 1, 0640), 0);
	assert_int_equal(file_mode(path), 0640);
	assert_int_equal(file_read(path, 100, &buf, &len), 0);
	assert_int_equal(len, 1);
	assert_string_equal(buf, "x");
	free(buf);

	/* No temporary file is left behind. */
	snprintf(path, sizeof(path), "%s/f.tmp.%ld", t->path, (long)getpid());
	assert_false(file_exists(path));
}

static void
test_file_write_atomic_umask_ignored(void **state)
{
	struct tmpdir *t = *state;
	char path[PATH_MAX];
	mode_t old = umask(0777);

	assert_int_equal(path_join(path, sizeof(path), t->path, "u"), 0);
	assert_int_equal(file_write_atomic(path, "", 0, 0600), 0);
	umask(old);
	assert_int_equal(file_mode(path), 0600);
}

static void
test_file_write_atomic_missing_dir(void **state)
{
	struct tmpdir *t = *state;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/nodir/f", t->path);
	errno = 0;
	assert_int_equal(file_write_atomic(path, "a", 1, 0600), -1);
	assert_int_equal(errno, ENOENT);
}

static void
test_file_read_limits(void **state)
{
	struct tmpdir *t = *state;
	char path[PATH_MAX], *buf = NULL, *big;
	size_t len = 12345;

	assert_int_equal(path_join(path, sizeof(path), t->path, "r"), 0);

	/* Empty file: a NUL-terminated empty buffer. */
	write_file(path, "", 0, 0600);
	assert_int_equal(file_read(path, 10, &buf, &len), 0);
	assert_non_null(buf);
	assert_int_equal(len, 0);
	assert_string_equal(buf, "");
	free(buf);

	/* Exactly maxlen is fine; one more is EFBIG. */
	write_file(path, "0123456789", 10, 0600);
	assert_int_equal(file_read(path, 10, &buf, &len), 0);
	assert_int_equal(len, 10);
	assert_string_equal(buf, "0123456789");
	free(buf);
	buf = (char *)1;
	errno = 0;
	assert_int_equal(file_read(path, 9, &buf, &len), -1);
	assert_int_equal(errno, EFBIG);
	assert_null(buf);

	/* A file larger than the internal chunks is read whole. */
	big = malloc(100000);
	assert_non_null(big);
	memset(big, 'a', 100000);
	big[99999] = 'z';
	write_file(path, big, 100000, 0600);
	assert_int_equal(file_read(path, 100000, &buf, &len), 0);
	assert_int_equal(len, 100000);
	assert_memory_equal(buf, big, 100000);
	assert_int_equal(buf[100000], '\0');
	free(buf);
	errno = 0;
	assert_int_equal(file_read(path, 99999, &buf, &len), -1);
	assert_int_equal(errno, EFBIG);
	free(big);

	/* outlen may be NULL. */
	assert_int_equal(file_read(path, 100000, &buf, NULL), 0);
	free(buf);

	/* Missing file. */
	assert_int_equal(path_join(path, sizeof(path), t->path, "missing"), 0);
	errno = 0;
	assert_int_equal(file_read(path, 10, &buf, &len), -1);
	assert_int_equal(errno, ENOENT);
}

static void
test_key_file_perm_ok(void **state)
{
	struct tmpdir *t = *state;
	char path[PATH_MAX], err[PATH_MAX + 256];

	assert_int_equal(path_join(path, sizeof(path), t->path, "key.pem"), 0);
	write_file(path, "k", 1, 0600);
	err[0] = '\0';
	assert_int_equal(key_file_perm_ok(path, err, sizeof(err)), 0);
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(key_file_perm_ok(path, err, sizeof(err)), 0);

	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(key_file_perm_ok(path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "0640"));
	assert_non_null(strstr(err, "0600"));

	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(key_file_perm_ok(path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "0644"));

	assert_int_equal(chmod(path, 0601), 0);
	assert_int_equal(key_file_perm_ok(path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "0601"));

	/* Missing file: the path and the system's reason. */
	assert_int_equal(path_join(path, sizeof(path), t->path, "nokey"), 0);
	assert_int_equal(key_file_perm_ok(path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, strerror(ENOENT)));

	/* A directory is not a key file. */
	assert_int_equal(key_file_perm_ok(t->path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
}

static void
test_dir_ensure(void **state)
{
	struct tmpdir *t = *state;
	char path[PATH_MAX];
	struct stat st;
	mode_t old;

	assert_int_equal(path_join(path, sizeof(path), t->path, "d"), 0);
	old = umask(022);
	assert_int_equal(dir_ensure(path, 0700), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	/* The mode asked for, whatever the umask. */
	assert_int_equal(path_join(path, sizeof(path), t->path, "d2"), 0);
	umask(077);
	assert_int_equal(dir_ensure(path, 0755), 0);
	umask(old);
	assert_int_equal(file_mode(path), 0755);

	/* Exists already: fine, mode untouched. */
	assert_int_equal(dir_ensure(path, 0700), 0);
	assert_int_equal(file_mode(path), 0755);

	/* A file in the way. */
	assert_int_equal(path_join(path, sizeof(path), t->path, "file"), 0);
	write_file(path, "x", 1, 0600);
	errno = 0;
	assert_int_equal(dir_ensure(path, 0700), -1);
	assert_int_equal(errno, ENOTDIR);

	/* Missing parent. */
	snprintf(path, sizeof(path), "%s/no/such", t->path);
	errno = 0;
	assert_int_equal(dir_ensure(path, 0700), -1);
	assert_int_equal(errno, ENOENT);
}

/* mkdir -p of the parents only: each made one gets the mode asked for. */
static void
test_dir_ensure_parents(void **state)
{
	struct tmpdir *t = *state;
	char path[PATH_MAX], p[PATH_MAX];
	mode_t old;

	snprintf(path, sizeof(path), "%s/a/b/c", t->path);
	old = umask(077);
	assert_int_equal(
	    dir_ensure_parents(path, 0750, (uid_t)-1, (gid_t)-1), 0);
	umask(old);
	snprintf(p, sizeof(p), "%s/a", t->path);
	assert_int_equal(file_mode(p), 0750);
	snprintf(p, sizeof(p), "%s/a/b", t->path);
	assert_int_equal(file_mode(p), 0750);
	/* Not the path itself. */
	errno = 0;
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(errno, ENOENT);
	/* Parents that exist keep their mode; a trailing slash is fine. */
	assert_int_equal(chmod(p, 0700), 0);
	snprintf(path, sizeof(path), "%s/a/b/c/", t->path);
	assert_int_equal(
	    dir_ensure_parents(path, 0755, (uid_t)-1, (gid_t)-1), 0);
	assert_int_equal(file_mode(p), 0700);
	snprintf(p, sizeof(p), "%s/a/b/c", t->path);
	assert_int_equal(file_mode(p), 0755);
	/* No slash: nothing to make. */
	assert_int_equal(
	    dir_ensure_parents("x", 0700, (uid_t)-1, (gid_t)-1), 0);
	/* A file in the way. */
	snprintf(p, sizeof(p), "%s/file", t->path);
	write_file(p, "x", 1, 0600);
	snprintf(path, sizeof(path), "%s/file/d/e", t->path);
	errno = 0;
	assert_int_equal(
	    dir_ensure_parents(path, 0700, (uid_t)-1, (gid_t)-1), -1);
	assert_int_equal(errno, ENOTDIR);
}

static void
test_file_exists(void **state)
{
	struct tmpdir *t = *state;
	char path[PATH_MAX];

	assert_true(file_exists(t->path));
	assert_int_equal(path_join(path, sizeof(path), t->path, "nope"), 0);
	assert_false(file_exists(path));
}

static void
test_hex_encode(void **state)
{
	const unsigned char in[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
	char out[2 * sizeof(in) + 2];

	(void)state;
	memset(out, 'X', sizeof(out));
	hex_encode(in, sizeof(in), out, 0);
	assert_string_equal(out, "00017f80abff");
	assert_int_equal(out[sizeof(out) - 1], 'X');
	hex_encode(in, sizeof(in), out, 1);
	assert_string_equal(out, "00017F80ABFF");
	hex_encode(in, 0, out, 0);
	assert_string_equal(out, "");
}

static void
test_path_join(void **state)
{
	char buf[8];

	(void)state;
	assert_int_equal(path_join(buf, sizeof(buf), "ab", "cd"), 0);
	assert_string_equal(buf, "ab/cd");
	/* "abc/def" is 7 characters + NUL: exactly fits. */
	assert_int_equal(path_join(buf, sizeof(buf), "abc", "def"), 0);
	assert_string_equal(buf, "abc/def");
	/* One more does not, and says why. */
	errno = 0;
	assert_int_equal(path_join(buf, sizeof(buf), "abc", "defg"), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	errno = 0;
	assert_int_equal(path_join(buf, sizeof(buf), "abcdefghijk", "x"), -1);
	assert_int_equal(errno, ENAMETOOLONG);
}

static void
test_freezero_null(void **state)
{
	char *p = malloc(16);

	(void)state;
	assert_non_null(p);
	freezero(NULL, 10);
	freezero(p, 16);
}

static void
test_mono_ms(void **state)
{
	struct timespec pause = { 0, 50 * 1000000L };
	long long a, b;

	(void)state;
	a = mono_ms();
	assert_true(a >= 0);
	assert_int_equal(nanosleep(&pause, NULL), 0);
	b = mono_ms();
	/* Milliseconds: 50 ms later reads at least 50 more, and not seconds. */
	assert_true(b - a >= 50);
	assert_true(b - a < 5000);
}

static void
test_account_lookup(void **state)
{
	uid_t uid = 42;
	gid_t gid = 42;

	(void)state;
	assert_int_equal(account_lookup("root", &uid, &gid), 0);
	assert_int_equal(uid, 0);
	assert_int_equal(gid, 0);
	assert_int_equal(account_lookup("no-such-account-kt", &uid, &gid),
	    -1);
}

static void
test_parse_int(void **state)
{
	int v = -7;

	(void)state;
	assert_int_equal(parse_int("11371", 1, 65535, &v), 0);
	assert_int_equal(v, 11371);
	assert_int_equal(parse_int("65535", 1, 65535, &v), 0);
	assert_int_equal(parse_int("1", 1, 65535, &v), 0);
	v = -7;
	assert_int_equal(parse_int("0", 1, 65535, &v), -1);
	assert_int_equal(parse_int("65536", 1, 65535, &v), -1);
	assert_int_equal(parse_int("", 1, 65535, &v), -1);
	assert_int_equal(parse_int("12x", 1, 65535, &v), -1);
	assert_int_equal(parse_int("99999999999999999999", 1, 65535, &v), -1);
	assert_int_equal(v, -7); /* untouched on failure */
}

static void
test_rm_tree(void **state)
{
	char dir[] = "/tmp/test_util_rm.XXXXXX", path[PATH_MAX];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/a/f", dir);
	write_file(path, "x", 1, 0600);
	snprintf(path, sizeof(path), "%s/link", dir);
	assert_int_equal(symlink("/etc", path), 0); /* removed, not followed */
	assert_int_equal(rm_tree(dir), 0);
	assert_int_equal(access(dir, F_OK), -1);
	assert_int_equal(access("/etc/passwd", F_OK), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_file_write_atomic_mode_and_content, setup_dir,
		    teardown_dir),
		cmocka_unit_test_setup_teardown(
		    test_file_write_atomic_umask_ignored, setup_dir,
		    teardown_dir),
		cmocka_unit_test_setup_teardown(
		    test_file_write_atomic_missing_dir, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_file_read_limits,
		    setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_key_file_perm_ok,
		    setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_dir_ensure, setup_dir,
		    teardown_dir),
		cmocka_unit_test_setup_teardown(test_dir_ensure_parents,
		    setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_file_exists, setup_dir,
		    teardown_dir),
		cmocka_unit_test(test_hex_encode),
		cmocka_unit_test(test_path_join),
		cmocka_unit_test(test_freezero_null),
		cmocka_unit_test(test_mono_ms),
		cmocka_unit_test(test_account_lookup),
		cmocka_unit_test(test_parse_int),
		cmocka_unit_test(test_rm_tree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
