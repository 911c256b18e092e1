/*
 * dbrole.h - the database's two roles (docs/server.md, "The database
 * roles"): the admin (superuser, owner of the database and its tables:
 * migrations, backups, restores, replication settings), whose user and
 * password live in CONFDIR/DBROLE_ADMIN_FILE, and the server's
 * (DB_SERVER_ROLE: the rows of its tables, appending to audit_log), which
 * is DB_CONNECT.
 */
#ifndef KT_DBROLE_H
#define KT_DBROLE_H

#include <stddef.h>

#include <libpq-fe.h>

#include "conf.h"

/* In the config dir (0600): "user='…' password='…'", the admin's. */
#define DBROLE_ADMIN_FILE "db-admin.conninfo"

/*
 * base with the keywords set in over replacing its own, as a conninfo
 * (values quoted); malloc'd, NULL with the reason in err.
 */
char *dbrole_conninfo_merge(
    const char *base, const char *over, char *err, size_t errlen);

/*
 * The admin's conninfo: DB_CONNECT with the user and password of
 * CONFDIR/DBROLE_ADMIN_FILE; DB_CONNECT itself when there is no such file
 * (a config dir from before the two roles, whose DB_CONNECT is the
 * admin's).  malloc'd (freezero it), NULL with the reason in err.
 */
char *dbrole_admin_conninfo(const struct kt_conf *c, char *err, size_t errlen);
/* Connect as the admin (dbname NULL: DB_CONNECT's). */
PGconn *dbrole_connect_admin(
    const struct kt_conf *c, const char *dbname, char *err, size_t errlen);

/*
 * ALTER ROLE role LOGIN PASSWORD: libpq computes the SCRAM verifier here,
 * as psql's \password does, so the statement never holds the password.
 */
int dbrole_set_password(PGconn *db, const char *role, const char *password,
    char *err, size_t errlen);

enum dbrole_result { DBROLE_OK, DBROLE_DOWN, DBROLE_FAIL };

struct dbrole_report {
	int before;    /* schema version found (-1: not read) */
	int after;     /* and left */
	int standby;   /* a passive's replica: nothing migrated */
	int converted; /* DB_CONNECT moved from the admin to DB_SERVER_ROLE */
	int waiting;   /* a replica without DB_SERVER_ROLE yet: not moved */
};

/*
 * What keytrustee-server does at start, and ktadmin after a bootstrap or a
 * restore: as the admin, the pending migrations (not on a replica); and
 * when DB_CONNECT is a superuser's (bootstrapped before the two roles),
 * its user and password kept in DBROLE_ADMIN_FILE, DB_SERVER_ROLE given a
 * password derived from the admin's (so that a passive, which cannot write
 * its replica, derives the same one from its copy), and DB_CONNECT moved to
 * that role in c and in keytrustee.conf.  DBROLE_DOWN when the database
 * cannot be reached, DBROLE_FAIL when it refuses; the reason in err.
 */
enum dbrole_result dbrole_setup(
    struct kt_conf *c, struct dbrole_report *rep, char *err, size_t errlen);

#endif
