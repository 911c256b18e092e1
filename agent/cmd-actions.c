/*
 * cmd-actions.c - kt-agent actions [--role ROLE]: the Actions menu, each
 * command with whether it can run now on this host and, if not, why.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "log.h"

/* 1 when cmd (a role command of role) can run now; else why. */
static int
role_command_ok(const struct deploy *dp, yaml_node_t *role, yaml_node_t *cmd,
    char *why, size_t len)
{
	const char *need = desc_str(&dp->desc, cmd, "requiredRoleState");
	const char *name = desc_str(&dp->desc, role, "name");
	long pid;
	const char *st = role_state(name, &pid);

	if (need != NULL && strcmp(need, st) != 0) {
		snprintf(why, len, "needs %s %s (it is %s)", name, need, st);
		return 0;
	}
	return 1;
}

static int
service_command_ok(
    const struct deploy *dp, yaml_node_t *c, char *why, size_t len)
{
	const struct desc *d = &dp->desc;
	const char *b = desc_str(d, c, "builtin");
	const char *rn = desc_str(d, c, "roleName");
	yaml_node_t *mine[16];
	size_t n = deploy_host_roles(dp, agent_host, mine, 16), i;
	int running = 0, stopped = 0;
	long pid;

	if (b != NULL) {
		for (i = 0; i < n; i++) {
			if (strcmp(
				role_state(desc_str(d, mine[i], "name"), &pid),
				"running") == 0)
				running++;
			else
				stopped++;
		}
		if (n == 0)
			snprintf(why, len, "no role on this host");
		else if (strcmp(b, "start") == 0 && stopped == 0)
			snprintf(why, len, "every role is running");
		else if (strcmp(b, "start") != 0 && running == 0)
			snprintf(why, len, "no role is running");
		else
			return 1;
		return 0;
	}
	for (i = 0; i < n; i++)
		if (strcmp(desc_str(d, mine[i], "name"), rn) == 0)
			return role_command_ok(dp, mine[i],
			    desc_find(d, desc_get(d, mine[i], "commands"),
				desc_str(d, c, "roleCommand")),
			    why, len);
	snprintf(why, len, "no %s on this host", rn);
	return 0;
}

int
cmd_actions(int argc, char **argv)
{
	static const char options[] =
	    "  --role ROLE           the commands of one role instance\n";
	const char *role = NULL;
	struct deploy dp;
	yaml_node_t *list, *sel[1] = {NULL};
	char why[256];
	size_t i;
	int ch, ok;

	if ((ch = agent_getopt(argc, argv, "actions", options, &role)) != -1)
		return ch;
	if (optind < argc) {
		cli_error("unexpected argument '%s'", argv[optind]);
		return 2;
	}
	if (deploy_load(&dp) == -1)
		return 1;
	if (role != NULL && lc_select(&dp, role, sel, 1) == 0) {
		deploy_free(&dp);
		return 1;
	}
	list = role ? desc_get(&dp.desc, sel[0], "commands")
		    : desc_get(&dp.desc, dp.desc.root, "commands");
	for (i = 0; i < desc_len(list); i++) {
		yaml_node_t *c = desc_at(&dp.desc, list, i);
		why[0] = '\0';
		ok = role ? role_command_ok(&dp, sel[0], c, why, sizeof(why))
			  : service_command_ok(&dp, c, why, sizeof(why));
		printf("%-30s %-42s %s%s\n", desc_str(&dp.desc, c, "name"),
		    desc_str(&dp.desc, c, "label"),
		    ok ? "available" : "unavailable: ", ok ? "" : why);
	}
	deploy_free(&dp);
	return 0;
}
