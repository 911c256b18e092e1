/*
 * pgcluster.c - the server's private PostgreSQL cluster, as ktadmin db
 * starts, stops and checks it (and ktadmin promote and restore), and
 * keytrustee.conf's side of it.  PostgreSQL refuses to run as root, so when
 * ktadmin runs as root every PostgreSQL program runs as the keytrustee
 * service account; otherwise as the invoking user.  pgcluster-init.c makes
 * a new cluster.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "conf.h"
#include "db.h"
#include "dbrole.h"
#include "log.h"
#include "pgbin.h"
#include "pgcluster.h"
#include "spawn.h"
#include "util.h"

/* How long pg_ctl waits for a start, stop or promote. */
#define PGCLUSTER_WAIT_SECS "60"

/* "error: <fmt ...>" for the two reports below. */
static void __attribute__((format(printf, 1, 0)))
pgcluster_verror(const char *fmt, va_list ap)
{
	char msg[PATH_MAX + 256];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	cli_error("%s", msg);
}

int
pgcluster_failed(struct spawn_result *res, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pgcluster_verror(fmt, ap);
	va_end(ap);
	cli_detail_lines(res->err);
	if (res->err == NULL || res->errlen == 0)
		cli_detail_lines(res->out);
	spawn_result_free(res);
	return -1;
}

int
pgcluster_sql(PGconn *db, const char *sql, const char *fmt, ...)
{
	PGresult *res = PQexec(db, sql);
	va_list ap;

	if (PQresultStatus(res) == PGRES_COMMAND_OK) {
		PQclear(res);
		return 0;
	}
	va_start(ap, fmt);
	pgcluster_verror(fmt, ap);
	va_end(ap);
	cli_detail_lines(PQresultErrorMessage(res));
	PQclear(res);
	return -1;
}

/* The last lines of ROOT/postgresql.log, where a failed start says why. */
static void
pgcluster_print_log_tail(const struct pgcluster *d)
{
	char path[PATH_MAX], *text = NULL, *p;
	size_t len;
	int lines = 0;

	if (path_join(path, sizeof(path), d->root, PGCLUSTER_LOG_FILE) == -1 ||
	    file_read(path, 4 * 1024 * 1024, &text, &len) == -1)
		return;
	for (p = text + len; p > text; p--)
		if (p[-1] == '\n' && p != text + len && ++lines == 6)
			break;
	cli_detail_lines(p);
	free(text);
}

int
pgcluster_setup(struct pgcluster *d, const char *rootdir, int port)
{
	uid_t uid;
	gid_t gid;
	size_t n;

	d->port = port;
	if (*rootdir == '\0') {
		cli_error("--pg-rootdir is empty");
		return 2;
	}
	if (*rootdir == '/') {
		n = (size_t)snprintf(d->root, sizeof(d->root), "%s", rootdir);
	} else {
		char cwd[PATH_MAX];
		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			cli_error("cannot get the current directory: %s",
			    strerror(errno));
			return 1;
		}
		n = (size_t)snprintf(
		    d->root, sizeof(d->root), "%s/%s", cwd, rootdir);
	}
	if (n >= sizeof(d->root)) {
		cli_error("--pg-rootdir: path too long");
		return 2;
	}
	while (n > 1 && d->root[n - 1] == '/')
		d->root[--n] = '\0';
	/* It goes into postgresql.conf as a quoted string. */
	if (strpbrk(d->root, "'\\\n\r") != NULL) {
		cli_error("--pg-rootdir: \"%s\" holds a quote, backslash or "
			  "newline",
		    rootdir);
		cli_hint("choose a plainer path");
		return 2;
	}
	if (geteuid() == 0) {
		if (account_lookup(PGCLUSTER_ACCOUNT, &uid, &gid) == -1) {
			cli_error("the %s service account does not exist",
			    PGCLUSTER_ACCOUNT);
			cli_detail("PostgreSQL refuses to run as root; it runs "
				   "as %s",
			    PGCLUSTER_ACCOUNT);
			cli_hint("run kt-account.sh as root (scripts/ in the "
				 "source, libexec/ in the parcel): it makes %s "
				 "with its home %s",
			    PGCLUSTER_ACCOUNT, KT_DEFAULT_HOME);
			return 1;
		}
		d->runas = PGCLUSTER_ACCOUNT;
	}
	if (pgbin_find(d->bindir, sizeof(d->bindir)) == -1)
		return 1;
	pgcluster_set_listen(d, NULL);
	pgcluster_read_sockdir(d);
	return 0;
}

