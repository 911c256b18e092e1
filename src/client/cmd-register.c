/* cmd-register.c - keytrustee-client register. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "log.h"

int
cmd_register(int argc, char **argv)
{
	const char *confdir = client_confdir; /* --confdir before the verb */
	static const struct option opts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "passive-server", required_argument, NULL, 'p' },
		{ "org", required_argument, NULL, 'o' },
		{ "auth", required_argument, NULL, 'a' },
		{ "skip-ssl-check", no_argument, NULL, 'k' },
		{ "cacert", required_argument, NULL, 'C' },
		{ "hostname", required_argument, NULL, 'H' },
		{ "confdir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct cmdtab_cmd *cmd = client_cmd_find("register");
	struct kt_register_opts o = { 0 };
	struct kt_client *c;
	char *cacert = NULL;
	int ch, rc = 1, ret;

	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 's': o.server = optarg; break;
		case 'p': o.passive_server = optarg; break;
		case 'o': o.org = optarg; break;
		case 'a': o.auth = optarg; break;
		case 'k': o.ssl_insecure = 1; break;
		case 'C': o.cacert = optarg; break;
		case 'H': o.hostname = optarg; break;
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
	if (o.server == NULL)
		return client_usage_error(cmd, "--server URL is required");
	if (o.org == NULL)
		return client_usage_error(cmd, "--org ORG is required");
	if (o.ssl_insecure && o.cacert != NULL)
		return client_usage_error(cmd, "--skip-ssl-check and --cacert "
		    "exclude each other");
	if (o.cacert != NULL && (access(o.cacert, R_OK) != 0 ||
	    (cacert = realpath(o.cacert, NULL)) == NULL))
		return client_usage_error(cmd, "--cacert %s: cannot read it",
		    o.cacert);
	/* keytrustee.conf keeps the absolute path. */
	if (cacert != NULL)
		o.cacert = cacert;
	/* A conf open to group/others is refused here too. */
	if ((c = client_open(confdir, &rc)) == NULL) {
		free(cacert);
		return rc;
	}
	if ((ret = kt_register(c, &o)) != KT_OK) {
		rc = client_fail(c, ret);
		goto out;
	}
	printf("Registered %s with %s: state %s\n", kt_client_fingerprint(c),
	    kt_client_server(c), kt_client_state(c));
	if (strcmp(kt_client_state(c), "active") != 0) {
		const char *fpr = kt_client_fingerprint(c);

		fprintf(stderr, "%s: this client waits for an org "
		    "administrator to run 'keytrustee-orgtool enable-client "
		    "--fingerprint %s'\n", client_progname,
		    strchr(fpr, '/') ? strchr(fpr, '/') + 1 : fpr);
	}
	rc = 0;
out:
	free(cacert);
	kt_client_free(c);
	return rc;
}
