/* test_cmdtab.c - unit tests for src/common/cmdtab.{h,c}. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmdtab.h"

/* What the last handler was called with. */
static int ncalls;
static int last_argc;
static char **last_argv;

static int
called(int argc, char **argv, int rc)
{
	ncalls++;
	last_argc = argc;
	last_argv = argv;
	return rc;
}

static int
run_add(int argc, char **argv)
{
	return called(argc, argv, 0);
}

static int
run_remove(int argc, char **argv)
{
	return called(argc, argv, 7);
}

static const struct cmdtab_cmd cmds[] = {
    {"add", "add -n NAME", "add one", run_add},
    {"remove", "remove NAME [--force]", "remove one", run_remove},
};

static const struct cmdtab summary_tab = {
    .progname = "tool",
    .manpage = "tool(8)",
    .synopsis = "COMMAND [options]",
    .list = CMDTAB_LIST_SUMMARY,
    .words = CMDTAB_WORDS_CLI,
    .cmds = cmds,
    .ncmds = 2,
};

static const struct cmdtab usage_tab = {
    .progname = "tool",
    .manpage = "tool(1)",
    .synopsis = "[--dir DIR] COMMAND ...",
    .global = "[--dir DIR]",
    .description = "Does things.\n\n",
    .epilog = "\noptions:\n  --dir DIR  where\n",
    .list = CMDTAB_LIST_USAGE,
    .words = CMDTAB_WORDS_SCRIPT,
    .cmds = cmds,
    .ncmds = 2,
};

/* stderr into a memory stream while a test looks at what was reported. */
static FILE *saved_stderr;
static char *errbuf;
static size_t errlen;

static void
capture_stderr(void)
{
	free(errbuf);
	errbuf = NULL;
	saved_stderr = stderr;
	stderr = open_memstream(&errbuf, &errlen);
	assert_non_null(stderr);
}

static const char *
captured_stderr(void)
{
	fclose(stderr);
	stderr = saved_stderr;
	return errbuf;
}

/* What fn printed to a FILE, as a string (free it). */
static char *
printed(void (*fn)(const struct cmdtab *, FILE *), const struct cmdtab *t)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(fp);
	fn(t, fp);
	fclose(fp);
	return buf;
}

static int
reset(void **state)
{
	(void)state;
	ncalls = 0;
	last_argc = -1;
	last_argv = NULL;
	return 0;
}

static int
free_captured(void **state)
{
	(void)state;
	free(errbuf);
	errbuf = NULL;
	return 0;
}

static void
test_find(void **state)
{
	(void)state;
	assert_ptr_equal(cmdtab_find(&summary_tab, "add"), &cmds[0]);
	assert_ptr_equal(cmdtab_find(&summary_tab, "remove"), &cmds[1]);
	/* Whole names only: no prefixes, no case folding. */
	assert_null(cmdtab_find(&summary_tab, "ad"));
	assert_null(cmdtab_find(&summary_tab, "adds"));
	assert_null(cmdtab_find(&summary_tab, "ADD"));
	assert_null(cmdtab_find(&summary_tab, ""));
}

static void
test_usage_summary_list(void **state)
{
	char *out = printed(cmdtab_usage, &summary_tab);

	(void)state;
	/* Summaries line up after the widest name, usages below them. */
	assert_string_equal(out,
	    "usage: tool COMMAND [options]\n"
	    "\n"
	    "commands:\n"
	    "  add    add one\n"
	    "         add -n NAME\n"
	    "  remove remove one\n"
	    "         remove NAME [--force]\n"
	    "\n"
	    "Run 'tool COMMAND --help' for a command's options.\n"
	    "See tool(8).\n");
	free(out);
}

