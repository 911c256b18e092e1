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

/*
 * The newest BASE/<major>/bin that holds initdb, into bindir: its major, or
 * -1 when there is none.
 */
static long
pgbin_newest(const char *base, char *bindir, size_t len)
{
	DIR *dp;
	struct dirent *de;
	long best = -1;

	if ((dp = opendir(base)) == NULL)
		return -1;
	while ((de = readdir(dp)) != NULL) {
		char dir[PATH_MAX], *end;
		long v = strtol(de->d_name, &end, 10);
		if (end == de->d_name || *end != '\0' || v <= best)
			continue;
		if (snprintf(dir, sizeof(dir), "%s/%s/bin", base, de->d_name) >=
			(int)sizeof(dir) ||
		    strlen(dir) >= len)
			continue;
		if (pgbin_has_initdb(dir)) {
			best = v;
			snprintf(bindir, len, "%s", dir);
		}
	}
	closedir(dp);
	return best;
}

/*
 * Run from a parcel (PARCEL/bin/ktadmin), the PostgreSQL it bundles:
 * PARCEL/PG_DB/opt/postgres/<major>/bin (parcels/build.sh).
 */
static int
pgbin_parcel(char *bindir, size_t len)
{
	char exe[PATH_MAX], base[PATH_MAX + 32], *slash;
	ssize_t n;
	int i;

	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) <= 0)
		return -1;
	exe[n] = '\0';
	for (i = 0; i < 2; i++) {
		if ((slash = strrchr(exe, '/')) == NULL)
			return -1;
		*slash = '\0';
	}
	snprintf(base, sizeof(base), "%s/PG_DB/opt/postgres", exe);
	return pgbin_newest(base, bindir, len) == -1 ? -1 : 0;
}

/*
 * PG_BINDIR, else the parcel's own, else pg_config --bindir, else the
 * newest packaged version.
 */
int
pgbin_find(char *bindir, size_t len)
{
	char *const pgc[] = {"pg_config", "--bindir", NULL};
	struct spawn_opts o = {.capture = 1};
	struct spawn_result res;
	const char *env = getenv("PG_BINDIR");

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
	if (pgbin_parcel(bindir, len) == 0)
		return 0;
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
	if (pgbin_newest("/usr/lib/postgresql", bindir, len) == -1) {
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
