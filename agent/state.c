/*
 * state.c - the agent's state dir: deployment.json (the role assignment and
 * parameter values), desired.json (which roles should run), status.json
 * (what the supervisor sees), and the process dirs
 * STATE/process/NNN-keytrustee_server-ROLE/ holding each command's
 * generated config, logs/stdout.log, logs/stderr.log and record.json.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include "backupstat.h"
#include "log.h"
#include "spawn.h"
#include "util.h"

int
state_path(char *buf, size_t len, const char *name)
{
	return path_join(buf, len, agent_state_dir, name);
}

json_t *
state_load_json(const char *name)
{
	char path[PATH_MAX];
	json_error_t jerr;
	json_t *j;

	if (state_path(path, sizeof(path), name) == -1)
		return NULL;
	if (access(path, F_OK) == -1)
		return NULL;
	if ((j = json_load_file(path, 0, &jerr)) == NULL) {
		cli_error("%s:%d: %s", path, jerr.line, jerr.text);
		errno = EINVAL;
	}
	return j;
}

int
state_save_json(const char *name, json_t *j)
{
	char path[PATH_MAX], *s = NULL;
	int ret = -1;

	if (mkdir_parents(agent_state_dir, 0700) == -1) {
		cli_error("cannot create the state dir %s: %s", agent_state_dir,
		    strerror(errno));
		goto out;
	}
	if (state_path(path, sizeof(path), name) == -1 ||
	    (s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL)
		goto out;
	if (file_write_atomic(path, s, strlen(s), 0600) == -1) {
		cli_error("cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	free(s);
	return ret;
}

int
deploy_load(struct deploy *dp)
{
	const char *file;

	memset(dp, 0, sizeof(*dp));
	if ((dp->json = state_load_json("deployment.json")) == NULL) {
		if (errno != EINVAL) {
			cli_error("this host has no deployment in %s",
			    agent_state_dir);
			cli_hint("assign the roles first: kt-agent assign "
				 "--descriptor FILE --hosts HOST,...");
		}
		return -1;
	}
	file = json_string_value(json_object_get(dp->json, "descriptor"));
	if (file == NULL) {
		cli_error("deployment.json names no descriptor");
		return -1;
	}
	if (desc_load(&dp->desc, file, NULL, 0) == -1 ||
	    desc_validate(&dp->desc) != 0) {
		cli_error("the descriptor %s is not valid", file);
		return -1;
	}
	return 0;
}

void
deploy_free(struct deploy *dp)
{
	desc_free(&dp->desc);
	json_decref(dp->json);
	dp->json = NULL;
}

static int
role_on_host(const struct deploy *dp, const char *role, const char *host)
{
	json_t *hosts =
	    json_object_get(json_object_get(dp->json, "roles"), role);
	size_t i;
	json_t *h;

	json_array_foreach(hosts, i, h)
	{
		if (json_is_string(h) &&
		    strcmp(json_string_value(h), host) == 0)
			return 1;
	}
	return 0;
}

size_t
deploy_host_roles(
    const struct deploy *dp, const char *host, yaml_node_t **roles, size_t max)
{
	yaml_node_t *rs = desc_get(&dp->desc, dp->desc.root, "roles");
	size_t i, n = 0;

	for (i = 0; i < desc_len(rs) && n < max; i++) {
		yaml_node_t *r = desc_at(&dp->desc, rs, i);
		const char *name = desc_str(&dp->desc, r, "name");
		if (name != NULL && role_on_host(dp, name, host))
			roles[n++] = r;
	}
	return n;
}

const char *
deploy_role_host(const struct deploy *dp, const char *role)
{
	json_t *hosts =
	    json_object_get(json_object_get(dp->json, "roles"), role);

	return json_string_value(json_array_get(hosts, 0));
}

const char *
deploy_param(const struct deploy *dp, const char *name)
{
	json_t *v = json_object_get(json_object_get(dp->json, "params"), name);
	const char *def;

	if (json_is_string(v))
		return json_string_value(v);
	def = desc_str(&dp->desc, desc_param(&dp->desc, name), "default");
	return def ? def : "";
}

/* ${user}: the service's account, whatever account a runner starts as. */
static const char *
service_user(const struct deploy *dp)
{
	const char *u = desc_str(
	    &dp->desc, desc_get(&dp->desc, dp->desc.root, "runAs"), "user");

	return u ? u : "root";
}

