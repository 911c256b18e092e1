/* test_spawn.c - unit tests for src/common/spawn.{h,c}. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "spawn.h"

static void
test_echo_captured(void **state)
{
	char *argv[] = { "/bin/echo", "hello", "world", NULL };
	struct spawn_opts o = { .capture = 1 };
	struct spawn_result r;

	(void)state;
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 0);
	assert_non_null(r.out);
	assert_int_equal(r.outlen, 12);
	assert_string_equal(r.out, "hello world\n");
	assert_true(r.err == NULL || r.errlen == 0);
	spawn_result_free(&r);
	assert_null(r.out);
	assert_null(r.err);
	assert_int_equal(r.outlen, 0);
	spawn_result_free(&r);  /* twice is harmless */
	spawn_result_free(NULL);
}

static void
test_path_lookup(void **state)
{
	/* No slash: found through PATH of the (default) environment. */
	char *argv[] = { "echo", "-n", "x", NULL };
	struct spawn_opts o = { .capture = 1 };
	struct spawn_result r;

	(void)state;
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "x");
	spawn_result_free(&r);
}

static void
test_exit_status(void **state)
{
	char *argv[] = { "/bin/sh", "-c", "exit 42", NULL };
	char *argv_false[] = { "/bin/false", NULL };
	struct spawn_opts o = { .capture = 1 };
	struct spawn_result r;

	(void)state;
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 42);
	spawn_result_free(&r);
	assert_int_equal(spawn_run(argv_false, &o, &r), 0);
	assert_int_equal(r.status, 1);
	spawn_result_free(&r);
	/* Without capture, the status is still reported. */
	o.capture = 0;
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 42);
	assert_null(r.out);
	assert_null(r.err);
	spawn_result_free(&r);
	/* NULL opts: defaults. */
	assert_int_equal(spawn_run(argv, NULL, &r), 0);
	assert_int_equal(r.status, 42);
	spawn_result_free(&r);
}

static void
test_killed_by_signal(void **state)
{
	char *argv[] = { "/bin/sh", "-c", "kill -9 $$", NULL };
	struct spawn_opts o = { .capture = 1 };
	struct spawn_result r;

	(void)state;
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 128 + SIGKILL);
	spawn_result_free(&r);
}

static void
test_signals_reset_in_child(void **state)
{
	/*
	 * An ignored or blocked signal in the parent must not be ignored or
	 * blocked in the child: SIGTERM kills it (143), not "exit 0".
	 */
	char *argv[] = { "/bin/sh", "-c", "kill -TERM $$; exit 0", NULL };
	struct spawn_opts o = { .capture = 1 };
	struct spawn_result r;
	struct sigaction ign, old;
	sigset_t set, oldset;

	(void)state;
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	assert_int_equal(sigaction(SIGTERM, &ign, &old), 0);
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 128 + SIGTERM);
	spawn_result_free(&r);
	assert_int_equal(sigaction(SIGTERM, &old, NULL), 0);

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	assert_int_equal(sigprocmask(SIG_BLOCK, &set, &oldset), 0);
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 128 + SIGTERM);
	spawn_result_free(&r);
	/* And the parent's mask is as it was. */
	assert_int_equal(sigprocmask(SIG_SETMASK, &oldset, &set), 0);
	assert_true(sigismember(&set, SIGTERM));
}

static void
test_stderr_captured(void **state)
{
	char *argv[] = { "/bin/sh", "-c",
		"echo out; echo err1 >&2; echo err2 >&2; exit 3", NULL };
	struct spawn_opts o = { .capture = 1 };
	struct spawn_result r;

	(void)state;
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 3);
	assert_string_equal(r.out, "out\n");
	assert_int_equal(r.outlen, 4);
	assert_non_null(r.err);
	assert_string_equal(r.err, "err1\nerr2\n");
	assert_int_equal(r.errlen, 10);
	spawn_result_free(&r);
}

