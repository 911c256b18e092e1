/*
 * cmd-add.c - keytrustee-orgtool add: create an organization with its
 * contacts, or add contacts to an existing one.  Contacts are never removed.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "crypto.h"
#include "log.h"
#include "mail.h"
#include "orgtool.h"

#define ADD_SECRET_BYTES 16
#define ADD_UUID_LEN 43

static void
add_usage(FILE *fp)
{
	orgtool_cmd_usage(fp, "add",
	    "  -n, --name NAME       organization name: letters, digits, '-' "
	    "and '_'\n"
	    "                        (at most 64)\n"
	    "  -c, --contacts LIST   administrators' mail addresses, separated "
	    "by commas\n"
	    "                        without spaces; added to those the "
	    "organization\n"
	    "                        has (contacts are never removed); each "
	    "new contact\n"
	    "                        is mailed the KeyTrustee Contact "
	    "Registration link\n");
}

/*
 * Queue each new contact's "KeyTrustee Contact Registration" mail in the
 * transaction that adds it: it is sent when the org commits, never for a
 * contact that was not added.
 */
static int
add_mail(
    PGconn *db, const struct kt_conf *c, const char *name, char **v, size_t n)
{
	char err[1024];
	size_t i;

	for (i = 0; i < n; i++) {
		if (mail_enqueue_contact(db, c, name, v[i], err, sizeof(err)) ==
		    -1) {
			cli_error(
			    "cannot queue the registration mail to %s", v[i]);
			cli_detail_lines(err);
			return -1;
		}
		fprintf(
		    stderr, "Queued contact registration mail to %s\n", v[i]);
	}
	return 0;
}

/* base64 of 16 random bytes: 24 characters. */
static int
add_secret(char out[32])
{
	unsigned char raw[ADD_SECRET_BYTES];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, raw, sizeof(raw));
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

/*
 * Split LIST at commas into a NULL-terminated array of pointers into
 * *copy, without duplicates (case-insensitive).  Returns -1 after the
 * error when an element is empty or not a plausible address.
 */
static int
add_split_contacts(const char *list, char **copy, char ***out, size_t *nout)
{
	char q[512], q2[512], *s = NULL, *p, **v = NULL;
	const char *why;
	size_t n = 0, i, cap = 1;
	int ret = -1;

	for (p = (char *)list; *p != '\0'; p++)
		if (*p == ',')
			cap++;
	if ((s = strdup(list)) == NULL ||
	    (v = calloc(cap + 1, sizeof(*v))) == NULL) {
		cli_error("out of memory");
		goto out;
	}
	for (p = s;;) {
		char *comma = strchr(p, ',');

		if (comma != NULL)
			*comma = '\0';
		if (*p == '\0') {
			cli_error("empty address in the contact list \"%s\"",
			    cli_quote(list, q, sizeof(q)));
			cli_hint("separate addresses with one comma, without "
				 "spaces: a@example.com,b@example.com");
			goto out;
		}
		if ((why = orgtool_contact_problem(p)) != NULL) {
			cli_error("invalid contact address \"%s\"",
			    cli_quote(p, q2, sizeof(q2)));
			cli_detail("%s", why);
			cli_hint("separate addresses with one comma, without "
				 "spaces: a@example.com,b@example.com");
			goto out;
		}
		for (i = 0; i < n; i++)
			if (strcasecmp(v[i], p) == 0)
				break;
		if (i == n)
			v[n++] = p;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	*copy = s;
	*out = v;
	*nout = n;
	s = NULL;
	v = NULL;
	ret = 0;
out:
	free(s);
	free(v);
	return ret;
}

/* Join v[0..n) with commas (no element holds a comma). */
static char *
add_join(char **v, size_t n)
{
	size_t len = 1, i;
	char *s;

	for (i = 0; i < n; i++)
		len += strlen(v[i]) + 1;
	if ((s = malloc(len)) == NULL)
		return NULL;
	s[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			strcat(s, ",");
		strcat(s, v[i]);
	}
	return s;
}

/* 1 when addr is in the comma-separated list have (case-insensitive). */
static int
add_has_contact(const char *have, const char *addr)
{
	size_t len = strlen(addr);
	const char *p = have;

	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);

		if (n == len && strncasecmp(p, addr, len) == 0)
			return 1;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return 0;
}

