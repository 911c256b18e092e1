/*
 * cmd-run.c - kt-agent run: the supervisor.  It keeps this host's roles in
 * their desired state (desired.json): starts a role in a fresh process dir
 * with its generated config (databases first, in descriptor order), stops
 * it with SIGTERM and, after the stopRunner timeout, SIGKILL (servers
 * first), restarts a role that died with a backoff of 1, 2, 4 ... 30 s, and
 * writes what it sees to status.json.  SIGTERM stops the roles and exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "util.h"

#define MAX_ROLES 16
#define RUNNING_AFTER 2 /* s alive before "starting" becomes "running" */
#define STABLE_AFTER 30 /* s alive before the backoff resets */
#define BACKOFF_MAX 30

struct sup {
	yaml_node_t *role;
	const char *name;
	const char *state; /* stopped starting running stopping backoff */
	pid_t pid;
	struct proc_dir pd;
	int have_pd;
	double started, next_try, stop_sent;
	long started_wall;
	long long pid_start;
	int restarts, fails, last_exit;
	char error[512];
};

static volatile sig_atomic_t quit;

static void
on_term(int sig)
{
	(void)sig;
	quit = 1;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
write_status(struct sup *s, size_t n)
{
	json_t *roles = json_object(), *st;
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		json_t *o = json_pack("{s:s, s:I, s:i, s:i}", "state",
		    s[i].state, "pid", (json_int_t)s[i].pid, "restarts",
		    s[i].restarts, "last_exit", s[i].last_exit);
		if (o == NULL)
			continue;
		if (s[i].pid != 0)
			json_object_set_new(
			    o, "pid_start", json_integer(s[i].pid_start));
		if (s[i].have_pd)
			json_object_set_new(
			    o, "process", json_string(s[i].pd.path));
		if (s[i].error[0] != '\0')
			json_object_set_new(
			    o, "error", json_string(s[i].error));
		json_object_set_new(roles, s[i].name, o);
	}
	st = json_pack("{s:I, s:s, s:o}", "agent_pid", (json_int_t)getpid(),
	    "host", agent_host, "roles", roles);
	r = st ? state_save_json("status.json", st) : -1;
	json_decref(st);
	return r;
}

static int
desired_running(json_t *desired, const char *name)
{
	const char *v = json_string_value(json_object_get(desired, name));

	return v != NULL && strcmp(v, "running") == 0;
}

/* The start time of pid (clock ticks after boot): with the pid, unique. */
static long long
proc_starttime(long pid)
{
	char path[64], buf[4096], *p;
	long long t = 0;
	FILE *fp;
	int field;

	/* /proc files have no size: read, not file_read. */
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((fp = fopen(path, "re")) == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), fp) == NULL)
		buf[0] = '\0';
	fclose(fp);
	/* Field 22; the command (field 2) may hold spaces: skip past ')'. */
	if ((p = strrchr(buf, ')')) != NULL) {
		for (field = 2; field < 22 && p != NULL; field++)
			p = strchr(p + 1, ' ');
		if (p != NULL)
			t = atoll(p + 1);
	}
	return t;
}

static void
start_role(const struct deploy *dp, struct sup *s)
{
	const char *user = desc_run_as(&dp->desc, s->role, NULL);
	char errbuf[512] = "";
	FILE *mem;
	int saved = dup(STDERR_FILENO), r = -1;

	/* Errors of the start go to status.json as well as to our log. */
	if ((mem = tmpfile()) != NULL && saved != -1) {
		fflush(stderr);
		dup2(fileno(mem), STDERR_FILENO);
	}
	if (proc_dir_make(&s->pd, s->name, user) == 0) {
		s->have_pd = 1;
		if (proc_write_config(dp, s->role, &s->pd, user, 1) == 0 &&
		    proc_spawn(dp, s->role,
			desc_get(&dp->desc, s->role, "startRunner"), user,
			&s->pd, &s->pid) == 0)
			r = 0;
	}
	if (mem != NULL && saved != -1) {
		size_t len;
		fflush(stderr);
		dup2(saved, STDERR_FILENO);
		rewind(mem);
		len = fread(errbuf, 1, sizeof(errbuf) - 1, mem);
		errbuf[len] = '\0';
		fputs(errbuf, stderr);
	}
	if (mem != NULL)
		fclose(mem);
	if (saved != -1)
		close(saved);
	s->started = now();
	s->started_wall = (long)time(NULL);
	if (r == 0) {
		s->state = "starting";
		s->error[0] = '\0';
		s->pid_start = proc_starttime((long)s->pid);
		proc_record(
		    &s->pd, s->name, "start", s->pid, 0, s->started_wall, 0);
		log_info("%s: started pid %ld in %s", s->name, (long)s->pid,
		    s->pd.path);
		return;
	}
	snprintf(s->error, sizeof(s->error), "%s", errbuf);
	s->error[strcspn(s->error, "\n")] = '\0';
	s->pid = 0;
	s->fails++;
	s->state = "backoff";
	s->next_try =
	    now() + (s->fails > 5 ? BACKOFF_MAX : 1 << (s->fails - 1));
}

