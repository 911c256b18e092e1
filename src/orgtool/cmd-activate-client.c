/*
 * cmd-activate-client.c - keytrustee-orgtool activate-client: what a legacy
 * client's request_activation with the organization's authorization code
 * does (docs/legacy.md), from the server host without the code: a client
 * that answered its registration challenge (verified), or waits (pending),
 * becomes active in the organization, whose contacts are mailed the
 * client notice the server sends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mail.h"
#include "orgtool.h"

/*
 * Queue the client notice to each of the org's contacts, in the
 * transaction that activates the client, and wake the server's mailer.
 */
static int
activate_mail(PGconn *db, const struct kt_conf *conf, const char *org,
    const struct orgtool_client *c)
{
	char *subject = NULL, *body = NULL;
	const char *params[3];
	PGresult *res = NULL;
	int i, ret = -1;

	if (mail_client_notice(conf, org, c->fpr, c->hostname, "active",
		&subject, &body) == -1) {
		cli_error("out of memory");
		goto out;
	}
	params[0] = org;
	params[1] = subject;
	params[2] = body;
	res = PQexecParams(db,
	    "WITH " MAIL_NOTICE_CTE("", "o.name = $1", "$2", "$3") " "
	    "SELECT rcpt, pg_notify('" MAIL_CHANNEL "', id::text) FROM m "
	    "ORDER BY id",
	    3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		orgtool_pg_error(db, res, "cannot queue the client notice");
		goto out;
	}
	for (i = 0; i < PQntuples(res); i++)
		fprintf(stderr, "Queued client registration mail to %s\n",
		    PQgetvalue(res, i, 0));
	ret = 0;
out:
	PQclear(res);
	free(subject);
	free(body);
	return ret;
}

/* 0 when c may be activated in org, else -1 after the reason. */
static int
activate_check(const char *org, const struct orgtool_client *c)
{
	if (c->org != NULL && strcmp(c->org, org) != 0) {
		cli_error("client %s is in organization %s, not %s", c->fpr,
		    c->org, org);
		cli_hint("activate-client does not move a client between "
			 "organizations");
		return -1;
	}
	if (strcmp(c->state, "unverified") == 0) {
		cli_error("client %s has not answered its registration "
			  "challenge (state unverified)",
		    c->fpr);
		cli_hint("once the client has answered it (its 'verify' "
			 "request), run this again");
		return -1;
	}
	if (strcmp(c->state, "disabled") == 0) {
		cli_error("client %s is disabled", c->fpr);
		cli_hint("'%s enable-client --fingerprint %s' enables it "
			 "again",
		    ORGTOOL_PROGNAME, c->fpr);
		return -1;
	}
	return 0;
}

static int
activate_client(PGconn *db, const struct kt_conf *conf, const char *name,
    const struct orgtool_client *c)
{
	const char *params[2] = {c->fpr, name};
	PGresult *res = NULL;
	int ret = -1;

	/* The organization, locked against a concurrent change. */
	res = PQexecParams(db, "SELECT 1 FROM orgs WHERE name = $1 FOR SHARE",
	    1, NULL, params + 1, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		orgtool_pg_error(db, res, "cannot read the organizations");
		goto out;
	}
	if (PQntuples(res) != 1) {
		orgtool_unknown_org(name);
		goto out;
	}
	PQclear(res);
	res = NULL;
	if (activate_check(name, c) == -1)
		goto out;
	if (strcmp(c->state, "active") == 0 && c->org != NULL) {
		fprintf(stderr,
		    "Note: client %s (organization %s) is already active; "
		    "nothing changed\n",
		    c->fpr, name);
		ret = orgtool_audit(
		    db, name, "client.activate", c->fpr, "unchanged");
		goto out;
	}
	fprintf(stderr, "Client %s (organization %s): %s -> active\n", c->fpr,
	    name, c->state);
	res = PQexecParams(db,
	    "UPDATE clients SET state = 'active', "
	    "org_id = (SELECT id FROM orgs WHERE name = $2) "
	    "WHERE fingerprint = $1",
	    2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		orgtool_pg_error(db, res, "cannot activate the client");
		goto out;
	}
	if (orgtool_audit(db, name, "client.activate", c->fpr, "ok") == -1 ||
	    activate_mail(db, conf, name, c) == -1)
		goto out;
	ret = 0;
out:
	PQclear(res);
	return ret;
}

int
cmd_activate_client(int argc, char **argv)
{
	static const struct orgtool_client_verb v = {
	    "activate-client", 1, activate_client};

	return orgtool_client_cmd(&v, argc, argv);
}
