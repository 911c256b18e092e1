/*
 * cmd-restore.c - ktadmin restore: a ktbackup.sh backup back into place in
 * one step.  It does what the guide's "Restore Key Trustee Server from
 * ktbackup.sh backups" does by hand -- gpg -d, tar xvf, a database (made by
 * ktadmin db --bootstrap when there is none), drop and create the keytrustee
 * database, psql -f the dump -- and checks every step: the archive is
 * looked at before anything is extracted, the dump loads in one transaction,
 * and a server that holds data is only replaced when told (--force), with
 * its config dir and a dump of its database kept aside.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "archive.h"
#include "conf.h"
#include "db.h"
#include "dbrole.h"
#include "ktadmin.h"
#include "ktbackup.h"
#include "log.h"
#include "pgbin.h"
#include "pgcluster.h"
#include "spawn.h"
#include "util.h"

#define SERVER_PROG "keytrustee-server"

struct restore {
	char confdir[PATH_MAX]; /* the target, absolute */
	char pgroot[PATH_MAX];
	int port; /* --port, 0 = the backup's DB_PORT */
	int force;
	char stage[PATH_MAX]; /* private dir next to the target */
	struct ktbackup members;
	char bindir[PATH_MAX];
};

static void
restore_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ktadmin restore BACKUP [--confdir DIR] [--pg-rootdir DIR] "
	    "[--port N] [--force]\n\n"
	    "Restore a Key Trustee Server from a ktbackup.sh backup "
	    "(kts_bak_*.tar.gpg,\n"
	    "decrypted with your own GnuPG keyring, or kts_bak_*.tar): the "
	    "config dir\n"
	    "and the database, in one step.  The server must be stopped.\n\n"
	    "  -c, --confdir DIR     where the config dir goes (default "
	    "$KEYTRUSTEE_HOME/.keytrustee,\n"
	    "                        KEYTRUSTEE_HOME defaults to %s)\n"
	    "      --pg-rootdir DIR  the PostgreSQL data directory (default "
	    "$KEYTRUSTEE_HOME/db);\n"
	    "                        bootstrapped when it holds no cluster\n"
	    "  -p, --port N          port for a new cluster (default: DB_PORT "
	    "of the backup)\n"
	    "  -f, --force           replace a config dir or database that "
	    "holds a server;\n"
	    "                        both are kept in "
	    "DIR.pre-restore-<time>/\n"
	    "  -h, --help            show this help\n",
	    KT_DEFAULT_HOME);
}

/* --- the live server ------------------------------------------------------ */

/* The --confdir a keytrustee-server process was started with (or NULL). */
static const char *
proc_confdir(const char *args, size_t len)
{
	const char *p = args, *end = args + len, *prev = NULL;

	for (; p < end; p += strlen(p) + 1) {
		if (prev != NULL &&
		    (strcmp(prev, "--confdir") == 0 || strcmp(prev, "-c") == 0))
			return p;
		if (strncmp(p, "--confdir=", 10) == 0)
			return p + 10;
		prev = p;
	}
	return NULL;
}

/* The pid of a keytrustee-server using confdir (realpath), 0 when none. */
static long
restore_server_pid(const char *confdir)
{
	char real[PATH_MAX], path[300], cwd[PATH_MAX], dir[PATH_MAX * 2];
	char other[PATH_MAX], *args = NULL, *defdir = NULL;
	const char *cd, *base;
	DIR *dp;
	struct dirent *de;
	size_t len;
	long pid = 0;
	ssize_t n;

	if (realpath(confdir, real) == NULL || (dp = opendir("/proc")) == NULL)
		return 0;
	while (pid == 0 && (de = readdir(dp)) != NULL) {
		if (strspn(de->d_name, "0123456789") != strlen(de->d_name))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		free(args);
		args = NULL;
		if (file_read(path, 65536, &args, &len) == -1 || len == 0)
			continue;
		base = strrchr(args, '/');
		base = base != NULL ? base + 1 : args;
		if (strcmp(base, SERVER_PROG) != 0)
			continue;
		if ((cd = proc_confdir(args, len)) == NULL) {
			if (defdir == NULL &&
			    (defdir = conf_default_dir()) == NULL)
				continue;
			cd = defdir;
		}
		if (*cd != '/') {
			snprintf(
			    path, sizeof(path), "/proc/%s/cwd", de->d_name);
			if ((n = readlink(path, cwd, sizeof(cwd) - 1)) == -1)
				continue;
			cwd[n] = '\0';
			snprintf(dir, sizeof(dir), "%s/%s", cwd, cd);
			cd = dir;
		}
		if (realpath(cd, other) != NULL && strcmp(other, real) == 0)
			pid = strtol(de->d_name, NULL, 10);
	}
	closedir(dp);
	free(args);
	free(defdir);
	return pid;
}

