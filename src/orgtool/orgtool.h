/* orgtool.h - keytrustee-orgtool: its verbs and the helpers they share. */
#ifndef ORGTOOL_H
#define ORGTOOL_H

#include <stdio.h>

#include <libpq-fe.h>

#define ORGTOOL_PROGNAME "keytrustee-orgtool"
#define ORGTOOL_ACTOR "orgtool"
#define ORGTOOL_NAME_MAX 64
#define ORGTOOL_CONTACT_MAX 254
#define ORGTOOL_FPR_LEN 40

/* Long-only option values shared by every verb. */
#define ORGTOOL_OPT_CONFDIR 0x100
#define ORGTOOL_OPT_FINGERPRINT 0x101

/* One file per command, listed in main.c's table (cmdtab.h). */
int cmd_add(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_disable_client(int argc, char **argv);
int cmd_enable_client(int argc, char **argv);
int cmd_set_auth(int argc, char **argv);
int cmd_activate_client(int argc, char **argv);
int cmd_reset_token(int argc, char **argv);

/*
 * A verb's --help: "usage: keytrustee-orgtool [--confdir DIR] USAGE", its
 * summary, then options and the common options.
 */
void orgtool_cmd_usage(FILE *fp, const char *name, const char *options);

/* --confdir given before the command (NULL: not given). */
extern const char *orgtool_confdir;

/*
 * orgtool.c: helpers shared by the verbs.  They print their own diagnostics
 * (this is a command-line tool) and never exit.
 */

/* "error: CMD: missing required option OPT" + hint; returns 2. */
int orgtool_opt_missing(const char *cmd, const char *opt);
/* "error: unexpected argument" + hint; returns 2. */
int orgtool_opt_extra(const char *cmd, const char *arg);

/* 0 when running as root, else -1 after an error message. */
int orgtool_require_root(void);


/* Organization names: ^[A-Za-z0-9_-]{1,64}$.  1 when fine. */
int orgtool_name_ok(const char *name);
/* 0 when valid, -1 and the error printed when not. */
int orgtool_check_name(const char *name);
/* "error: no organization named NAME" and a hint. */
void orgtool_unknown_org(const char *name);
/* A plausible mail address; NULL when fine, else the reason. */
const char *orgtool_contact_problem(const char *addr);

/*
 * Load keytrustee.conf from confdir (NULL: default) and connect; the
 * configuration goes to *confp (conf_free it) unless confp is NULL.
 */
struct kt_conf;
PGconn *orgtool_connect(const char *confdir, struct kt_conf **confp);
/* error: WHAT, with the server's message as detail lines. */
void orgtool_pg_error(PGconn *db, PGresult *res, const char *what);
/* Run a statement without results; 0 or -1 after the error. */
/* BEGIN a write, after checking db_write_ok (reported). */
int orgtool_begin(PGconn *db);
int orgtool_exec(PGconn *db, const char *sql);
/* ROLLBACK when a transaction is open. */
void orgtool_rollback(PGconn *db);
/* Append an audit_log row (actor orgtool, no remote address). */
int orgtool_audit(PGconn *db, const char *org, const char *action,
    const char *object, const char *result);

/*
 * client.c: the client verbs (enable-client, disable-client,
 * activate-client, reset-token).  Each names a client by --fingerprint
 * (and activate-client an organization by -n); the client's row is read
 * locked, and the verb's change made, in one transaction.
 */
struct orgtool_client {
	char fpr[ORGTOOL_FPR_LEN + 1];
	/* active, pending, disabled; unverified, verified (legacy) */
	char state[16];
	char *org; /* NULL until it is activated in an organization */
	char *hostname;
	int token_sync;	 /* a legacy client with token sync (token set) */
	int token_reset; /* the server takes whatever token it sends next */
};

struct orgtool_client_verb {
	const char *cmd;
	int takes_name; /* -n NAME: an organization */
	/*
	 * The change, in the transaction, to the locked client c; name is
	 * -n's (NULL when the verb takes none).  0, or -1 after the error.
	 */
	int (*run)(PGconn *db, const struct kt_conf *conf, const char *name,
	    const struct orgtool_client *c);
};

/* Parse argv, connect and run v's change; returns the exit code. */
int orgtool_client_cmd(
    const struct orgtool_client_verb *v, int argc, char **argv);

/*
 * enable-client and disable-client: set the state of a client that is in
 * an organization, with an audit row action ("unchanged" when it was so
 * already).  A client not activated yet is refused: activate-client.
 */
int orgtool_client_set_state(PGconn *db, const struct orgtool_client *c,
    const char *state, const char *action);

#endif
