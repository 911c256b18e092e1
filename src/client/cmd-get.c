/* cmd-get.c - keytrustee-client get. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "log.h"
#include "util.h"

int
cmd_get(int argc, char **argv)
{
	const char *confdir = client_confdir; /* --confdir before the verb */
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "no-cache", no_argument, NULL, 'N' },
		{ "output", required_argument, NULL, 'o' },
		{ "confdir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct cmdtab_cmd *cmd = client_cmd_find("get");
	const char *name = NULL, *output = NULL, *uuid = NULL;
	unsigned char *data = NULL;
	size_t len = 0;
	struct kt_client *c = NULL;
	enum kt_source src = KT_SRC_ACTIVE;
	int ch, rc = 1, ret, flags = 0;

	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'n': name = optarg; break;
		case 'N': flags |= KT_GET_NO_CACHE; break;
		case 'o': output = optarg; break;
		case 'd': confdir = optarg; break;
		case 'h':
			client_cmd_help(cmd, stdout);
			return 0;
		default:
			return cli_opt_error(client_progname, cmd->name, ch, argv);
		}
	}
	if (optind < argc)
		uuid = argv[optind++];
	if (optind < argc)
		return client_usage_error(cmd, "unexpected argument \"%s\"",
		    argv[optind]);
	if ((uuid == NULL) == (name == NULL))
		return client_usage_error(cmd, "give either a UUID or --name "
		    "NAME");
	if ((c = client_open(confdir, &rc)) == NULL)
		return rc;
	if (uuid != NULL)
		ret = kt_get(c, uuid, flags, &data, &len, &src);
	else
		ret = kt_get_by_name(c, name, flags, &data, &len, &src);
	if (ret != KT_OK) {
		rc = client_fail(c, ret);
		goto out;
	}
	if (src == KT_SRC_CACHE)
		cli_warning("no server could be reached; this content comes "
		    "from the local cache in %s/cache", kt_client_confdir(c));
	else if (src == KT_SRC_PASSIVE)
		cli_warning("the active server could not be reached; this "
		    "content comes from the passive server");
	if (output != NULL) {
		if (file_write_atomic(output, data, len, 0600) == -1) {
			cli_error("writing %s: %s", output, strerror(errno));
			goto out;
		}
		rc = 0;
	} else {
		rc = fwrite(data, 1, len, stdout) == len &&
		    fflush(stdout) == 0 ? 0 : 1;
		if (rc != 0)
			cli_error("writing stdout: %s", strerror(errno));
	}
out:
	if (data != NULL)
		freezero(data, len);
	kt_client_free(c);
	return rc;
}
