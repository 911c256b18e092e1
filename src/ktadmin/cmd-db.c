/*
 * cmd-db.c - ktadmin db: bootstrap, start, stop and check the server's
 * private PostgreSQL cluster.  PostgreSQL refuses to run as root, so when
 * ktadmin runs as root every PostgreSQL program runs as the keytrustee
 * service account; otherwise as the invoking user.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
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
#include <openssl/rand.h>

#include "conf.h"
#include "db.h"
#include "ktadmin.h"
#include "log.h"
#include "spawn.h"
#include "util.h"

#define DB_NAME "keytrustee"
#define DB_PASSWORD_BYTES 32
#define DB_LOG_FILE "postgresql.log"
#define DB_START_TIMEOUT "60"

enum db_action {
	DB_NONE,
	DB_BOOTSTRAP,
	DB_START,
	DB_STOP,
	DB_STATUS,
	DB_SYNC_ON,
	DB_SYNC_OFF
};

static void
db_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ktadmin db --bootstrap --pg-rootdir DIR [--confdir DIR] "
	    "[--port N]\n"
	    "                  [--listen ADDRS]\n"
	    "       ktadmin db --bootstrap --passive --master-host HOST "
	    "[--master-port N]\n"
	    "                  --pg-rootdir DIR [--confdir DIR] [--port N] "
	    "[--listen ADDRS]\n"
	    "       ktadmin db --start --pg-rootdir DIR [--background] "
	    "[--port N]\n"
	    "       ktadmin db --stop --pg-rootdir DIR\n"
	    "       ktadmin db --status --pg-rootdir DIR\n"
	    "       ktadmin db --enable-synchronous-replication "
	    "--pg-rootdir DIR [--confdir DIR]\n"
	    "       ktadmin db --disable-synchronous-replication "
	    "--pg-rootdir DIR [--confdir DIR]\n\n"
	    "Manage the Key Trustee Server's private PostgreSQL cluster.  As "
	    "root,\n"
	    "PostgreSQL runs as the %s account.\n\n"
	    "      --bootstrap       create the cluster in DIR, start it, "
	    "create the\n"
	    "                        database, schema and the replication role "
	    "%s\n"
	    "                        (its password in CONFDIR/%s), and write\n"
	    "                        DB_CONNECT and DB_PORT into "
	    "keytrustee.conf; it\n"
	    "                        stays running\n"
	    "      --passive         with --bootstrap: make DIR a streaming "
	    "replica of\n"
	    "                        the active server's PostgreSQL "
	    "(pg_basebackup);\n"
	    "                        CONFDIR is a copy of the active's\n"
	    "      --master-host H   the active's PostgreSQL host\n"
	    "      --master-port N   its port (default %d)\n"
	    "      --listen ADDRS    with --bootstrap: also listen on ADDRS "
	    "(comma-\n"
	    "                        separated, or '*'), so that the other "
	    "HA host\n"
	    "                        reaches it; 127.0.0.1 always\n"
	    "      --start           run PostgreSQL in the foreground (for a "
	    "supervisor)\n"
	    "      --stop            stop it (fast shutdown)\n"
	    "      --status          exit 0 when running, 3 when not\n"
	    "      --enable-synchronous-replication\n"
	    "                        on the active: every write waits for the "
	    "passive\n"
	    "      --disable-synchronous-replication\n"
	    "                        on the active: writes no longer wait\n"
	    "      --pg-rootdir DIR  the PostgreSQL data directory\n"
	    "  -c, --confdir DIR     config dir (default "
	    "$KEYTRUSTEE_HOME/.keytrustee,\n"
	    "                        KEYTRUSTEE_HOME defaults to %s)\n"
	    "  -p, --port N          port (default %d at --bootstrap; "
	    "otherwise the\n"
	    "                        cluster's own)\n"
	    "  -b, --background      with --start: start in the background "
	    "and return\n"
	    "  -h, --help            show this help\n\n"
	    "PostgreSQL's programs are taken from $PG_BINDIR, else "
	    "`pg_config --bindir`,\n"
	    "else the newest /usr/lib/postgresql/*/bin.\n",
	    DB_ACCOUNT, DB_REPL_ROLE, DB_REPL_PWFILE, KT_DEFAULT_DB_PORT,
	    KT_DEFAULT_HOME, KT_DEFAULT_DB_PORT);
}

void
db_print_output(const struct spawn_result *res)
{
	cli_detail_lines(res->err);
	if (res->err == NULL || res->errlen == 0)
		cli_detail_lines(res->out);
}

/* The last lines of ROOT/postgresql.log, where a failed start says why. */
static void
db_print_log_tail(const struct db_ctx *d)
{
	char path[PATH_MAX], *text = NULL, *p;
	size_t len;
	int lines = 0;

	if (path_join(path, sizeof(path), d->root, DB_LOG_FILE) == -1 ||
	    file_read(path, 4 * 1024 * 1024, &text, &len) == -1)
		return;
	for (p = text + len; p > text; p--)
		if (p[-1] == '\n' && p != text + len && ++lines == 6)
			break;
	cli_detail_lines(p);
	free(text);
}

