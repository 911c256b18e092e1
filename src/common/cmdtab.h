/*
 * cmdtab.h - a tool's table of commands: lookup by name, the top-level
 * --help listing, a command's help header, and dispatch with the same
 * errors and hints in every tool (ktadmin, keytrustee-orgtool,
 * keytrustee-client, kt-agent).
 */
#ifndef KT_CMDTAB_H
#define KT_CMDTAB_H

#include <stddef.h>
#include <stdio.h>

struct cmdtab_cmd {
	const char *name;
	const char *usage;   /* the command's synopsis, from its name on */
	const char *summary; /* one sentence (may hold newlines) */
	int (*run)(int argc, char **argv); /* argv[0] is the command name */
};

/* How --help lists the commands. */
enum cmdtab_list {
	/* "  NAME SUMMARY", then the usage below it (ktadmin, client) */
	CMDTAB_LIST_SUMMARY,
	/* "  PROG USAGE", a runnable line per command (the guide's Table 4) */
	CMDTAB_LIST_USAGE
};

/* How the dispatch errors are worded. */
enum cmdtab_words {
	/* error: no command given / error: unknown command "X" */
	CMDTAB_WORDS_CLI,
	/*
	 * error: a command is required / error: unknown command 'X', as
	 * the CSD scripts kt-agent runs say it (csd/scripts/control.sh).
	 */
	CMDTAB_WORDS_SCRIPT
};

struct cmdtab {
	const char *progname;
	const char *manpage;  /* "ktadmin(8)": --help ends "See ktadmin(8)." */
	const char *synopsis; /* --help's first line: "usage: PROG SYNOPSIS" */
	/* A command's help: "usage: PROG GLOBAL USAGE" (NULL: no GLOBAL). */
	const char *global;
	/* Between the usage line and "commands:"; ends in a blank line. */
	const char *description;
	const char *epilog; /* after the list of commands */
	enum cmdtab_list list;
	enum cmdtab_words words;
	const struct cmdtab_cmd *cmds;
	size_t ncmds;
};

/* The command called name, or NULL. */
const struct cmdtab_cmd *cmdtab_find(const struct cmdtab *t, const char *name);

/*
 * The top-level --help: usage line, description, the commands, epilog,
 * "Run 'PROG COMMAND --help' for a command's options." and the man page.
 */
void cmdtab_usage(const struct cmdtab *t, FILE *fp);

/* A command's help header: "usage: PROG [GLOBAL] USAGE\n\nSUMMARY\n". */
void cmdtab_help(
    const struct cmdtab *t, const struct cmdtab_cmd *cmd, FILE *fp);

/*
 * Run the command argv[0] (argc 0: none was given) with argc and argv,
 * and return its exit code; when there is none or no such command, an
 * error and a hint to run 'PROG --help' on stderr, and 2.
 */
int cmdtab_dispatch(const struct cmdtab *t, int argc, char **argv);

#endif
