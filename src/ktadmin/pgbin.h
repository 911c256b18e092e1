/* pgbin.h - PostgreSQL's programs: where they are and how they are run. */
#ifndef KTADMIN_PGBIN_H
#define KTADMIN_PGBIN_H

#include <limits.h>
#include <stddef.h>

struct spawn_result;

/* At most this many extra NAME=VALUE entries in their environment. */
#define PGBIN_ENV_EXTRA 4

/* Their environment: PATH with bindir first, LC_ALL=C, then the extras. */
struct pgbin_env {
	char path[PATH_MAX + 64];
	char *envp[2 + PGBIN_ENV_EXTRA + 1];
};

/*
 * PostgreSQL's bin directory: $PG_BINDIR, else `pg_config --bindir`, else
 * the newest /usr/lib/postgresql/N/bin.  Reports and returns -1 when none.
 */
int pgbin_find(char *bindir, size_t len);

/* e's environment for bindir's programs with extra (NULL-terminated). */
void pgbin_env(struct pgbin_env *e, const char *bindir, char *const *extra);

/*
 * Run the program argv[0] (a bare name) from bindir as runas (NULL: as
 * this user), in /, in pgbin_env with extra (NULL: none), capturing its
 * output into res.  0 when it ran (see res->status), -1 (reported) when it
 * could not be started.
 */
int pgbin_run(const char *bindir, const char *runas, char **argv,
    char *const *extra, struct spawn_result *res);

#endif
