/*
 * cmd-db.c - ktadmin db: bootstrap (an active, or a passive streaming from
 * it), start, stop and check the server's private PostgreSQL cluster, and
 * turn synchronous replication on or off.  The cluster itself is
 * pgcluster.c's, HA's pieces are replication.c's; here are the options and
 * the flow of each action.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "conf.h"
#include "db.h"
#include "dbrole.h"
#include "ktadmin.h"
#include "log.h"
#include "pgcluster.h"
#include "replication.h"
#include "util.h"

#define DB_PASSWORD_BYTES 32

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
	    "                  [--listen ADDRS] [--socket-dir DIR]\n"
	    "       ktadmin db --bootstrap --passive --master-host HOST "
	    "[--master-port N]\n"
	    "                  --pg-rootdir DIR [--confdir DIR] [--port N] "
	    "[--listen ADDRS]\n"
	    "                  [--socket-dir DIR]\n"
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
	    "                        (its password in CONFDIR/%s); the admin\n"
	    "                        role is %s (superuser, owner), its "
	    "password\n"
	    "                        in CONFDIR/%s; the server's role is\n"
	    "                        %s: DB_CONNECT, written with DB_PORT\n"
	    "                        into keytrustee.conf; it stays running\n"
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
	    "      --socket-dir DIR  with --bootstrap: a second unix socket "
	    "directory\n"
	    "                        besides DIR (default %s\n"
	    "                        with port %d, where psql looks without "
	    "-h; none\n"
	    "                        with another port; '' for none)\n"
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
	    "PostgreSQL's programs are taken from $PG_BINDIR, else the "
	    "parcel's own\n"
	    "(PARCEL/PG_DB/opt/postgres/*/bin, when ktadmin runs from a "
	    "parcel), else\n"
	    "`pg_config --bindir`, else the newest "
	    "/usr/lib/postgresql/*/bin.\n",
	    PGCLUSTER_ACCOUNT, REPLICATION_ROLE, REPLICATION_PWFILE,
	    PGCLUSTER_ACCOUNT, DBROLE_ADMIN_FILE, DB_SERVER_ROLE,
	    KT_DEFAULT_DB_PORT, PGCLUSTER_SHARED_SOCKDIR, KT_DEFAULT_DB_PORT,
	    KT_DEFAULT_HOME, KT_DEFAULT_DB_PORT);
}

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

/* --- bootstrap ---------------------------------------------------------- */

/* What a bootstrap carries from its first step to its last. */
struct db_boot {
	struct pgcluster *d;
	struct kt_conf *c;
	int port;	   /* the new cluster's */
	const char *mhost; /* the active's PostgreSQL (NULL: this is it) */
	int mport;
	char dbpw[128]; /* the admin role's password (the copy's, passive) */
	int created;	/* ROOT was made */
	int started;
};

/* A new random password, DB_PASSWORD_BYTES as hex, for what. */
static int
db_new_password(char out[DB_PASSWORD_BYTES * 2 + 1], const char *what)
{
	unsigned char raw[DB_PASSWORD_BYTES];

	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		cli_error("cannot generate the %s password", what);
		return -1;
	}
	hex_encode(raw, sizeof(raw), out, 0);
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

/* Start the new cluster: its port now lives in postgresql.conf. */
static int
db_boot_start(struct db_boot *b)
{
	b->d->port = 0;
	if (pgcluster_start(b->d) == -1)
		return -1;
	b->started = 1;
	return 0;
}

/* The active: initdb, our settings, start, the server's database. */
static int
db_boot_active(struct db_boot *b)
{
	if (db_new_password(b->dbpw, "database") == -1 ||
	    pgcluster_initdb(b->d, b->dbpw) == -1 ||
	    pgcluster_write_settings(b->d, b->port) == -1 ||
	    pgcluster_write_hba(b->d) == -1 || db_boot_start(b) == -1)
		return -1;
	return pgcluster_create_server_database(b->port, b->dbpw);
}

