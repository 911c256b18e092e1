/*
 * cmd-exec.c - kt-agent exec COMMAND [--role ROLE]: run one entry of the
 * Actions menu (a service command: Start, Stop, Restart or one dispatching
 * a role command), or with --role one of that role's own commands.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "log.h"

static int
exec_service_command(struct deploy *dp, yaml_node_t *c, int timeout)
{
	const struct desc *d = &dp->desc;
	const char *b = desc_str(d, c, "builtin");
	const char *label = desc_str(d, c, "label");
	yaml_node_t *role, *rc, *sel[1];

	if (b != NULL) {
		if (strcmp(b, "stop") == 0)
			return lc_change(dp, NULL, "stopped", timeout);
		if (strcmp(b, "restart") == 0 &&
		    lc_change(dp, NULL, "stopped", timeout) != 0)
			return 1;
		return lc_change(dp, NULL, "running", timeout);
	}
	if (lc_select(dp, desc_str(d, c, "roleName"), sel, 1) == 0)
		return 1;
	role = sel[0];
	rc = desc_find(
	    d, desc_get(d, role, "commands"), desc_str(d, c, "roleCommand"));
	return lc_role_command(dp, role, rc, label);
}

int
cmd_exec(int argc, char **argv)
{
	static const char options[] =
	    "  --role ROLE           run ROLE's own command COMMAND\n"
	    "COMMAND is a name from 'kt-agent actions' (Start, Stop, Restart,\n"
	    "SetupKeyTrusteeServerDatabase, BackupAndSetupCronJob-Active, "
	    "...)\n";
	const char *role = NULL;
	struct deploy dp;
	yaml_node_t *c, *sel[1];
	int ch, ret = 1;

	if ((ch = agent_getopt(argc, argv, "exec", options, &role)) != -1)
		return ch;
	if (argc - optind != 1) {
		cli_error(optind == argc ? "a command name is required"
					 : "only one command, please");
		cli_hint("'kt-agent actions' lists them");
		return 2;
	}
	if (deploy_load(&dp) == -1)
		return 1;
	if (role != NULL) {
		if (lc_select(&dp, role, sel, 1) == 0)
			goto out;
		c = desc_find(&dp.desc, desc_get(&dp.desc, sel[0], "commands"),
		    argv[optind]);
		if (c == NULL) {
			cli_error(
			    "role %s has no command '%s'", role, argv[optind]);
			cli_hint(
			    "'kt-agent actions --role %s' lists them", role);
			goto out;
		}
		ret = lc_role_command(
		    &dp, sel[0], c, desc_str(&dp.desc, c, "label"));
		goto out;
	}
	if ((c = desc_service_command(&dp.desc, argv[optind])) == NULL) {
		cli_error("no command '%s' in the Actions menu", argv[optind]);
		cli_hint("'kt-agent actions' lists them");
		goto out;
	}
	ret = exec_service_command(&dp, c, 120);
out:
	deploy_free(&dp);
	return ret;
}