/* Orgs, clients and deposits in the database; -1 when it has no schema. */
static int
restore_count(PGconn *db, long counts[3])
{
	PGresult *res;
	int i, ret = -1;

	res = PQexec(db,
	    "SELECT (SELECT count(*) FROM orgs), "
	    "(SELECT count(*) FROM clients), "
	    "(SELECT count(*) FROM deposits)");
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		for (i = 0; i < 3; i++)
			counts[i] = strtol(PQgetvalue(res, 0, i), NULL, 10);
		ret = 0;
	}
	PQclear(res);
	return ret;
}

/* --- running the tools ---------------------------------------------------- */

/*
 * What 'ktadmin db --start --background' (port 0) or 'ktadmin db
 * --bootstrap' does, for the cluster in --pg-rootdir; the exit code.
 */
static int
restore_db(const struct restore *r, int bootstrap, int port)
{
	struct pgcluster d;
	int rc;

	fflush(stdout);
	memset(&d, 0, sizeof(d));
	if ((rc = pgcluster_setup(&d, r->pgroot, port)) != 0)
		return rc;
	return bootstrap ? db_bootstrap(&d, r->confdir, NULL, 0)
			 : db_start(&d, 1);
}

/*
 * conninfo without its password (for argv), the password apart (for the
 * environment), and the database name.
 */
static int
restore_split_conninfo(const char *conninfo, char *out, size_t outlen,
    char *password, size_t pwlen, char *dbname, size_t dblen)
{
	PQconninfoOption *opts, *o;
	char *errmsg = NULL;
	size_t used = 0;

	*out = *password = '\0';
	snprintf(dbname, dblen, "keytrustee");
	if ((opts = PQconninfoParse(conninfo, &errmsg)) == NULL) {
		cli_error("DB_CONNECT cannot be parsed");
		cli_detail_lines(errmsg);
		PQfreemem(errmsg);
		return -1;
	}
	for (o = opts; o->keyword != NULL; o++) {
		const char *v;
		int n;

		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "password") == 0) {
			snprintf(password, pwlen, "%s", o->val);
			continue;
		}
		if (strcmp(o->keyword, "dbname") == 0)
			snprintf(dbname, dblen, "%s", o->val);
		n = snprintf(out + used, outlen - used, "%s%s='",
		    used ? " " : "", o->keyword);
		if (n < 0 || (size_t)n >= outlen - used)
			goto toolong;
		used += (size_t)n;
		for (v = o->val; *v != '\0'; v++) {
			if (used + 3 >= outlen)
				goto toolong;
			if (*v == '\'' || *v == '\\')
				out[used++] = '\\';
			out[used++] = *v;
		}
		out[used++] = '\'';
		out[used] = '\0';
	}
	PQconninfoFree(opts);
	return 0;
toolong:
	PQconninfoFree(opts);
	cli_error("DB_CONNECT is too long");
	return -1;
}

/*
 * pg_dump or psql from PostgreSQL's bin dir, as c's admin role (dbrole.h),
 * the password in PGPASSWORD.
 */
