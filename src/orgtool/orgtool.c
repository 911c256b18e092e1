/*
 * orgtool.c - what the keytrustee-orgtool verbs share: option diagnostics,
 * validation of names, addresses and fingerprints, and the database
 * connection, transactions and audit rows.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "db.h"
#include "log.h"
#include "orgtool.h"


int
orgtool_opt_missing(const char *cmd, const char *opt)
{
	cli_error("%s: the option %s is required", cmd, opt);
	cli_hint("run '%s %s --help' for usage", ORGTOOL_PROGNAME, cmd);
	return 2;
}

int
orgtool_opt_extra(const char *cmd, const char *arg)
{
	char q[256];

	cli_error("%s: unexpected argument \"%s\"", cmd,
	    cli_quote(arg, q, sizeof(q)));
	cli_hint("run '%s %s --help' for usage", ORGTOOL_PROGNAME, cmd);
	return 2;
}

int
orgtool_require_root(void)
{
	if (geteuid() == 0)
		return 0;
	cli_error("%s must be run as root", ORGTOOL_PROGNAME);
	return -1;
}


int
orgtool_name_ok(const char *name)
{
	size_t n;

	for (n = 0; name[n] != '\0'; n++) {
		unsigned char c = (unsigned char)name[n];
		if (!(c < 0x80 && (isalnum(c) || c == '-' || c == '_')))
			return 0;
	}
	return n >= 1 && n <= ORGTOOL_NAME_MAX;
}

int
orgtool_check_name(const char *name)
{
	char q[512];

	if (orgtool_name_ok(name))
		return 0;
	cli_error("invalid organization name \"%s\"",
	    cli_quote(name, q, sizeof(q)));
	if (strlen(name) > ORGTOOL_NAME_MAX)
		cli_detail("it is %zu characters long; the limit is %d",
		    strlen(name), ORGTOOL_NAME_MAX);
	cli_hint("use 1 to %d letters, digits, hyphens or underscores: no "
		 "spaces or special characters",
	    ORGTOOL_NAME_MAX);
	return -1;
}

void
orgtool_unknown_org(const char *name)
{
	cli_error("no organization named \"%s\"", name);
	cli_hint("'%s list' shows the organizations; '%s add' creates one",
	    ORGTOOL_PROGNAME, ORGTOOL_PROGNAME);
}

/* RFC 5322 atext, plus '.' between atoms. */
static int
local_char_ok(unsigned char c)
{
	return c < 0x80 &&
	    (isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL);
}

const char *
orgtool_contact_problem(const char *addr)
{
	const char *at, *p, *label;
	size_t len = strlen(addr);

	if (len == 0)
		return "it is empty";
	if (len > ORGTOOL_CONTACT_MAX)
		return "it is longer than 254 characters";
	for (p = addr; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == ' ' || c == '\t')
			return "it contains a space";
		if (c < 0x20 || c == 0x7f)
			return "it contains a control character";
		if (c >= 0x80)
			return "it contains a non-ASCII character";
	}
	if ((at = strchr(addr, '@')) == NULL)
		return "it has no '@'";
	if (strchr(at + 1, '@') != NULL)
		return "it has more than one '@'";
	if (at == addr)
		return "the part before '@' is empty";
	if (at - addr > 64)
		return "the part before '@' is longer than 64 characters";
	for (p = addr; p < at; p++)
		if (!local_char_ok((unsigned char)*p))
			return "the part before '@' has a character not "
			       "allowed in an address";
	if (addr[0] == '.' || at[-1] == '.' || strstr(addr, "..") != NULL)
		return "it has a misplaced '.'";
	if (at[1] == '\0')
		return "the domain after '@' is empty";
	if (strchr(at + 1, '.') == NULL)
		return "the domain has no '.'";
	/* Labels: letters, digits and '-', not at either end. */
	label = at + 1;
	for (p = at + 1;; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '.' || c == '\0') {
			if (p == label)
				return "the domain has an empty label";
			if (*label == '-' || p[-1] == '-')
				return "a domain label starts or ends with "
				       "'-'";
			if (p - label > 63)
				return "a domain label is longer than 63 "
				       "characters";
			if (c == '\0')
				break;
			label = p + 1;
		} else if (!isalnum(c) && c != '-')
			return "the domain has a character other than "
			       "letters, digits, '-' and '.'";
	}
	return NULL;
}

