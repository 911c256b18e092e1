/* main.c - keytrustee-client: register with a Key Trustee Server, deposit. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "log.h"

const char *client_progname = "keytrustee-client";

static const struct client_cmd cmds[] = {
	{ "register", "register --server URL [--passive-server URL] --org ORG "
	    "[--auth SECRET] [--skip-ssl-check | --cacert FILE] "
	    "[--hostname NAME]",
	    "make this client's OpenPGP key (if missing) and register it",
	    cmd_register },
	{ "put", "put --name NAME [--file FILE] [--description TEXT]",
	    "encrypt FILE (or stdin) to this client's key and deposit it",
	    cmd_put },
	{ "get", "get (UUID | --name NAME) [--no-cache] [--output FILE]",
	    "fetch and decrypt a deposit (stdout unless --output)", cmd_get },
	{ "list", "list", "list this client's deposits: uuid, name, created",
	    cmd_list },
	{ "delete", "delete UUID", "delete a deposit and its cached copy",
	    cmd_delete },
	{ "backup", "backup --output FILE (--gpg-recipient R | --cleartext)",
	    "tar this client's config dir (conf, key, cache), GPG-encrypted",
	    cmd_backup },
	{ "restore", "restore --input FILE [--force]",
	    "restore a backup into the config dir (--force replaces one)",
	    cmd_restore },
};

static void
usage(FILE *fp)
{
	size_t i;

	fprintf(fp, "usage: %s [--confdir DIR] COMMAND [options]\n\n"
	    "  --confdir DIR  the client's config dir and GnuPG home "
	    "(default $HOME/.keytrustee)\n\ncommands:\n", client_progname);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(fp, "  %-8s %s\n           %s\n", cmds[i].name,
		    cmds[i].summary, cmds[i].usage);
	fprintf(fp, "\nRun '%s COMMAND --help' for a command's options.\n",
	    client_progname);
}

const struct client_cmd *
client_cmd_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(name, cmds[i].name) == 0)
			return &cmds[i];
	return NULL;
}

void
client_cmd_help(const struct client_cmd *cmd, FILE *fp)
{
	fprintf(fp, "usage: %s [--confdir DIR] %s\n\n%s\n", client_progname,
	    cmd->usage, cmd->summary);
}

int
client_usage_error(const struct client_cmd *cmd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cli_error("%s", msg);
	cli_hint("usage: %s [--confdir DIR] %s", client_progname, cmd->usage);
	return 2;
}

int
main(int argc, char **argv)
{
	const struct client_cmd *cmd;
	const char *confdir = NULL;
	int i = 1;

	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--confdir") == 0) {
			if (i + 1 >= argc) {
				cli_error("--confdir needs a directory");
				return 2;
			}
			confdir = argv[i + 1];
			i += 2;
		} else if (strncmp(argv[i], "--confdir=", 10) == 0) {
			confdir = argv[i] + 10;
			i++;
		} else {
			cli_error("unknown option \"%s\"", argv[i]);
			cli_hint("run '%s --help' for usage", client_progname);
			return 2;
		}
	}
	if (i >= argc) {
		cli_error("no command given");
		usage(stderr);
		return 2;
	}
	if ((cmd = client_cmd_find(argv[i])) == NULL) {
		cli_error("unknown command \"%s\"", argv[i]);
		cli_hint("run '%s --help' for the list of commands",
		    client_progname);
		return 2;
	}
	return cmd->run(confdir, argc - i, argv + i);
}