static void
test_usage_usage_list(void **state)
{
	char *out = printed(cmdtab_usage, &usage_tab);

	(void)state;
	assert_string_equal(out,
	    "usage: tool [--dir DIR] COMMAND ...\n"
	    "\n"
	    "Does things.\n"
	    "\n"
	    "commands:\n"
	    "  tool add -n NAME\n"
	    "  tool remove NAME [--force]\n"
	    "\n"
	    "options:\n"
	    "  --dir DIR  where\n"
	    "\n"
	    "Run 'tool COMMAND --help' for a command's options.\n"
	    "See tool(1).\n");
	free(out);
}

static void
test_help(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp;

	(void)state;
	fp = open_memstream(&buf, &len);
	assert_non_null(fp);
	cmdtab_help(&usage_tab, &cmds[1], fp);
	cmdtab_help(&summary_tab, &cmds[0], fp);
	fclose(fp);
	assert_string_equal(buf,
	    "usage: tool [--dir DIR] remove NAME [--force]\n\nremove one\n"
	    "usage: tool add -n NAME\n\nadd one\n");
	free(buf);
}

static void
test_dispatch_runs_the_command(void **state)
{
	char *argv[] = {"remove", "x", "--force", NULL};
	char *argv2[] = {"add", NULL};

	(void)state;
	/* The handler's exit code, argv[0] its name. */
	assert_int_equal(cmdtab_dispatch(&summary_tab, 3, argv), 7);
	assert_int_equal(ncalls, 1);
	assert_int_equal(last_argc, 3);
	assert_ptr_equal(last_argv, argv);
	assert_int_equal(cmdtab_dispatch(&usage_tab, 1, argv2), 0);
	assert_int_equal(ncalls, 2);
	assert_int_equal(last_argc, 1);
	assert_ptr_equal(last_argv, argv2);
}

static void
test_dispatch_no_command(void **state)
{
	char *argv[] = {NULL};

	(void)state;
	capture_stderr();
	assert_int_equal(cmdtab_dispatch(&summary_tab, 0, argv), 2);
	assert_string_equal(captured_stderr(),
	    "error: no command given\n"
	    "hint: run 'tool --help' for the list of commands\n");
	capture_stderr();
	assert_int_equal(cmdtab_dispatch(&usage_tab, 0, argv), 2);
	assert_string_equal(captured_stderr(),
	    "error: a command is required\n"
	    "hint: run 'tool --help' for the list of commands\n");
	assert_int_equal(ncalls, 0);
}

static void
test_dispatch_unknown_command(void **state)
{
	char *argv[] = {"frobnicate", "add", NULL};
	char *evil[] = {"a\"b\tc\n", NULL};

	(void)state;
	capture_stderr();
	assert_int_equal(cmdtab_dispatch(&summary_tab, 2, argv), 2);
	assert_string_equal(captured_stderr(),
	    "error: unknown command \"frobnicate\"\n"
	    "hint: run 'tool --help' for the list of commands\n");
	capture_stderr();
	assert_int_equal(cmdtab_dispatch(&usage_tab, 2, argv), 2);
	assert_string_equal(captured_stderr(),
	    "error: unknown command 'frobnicate'\n"
	    "hint: run 'tool --help' for the list of commands\n");
	/* A name is escaped, never echoed raw onto the terminal. */
	capture_stderr();
	assert_int_equal(cmdtab_dispatch(&summary_tab, 1, evil), 2);
	assert_string_equal(captured_stderr(),
	    "error: unknown command \"a\\\"b\\x09c\\x0a\"\n"
	    "hint: run 'tool --help' for the list of commands\n");
	assert_int_equal(ncalls, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_find),
	    cmocka_unit_test(test_usage_summary_list),
	    cmocka_unit_test(test_usage_usage_list),
	    cmocka_unit_test(test_help),
	    cmocka_unit_test_setup(test_dispatch_runs_the_command, reset),
	    cmocka_unit_test_setup_teardown(
		test_dispatch_no_command, reset, free_captured),
	    cmocka_unit_test_setup_teardown(
		test_dispatch_unknown_command, reset, free_captured),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
