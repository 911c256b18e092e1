/*
 * cmd-enable-client.c - keytrustee-orgtool enable-client: approve a client
 * that registered without the organization's authorization code (pending),
 * or enable a disabled one again.
 */
#include "orgtool.h"

static int
enable_client(PGconn *db, const struct kt_conf *conf, const char *name,
    const struct orgtool_client *c)
{
	(void)conf;
	(void)name;
	return orgtool_client_set_state(db, c, "active", "client.enable");
}

int
cmd_enable_client(int argc, char **argv)
{
	static const struct orgtool_client_verb v = {
	    "enable-client", 0, enable_client};

	return orgtool_client_cmd(&v, argc, argv);
}
