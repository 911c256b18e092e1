/*
 * cmd-reset-token.c - keytrustee-orgtool reset-token: a client with token
 * sync (docs/legacy.md) must send the last token the server gave it; after
 * this, the server takes whatever token it sends next and goes on from
 * there (a client restored from a backup, whose token file is stale).
 */
#include <stdio.h>

#include "log.h"
#include "orgtool.h"

static int
reset_token(PGconn *db, const struct kt_conf *conf, const char *name,
    const struct orgtool_client *c)
{
	const char *params[1] = {c->fpr};
	PGresult *res;
	int ret = -1;

	(void)conf;
	(void)name;
	if (!c->token_sync) {
		cli_error("client %s does not sync tokens; there is no token "
			  "to reset",
		    c->fpr);
		cli_detail("only a client registered with token sync "
			   "(token_sync=1) sends a token");
		return -1;
	}
	if (c->token_reset) {
		fprintf(stderr,
		    "Note: the token of client %s is already reset: the "
		    "server takes the next one it sends; nothing changed\n",
		    c->fpr);
		return orgtool_audit(
		    db, c->org, "client.reset_token", c->fpr, "unchanged");
	}
	res = PQexecParams(db,
	    "UPDATE clients SET token_reset = true WHERE fingerprint = $1", 1,
	    NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		orgtool_pg_error(db, res, "cannot reset the client's token");
	else
		ret = orgtool_audit(
		    db, c->org, "client.reset_token", c->fpr, "ok");
	PQclear(res);
	if (ret == 0)
		fprintf(stderr,
		    "Token of client %s reset: the server takes the next "
		    "token it sends\n",
		    c->fpr);
	return ret;
}

int
cmd_reset_token(int argc, char **argv)
{
	static const struct orgtool_client_verb v = {
	    "reset-token", 0, reset_token};

	return orgtool_client_cmd(&v, argc, argv);
}
