/*
 * lifecycle.c - what start, stop, restart and exec share: the desired state
 * of this host's roles (desired.json), the supervisor (`kt-agent run`,
 * started on demand), waiting for a role to reach a state, and running a
 * role command in its own process dir.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "spawn.h"
#include "util.h"

/* Roles of this host to act on: one (checked) or all of them. */
size_t
lc_select(
    const struct deploy *dp, const char *role, yaml_node_t **out, size_t max)
{
	yaml_node_t *all[16];
	size_t n = deploy_host_roles(dp, agent_host, all, 16), i;

	if (role == NULL) {
		for (i = 0; i < n && i < max; i++)
			out[i] = all[i];
		if (n == 0)
			cli_error("no role of the deployment is on host %s",
			    agent_host);
		return n;
	}
	for (i = 0; i < n; i++)
		if (strcmp(desc_str(&dp->desc, all[i], "name"), role) == 0) {
			out[0] = all[i];
			return 1;
		}
	if (desc_role(&dp->desc, role) == NULL)
		cli_error("the descriptor has no role %s", role);
	else
		cli_error("role %s is not assigned to host %s%s%s", role,
		    agent_host, deploy_role_host(dp, role) ? "; it is on " : "",
		    deploy_role_host(dp, role) ? deploy_role_host(dp, role)
					       : "");
	return 0;
}

