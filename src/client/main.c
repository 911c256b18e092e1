/* main.c - keytrustee-client: register with a Key Trustee Server, deposit. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "log.h"

const char *client_progname = CLIENT_PROGNAME;

const char *client_confdir;

static const struct cmdtab_cmd cmds[] = {
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

static const struct cmdtab tab = {
	.progname = CLIENT_PROGNAME,
	.manpage = "keytrustee-client(1)",
	.synopsis = "[--confdir DIR] COMMAND [options]",
	.global = "[--confdir DIR]",
	.description = "  --confdir DIR  the client's config dir and GnuPG "
	    "home (default $HOME/.keytrustee)\n\n",
	.list = CMDTAB_LIST_SUMMARY,
	.words = CMDTAB_WORDS_CLI,
	.cmds = cmds,
	.ncmds = sizeof(cmds) / sizeof(cmds[0]),
};

const struct cmdtab_cmd *
client_cmd_find(const char *name)
{
	return cmdtab_find(&tab, name);
}

void
client_cmd_help(const struct cmdtab_cmd *cmd, FILE *fp)
{
	cmdtab_help(&tab, cmd, fp);
}

int
client_usage_error(const struct cmdtab_cmd *cmd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cli_error("%s", msg);
	cli_hint("usage: %s %s %s", tab.progname, tab.global, cmd->usage);
	return 2;
}

int
main(int argc, char **argv)
{
	int i = 1;

	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			cmdtab_usage(&tab, stdout);
			return 0;
		} else if (strcmp(argv[i], "--confdir") == 0) {
			if (i + 1 >= argc) {
				cli_error("--confdir needs a directory");
				return 2;
			}
			client_confdir = argv[i + 1];
			i += 2;
		} else if (strncmp(argv[i], "--confdir=", 10) == 0) {
			client_confdir = argv[i] + 10;
			i++;
		} else {
			cli_error("unknown option \"%s\"", argv[i]);
			cli_hint("run '%s --help' for usage", client_progname);
			return 2;
		}
	}
	return cmdtab_dispatch(&tab, argc - i, argv + i);
}
