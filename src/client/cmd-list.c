/* cmd-list.c - keytrustee-client list. */
#include <getopt.h>
#include <stdio.h>

#include "client.h"
#include "log.h"

int
cmd_list(int argc, char **argv)
{
	const char *confdir = client_confdir; /* --confdir before the verb */
	static const struct option opts[] = {
		{ "confdir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct cmdtab_cmd *cmd = client_cmd_find("list");
	struct kt_deposit_info *v = NULL;
	struct kt_client *c;
	size_t n = 0, i;
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
	if (optind < argc)
		return client_usage_error(cmd, "unexpected argument \"%s\"",
		    argv[optind]);
	if ((c = client_open(confdir, &rc)) == NULL)
		return rc;
	if ((ret = kt_list(c, NULL, &v, &n)) != KT_OK) {
		rc = client_fail(c, ret);
		goto out;
	}
	for (i = 0; i < n; i++)
		printf("%s\t%s\t%s\n", v[i].uuid, v[i].name, v[i].created);
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	kt_deposit_info_free(v, n);
	kt_client_free(c);
	return rc;
}
