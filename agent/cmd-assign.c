/*
 * cmd-assign.c - kt-agent assign: the role-assignment wizard as a command.
 * It proposes (or checks the given) hosts for the active and passive roles,
 * checks every role's topology and placement rules, and writes
 * deployment.json.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"

#define MAX_HOSTS 16

static int
host_name_ok(const char *h)
{
	if (*h == '\0' || *h == '-' || strlen(h) > 253)
		return 0;
	for (; *h; h++)
		if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') ||
			(*h >= '0' && *h <= '9') || *h == '-' || *h == '.'))
			return 0;
	return 1;
}

static int
has(json_t *roles, const char *role, const char *host)
{
	json_t *h;
	size_t i;

	json_array_foreach(json_object_get(roles, role), i, h)
	{
		if (strcmp(json_string_value(h), host) == 0)
			return 1;
	}
	return 0;
}

/* Check topology and placement rules; report each broken one. */
static int
check_rules(const struct desc *d, json_t *roles)
{
	yaml_node_t *rs = desc_get(d, d->root, "roles");
	size_t i, j, k;
	int bad = 0;

	for (i = 0; i < desc_len(rs); i++) {
		yaml_node_t *r = desc_at(d, rs, i);
		yaml_node_t *topo = desc_get(d, r, "topology");
		yaml_node_t *rules = desc_get(d, topo, "placementRules");
		const char *name = desc_str(d, r, "name");
		const char *s;
		size_t n = json_array_size(json_object_get(roles, name));
		long mn = 1, mx = -1;
		json_t *h;

		if ((s = desc_str(d, topo, "minInstances")) != NULL)
			mn = atol(s);
		if ((s = desc_str(d, topo, "maxInstances")) != NULL)
			mx = atol(s);
		if ((long)n < mn) {
			cli_error("role %s needs at least %ld instance%s, has "
				  "%zu",
			    name, mn, mn == 1 ? "" : "s", n);
			bad = 1;
		}
		if (mx >= 0 && (long)n > mx) {
			cli_error("role %s takes at most %ld instance%s, has "
				  "%zu",
			    name, mx, mx == 1 ? "" : "s", n);
			bad = 1;
		}
		for (j = 0; j < desc_len(rules); j++) {
			yaml_node_t *ru = desc_at(d, rules, j);
			const char *type = desc_str(d, ru, "type");
			const char *other = desc_str(d, ru, "role");
			int always = strcmp(type, "alwaysWith") == 0;

			json_array_foreach(json_object_get(roles, name), k, h)
			{
				const char *host = json_string_value(h);
				if (always != has(roles, other, host)) {
					cli_error("placement rule broken: %s "
						  "%s %s (%s:%d)",
					    name, type, other, d->file,
					    desc_line(ru));
					cli_detail("%s is on %s, %s %s", name,
					    host, other,
					    always ? "is not" : "is too");
					bad = 1;
				}
			}
		}
	}
	return bad ? -1 : 0;
}

static int
add_role(json_t *roles, const char *role, const char *host)
{
	json_t *a = json_object_get(roles, role);

	if (a == NULL) {
		a = json_array();
		if (json_object_set_new(roles, role, a) == -1)
			return -1;
	}
	return json_array_append_new(a, json_string(host));
}

static const char options[] =
    "  --descriptor FILE     the service descriptor (required)\n"
    "  --hosts H1[,H2]       the hosts of the service (required)\n"
    "  --active HOST         host of KEYTRUSTEE_ACTIVE_SERVER and DB_ACTIVE\n"
    "                        (default: the first host)\n"
    "  --passive HOST        host of KEYTRUSTEE_PASSIVE_SERVER and "
    "DB_PASSIVE\n"
    "                        (default: the next host, none with one host)\n"
    "  --csd DIR             the unpacked CSD holding scripts/ (default: "
    "the\n"
    "                        descriptor's dir/..)\n"
    "  --set NAME=VALUE      a parameter's value (repeatable)\n";

