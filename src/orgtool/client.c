/*
 * client.c - what the client verbs share (enable-client, disable-client,
 * activate-client, reset-token): their options, the client found by its
 * OpenPGP fingerprint with its row locked, and the one transaction around
 * the verb's change and its audit row.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "orgtool.h"
#include "pgp.h"

#define CLIENT_NAME_HELP                                                       \
	"  -n, --name NAME       the organization to activate the client "     \
	"in\n"
#define CLIENT_FPR_HELP                                                        \
	"  --fingerprint FINGERPRINT\n"                                        \
	"                        the client's OpenPGP fingerprint: 40 hex "    \
	"digits,\n"                                                            \
	"                        optionally as 4096R/<40 hex digits>\n"

static void
client_usage(FILE *fp, const struct orgtool_client_verb *v)
{
	orgtool_cmd_usage(fp, v->cmd,
	    v->takes_name ? CLIENT_NAME_HELP CLIENT_FPR_HELP : CLIENT_FPR_HELP);
}

static void
client_free(struct orgtool_client *c)
{
	free(c->org);
	free(c->hostname);
	c->org = c->hostname = NULL;
}

/* Read the client fpr with its row locked: 0, or -1 after the error. */
static int
client_lock(PGconn *db, const char *fpr, struct orgtool_client *c)
{
	const char *params[1] = {fpr};
	PGresult *res = NULL;
	int ret = -1;

	res = PQexecParams(db,
	    "SELECT c.state, o.name, c.hostname, c.token IS NOT NULL, "
	    "c.token_reset FROM clients c LEFT JOIN orgs o ON o.id = c.org_id "
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
	snprintf(c->fpr, sizeof(c->fpr), "%s", fpr);
	snprintf(c->state, sizeof(c->state), "%s", PQgetvalue(res, 0, 0));
	if ((!PQgetisnull(res, 0, 1) &&
		(c->org = strdup(PQgetvalue(res, 0, 1))) == NULL) ||
	    (c->hostname = strdup(PQgetvalue(res, 0, 2))) == NULL) {
		cli_error("out of memory");
		goto out;
	}
	c->token_sync = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
	c->token_reset = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
	ret = 0;
out:
	PQclear(res);
	return ret;
}

int
orgtool_client_set_state(PGconn *db, const struct orgtool_client *c,
    const char *state, const char *action)
{
	const char *params[2] = {c->fpr, state};
	PGresult *res = NULL;
	int ret = -1;

	/* A legacy client gets its organization from its activation. */
	if (c->org == NULL || strcmp(c->state, "unverified") == 0 ||
	    strcmp(c->state, "verified") == 0) {
		cli_error("client %s is not activated in an organization yet "
			  "(state %s)",
		    c->fpr, c->state);
		if (strcmp(c->state, "unverified") == 0)
			cli_detail("it has not answered its registration "
				   "challenge");
		cli_hint("activate it with '%s activate-client -n ORG "
			 "--fingerprint %s'",
		    ORGTOOL_PROGNAME, c->fpr);
		goto out;
	}
	if (strcmp(c->state, state) == 0) {
		fprintf(stderr,
		    "Note: client %s (organization %s) is already "
		    "%s; nothing changed\n",
		    c->fpr, c->org, state);
		ret = orgtool_audit(db, c->org, action, c->fpr, "unchanged");
		goto out;
	}
	fprintf(stderr, "Client %s (organization %s): %s -> %s\n", c->fpr,
	    c->org, c->state, state);
	res = PQexecParams(db,
	    "UPDATE clients SET state = $2 WHERE fingerprint = $1", 2, NULL,
	    params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		orgtool_pg_error(db, res, "cannot change the client's state");
		goto out;
	}
	ret = orgtool_audit(db, c->org, action, c->fpr, "ok");
out:
	PQclear(res);
	return ret;
}

int
orgtool_client_cmd(const struct orgtool_client_verb *v, int argc, char **argv)
{
	/* Without -n, the table from its second entry on. */
	static const struct option longopts[] = {
	    {"name", required_argument, NULL, 'n'},
	    {"fingerprint", required_argument, NULL, ORGTOOL_OPT_FINGERPRINT},
	    {"confdir", required_argument, NULL, ORGTOOL_OPT_CONFDIR},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *confdir = orgtool_confdir, *given = NULL, *name = NULL;
	struct orgtool_client c = {.org = NULL, .hostname = NULL};
	char fpr[PGP_FPR_LEN + 1], q[256];
	struct kt_conf *conf = NULL;
	PGconn *db = NULL;
	int ch, ret = 1;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, v->takes_name ? ":n:h" : ":h",
		    longopts + (v->takes_name ? 0 : 1), NULL)) != -1) {
		switch (ch) {
		case 'n':
			name = optarg;
			break;
		case ORGTOOL_OPT_FINGERPRINT:
			given = optarg;
			break;
		case ORGTOOL_OPT_CONFDIR:
			confdir = optarg;
			break;
		case 'h':
			client_usage(stdout, v);
			return 0;
		default:
			return cli_opt_error(
			    ORGTOOL_PROGNAME, v->cmd, ch, argv);
		}
	}
	if (optind < argc)
		return orgtool_opt_extra(v->cmd, argv[optind]);
	if (v->takes_name && name == NULL)
		return orgtool_opt_missing(v->cmd, "-n NAME");
	if (given == NULL)
		return orgtool_opt_missing(v->cmd, "--fingerprint FINGERPRINT");
	if (orgtool_require_root() == -1)
		return 1;
	if (name != NULL && orgtool_check_name(name) == -1)
		return 1;
	if (pgp_fpr_parse(given, fpr) == -1) {
		cli_error("invalid fingerprint \"%s\"",
		    cli_quote(given, q, sizeof(q)));
		cli_hint("give 40 hex digits, or 4096R/ followed by 40 hex "
			 "digits, as the client printed at registration");
		return 1;
	}
	if ((db = orgtool_connect(confdir, &conf)) == NULL)
		goto out;
	if (orgtool_begin(db) == -1 || client_lock(db, fpr, &c) == -1 ||
	    v->run(db, conf, name, &c) == -1 ||
	    orgtool_exec(db, "COMMIT") == -1)
		goto out;
	ret = 0;
out:
	orgtool_rollback(db);
	PQfinish(db);
	conf_free(conf);
	client_free(&c);
	return ret;
}