void
pgcluster_set_listen(struct pgcluster *d, const char *also)
{
	/* Loopback always: DB_CONNECT goes through 127.0.0.1. */
	snprintf(d->listen, sizeof(d->listen), "%s%s%s",
	    also != NULL && strcmp(also, "*") == 0 ? "" : "127.0.0.1",
	    also != NULL && strcmp(also, "*") != 0 ? "," : "",
	    also != NULL ? also : "");
}

int
pgcluster_run(const struct pgcluster *d, char **argv, char *const *env,
    struct spawn_result *res)
{
	return pgbin_run(d->bindir, d->runas, argv, env, res);
}

/*
 * pg_ctl's argv for the cluster: its exit status, -1 (reported) when it did
 * not run.  Its output stays in res only when the status is not 0.
 */
static int
pgcluster_ctl(const struct pgcluster *d, char **argv, struct spawn_result *res)
{
	if (pgcluster_run(d, argv, NULL, res) == -1)
		return -1;
	if (res->status == 0)
		spawn_result_free(res);
	return res->status;
}

int
pgcluster_is_cluster(const struct pgcluster *d)
{
	char path[PATH_MAX];
	struct stat st;

	if (path_join(path, sizeof(path), d->root, "PG_VERSION") == -1) {
		cli_error("%s: path too long", d->root);
		return -1;
	}
	if (stat(path, &st) == 0)
		return 1;
	if (errno == ENOENT || errno == ENOTDIR)
		return 0;
	cli_error("cannot read %s: %s", d->root, strerror(errno));
	if (errno == EACCES)
		cli_hint("run as root or as the %s account", PGCLUSTER_ACCOUNT);
	return -1;
}

int
pgcluster_require(const struct pgcluster *d)
{
	int r = pgcluster_is_cluster(d);

	if (r == 0) {
		cli_error(
		    "%s is not a PostgreSQL cluster (no PG_VERSION)", d->root);
		cli_hint("create one with 'ktadmin db --bootstrap --pg-rootdir "
			 "%s'",
		    d->root);
	}
	return r == 1 ? 0 : -1;
}

/* The pid and port in ROOT/postmaster.pid (lines 1 and 4). */
void
pgcluster_postmaster_info(const struct pgcluster *d, long *pid, long *port)
{
	char path[PATH_MAX], line[PATH_MAX + 16];
	FILE *fp;
	int i;

	*pid = *port = 0;
	if (path_join(path, sizeof(path), d->root, "postmaster.pid") == -1 ||
	    (fp = fopen(path, "re")) == NULL)
		return;
	for (i = 1; i <= 4 && fgets(line, sizeof(line), fp) != NULL; i++) {
		if (i == 1)
			*pid = strtol(line, NULL, 10);
		else if (i == 4)
			*port = strtol(line, NULL, 10);
	}
	fclose(fp);
}

int
pgcluster_status(const struct pgcluster *d)
{
	char *argv[] = {"pg_ctl", "status", "-D", (char *)d->root, NULL};
	struct spawn_result res;
	int st;

	if (pgcluster_require(d) == -1)
		return -1;
	if ((st = pgcluster_ctl(d, argv, &res)) == 3)
		spawn_result_free(&res);
	else if (st > 0)
		st = pgcluster_failed(&res,
		    "cannot get the status of PostgreSQL in %s (pg_ctl exit "
		    "%d)",
		    d->root, st);
	return st;
}

