/*
 * cmd-set-auth.c - keytrustee-orgtool set-auth: set an organization's
 * authorization code; an empty one lets clients register without it
 * (automatic approval).  The code never goes to the audit log.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "orgtool.h"

#define SET_AUTH_MAX 1024

static void
set_auth_usage(FILE *fp)
{
	orgtool_cmd_usage(fp, "set-auth",
	    "  -n, --name NAME       organization name\n"
	    "  -s, --secret SECRET   the new authorization code; \"\" allows "
	    "automatic\n"
	    "                        approval without a code\n");
}

static int
set_auth(PGconn *db, const char *name, const char *secret)
{
	const char *params[2] = {name, secret};
	PGresult *res = NULL;
	int ret = -1;

	res = PQexecParams(db,
	    "UPDATE orgs SET auth_secret = $2 WHERE name = $1 RETURNING id", 2,
	    NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		orgtool_pg_error(db, res, "cannot set the authorization code");
		goto out;
	}
	if (PQntuples(res) != 1) {
		orgtool_unknown_org(name);
		goto out;
	}
	/* What kind of change, never the code itself. */
	ret = orgtool_audit(db, name, "org.set_auth",
	    *secret == '\0' ? "auth_secret cleared (automatic approval)"
			    : "auth_secret set",
	    "ok");
out:
	PQclear(res);
	return ret;
}

int
cmd_set_auth(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"name", required_argument, NULL, 'n'},
	    {"secret", required_argument, NULL, 's'},
	    {"confdir", required_argument, NULL, ORGTOOL_OPT_CONFDIR},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *confdir = orgtool_confdir, *name = NULL, *secret = NULL;
	const unsigned char *p;
	PGconn *db = NULL;
	int ch, ret = 1;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":n:s:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			name = optarg;
			break;
		case 's':
			secret = optarg;
			break;
		case ORGTOOL_OPT_CONFDIR:
			confdir = optarg;
			break;
		case 'h':
			set_auth_usage(stdout);
			return 0;
		default:
			return cli_opt_error(ORGTOOL_PROGNAME, "set-auth", ch, argv);
		}
	}
	if (optind < argc)
		return orgtool_opt_extra("set-auth", argv[optind]);
	if (name == NULL)
		return orgtool_opt_missing("set-auth", "-n NAME");
	if (secret == NULL)
		return orgtool_opt_missing("set-auth", "-s SECRET");
	if (orgtool_require_root() == -1)
		return 1;
	if (orgtool_check_name(name) == -1)
		goto out;
	if (strlen(secret) > SET_AUTH_MAX) {
		cli_error("the authorization code is longer than %d "
			  "characters",
		    SET_AUTH_MAX);
		goto out;
	}
	for (p = (const unsigned char *)secret; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f) {
			/* Never echo the code itself. */
			cli_error("the authorization code contains a control "
				  "character");
			goto out;
		}
	if ((db = orgtool_connect(confdir, NULL)) == NULL)
		goto out;
	if (orgtool_begin(db) == -1 ||
	    set_auth(db, name, secret) == -1 ||
	    orgtool_exec(db, "COMMIT") == -1)
		goto out;
	fprintf(stderr, "%s\n",
	    *secret == '\0' ? "Authorization code cleared: clients register "
			      "without one (automatic approval)"
			    : "Authorization code set");
	ret = 0;
out:
	orgtool_rollback(db);
	PQfinish(db);
	return ret;
}
