/*
 * cmd-status.c - kt-agent status [ROLE]: the state of this host's roles
 * as the supervisor sees them.  Exit 0 when every role shown runs, 3 when
 * one does not (as ktadmin db --status).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "log.h"

int
cmd_status(int argc, char **argv)
{
	yaml_node_t *sel[16];
	struct deploy dp;
	json_t *st = NULL;
	size_t n, i;
	int ch, ret = 0;

	if ((ch = agent_getopt(argc, argv, "status", "", NULL)) != -1)
		return ch;
	if (argc - optind > 1) {
		cli_error("unexpected argument '%s'", argv[optind + 1]);
		return 2;
	}
	if (deploy_load(&dp) == -1)
		return 1;
	if ((n = lc_select(
		 &dp, optind < argc ? argv[optind] : NULL, sel, 16)) == 0) {
		deploy_free(&dp);
		return 1;
	}
	st = state_load_json("status.json");
	for (i = 0; i < n; i++) {
		const char *name = desc_str(&dp.desc, sel[i], "name");
		json_t *r = json_object_get(json_object_get(st, "roles"), name);
		long pid;
		const char *state = role_state(name, &pid);

		printf("%-26s %-9s", name, state);
		if (pid > 0)
			printf(" pid %ld", pid);
		if (r != NULL)
			printf(" restarts %lld",
			    (long long)json_integer_value(
				json_object_get(r, "restarts")));
		if (json_string_value(json_object_get(r, "process")) != NULL)
			printf(" %s",
			    json_string_value(json_object_get(r, "process")));
		printf("\n");
		if (strcmp(state, "running") != 0)
			ret = 3;
	}
	json_decref(st);
	deploy_free(&dp);
	return ret;
}