int
pgcluster_start(const struct pgcluster *d)
{
	char logpath[PATH_MAX], opts[PATH_MAX + 64];
	char *argv[] = {"pg_ctl", "start", "-w", "-t", PGCLUSTER_WAIT_SECS,
	    "-D", (char *)d->root, "-l", logpath, NULL, NULL, NULL};
	struct spawn_result res;
	size_t n = 0;
	int st;

	if (path_join(logpath, sizeof(logpath), d->root, PGCLUSTER_LOG_FILE) ==
	    -1)
		return -1;
	/*
	 * pg_ctl hands -o to postgres through a shell: digits, and the root
	 * dir single-quoted (pgcluster_setup refuses quotes in it).
	 */
	opts[0] = '\0';
	if (d->port != 0)
		n = (size_t)snprintf(opts, sizeof(opts), "-p %d ", d->port);
	if (pgcluster_sockdir_ensure(d) == -1)
		snprintf(opts + n, sizeof(opts) - n,
		    "-c 'unix_socket_directories=%s'", d->root);
	if (opts[0] != '\0') {
		argv[9] = "-o";
		argv[10] = opts;
	}
	if ((st = pgcluster_ctl(d, argv, &res)) > 0) {
		pgcluster_failed(
		    &res, "PostgreSQL did not start in %s", d->root);
		pgcluster_print_log_tail(d);
		return -1;
	}
	return st;
}

int
pgcluster_stop(const struct pgcluster *d)
{
	char *argv[] = {"pg_ctl", "stop", "-m", "fast", "-w", "-t",
	    PGCLUSTER_WAIT_SECS, "-D", (char *)d->root, NULL};
	struct spawn_result res;
	int st;

	if ((st = pgcluster_ctl(d, argv, &res)) > 0)
		return pgcluster_failed(
		    &res, "cannot stop PostgreSQL in %s", d->root);
	return st;
}

int
pgcluster_promote(const struct pgcluster *d)
{
	char *argv[] = {"pg_ctl", "promote", "-w", "-t", PGCLUSTER_WAIT_SECS,
	    "-D", (char *)d->root, NULL};
	struct spawn_result res;
	int st;

	if ((st = pgcluster_ctl(d, argv, &res)) > 0)
		return pgcluster_failed(
		    &res, "pg_ctl promote failed in %s (exit %d)", d->root, st);
	return st;
}

/* Become postgres itself, so that a supervisor sees the real pid. */
int
pgcluster_exec(const struct pgcluster *d)
{
	char prog[PATH_MAX], portstr[16], sockopt[PATH_MAX + 32];
	char *argv[] = {
	    prog, "-D", (char *)d->root, NULL, NULL, NULL, NULL, NULL};
	struct pgbin_env e;
	struct passwd *pw;
	int n = 3;
	/*
	 * Under a service manager that waits for readiness (systemd's
	 * Type=notify, keytrustee-db.service) PostgreSQL says when it
	 * accepts connections: its notify socket is the one variable of
	 * ours it keeps.
	 */
	char *notify[] = {NULL, NULL};

	for (char **ev = environ; ev != NULL && *ev != NULL; ev++)
		if (strncmp(*ev, "NOTIFY_SOCKET=", 14) == 0)
			notify[0] = *ev;
	if (path_join(prog, sizeof(prog), d->bindir, "postgres") == -1) {
		cli_error("%s: path too long", d->bindir);
		return 1;
	}
	if (d->port != 0) {
		snprintf(portstr, sizeof(portstr), "%d", d->port);
		argv[n++] = "-p";
		argv[n++] = portstr;
	}
	if (pgcluster_sockdir_ensure(d) == -1) {
		snprintf(sockopt, sizeof(sockopt), "unix_socket_directories=%s",
		    d->root);
		argv[n++] = "-c";
		argv[n++] = sockopt;
	}
	if (d->runas != NULL) {
		if ((pw = getpwnam(d->runas)) == NULL) {
			cli_error("no such account: %s", d->runas);
			return 1;
		}
		if (initgroups(pw->pw_name, pw->pw_gid) == -1 ||
		    setgid(pw->pw_gid) == -1 || setuid(pw->pw_uid) == -1 ||
		    setuid(0) != -1) {
			cli_error("cannot switch to %s: %s", d->runas,
			    strerror(errno));
			return 1;
		}
	}
	if (chdir("/") == -1) {
		cli_error("chdir /: %s", strerror(errno));
		return 1;
	}
	fflush(NULL);
	closefrom(STDERR_FILENO + 1);
	pgbin_env(&e, d->bindir, notify);
	execve(prog, argv, e.envp);
	cli_error("cannot execute %s: %s", prog, strerror(errno));
	return 1;
}