char *
deploy_subst(const struct deploy *dp, const char *s)
{
	size_t cap = strlen(s) + 1, len = 0;
	char *out = malloc(cap), var[256];
	const char *p = s, *e, *val;

	if (out == NULL)
		return NULL;
	while (*p) {
		if (p[0] == '$' && p[1] == '{' &&
		    (e = strchr(p, '}')) != NULL &&
		    (size_t)(e - p - 2) < sizeof(var)) {
			memcpy(var, p + 2, (size_t)(e - p - 2));
			var[e - p - 2] = '\0';
			if (strcmp(var, "host") == 0)
				val = agent_host;
			else if (strcmp(var, "user") == 0 ||
			    strcmp(var, "group") == 0)
				val = service_user(dp);
			else if (strcmp(var, "active_host") == 0) {
				val = deploy_role_host(
				    dp, "KEYTRUSTEE_ACTIVE_SERVER");
				if (val == NULL)
					val = "";
			} else
				val = deploy_param(dp, var);
			p = e + 1;
		} else {
			char c[2] = {*p++, '\0'};
			val = c;
			if (len + 2 > cap) {
				char *n = realloc(out, cap *= 2);
				if (n == NULL) {
					free(out);
					return NULL;
				}
				out = n;
			}
			out[len++] = c[0];
			continue;
		}
		if (len + strlen(val) + 1 > cap) {
			char *n;
			cap = len + strlen(val) + 1 + cap;
			if ((n = realloc(out, cap)) == NULL) {
				free(out);
				return NULL;
			}
			out = n;
		}
		memcpy(out + len, val, strlen(val));
		len += strlen(val);
	}
	out[len] = '\0';
	return out;
}

