/* ktadmin.h - ktadmin's commands and what they share. */
#ifndef KTADMIN_H
#define KTADMIN_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include <libpq-fe.h>

struct kt_conf;
struct spawn_result;

/*
 * One file per command, listed in main.c's table (cmdtab.h): cmd-init.c,
 * cmd-db.c, cmd-promote.c, cmd-restore.c, cmd-mail.c.
 */
int cmd_init(int argc, char **argv);
int cmd_db(int argc, char **argv);
int cmd_promote(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_mail(int argc, char **argv);

/* "hint: run 'ktadmin CMD --help' for usage"; returns 2 (a usage error). */
int ktadmin_bad_usage(const char *cmd);

/*
 * PostgreSQL's bin directory: $PG_BINDIR, else `pg_config --bindir`, else
 * the newest /usr/lib/postgresql/N/bin.  Reports and returns -1 when none.
 */
int pgbin_find(char *bindir, size_t len);

/* --- the private PostgreSQL cluster (cmd-db.c) --------------------------- */

#define DB_ACCOUNT "keytrustee"
/* The role the passive's PostgreSQL streams the active's WAL as. */
#define DB_REPL_ROLE "keytrustee_repl"
/* Its password, in the config dir (0600), copied to the passive by rsync. */
#define DB_REPL_PWFILE "replication.pw"
/* The passive's application_name: the synchronous standby's name. */
#define DB_STANDBY_NAME "keytrustee_passive"

struct db_ctx {
	char root[PATH_MAX]; /* absolute data directory */
	char bindir[PATH_MAX];
	char pathenv[PATH_MAX + 64];
	char *envp[4];
	const char *runas; /* DB_ACCOUNT when root, else NULL */
	int port;	   /* 0 = not given */
	char listen[300];  /* listen_addresses at --bootstrap */
};

/* Resolve ROOT and PostgreSQL's bindir; 0, or an exit code (reported). */
int db_setup(struct db_ctx *d, const char *rootdir, int port);
/* Run one of PostgreSQL's programs (argv[0] a bare name) from bindir. */
int db_run(const struct db_ctx *d, char **argv, struct spawn_result *res);
/* 0 when ROOT holds a cluster, else -1 (reported). */
int db_require_cluster(const struct db_ctx *d);
/*
 * synchronous_standby_names = the passive and synchronous_commit =
 * remote_apply (on), or both reset (off), by ALTER SYSTEM, then a reload.
 * -1 reported (what names the command).
 */
int db_set_sync(PGconn *db, int on, const char *what);
/* When root, a file in the config dir gets the owner of the config dir. */
int db_conf_chown(const struct kt_conf *c, const char *path);
/* pg_ctl status: 0 running, 3 not running, -1 (reported) otherwise. */
int db_pg_status(const struct db_ctx *d);
void db_print_output(const struct spawn_result *res);
/*
 * Load DIR/keytrustee.conf (confdir NULL: the default dir) and connect with
 * its DB_CONNECT; -1 (reported) on failure.
 */
int db_conf_connect(
    const char *confdir, struct kt_conf **c, PGconn **db, const char *what);

#endif
