/* main.c - ktadmin: set up and run a Key Trustee Server's files and database. */
#include <stdio.h>
#include <string.h>

#include "cmdtab.h"
#include "ktadmin.h"
#include "log.h"

static const struct cmdtab_cmd cmds[] = {
	{ "init", "init [--confdir DIR] [--hostname NAME] [--tls-key ecdsa|rsa]",
	    "create the config dir, OpenPGP key and TLS certificate", cmd_init },
	{ "db", "db (--bootstrap|--start|--stop|--status|"
	    "--enable-synchronous-replication|--disable-synchronous-replication) "
	    "--pg-rootdir DIR "
	    "[--confdir DIR] [--port N] [--background] [--passive "
	    "--master-host H [--master-port N]]",
	    "bootstrap, start, stop or check the private PostgreSQL; HA "
	    "replication", cmd_db },
	{ "promote", "promote --pg-rootdir DIR [--confdir DIR]",
	    "make this passive server the active one", cmd_promote },
	{ "restore", "restore BACKUP [--confdir DIR] [--pg-rootdir DIR] "
	    "[--port N] [--force]",
	    "restore a ktbackup.sh backup: config dir and database", cmd_restore },
	{ "mail", "mail (--status|--retry) [--confdir DIR]",
	    "show or push the admin mail outbox", cmd_mail },
	{ "audit", "audit [--confdir DIR] [--since T] [--until T] "
	    "[--client FP] [--org ORG] [--action A] [--object UUID] "
	    "[--result R] [--json] [--limit N] [--before-id ID|--after-id ID] "
	    "[--explain] | audit (--verify [--file FILE]|--export --before DATE "
	    "--output FILE|--prune-before DATE) [--confdir DIR]",
	    "ask the audit log who did what, when, from where; verify, export "
	    "and prune its hash chain", cmd_audit },
};

static const struct cmdtab tab = {
	.progname = "ktadmin",
	.manpage = "ktadmin(8)",
	.synopsis = "COMMAND [options]",
	.list = CMDTAB_LIST_SUMMARY,
	.words = CMDTAB_WORDS_CLI,
	.cmds = cmds,
	.ncmds = sizeof(cmds) / sizeof(cmds[0]),
};

int
ktadmin_bad_usage(const char *cmd)
{
	cli_hint("run '%s %s --help' for usage", tab.progname, cmd);
	return 2;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 &&
	    (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		cmdtab_usage(&tab, stdout);
		return 0;
	}
	return cmdtab_dispatch(&tab, argc - 1, argv + 1);
}
