/*
 * pgcluster-init.c - a new cluster for ktadmin db --bootstrap: ROOT checked
 * and made for the service account, initdb, our settings and pg_hba.conf,
 * the server's database; and all of it undone when a step fails.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "log.h"
#include "pgcluster.h"
#include "replication.h"
#include "spawn.h"
#include "util.h"

/* Is the port free on 127.0.0.1?  Fails early instead of after initdb. */
static int
pgcluster_port_free(int port)
{
	struct sockaddr_in sin;
	int fd, r, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r = bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	close(fd);
	return r == 0 || errno != EADDRINUSE;
}

/* mkdir -p for ROOT's parents (0755), then ROOT itself (0700). */
static int
pgcluster_make_root(const struct pgcluster *d, int *created)
{
	char buf[PATH_MAX], *p;
	struct stat st;
	DIR *dp;
	struct dirent *de;

	*created = 0;
	if (stat(d->root, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			cli_error("%s exists and is not a directory", d->root);
			return -1;
		}
		if ((dp = opendir(d->root)) == NULL) {
			cli_error(
			    "cannot read %s: %s", d->root, strerror(errno));
			return -1;
		}
		while ((de = readdir(dp)) != NULL)
			if (strcmp(de->d_name, ".") != 0 &&
			    strcmp(de->d_name, "..") != 0)
				break;
		closedir(dp);
		if (de != NULL) {
			cli_error("%s exists and is not empty", d->root);
			cli_hint("give --pg-rootdir a new or empty directory");
			return -1;
		}
	} else {
		snprintf(buf, sizeof(buf), "%s", d->root);
		for (p = buf + 1; (p = strchr(p, '/')) != NULL; p++) {
			*p = '\0';
			if (dir_ensure(buf, 0755) == -1) {
				cli_error("cannot create %s: %s", buf,
				    strerror(errno));
				return -1;
			}
			*p = '/';
		}
		if (mkdir(d->root, 0700) == -1) {
			cli_error(
			    "cannot create %s: %s", d->root, strerror(errno));
			return -1;
		}
		*created = 1;
	}
	if (chmod(d->root, 0700) == -1 ||
	    chown_to_account(d->root, PGCLUSTER_ACCOUNT) == -1) {
		cli_error("cannot give %s to %s (mode 0700): %s", d->root,
		    PGCLUSTER_ACCOUNT, strerror(errno));
		return -1;
	}
	return 0;
}

/* May uid (with its groups) search directory st? */
static int
pgcluster_can_search(
    const struct stat *st, uid_t uid, const gid_t *groups, int ngroups)
{
	int i;

	if (st->st_uid == uid)
		return (st->st_mode & S_IXUSR) != 0;
	for (i = 0; i < ngroups; i++)
		if (st->st_gid == groups[i])
			return (st->st_mode & S_IXGRP) != 0;
	return (st->st_mode & S_IXOTH) != 0;
}

/*
 * As root: can the service account reach ROOT through every existing parent?
 * (Parents still to be made are made 0755; ROOT itself becomes its own.)
 */
static int
pgcluster_check_reach(const struct pgcluster *d)
{
	gid_t groups[256];
	int ngroups = (int)(sizeof(groups) / sizeof(groups[0]));
	char buf[PATH_MAX];
	const char *p;
	struct passwd *pw;
	struct stat st;

	if (d->runas == NULL)
		return 0;
	if ((pw = getpwnam(d->runas)) == NULL ||
	    getgrouplist(pw->pw_name, pw->pw_gid, groups, &ngroups) == -1) {
		cli_error("cannot look up the groups of %s", d->runas);
		return -1;
	}
	/* "/", "/a", "/a/b", ... up to ROOT's parent. */
	for (p = d->root; p != NULL; p = strchr(p + 1, '/')) {
		size_t n = p == d->root ? 1 : (size_t)(p - d->root);
		snprintf(buf, sizeof(buf), "%.*s", (int)n, d->root);
		if (stat(buf, &st) == -1) {
			if (errno == ENOENT)
				break;
			cli_error("cannot stat %s: %s", buf, strerror(errno));
			return -1;
		}
		if (!pgcluster_can_search(&st, pw->pw_uid, groups, ngroups)) {
			cli_error("the %s account cannot reach %s: %s is mode "
				  "%04o, owner uid %ld",
			    d->runas, d->root, buf,
			    (unsigned)(st.st_mode & 07777), (long)st.st_uid);
			cli_hint("give others search access (chmod o+x %s), "
				 "or put --pg-rootdir elsewhere",
			    buf);
			return -1;
		}
	}
	return 0;
}

static int
pgcluster_rm_entry(
    const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	if (ftw->level == 0)
		return 0;
	if (flag == FTW_DP)
		return rmdir(path) == -1 ? -1 : 0;
	return unlink(path) == -1 ? -1 : 0;
}

