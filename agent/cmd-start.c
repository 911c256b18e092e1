/* cmd-start.c - kt-agent start [ROLE]: start this host's roles. */
#include "agent.h"

int
cmd_start(int argc, char **argv)
{
	return lc_verb(argc, argv, "start", "running");
}