int
db_setup(struct db_ctx *d, const char *rootdir, int port)
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
		if (account_lookup(DB_ACCOUNT, &uid, &gid) == -1) {
			cli_error("the %s service account does not exist",
			    DB_ACCOUNT);
			cli_detail("PostgreSQL refuses to run as root; it runs "
				   "as %s",
			    DB_ACCOUNT);
			cli_hint(
			    "run scripts/install-deps.sh, or: useradd "
			    "--system --home-dir %s --shell /usr/sbin/nologin "
			    "%s",
			    KT_DEFAULT_HOME, DB_ACCOUNT);
			return 1;
		}
		d->runas = DB_ACCOUNT;
	}
	if (pgbin_find(d->bindir, sizeof(d->bindir)) == -1)
		return 1;
	snprintf(
	    d->pathenv, sizeof(d->pathenv), "PATH=%s:/usr/bin:/bin", d->bindir);
	d->envp[0] = d->pathenv;
	d->envp[1] = "LC_ALL=C";
	d->envp[2] = NULL; /* room for one more, e.g. PGPASSFILE */
	d->envp[3] = NULL;
	return 0;
}

/* Run one of PostgreSQL's programs from bindir, capturing its output. */
int
db_run(const struct db_ctx *d, char **argv, struct spawn_result *res)
{
	struct spawn_opts o = {0};
	char prog[PATH_MAX];
	char *saved = argv[0];
	int r;

	o.envp = d->envp;
	o.runas = d->runas;
	o.cwd = "/";
	o.capture = 1;
	if (path_join(prog, sizeof(prog), d->bindir, argv[0]) == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	argv[0] = prog;
	r = spawn_run(argv, &o, res);
	argv[0] = saved;
	if (r == -1)
		cli_error("cannot run %s: %s", prog, strerror(errno));
	return r;
}

/* 1 when ROOT holds a cluster, 0 when not, -1 (reported) when unknown. */
static int
db_is_cluster(const struct db_ctx *d)
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
		cli_hint("run as root or as the %s account", DB_ACCOUNT);
	return -1;
}

int
db_require_cluster(const struct db_ctx *d)
{
	int r = db_is_cluster(d);

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
static void
db_postmaster_info(const struct db_ctx *d, long *pid, long *port)
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

/* pg_ctl status: 0 running, 3 not running, -1 (reported) otherwise. */
int
db_pg_status(const struct db_ctx *d)
{
	char *argv[] = {"pg_ctl", "status", "-D", (char *)d->root, NULL};
	struct spawn_result res;
	int st;

	if (db_run(d, argv, &res) == -1)
		return -1;
	st = res.status;
	if (st != 0 && st != 3) {
		cli_error("cannot get the status of PostgreSQL in %s (pg_ctl "
			  "exit %d)",
		    d->root, st);
		db_print_output(&res);
		st = -1;
	}
	spawn_result_free(&res);
	return st;
}

static int
db_pg_start(const struct db_ctx *d)
{
	char logpath[PATH_MAX], portopt[32];
	char *argv[] = {"pg_ctl", "start", "-w", "-t", DB_START_TIMEOUT, "-D",
	    (char *)d->root, "-l", logpath, NULL, NULL, NULL};
	struct spawn_result res;
	int ret = 0;

	if (path_join(logpath, sizeof(logpath), d->root, DB_LOG_FILE) == -1)
		return -1;
	if (d->port != 0) {
		/* pg_ctl hands -o to postgres through a shell: digits only. */
		snprintf(portopt, sizeof(portopt), "-p %d", d->port);
		argv[9] = "-o";
		argv[10] = portopt;
	}
	if (db_run(d, argv, &res) == -1)
		return -1;
	if (res.status != 0) {
		cli_error("PostgreSQL did not start in %s", d->root);
		db_print_output(&res);
		db_print_log_tail(d);
		ret = -1;
	}
	spawn_result_free(&res);
	return ret;
}

static int
db_pg_stop(const struct db_ctx *d)
{
	char *argv[] = {"pg_ctl", "stop", "-m", "fast", "-w", "-t",
	    DB_START_TIMEOUT, "-D", (char *)d->root, NULL};
	struct spawn_result res;
	int ret = 0;

	if (db_run(d, argv, &res) == -1)
		return -1;
	if (res.status != 0) {
		cli_error("cannot stop PostgreSQL in %s", d->root);
		db_print_output(&res);
		ret = -1;
	}
	spawn_result_free(&res);
	return ret;
}

/* --- bootstrap ---------------------------------------------------------- */

static void
db_conf_warn(const char *msg)
{
	cli_warning("%s", msg);
}

/* Is the port free on 127.0.0.1?  Fails early instead of after initdb. */
static int
db_port_free(int port)
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
db_make_root(const struct db_ctx *d, int *created)
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
	    chown_to_account(d->root, DB_ACCOUNT) == -1) {
		cli_error("cannot give %s to %s (mode 0700): %s", d->root,
		    DB_ACCOUNT, strerror(errno));
		return -1;
	}
	return 0;
}