int
cmd_assign(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"descriptor", required_argument, NULL, 'd'},
	    {"hosts", required_argument, NULL, 'H'},
	    {"active", required_argument, NULL, 'a'},
	    {"passive", required_argument, NULL, 'p'},
	    {"csd", required_argument, NULL, 'c'},
	    {"set", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *descfile = NULL, *hostlist = NULL, *active = NULL;
	const char *passive = NULL, *csd = NULL;
	char *hosts[MAX_HOSTS], *hl = NULL, *tok, *save = NULL;
	char dpath[PATH_MAX], cpath[PATH_MAX], tmp[PATH_MAX];
	json_t *params = json_object(), *roles = json_object(), *dep = NULL;
	json_t *jhosts = json_array();
	struct desc d;
	size_t nhosts = 0, i;
	int ch, ret = 1;

	memset(&d, 0, sizeof(d));
	while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			descfile = optarg;
			break;
		case 'H':
			hostlist = optarg;
			break;
		case 'a':
			active = optarg;
			break;
		case 'p':
			passive = optarg;
			break;
		case 'c':
			csd = optarg;
			break;
		case 's': {
			char *eq = strchr(optarg, '=');
			if (eq == NULL || eq == optarg) {
				cli_error(
				    "--set: '%s' is not NAME=VALUE", optarg);
				ret = 2;
				goto out;
			}
			*eq = '\0';
			json_object_set_new(
			    params, optarg, json_string(eq + 1));
			*eq = '=';
			break;
		}
		case 'h':
			agent_usage(stdout, "assign", options);
			ret = 0;
			goto out;
		default:
			ret = cli_opt_error(AGENT_PROGNAME, "assign", ch, argv);
			goto out;
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument '%s'", argv[optind]);
		ret = 2;
		goto out;
	}
	if (descfile == NULL || hostlist == NULL) {
		cli_error("%s is required",
		    descfile == NULL ? "--descriptor" : "--hosts");
		cli_hint("run 'kt-agent assign --help' for usage");
		ret = 2;
		goto out;
	}
	if (desc_load(&d, descfile, NULL, 0) == -1 || desc_validate(&d) != 0) {
		cli_error("%s is not a valid descriptor", descfile);
		goto out;
	}
	if ((hl = strdup(hostlist)) == NULL)
		goto out;
	for (tok = strtok_r(hl, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		if (!host_name_ok(tok)) {
			cli_error("--hosts: '%s' is not a host name", tok);
			goto out;
		}
		for (i = 0; i < nhosts; i++)
			if (strcmp(hosts[i], tok) == 0) {
				cli_error("--hosts: %s is listed twice", tok);
				goto out;
			}
		if (nhosts == MAX_HOSTS) {
			cli_error("--hosts: at most %d hosts", MAX_HOSTS);
			goto out;
		}
		hosts[nhosts++] = tok;
		json_array_append_new(jhosts, json_string(tok));
	}
	if (nhosts == 0) {
		cli_error("--hosts: no host given");
		goto out;
	}
	for (i = 0; i < 2; i++) {
		const char *h = i == 0 ? active : passive;
		size_t j;
		if (h == NULL)
			continue;
		for (j = 0; j < nhosts; j++)
			if (strcmp(hosts[j], h) == 0)
				break;
		if (j == nhosts) {
			cli_error("--%s: %s is not one of --hosts",
			    i == 0 ? "active" : "passive", h);
			goto out;
		}
	}
	if (active == NULL)
		active = passive != NULL && strcmp(hosts[0], passive) == 0 &&
			nhosts > 1
		    ? hosts[1]
		    : hosts[0];
	if (passive == NULL && nhosts > 1)
		for (i = 0; i < nhosts && passive == NULL; i++)
			if (strcmp(hosts[i], active) != 0)
				passive = hosts[i];
	add_role(roles, "KEYTRUSTEE_ACTIVE_SERVER", active);
	add_role(roles, "DB_ACTIVE", active);
	if (passive != NULL) {
		add_role(roles, "KEYTRUSTEE_PASSIVE_SERVER", passive);
		add_role(roles, "DB_PASSIVE", passive);
	}
	if (check_rules(&d, roles) == -1) {
		cli_hint("put the passive roles on another host (--passive)");
		goto out;
	}
	{
		const char *k;
		json_t *v;
		char why[256];
		json_object_foreach(params, k, v)
		{
			yaml_node_t *p = desc_param(&d, k);
			const char *m;
			if (p == NULL) {
				cli_error("--set: the descriptor has no "
					  "parameter '%s'",
				    k);
				goto out;
			}
			if ((m = desc_check_value(&d, p, json_string_value(v),
				 why, sizeof(why))) != NULL) {
				cli_error("--set %s: %s", k, m);
				goto out;
			}
		}
	}
	if (realpath(descfile, dpath) == NULL) {
		cli_error("%s: %s", descfile, strerror(errno));
		goto out;
	}
	if (csd == NULL) {
		snprintf(tmp, sizeof(tmp), "%s/..", dirname(strdupa(dpath)));
		csd = tmp;
	}
	if (realpath(csd, cpath) == NULL) {
		cli_error("--csd %s: %s", csd, strerror(errno));
		goto out;
	}
	dep = json_pack("{s:s, s:s, s:O, s:O, s:O}", "descriptor", dpath, "csd",
	    cpath, "hosts", jhosts, "roles", roles, "params", params);
	if (dep == NULL || state_save_json("deployment.json", dep) == -1)
		goto out;
	printf("Assignment of %s (%s/deployment.json):\n",
	    desc_str(&d, d.root, "name"), agent_state_dir);
	{
		yaml_node_t *rs = desc_get(&d, d.root, "roles");
		for (i = 0; i < desc_len(rs); i++) {
			const char *rn =
			    desc_str(&d, desc_at(&d, rs, i), "name");
			json_t *hs = json_object_get(roles, rn);
			printf("  %-26s %s\n", rn,
			    hs ? json_string_value(json_array_get(hs, 0))
			       : "(none)");
		}
	}
	ret = 0;
out:
	free(hl);
	desc_free(&d);
	json_decref(params);
	json_decref(roles);
	json_decref(jhosts);
	json_decref(dep);
	return ret;
}
