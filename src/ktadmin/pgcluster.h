/*
 * pgcluster.h - the Key Trustee Server's private PostgreSQL cluster: where
 * it is, PostgreSQL's programs run for it, initdb, its settings and
 * pg_hba.conf, start, stop, status and promote; and keytrustee.conf's side
 * of it (DB_CONNECT, DB_PORT).  Everything here reports its own errors as
 * error/detail/hint lines and never exits.
 */
#ifndef KTADMIN_PGCLUSTER_H
#define KTADMIN_PGCLUSTER_H

#include <limits.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "log.h"

struct kt_conf;
struct spawn_result;

/* PostgreSQL refuses to run as root: as root, it runs as this account. */
#define PGCLUSTER_ACCOUNT "keytrustee"
/* The server's database, owned by the account's role of the same name. */
#define PGCLUSTER_DB_NAME "keytrustee"
/*
 * libpq's default socket directory (Debian's): the standard cluster's
 * second socket, for psql and pg_dump without -h (pgcluster-socket.c).
 */
#define PGCLUSTER_SHARED_SOCKDIR "/var/run/postgresql"
/* In ROOT: where pg_ctl start sends the server's log. */
#define PGCLUSTER_LOG_FILE "postgresql.log"

struct pgcluster {
	char root[PATH_MAX]; /* absolute data directory */
	char bindir[PATH_MAX];
	const char *runas; /* PGCLUSTER_ACCOUNT when root, else NULL */
	int port;	   /* for pg_ctl start and postgres; 0 = its own */
	char listen[300];  /* listen_addresses, written at bootstrap */
	char sockdir[PATH_MAX]; /* a second socket directory ("" none) */
};

/*
 * Resolve ROOT (absolute, without trailing slashes), the account and
 * PostgreSQL's bindir; listen is 127.0.0.1.  0, or an exit code (reported).
 */
int pgcluster_setup(struct pgcluster *d, const char *rootdir, int port);
/* listen_addresses: 127.0.0.1 and also (NULL: nothing), or '*'. */
void pgcluster_set_listen(struct pgcluster *d, const char *also);
/* Run one of PostgreSQL's programs (argv[0] a bare name), as the account. */
int pgcluster_run(const struct pgcluster *d, char **argv, char *const *env,
    struct spawn_result *res);
/*
 * A program of PostgreSQL's failed: "error: <fmt ...>", then its stderr
 * (else its stdout) as detail lines; res is freed.  Returns -1.
 */
int pgcluster_failed(struct spawn_result *res, const char *fmt, ...)
    KT_PRINTF(2, 3);
/* A statement without rows; -1 after "error: <fmt ...>" and the server's. */
int pgcluster_sql(PGconn *db, const char *sql, const char *fmt, ...)
    KT_PRINTF(3, 4);

/* 1 when ROOT holds a cluster, 0 when not, -1 (reported) when unknown. */
int pgcluster_is_cluster(const struct pgcluster *d);
/* 0 when ROOT holds a cluster, else -1 (reported). */
int pgcluster_require(const struct pgcluster *d);
/* The pid and port in ROOT/postmaster.pid (0 when unknown). */
void pgcluster_postmaster_info(
    const struct pgcluster *d, long *pid, long *port);

/*
 * Is the cluster in ROOT running (pg_ctl status)?  0 yes, 3 no, -1
 * (reported) when ROOT holds no cluster or pg_ctl fails.
 */
int pgcluster_status(const struct pgcluster *d);
/* pg_ctl start (waiting, its log in ROOT) and stop (fast); 0 or -1. */
int pgcluster_start(const struct pgcluster *d);
int pgcluster_stop(const struct pgcluster *d);
/* pg_ctl promote (waiting): the standby becomes a primary; 0 or -1. */
int pgcluster_promote(const struct pgcluster *d);
/* Become postgres itself in the foreground; returns 1 only on failure. */
int pgcluster_exec(const struct pgcluster *d);

