/* test_log.c - unit tests for src/common/log.{h,c}: repeated warnings. */
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
#include <pthread.h>

#include "log.h"

#define THREADS 4
#define EACH 500

static FILE *captured;
static int saved_stderr = -1;
static long done; /* what read_log has read of it */

/* stderr into a temporary file, read back by read_log. */
static int
setup(void **state)
{
	(void)state;
	fflush(stderr);
	if ((captured = tmpfile()) == NULL ||
	    (saved_stderr = dup(STDERR_FILENO)) == -1 ||
	    dup2(fileno(captured), STDERR_FILENO) == -1)
		return -1;
	log_init("test_log", 0);
	return 0;
}

/* stderr back; what was not read (cmocka's failure messages) shown. */
static int
teardown(void **state)
{
	char buf[4096];
	ssize_t n;

	(void)state;
	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	while ((n = pread(fileno(captured), buf, sizeof(buf), done)) > 0) {
		fwrite(buf, 1, (size_t)n, stderr);
		done += n;
	}
	fclose(captured);
	return 0;
}

/* What was logged since the last call, NUL-terminated (to free). */
static char *
read_log(void)
{
	long end;
	char *buf;

	fflush(stderr);
	end = lseek(STDERR_FILENO, 0, SEEK_END);
	assert_true(end >= done);
	buf = calloc(1, (size_t)(end - done) + 1);
	assert_non_null(buf);
	assert_int_equal(
	    pread(STDERR_FILENO, buf, (size_t)(end - done), done), end - done);
	done = end;
	return buf;
}

static int
count(const char *text, const char *what)
{
	int n = 0;

	for (; (text = strstr(text, what)) != NULL; text += strlen(what))
		n++;
	return n;
}

static void *
warn_often(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < EACH; i++)
		log_warnx("store: database: %s", "connection lost");
	return NULL;
}

static void
test_repeats_from_threads_are_counted(void **state)
{
	pthread_t t[THREADS];
	char *out, want[64];
	int i;

	(void)state;
	for (i = 0; i < THREADS; i++)
		assert_int_equal(
		    pthread_create(&t[i], NULL, warn_often, NULL), 0);
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	out = read_log();
	/* Written once; the others within the period are only counted. */
	assert_int_equal(count(out, "\n"), 1);
	assert_int_equal(count(out,
			     "[WARNING]: store: database: connection "
			     "lost\n"),
	    1);
	free(out);

	/* Other warnings: each its own line, once. */
	log_warnx("another warning");
	log_warnx("another warning");
	errno = ENOENT;
	log_warn("a file");
	errno = EACCES;
	log_warn("a file"); /* not the same line: another errno */
	out = read_log();
	assert_int_equal(count(out, "[WARNING]: another warning\n"), 1);
	assert_int_equal(count(out, "a file: "), 2);
	assert_int_equal(count(out, "\n"), 3);
	free(out);

	/* Other levels are not limited. */
	for (i = 0; i < 3; i++)
		log_info("listening");
	out = read_log();
	assert_int_equal(count(out, "[INFO]: listening\n"), 3);
	free(out);

	/*
	 * Enough new warnings to forget the first one: what it left out is
	 * written then, not lost.
	 */
	for (i = 0; i < 40; i++)
		log_warnx("distinct warning %d", i);
	out = read_log();
	assert_int_equal(count(out, "distinct warning"), 40);
	snprintf(want, sizeof(want), "connection lost (%d more since ",
	    THREADS * EACH - 1);
	assert_int_equal(count(out, want), 1);
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_repeats_from_threads_are_counted),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
