/*
 * cmd-disable-client.c - keytrustee-orgtool disable-client: stop a client;
 * the server refuses its requests until it is enabled again.
 */
#include "orgtool.h"

int
cmd_disable_client(int argc, char **argv)
{
	return orgtool_client_cmd(
	    "disable-client", argc, argv, "disabled", "client.disable");
}
