/*
 * cmd-schedule.c - kt-agent schedule [show|remove]: the descriptor's
 * schedules (the hourly backup that "Create Backup on ... Server"
 * installs), shown or removed through the active parcel's
 * kt-backup-schedule.sh on each schedule's cronFile.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log.h"
#include "spawn.h"

int
cmd_schedule(int argc, char **argv)
{
	const char *verb = "show";
	char tool[PATH_MAX], active[256];
	struct deploy dp;
	yaml_node_t *ss;
	size_t i;
	int ch, ret = 0;

	if ((ch = agent_getopt(argc, argv, "schedule", "", NULL)) != -1)
		return ch;
	if (argc - optind > 1) {
		cli_error("unexpected argument '%s'", argv[optind + 1]);
		return 2;
	}
	if (optind < argc)
		verb = argv[optind];
	if (strcmp(verb, "show") != 0 && strcmp(verb, "remove") != 0) {
		cli_error(
		    "unknown schedule command '%s' (show or remove)", verb);
		return 2;
	}
	if (deploy_load(&dp) == -1)
		return 1;
	if (parcel_require_active(NULL, active, sizeof(active)) == -1) {
		deploy_free(&dp);
		return 1;
	}
	snprintf(tool, sizeof(tool), "%s/%s/bin/kt-backup-schedule.sh",
	    agent_parcels_root, active);
	ss = desc_get(&dp.desc, dp.desc.root, "schedules");
	for (i = 0; i < desc_len(ss); i++) {
		yaml_node_t *s = desc_at(&dp.desc, ss, i);
		const char *cf = desc_str(&dp.desc, s, "cronFile");
		char *file = cf ? deploy_subst(&dp, cf) : NULL;
		char *av[] = {tool, (char *)verb, "--cron-file", file, NULL};
		struct spawn_result res;

		if (file == NULL)
			continue;
		if (strcmp(verb, "show") == 0)
			printf("# %s (%s, %s): %s\n",
			    desc_str(&dp.desc, s, "label"),
			    desc_str(&dp.desc, s, "command"),
			    desc_str(&dp.desc, s, "cron"), file);
		fflush(stdout);
		if (spawn_run(av, NULL, &res) == -1) {
			cli_error("cannot run %s: %s", tool, strerror(errno));
			ret = 1;
		} else if (res.status != 0) {
			ret = 1;
		}
		spawn_result_free(&res);
		free(file);
	}
	deploy_free(&dp);
	return ret;
}
