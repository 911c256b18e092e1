/* cmd-validate.c - kt-agent validate FILE: check a service descriptor. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "log.h"

int
cmd_validate(int argc, char **argv)
{
	struct desc d;
	int ch, n;

	memset(&d, 0, sizeof(d));
	if ((ch = agent_getopt(argc, argv, "validate", "", NULL)) != -1)
		return ch;
	if (optind + 1 != argc) {
		cli_error(optind == argc ? "a descriptor file is required"
					 : "only one descriptor file, please");
		cli_hint("run 'kt-agent validate --help' for usage");
		return 2;
	}
	if (desc_load(&d, argv[optind], NULL, 0) == 0)
		desc_validate(&d);
	n = d.nerrors;
	if (n == 0)
		printf("%s: valid: service %s %s, %zu roles, %zu commands, %zu "
		       "parameters\n",
		    argv[optind], desc_str(&d, d.root, "name"),
		    desc_str(&d, d.root, "version"),
		    desc_len(desc_get(&d, d.root, "roles")),
		    desc_len(desc_get(&d, d.root, "commands")),
		    desc_len(desc_get(&d, d.root, "parameters")));
	else
		fprintf(stderr, "%s: %d error%s\n", argv[optind], n,
		    n == 1 ? "" : "s");
	desc_free(&d);
	return n == 0 ? 0 : 1;
}