static void
reaped(struct sup *s, int status, json_t *desired)
{
	int code =
	    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	double up = now() - s->started;
	int delay;

	s->last_exit = code;
	proc_record(&s->pd, s->name, "start", s->pid, code, s->started_wall,
	    (long)time(NULL));
	log_info("%s: pid %ld exited %d after %.1f s", s->name, (long)s->pid,
	    code, up);
	s->pid = 0;
	if (strcmp(s->state, "stopping") == 0 ||
	    !desired_running(desired, s->name)) {
		s->state = "stopped";
		s->fails = 0;
		return;
	}
	if (up >= STABLE_AFTER)
		s->fails = 0;
	s->fails++;
	delay = s->fails > 5 ? BACKOFF_MAX : 1 << (s->fails - 1);
	if (delay > BACKOFF_MAX)
		delay = BACKOFF_MAX;
	snprintf(s->error, sizeof(s->error), "exited %d; restarting in %d s",
	    code, delay);
	s->state = "backoff";
	s->next_try = now() + delay;
}

/*
 * A supervisor killed with -9 leaves its role processes running: stop
 * them (SIGTERM, then SIGKILL after 30 s) before starting anew, so that no
 * role runs twice.  They are known by their pid and its start time.
 */
static void
stop_leftovers(const struct sup *s, size_t n)
{
	json_t *st = state_load_json("status.json");
	json_t *roles = json_object_get(st, "roles");
	size_t i;

	/* Servers first, as a stop does: PostgreSQL waits for its clients. */
	for (i = n; i-- > 0;) {
		json_t *r = json_object_get(roles, s[i].name);
		long pid = (long)json_integer_value(json_object_get(r, "pid"));
		long long t = (long long)json_integer_value(
		    json_object_get(r, "pid_start"));
		int k;

		if (pid <= 0 || t == 0 || proc_starttime(pid) != t)
			continue;
		log_warnx("%s: pid %ld of a previous supervisor still runs; "
			  "stopping it",
		    s[i].name, pid);
		kill((pid_t)pid, SIGTERM);
		for (k = 0; k < 300 && kill((pid_t)pid, 0) == 0; k++) {
			struct timespec ts = {0, 100 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		if (kill((pid_t)pid, 0) == 0)
			kill((pid_t)pid, SIGKILL);
	}
	json_decref(st);
}

static long
deployment_mtime(void)
{
	char path[PATH_MAX];
	struct stat st;

	if (state_path(path, sizeof(path), "deployment.json") == -1 ||
	    stat(path, &st) == -1)
		return 0;
	return (long)st.st_mtim.tv_sec * 1000000000L + st.st_mtim.tv_nsec;
}

/* (Re)load the deployment: this host's roles, all stopped. */
static int
load_roles(struct deploy *dp, struct sup *s, size_t *np)
{
	yaml_node_t *roles[MAX_ROLES];
	size_t i, n;

	if (deploy_load(dp) == -1)
		return -1;
	n = deploy_host_roles(dp, agent_host, roles, MAX_ROLES);
	memset(s, 0, sizeof(*s) * MAX_ROLES);
	for (i = 0; i < n; i++) {
		s[i].role = roles[i];
		s[i].name = desc_str(&dp->desc, roles[i], "name");
		s[i].state = "stopped";
	}
	*np = n;
	log_info("supervising %zu role%s of host %s", n, n == 1 ? "" : "s",
	    agent_host);
	return 0;
}

static double
stop_timeout(const struct deploy *dp, yaml_node_t *role)
{
	const char *t = desc_str(
	    &dp->desc, desc_get(&dp->desc, role, "stopRunner"), "timeout");

	return t ? atof(t) / 1000.0 : 30.0;
}

int
cmd_run(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"exit-when-idle", no_argument, NULL, 'i'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	static const char options[] =
	    "  --exit-when-idle      exit once no role is desired running\n";
	struct sup s[MAX_ROLES];
	struct deploy dp;
	long mtime;
	struct sigaction sa;
	char path[PATH_MAX], pidbuf[32];
	size_t n, i;
	int ch, lockfd = -1, idle_exit = 0, ret = 1, changed = 1;

	while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'i':
			idle_exit = 1;
			break;
		case 'h':
			agent_usage(stdout, "run", options);
			return 0;
		default:
			return cli_opt_error(AGENT_PROGNAME, "run", ch, argv);
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument '%s'", argv[optind]);
		return 2;
	}
	log_init(AGENT_PROGNAME, 0);
	mtime = deployment_mtime();
	if (load_roles(&dp, s, &n) == -1) {
		deploy_free(&dp);
		return 1;
	}
	if (state_path(path, sizeof(path), "agent.lock") == -1 ||
	    (lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1) {
		cli_error("cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if (flock(lockfd, LOCK_EX | LOCK_NB) == -1) {
		cli_error(
		    "another kt-agent run supervises %s", agent_state_dir);
		goto out;
	}
	snprintf(pidbuf, sizeof(pidbuf), "%ld\n", (long)getpid());
	if (state_path(path, sizeof(path), "agent.pid") == -1 ||
	    file_write_atomic(path, pidbuf, strlen(pidbuf), 0644) == -1) {
		cli_error("cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	stop_leftovers(s, n);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);

	for (;;) {
		struct timespec ts = {0, 200 * 1000 * 1000};
		json_t *desired = state_load_json("desired.json");
		double t = now();
		int status, alive = 0, wanted = 0, blocked = 0;
		pid_t pid;

		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			for (i = 0; i < n; i++)
				if (s[i].pid == pid) {
					reaped(&s[i], status, desired);
					changed = 1;
				}
		/* Start in order: a role waits for the ones before it. */
		for (i = 0; i < n; i++) {
			int want = !quit && desired_running(desired, s[i].name);
			wanted += want;
			if (want && !blocked &&
			    (strcmp(s[i].state, "stopped") == 0 ||
				(strcmp(s[i].state, "backoff") == 0 &&
				    t >= s[i].next_try))) {
				if (s[i].pid == 0)
					s[i].restarts +=
					    strcmp(s[i].state, "backoff") == 0;
				start_role(&dp, &s[i]);
				changed = 1;
			}
			if (strcmp(s[i].state, "starting") == 0 &&
			    t - s[i].started >= RUNNING_AFTER) {
				s[i].state = "running";
				changed = 1;
			}
			if (want && strcmp(s[i].state, "running") != 0)
				blocked = 1;
			if (!want && strcmp(s[i].state, "backoff") == 0) {
				s[i].state = "stopped";
				changed = 1;
			}
		}
		/* Stop in reverse order: a role waits for the ones after it. */
		for (i = n; i-- > 0;) {
			int want = !quit && desired_running(desired, s[i].name);
			if (s[i].pid != 0)
				alive++;
			if (want || s[i].pid == 0)
				continue;
			if (strcmp(s[i].state, "stopping") != 0) {
				size_t j;
				int later = 0;
				for (j = i + 1; j < n; j++)
					later |= s[j].pid != 0;
				if (later)
					continue;
				kill(s[i].pid, SIGTERM);
				s[i].state = "stopping";
				s[i].stop_sent = t;
				changed = 1;
				log_info("%s: stopping pid %ld", s[i].name,
				    (long)s[i].pid);
			} else if (t - s[i].stop_sent >
			    stop_timeout(&dp, s[i].role)) {
				log_warnx("%s: pid %ld did not stop; killing",
				    s[i].name, (long)s[i].pid);
				kill(s[i].pid, SIGKILL);
				s[i].stop_sent = t;
			}
		}
		json_decref(desired);
		if (changed) {
			write_status(s, n);
			changed = 0;
		}
		if (alive == 0 && (quit || (idle_exit && wanted == 0)))
			break;
		/* A new assignment or new values: taken when nothing runs. */
		if (alive == 0 && deployment_mtime() != mtime) {
			struct deploy ndp;
			struct sup ns[MAX_ROLES];
			size_t nn;
			if (load_roles(&ndp, ns, &nn) == 0) {
				deploy_free(&dp);
				dp = ndp;
				memcpy(s, ns, sizeof(s));
				n = nn;
				changed = 1;
			} else {
				deploy_free(&ndp);
			}
			mtime = deployment_mtime();
		}
		nanosleep(&ts, NULL);
	}
	log_info("supervisor exiting");
	ret = 0;
out:
	if (state_path(path, sizeof(path), "agent.pid") == 0 && ret == 0)
		unlink(path);
	if (ret == 0)
		write_status(s, 0);
	if (lockfd != -1)
		close(lockfd);
	deploy_free(&dp);
	return ret;
}
