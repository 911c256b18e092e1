/* db.h - the server's PostgreSQL database: connecting and the schema. */
#ifndef KT_DB_H
#define KT_DB_H

#include <stddef.h>

#include <libpq-fe.h>

#include "conf.h"

/* The newest schema version this program knows (see db.c's migrations). */
#define DB_SCHEMA_VERSION 13

/*
 * Connect with the conninfo in c->db_connect, with application_name
 * "keytrustee" unless the conninfo names another.  On failure returns NULL
 * with PQerrorMessage (as libpq wrote it) or the reason in err.
 */
PGconn *db_connect(const struct kt_conf *c, char *err, size_t errlen);
/* The same server and credentials, another database (NULL: the conninfo's). */
PGconn *db_connect_to(
    const struct kt_conf *c, const char *dbname, char *err, size_t errlen);
/* The same with another conninfo than DB_CONNECT (dbrole.c's admin). */
PGconn *db_connect_conninfo(
    const char *conninfo, const char *dbname, char *err, size_t errlen);

/*
 * The role keytrustee-server connects as; the admin (superuser, owner of
 * the database) is dbrole.h's.
 */
#define DB_SERVER_ROLE "keytrustee_server"

/*
 * Apply the migrations the database does not have yet, each in its own
 * transaction with its schema_migrations row, under a transaction-level
 * advisory lock so that concurrent migrators take turns; then, when one was
 * applied, db_server_role.  Needs the admin role.  Refuses a database
 * newer than DB_SCHEMA_VERSION.  Returns 0, or -1 with the reason in err.
 */
int db_migrate(PGconn *db, char *err, size_t errlen);
/*
 * DB_SERVER_ROLE made when missing and, with tables, given exactly its
 * privileges on the tables there are now (as the admin; db_migrate does it
 * after a run that applied a migration).  0, or -1 with the reason in err.
 */
int db_server_role(PGconn *db, int tables, char *err, size_t errlen);

/* 1 when the server is a standby (pg_is_in_recovery()), 0 not, -1 error. */
int db_is_standby(PGconn *db);

/*
 * True in a write statement when it may commit without hanging: no
 * synchronous standby is required, or one streams.  A write that finds it
 * false writes nothing (and so does not wait for any standby).
 */
#define HA_SYNC_OK                                                          \
	"(current_setting('synchronous_standby_names') = '' OR EXISTS "      \
	"(SELECT 1 FROM pg_stat_replication WHERE state = 'streaming' AND " \
	"sync_state IN ('sync', 'quorum')))"

/*
 * In a WHERE of the server's own deposit inserts: marks the transaction as
 * the server's, so that migration 6's trigger does not ask its deposit
 * cache to read the table again (depcache.c); true.
 */
#define DB_SERVER_ORIGIN \
	"set_config('keytrustee.origin', 'server', true) IS NOT NULL"

/*
 * May this database take a write now?  0 yes; -1 no, with the reason in err
 * (a passive's read-only replica, or no synchronous standby streaming while
 * one is required: the commit would wait for it).  Tools that write outside
 * the server (keytrustee-orgtool) ask before they begin.
 */
int db_write_ok(PGconn *db, char *err, size_t errlen);

/* The applied schema version: 0 when none, -1 on error. */
int db_schema_version(PGconn *db);

#endif