/* The passive: a streaming copy of the active's cluster, started. */
static int
db_boot_passive(struct db_boot *b)
{
	char replpw[128];
	int ret = -1;

	if (pgcluster_conf_password(b->c, b->dbpw, sizeof(b->dbpw)) == -1) {
		cli_error("%s has no DB_CONNECT with the database password",
		    b->c->path);
		cli_detail("the passive uses the active's config dir, which "
			   "its 'ktadmin db --bootstrap' completed");
		cli_hint("copy the active's config dir here (rsync -zcv "
			 "--exclude .ssl), then run 'ktadmin init'");
		return -1;
	}
	if (replication_read_pwfile(b->c, replpw, sizeof(replpw)) == 0 &&
	    replication_basebackup(b->d, b->mhost, b->mport, replpw) == 0 &&
	    replication_make_standby(
		b->d, b->port, b->mhost, b->mport, replpw) == 0)
		ret = db_boot_start(b);
	OPENSSL_cleanse(replpw, sizeof(replpw));
	return ret;
}

/* The role the passive streams as, made over the admin's connection. */
static int
db_boot_replication(struct db_boot *b, PGconn *db)
{
	char password[DB_PASSWORD_BYTES * 2 + 1];
	int ret = -1;

	if (db_new_password(password, "replication") == 0 &&
	    replication_create_role(db, password) == 0 &&
	    replication_write_pwfile(b->c, password) == 0)
		ret = 0;
	OPENSSL_cleanse(password, sizeof(password));
	return ret;
}

/*
 * DB_CONNECT for the new cluster: the admin's (the role initdb made) on the
 * active, which dbrole_setup then keeps in DBROLE_ADMIN_FILE and moves to
 * the server's role; the copied one, pointed here, on the passive.
 */
static char *
db_boot_conninfo(struct db_boot *b)
{
	char conninfo[512], err[512], *ci;

	if (b->mhost == NULL) {
		snprintf(conninfo, sizeof(conninfo),
		    "host=127.0.0.1 port=%d dbname=%s user=%s password=%s",
		    b->port, PGCLUSTER_DB_NAME, PGCLUSTER_ACCOUNT, b->dbpw);
		ci = strdup(conninfo);
	} else {
		snprintf(conninfo, sizeof(conninfo),
		    "host=127.0.0.1 port=%d dbname=%s", b->port,
		    PGCLUSTER_DB_NAME);
		if ((ci = dbrole_conninfo_merge(
			 b->c->db_connect, conninfo, err, sizeof(err))) == NULL)
			cli_detail_lines(err);
	}
	OPENSSL_cleanse(conninfo, sizeof(conninfo));
	return ci;
}

/*
 * What both bootstraps do once their cluster runs: DB_CONNECT and DB_PORT
 * in keytrustee.conf; on the active the replication role, on the passive
 * the check that it is a standby (its schema came with the copy); the
 * schema and the two roles (dbrole_setup); keytrustee.conf saved; what was
 * done said.
 */
