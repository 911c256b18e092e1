/*
 * replication.c - HA between the active and the passive server's PostgreSQL:
 * the active's replication role and its password file, the passive's base
 * backup and standby settings, and synchronous replication, which makes
 * every write on the active wait until the passive has applied it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "conf.h"
#include "dbrole.h"
#include "log.h"
#include "pgcluster.h"
#include "replication.h"
#include "spawn.h"
#include "util.h"

/* Its password set as dbrole.c sets one: only the SCRAM verifier is sent. */
int
replication_create_role(PGconn *db, const char *password)
{
	char err[1024];

	if (pgcluster_sql(db, "CREATE ROLE " REPLICATION_ROLE " REPLICATION",
		"cannot create the %s role", REPLICATION_ROLE) == -1)
		return -1;
	if (dbrole_set_password(
		db, REPLICATION_ROLE, password, err, sizeof(err)) == -1) {
		cli_error("cannot create the %s role", REPLICATION_ROLE);
		cli_detail_lines(err);
		return -1;
	}
	return 0;
}

int
replication_write_pwfile(const struct kt_conf *c, const char *password)
{
	char path[PATH_MAX], line[128];
	int n;

	n = snprintf(line, sizeof(line), "%s\n", password);
	if (path_join(path, sizeof(path), c->confdir, REPLICATION_PWFILE) ==
		-1 ||
	    file_write_atomic(path, line, (size_t)n, 0600) == -1 ||
	    conf_chown(c, path) == -1) {
		cli_error("cannot write %s: %s", path, strerror(errno));
		OPENSSL_cleanse(line, sizeof(line));
		return -1;
	}
	OPENSSL_cleanse(line, sizeof(line));
	return 0;
}

