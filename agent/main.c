/*
 * main.c - kt-agent: validates the KEYTRUSTEE_SERVER service descriptor,
 * assigns its roles to hosts, runs its lifecycle commands and the Actions
 * menu, supervises this host's role processes and manages parcels.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "cmdtab.h"
#include "log.h"

const char *agent_state_dir;
const char *agent_host;
const char *agent_parcels_root;
const char *agent_self;

static const struct cmdtab_cmd cmds[] = {
    {"validate", "validate FILE",
	"Check a service descriptor; every error as file:line: path: reason.",
	cmd_validate},
    {"assign",
	"assign --descriptor FILE --hosts H1[,H2] [--active H1] "
	"[--passive H2]\n              [--csd DIR] [--set NAME=VALUE]...",
	"Propose (or check) a role assignment that keeps the placement rules\n"
	"and write it as this agent's deployment.",
	cmd_assign},
    {"actions", "actions [--role ROLE]",
	"The Actions menu: which commands can run now, given the roles' "
	"state.",
	cmd_actions},
    {"exec", "exec COMMAND [--role ROLE]",
	"Run a command of the Actions menu (or a role command with --role).",
	cmd_exec},
    {"start", "start [ROLE] [--timeout S]",
	"Start this host's roles (or one), under the supervisor.", cmd_start},
    {"stop", "stop [ROLE] [--timeout S]", "Stop this host's roles (or one).",
	cmd_stop},
    {"status", "status [ROLE]", "Show the state of this host's roles.",
	cmd_status},
    {"run", "run",
	"Stay up: supervise this host's role processes, restart a crashed "
	"one\nwith backoff, keep status.json.",
	cmd_run},
    {"history", "history [SEQ]",
	"List the commands run (exit code, times), or show one with its "
	"output.",
	cmd_history},
    {"schedule", "schedule [show|remove]",
	"Show (default) or remove the cron schedules the descriptor's backup\n"
	"commands installed (through the parcel's kt-backup-schedule.sh).",
	cmd_schedule},
    {"parcel",
	"parcel install FILE [--manifest F] | activate NAME-VERSION | "
	"deactivate | list",
	"Install, activate, deactivate and list parcels under PARCELS_ROOT.",
	cmd_parcel},
};

static const struct cmdtab tab = {
    .progname = AGENT_PROGNAME,
    .manpage = "kt-agent(8)",
    .synopsis = "[--state DIR] [--host NAME] [--parcels-root DIR] COMMAND "
		"[ARGS]",
    .global = "[global options]",
    .description =
	"The host agent of the KEYTRUSTEE_SERVER service.\n\n"
	"global options:\n"
	"  --state DIR         agent state (default $KT_AGENT_STATE, "
	"else " AGENT_DEFAULT_STATE ")\n"
	"  --host NAME         this host's name in the assignment (default\n"
	"                      $KT_AGENT_HOST, else the host name)\n"
	"  --parcels-root DIR  default $PARCELS_ROOT, else "
	AGENT_DEFAULT_PARCELS_ROOT "\n"
	"  -h, --help          show this help\n\n",
    .list = CMDTAB_LIST_USAGE,
    .words = CMDTAB_WORDS_SCRIPT,
    .cmds = cmds,
    .ncmds = sizeof(cmds) / sizeof(cmds[0]),
};

void
agent_usage(FILE *fp, const char *name, const char *options)
{
	const struct cmdtab_cmd *c = cmdtab_find(&tab, name);

	if (c == NULL)
		return;
	cmdtab_help(&tab, c, fp);
	if (options != NULL && *options != '\0')
		fprintf(fp, "\noptions:\n%s", options);
	fprintf(fp, "  -h, --help            show this help\n");
}

int
agent_getopt(int argc, char **argv, const char *name, const char *options,
    const char **role)
{
	static const struct option with_role[] = {
	    {"role", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const struct option *longopts = role ? with_role : with_role + 1;
	int ch;

	while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (ch == 'r') {
			*role = optarg;
			continue;
		}
		if (ch == 'h') {
			agent_usage(stdout, name, options);
			return 0;
		}
		return cli_opt_error(AGENT_PROGNAME, name, ch, argv);
	}
	return -1;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"state", required_argument, NULL, 's'},
	    {"host", required_argument, NULL, 'H'},
	    {"parcels-root", required_argument, NULL, 'P'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	static char hostbuf[HOST_NAME_MAX + 1], self[PATH_MAX];
	ssize_t n;
	int ch;

	agent_state_dir = getenv("KT_AGENT_STATE");
	agent_host = getenv("KT_AGENT_HOST");
	agent_parcels_root = getenv("PARCELS_ROOT");
	opterr = 0;
	/* Global options stop at the command (the '+'). */
	while ((ch = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			agent_state_dir = optarg;
			break;
		case 'H':
			agent_host = optarg;
			break;
		case 'P':
			agent_parcels_root = optarg;
			break;
		case 'h':
			cmdtab_usage(&tab, stdout);
			return 0;
		default:
			return cli_opt_error(AGENT_PROGNAME, NULL, ch, argv);
		}
	}
	if (agent_state_dir == NULL || *agent_state_dir == '\0')
		agent_state_dir = AGENT_DEFAULT_STATE;
	if (agent_parcels_root == NULL || *agent_parcels_root == '\0')
		agent_parcels_root = AGENT_DEFAULT_PARCELS_ROOT;
	if (agent_host == NULL || *agent_host == '\0') {
		if (gethostname(hostbuf, sizeof(hostbuf) - 1) == -1)
			snprintf(hostbuf, sizeof(hostbuf), "localhost");
		agent_host = hostbuf;
	}
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) > 0) {
		self[n] = '\0';
		agent_self = self;
	} else {
		agent_self = argv[0];
	}
	argc -= optind;
	argv += optind;
	optind = 0; /* glibc: re-initialise getopt (permuting again) */
	return cmdtab_dispatch(&tab, argc, argv);
}
