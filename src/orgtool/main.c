/*
 * main.c - keytrustee-orgtool: manage a Key Trustee Server's organizations
 * (tenants), their contacts, authorization codes and clients.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmdtab.h"
#include "log.h"
#include "orgtool.h"

const char *orgtool_confdir;

/*
 * The guide's Table 4, in its order, then the vendor's verbs for the
 * legacy clients (docs/legacy.md).
 */
static const struct cmdtab_cmd cmds[] = {
    {"add", "add [-h] -n NAME -c CONTACTS",
	"Adds a new organization and administrators for the organization.",
	cmd_add},
    {"list", "list [-h]",
	"Lists current organizations, including the authorization secret, "
	"all\nadministrators, the organization creation date, and the "
	"organization\nexpiration date.",
	cmd_list},
    {"disable-client", "disable-client [-h] --fingerprint FINGERPRINT",
	"Disables a client that has already been activated by the "
	"organization\nadministrator.",
	cmd_disable_client},
    {"enable-client", "enable-client [-h] --fingerprint FINGERPRINT",
	"Enables a client that has requested activation but has not yet "
	"been\napproved by the organization administrator.",
	cmd_enable_client},
    {"set-auth", "set-auth [-h] -n NAME -s SECRET",
	"Sets the authorization code to a new string, or to blank to allow "
	"automatic\napprovals without the code.",
	cmd_set_auth},
    {"activate-client",
	"activate-client [-h] -n NAME --fingerprint FINGERPRINT",
	"Activates a client that answered its registration challenge, or is "
	"pending,\nin the organization, without its authorization code, and "
	"mails the\norganization's contacts.",
	cmd_activate_client},
    {"reset-token", "reset-token [-h] --fingerprint FINGERPRINT",
	"Makes the server accept whatever token a client with token sync "
	"sends next\n(a client restored from a backup), and go on from "
	"there.",
	cmd_reset_token},
};

static const struct cmdtab tab = {
    .progname = ORGTOOL_PROGNAME,
    .manpage = "keytrustee-orgtool(8)",
    .synopsis = "[-h] [--confdir DIR] COMMAND ...",
    .global = "[--confdir DIR]",
    .description = "Administer Key Trustee Server organizations.  Must be "
		   "run as root.\n\n",
    .epilog = "\noptions:\n"
	      "  --confdir DIR  config dir (default "
	      "$KEYTRUSTEE_HOME/.keytrustee,\n"
	      "                 KEYTRUSTEE_HOME defaults to "
	      "/var/lib/keytrustee)\n"
	      "  -h, --help     show this help message and exit\n",
    .list = CMDTAB_LIST_USAGE,
    .words = CMDTAB_WORDS_CLI,
    .cmds = cmds,
    .ncmds = sizeof(cmds) / sizeof(cmds[0]),
};

void
orgtool_cmd_usage(FILE *fp, const char *name, const char *options)
{
	const struct cmdtab_cmd *cmd = cmdtab_find(&tab, name);

	if (cmd == NULL)
		return;
	cmdtab_help(&tab, cmd, fp);
	fprintf(fp, "\noptions:\n%s", options);
	fprintf(fp,
	    "  --confdir DIR         config dir (default "
	    "$KEYTRUSTEE_HOME/.keytrustee)\n"
	    "  -h, --help            show this help message and exit\n");
}

int
main(int argc, char **argv)
{
	char q[256];
	int i;

	/* Options before the command: only --confdir and --help. */
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			cmdtab_usage(&tab, stdout);
			return 0;
		} else if (strcmp(argv[i], "--confdir") == 0) {
			if (i + 1 >= argc) {
				cli_error("option --confdir requires an "
					  "argument");
				cli_hint("run '%s --help' for usage",
				    ORGTOOL_PROGNAME);
				return 2;
			}
			orgtool_confdir = argv[++i];
		} else if (strncmp(argv[i], "--confdir=", 10) == 0) {
			orgtool_confdir = argv[i] + 10;
		} else {
			cli_error("unknown option \"%s\"",
			    cli_quote(argv[i], q, sizeof(q)));
			cli_hint("run '%s --help' for usage", ORGTOOL_PROGNAME);
			return 2;
		}
	}
	if (orgtool_confdir != NULL && *orgtool_confdir == '\0') {
		cli_error("--confdir: empty directory name");
		return 2;
	}
	return cmdtab_dispatch(&tab, argc - i, argv + i);
}