/* Undo a failed bootstrap: ROOT was new or empty, so all of it is ours. */
void
pgcluster_undo(const struct pgcluster *d, int started, int created)
{
	if (started && pgcluster_stop(d) == -1)
		return; /* leave a running cluster's files alone */
	if (nftw(d->root, pgcluster_rm_entry, 16, FTW_DEPTH | FTW_PHYS) == -1) {
		cli_warning("could not clean %s: %s", d->root, strerror(errno));
		return;
	}
	if (created)
		(void)rmdir(d->root);
}

int
pgcluster_pwfile_write(
    const struct pgcluster *d, struct pgcluster_pwfile *pf, const char *text)
{
	size_t len = strlen(text);
	uid_t uid;
	gid_t gid;
	int fd;

	snprintf(pf->dir, sizeof(pf->dir), "/tmp/ktadmin-db.XXXXXX");
	if (mkdtemp(pf->dir) == NULL) {
		cli_error(
		    "cannot make a temporary directory: %s", strerror(errno));
		return -1;
	}
	if (chown_to_account(pf->dir, PGCLUSTER_ACCOUNT) == -1 ||
	    path_join(pf->path, sizeof(pf->path), pf->dir, "pw") == -1 ||
	    (fd = open(pf->path,
		 O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600)) ==
		-1) {
		cli_error("cannot write a password file in %s: %s", pf->dir,
		    strerror(errno));
		rmdir(pf->dir);
		return -1;
	}
	if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
	    (d->runas != NULL &&
		(account_lookup(d->runas, &uid, &gid) == -1 ||
		    fchown(fd, uid, gid) == -1))) {
		cli_error("cannot write %s: %s", pf->path, strerror(errno));
		close(fd);
		pgcluster_pwfile_remove(pf);
		return -1;
	}
	close(fd);
	return 0;
}

void
pgcluster_pwfile_remove(struct pgcluster_pwfile *pf)
{
	unlink(pf->path);
	rmdir(pf->dir);
}

int
pgcluster_initdb(const struct pgcluster *d, const char *password)
{
	struct pgcluster_pwfile pf;
	char pwopt[PATH_MAX + 16];
	char *argv[] = {"initdb", "-D", (char *)d->root, "-U",
	    PGCLUSTER_ACCOUNT, "--auth-local=peer", "--auth-host=scram-sha-256",
	    "-E", "UTF8", "--locale=C.UTF-8", pwopt, NULL};
	struct spawn_result res;
	int ret = -1;

	/* The superuser password for initdb --pwfile. */
	if (pgcluster_pwfile_write(d, &pf, password) == -1)
		return -1;
	snprintf(pwopt, sizeof(pwopt), "--pwfile=%s", pf.path);
	if (pgcluster_run(d, argv, NULL, &res) == -1)
		goto out;
	if (res.status != 0 && res.err != NULL &&
	    strstr(res.err, "locale") != NULL) {
		/* No C.UTF-8 here: the plain C locale, still UTF-8 encoded. */
		spawn_result_free(&res);
		argv[9] = "--locale=C";
		if (pgcluster_run(d, argv, NULL, &res) == -1)
			goto out;
	}
	if (res.status != 0)
		pgcluster_failed(
		    &res, "initdb failed in %s (exit %d)", d->root, res.status);
	else {
		spawn_result_free(&res);
		ret = 0;
	}
out:
	pgcluster_pwfile_remove(&pf);
	return ret;
}

int
pgcluster_write_settings(const struct pgcluster *d, int port)
{
	char text[PATH_MAX * 4], dirs[PATH_MAX * 2 + 2];
	int n;

	if (pgcluster_sockdirs(d, dirs, sizeof(dirs)) == -1)
		return -1;
	n = snprintf(text, sizeof(text),
	    "\n# Added by ktadmin db --bootstrap: a private cluster for "
	    "keytrustee-server.\n"
	    "port = %d\n"
	    "listen_addresses = '%s'\n"
	    "unix_socket_directories = '%s'\n"
	    "synchronous_commit = on\n"
	    "password_encryption = scram-sha-256\n"
	    "# stderr: pg_ctl -l %s/%s, or the supervisor of "
	    "'ktadmin db --start'\n"
	    "log_destination = 'stderr'\n"
	    "log_line_prefix = '%%m [%%p] %%q%%u@%%d '\n"
	    "log_min_messages = warning\n"
	    "log_connections = off\n"
	    "# HA: the passive server's PostgreSQL streams from this one\n"
	    "# (ktadmin db --bootstrap --passive); its replication role is\n"
	    "# " REPLICATION_ROLE ".  A standby gone quiet is dropped after\n"
	    "# wal_sender_timeout, so that writes stop waiting for it.\n"
	    "wal_level = replica\n"
	    "max_wal_senders = 4\n"
	    "wal_keep_size = '1GB'\n"
	    "wal_sender_timeout = '5s'\n"
	    "hot_standby = on\n"
	    "wal_receiver_status_interval = '1s'\n"
	    "wal_receiver_timeout = '5s'\n",
	    port, d->listen, dirs, d->root, PGCLUSTER_LOG_FILE);
	if (n < 0 || (size_t)n >= sizeof(text)) {
		cli_error("%s: path too long", d->root);
		return -1;
	}
	return pgcluster_append(d, "postgresql.conf", text);
}