/* May uid (with its groups) search directory st? */
static int
db_can_search(
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
db_check_reach(const struct db_ctx *d)
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
		if (!db_can_search(&st, pw->pw_uid, groups, ngroups)) {
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
db_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	if (ftw->level == 0)
		return 0;
	if (flag == FTW_DP)
		return rmdir(path) == -1 ? -1 : 0;
	return unlink(path) == -1 ? -1 : 0;
}

/* Undo a failed bootstrap: ROOT was new or empty, so all of it is ours. */
static void
db_undo(const struct db_ctx *d, int started, int created)
{
	if (started && db_pg_stop(d) == -1)
		return; /* leave a running cluster's files alone */
	if (nftw(d->root, db_rm_entry, 16, FTW_DEPTH | FTW_PHYS) == -1) {
		cli_warning("could not clean %s: %s", d->root, strerror(errno));
		return;
	}
	if (created)
		(void)rmdir(d->root);
}

/* The superuser password for initdb --pwfile, in a private temp dir. */
static int
db_write_pwfile(const struct db_ctx *d, const char *password, char *dir,
    size_t dirlen, char *file, size_t filelen)
{
	size_t len = strlen(password);
	uid_t uid;
	gid_t gid;
	int fd;

	snprintf(dir, dirlen, "/tmp/ktadmin-db.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		cli_error(
		    "cannot make a temporary directory: %s", strerror(errno));
		return -1;
	}
	if (chown_to_account(dir, DB_ACCOUNT) == -1 ||
	    path_join(file, filelen, dir, "pw") == -1 ||
	    (fd = open(file,
		 O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600)) ==
		-1) {
		cli_error("cannot write a password file in %s: %s", dir,
		    strerror(errno));
		rmdir(dir);
		return -1;
	}
	if (write(fd, password, len) != (ssize_t)len ||
	    write(fd, "\n", 1) != 1 ||
	    (d->runas != NULL &&
		(account_lookup(d->runas, &uid, &gid) == -1 ||
		    fchown(fd, uid, gid) == -1))) {
		cli_error("cannot write %s: %s", file, strerror(errno));
		close(fd);
		unlink(file);
		rmdir(dir);
		return -1;
	}
	close(fd);
	return 0;
}

static int
db_initdb(const struct db_ctx *d, const char *pwfile)
{
	char pwopt[PATH_MAX + 16];
	char *argv[] = {"initdb", "-D", (char *)d->root, "-U", DB_ACCOUNT,
	    "--auth-local=peer", "--auth-host=scram-sha-256", "-E", "UTF8",
	    "--locale=C.UTF-8", pwopt, NULL};
	struct spawn_result res;
	int ret = -1;

	snprintf(pwopt, sizeof(pwopt), "--pwfile=%s", pwfile);
	if (db_run(d, argv, &res) == -1)
		return -1;
	if (res.status != 0 && res.err != NULL &&
	    strstr(res.err, "locale") != NULL) {
		/* No C.UTF-8 here: the plain C locale, still UTF-8 encoded. */
		spawn_result_free(&res);
		argv[9] = "--locale=C";
		if (db_run(d, argv, &res) == -1)
			return -1;
	}
	if (res.status != 0) {
		cli_error("initdb failed in %s (exit %d)", d->root, res.status);
		db_print_output(&res);
	} else
		ret = 0;
	spawn_result_free(&res);
	return ret;
}

static int
db_write_settings(const struct db_ctx *d, int port)
{
	char path[PATH_MAX], text[PATH_MAX * 2];
	int fd, n, ret = 0;

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
	    "# " DB_REPL_ROLE ".  A standby gone quiet is dropped after\n"
	    "# wal_sender_timeout, so that writes stop waiting for it.\n"
	    "wal_level = replica\n"
	    "max_wal_senders = 4\n"
	    "wal_keep_size = '1GB'\n"
	    "wal_sender_timeout = '5s'\n"
	    "hot_standby = on\n"
	    "wal_receiver_status_interval = '1s'\n"
	    "wal_receiver_timeout = '5s'\n",
	    port, d->listen, d->root, d->root, DB_LOG_FILE);
	if (n < 0 || (size_t)n >= sizeof(text) ||
	    path_join(path, sizeof(path), d->root, "postgresql.conf") == -1) {
		cli_error("%s: path too long", d->root);
		return -1;
	}
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW)) ==
		-1 ||
	    write(fd, text, (size_t)n) != n || fsync(fd) == -1) {
		cli_error("cannot write %s: %s", path, strerror(errno));
		ret = -1;
	}
	if (fd != -1)
		close(fd);
	return ret;
}

int
db_conf_chown(const struct kt_conf *c, const char *path)
{
	struct stat st;

	if (geteuid() != 0)
		return 0;
	if (stat(c->confdir, &st) == -1)
		return -1;
	return chown(path, st.st_uid, st.st_gid);
}

/* Append text to ROOT/NAME (postgresql.conf, pg_hba.conf) and fsync it. */
static int
db_append(const struct db_ctx *d, const char *name, const char *text)
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
 * The passive connects from another host: replication as DB_REPL_ROLE, with
 * its password, from anywhere PostgreSQL listens (listen_addresses).
 */
static int
db_write_hba(const struct db_ctx *d)
{
	return db_append(d, "pg_hba.conf",
	    "\n# Added by ktadmin db --bootstrap: the passive server's "
	    "replication.\n"
	    "host replication " DB_REPL_ROLE " all scram-sha-256\n");
}

/*
 * CREATE ROLE cannot take its password as a bind parameter, so, as psql's
 * \password does, libpq computes the SCRAM verifier here and only that
 * (checked to be made of base64, '$' and ':') goes into the statement: the
 * server never sees the password itself.
 */
static int
db_create_repl_role(PGconn *db, const char *password)
{
	char *verifier = NULL, *sql = NULL;
	PGresult *res = NULL;
	int ret = -1;

	verifier =
	    PQencryptPasswordConn(db, password, DB_REPL_ROLE, "scram-sha-256");
	if (verifier == NULL) {
		cli_error("cannot compute the replication password verifier");
		cli_detail_lines(PQerrorMessage(db));
		goto out;
	}
	if (strspn(verifier,
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		"0123456789+/=$:-") != strlen(verifier) ||
	    asprintf(&sql,
		"CREATE ROLE " DB_REPL_ROLE " REPLICATION LOGIN PASSWORD '%s'",
		verifier) == -1) {
		cli_error("unexpected password verifier from libpq");
		sql = NULL;
		goto out;
	}
	res = PQexec(db, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		cli_error("cannot create the %s role", DB_REPL_ROLE);
		cli_detail_lines(PQresultErrorMessage(res));
		goto out;
	}
	ret = 0;
out:
	PQclear(res);
	if (sql != NULL)
		freezero(sql, strlen(sql));
	PQfreemem(verifier);
	return ret;
}

