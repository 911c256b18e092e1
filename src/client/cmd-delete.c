/* cmd-delete.c - keytrustee-client delete. */
#include <getopt.h>
#include <stdio.h>

#include "client.h"
#include "log.h"

int
cmd_delete(int argc, char **argv)
{
	const char *confdir = client_confdir; /* --confdir before the verb */
	static const struct option opts[] = {
		{ "confdir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct cmdtab_cmd *cmd = client_cmd_find("delete");
	struct kt_client *c;
	int ch, rc = 1, ret;

	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': confdir = optarg; break;
		case 'h':
			client_cmd_help(cmd, stdout);
			return 0;
		default:
			return cli_opt_error(client_progname, cmd->name, ch, argv);
		}
	}
	if (optind >= argc)
		return client_usage_error(cmd, "a deposit UUID is required");
	if (optind + 1 < argc)
		return client_usage_error(cmd, "unexpected argument \"%s\"",
		    argv[optind + 1]);
	if ((c = client_open(confdir, &rc)) == NULL)
		return rc;
	if ((ret = kt_delete(c, argv[optind])) != KT_OK) {
		rc = client_fail(c, ret);
		goto out;
	}
	printf("Deleted %s\n", argv[optind]);
	rc = 0;
out:
	kt_client_free(c);
	return rc;
}