static int
db_boot_finish(struct db_boot *b)
{
	struct dbrole_report rep;
	char err[1024], path[PATH_MAX], *conninfo = NULL;
	PGconn *db = NULL;
	int ret = -1;

	/* A new active's admin is the role initdb made, not one kept here. */
	if (b->mhost == NULL &&
	    (path_join(path, sizeof(path), b->c->confdir, DBROLE_ADMIN_FILE) ==
		    -1 ||
		(unlink(path) == -1 && errno != ENOENT))) {
		cli_error("cannot remove %s: %s", path, strerror(errno));
		goto out;
	}
	if ((conninfo = db_boot_conninfo(b)) == NULL ||
	    conf_set_str(b->c, "DB_CONNECT", conninfo) == -1 ||
	    conf_set_int(b->c, "DB_PORT", b->port) == -1) {
		cli_error("cannot set DB_CONNECT and DB_PORT");
		goto out;
	}
	if ((db = dbrole_connect_admin(b->c, NULL, err, sizeof(err))) == NULL) {
		cli_error("cannot connect to %s",
		    b->mhost != NULL ? "the replica"
				     : "the " PGCLUSTER_DB_NAME " database");
		cli_detail_lines(err);
		goto out;
	}
	if (b->mhost == NULL && db_boot_replication(b, db) == -1)
		goto out;
	if (b->mhost != NULL && db_is_standby(db) != 1) {
		cli_error("the new cluster in %s is not a standby", b->d->root);
		goto out;
	}
	if (dbrole_setup(b->c, &rep, err, sizeof(err)) != DBROLE_OK) {
		cli_error("cannot set up the schema and the database roles");
		cli_detail_lines(err);
		goto out;
	}
	if (pgcluster_conf_save(b->c) == -1)
		goto out;
	if (b->mhost == NULL)
		printf("Bootstrapped PostgreSQL cluster in %s (port %d); "
		       "schema version %d\n",
		    b->d->root, b->port, rep.after);
	else
		printf("Bootstrapped a passive PostgreSQL cluster in %s (port "
		       "%d), streaming from %s port %d as %s; schema version "
		       "%d\n",
		    b->d->root, b->port, b->mhost, b->mport,
		    REPLICATION_STANDBY_NAME, rep.after);
	printf("Wrote DB_CONNECT and DB_PORT to %s\n", b->c->path);
	if (b->mhost == NULL) {
		printf("The server connects as %s; the admin role %s's "
		       "password is in %s/%s\n",
		    DB_SERVER_ROLE, PGCLUSTER_ACCOUNT, b->c->confdir,
		    DBROLE_ADMIN_FILE);
		printf("Wrote the password of the replication role %s to "
		       "%s/%s\n",
		    REPLICATION_ROLE, b->c->confdir, REPLICATION_PWFILE);
	}
	if (rep.waiting)
		cli_warning("DB_CONNECT is still the admin's: the active's "
			    "database has no role %s yet; the passive server "
			    "moves to it when it starts after the active's",
		    DB_SERVER_ROLE);
	printf("PostgreSQL is running (log: %s/%s); stop it with: ktadmin db "
	       "--stop --pg-rootdir %s\n",
	    b->d->root, PGCLUSTER_LOG_FILE, b->d->root);
	ret = 0;
out:
	if (db != NULL)
		PQfinish(db);
	if (conninfo != NULL)
		freezero(conninfo, strlen(conninfo));
	return ret;
}

int
db_bootstrap(
    struct pgcluster *d, const char *confdir, const char *mhost, int mport)
{
	struct db_boot b = {.d = d, .mhost = mhost, .mport = mport};
	char err[1024], path[PATH_MAX], *defdir = NULL;
	int ret = 1, initialised = 0;

	b.port = d->port != 0 ? d->port : KT_DEFAULT_DB_PORT;
	if (confdir == NULL &&
	    (confdir = defdir = conf_default_dir()) == NULL) {
		cli_error("out of memory");
		return 1;
	}
	if (conf_load(confdir, &b.c, pgcluster_conf_warn, err, sizeof(err)) ==
	    -1) {
		cli_error("%s", err);
		if (path_join(path, sizeof(path), confdir, KT_CONF_FILE) == 0 &&
		    !file_exists(path))
			cli_hint("run 'ktadmin init' first (config dir %s)",
			    confdir);
		goto out;
	}
	if (pgcluster_prepare(d, b.port, &b.created) == -1)
		goto out;
	initialised = 1; /* from here on, a failure empties ROOT again */
	if ((mhost == NULL ? db_boot_active(&b) : db_boot_passive(&b)) == -1 ||
	    db_boot_finish(&b) == -1)
		goto out;
	ret = 0;
out:
	if (ret != 0 && initialised)
		pgcluster_undo(d, b.started, b.created);
	OPENSSL_cleanse(b.dbpw, sizeof(b.dbpw));
	conf_free(b.c);
	free(defdir);
	return ret;
}

/* --- HA: synchronous replication ---------------------------------------- */

