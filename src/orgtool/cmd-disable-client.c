/*
 * cmd-disable-client.c - keytrustee-orgtool disable-client: stop a client;
 * the server refuses its requests until it is enabled again.
 */
#include "orgtool.h"

static int
disable_client(PGconn *db, const struct kt_conf *conf, const char *name,
    const struct orgtool_client *c)
{
	(void)conf;
	(void)name;
	return orgtool_client_set_state(db, c, "disabled", "client.disable");
}

int
cmd_disable_client(int argc, char **argv)
{
	static const struct orgtool_client_verb v = {
	    "disable-client", 0, disable_client};

	return orgtool_client_cmd(&v, argc, argv);
}
