/* main.c - ktadmin: set up and run a Key Trustee Server's files and database. */
#include <stdio.h>
#include <string.h>

#include "ktadmin.h"
#include "log.h"

const char *ktadmin_progname = "ktadmin";

static const struct ktadmin_cmd cmds[] = {
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
};

static void
usage(FILE *fp)
{
	size_t i;

	fprintf(fp, "usage: %s COMMAND [options]\n\ncommands:\n",
	    ktadmin_progname);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(fp, "  %-7s %s\n          %s\n", cmds[i].name,
		    cmds[i].summary, cmds[i].usage);
	fprintf(fp, "\nRun '%s COMMAND --help' for a command's options.\n",
	    ktadmin_progname);
}

int
main(int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		cli_error("no command given");
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].run(argc - 1, argv + 1);
	cli_error("unknown command \"%s\"", argv[1]);
	cli_hint("run '%s --help' for the list of commands", ktadmin_progname);
	return 2;
}
