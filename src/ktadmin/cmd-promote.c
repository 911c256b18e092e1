/*
 * cmd-promote.c - ktadmin promote: turn the passive server's PostgreSQL
 * replica into a primary, so that the passive becomes the active server
 * after the active is lost for good.  The guide does not support this
 * (Cloudera restores the lost host from backup instead); docs/ha.md says
 * when it is safe.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "conf.h"
#include "ktadmin.h"
#include "log.h"
#include "pgcluster.h"
#include "replication.h"

static void
promote_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ktadmin promote --pg-rootdir DIR [--confdir DIR]\n\n"
	    "Make this passive Key Trustee Server's database a primary: the "
	    "passive\n"
	    "becomes the active server.  Only when the old active is gone for "
	    "good\n"
	    "(see ktadmin(8), docs/ha.md); it refuses while the active still "
	    "streams to "
	    "it.\n\n"
	    "      --pg-rootdir DIR  the passive's PostgreSQL data directory\n"
	    "  -c, --confdir DIR     config dir (default "
	    "$KEYTRUSTEE_HOME/.keytrustee,\n"
	    "                        KEYTRUSTEE_HOME defaults to %s)\n"
	    "  -h, --help            show this help\n",
	    KT_DEFAULT_HOME);
}

/* One row, one column of a fixed query; NULL (reported) on error. */
static char *
promote_query(PGconn *db, const char *sql)
{
	PGresult *res = PQexec(db, sql);
	char *v = NULL;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		v = strdup(PQgetvalue(res, 0, 0));
	else {
		cli_error("query failed: %s", sql);
		cli_detail_lines(PQerrorMessage(db));
	}
	PQclear(res);
	return v;
}

static int
promote_run(const struct pgcluster *d, const char *confdir)
{
	struct kt_conf *c = NULL;
	PGconn *db = NULL;
	char *v = NULL;
	int ret = 1, st;

	if ((st = pgcluster_status(d)) == -1)
		goto out;
	if (st == 3) {
		cli_error("PostgreSQL is not running in %s", d->root);
		cli_hint("start it first: ktadmin db --start --pg-rootdir %s "
			 "--background",
		    d->root);
		goto out;
	}
	if (pgcluster_conf_connect(confdir, &c, &db, "promote") == -1 ||
	    (v = promote_query(db, "SELECT pg_is_in_recovery()")) == NULL)
		goto out;
	if (strcmp(v, "t") != 0) {
		cli_error("%s is not a passive server's database (it is "
			  "already a primary)",
		    d->root);
		goto out;
	}
	free(v);
	/* A standby still fed by the active: promoting it splits the brain. */
	if ((v = promote_query(db,
		 "SELECT count(*) FROM pg_stat_wal_receiver "
		 "WHERE status = 'streaming'")) == NULL)
		goto out;
	if (strcmp(v, "0") != 0) {
		cli_error("the active server's PostgreSQL still streams to "
			  "this passive");
		cli_detail("promoting now would leave two active servers "
			   "taking different writes");
		cli_hint("stop the active server and its database for good "
			 "first, then promote");
		goto out;
	}
	if (pgcluster_promote(d) == -1)
		goto out;
	free(v);
	if ((v = promote_query(db, "SELECT pg_is_in_recovery()")) == NULL)
		goto out;
	if (strcmp(v, "f") != 0) {
		cli_error(
		    "%s is still in recovery after pg_ctl promote", d->root);
		goto out;
	}
	/*
	 * The copy of the active may carry its synchronous_standby_names:
	 * with no standby of its own, the new active must not wait for one.
	 */
	if (replication_set_sync(db, 0, "promote") == -1)
		goto out;
	printf("Promoted the PostgreSQL cluster in %s: this server is now the "
	       "active Key Trustee Server\n",
	    d->root);
	printf("Its running keytrustee-server takes writes within a second; "
	       "keep the old active down,\n"
	       "and set up a new passive from this host (ktadmin db "
	       "--bootstrap --passive).\n");
	ret = 0;
out:
	free(v);
	if (db != NULL)
		PQfinish(db);
	conf_free(c);
	return ret;
}

int
cmd_promote(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"pg-rootdir", required_argument, NULL, 'r'},
	    {"confdir", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *rootdir = NULL, *confdir = NULL;
	struct pgcluster d;
	int ch, r;

	memset(&d, 0, sizeof(d));
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			rootdir = optarg;
			break;
		case 'c':
			confdir = optarg;
			break;
		case 'h':
			promote_usage(stdout);
			return 0;
		default:
			return cli_opt_error("ktadmin", "promote", ch, argv);
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument \"%s\"", argv[optind]);
		return ktadmin_bad_usage("promote");
	}
	if (rootdir == NULL) {
		cli_error("--pg-rootdir is required");
		cli_hint("give the passive's PostgreSQL data directory, e.g. "
			 "--pg-rootdir %s/db",
		    KT_DEFAULT_HOME);
		return 2;
	}
	if ((r = pgcluster_setup(&d, rootdir, 0)) != 0)
		return r;
	return promote_run(&d, confdir);
}