static int
ensure_supervisor(void)
{
	char *argv[] = {(char *)agent_self, "--state", (char *)agent_state_dir,
	    "--host", (char *)agent_host, "--parcels-root",
	    (char *)agent_parcels_root, "run", "--exit-when-idle", NULL};
	struct spawn_opts o = {0};
	char log[PATH_MAX];
	int fd, i;
	pid_t pid;

	if (agent_supervisor_pid() != 0)
		return 0;
	if (state_path(log, sizeof(log), "agent.log") == -1 ||
	    (fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) ==
		-1) {
		cli_error("cannot open %s: %s", log, strerror(errno));
		return -1;
	}
	o.setsid = 1;
	o.cwd = "/";
	if (spawn_start(argv, &o, fd, fd, &pid) == -1) {
		cli_error("cannot start the supervisor: %s", strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	for (i = 0; i < 100; i++) {
		struct timespec ts = {0, 50 * 1000 * 1000};
		if (agent_supervisor_pid() == (long)pid)
			return 0;
		nanosleep(&ts, NULL);
	}
	cli_error("the supervisor did not come up; see %s", log);
	return -1;
}

static void
show_tail(const char *role)
{
	json_t *st = state_load_json("status.json");
	const char *dir = json_string_value(json_object_get(
	    json_object_get(json_object_get(st, "roles"), role), "process"));
	const char *why = json_string_value(json_object_get(
	    json_object_get(json_object_get(st, "roles"), role), "error"));
	char path[PATH_MAX], *buf = NULL;
	size_t len;

	if (why != NULL)
		cli_detail("%s", why);
	if (dir != NULL) {
		snprintf(path, sizeof(path), "%s/logs/stderr.log", dir);
		if (file_read(path, 1024 * 1024, &buf, &len) == 0) {
			const char *p = buf + (len > 1500 ? len - 1500 : 0);
			cli_detail("%s:", path);
			cli_detail_lines(p);
			free(buf);
		}
	}
	json_decref(st);
}

int
lc_change(
    const struct deploy *dp, const char *role, const char *want, int timeout)
{
	yaml_node_t *sel[16];
	size_t n = lc_select(dp, role, sel, 16), i;
	json_t *desired;
	char active[256];
	time_t deadline = time(NULL) + timeout;
	int starting = strcmp(want, "running") == 0;
	long pid;

	if (n == 0)
		return 1;
	/* Refuse now what the supervisor could only retry forever. */
	if (starting &&
	    parcel_require_active(&dp->desc, active, sizeof(active)) == -1)
		return 1;
	if ((desired = state_load_json("desired.json")) == NULL)
		desired = json_object();
	for (i = 0; i < n; i++)
		json_object_set_new(desired,
		    desc_str(&dp->desc, sel[i], "name"), json_string(want));
	if (state_save_json("desired.json", desired) == -1) {
		json_decref(desired);
		return 1;
	}
	json_decref(desired);
	if (starting && ensure_supervisor() == -1)
		return 1;
	for (i = 0; i < n; i++) {
		const char *name = desc_str(&dp->desc, sel[i], "name");
		const char *st;
		for (;;) {
			struct timespec ts = {0, 100 * 1000 * 1000};
			st = role_state(name, &pid);
			if (strcmp(st, want) == 0)
				break;
			/* An idle supervisor may have exited just as we came.
			 */
			if (starting && agent_supervisor_pid() == 0 &&
			    ensure_supervisor() == -1)
				return 1;
			if (time(NULL) >= deadline) {
				cli_error("%s is %s, not %s, after %d s", name,
				    st, want, timeout);
				if (starting)
					show_tail(name);
				return 1;
			}
			nanosleep(&ts, NULL);
		}
		if (starting)
			printf("%s: running (pid %ld)\n", name, pid);
		else
			printf("%s: stopped\n", name);
	}
	return 0;
}

int
lc_role_command(const struct deploy *dp, yaml_node_t *role, yaml_node_t *cmd,
    const char *label)
{
	const struct desc *d = &dp->desc;
	const char *rname = desc_str(d, role, "name");
	const char *need = desc_str(d, cmd, "requiredRoleState");
	yaml_node_t *codes = desc_get(d, cmd, "expectedExitCodes");
	struct proc_dir pd;
	long pid;
	const char *st = role_state(rname, &pid);
	int code, ok = 0;
	size_t i;

	if (need != NULL && strcmp(st, need) != 0) {
		cli_error("%s needs %s %s; it is %s", label, rname, need, st);
		cli_hint("%s it first: kt-agent %s %s",
		    strcmp(need, "running") == 0 ? "start" : "stop",
		    strcmp(need, "running") == 0 ? "start" : "stop", rname);
		return 1;
	}
	if (proc_run_command(dp, role, cmd, &code, &pd) == -1)
		return 1;
	for (i = 0; i < desc_len(codes); i++)
		if (atoi((const char *)desc_at(d, codes, i)
			     ->data.scalar.value) == code)
			ok = 1;
	if (ok) {
		printf("%s on %s: done (exit %d; %s)\n", label, rname, code,
		    pd.path);
		return 0;
	}
	cli_error("%s on %s failed: exit %d", label, rname, code);
	{
		char path[PATH_MAX + 32], *buf = NULL;
		size_t len;
		snprintf(path, sizeof(path), "%s/logs/stderr.log", pd.path);
		if (file_read(path, 1024 * 1024, &buf, &len) == 0) {
			cli_detail("%s:", path);
			cli_detail_lines(buf + (len > 2000 ? len - 2000 : 0));
			free(buf);
		}
	}
	return 1;
}

/* start|stop [ROLE] [--timeout S] */
int
lc_verb(int argc, char **argv, const char *name, const char *want)
{
	static const struct option longopts[] = {
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	static const char options[] =
	    "  --timeout S           seconds to wait (default 60)\n";
	struct deploy dp;
	int ch, timeout = 60, ret;
	char *end;

	while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (ch) {
		case 't':
			timeout = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || timeout < 1 || timeout > 3600) {
				cli_error("--timeout: '%s' is not 1-3600 "
					  "seconds",
				    optarg);
				return 2;
			}
			break;
		case 'h':
			agent_usage(stdout, name, options);
			return 0;
		default:
			return cli_opt_error(AGENT_PROGNAME, name, ch, argv);
		}
	}
	if (argc - optind > 1) {
		cli_error("unexpected argument '%s'", argv[optind + 1]);
		return 2;
	}
	if (deploy_load(&dp) == -1)
		return 1;
	ret =
	    lc_change(&dp, optind < argc ? argv[optind] : NULL, want, timeout);
	deploy_free(&dp);
	return ret;
}
