/*
 * cmd-mail.c - ktadmin mail: show the admin mail outbox (--status) and push
 * it (--retry: every queued and failed message is tried now, by this
 * process, through the same delivery code as the server's sender; rows are
 * locked while sent, so a running server never sends one twice).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "db.h"
#include "ktadmin.h"
#include "log.h"
#include "mail.h"
#include "pgcluster.h"
#include "pgp.h"
#include "util.h"

enum mail_action { MAIL_NONE, MAIL_STATUS, MAIL_RETRY };

static void
mail_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ktadmin mail --status [--confdir DIR]\n"
	    "       ktadmin mail --retry [--confdir DIR]\n\n"
	    "Show or push the admin mail outbox (contact registration and "
	    "client\n"
	    "notices).  The server sends queued mail itself and retries with "
	    "backoff.\n\n"
	    "      --status       counts per state, then every message not "
	    "sent "
	    "yet:\n"
	    "                     id, state, attempts, next attempt, "
	    "recipient, "
	    "subject,\n"
	    "                     last error\n"
	    "      --retry        send every queued and failed message now, "
	    "through\n"
	    "                     MAIL_URL; exit 1 when some still did not go\n"
	    "  -c, --confdir DIR  config dir (default $KEYTRUSTEE_HOME/"
	    ".keytrustee,\n"
	    "                     KEYTRUSTEE_HOME defaults to %s)\n"
	    "  -h, --help         show this help\n",
	    KT_DEFAULT_HOME);
}

static void
mail_pg_error(PGconn *db, PGresult *res, const char *what)
{
	cli_error("%s", what);
	cli_detail_lines(
	    res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(db));
}

static int
mail_status(PGconn *db)
{
	PGresult *res;
	int i, ret = 1;

	res = PQexec(db,
	    "SELECT count(*) FILTER (WHERE state = 'queued'), "
	    "count(*) FILTER (WHERE state = 'sent'), "
	    "count(*) FILTER (WHERE state = 'failed') FROM mail_outbox");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		mail_pg_error(db, res, "cannot read the mail outbox");
		goto out;
	}
	printf("queued %s, sent %s, failed %s\n", PQgetvalue(res, 0, 0),
	    PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
	PQclear(res);
	res = PQexec(db,
	    "SELECT id, state, attempts, CASE WHEN state = 'queued' THEN "
	    "to_char(next_attempt AT TIME ZONE 'UTC', "
	    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') ELSE '-' END, rcpt, subject, "
	    "coalesce(last_error, '-') FROM mail_outbox "
	    "WHERE state <> 'sent' ORDER BY id");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		mail_pg_error(db, res, "cannot read the mail outbox");
		goto out;
	}
	if (PQntuples(res) > 0)
		printf("%-6s %-7s %-8s %-21s %s\n", "ID", "STATE", "ATTEMPTS",
		    "NEXT ATTEMPT", "RECIPIENT / SUBJECT / LAST ERROR");
	for (i = 0; i < PQntuples(res); i++)
		printf("%-6s %-7s %-8s %-21s %s\n%37s%s\n%37s%s\n",
		    PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		    PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
		    PQgetvalue(res, i, 4), "", PQgetvalue(res, i, 5), "",
		    PQgetvalue(res, i, 6));
	ret = 0;
out:
	PQclear(res);
	return ret;
}

static void
mail_note(void *arg, const char *id, const char *rcpt, const char *result,
    const char *detail)
{
	(void)arg;
	printf("mail %s to %s: %s (%s)\n", id, rcpt, result, detail);
}

static int
mail_retry(PGconn *db, const struct kt_conf *c)
{
	struct mail_sender s;
	struct mail_stats st;
	char err[1024];
	PGresult *res;
	int ret = 1;

	/*
	 * Taken before the requeue: the server's sender, woken by it, waits
	 * for this push instead of racing it, and the key lookup below starts
	 * the gpg-agent the two share.
	 */
	if (mail_lock(db, err, sizeof(err)) == -1) {
		cli_error("%s", err);
		return 1;
	}
	res = PQexec(db,
	    "WITH u AS (UPDATE mail_outbox SET state = 'queued', "
	    "next_attempt = now() WHERE state IN ('queued', 'failed') "
	    "RETURNING id) SELECT count(*), pg_notify('" MAIL_CHANNEL
	    "', 'retry') FROM u");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		mail_pg_error(db, res, "cannot requeue the mail outbox");
		PQclear(res);
		goto out;
	}
	printf("%s message(s) to send\n", PQgetvalue(res, 0, 0));
	PQclear(res);
	if (mail_init() == -1) {
		cli_error("libcurl cannot be initialised");
		goto out;
	}
	if (pgp_init() == -1) {
		cli_error("GnuPG is not usable through GPGME");
		goto out;
	}
	if (mail_sender_init(&s, c, NULL, err, sizeof(err)) == -1) {
		cli_error("cannot sign mail");
		cli_detail_lines(err);
		goto out;
	}
	if (mail_deliver(&s, db, mail_note, NULL, &st, err, sizeof(err)) ==
	    -1) {
		cli_error("mail delivery stopped");
		cli_detail_lines(err);
		goto out;
	}
	printf("sent %d, failed %d, deferred %d\n", st.sent, st.failed,
	    st.deferred);
	if (st.failed + st.deferred > 0) {
		cli_error("%d message(s) did not go", st.failed + st.deferred);
		cli_hint("'ktadmin mail --status' shows why; the server keeps "
			 "retrying the deferred ones");
		goto out;
	}
	ret = 0;
out:
	pgp_kill_agent(c->confdir);
	mail_unlock(db);
	return ret;
}

int
cmd_mail(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"status", no_argument, NULL, 's'},
	    {"retry", no_argument, NULL, 'r'},
	    {"confdir", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	enum mail_action action = MAIL_NONE;
	const char *confdir = NULL;
	uid_t owner;
	struct kt_conf *c = NULL;
	PGconn *db = NULL;
	int ch, ret = 1;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
		case 'r':
			if (action != MAIL_NONE) {
				cli_error("give one of --status and --retry");
				return ktadmin_bad_usage("mail");
			}
			action = ch == 's' ? MAIL_STATUS : MAIL_RETRY;
			break;
		case 'c':
			confdir = optarg;
			break;
		case 'h':
			mail_usage(stdout);
			return 0;
		default:
			return cli_opt_error("ktadmin", "mail", ch, argv);
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument \"%s\"", argv[optind]);
		return ktadmin_bad_usage("mail");
	}
	if (action == MAIL_NONE) {
		cli_error("mail: give --status or --retry");
		return ktadmin_bad_usage("mail");
	}
	if (pgcluster_conf_load(confdir, &c) == -1)
		goto out;
	/* The server's keyring is used as the server uses it: as its owner. */
	if (become_owner_of(c->confdir, &owner) == -1) {
		cli_error("cannot switch to the owner of %s: %s", c->confdir,
		    strerror(errno));
		goto out;
	}
	if ((db = pgcluster_conf_db(c)) == NULL)
		goto out;
	if (db_schema_version(db) < DB_SCHEMA_VERSION) {
		cli_error("the database has no mail outbox yet (schema older "
			  "than %d)",
		    DB_SCHEMA_VERSION);
		cli_hint("start the server once to migrate it");
		goto out;
	}
	ret = action == MAIL_STATUS ? mail_status(db) : mail_retry(db, c);
out:
	PQfinish(db);
	conf_free(c);
	return ret;
}
