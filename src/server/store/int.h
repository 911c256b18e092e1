/*
 * int.h - what the files of src/server/store/ share, and nothing outside
 * the folder includes: the connection, the prepared statements, the one
 * INSERT of an audit row, and the write whose commit is bounded.
 */
#ifndef KT_STORE_INT_H
#define KT_STORE_INT_H

#include <libpq-fe.h>

#include "store.h"

/* The statements prepared per session, each with its bit in prepared. */
enum store_stmt_id {
	STMT_AUTH_CLIENT,
	STMT_DEPOSIT_READ,
	STMT_AUDIT_READS,
	STMT_DEPOSITS_NEW,
	/* the legacy protocol's (legacy.c, policy.c, seen.c, hkp.c) */
	STMT_LEGACY_CLIENT_FPR,
	STMT_LEGACY_CLIENT_KEYID,
	STMT_LEGACY_REGISTER,
	STMT_LEGACY_VERIFIED,
	STMT_LEGACY_ACTIVATE,
	STMT_LEGACY_TOKEN,
	STMT_LEGACY_PUT,
	STMT_LEGACY_DEPOSIT_UUID,
	STMT_LEGACY_DEPOSIT_URL,
	STMT_LEGACY_DEPOSIT_HANDLE,
	STMT_LEGACY_REQUEST_NEW,
	STMT_LEGACY_REQUEST,
	STMT_LEGACY_RELEASE,
	STMT_LEGACY_VOTE,
	STMT_LEGACY_MANAGE,
	STMT_LEGACY_SEARCH,
	STMT_LEGACY_PENDING,
	STMT_SEEN,
	STMT_HKP_KEY,
	STMT_HKP_ADD,
	STMT_ORG,
	STMT_COUNT
};
/* Each has its bit in struct store's prepared. */
_Static_assert(STMT_COUNT <= 32, "struct store's prepared has 32 bits");

struct store_stmt {
	enum store_stmt_id id;
	const char *name;
	const char *sql;
	int nparams;
	const Oid *types; /* NULL: inferred */
};

/*
 * A parameter built in memory (batch.c's binary arrays), its buffer kept
 * from one statement to the next.
 */
struct store_buf {
	unsigned char *buf;
	size_t len, cap;
	int fail; /* out of memory, or an element not of its type */
};
#define STORE_BUFS 12

struct store {
	const struct kt_conf *conf;
	char name[32];		/* in the log: "worker 2", "HA monitor" */
	PGconn *db;
	int pid;		/* the backend the statements are prepared on */
	unsigned prepared;	/* bit (1 << id): prepared there */
	int batch_ok;		/* the batch out: its statement succeeded */
	struct store_buf arr[STORE_BUFS];
};

/*
 * The one shape of an audit row's INSERT (store/audit.c): every statement
 * that writes audit rows ends in it, selecting the seven columns in this
 * order from its source.  at is now() but for a journal's rows and the
 * tallies of failed authentication, which store/audit.c writes with their
 * count too (every other row counts one).
 */
#define STORE_AUDIT_COLUMNS                                                  \
	"at, actor, org, action, object, remote_addr, result"
#define STORE_AUDIT_INSERT "INSERT INTO audit_log (" STORE_AUDIT_COLUMNS ") "
/*
 * The request signatures seen (store/seen.c), one table for both
 * protocols: the expired rows, skipping those another transaction holds
 * (a CTE of every statement that claims one), up to more than a batch of
 * new deposits claims (auditq.c's 500), so that the table does not grow
 * under a steady load; and when a row claimed now expires.
 */
#define STORE_SEEN_PURGE                                                    \
	"DELETE FROM seen_signatures WHERE digest IN (SELECT digest FROM "   \
	"seen_signatures WHERE expires < now() LIMIT 1000 FOR UPDATE SKIP "  \
	"LOCKED)"
#define STORE_SEEN_INSERT                                                   \
	"INSERT INTO seen_signatures (digest, expires, status, location, "   \
	"body) "
#define STORE_STR_(x) #x
#define STORE_STR(x) STORE_STR_(x)
#define STORE_SEEN_EXPIRES                                                  \
	"now() + interval '" STORE_STR(STORE_SEEN_KEEP) " seconds'"

/* A text parameter that is NULL for an empty or no value. */
const char *store_text(const char *s);

/* The connection, (re)connected when needed; NULL (logged) when down. */
PGconn *store_db(struct store *st);
/*
 * PQexecPrepared of s on the store's connection, preparing it there first
 * when needed.  Reads (retry = 1) are tried once more on a connection
 * that broke since the last use (PostgreSQL restarted, a promotion).
 */
PGresult *store_prepared(struct store *st, const struct store_stmt *s,
    const char *const *values, const int *lengths, const int *formats,
    int binary, int retry);
/*
 * PQexecParams of sql with its n text parameters, tried once more on a
 * connection that broke since its last use (as store_prepared's reads;
 * for a statement whose second run harms nothing if the first did run:
 * an audit row, a flush); NULL when the database is down (logged).
 */
PGresult *store_exec(
    struct store *st, const char *sql, int n, const char *const *params);
/*
 * A read of one row, by the prepared statement s (tried again on a
 * connection that broke since its last use) or else by sql: STORE_OK
 * with *res (PQclear it), STORE_NOT_FOUND when there is no row, STORE_FAIL
 * when the database is down or refused it (logged as what).
 */
enum store_result store_row(struct store *st, const char *what,
    const struct store_stmt *s, const char *sql, int n,
    const char *const *params, int binary, PGresult **res);
/* Prepare s now if this session does not have it; -1 (logged) on error. */
int store_prepare(struct store *st, const struct store_stmt *s);
/*
 * A write whose commit may wait for the synchronous standby: sent, and
 * its wait bounded; past the bound it is cancelled and NULL returned with
 * *timed_out set (the row may be committed locally; it was not confirmed).
 * s: a prepared statement, else sql.
 */
PGresult *store_exec_bounded(struct store *st, const struct store_stmt *s,
    const char *sql, int n, const char *const *params, const int *lens,
    const int *fmts, int *timed_out);
/*
 * store_exec_bounded of the prepared statement s whose column 0 says
 * whether the standby gate (HA_SYNC_OK) let it write ("t"): STORE_OK with
 * *out (the
 * caller PQclears it), STORE_NO_SYNC, or STORE_FAIL (logged as what).
 */
enum store_result store_gated(struct store *st, const char *what,
    const struct store_stmt *s, const char *const *params, const int *lens,
    const int *fmts, PGresult **out);
/*
 * store_gated, then column 1's count: STORE_OK when it is not 0, else
 * STORE_FORBIDDEN when a column 2 is true (the rows are there, not the
 * caller's), else STORE_NOT_FOUND.
 */
enum store_result store_gated_count(struct store *st, const char *what,
    const struct store_stmt *s, const char *const *params, const int *lens,
    const int *fmts);
/* libpq's primary message only: its detail may quote the row's values. */
const char *store_error(PGresult *res, PGconn *db);
/* 1 when res is an error because the database is read-only now. */
int store_is_readonly(PGresult *res);

#endif
