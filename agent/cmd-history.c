/*
 * cmd-history.c - kt-agent history [SEQ]: every command and role start
 * this agent ran (from each process dir's record.json), or one of them
 * with its stdout and stderr; then the backups of this host's roles that
 * ktbackup.sh recorded (the hourly ones cron runs, which the agent does
 * not start), a failed one marked "failed".
 */
#include <dirent.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "backupstat.h"
#include "log.h"
#include "util.h"

static int
by_seq(const void *a, const void *b)
{
	return atoi(*(char *const *)a) - atoi(*(char *const *)b);
}

static void
show_file(const char *dir, const char *name)
{
	char path[PATH_MAX + 600], *buf = NULL;
	size_t len;

	snprintf(path, sizeof(path), "%s/logs/%s", dir, name);
	printf("--- %s\n", path);
	if (file_read(path, 4 * 1024 * 1024, &buf, &len) == 0) {
		fwrite(buf, 1, len, stdout);
		if (len > 0 && buf[len - 1] != '\n')
			putchar('\n');
		free(buf);
	}
}

static void
stamp(json_t *v, char *buf, size_t len)
{
	time_t t = (time_t)json_integer_value(v);
	struct tm tm;

	if (!json_is_integer(v) || t == 0) {
		snprintf(buf, len, "-");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
header(void)
{
	printf("%-4s %-20s %-20s %-26s %-30s %s\n", "SEQ", "STARTED", "ENDED",
	    "ROLE", "COMMAND", "EXIT");
}

/* Rows "-  STARTED ENDED ROLE ktbackup.sh EXIT [failed: ERROR]". */
static void
show_backups(void)
{
	char path[PATH_MAX];
	yaml_node_t *roles[16];
	struct deploy dp;
	size_t n, i, j;

	/* No deployment, no roles: the history needs none. */
	if (state_path(path, sizeof(path), "deployment.json") == -1 ||
	    !file_exists(path) || deploy_load(&dp) == -1)
		return;
	n = deploy_host_roles(&dp, agent_host, roles, 16);
	for (i = 0; i < n; i++) {
		char *confdir = NULL;
		json_t *st = role_backup_status(&dp, roles[i], &confdir);
		json_t *runs = json_object_get(st, "runs"), *r;

		json_array_foreach(runs, j, r)
		{
			char t1[32], t2[32];
			const char *res =
			    json_string_value(json_object_get(r, "result"));

			backupstat_time(
			    json_integer_value(json_object_get(r, "started")),
			    t1, sizeof(t1));
			backupstat_time(
			    json_integer_value(json_object_get(r, "ended")), t2,
			    sizeof(t2));
			printf("%-4s %-20s %-20s %-26s %-30s %lld", "-", t1, t2,
			    desc_str(&dp.desc, roles[i], "name"), "ktbackup.sh",
			    (long long)json_integer_value(
				json_object_get(r, "exit")));
			if (res == NULL || strcmp(res, "ok") != 0)
				printf(" failed: %s",
				    json_is_string(json_object_get(r, "error"))
					? json_string_value(
					      json_object_get(r, "error"))
					: "-");
			printf("\n");
		}
		json_decref(st);
		free(confdir);
	}
	deploy_free(&dp);
}

int
cmd_history(int argc, char **argv)
{
	char base[PATH_MAX], **names = NULL;
	struct dirent *de;
	size_t n = 0, i;
	DIR *dir;
	int ch, want = 0, found = 0;

	if ((ch = agent_getopt(argc, argv, "history", "", NULL)) != -1)
		return ch;
	if (argc - optind > 1) {
		cli_error("unexpected argument '%s'", argv[optind + 1]);
		return 2;
	}
	if (optind < argc && (want = atoi(argv[optind])) <= 0) {
		cli_error("'%s' is not a process number", argv[optind]);
		return 2;
	}
	if (state_path(base, sizeof(base), "process") == -1)
		return 1;
	if ((dir = opendir(base)) == NULL) {
		if (want) {
			cli_error("no process %d: nothing has run yet", want);
			return 1;
		}
		header();
		show_backups();
		return 0;
	}
	while ((de = readdir(dir)) != NULL) {
		char **nn;
		if (atoi(de->d_name) <= 0)
			continue;
		if ((nn = realloc(names, (n + 1) * sizeof(*names))) == NULL)
			break;
		names = nn;
		if ((names[n] = strdup(de->d_name)) != NULL)
			n++;
	}
	closedir(dir);
	qsort(names, n, sizeof(*names), by_seq);
	if (!want)
		header();
	for (i = 0; i < n; i++) {
		char path[PATH_MAX + 300], dpath[PATH_MAX + 280], t1[32],
		    t2[32];
		json_error_t jerr;
		json_t *r;

		if (want && atoi(names[i]) != want)
			continue;
		snprintf(dpath, sizeof(dpath), "%s/%s", base, names[i]);
		snprintf(path, sizeof(path), "%s/record.json", dpath);
		if ((r = json_load_file(path, 0, &jerr)) == NULL)
			continue;
		stamp(json_object_get(r, "started"), t1, sizeof(t1));
		stamp(json_object_get(r, "ended"), t2, sizeof(t2));
		if (want) {
			found = 1;
			printf("process: %s\nrole: %s\ncommand: %s\npid: "
			       "%lld\nstarted: %s\nended: %s\n",
			    dpath,
			    json_string_value(json_object_get(r, "role")),
			    json_string_value(json_object_get(r, "command")),
			    (long long)json_integer_value(
				json_object_get(r, "pid")),
			    t1, t2);
			if (json_object_get(r, "exit") != NULL)
				printf("exit: %lld\n",
				    (long long)json_integer_value(
					json_object_get(r, "exit")));
			show_file(dpath, "stdout.log");
			show_file(dpath, "stderr.log");
		} else {
			json_t *e = json_object_get(r, "exit");
			printf("%-4d %-20s %-20s %-26s %-30s ", atoi(names[i]),
			    t1, t2,
			    json_string_value(json_object_get(r, "role")),
			    json_string_value(json_object_get(r, "command")));
			if (e != NULL)
				printf(
				    "%lld\n", (long long)json_integer_value(e));
			else
				printf("(running)\n");
		}
		json_decref(r);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (!want)
		show_backups();
	if (want && !found) {
		cli_error("no process %d in %s", want, base);
		return 1;
	}
	return 0;
}