static int
restore_pg_tool(const struct restore *r, const struct kt_conf *c, char **args)
{
	char ci[2048], pw[256], dbname[128], pwenv[300], err[1024];
	char *env[] = {"PGCONNECT_TIMEOUT=10", pwenv, NULL};
	char *argv[16], *conninfo;
	struct spawn_result res;
	int i, ret = -1, split;

	*pw = *pwenv = '\0';
	if ((conninfo = dbrole_admin_conninfo(c, err, sizeof(err))) == NULL) {
		cli_error("%s", err);
		goto out;
	}
	split = restore_split_conninfo(
	    conninfo, ci, sizeof(ci), pw, sizeof(pw), dbname, sizeof(dbname));
	freezero(conninfo, strlen(conninfo));
	if (split == -1)
		goto out;
	snprintf(pwenv, sizeof(pwenv), "PGPASSWORD=%s", pw);
	for (i = 0; args[i] != NULL && i < 13; i++)
		argv[i] = args[i];
	argv[i++] = "-d";
	argv[i++] = ci;
	argv[i] = NULL;
	/* As this user: it reads the dump and writes the aside copy. */
	if (pgbin_run(r->bindir, NULL, argv, env, &res) == -1)
		goto out;
	if (res.status != 0) {
		cli_error("%s failed (exit %d)", args[0], res.status);
		cli_detail_lines(res.err);
	} else
		ret = 0;
	spawn_result_free(&res);
out:
	OPENSSL_cleanse(pw, sizeof(pw));
	OPENSSL_cleanse(pwenv, sizeof(pwenv));
	return ret;
}

