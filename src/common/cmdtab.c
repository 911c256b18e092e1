/*
 * cmdtab.c - a tool's table of commands (tmux's cmd.c shape): one table
 * with name, usage, summary and handler, and the one place that lists it,
 * finds a command in it and reports a missing or unknown one.
 */
#include <stdio.h>
#include <string.h>

#include "cmdtab.h"
#include "log.h"

const struct cmdtab_cmd *
cmdtab_find(const struct cmdtab *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->ncmds; i++)
		if (strcmp(name, t->cmds[i].name) == 0)
			return &t->cmds[i];
	return NULL;
}

/* The widest command name: the summaries line up after it. */
static int
cmdtab_name_width(const struct cmdtab *t)
{
	size_t i, w = 0;

	for (i = 0; i < t->ncmds; i++)
		if (strlen(t->cmds[i].name) > w)
			w = strlen(t->cmds[i].name);
	return (int)w;
}

void
cmdtab_usage(const struct cmdtab *t, FILE *fp)
{
	int w = cmdtab_name_width(t);
	size_t i;

	fprintf(fp, "usage: %s %s\n\n%scommands:\n", t->progname, t->synopsis,
	    t->description != NULL ? t->description : "");
	for (i = 0; i < t->ncmds; i++) {
		const struct cmdtab_cmd *c = &t->cmds[i];

		if (t->list == CMDTAB_LIST_SUMMARY)
			fprintf(fp, "  %-*s %s\n  %*s %s\n", w, c->name,
			    c->summary, w, "", c->usage);
		else
			fprintf(fp, "  %s %s\n", t->progname, c->usage);
	}
	fprintf(fp,
	    "%s\nRun '%s COMMAND --help' for a command's options.\n"
	    "See %s.\n",
	    t->epilog != NULL ? t->epilog : "", t->progname, t->manpage);
}

void
cmdtab_help(const struct cmdtab *t, const struct cmdtab_cmd *cmd, FILE *fp)
{
	fprintf(fp, "usage: %s%s%s %s\n\n%s\n", t->progname,
	    t->global != NULL ? " " : "", t->global != NULL ? t->global : "",
	    cmd->usage, cmd->summary);
}

int
cmdtab_dispatch(const struct cmdtab *t, int argc, char **argv)
{
	const struct cmdtab_cmd *cmd;
	int script = t->words == CMDTAB_WORDS_SCRIPT;
	char q[256];

	if (argc < 1) {
		cli_error("%s",
		    script ? "a command is required" : "no command given");
	} else if ((cmd = cmdtab_find(t, argv[0])) == NULL) {
		cli_quote(argv[0], q, sizeof(q));
		if (script)
			cli_error("unknown command '%s'", q);
		else
			cli_error("unknown command \"%s\"", q);
	} else
		return cmd->run(argc, argv);
	cli_hint("run '%s --help' for the list of commands", t->progname);
	return 2;
}
