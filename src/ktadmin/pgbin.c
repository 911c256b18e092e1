/*
 * pgbin.c - where PostgreSQL's programs are and how they run: the ones
 * ktadmin db runs the cluster with, and the pg_dump and psql that ktadmin
 * restore dumps and loads a database with.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pgbin.h"
#include "spawn.h"
#include "util.h"

static int
pgbin_has_initdb(const char *dir)
{
	char path[PATH_MAX];

	return path_join(path, sizeof(path), dir, "initdb") == 0 &&
	    access(path, X_OK) == 0;
}

/* PG_BINDIR, else pg_config --bindir, else the newest packaged version. */
int
pgbin_find(char *bindir, size_t len)
{
	char *const pgc[] = {"pg_config", "--bindir", NULL};
	struct spawn_opts o = {.capture = 1};
	struct spawn_result res;
	const char *env = getenv("PG_BINDIR");
	DIR *dp;
	struct dirent *de;
	long best = -1;

	if (env != NULL && *env != '\0') {
		if (!pgbin_has_initdb(env)) {
			cli_error("PG_BINDIR=%s has no initdb", env);
			cli_hint("point PG_BINDIR at PostgreSQL's bin "
				 "directory, or unset it");
			return -1;
		}
		snprintf(bindir, len, "%s", env);
		return 0;
	}
	if (spawn_run(pgc, &o, &res) == 0) {
		if (res.status == 0 && res.out != NULL) {
			res.out[strcspn(res.out, "\r\n")] = '\0';
			if (*res.out == '/' && pgbin_has_initdb(res.out) &&
			    strlen(res.out) < len) {
				snprintf(bindir, len, "%s", res.out);
				spawn_result_free(&res);
				return 0;
			}
		}
		spawn_result_free(&res);
	}
	if ((dp = opendir("/usr/lib/postgresql")) != NULL) {
		while ((de = readdir(dp)) != NULL) {
			char dir[PATH_MAX], *end;
			long v = strtol(de->d_name, &end, 10);
			if (end == de->d_name || *end != '\0' || v <= best)
				continue;
			snprintf(dir, sizeof(dir), "/usr/lib/postgresql/%s/bin",
			    de->d_name);
			if (pgbin_has_initdb(dir)) {
				best = v;
				snprintf(bindir, len, "%s", dir);
			}
		}
		closedir(dp);
	}
	if (best == -1) {
		cli_error("cannot find the PostgreSQL server programs (initdb, "
			  "pg_ctl, postgres)");
		cli_hint(
		    "install the postgresql package (scripts/install-deps.sh)"
		    " or set PG_BINDIR");
		return -1;
	}
	return 0;
}

void
pgbin_env(struct pgbin_env *e, const char *bindir, char *const *extra)
{
	size_t n = 0;

	snprintf(e->path, sizeof(e->path), "PATH=%s:/usr/bin:/bin", bindir);
	e->envp[n++] = e->path;
	e->envp[n++] = "LC_ALL=C";
	for (; extra != NULL && *extra != NULL && n < 2 + PGBIN_ENV_EXTRA;
	     extra++)
		e->envp[n++] = *extra;
	e->envp[n] = NULL;
}

int
pgbin_run(const char *bindir, const char *runas, char **argv,
    char *const *extra, struct spawn_result *res)
{
	struct spawn_opts o = {0};
	struct pgbin_env e;
	char prog[PATH_MAX];
	char *saved = argv[0];
	int r;

	if (path_join(prog, sizeof(prog), bindir, argv[0]) == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	pgbin_env(&e, bindir, extra);
	o.envp = e.envp;
	o.runas = runas;
	o.cwd = "/";
	o.capture = 1;
	argv[0] = prog;
	r = spawn_run(argv, &o, res);
	argv[0] = saved;
	if (r == -1)
		cli_error("cannot run %s: %s", prog, strerror(errno));
	return r;
}