/* CONFDIR/replication.pw, mode 0600, owned as keytrustee.conf. */
static int
db_write_repl_pwfile(const struct kt_conf *c, const char *password)
{
	char path[PATH_MAX], line[128];
	int n;

	n = snprintf(line, sizeof(line), "%s\n", password);
	if (path_join(path, sizeof(path), c->confdir, DB_REPL_PWFILE) == -1 ||
	    file_write_atomic(path, line, (size_t)n, 0600) == -1 ||
	    db_conf_chown(c, path) == -1) {
		cli_error("cannot write %s: %s", path, strerror(errno));
		OPENSSL_cleanse(line, sizeof(line));
		return -1;
	}
	OPENSSL_cleanse(line, sizeof(line));
	return 0;
}

/* The replication password from CONFDIR/replication.pw (0600). */
static int
db_read_repl_pwfile(const struct kt_conf *c, char *out, size_t outlen)
{
	char path[PATH_MAX], err[512], *text = NULL;
	size_t len;
	int ret = -1;

	if (path_join(path, sizeof(path), c->confdir, DB_REPL_PWFILE) == -1) {
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

/* CREATE DATABASE over TCP with the new password. */
static int
db_create_database(int port, const char *password)
{
	char portstr[16];
	const char *const keys[] = {"host", "port", "dbname", "user",
	    "password", "application_name", "connect_timeout", NULL};
	const char *vals[] = {"127.0.0.1", portstr, "postgres", DB_ACCOUNT,
	    password, "ktadmin", "10", NULL};
	PGconn *db;
	PGresult *res = NULL;
	int ret = -1;

	snprintf(portstr, sizeof(portstr), "%d", port);
	db = PQconnectdbParams(keys, vals, 0);
	if (PQstatus(db) != CONNECTION_OK) {
		cli_error("cannot connect to the new cluster");
		cli_detail_lines(PQerrorMessage(db));
		goto out;
	}
	/* A fixed statement: no value in it varies. */
	res = PQexec(db,
	    "CREATE DATABASE " DB_NAME " OWNER " DB_ACCOUNT " ENCODING 'UTF8'");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		cli_error("cannot create the %s database", DB_NAME);
		cli_detail_lines(PQresultErrorMessage(res));
		goto out;
	}
	ret = 0;
out:
	PQclear(res);
	PQfinish(db);
	return ret;
}

/*
 * What both bootstraps check before touching ROOT: the config dir, the
 * socket path, no cluster there yet, a free port, a reachable ROOT; then
 * ROOT is made (or emptied ROOT taken) for the service account.
 */
static int
db_prepare(struct db_ctx *d, const char *confdir, int port, struct kt_conf **c,
    int *created)
{
	char err[1024];
	int r;

	if (conf_load(confdir, c, db_conf_warn, err, sizeof(err)) == -1) {
		char path[PATH_MAX];
		cli_error("%s", err);
		if (path_join(path, sizeof(path), confdir, KT_CONF_FILE) == 0 &&
		    !file_exists(path))
			cli_hint("run 'ktadmin init' first (config dir %s)",
			    confdir);
		return -1;
	}
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
	if ((r = db_is_cluster(d)) != 0) {
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
	if (!db_port_free(port)) {
		cli_error("port %d on 127.0.0.1 is in use", port);
		cli_hint("choose another with --port");
		return -1;
	}
	if (db_check_reach(d) == -1 || db_make_root(d, created) == -1)
		return -1;
	return 0;
}

static int
db_bootstrap(struct db_ctx *d, const char *confdir)
{
	unsigned char raw[DB_PASSWORD_BYTES];
	char password[DB_PASSWORD_BYTES * 2 + 1], conninfo[256], err[1024];
	char tmpdir[64], pwfile[PATH_MAX];
	char *defdir = NULL;
	struct kt_conf *c = NULL;
	PGconn *db = NULL;
	int ret = 1, port, r, created = 0, initialised = 0, started = 0;
	int version;

	port = d->port != 0 ? d->port : KT_DEFAULT_DB_PORT;
	if (confdir == NULL &&
	    (confdir = defdir = conf_default_dir()) == NULL) {
		cli_error("out of memory");
		return 1;
	}
	if (db_prepare(d, confdir, port, &c, &created) == -1)
		goto out;
	initialised = 1; /* from here on, a failure empties ROOT again */

	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		cli_error("cannot generate the database password");
		goto out;
	}
	hex_encode(raw, sizeof(raw), password, 0);
	if (db_write_pwfile(d, password, tmpdir, sizeof(tmpdir), pwfile,
		sizeof(pwfile)) == -1)
		goto out;
	r = db_initdb(d, pwfile);
	unlink(pwfile);
	rmdir(tmpdir);
	if (r == -1 || db_write_settings(d, port) == -1 ||
	    db_write_hba(d) == -1)
		goto out;
	d->port = 0; /* the port now lives in postgresql.conf */
	if (db_pg_start(d) == -1)
		goto out;
	started = 1;
	if (db_create_database(port, password) == -1)
		goto out;

	snprintf(conninfo, sizeof(conninfo),
	    "host=127.0.0.1 port=%d "
	    "dbname=%s user=%s password=%s",
	    port, DB_NAME, DB_ACCOUNT, password);
	if (conf_set_str(c, "DB_CONNECT", conninfo) == -1 ||
	    conf_set_int(c, "DB_PORT", port) == -1) {
		cli_error("cannot set DB_CONNECT and DB_PORT");
		goto out;
	}
	if ((db = db_connect(c, err, sizeof(err))) == NULL) {
		cli_error("cannot connect to the %s database", DB_NAME);
		cli_detail_lines(err);
		goto out;
	}
	if (db_migrate(db, err, sizeof(err)) == -1) {
		cli_error("cannot create the schema");
		cli_detail_lines(err);
		goto out;
	}
	/* The same random source for the replication role's password. */
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		cli_error("cannot generate the replication password");
		goto out;
	}
	hex_encode(raw, sizeof(raw), password, 0);
	if (db_create_repl_role(db, password) == -1 ||
	    db_write_repl_pwfile(c, password) == -1)
		goto out;
	if ((version = db_schema_version(db)) == -1) {
		cli_error("cannot read the schema version");
		cli_detail_lines(PQerrorMessage(db));
		goto out;
	}
	if (conf_save(c) == -1 || db_conf_chown(c, c->path) == -1) {
		cli_error("cannot write %s: %s", c->path, strerror(errno));
		goto out;
	}
	printf("Bootstrapped PostgreSQL cluster in %s (port %d); schema "
	       "version %d\n",
	    d->root, port, version);
	printf("Wrote DB_CONNECT and DB_PORT to %s\n", c->path);
	printf("Wrote the password of the replication role %s to %s/%s\n",
	    DB_REPL_ROLE, c->confdir, DB_REPL_PWFILE);
	printf("PostgreSQL is running (log: %s/%s); stop it with: ktadmin db "
	       "--stop --pg-rootdir %s\n",
	    d->root, DB_LOG_FILE, d->root);
	ret = 0;
out:
	if (db != NULL)
		PQfinish(db);
	if (ret != 0 && initialised)
		db_undo(d, started, created);
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(password, sizeof(password));
	OPENSSL_cleanse(conninfo, sizeof(conninfo));
	conf_free(c);
	free(defdir);
	return ret;
}