/* --- unix sockets (pgcluster-socket.c) --------------------------------- */

/* The second socket directory (bootstrap's --socket-dir); -1 reported. */
int pgcluster_set_sockdir(struct pgcluster *d, const char *dir);
/* "ROOT" or "ROOT, SOCKDIR": unix_socket_directories; -1 reported. */
int pgcluster_sockdirs(const struct pgcluster *d, char *buf, size_t len);
/* sockdir from ROOT/postgresql.conf (pgcluster_setup does it). */
void pgcluster_read_sockdir(struct pgcluster *d);
/*
 * Before PostgreSQL starts: as root, make a missing sockdir.  0 when it is
 * usable (or there is none); -1 (a warning naming the fix) when the
 * account cannot write to it: PostgreSQL refuses to start then, so the
 * caller starts it with the root dir's socket only.
 */
int pgcluster_sockdir_ensure(const struct pgcluster *d);

/* --- bootstrap ---------------------------------------------------------- */

/*
 * What a bootstrap checks before touching ROOT: the socket path, no
 * cluster there yet, a free port, a ROOT the account reaches; then ROOT is
 * made (or an empty one taken) for the account, *created when it was made.
 */
int pgcluster_prepare(struct pgcluster *d, int port, int *created);
/* Undo a failed bootstrap: stop it when started, empty ROOT. */
void pgcluster_undo(const struct pgcluster *d, int started, int created);

/* A password file the account reads, in a private temporary directory. */
struct pgcluster_pwfile {
	char dir[64];
	char path[PATH_MAX];
};
int pgcluster_pwfile_write(
    const struct pgcluster *d, struct pgcluster_pwfile *pf, const char *text);
void pgcluster_pwfile_remove(struct pgcluster_pwfile *pf);

/* initdb with the account's role as superuser, password given. */
int pgcluster_initdb(const struct pgcluster *d, const char *password);
/* Our settings after initdb's postgresql.conf (port, listen, HA, logs). */
int pgcluster_write_settings(const struct pgcluster *d, int port);
/* pg_hba.conf: the passive's replication role, with a password. */
int pgcluster_write_hba(const struct pgcluster *d);
/* Append text to ROOT/NAME (postgresql.conf, pg_hba.conf) and fsync it. */
int pgcluster_append(
    const struct pgcluster *d, const char *name, const char *text);
/* CREATE DATABASE name OWNER owner, over db. */
int pgcluster_create_database(PGconn *db, const char *name, const char *owner);
/* The server's database, over TCP on port as the account's role. */
int pgcluster_create_server_database(int port, const char *password);

/* --- keytrustee.conf: DB_CONNECT and DB_PORT ---------------------------- */

/* conf_load's warnings, as warning lines. */
void pgcluster_conf_warn(const char *msg);
/* Save keytrustee.conf, owned as its config dir; -1 (reported). */
int pgcluster_conf_save(const struct kt_conf *c);
/* The password in DB_CONNECT; -1 when it has none. */
int pgcluster_conf_password(const struct kt_conf *c, char *out, size_t len);
/* Load DIR/keytrustee.conf (confdir NULL: the default dir); -1 reported. */
int pgcluster_conf_load(const char *confdir, struct kt_conf **c);
/* Connect as DB_CONNECT's role (the server's); NULL reported. */
PGconn *pgcluster_conf_db(const struct kt_conf *c);
/* Connect as c's admin role (dbrole.h); NULL (reported, naming what). */
PGconn *pgcluster_conf_admin_db(const struct kt_conf *c, const char *what);
/*
 * Load DIR/keytrustee.conf (confdir NULL: the default dir) and connect as
 * the admin role (dbrole.h); -1 (reported, naming what) on failure.
 */
int pgcluster_conf_connect(
    const char *confdir, struct kt_conf **c, PGconn **db, const char *what);

#endif