/* DROP and CREATE the server's database, as the guide's psql -c lines do. */
static int
restore_recreate(const struct kt_conf *c)
{
	char err[1024], ci[2048], pw[256], dbname[128], sql[512];
	char *ident = NULL;
	PGconn *db = NULL;
	int ret = -1;

	if (restore_split_conninfo(c->db_connect, ci, sizeof(ci), pw,
		sizeof(pw), dbname, sizeof(dbname)) == -1)
		goto out;
	if ((db = dbrole_connect_admin(c, "postgres", err, sizeof(err))) ==
	    NULL) {
		cli_error("cannot connect to PostgreSQL with DB_CONNECT of %s",
		    c->path);
		cli_detail_lines(err);
		goto out;
	}
	if ((ident = PQescapeIdentifier(db, dbname, strlen(dbname))) == NULL) {
		cli_error("%s", PQerrorMessage(db));
		goto out;
	}
	snprintf(
	    sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", ident);
	if (pgcluster_sql(db, sql, "cannot drop the %s database", dbname) == 0)
		ret = pgcluster_create_database(db, dbname, PQuser(db));
	PQfinish(db);
	db = NULL;
	/*
	 * The dump grants to the server's role: a cluster made before the
	 * two roles gets it now, or the load would fail on its GRANTs.
	 */
	if (ret == 0 &&
	    ((db = dbrole_connect_admin(c, NULL, err, sizeof(err))) == NULL ||
		db_server_role(db, 0, err, sizeof(err)) == -1)) {
		cli_error("cannot make the role %s", DB_SERVER_ROLE);
		cli_detail_lines(err);
		ret = -1;
	}
out:
	OPENSSL_cleanse(pw, sizeof(pw));
	PQfreemem(ident);
	if (db != NULL)
		PQfinish(db);
	return ret;
}

static int
restore_paths(struct restore *r, const char *confdir, const char *pgroot)
{
	char *defdir = NULL, buf[PATH_MAX], parent[PATH_MAX];
	const char *home = getenv("KEYTRUSTEE_HOME");
	size_t n;

	if (confdir == NULL &&
	    (confdir = defdir = conf_default_dir()) == NULL) {
		cli_error("out of memory");
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", confdir);
	free(defdir);
	n = strlen(buf);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	snprintf(parent, sizeof(parent), "%s", buf);
	dirname(parent);
	if (dir_ensure(parent, 0755) == -1 ||
	    realpath(parent, r->stage) == NULL) {
		cli_error("cannot use %s (the config dir's parent): %s", parent,
		    strerror(errno));
		return -1;
	}
	if (snprintf(r->confdir, sizeof(r->confdir), "%s/%s",
		strcmp(r->stage, "/") == 0 ? "" : r->stage,
		basename(buf)) >= (int)sizeof(r->confdir)) {
		cli_error("--confdir: path too long");
		return -1;
	}
	if (pgroot == NULL)
		snprintf(r->pgroot, sizeof(r->pgroot), "%s/db",
		    home != NULL && *home != '\0' ? home : KT_DEFAULT_HOME);
	else
		snprintf(r->pgroot, sizeof(r->pgroot), "%s", pgroot);
	/* The stage: a private dir next to the target (one fs: rename). */
	n = strlen(r->stage);
	snprintf(r->stage + n, sizeof(r->stage) - n, "%s.kt-restore.XXXXXX",
	    n > 1 ? "/" : "");
	if (mkdtemp(r->stage) == NULL) {
		cli_error("cannot make a directory next to %s: %s", r->confdir,
		    strerror(errno));
		r->stage[0] = '\0';
		return -1;
	}
	return 0;
}

/* The old config dir and a dump of the old database, kept aside. */
static int
restore_set_aside(const struct restore *r, const struct kt_conf *old, int dump,
    char *aside, size_t len)
{
	char stamp[32], path[PATH_MAX * 2];
	char *kill[] = {
	    "gpgconf", "--homedir", (char *)r->confdir, "--kill", "all", NULL};
	char *pgdump[] = {"pg_dump", "-c", "--if-exists", "-f", path, NULL};
	time_t now = time(NULL);
	struct tm tm;

	strftime(
	    stamp, sizeof(stamp), "%Y-%m-%d_%H-%M-%S", gmtime_r(&now, &tm));
	if (snprintf(aside, len, "%s.pre-restore-%s", r->confdir, stamp) >=
		(int)len ||
	    mkdir(aside, 0700) == -1) {
		cli_error("cannot create %s: %s", aside, strerror(errno));
		return -1;
	}
	if (dump) {
		snprintf(path, sizeof(path), "%s/keytrustee-db.sql", aside);
		if (restore_pg_tool(r, old, pgdump) == -1) {
			cli_hint("the current database was not dumped; nothing "
				 "was replaced");
			return -1;
		}
		printf("Dumped the current database to %s\n", path);
	}
	if (access(r->confdir, F_OK) == 0) {
		(void)spawn_cli(kill, 255); /* its gpg-agent goes with it */
		snprintf(path, sizeof(path), "%s/%s", aside,
		    strrchr(r->confdir, '/') + 1);
		if (rename(r->confdir, path) == -1) {
			cli_error("cannot move %s aside: %s", r->confdir,
			    strerror(errno));
			return -1;
		}
		printf("Moved the current config dir to %s\n", path);
	}
	return 0;
}

int
cmd_restore(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"confdir", required_argument, NULL, 'c'},
	    {"pg-rootdir", required_argument, NULL, 'r'},
	    {"port", required_argument, NULL, 'p'},
	    {"force", no_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *confdir = NULL, *pgroot = NULL, *backup;
	struct restore r;
	struct kt_conf *old = NULL, *staged = NULL, *c = NULL;
	const struct kt_conf *dbconf = NULL;
	PGconn *db = NULL;
	char tarpath[PATH_MAX + 32], xdir[PATH_MAX + 32], src[PATH_MAX * 3];
	char sqlpath[PATH_MAX * 3], err[1024], aside[PATH_MAX + 64];
	char pgversion[PATH_MAX + 16], path[PATH_MAX], *oldadmin = NULL;
	struct dbrole_report rep;
	long pid, counts[3] = {0, 0, 0};
	int ch, kind, rc = 1, has_cluster, live = 0, replaced = 0, port;

	memset(&r, 0, sizeof(r));
	aside[0] = '\0';
	optind = 1;
	opterr = 0;
	while (
	    (ch = getopt_long(argc, argv, ":c:p:fh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			confdir = optarg;
			break;
		case 'r':
			pgroot = optarg;
			break;
		case 'p':
			if (parse_int(optarg, 1, 65535, &r.port) == -1) {
				cli_error("--port: \"%s\" is not a port number "
					  "(1-65535)",
				    optarg);
				return ktadmin_bad_usage("restore");
			}
			break;
		case 'f':
			r.force = 1;
			break;
		case 'h':
			restore_usage(stdout);
			return 0;
		default:
			return cli_opt_error("ktadmin", "restore", ch, argv);
		}
	}
	if (optind >= argc) {
		cli_error("no backup given");
		return ktadmin_bad_usage("restore");
	}
	if (optind + 1 < argc) {
		cli_error("unexpected argument \"%s\"", argv[optind + 1]);
		return ktadmin_bad_usage("restore");
	}
	backup = argv[optind];
	if ((kind = archive_kind(backup)) == -1) {
		cli_error("cannot read %s: %s", backup, strerror(errno));
		return 1;
	}
	if (kind == 0) {
		cli_error(
		    "%s is neither a tar archive nor an OpenPGP file", backup);
		cli_hint("give a kts_bak_*.tar.gpg or kts_bak_*.tar written by "
			 "ktbackup.sh");
		return 1;
	}
	umask(077);
	if (pgbin_find(r.bindir, sizeof(r.bindir)) == -1 ||
	    restore_paths(&r, confdir, pgroot) == -1)
		goto out;
	if ((pid = restore_server_pid(r.confdir)) != 0) {
		cli_error("%s is running on %s (pid %ld)", SERVER_PROG,
		    r.confdir, pid);
		cli_hint("stop the server first; a restore under a running "
			 "server is never safe");
		goto out;
	}

	/* 1. gpg -d, then look at every member before extracting any. */
	if (kind == 2) {
		char *gpg[] = {"gpg", "--batch", "--yes", "--decrypt",
		    "--output", tarpath, "--", (char *)backup, NULL};

		snprintf(tarpath, sizeof(tarpath), "%s/backup.tar", r.stage);
		if (spawn_cli(gpg, 0) == -1) {
			cli_hint("decrypt as the backup's GPG recipient: its "
				 "secret key must be in your keyring "
				 "(GNUPGHOME selects another)");
			goto out;
		}
	} else
		snprintf(tarpath, sizeof(tarpath), "%s", backup);
	if (ktbackup_scan(tarpath, backup, &r.members) == -1)
		goto bad_archive;

	/* 2. tar xvf into the stage, modes (and owners, as root) kept. */
	snprintf(xdir, sizeof(xdir), "%s/x", r.stage);
	if (mkdir(xdir, 0700) == -1) {
		cli_error("cannot create %s: %s", xdir, strerror(errno));
		goto out;
	}
	{
		char *tar[] = {"tar", "--extract", "--file", tarpath,
		    "--directory", xdir, "--same-permissions",
		    "--no-overwrite-dir", "--", r.members.conf, r.members.sql,
		    NULL};

		if (spawn_cli(tar, 0) == -1)
			goto out;
	}
	snprintf(src, sizeof(src), "%s/%s", xdir, r.members.conf);
	snprintf(sqlpath, sizeof(sqlpath), "%s/%s", xdir, r.members.sql);
	if (conf_load(src, &staged, pgcluster_conf_warn, err, sizeof(err)) ==
	    -1) {
		cli_error("the backup's keytrustee.conf is not valid");
		cli_detail_lines(err);
		goto out;
	}

	/* 3. What is there now: a config dir, a cluster holding data. */
	snprintf(pgversion, sizeof(pgversion), "%s/PG_VERSION", r.pgroot);
	has_cluster = access(pgversion, F_OK) == 0;
	if (file_exists(r.confdir)) {
		if (conf_load(r.confdir, &old, pgcluster_conf_warn, err,
			sizeof(err)) == -1) {
			conf_free(old);
			old = NULL;
		}
		live = 1;
	}
	/* The cluster's role password: the current conf's, else the backup's.
	 */
	dbconf = old != NULL && old->db_connect != NULL ? old
	    : staged->db_connect != NULL		? staged
							: NULL;
	if (has_cluster) {
		if (restore_db(&r, 0, 0) != 0)
			goto out;
		/* Checked before anything is written: the dump goes there. */
		if (dbconf == NULL ||
		    (db = dbrole_connect_admin(
			 dbconf, NULL, err, sizeof(err))) == NULL) {
			cli_error("cannot connect to the cluster in %s with "
				  "DB_CONNECT of %s",
			    r.pgroot,
			    dbconf == old ? "the current keytrustee.conf"
					  : "the backup's keytrustee.conf");
			if (dbconf != NULL)
				cli_detail_lines(err);
			cli_hint("its role password lives only in the config "
				 "dir that made it: restore into a new, empty "
				 "--pg-rootdir (the backup holds the whole "
				 "database)");
			goto out;
		}
		if (restore_count(db, counts) == 0 &&
		    counts[0] + counts[1] + counts[2] > 0)
			live = 2;
		PQfinish(db);
		db = NULL;
	}
	if (live && !r.force) {
		cli_error("%s already holds a Key Trustee Server", r.confdir);
		if (live == 2)
			cli_detail("its database in %s holds %ld orgs, %ld "
				   "clients, %ld deposits",
			    r.pgroot, counts[0], counts[1], counts[2]);
		cli_hint("give --force to replace it: the current config dir "
			 "and a dump of its database are kept in "
			 "%s.pre-restore-<time>/",
		    r.confdir);
		goto out;
	}
	/* Read before the old config dir moves aside: the cluster's admin. */
	if (has_cluster && old != NULL && dbconf == old &&
	    (oldadmin = dbrole_admin_conninfo(old, err, sizeof(err))) == NULL) {
		cli_error("%s", err);
		goto out;
	}
	if (live &&
	    restore_set_aside(&r, dbconf, live == 2, aside, sizeof(aside)) ==
		-1)
		goto out;

	/* 4. The config dir into place. */
	if (rename(src, r.confdir) == -1) {
		cli_error("cannot move the restored config dir to %s: %s",
		    r.confdir, strerror(errno));
		goto out;
	}
	replaced = 1;
	printf("Restored the config dir %s\n", r.confdir);

	/* 5. A database: bootstrap one, or use the cluster that is there. */
	if (!has_cluster) {
		if (conf_load(r.confdir, &c, NULL, err, sizeof(err)) == -1) {
			cli_error("%s", err);
			goto out;
		}
		port = r.port != 0 ? r.port : c->db_port;
		conf_free(c);
		c = NULL;
		if (restore_db(&r, 1, port) != 0)
			goto out;
	} else if (old != NULL && dbconf == old) {
		/*
		 * The cluster's passwords are the ones the old conf knew:
		 * DB_CONNECT becomes its admin's, and dbrole_setup below
		 * keeps that in DBROLE_ADMIN_FILE and moves DB_CONNECT to
		 * the server's role, as for a conf from before the roles.
		 */
		if (path_join(path, sizeof(path), r.confdir,
			DBROLE_ADMIN_FILE) == -1 ||
		    (unlink(path) == -1 && errno != ENOENT)) {
			cli_error(
			    "cannot remove %s: %s", path, strerror(errno));
			goto out;
		}
		if (conf_load(r.confdir, &c, NULL, err, sizeof(err)) == -1 ||
		    conf_set_str(c, "DB_CONNECT", oldadmin) == -1 ||
		    conf_set_int(c, "DB_PORT", old->db_port) == -1 ||
		    pgcluster_conf_save(c) == -1)
			goto out;
		conf_free(c);
		c = NULL;
	}
	if (conf_load(r.confdir, &c, NULL, err, sizeof(err)) == -1) {
		cli_error("%s", err);
		goto out;
	}
	if (c->db_connect == NULL) {
		cli_error("%s has no DB_CONNECT", c->path);
		goto out;
	}

	/* 6. Drop, create, load (one transaction), bring the schema up. */
	{
		char *psql[] = {"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
		    "--single-transaction", "-f", sqlpath, NULL};

		if (restore_recreate(c) == -1 ||
		    restore_pg_tool(&r, c, psql) == -1)
			goto out;
	}
	/* As the server will: migrated, and DB_CONNECT its own role's. */
	if (dbrole_setup(c, &rep, err, sizeof(err)) != DBROLE_OK ||
	    (db = db_connect(c, err, sizeof(err))) == NULL ||
	    restore_count(db, counts) == -1) {
		cli_error("the restored database is not usable");
		cli_detail_lines(db == NULL ? err : PQerrorMessage(db));
		goto out;
	}
	printf("Restored the database: %ld orgs, %ld clients, %ld deposits\n",
	    counts[0], counts[1], counts[2]);
	printf("PostgreSQL is running in %s; start the server: %s --confdir "
	       "%s\n",
	    r.pgroot, SERVER_PROG, r.confdir);
	rc = 0;
	goto out;

bad_archive:
	cli_hint("nothing was written; restore only a backup made by "
		 "ktbackup.sh");
out:
	if (rc != 0 && aside[0] != '\0')
		cli_hint("the previous config dir and database dump are in %s",
		    aside);
	else if (rc != 0 && replaced)
		cli_hint("%s holds the restored config dir; run the restore "
			 "again with --force once the cause is fixed",
		    r.confdir);
	if (db != NULL)
		PQfinish(db);
	if (oldadmin != NULL)
		freezero(oldadmin, strlen(oldadmin));
	conf_free(c);
	conf_free(old);
	conf_free(staged);
	if (r.stage[0] != '\0' && rm_tree(r.stage) == -1 && errno != ENOENT)
		cli_warning(
		    "could not remove %s: %s", r.stage, strerror(errno));
	return rc;
}