static void
test_large_output(void **state)
{
	/* Far more than one pipe buffer on both streams at once. */
	char *argv[] = { "/bin/sh", "-c",
		"head -c 300000 /dev/zero; head -c 200000 /dev/zero >&2",
		NULL };
	struct spawn_opts o = { .capture = 1 };
	struct spawn_result r;
	size_t i;

	(void)state;
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.outlen, 300000);
	assert_int_equal(r.errlen, 200000);
	for (i = 0; i < r.outlen; i++)
		if (r.out[i] != '\0')
			break;
	assert_int_equal(i, r.outlen);
	spawn_result_free(&r);
}

static void
test_missing_program(void **state)
{
	char *argv[] = { "/nonexistent/kt-no-such-program", NULL };
	char *argv2[] = { "kt-no-such-program-in-path", NULL };
	struct spawn_opts o = { .capture = 1 };
	struct spawn_result r;

	(void)state;
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 127);
	assert_non_null(r.err);
	assert_non_null(strstr(r.err, "/nonexistent/kt-no-such-program"));
	assert_non_null(strstr(r.err, strerror(ENOENT)));
	spawn_result_free(&r);

	assert_int_equal(spawn_run(argv2, &o, &r), 0);
	assert_int_equal(r.status, 127);
	assert_non_null(strstr(r.err, "kt-no-such-program-in-path"));
	spawn_result_free(&r);
}

static void
test_explicit_env(void **state)
{
	char *argv[] = { "/usr/bin/env", NULL };
	char *env[] = { "FOO=bar", "KT_TEST=1 2", NULL };
	struct spawn_opts o = { .capture = 1, .envp = env };
	struct spawn_result r;

	(void)state;
	assert_int_equal(setenv("KT_PARENT_ONLY", "leak", 1), 0);
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 0);
	/* Exactly what we passed, nothing of the parent's environment. */
	assert_string_equal(r.out, "FOO=bar\nKT_TEST=1 2\n");
	spawn_result_free(&r);

	/* NULL envp: the minimal default, still not the parent's. */
	o.envp = NULL;
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 0);
	assert_null(strstr(r.out, "KT_PARENT_ONLY"));
	assert_non_null(strstr(r.out, "PATH="));
	assert_non_null(strstr(r.out, "LC_ALL=C"));
	spawn_result_free(&r);
	unsetenv("KT_PARENT_ONLY");
}

static void
test_env_path_used_for_lookup(void **state)
{
	/* PATH of the child's environment, not the parent's. */
	char *argv[] = { "echo", "hi", NULL };
	char *env[] = { "PATH=/nonexistent", NULL };
	struct spawn_opts o = { .capture = 1, .envp = env };
	struct spawn_result r;

	(void)state;
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 127);
	spawn_result_free(&r);
}

static void
test_cwd_and_fds(void **state)
{
	char *argv[] = { "/bin/sh", "-c", "pwd; ls /proc/self/fd", NULL };
	struct spawn_opts o = { .capture = 1, .cwd = "/tmp" };
	struct spawn_result r;
	int fd, hi;

	(void)state;
	/* A descriptor without O_CLOEXEC must still not reach the child. */
	fd = open("/dev/null", O_RDONLY);
	assert_true(fd != -1);
	hi = dup2(fd, 57);
	assert_int_equal(hi, 57);
	close(fd);
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 0);
	assert_true(strncmp(r.out, "/tmp\n", 5) == 0);
	assert_null(strstr(r.out, "\n57\n"));
	spawn_result_free(&r);
	close(hi);

	o.cwd = "/nonexistent-kt-dir";
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 127);
	assert_non_null(strstr(r.err, "/nonexistent-kt-dir"));
	spawn_result_free(&r);
}

static void
test_stdin_is_devnull(void **state)
{
	char *argv[] = { "/bin/cat", NULL };
	struct spawn_opts o = { .capture = 1 };
	struct spawn_result r;

	(void)state;
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 0);
	assert_true(r.outlen == 0);
	spawn_result_free(&r);
}