int
replication_read_pwfile(const struct kt_conf *c, char *out, size_t outlen)
{
	char path[PATH_MAX], err[512], *text = NULL;
	size_t len;
	int ret = -1;

	if (path_join(path, sizeof(path), c->confdir, REPLICATION_PWFILE) ==
	    -1) {
		cli_error("%s: path too long", c->confdir);
		return -1;
	}
	if (!file_exists(path)) {
		cli_error("%s is missing", path);
		cli_detail(
		    "the active server's 'ktadmin db --bootstrap' writes "
		    "it; the passive needs a copy");
		cli_hint("copy the active's config dir here as the guide does: "
			 "rsync -zcv --exclude .ssl ACTIVE:%s PASSIVE:%s/..",
		    c->confdir, c->confdir);
		return -1;
	}
	if (key_file_perm_ok(path, err, sizeof(err)) == -1) {
		cli_error("%s", err);
		return -1;
	}
	if (file_read(path, 1024, &text, &len) == -1) {
		cli_error("cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		text[--len] = '\0';
	if (len == 0 || len >= outlen || !hex_valid(text, len)) {
		cli_error("%s does not hold a replication password", path);
		goto out;
	}
	memcpy(out, text, len + 1);
	ret = 0;
out:
	freezero(text, len);
	return ret;
}

/* The password goes to pg_basebackup in a temporary passfile. */
int
replication_basebackup(
    const struct pgcluster *d, const char *host, int mport, const char *replpw)
{
	struct pgcluster_pwfile pf;
	char portstr[16], line[256], envpass[PATH_MAX + 16];
	char *env[] = {envpass, NULL};
	char *argv[] = {"pg_basebackup", "-D", (char *)d->root, "-h",
	    (char *)host, "-p", portstr, "-U", REPLICATION_ROLE, "-X", "stream",
	    "-c", "fast", "-w", NULL};
	struct spawn_result res;
	int r;

	snprintf(portstr, sizeof(portstr), "%d", mport);
	snprintf(line, sizeof(line), "*:*:*:%s:%s", REPLICATION_ROLE, replpw);
	r = pgcluster_pwfile_write(d, &pf, line);
	OPENSSL_cleanse(line, sizeof(line));
	if (r == -1)
		return -1;
	snprintf(envpass, sizeof(envpass), "PGPASSFILE=%s", pf.path);
	r = pgcluster_run(d, argv, env, &res);
	pgcluster_pwfile_remove(&pf);
	if (r == -1)
		return -1;
	if (res.status == 0) {
		spawn_result_free(&res);
		return 0;
	}
	pgcluster_failed(&res, "pg_basebackup from %s port %d failed (exit %d)",
	    host, mport, res.status);
	cli_hint("the active's PostgreSQL must be running and listen where "
		 "this host reaches it (listen_addresses), and %s must be the "
		 "active's (copy its config dir)",
	    REPLICATION_PWFILE);
	return -1;
}

int
replication_make_standby(const struct pgcluster *d, int port, const char *host,
    int mport, const char *replpw)
{
	char path[PATH_MAX], text[PATH_MAX * 4 + 512], dirs[PATH_MAX * 2 + 2];
	uid_t uid;
	gid_t gid;
	int fd, n, ret;

	if (pgcluster_sockdirs(d, dirs, sizeof(dirs)) == -1)
		return -1;
	n = snprintf(text, sizeof(text),
	    "\n# Added by ktadmin db --bootstrap --passive: a streaming "
	    "replica of\n# the active server's PostgreSQL.\n"
	    "port = %d\n"
	    "listen_addresses = '%s'\n"
	    "unix_socket_directories = '%s'\n"
	    "primary_conninfo = 'host=%s port=%d user=%s password=%s "
	    "application_name=%s'\n"
	    "hot_standby = on\n",
	    port, d->listen, dirs, host, mport, REPLICATION_ROLE, replpw,
	    REPLICATION_STANDBY_NAME);
	if (n < 0 || (size_t)n >= sizeof(text)) {
		cli_error("%s: path too long", d->root);
		return -1;
	}
	ret = pgcluster_append(d, "postgresql.conf", text);
	OPENSSL_cleanse(text, sizeof(text));
	if (ret == -1)
		return -1;
	if (path_join(path, sizeof(path), d->root, "standby.signal") == -1 ||
	    (fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		 0600)) == -1) {
		cli_error("cannot create %s/standby.signal: %s", d->root,
		    strerror(errno));
		return -1;
	}
	if (d->runas != NULL &&
	    (account_lookup(d->runas, &uid, &gid) == -1 ||
		fchown(fd, uid, gid) == -1)) {
		cli_error("cannot give %s to %s: %s", path, d->runas,
		    strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/*
 * The guide's "Enable Synchronous Replication in HA mode", on the active:
 * the passive (application_name keytrustee_passive) becomes its
 * synchronous standby.  ALTER SYSTEM writes postgresql.auto.conf, which a
 * reload applies.
 */
int
replication_set_sync(PGconn *db, int on, const char *what)
{
	static const char *const set[] = {
	    "ALTER SYSTEM SET synchronous_standby_names = "
	    "'" REPLICATION_STANDBY_NAME "'",
	    "ALTER SYSTEM SET synchronous_commit = remote_apply"};
	static const char *const reset[] = {
	    "ALTER SYSTEM RESET synchronous_standby_names",
	    "ALTER SYSTEM RESET synchronous_commit"};
	PGresult *res;
	int i;

	/*
	 * remote_apply: a write is acknowledged once the passive has applied
	 * it, so a client that reads it back from the passive finds it.
	 */
	for (i = 0; i < 2; i++)
		if (pgcluster_sql(db, on ? set[i] : reset[i],
			"%s: cannot change the synchronous replication "
			"settings",
			what) == -1)
			return -1;
	res = PQexec(db, "SELECT pg_reload_conf()");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_error("%s: cannot reload the configuration", what);
		cli_detail_lines(PQresultErrorMessage(res));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

int
replication_streaming(PGconn *db)
{
	PGresult *res;
	int r = -1;

	res = PQexec(db,
	    "SELECT count(*) FROM pg_stat_replication WHERE "
	    "application_name = '" REPLICATION_STANDBY_NAME
	    "' AND state = 'streaming'");
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		r = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
	PQclear(res);
	return r;
}