long
agent_supervisor_pid(void)
{
	char path[PATH_MAX], *buf = NULL;
	size_t len;
	long pid = 0;
	int fd;

	/* The supervisor holds agent.lock: a free lock means none runs
	 * (a killed one, even a zombie or a reused pid, holds nothing). */
	if (state_path(path, sizeof(path), "agent.lock") == -1 ||
	    (fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		close(fd);
		return 0;
	}
	close(fd);
	if (state_path(path, sizeof(path), "agent.pid") == -1 ||
	    file_read(path, 64, &buf, &len) == -1)
		return 0;
	pid = atol(buf);
	free(buf);
	return pid > 0 ? pid : 0;
}

const char *
role_state(const char *role, long *pid)
{
	static char state[32];
	json_t *st = state_load_json("status.json"), *r;
	long apid;
	const char *s;

	*pid = 0;
	snprintf(state, sizeof(state), "stopped");
	if (st == NULL)
		return state;
	apid = (long)json_integer_value(json_object_get(st, "agent_pid"));
	if (apid <= 0 || apid != agent_supervisor_pid()) {
		json_decref(st);
		return state;
	}
	r = json_object_get(json_object_get(st, "roles"), role);
	if ((s = json_string_value(json_object_get(r, "state"))) != NULL)
		snprintf(state, sizeof(state), "%s", s);
	*pid = (long)json_integer_value(json_object_get(r, "pid"));
	json_decref(st);
	return state;
}

/* ------------------------------------------------------------------ */
/* process dirs */

int
proc_dir_make(struct proc_dir *pd, const char *role, const char *user)
{
	char base[PATH_MAX - 300], logs[PATH_MAX + 8];
	struct dirent *de;
	DIR *dir;
	int next = 1, tries;

	if (mkdir_parents(agent_state_dir, 0700) == -1 ||
	    state_path(base, sizeof(base), "process") == -1 ||
	    dir_ensure(base, 0711) == -1) {
		cli_error("cannot create %s/process: %s", agent_state_dir,
		    strerror(errno));
		return -1;
	}
	/* The state dir is 0700; role accounts need to reach their dir. */
	(void)chmod(agent_state_dir, 0711);
	if ((dir = opendir(base)) != NULL) {
		while ((de = readdir(dir)) != NULL) {
			int n = atoi(de->d_name);
			if (n >= next)
				next = n + 1;
		}
		closedir(dir);
	}
	for (tries = 0; tries < 100; tries++, next++) {
		snprintf(pd->path, sizeof(pd->path), "%s/%03d-%s-%s", base,
		    next, AGENT_SERVICE_DIR, role);
		if (mkdir(pd->path, 0751) == 0)
			break;
		if (errno != EEXIST) {
			cli_error(
			    "cannot create %s: %s", pd->path, strerror(errno));
			return -1;
		}
	}
	pd->seq = next;
	snprintf(logs, sizeof(logs), "%s/logs", pd->path);
	if (chmod(pd->path, 0751) == -1 || mkdir(logs, 0755) == -1) {
		cli_error("cannot create %s: %s", logs, strerror(errno));
		return -1;
	}
	if (chown_to_account(pd->path, user) == -1 ||
	    chown_to_account(logs, user) == -1) {
		cli_error("cannot give %s to %s: %s", pd->path, user,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* Merge obj into the JSON file target, keeping the file's owner and mode. */
static int
merge_json(const char *target, json_t *obj)
{
	json_error_t jerr;
	json_t *cur = NULL;
	struct stat st;
	char *s = NULL;
	int ret = -1;

	if (stat(target, &st) == -1) {
		cli_error("%s: %s", target, strerror(errno));
		cli_hint("run \"Set Up Key Trustee Server Database\" first");
		goto out;
	}
	if ((cur = json_load_file(target, 0, &jerr)) == NULL ||
	    !json_is_object(cur)) {
		cli_error("%s:%d: %s", target, jerr.line,
		    cur ? "not a JSON object" : jerr.text);
		goto out;
	}
	if (json_object_update(cur, obj) == -1 ||
	    (s = json_dumps(cur, JSON_INDENT(4) | JSON_SORT_KEYS)) == NULL)
		goto out;
	if (file_write_atomic(target, s, strlen(s), st.st_mode & 07777) == -1 ||
	    chown(target, st.st_uid, st.st_gid) == -1) {
		cli_error("cannot write %s: %s", target, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (s != NULL)
		freezero(s, strlen(s));
	json_decref(cur);
	return ret;
}

static int
write_owned(const char *path, const char *data, mode_t mode, const char *user)
{
	if (file_write_atomic(path, data, strlen(data), mode) == -1 ||
	    chown_to_account(path, user) == -1) {
		cli_error("cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int
proc_write_config(const struct deploy *dp, yaml_node_t *role,
    const struct proc_dir *pd, const char *user, int merge)
{
	const struct desc *d = &dp->desc;
	yaml_node_t *gens =
	    desc_get(d, desc_get(d, role, "configWriter"), "generators");
	size_t i, j;
	int ret = -1;

	for (i = 0; i < desc_len(gens); i++) {
		yaml_node_t *g = desc_at(d, gens, i);
		yaml_node_t *inc = desc_get(d, g, "includedParams");
		const char *fmt = desc_str(d, g, "configFormat");
		const char *into = desc_str(d, g, "mergeInto");
		char path[PATH_MAX + 256], *text = NULL, *target = NULL;
		json_t *obj = json_object();
		int ok = -1;

		for (j = 0; obj != NULL && j < desc_len(inc); j++) {
			const char *pn =
			    (const char *)desc_at(d, inc, j)->data.scalar.value;
			yaml_node_t *p = desc_param(d, pn);
			const char *type = desc_str(d, p, "type");
			const char *key = desc_str(d, p, "configName");
			const char *val = deploy_param(dp, pn);

			if (*val == '\0')
				continue;
			if (strcmp(type, "password") == 0) {
				/* Given to the server as a script printing it.
				 */
				char pw[PATH_MAX + 300], cmd[PATH_MAX + 320];
				snprintf(pw, sizeof(pw), "%s/%s", pd->path, pn);
				if (write_owned(pw, val, 0600, user) == -1)
					goto next;
				snprintf(cmd, sizeof(cmd), "/bin/cat %s", pw);
				json_object_set_new(obj, key, json_string(cmd));
			} else if (strcmp(type, "port") == 0 ||
			    strcmp(type, "long") == 0) {
				json_object_set_new(
				    obj, key, json_integer(atoll(val)));
			} else {
				json_object_set_new(obj, key, json_string(val));
			}
		}
		if (obj == NULL)
			goto next;
		if (strcmp(fmt, "json") == 0) {
			text = json_dumps(obj, JSON_INDENT(4) | JSON_SORT_KEYS);
		} else {
			const char *k;
			json_t *v;
			size_t len = 0;
			FILE *m = open_memstream(&text, &len);
			if (m == NULL)
				goto next;
			json_object_foreach(obj, k, v)
			{
				if (json_is_integer(v))
					fprintf(m, "%s=%lld\n", k,
					    (long long)json_integer_value(v));
				else
					fprintf(m, "%s=%s\n", k,
					    json_string_value(v));
			}
			fclose(m);
		}
		snprintf(path, sizeof(path), "%s/%s", pd->path,
		    desc_str(d, g, "filename"));
		if (text == NULL || write_owned(path, text, 0600, user) == -1)
			goto next;
		if (merge && into != NULL) {
			if ((target = deploy_subst(dp, into)) == NULL ||
			    merge_json(target, obj) == -1)
				goto next;
		}
		ok = 0;
	next:
		if (text != NULL)
			freezero(text, strlen(text));
		free(target);
		json_decref(obj);
		if (ok == -1)
			goto out;
	}
	ret = 0;
out:
	return ret;
}

/* ------------------------------------------------------------------ */
/* runners */

void
strv_free(char **v)
{
	argv_free(v);
}

static int
strv_add(char ***v, size_t *n, char *s)
{
	char **nv;

	if (s == NULL)
		return -1;
	if ((nv = realloc(*v, (*n + 2) * sizeof(char *))) == NULL) {
		free(s);
		return -1;
	}
	*v = nv;
	nv[(*n)++] = s;
	nv[*n] = NULL;
	return 0;
}

static char *
strfmt(const char *k, const char *v)
{
	char *s;

	if (asprintf(&s, "%s=%s", k, v) == -1)
		return NULL;
	return s;
}

int
runner_build(const struct deploy *dp, yaml_node_t *runner,
    const struct proc_dir *pd, char ***argvp, char ***envp)
{
	const struct desc *d = &dp->desc;
	yaml_node_t *args = desc_get(d, runner, "args");
	yaml_node_t *env = desc_get(d, runner, "environmentVariables");
	const char *csd = json_string_value(json_object_get(dp->json, "csd"));
	char active[256], prog[PATH_MAX], defines[PATH_MAX];
	char **argv = NULL, **envv = NULL;
	size_t na = 0, ne = 0, i;
	int ret = -1;

	*argvp = *envp = NULL;
	if (parcel_require_active(d, active, sizeof(active)) == -1)
		goto out;
	snprintf(prog, sizeof(prog), "%s/%s", csd ? csd : ".",
	    desc_str(d, runner, "program"));
	if (access(prog, X_OK) == -1) {
		cli_error("runner %s: %s", prog, strerror(errno));
		goto out;
	}
	snprintf(defines, sizeof(defines), "%s/%s/meta/keytrustee_env.sh",
	    agent_parcels_root, active);
	if (strv_add(&argv, &na, strdup(prog)) == -1)
		goto out;
	for (i = 0; i < desc_len(args); i++)
		if (strv_add(&argv, &na,
			deploy_subst(dp,
			    (const char *)desc_at(d, args, i)
				->data.scalar.value)) == -1)
			goto out;
	if (strv_add(&envv, &ne,
		strdup("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/"
		       "bin:/sbin:/bin")) == -1 ||
	    strv_add(&envv, &ne, strdup("LC_ALL=C")) == -1 ||
	    strv_add(&envv, &ne, strfmt("CONF_DIR", pd->path)) == -1 ||
	    strv_add(&envv, &ne, strfmt("PARCELS_ROOT", agent_parcels_root)) ==
		-1 ||
	    strv_add(&envv, &ne, strfmt("PARCEL_DIRNAMES", active)) == -1 ||
	    strv_add(&envv, &ne, strfmt("SCM_DEFINES_SCRIPTS", defines)) ==
		-1 ||
	    strv_add(&envv, &ne, strfmt("HOST", agent_host)) == -1)
		goto out;
	if (env != NULL && env->type == YAML_MAPPING_NODE) {
		yaml_node_pair_t *p;
		for (p = env->data.mapping.pairs.start;
		     p < env->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(
			    (yaml_document_t *)&d->doc, p->key);
			yaml_node_t *v = yaml_document_get_node(
			    (yaml_document_t *)&d->doc, p->value);
			char *val = deploy_subst(
			    dp, (const char *)v->data.scalar.value);
			int r;
			if (val == NULL)
				goto out;
			r = strv_add(&envv, &ne,
			    strfmt((const char *)k->data.scalar.value, val));
			free(val);
			if (r == -1)
				goto out;
		}
	}
	*argvp = argv;
	*envp = envv;
	argv = envv = NULL;
	ret = 0;
out:
	argv_free(argv);
	argv_free(envv);
	return ret;
}

int
proc_record(const struct proc_dir *pd, const char *role, const char *command,
    pid_t pid, int exitcode, long started, long ended)
{
	char path[PATH_MAX + 16], *s = NULL;
	json_t *j;
	int ret = -1;

	j = json_pack("{s:i, s:s, s:s, s:s, s:I, s:I, s:s}", "seq", pd->seq,
	    "dir", pd->path, "role", role, "command", command, "pid",
	    (json_int_t)pid, "started", (json_int_t)started, "host",
	    agent_host);
	if (j == NULL)
		goto out;
	if (ended > 0) {
		json_object_set_new(j, "ended", json_integer(ended));
		json_object_set_new(j, "exit", json_integer(exitcode));
	}
	snprintf(path, sizeof(path), "%s/record.json", pd->path);
	if ((s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL ||
	    file_write_atomic(path, s, strlen(s), 0644) == -1)
		goto out;
	ret = 0;
out:
	free(s);
	json_decref(j);
	return ret;
}

int
proc_open_logs(
    const struct proc_dir *pd, const char *user, int *outfd, int *errfd)
{
	char path[PATH_MAX + 32];

	*outfd = *errfd = -1;
	snprintf(path, sizeof(path), "%s/logs/stdout.log", pd->path);
	if ((*outfd = open(
		 path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) == -1)
		goto fail;
	(void)chown_to_account(path, user);
	snprintf(path, sizeof(path), "%s/logs/stderr.log", pd->path);
	if ((*errfd = open(
		 path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) == -1)
		goto fail;
	(void)chown_to_account(path, user);
	return 0;
fail:
	cli_error("cannot open %s: %s", path, strerror(errno));
	if (*outfd != -1)
		close(*outfd);
	*outfd = -1;
	return -1;
}

int
proc_spawn(const struct deploy *dp, yaml_node_t *role, yaml_node_t *runner,
    const char *user, const struct proc_dir *pd, pid_t *pidp)
{
	struct spawn_opts o = {0};
	char **argv = NULL, **envv = NULL;
	int outfd = -1, errfd = -1, ret = -1;

	(void)role;
	if (runner_build(dp, runner, pd, &argv, &envv) == -1 ||
	    proc_open_logs(pd, user, &outfd, &errfd) == -1)
		goto out;
	o.envp = envv;
	o.runas = strcmp(user, "root") == 0 ? NULL : user;
	o.cwd = pd->path;
	o.setsid = 1;
	if (spawn_start(argv, &o, outfd, errfd, pidp) == -1) {
		cli_error("cannot start %s: %s", argv[0], strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (outfd != -1)
		close(outfd);
	if (errfd != -1)
		close(errfd);
	argv_free(argv);
	argv_free(envv);
	return ret;
}

int
proc_run_command(const struct deploy *dp, yaml_node_t *role, yaml_node_t *cmd,
    int *exitp, struct proc_dir *pd)
{
	const struct desc *d = &dp->desc;
	const char *rname = desc_str(d, role, "name");
	const char *cname = desc_str(d, cmd, "name");
	const char *user = desc_run_as(d, role, cmd);
	long started = (long)time(NULL);
	pid_t pid;
	int st;

	if (proc_dir_make(pd, rname, user) == -1 ||
	    proc_write_config(dp, role, pd, user, 0) == -1 ||
	    proc_spawn(dp, role, desc_get(d, cmd, "commandRunner"), user, pd,
		&pid) == -1)
		return -1;
	proc_record(pd, rname, cname, pid, 0, started, 0);
	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR)
			return -1;
	*exitp = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	proc_record(pd, rname, cname, pid, *exitp, started, (long)time(NULL));
	return 0;
}

/* KT_CONFDIR of the role's backup command (malloc'd); NULL: it has none. */
static char *
role_backup_confdir(const struct deploy *dp, yaml_node_t *role)
{
	const struct desc *d = &dp->desc;
	yaml_node_t *cmd =
	    desc_find(d, desc_get(d, role, "commands"), BACKUP_ROLE_COMMAND);
	yaml_node_t *env = desc_get(
	    d, desc_get(d, cmd, "commandRunner"), "environmentVariables");
	const char *v = desc_str(d, env, "KT_CONFDIR");

	return v != NULL ? deploy_subst(dp, v) : NULL;
}

json_t *
role_backup_status(
    const struct deploy *dp, yaml_node_t *role, char **confdirp)
{
	if ((*confdirp = role_backup_confdir(dp, role)) == NULL) {
		errno = ENOENT;
		return NULL;
	}
	return backupstat_load(*confdirp);
}
