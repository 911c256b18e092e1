/*
 * replication.h - HA: the passive server's PostgreSQL as a streaming replica
 * of the active's (its replication role and password, base backup, standby
 * settings) and synchronous replication on the active.  Everything here
 * reports its own errors and never exits.
 */
#ifndef KTADMIN_REPLICATION_H
#define KTADMIN_REPLICATION_H

#include <stddef.h>

#include <libpq-fe.h>

struct kt_conf;
struct pgcluster;

/* The role the passive's PostgreSQL streams the active's WAL as. */
#define REPLICATION_ROLE "keytrustee_repl"
/* Its password, in the config dir (0600), copied to the passive by rsync. */
#define REPLICATION_PWFILE "replication.pw"
/* The passive's application_name: the synchronous standby's name. */
#define REPLICATION_STANDBY_NAME "keytrustee_passive"

/* On the active: CREATE ROLE REPLICATION_ROLE with this password. */
int replication_create_role(PGconn *db, const char *password);
/* CONFDIR/replication.pw, mode 0600, owned as keytrustee.conf. */
int replication_write_pwfile(const struct kt_conf *c, const char *password);
/* The password in CONFDIR/replication.pw (which must be 0600). */
int replication_read_pwfile(const struct kt_conf *c, char *out, size_t len);

/* On the passive: pg_basebackup of the active (host, mport) into ROOT. */
int replication_basebackup(const struct pgcluster *d, const char *host,
    int mport, const char *password);
/* standby.signal and the passive's own settings after the copied ones. */
int replication_make_standby(const struct pgcluster *d, int port,
    const char *host, int mport, const char *password);

/*
 * synchronous_standby_names = the passive and synchronous_commit =
 * remote_apply (on), or both reset (off), by ALTER SYSTEM, then a reload.
 * -1 reported (what names the command).
 */
int replication_set_sync(PGconn *db, int on, const char *what);
/* On the active: 1 when the passive streams now, 0 when not, -1 unknown. */
int replication_streaming(PGconn *db);

#endif