static void
test_runas(void **state)
{
	char *argv[] = { "/usr/bin/id", "-u", NULL };
	struct spawn_opts o = { .capture = 1, .runas = "nobody" };
	struct spawn_result r;

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "65534\n");
	spawn_result_free(&r);

	o.runas = "kt-no-such-account";
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 127);
	assert_non_null(strstr(r.err, "kt-no-such-account"));
	spawn_result_free(&r);
}

static void
assert_split(const char *cmd, const char *const *want)
{
	char **argv = NULL;
	size_t i;

	assert_int_equal(argv_split(cmd, &argv), 0);
	assert_non_null(argv);
	for (i = 0; want[i] != NULL; i++) {
		assert_non_null(argv[i]);
		assert_string_equal(argv[i], want[i]);
	}
	assert_null(argv[i]);
	argv_free(argv);
}

static void
assert_split_fails(const char *cmd)
{
	char **argv = (char **)1;

	errno = 0;
	assert_int_equal(argv_split(cmd, &argv), -1);
	assert_int_equal(errno, EINVAL);
	assert_null(argv);
}

static void
test_argv_split(void **state)
{
	(void)state;
	/* The guide's SSL_PRIVATE_KEY_PASSWORD_SCRIPT example. */
	assert_split("/bin/echo -n password",
	    (const char *[]){ "/bin/echo", "-n", "password", NULL });
	assert_split("prog", (const char *[]){ "prog", NULL });
	assert_split("  a \t b\n c  ", (const char *[]){ "a", "b", "c", NULL });
	assert_split("cmd 'quoted arg' \"double q\"",
	    (const char *[]){ "cmd", "quoted arg", "double q", NULL });
	assert_split("a\\ b c", (const char *[]){ "a b", "c", NULL });
	assert_split("x 'it\"s' \"it's\"",
	    (const char *[]){ "x", "it\"s", "it's", NULL });
	/* Backslash is literal inside single quotes, escapes in double. */
	assert_split("x '\\n' \"a\\\"b\"",
	    (const char *[]){ "x", "\\n", "a\"b", NULL });
	/* Adjacent quoted parts make one word; '' is an empty argument. */
	assert_split("a'b c'd e", (const char *[]){ "ab cd", "e", NULL });
	assert_split("a '' b", (const char *[]){ "a", "", "b", NULL });
	/* A trailing backslash stays. */
	assert_split("a b\\", (const char *[]){ "a", "b\\", NULL });
	/* No shell: metacharacters are plain text. */
	assert_split("echo $HOME;rm *",
	    (const char *[]){ "echo", "$HOME;rm", "*", NULL });

	assert_split_fails("");
	assert_split_fails("   \t\n");
	assert_split_fails("echo 'unterminated");
	assert_split_fails("echo \"unterminated");
	assert_split_fails("'");
}

static void
test_split_then_run(void **state)
{
	char **argv = NULL;
	struct spawn_opts o = { .capture = 1 };
	struct spawn_result r;

	(void)state;
	assert_int_equal(argv_split("/bin/echo -n password", &argv), 0);
	assert_int_equal(spawn_run(argv, &o, &r), 0);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.outlen, 8);
	assert_string_equal(r.out, "password");
	spawn_result_free(&r);
	argv_free(argv);
	argv_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_echo_captured),
		cmocka_unit_test(test_path_lookup),
		cmocka_unit_test(test_exit_status),
		cmocka_unit_test(test_killed_by_signal),
		cmocka_unit_test(test_signals_reset_in_child),
		cmocka_unit_test(test_stderr_captured),
		cmocka_unit_test(test_large_output),
		cmocka_unit_test(test_missing_program),
		cmocka_unit_test(test_explicit_env),
		cmocka_unit_test(test_env_path_used_for_lookup),
		cmocka_unit_test(test_cwd_and_fds),
		cmocka_unit_test(test_stdin_is_devnull),
		cmocka_unit_test(test_runas),
		cmocka_unit_test(test_argv_split),
		cmocka_unit_test(test_split_then_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
