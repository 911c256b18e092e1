/*
 * client.c - what enable-client and disable-client share: find a client by
 * its OpenPGP fingerprint and set its state, with an audit row, in one
 * transaction.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "orgtool.h"

static void
client_usage(FILE *fp, const char *cmd)
{
	orgtool_cmd_usage(fp, cmd,
	    "  --fingerprint FINGERPRINT\n"
	    "                        the client's OpenPGP fingerprint: 40 hex "
	    "digits,\n"
	    "                        optionally as 4096R/<40 hex digits>\n");
}

static int
client_set_state(
    PGconn *db, const char *fpr, const char *state, const char *action)
{
	const char *params[2] = {fpr, state};
	PGresult *res = NULL;
	char *org = NULL;
	int ret = -1;

	res = PQexecParams(db,
	    "SELECT c.state, o.name FROM clients c "
	    "JOIN orgs o ON o.id = c.org_id "
	    "WHERE c.fingerprint = $1 FOR UPDATE OF c",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		orgtool_pg_error(db, res, "cannot read the clients");
		goto out;
	}
	if (PQntuples(res) != 1) {
		cli_error("no client with fingerprint %s", fpr);
		cli_hint("'%s list' shows each organization's clients",
		    ORGTOOL_PROGNAME);
		goto out;
	}
	if ((org = strdup(PQgetvalue(res, 0, 1))) == NULL) {
		cli_error("out of memory");
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), state) == 0) {
		fprintf(stderr,
		    "Note: client %s (organization %s) is already "
		    "%s; nothing changed\n",
		    fpr, org, state);
		ret = orgtool_audit(db, org, action, fpr, "unchanged");
		goto out;
	}
	fprintf(stderr, "Client %s (organization %s): %s -> %s\n", fpr, org,
	    PQgetvalue(res, 0, 0), state);
	PQclear(res);
	res = PQexecParams(db,
	    "UPDATE clients SET state = $2 WHERE fingerprint = $1", 2, NULL,
	    params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		orgtool_pg_error(db, res, "cannot change the client's state");
		goto out;
	}
	ret = orgtool_audit(db, org, action, fpr, "ok");
out:
	PQclear(res);
	free(org);
	return ret;
}

int
orgtool_client_cmd(const char *cmd, int argc, char **argv, const char *state,
    const char *action)
{
	static const struct option longopts[] = {
	    {"fingerprint", required_argument, NULL, ORGTOOL_OPT_FINGERPRINT},
	    {"confdir", required_argument, NULL, ORGTOOL_OPT_CONFDIR},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *confdir = orgtool_confdir, *given = NULL;
	char fpr[ORGTOOL_FPR_LEN + 1], q[256];
	PGconn *db = NULL;
	int ch, ret = 1;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (ch) {
		case ORGTOOL_OPT_FINGERPRINT:
			given = optarg;
			break;
		case ORGTOOL_OPT_CONFDIR:
			confdir = optarg;
			break;
		case 'h':
			client_usage(stdout, cmd);
			return 0;
		default:
			return cli_opt_error(ORGTOOL_PROGNAME, cmd, ch, argv);
		}
	}
	if (optind < argc)
		return orgtool_opt_extra(cmd, argv[optind]);
	if (given == NULL)
		return orgtool_opt_missing(cmd, "--fingerprint FINGERPRINT");
	if (orgtool_require_root() == -1)
		return 1;
	if (orgtool_parse_fingerprint(given, fpr) == -1) {
		cli_error("invalid fingerprint \"%s\"",
		    cli_quote(given, q, sizeof(q)));
		cli_hint("give 40 hex digits, or 4096R/ followed by 40 hex "
			 "digits, as the client printed at registration");
		return 1;
	}
	if ((db = orgtool_connect(confdir, NULL)) == NULL)
		goto out;
	if (orgtool_begin(db) == -1 ||
	    client_set_state(db, fpr, state, action) == -1 ||
	    orgtool_exec(db, "COMMIT") == -1)
		goto out;
	ret = 0;
out:
	orgtool_rollback(db);
	PQfinish(db);
	return ret;
}