int
pgcluster_append(const struct pgcluster *d, const char *name, const char *text)
{
	char path[PATH_MAX];
	size_t n = strlen(text);
	int fd, ret = 0;

	if (path_join(path, sizeof(path), d->root, name) == -1) {
		cli_error("%s: path too long", d->root);
		return -1;
	}
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW)) ==
		-1 ||
	    write(fd, text, n) != (ssize_t)n || fsync(fd) == -1) {
		cli_error("cannot write %s: %s", path, strerror(errno));
		ret = -1;
	}
	if (fd != -1)
		close(fd);
	return ret;
}

/*
 * The passive connects from another host: replication as REPLICATION_ROLE,
 * with its password, from anywhere PostgreSQL listens (listen_addresses).
 */
int
pgcluster_write_hba(const struct pgcluster *d)
{
	return pgcluster_append(d, "pg_hba.conf",
	    "\n# Added by ktadmin db --bootstrap: the passive server's "
	    "replication.\n"
	    "host replication " REPLICATION_ROLE " all scram-sha-256\n");
}

int
pgcluster_create_database(PGconn *db, const char *name, const char *owner)
{
	char *ident = NULL, *role = NULL, *sql = NULL;
	int ret = -1;

	if ((ident = PQescapeIdentifier(db, name, strlen(name))) == NULL ||
	    (role = PQescapeIdentifier(db, owner, strlen(owner))) == NULL) {
		cli_error("%s", PQerrorMessage(db));
		goto out;
	}
	if (asprintf(&sql, "CREATE DATABASE %s OWNER %s ENCODING 'UTF8'", ident,
		role) == -1) {
		cli_error("out of memory");
		sql = NULL;
		goto out;
	}
	ret = pgcluster_sql(db, sql, "cannot create the %s database", name);
out:
	free(sql);
	PQfreemem(ident);
	PQfreemem(role);
	return ret;
}

int
pgcluster_create_server_database(int port, const char *password)
{
	char portstr[16];
	const char *const keys[] = {"host", "port", "dbname", "user",
	    "password", "application_name", "connect_timeout", NULL};
	const char *vals[] = {"127.0.0.1", portstr, "postgres",
	    PGCLUSTER_ACCOUNT, password, "ktadmin", "10", NULL};
	PGconn *db;
	int ret = -1;

	snprintf(portstr, sizeof(portstr), "%d", port);
	db = PQconnectdbParams(keys, vals, 0);
	if (PQstatus(db) != CONNECTION_OK) {
		cli_error("cannot connect to the new cluster");
		cli_detail_lines(PQerrorMessage(db));
	} else
		ret = pgcluster_create_database(
		    db, PGCLUSTER_DB_NAME, PGCLUSTER_ACCOUNT);
	PQfinish(db);
	return ret;
}

int
pgcluster_prepare(struct pgcluster *d, int port, int *created)
{
	int r;

	/* The unix socket path must fit in sun_path. */
	if (strlen(d->root) + sizeof("/.s.PGSQL.65535.lock") >
	    sizeof(((struct sockaddr_un *)0)->sun_path)) {
		cli_error("--pg-rootdir %s is too long for PostgreSQL's unix "
			  "socket (at most %zu characters)",
		    d->root,
		    sizeof(((struct sockaddr_un *)0)->sun_path) -
			sizeof("/.s.PGSQL.65535.lock"));
		return -1;
	}
	if ((r = pgcluster_is_cluster(d)) != 0) {
		if (r == 1) {
			cli_error(
			    "%s already holds a PostgreSQL cluster", d->root);
			cli_hint(
			    "start it with 'ktadmin db --start "
			    "--pg-rootdir %s', or choose another directory",
			    d->root);
		}
		return -1;
	}
	if (!pgcluster_port_free(port)) {
		cli_error("port %d on 127.0.0.1 is in use", port);
		cli_hint("choose another with --port");
		return -1;
	}
	if (pgcluster_check_reach(d) == -1 ||
	    pgcluster_make_root(d, created) == -1)
		return -1;
	return 0;
}