static void
orgtool_conf_warn(const char *msg)
{
	cli_warning("%s", msg);
}


PGconn *
orgtool_connect(const char *confdir, struct kt_conf **confp)
{
	struct kt_conf *c = NULL;
	char *defdir = NULL, err[1024];
	PGconn *db = NULL;
	int version;

	if (confdir == NULL) {
		if ((defdir = conf_default_dir()) == NULL) {
			cli_error("KEYTRUSTEE_HOME is too long");
			goto out;
		}
		confdir = defdir;
	}
	if (conf_load(confdir, &c, orgtool_conf_warn, err, sizeof(err)) == -1) {
		cli_error("cannot read the configuration in %s", confdir);
		cli_detail_lines(err);
		cli_hint("run 'ktadmin init' and 'ktadmin db --bootstrap' "
			 "first, or give --confdir");
		goto out;
	}
	if (c->db_connect == NULL || *c->db_connect == '\0') {
		cli_error("DB_CONNECT is not set in %s", c->path);
		cli_hint("run 'ktadmin db --bootstrap' first");
		goto out;
	}
	if ((db = db_connect(c, err, sizeof(err))) == NULL) {
		cli_error("cannot connect to the database");
		cli_detail_lines(err);
		cli_hint("is it running?  'ktadmin db --status --pg-rootdir "
			 "DIR' tells");
		goto out;
	}
	if ((version = db_schema_version(db)) < DB_SCHEMA_VERSION) {
		if (version == -1) {
			cli_error("cannot read the schema version");
			cli_detail_lines(PQerrorMessage(db));
		} else
			cli_error("the database has schema version %d; this "
				  "program needs %d",
			    version, DB_SCHEMA_VERSION);
		cli_hint("run 'ktadmin db --bootstrap' or start the server "
			 "once to migrate it");
		PQfinish(db);
		db = NULL;
		goto out;
	}
	if (confp != NULL) {
		*confp = c;
		c = NULL;
	}
out:
	conf_free(c);
	free(defdir);
	return db;
}

void
orgtool_pg_error(PGconn *db, PGresult *res, const char *what)
{
	const char *msg = NULL;

	if (res != NULL)
		msg = PQresultErrorMessage(res);
	if (msg == NULL || *msg == '\0')
		msg = PQerrorMessage(db);
	cli_error("%s", what);
	cli_detail_lines(msg);
}

int
orgtool_exec(PGconn *db, const char *sql)
{
	PGresult *res;
	int ret = 0;

	res = PQexec(db, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		orgtool_pg_error(db, res, sql);
		ret = -1;
	}
	PQclear(res);
	return ret;
}

int
orgtool_begin(PGconn *db)
{
	char err[512];

	if (db_write_ok(db, err, sizeof(err)) == -1) {
		cli_error("cannot change anything now");
		cli_detail_lines(err);
		cli_hint("run it on the active server while the passive "
			 "streams, or 'ktadmin db "
			 "--disable-synchronous-replication' there");
		return -1;
	}
	return orgtool_exec(db, "BEGIN");
}

void
orgtool_rollback(PGconn *db)
{
	PGresult *res;

	if (db == NULL || PQtransactionStatus(db) == PQTRANS_IDLE)
		return;
	res = PQexec(db, "ROLLBACK");
	PQclear(res);
}

int
orgtool_audit(PGconn *db, const char *org, const char *action,
    const char *object, const char *result)
{
	const char *params[5] = {ORGTOOL_ACTOR, org, action, object, result};
	PGresult *res;
	int ret = 0;

	res = PQexecParams(db,
	    "INSERT INTO audit_log (actor, org, action, object, result) "
	    "VALUES ($1, $2, $3, $4, $5)",
	    5, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		orgtool_pg_error(db, res, "cannot write the audit log");
		ret = -1;
	}
	PQclear(res);
	return ret;
}
