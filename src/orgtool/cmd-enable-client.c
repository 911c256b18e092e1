/*
 * cmd-enable-client.c - keytrustee-orgtool enable-client: approve a client
 * that registered without the organization's authorization code (pending),
 * or enable a disabled one again.
 */
#include "orgtool.h"

int
cmd_enable_client(int argc, char **argv)
{
	return orgtool_client_cmd(
	    "enable-client", argc, argv, "active", "client.enable");
}
