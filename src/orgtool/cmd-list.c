/*
 * cmd-list.c - keytrustee-orgtool list: every organization as JSON keyed by
 * name, with the guide's fields (auth_secret, contacts, creation,
 * expiration, key_info, name, state, uuid) and the organization's clients.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "orgtool.h"

/* Times as the guide prints them: UTC, to the second, without a zone. */
#define LIST_ISO "'YYYY-MM-DD\"T\"HH24:MI:SS'"

static void
list_usage(FILE *fp)
{
	orgtool_cmd_usage(fp, "list", "");
}

/* json_object_set_new that reports failure (out of memory). */
static int
list_set(json_t *obj, const char *key, json_t *value)
{
	if (value == NULL)
		return -1;
	return json_object_set_new(obj, key, value);
}

static json_t *
list_orgs(PGconn *db)
{
	PGresult *res = NULL;
	json_t *all = NULL, *org = NULL, *contacts = NULL, *tmp;
	json_error_t jerr;
	int i;

	res = PQexecParams(db,
	    "SELECT name, auth_secret, array_to_json(contacts)::text, "
	    "to_char(creation, " LIST_ISO "), "
	    "to_char(expiration, " LIST_ISO "), key_info, state, uuid "
	    "FROM orgs ORDER BY name",
	    0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		orgtool_pg_error(db, res, "cannot read the organizations");
		goto fail;
	}
	if ((all = json_object()) == NULL)
		goto nomem;
	for (i = 0; i < PQntuples(res); i++) {
		contacts = json_loads(PQgetvalue(res, i, 2), 0, &jerr);
		if (contacts == NULL || !json_is_array(contacts)) {
			cli_error("organization %s: unreadable contacts",
			    PQgetvalue(res, i, 0));
			goto fail;
		}
		if ((org = json_object()) == NULL)
			goto nomem;
		/* json_object_set_new takes the reference even on failure. */
		tmp = contacts;
		contacts = NULL;
		if (list_set(org, "contacts", tmp) == -1 ||
		    list_set(org, "auth_secret",
			json_string(PQgetvalue(res, i, 1))) == -1 ||
		    list_set(org, "creation",
			json_string(PQgetvalue(res, i, 3))) == -1 ||
		    list_set(org, "expiration",
			json_string(PQgetvalue(res, i, 4))) == -1 ||
		    list_set(org, "key_info",
			PQgetisnull(res, i, 5)
			    ? json_null()
			    : json_string(PQgetvalue(res, i, 5))) == -1 ||
		    list_set(org, "name", json_string(PQgetvalue(res, i, 0))) ==
			-1 ||
		    list_set(org, "state",
			json_integer(atoi(PQgetvalue(res, i, 6)))) == -1 ||
		    list_set(org, "uuid", json_string(PQgetvalue(res, i, 7))) ==
			-1 ||
		    list_set(org, "clients", json_array()) == -1)
			goto nomem;
		tmp = org;
		org = NULL;
		if (json_object_set_new(all, PQgetvalue(res, i, 0), tmp) == -1)
			goto nomem;
	}
	PQclear(res);
	return all;
nomem:
	cli_error("out of memory");
fail:
	PQclear(res);
	json_decref(contacts);
	json_decref(org);
	json_decref(all);
	return NULL;
}

/* Each organization's clients, in registration order. */
static int
list_clients(PGconn *db, json_t *all)
{
	PGresult *res = NULL;
	json_t *c = NULL, *org, *arr, *tmp;
	int i, ret = -1;

	res = PQexecParams(db,
	    "SELECT o.name, c.fingerprint, c.hostname, c.state, "
	    "to_char(c.registered AT TIME ZONE 'UTC', " LIST_ISO ") "
	    "FROM clients c JOIN orgs o ON o.id = c.org_id "
	    "ORDER BY o.name, c.registered, c.fingerprint",
	    0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		orgtool_pg_error(db, res, "cannot read the clients");
		goto out;
	}
	for (i = 0; i < PQntuples(res); i++) {
		if ((org = json_object_get(all, PQgetvalue(res, i, 0))) ==
			NULL ||
		    (arr = json_object_get(org, "clients")) == NULL)
			continue; /* made after the first query */
		if ((c = json_object()) == NULL ||
		    list_set(c, "fingerprint",
			json_string(PQgetvalue(res, i, 1))) == -1 ||
		    list_set(c, "hostname",
			json_string(PQgetvalue(res, i, 2))) == -1 ||
		    list_set(c, "state", json_string(PQgetvalue(res, i, 3))) ==
			-1 ||
		    list_set(c, "registered",
			json_string(PQgetvalue(res, i, 4))) == -1) {
			cli_error("out of memory");
			goto out;
		}
		/* json_array_append_new takes the reference even on failure. */
		tmp = c;
		c = NULL;
		if (json_array_append_new(arr, tmp) == -1) {
			cli_error("out of memory");
			goto out;
		}
	}
	ret = 0;
out:
	json_decref(c);
	PQclear(res);
	return ret;
}

int
cmd_list(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"confdir", required_argument, NULL, ORGTOOL_OPT_CONFDIR},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *confdir = orgtool_confdir;
	PGconn *db = NULL;
	json_t *all = NULL;
	char *text = NULL;
	int ch, ret = 1;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (ch) {
		case ORGTOOL_OPT_CONFDIR:
			confdir = optarg;
			break;
		case 'h':
			list_usage(stdout);
			return 0;
		default:
			return cli_opt_error(ORGTOOL_PROGNAME, "list", ch, argv);
		}
	}
	if (optind < argc)
		return orgtool_opt_extra("list", argv[optind]);
	if (orgtool_require_root() == -1)
		return 1;
	if ((db = orgtool_connect(confdir, NULL)) == NULL)
		goto out;
	/* One snapshot for both queries. */
	if (orgtool_exec(
		db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") == -1)
		goto out;
	if ((all = list_orgs(db)) == NULL || list_clients(db, all) == -1)
		goto out;
	if ((text = json_dumps(all, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL) {
		cli_error("out of memory");
		goto out;
	}
	if (printf("%s\n", text) < 0 || fflush(stdout) == EOF) {
		cli_error("cannot write the list to standard output");
		goto out;
	}
	ret = 0;
out:
	orgtool_rollback(db);
	PQfinish(db);
	json_decref(all);
	free(text);
	return ret;
}
