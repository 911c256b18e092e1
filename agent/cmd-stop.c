/* cmd-stop.c - kt-agent stop [ROLE]: stop this host's roles. */
#include "agent.h"

int
cmd_stop(int argc, char **argv)
{
	return lc_verb(argc, argv, "stop", "stopped");
}