static int
db_sync(const struct pgcluster *d, const char *confdir, int on)
{
	const char *what = on ? "--enable-synchronous-replication"
			      : "--disable-synchronous-replication";
	struct kt_conf *c = NULL;
	PGconn *db = NULL;
	int ret = 1, r;

	if (pgcluster_require(d) == -1 ||
	    pgcluster_conf_connect(confdir, &c, &db, what) == -1)
		goto out;
	if ((r = db_is_standby(db)) != 0) {
		if (r == 1) {
			cli_error(
			    "%s: this is the passive server's database", what);
			cli_hint("run it on the active server");
		}
		goto out;
	}
	if (replication_set_sync(db, on, what) == -1)
		goto out;
	if (!on)
		printf("Synchronous replication is off: the active accepts "
		       "writes without the passive\n");
	else {
		printf("Synchronous replication is on: every write waits for "
		       "the passive (%s)\n",
		    REPLICATION_STANDBY_NAME);
		if (replication_streaming(db) == 0)
			cli_warning("the passive is not streaming now: the "
				    "server refuses writes (503) until it is");
	}
	ret = 0;
out:
	if (db != NULL)
		PQfinish(db);
	conf_free(c);
	return ret;
}

/* --- start, stop, status ------------------------------------------------ */

int
db_start(const struct pgcluster *d, int background)
{
	long pid, port;
	int st;

	if ((st = pgcluster_status(d)) == -1)
		return 1;
	if (st == 0) {
		pgcluster_postmaster_info(d, &pid, &port);
		printf("PostgreSQL is already running in %s (pid %ld, port "
		       "%ld)\n",
		    d->root, pid, port);
		return 0;
	}
	if (!background)
		return pgcluster_exec(d);
	if (pgcluster_start(d) == -1)
		return 1;
	pgcluster_postmaster_info(d, &pid, &port);
	printf("Started PostgreSQL in %s (pid %ld, port %ld; log: %s/%s)\n",
	    d->root, pid, port, d->root, PGCLUSTER_LOG_FILE);
	printf("Stop it with: ktadmin db --stop --pg-rootdir %s\n", d->root);
	return 0;
}

static int
db_stop(const struct pgcluster *d)
{
	int st;

	if ((st = pgcluster_status(d)) == -1)
		return 1;
	if (st == 3) {
		printf("PostgreSQL is not running in %s\n", d->root);
		return 0;
	}
	if (pgcluster_stop(d) == -1)
		return 1;
	printf("Stopped PostgreSQL in %s\n", d->root);
	return 0;
}

static int
db_status(const struct pgcluster *d)
{
	long pid, port;
	int st;

	if ((st = pgcluster_status(d)) == -1)
		return 1;
	if (st == 3) {
		printf("PostgreSQL is not running in %s\n", d->root);
		return 3;
	}
	pgcluster_postmaster_info(d, &pid, &port);
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
	    {"socket-dir", required_argument, NULL, 'O'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	static const char *const names[] = {"", "--bootstrap", "--start",
	    "--stop", "--status", "--enable-synchronous-replication",
	    "--disable-synchronous-replication"};
	enum db_action action = DB_NONE, a;
	const char *rootdir = NULL, *confdir = NULL, *mhost = NULL;
	const char *listen = NULL, *sockdir = NULL;
	struct pgcluster d;
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
		case 'O':
			sockdir = optarg;
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
	if ((listen != NULL || sockdir != NULL) && action != DB_BOOTSTRAP) {
		cli_error("%s goes with --bootstrap",
		    listen != NULL ? "--listen" : "--socket-dir");
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
	if ((r = pgcluster_setup(&d, rootdir, port)) != 0)
		return r;
	pgcluster_set_listen(&d, listen);
	/* The standard cluster also answers in libpq's default socket dir. */
	if (sockdir == NULL)
		sockdir = port == 0 || port == KT_DEFAULT_DB_PORT
		    ? PGCLUSTER_SHARED_SOCKDIR
		    : "";
	if (action == DB_BOOTSTRAP && pgcluster_set_sockdir(&d, sockdir) == -1)
		return ktadmin_bad_usage("db");
	switch (action) {
	case DB_BOOTSTRAP:
		return db_bootstrap(&d, confdir, mhost,
		    mport != 0 ? mport : KT_DEFAULT_DB_PORT);
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