/* --- keytrustee.conf: DB_CONNECT and DB_PORT ---------------------------- */

void
pgcluster_conf_warn(const char *msg)
{
	cli_warning("%s", msg);
}

int
pgcluster_conf_password(const struct kt_conf *c, char *out, size_t outlen)
{
	PQconninfoOption *opts, *o;
	int ret = -1;

	if (c->db_connect == NULL ||
	    (opts = PQconninfoParse(c->db_connect, NULL)) == NULL)
		return -1;
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL &&
		    strlen(o->val) < outlen) {
			snprintf(out, outlen, "%s", o->val);
			ret = 0;
		}
	for (o = opts; o->keyword != NULL; o++)
		if (o->val != NULL)
			OPENSSL_cleanse(o->val, strlen(o->val));
	PQconninfoFree(opts);
	return ret;
}

int
pgcluster_conf_save(const struct kt_conf *c)
{
	if (conf_save(c) == -1 || conf_chown(c, c->path) == -1) {
		cli_error("cannot write %s: %s", c->path, strerror(errno));
		return -1;
	}
	return 0;
}

int
pgcluster_conf_load(const char *confdir, struct kt_conf **c)
{
	char err[1024], *defdir = NULL;
	int ret = -1;

	if (confdir == NULL &&
	    (confdir = defdir = conf_default_dir()) == NULL) {
		cli_error("KEYTRUSTEE_HOME is too long");
		return -1;
	}
	if (conf_load(confdir, c, pgcluster_conf_warn, err, sizeof(err)) ==
	    -1) {
		cli_error("cannot read the configuration in %s", confdir);
		cli_detail_lines(err);
		goto out;
	}
	ret = 0;
out:
	free(defdir);
	return ret;
}

PGconn *
pgcluster_conf_db(const struct kt_conf *c)
{
	char err[1024];
	PGconn *db;

	if ((db = db_connect(c, err, sizeof(err))) == NULL) {
		cli_error("cannot connect to the database");
		cli_detail_lines(err);
		cli_hint("is it running?  'ktadmin db --status --pg-rootdir "
			 "DIR' tells");
	}
	return db;
}

PGconn *
pgcluster_conf_admin_db(const struct kt_conf *c, const char *what)
{
	char err[1024];
	PGconn *db;

	if ((db = dbrole_connect_admin(c, NULL, err, sizeof(err))) == NULL) {
		cli_error("%s: cannot connect to the database", what);
		cli_detail_lines(err);
		cli_hint("is PostgreSQL running? ktadmin db --status "
			 "--pg-rootdir DIR");
	}
	return db;
}

int
pgcluster_conf_connect(
    const char *confdir, struct kt_conf **c, PGconn **db, const char *what)
{
	int ret = -1;

	*c = NULL;
	*db = NULL;
	if (pgcluster_conf_load(confdir, c) == -1 ||
	    (*db = pgcluster_conf_admin_db(*c, what)) == NULL)
		goto out;
	ret = 0;
out:
	if (ret == -1) {
		conf_free(*c);
		*c = NULL;
	}
	return ret;
}