/* 1 when the organization exists, 0 when not, -1. */
static int
add_exists(PGconn *db, const char *name)
{
	const char *params[1] = {name};
	PGresult *res;
	int ret = -1;

	res = PQexecParams(db, "SELECT 1 FROM orgs WHERE name = $1", 1, NULL,
	    params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		orgtool_pg_error(db, res, "cannot read the organizations");
	else
		ret = PQntuples(res) > 0;
	PQclear(res);
	return ret;
}

/* Create the organization; 1 when made, 0 when it already exists, -1. */
static int
add_create(PGconn *db, const char *name, const char *contacts)
{
	char uuid[ADD_UUID_LEN + 1], secret[32];
	const char *params[4];
	PGresult *res = NULL;
	int ret = -1;

	if (crypto_alnum(uuid, ADD_UUID_LEN) == -1 ||
	    add_secret(secret) == -1) {
		cli_error("cannot draw random bytes from OpenSSL");
		goto out;
	}
	params[0] = name;
	params[1] = uuid;
	params[2] = secret;
	params[3] = contacts;
	res = PQexecParams(db,
	    "INSERT INTO orgs (name, uuid, auth_secret, contacts) "
	    "VALUES ($1, $2, $3, string_to_array($4, ',')) "
	    "ON CONFLICT (name) DO NOTHING RETURNING id",
	    4, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		orgtool_pg_error(db, res, "cannot add the organization");
		goto out;
	}
	ret = PQntuples(res) == 1;
out:
	PQclear(res);
	OPENSSL_cleanse(secret, sizeof(secret));
	return ret;
}

/* Add the contacts the organization does not have yet. */
static int
add_contacts(
    PGconn *db, const struct kt_conf *c, const char *name, char **v, size_t n)
{
	const char *params[2];
	PGresult *res = NULL;
	char *have = NULL, *add = NULL, **fresh = NULL;
	size_t nfresh = 0, i;
	int ret = -1;

	params[0] = name;
	res = PQexecParams(db,
	    "SELECT array_to_string(contacts, ',') FROM orgs "
	    "WHERE name = $1 FOR UPDATE",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		orgtool_pg_error(db, res, "cannot read the organization");
		goto out;
	}
	if ((have = strdup(PQgetvalue(res, 0, 0))) == NULL ||
	    (fresh = calloc(n + 1, sizeof(*fresh))) == NULL) {
		cli_error("out of memory");
		goto out;
	}
	PQclear(res);
	res = NULL;
	for (i = 0; i < n; i++) {
		if (add_has_contact(have, v[i]))
			fprintf(stderr, "Contact %s is already listed\n", v[i]);
		else
			fresh[nfresh++] = v[i];
	}
	if (nfresh == 0) {
		fprintf(stderr,
		    "Nothing to add: organization %s already "
		    "lists every contact given\n",
		    name);
		ret = 0;
		goto out;
	}
	if ((add = add_join(fresh, nfresh)) == NULL) {
		cli_error("out of memory");
		goto out;
	}
	for (i = 0; i < nfresh; i++)
		fprintf(stderr, "Adding contact %s\n", fresh[i]);
	params[1] = add;
	res = PQexecParams(db,
	    "UPDATE orgs SET contacts = contacts || string_to_array($2, ',') "
	    "WHERE name = $1",
	    2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		orgtool_pg_error(db, res, "cannot add the contacts");
		goto out;
	}
	if (orgtool_audit(db, name, "org.add_contacts", add, "ok") == -1 ||
	    add_mail(db, c, name, fresh, nfresh) == -1)
		goto out;
	ret = 0;
out:
	PQclear(res);
	free(have);
	free(add);
	free(fresh);
	return ret;
}

int
cmd_add(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"name", required_argument, NULL, 'n'},
	    {"contacts", required_argument, NULL, 'c'},
	    {"confdir", required_argument, NULL, ORGTOOL_OPT_CONFDIR},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *confdir = orgtool_confdir, *name = NULL, *list = NULL;
	char *copy = NULL, *joined = NULL, **v = NULL;
	struct kt_conf *conf = NULL;
	PGconn *db = NULL;
	size_t n = 0;
	int ch, r, created = 0, ret = 1;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":n:c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			name = optarg;
			break;
		case 'c':
			list = optarg;
			break;
		case ORGTOOL_OPT_CONFDIR:
			confdir = optarg;
			break;
		case 'h':
			add_usage(stdout);
			return 0;
		default:
			return cli_opt_error(ORGTOOL_PROGNAME, "add", ch, argv);
		}
	}
	if (optind < argc)
		return orgtool_opt_extra("add", argv[optind]);
	if (name == NULL)
		return orgtool_opt_missing("add", "-n NAME");
	if (list == NULL)
		return orgtool_opt_missing("add", "-c CONTACTS");
	if (orgtool_require_root() == -1)
		return 1;
	if (orgtool_check_name(name) == -1 ||
	    add_split_contacts(list, &copy, &v, &n) == -1)
		goto out;
	if ((joined = add_join(v, n)) == NULL) {
		cli_error("out of memory");
		goto out;
	}
	if ((db = orgtool_connect(confdir, &conf)) == NULL)
		goto out;
	if (orgtool_begin(db) == -1)
		goto out;
	if ((r = add_exists(db, name)) == -1)
		goto out;
	if (r == 0) {
		fprintf(stderr, "Adding organization to database\n");
		fprintf(stderr, "Initializing random secret\n");
		/* 0: another orgtool made it meanwhile; add to that one. */
		if ((created = add_create(db, name, joined)) == -1)
			goto out;
	}
	if (created) {
		if (orgtool_audit(db, name, "org.add", joined, "ok") == -1 ||
		    add_mail(db, conf, name, v, n) == -1)
			goto out;
		fprintf(stderr, "Organization %s created with %zu contact%s\n",
		    name, n, n == 1 ? "" : "s");
	} else {
		fprintf(
		    stderr, "Organization %s exists; adding contacts\n", name);
		if (add_contacts(db, conf, name, v, n) == -1)
			goto out;
	}
	if (orgtool_exec(db, "COMMIT") == -1)
		goto out;
	ret = 0;
out:
	orgtool_rollback(db);
	PQfinish(db);
	conf_free(conf);
	free(joined);
	free(copy);
	free(v);
	return ret;
}