/* --- HA: the passive's replica, synchronous replication ---------------- */

/* A host name or address fit for a conninfo and postgresql.conf. */
static int
db_host_ok(const char *h)
{
	size_t n = strlen(h);

	return n > 0 && n <= 253 &&
	    strspn(h,
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		"0123456789.-:_") == n &&
	    *h != '-';
}

/* --listen: '*' or host names/addresses separated by commas. */
static int
db_listen_ok(const char *s)
{
	char buf[256], *p, *save = NULL;

	if (strcmp(s, "*") == 0)
		return 1;
	if (strlen(s) >= sizeof(buf) || *s == '\0' || *s == ',' ||
	    s[strlen(s) - 1] == ',' || strstr(s, ",,") != NULL)
		return 0;
	snprintf(buf, sizeof(buf), "%s", s);
	for (p = strtok_r(buf, ",", &save); p != NULL;
	     p = strtok_r(NULL, ",", &save))
		if (!db_host_ok(p))
			return 0;
	return 1;
}

/* The password of the keytrustee role in a DB_CONNECT conninfo. */
static int
db_conninfo_password(const char *conninfo, char *out, size_t outlen)
{
	PQconninfoOption *opts, *o;
	int ret = -1;

	if ((opts = PQconninfoParse(conninfo, NULL)) == NULL)
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

/* pg_basebackup of the active into ROOT, the password in a temp passfile. */
static int
db_basebackup(struct db_ctx *d, const char *host, int mport, const char *replpw)
{
	char portstr[16], line[256], tmpdir[64], pwfile[PATH_MAX];
	char envpass[PATH_MAX + 16];
	char *argv[] = {"pg_basebackup", "-D", d->root, "-h", (char *)host,
	    "-p", portstr, "-U", DB_REPL_ROLE, "-X", "stream", "-c", "fast",
	    "-w", NULL};
	struct spawn_result res;
	int ret = -1, r;

	snprintf(portstr, sizeof(portstr), "%d", mport);
	snprintf(line, sizeof(line), "*:*:*:%s:%s", DB_REPL_ROLE, replpw);
	r = db_write_pwfile(
	    d, line, tmpdir, sizeof(tmpdir), pwfile, sizeof(pwfile));
	OPENSSL_cleanse(line, sizeof(line));
	if (r == -1)
		return -1;
	snprintf(envpass, sizeof(envpass), "PGPASSFILE=%s", pwfile);
	d->envp[2] = envpass;
	r = db_run(d, argv, &res);
	d->envp[2] = NULL;
	unlink(pwfile);
	rmdir(tmpdir);
	if (r == -1)
		return -1;
	if (res.status != 0) {
		cli_error("pg_basebackup from %s port %d failed (exit %d)",
		    host, mport, res.status);
		db_print_output(&res);
		cli_hint("the active's PostgreSQL must be running and listen "
			 "where this host reaches it (listen_addresses), and "
			 "%s must be the active's (copy its config dir)",
		    DB_REPL_PWFILE);
	} else
		ret = 0;
	spawn_result_free(&res);
	return ret;
}

/* standby.signal and the passive's own settings after the copied ones. */
static int
db_make_standby(const struct db_ctx *d, int port, const char *host, int mport,
    const char *replpw)
{
	char path[PATH_MAX], text[PATH_MAX * 2 + 512];
	uid_t uid;
	gid_t gid;
	int fd, n, ret;

	n = snprintf(text, sizeof(text),
	    "\n# Added by ktadmin db --bootstrap --passive: a streaming "
	    "replica of\n# the active server's PostgreSQL.\n"
	    "port = %d\n"
	    "listen_addresses = '%s'\n"
	    "unix_socket_directories = '%s'\n"
	    "primary_conninfo = 'host=%s port=%d user=%s password=%s "
	    "application_name=%s'\n"
	    "hot_standby = on\n",
	    port, d->listen, d->root, host, mport, DB_REPL_ROLE, replpw,
	    DB_STANDBY_NAME);
	if (n < 0 || (size_t)n >= sizeof(text)) {
		cli_error("%s: path too long", d->root);
		return -1;
	}
	ret = db_append(d, "postgresql.conf", text);
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

static int
db_bootstrap_passive(
    struct db_ctx *d, const char *confdir, const char *host, int mport)
{
	char replpw[128], dbpw[128], conninfo[512], err[1024];
	char *defdir = NULL;
	struct kt_conf *c = NULL;
	PGconn *db = NULL;
	int ret = 1, port, created = 0, initialised = 0, started = 0;
	int version;

	replpw[0] = dbpw[0] = '\0';
	port = d->port != 0 ? d->port : KT_DEFAULT_DB_PORT;
	if (confdir == NULL &&
	    (confdir = defdir = conf_default_dir()) == NULL) {
		cli_error("out of memory");
		return 1;
	}
	if (db_prepare(d, confdir, port, &c, &created) == -1)
		goto out;
	initialised = 1; /* from here on, a failure empties ROOT again */
	if (c->db_connect == NULL ||
	    db_conninfo_password(c->db_connect, dbpw, sizeof(dbpw)) == -1) {
		cli_error(
		    "%s has no DB_CONNECT with the database password", c->path);
		cli_detail("the passive uses the active's config dir, which "
			   "its 'ktadmin db --bootstrap' completed");
		cli_hint("copy the active's config dir here (rsync -zcv "
			 "--exclude .ssl), then run 'ktadmin init'");
		goto out;
	}
	if (db_read_repl_pwfile(c, replpw, sizeof(replpw)) == -1 ||
	    db_basebackup(d, host, mport, replpw) == -1 ||
	    db_make_standby(d, port, host, mport, replpw) == -1)
		goto out;
	d->port = 0; /* the port now lives in postgresql.conf */
	if (db_pg_start(d) == -1)
		goto out;
	started = 1;
	/* The keytrustee role came with the copy: same password, our port. */
	snprintf(conninfo, sizeof(conninfo),
	    "host=127.0.0.1 port=%d "
	    "dbname=%s user=%s password=%s",
	    port, DB_NAME, DB_ACCOUNT, dbpw);
	if (conf_set_str(c, "DB_CONNECT", conninfo) == -1 ||
	    conf_set_int(c, "DB_PORT", port) == -1) {
		cli_error("cannot set DB_CONNECT and DB_PORT");
		goto out;
	}
	if ((db = db_connect(c, err, sizeof(err))) == NULL) {
		cli_error("cannot connect to the replica");
		cli_detail_lines(err);
		goto out;
	}
	if (db_is_standby(db) != 1) {
		cli_error("the new cluster in %s is not a standby", d->root);
		goto out;
	}
	if ((version = db_schema_version(db)) == -1) {
		cli_error("cannot read the schema version");
		cli_detail_lines(PQerrorMessage(db));
		goto out;
	}
	if (conf_save(c) == -1 || db_conf_chown(c, c->path) == -1) {
		cli_error("cannot write %s: %s", c->path, strerror(errno));
		goto out;
	}
	printf("Bootstrapped a passive PostgreSQL cluster in %s (port %d), "
	       "streaming from %s port %d as %s; schema version %d\n",
	    d->root, port, host, mport, DB_STANDBY_NAME, version);
	printf("Wrote DB_CONNECT and DB_PORT to %s\n", c->path);
	printf("PostgreSQL is running (log: %s/%s); stop it with: ktadmin db "
	       "--stop --pg-rootdir %s\n",
	    d->root, DB_LOG_FILE, d->root);
	ret = 0;
out:
	if (db != NULL)
		PQfinish(db);
	if (ret != 0 && initialised)
		db_undo(d, started, created);
	OPENSSL_cleanse(replpw, sizeof(replpw));
	OPENSSL_cleanse(dbpw, sizeof(dbpw));
	OPENSSL_cleanse(conninfo, sizeof(conninfo));
	conf_free(c);
	free(defdir);
	return ret;
}

int
db_conf_connect(
    const char *confdir, struct kt_conf **c, PGconn **db, const char *what)
{
	char err[1024], *defdir = NULL;
	int ret = -1;

	*c = NULL;
	*db = NULL;
	if (confdir == NULL &&
	    (confdir = defdir = conf_default_dir()) == NULL) {
		cli_error("out of memory");
		return -1;
	}
	if (conf_load(confdir, c, db_conf_warn, err, sizeof(err)) == -1) {
		cli_error("%s", err);
		goto out;
	}
	if ((*db = db_connect(*c, err, sizeof(err))) == NULL) {
		cli_error("%s: cannot connect to the database", what);
		cli_detail_lines(err);
		cli_hint("is PostgreSQL running? ktadmin db --status "
			 "--pg-rootdir DIR");
		goto out;
	}
	ret = 0;
out:
	if (ret == -1) {
		conf_free(*c);
		*c = NULL;
	}
	free(defdir);
	return ret;
}

/*
 * The guide's "Enable Synchronous Replication in HA mode", on the active:
 * the passive (application_name keytrustee_passive) becomes its
 * synchronous standby.  ALTER SYSTEM writes postgresql.auto.conf, which a
 * reload applies.
 */
int
db_set_sync(PGconn *db, int on, const char *what)
{
	static const char *const set[] = {
	    "ALTER SYSTEM SET synchronous_standby_names = '" DB_STANDBY_NAME
	    "'",
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
	for (i = 0; i < 2; i++) {
		res = PQexec(db, on ? set[i] : reset[i]);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			cli_error("%s: cannot change the synchronous "
				  "replication settings",
			    what);
			cli_detail_lines(PQresultErrorMessage(res));
			PQclear(res);
			return -1;
		}
		PQclear(res);
	}
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

static int
db_sync(struct db_ctx *d, const char *confdir, int on)
{
	const char *what = on ? "--enable-synchronous-replication"
			      : "--disable-synchronous-replication";
	struct kt_conf *c = NULL;
	PGconn *db = NULL;
	PGresult *res = NULL;
	int ret = 1, r;

	if (db_require_cluster(d) == -1 ||
	    db_conf_connect(confdir, &c, &db, what) == -1)
		goto out;
	if ((r = db_is_standby(db)) != 0) {
		if (r == 1) {
			cli_error(
			    "%s: this is the passive server's database", what);
			cli_hint("run it on the active server");
		}
		goto out;
	}
	if (db_set_sync(db, on, what) == -1)
		goto out;
	res = PQexec(db,
	    "SELECT count(*) FROM pg_stat_replication WHERE "
	    "application_name = '" DB_STANDBY_NAME "' AND state = 'streaming'");
	if (!on)
		printf("Synchronous replication is off: the active accepts "
		       "writes without the passive\n");
	else {
		printf("Synchronous replication is on: every write waits for "
		       "the passive (%s)\n",
		    DB_STANDBY_NAME);
		if (PQresultStatus(res) == PGRES_TUPLES_OK &&
		    strcmp(PQgetvalue(res, 0, 0), "0") == 0)
			cli_warning("the passive is not streaming now: the "
				    "server refuses writes (503) until it is");
	}
	ret = 0;
out:
	PQclear(res);
	if (db != NULL)
		PQfinish(db);
	conf_free(c);
	return ret;
}

/* --- start, stop, status ------------------------------------------------ */

/* Become postgres itself, so that a supervisor sees the real pid. */
static int
db_exec_foreground(const struct db_ctx *d)
{
	char prog[PATH_MAX], portstr[16];
	char *argv[] = {prog, "-D", (char *)d->root, NULL, NULL, NULL};
	struct passwd *pw;

	if (path_join(prog, sizeof(prog), d->bindir, "postgres") == -1) {
		cli_error("%s: path too long", d->bindir);
		return 1;
	}
	if (d->port != 0) {
		snprintf(portstr, sizeof(portstr), "%d", d->port);
		argv[3] = "-p";
		argv[4] = portstr;
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
	execve(prog, argv, d->envp);
	cli_error("cannot execute %s: %s", prog, strerror(errno));
	return 1;
}

static int
db_start(struct db_ctx *d, int background)
{
	long pid, port;
	int st;

	if (db_require_cluster(d) == -1)
		return 1;
	if ((st = db_pg_status(d)) == -1)
		return 1;
	if (st == 0) {
		db_postmaster_info(d, &pid, &port);
		printf("PostgreSQL is already running in %s (pid %ld, port "
		       "%ld)\n",
		    d->root, pid, port);
		return 0;
	}
	if (!background)
		return db_exec_foreground(d);
	if (db_pg_start(d) == -1)
		return 1;
	db_postmaster_info(d, &pid, &port);
	printf("Started PostgreSQL in %s (pid %ld, port %ld; log: %s/%s)\n",
	    d->root, pid, port, d->root, DB_LOG_FILE);
	printf("Stop it with: ktadmin db --stop --pg-rootdir %s\n", d->root);
	return 0;
}

static int
db_stop(struct db_ctx *d)
{
	int st;

	if (db_require_cluster(d) == -1)
		return 1;
	if ((st = db_pg_status(d)) == -1)
		return 1;
	if (st == 3) {
		printf("PostgreSQL is not running in %s\n", d->root);
		return 0;
	}
	if (db_pg_stop(d) == -1)
		return 1;
	printf("Stopped PostgreSQL in %s\n", d->root);
	return 0;
}

static int
db_status(struct db_ctx *d)
{
	long pid, port;
	int st;

	if (db_require_cluster(d) == -1)
		return 1;
	if ((st = db_pg_status(d)) == -1)
		return 1;
	if (st == 3) {
		printf("PostgreSQL is not running in %s\n", d->root);
		return 3;
	}
	db_postmaster_info(d, &pid, &port);
	printf("PostgreSQL is running in %s (pid %ld, port %ld)\n", d->root,
	    pid, port);
	return 0;
}

/* A port option's value; -1 (reported) when not 1-65535. */
static int
db_port_arg(const char *opt, const char *arg)
{
	int v;

	if (parse_int(arg, 1, 65535, &v) == -1) {
		cli_error(
		    "%s: \"%s\" is not a port number (1-65535)", opt, arg);
		return -1;
	}
	return v;
}

int
cmd_db(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"bootstrap", no_argument, NULL, 'B'},
	    {"start", no_argument, NULL, 'S'}, {"stop", no_argument, NULL, 'T'},
	    {"status", no_argument, NULL, 'Q'},
	    {"enable-synchronous-replication", no_argument, NULL, 'E'},
	    {"disable-synchronous-replication", no_argument, NULL, 'D'},
	    {"pg-rootdir", required_argument, NULL, 'r'},
	    {"confdir", required_argument, NULL, 'c'},
	    {"port", required_argument, NULL, 'p'},
	    {"background", no_argument, NULL, 'b'},
	    {"passive", no_argument, NULL, 'P'},
	    {"master-host", required_argument, NULL, 'H'},
	    {"master-port", required_argument, NULL, 'M'},
	    {"listen", required_argument, NULL, 'L'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	static const char *const names[] = {"", "--bootstrap", "--start",
	    "--stop", "--status", "--enable-synchronous-replication",
	    "--disable-synchronous-replication"};
	enum db_action action = DB_NONE, a;
	const char *rootdir = NULL, *confdir = NULL, *mhost = NULL;
	const char *listen = NULL;
	struct db_ctx d;
	int ch, port = 0, background = 0, passive = 0, mport = 0, r;

	memset(&d, 0, sizeof(d));
	optind = 1;
	opterr = 0;
	while (
	    (ch = getopt_long(argc, argv, ":c:p:bh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'B':
		case 'S':
		case 'T':
		case 'Q':
		case 'E':
		case 'D':
			a = ch == 'B'	? DB_BOOTSTRAP
			    : ch == 'S' ? DB_START
			    : ch == 'T' ? DB_STOP
			    : ch == 'Q' ? DB_STATUS
			    : ch == 'E' ? DB_SYNC_ON
					: DB_SYNC_OFF;
			if (action != DB_NONE && action != a) {
				cli_error("%s and %s cannot be combined",
				    names[action], names[a]);
				return ktadmin_bad_usage("db");
			}
			action = a;
			break;
		case 'r':
			rootdir = optarg;
			break;
		case 'c':
			confdir = optarg;
			break;
		case 'p':
			if ((port = db_port_arg("--port", optarg)) == -1)
				return ktadmin_bad_usage("db");
			break;
		case 'M':
			if ((mport = db_port_arg("--master-port", optarg)) ==
			    -1)
				return ktadmin_bad_usage("db");
			break;
		case 'H':
			if (!db_host_ok(optarg)) {
				cli_error("--master-host: \"%s\" is not a host "
					  "name or address",
				    optarg);
				return ktadmin_bad_usage("db");
			}
			mhost = optarg;
			break;
		case 'P':
			passive = 1;
			break;
		case 'L':
			if (!db_listen_ok(optarg)) {
				cli_error("--listen: \"%s\" is not '*' or a "
					  "comma-separated list of host names "
					  "or addresses",
				    optarg);
				return ktadmin_bad_usage("db");
			}
			listen = optarg;
			break;
		case 'b':
			background = 1;
			break;
		case 'h':
			db_usage(stdout);
			return 0;
		default:
			return cli_opt_error("ktadmin", "db", ch, argv);
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument \"%s\"", argv[optind]);
		return ktadmin_bad_usage("db");
	}
	if (action == DB_NONE) {
		cli_error("no action given");
		cli_hint("use one of --bootstrap, --start, --stop, --status, "
			 "--enable-synchronous-replication, "
			 "--disable-synchronous-replication");
		return 2;
	}
	if (listen != NULL && action != DB_BOOTSTRAP) {
		cli_error("--listen goes with --bootstrap");
		return ktadmin_bad_usage("db");
	}
	if ((passive || mhost != NULL || mport != 0) &&
	    action != DB_BOOTSTRAP) {
		cli_error("--passive, --master-host and --master-port go with "
			  "--bootstrap");
		return ktadmin_bad_usage("db");
	}
	if ((mhost != NULL || mport != 0) && !passive) {
		cli_error("--master-host and --master-port need --passive");
		return ktadmin_bad_usage("db");
	}
	if (passive && mhost == NULL) {
		cli_error("--passive needs --master-host (the active server's "
			  "host)");
		return ktadmin_bad_usage("db");
	}
	if (rootdir == NULL) {
		cli_error("--pg-rootdir is required");
		cli_hint("give the PostgreSQL data directory, e.g. "
			 "--pg-rootdir %s/db",
		    KT_DEFAULT_HOME);
		return 2;
	}
	if ((r = db_setup(&d, rootdir, port)) != 0)
		return r;
	/* Loopback always: DB_CONNECT goes through 127.0.0.1. */
	snprintf(d.listen, sizeof(d.listen), "%s%s%s",
	    listen != NULL && strcmp(listen, "*") == 0 ? "" : "127.0.0.1",
	    listen != NULL && strcmp(listen, "*") != 0 ? "," : "",
	    listen != NULL ? listen : "");
	switch (action) {
	case DB_BOOTSTRAP:
		if (passive)
			return db_bootstrap_passive(&d, confdir, mhost,
			    mport != 0 ? mport : KT_DEFAULT_DB_PORT);
		return db_bootstrap(&d, confdir);
	case DB_START:
		return db_start(&d, background);
	case DB_STOP:
		return db_stop(&d);
	case DB_STATUS:
		return db_status(&d);
	case DB_SYNC_ON:
	case DB_SYNC_OFF:
		return db_sync(&d, confdir, action == DB_SYNC_ON);
	default:
		return 2;
	}
}
