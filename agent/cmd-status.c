/*
 * cmd-status.c - kt-agent status [ROLE]: the state of this host's roles
 * as the supervisor sees them, and under each role that makes backups the
 * result of its last one (a failed scheduled backup shows here, not only
 * in cron's mail).  Exit 0 when every role shown runs, 3 when one does not
 * (as ktadmin db --status).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "backupstat.h"
#include "log.h"

static const char *
or_dash(const json_t *v)
{
	return json_is_string(v) ? json_string_value(v) : "-";
}

/* "  backup: STATE ..." under a role that makes backups. */
static void
show_backup(const struct deploy *dp, yaml_node_t *role)
{
	char *confdir = NULL, when[32], ok[32];
	json_t *st = role_backup_status(dp, role, &confdir);
	long long now = (long long)time(NULL);
	const char *state = backupstat_state(st, now);

	if (confdir == NULL)
		return;
	if (st == NULL) {
		if (errno == ENOENT)
			printf("  backup: none: no backup has run (no %s/%s)\n",
			    confdir, BACKUPSTAT_FILE);
		else
			printf("  backup: unknown: %s/%s: %s\n", confdir,
			    BACKUPSTAT_FILE,
			    errno == EINVAL ? "not a backup status"
					    : strerror(errno));
		free(confdir);
		return;
	}
	backupstat_time(json_integer_value(json_object_get(st, "ended")), when,
	    sizeof(when));
	backupstat_time(
	    json_integer_value(json_object_get(st, "last_ok")), ok, sizeof(ok));
	printf("  backup: %s: last run %s %s (exit %lld, %llds)", state, when,
	    json_string_value(json_object_get(st, "result")),
	    (long long)json_integer_value(json_object_get(st, "exit")),
	    (long long)json_integer_value(
		json_object_get(st, "duration_seconds")));
	if (strcmp(json_string_value(json_object_get(st, "result")), "ok") == 0)
		printf(": %s", or_dash(json_object_get(st, "file")));
	else
		printf(": %s; last ok %s",
		    or_dash(json_object_get(st, "error")), ok);
	if (strcmp(state, "overdue") == 0)
		printf("; overdue: older than twice the %llds interval",
		    backupstat_interval(st));
	printf("\n");
	json_decref(st);
	free(confdir);
}

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
		show_backup(&dp, sel[i]);
		if (strcmp(state, "running") != 0)
			ret = 3;
	}
	json_decref(st);
	deploy_free(&dp);
	return ret;
}
