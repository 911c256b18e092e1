/*
 * db.c - the server's PostgreSQL database: connecting with the conninfo from
 * keytrustee.conf, and the versioned schema migrations compiled into every
 * binary.
 */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Transaction-level advisory lock held while migrating: "ktschema". */
#define DB_MIGRATE_LOCK "7742940530147159393"

/*
 * The role keytrustee-server connects as (docs/server.md, "The database
 * roles"): no superuser, no owner, no trigger bypass.  It reads and writes
 * the rows of the tables of public, appends to audit_log and reads
 * schema_migrations, and nothing more; pg_read_all_stats and
 * pg_read_all_settings let its HA monitor see pg_stat_replication,
 * pg_stat_wal_receiver and primary_conninfo as a superuser would.  Its
 * password is set by dbrole.c.  Re-appliable: migration 11 runs both
 * parts, and so does the end of every migration run that applied one,
 * which so covers the tables later migrations make.
 */
#define DB_SERVER_ROLE_SQL                                                   \
	"DO $$ BEGIN"                                                        \
	" IF NOT EXISTS (SELECT 1 FROM pg_roles"                             \
	"  WHERE rolname = '" DB_SERVER_ROLE "') THEN"                       \
	"  CREATE ROLE " DB_SERVER_ROLE " NOLOGIN NOSUPERUSER NOCREATEDB"    \
	"   NOCREATEROLE NOREPLICATION NOBYPASSRLS;"                         \
	" END IF; END $$;"                                                   \
	"ALTER ROLE " DB_SERVER_ROLE " NOSUPERUSER NOCREATEDB NOCREATEROLE"  \
	" NOREPLICATION NOBYPASSRLS INHERIT;"                                \
	"GRANT pg_read_all_stats, pg_read_all_settings TO " DB_SERVER_ROLE  \
	";"
#define DB_SERVER_GRANTS_SQL                                                 \
	"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM " DB_SERVER_ROLE ";" \
	"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public" \
	" TO " DB_SERVER_ROLE ";"                                            \
	"REVOKE UPDATE, DELETE ON audit_log FROM " DB_SERVER_ROLE ";"        \
	"REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM "           \
	DB_SERVER_ROLE ";"                                                   \
	"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "          \
	DB_SERVER_ROLE ";"                                                   \
	DB_SERVER_CHAIN_GRANTS_SQL
/*
 * The audit chain (migration 12, docs/audit.md): the server appends
 * segments and reads the anchors and exports; it cannot set a row's xact
 * (only its default), prune, nor change a segment.  A no-op before 12.
 */
#define DB_SERVER_CHAIN_GRANTS_SQL                                           \
	"DO $$ BEGIN IF to_regclass('audit_chain') IS NOT NULL THEN"         \
	" REVOKE UPDATE, DELETE ON audit_chain, audit_anchor, audit_exports" \
	"  FROM " DB_SERVER_ROLE ";"                                         \
	" REVOKE INSERT ON audit_anchor, audit_exports, audit_log FROM "     \
	DB_SERVER_ROLE ";"                                                   \
	" GRANT INSERT (id, at, actor, org, action, object, remote_addr,"    \
	"  result, count) ON audit_log TO " DB_SERVER_ROLE ";"               \
	" END IF; END $$;"

struct db_migration {
	int version;
	const char *name;
	const char *sql; /* fixed text: several statements, no values */
};

/*
 * The schema, oldest first.  Never edit a migration once released: add one
 * and raise DB_SCHEMA_VERSION.
 */
static const struct db_migration db_migrations[] = {
    {1, "base",
	/* Who did what, when, from where; never secret material. */
	"CREATE TABLE audit_log ("
	" id bigserial PRIMARY KEY,"
	" at timestamptz NOT NULL DEFAULT now(),"
	" actor text,"
	" org text,"
	" action text NOT NULL,"
	" object text,"
	" remote_addr text,"
	" result text NOT NULL);"
	"CREATE FUNCTION audit_log_append_only() RETURNS trigger"
	" LANGUAGE plpgsql AS $$ BEGIN"
	" RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP"
	" USING ERRCODE = 'insufficient_privilege';"
	" END $$;"
	"CREATE TRIGGER audit_log_append_only"
	" BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log"
	" FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();"
	"CREATE TABLE server_meta ("
	" key text PRIMARY KEY,"
	" value text NOT NULL);"},
    {2, "store",
	/* Organizations as keytrustee-orgtool lists them (the guide's fields). */
	"CREATE TABLE orgs ("
	" id bigserial PRIMARY KEY,"
	" name text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_-]{1,64}$'),"
	" uuid text NOT NULL UNIQUE CHECK (uuid ~ '^[A-Za-z0-9]{43}$'),"
	" auth_secret text NOT NULL,"
	" contacts text[] NOT NULL DEFAULT '{}',"
	" creation timestamp NOT NULL"
	"  DEFAULT date_trunc('second', now() AT TIME ZONE 'UTC'),"
	" expiration timestamp NOT NULL DEFAULT '9999-12-31T15:59:59',"
	" key_info text,"
	" state integer NOT NULL DEFAULT 0);"
	/*
	 * Clients: identity is the OpenPGP fingerprint of the key they
	 * registered.  The request-signing secret is kept encrypted under the
	 * server's data key (AES-256-GCM, AAD = fingerprint).
	 */
	"CREATE TABLE clients ("
	" id bigserial PRIMARY KEY,"
	" fingerprint text NOT NULL UNIQUE CHECK (fingerprint ~ '^[0-9A-F]{40}$'),"
	" org_id bigint NOT NULL REFERENCES orgs(id),"
	" hostname text NOT NULL,"
	" pubkey text NOT NULL,"
	" secret_nonce bytea NOT NULL,"
	" secret_ct bytea NOT NULL,"
	" state text NOT NULL CHECK (state IN ('active', 'pending', 'disabled')),"
	" registered timestamptz NOT NULL DEFAULT now(),"
	" remote_addr text);"
	/*
	 * Deposits: opaque client ciphertext, encrypted again at rest under the
	 * data key (AES-256-GCM, AAD = uuid || owner fingerprint); key_id
	 * names the data key generation.
	 */
	"CREATE TABLE deposits ("
	" uuid uuid PRIMARY KEY,"
	" owner text NOT NULL REFERENCES clients(fingerprint),"
	" name text NOT NULL,"
	" description text,"
	" key_id integer NOT NULL DEFAULT 1,"
	" nonce bytea NOT NULL,"
	" content bytea NOT NULL,"
	" created timestamptz NOT NULL DEFAULT now());"
	"CREATE INDEX deposits_owner_name ON deposits (owner, name);"},
    {3, "mail",
	/*
	 * The contact registration links: only the SHA-256 of the token is
	 * kept; a link lives 12 hours and is used once.
	 */
	"CREATE TABLE contact_tokens ("
	" token_hash text PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),"
	" org_id bigint NOT NULL REFERENCES orgs(id),"
	" contact text NOT NULL,"
	" created timestamptz NOT NULL DEFAULT now(),"
	" expires timestamptz NOT NULL DEFAULT now() + interval '12 hours',"
	" used timestamptz);"
	/* The OpenPGP public key a contact registered through its link. */
	"CREATE TABLE contact_keys ("
	" org_id bigint NOT NULL REFERENCES orgs(id),"
	" contact text NOT NULL,"
	" fingerprint text NOT NULL CHECK (fingerprint ~ '^[0-9A-F]{40}$'),"
	" pubkey text NOT NULL,"
	" registered timestamptz NOT NULL DEFAULT now(),"
	" PRIMARY KEY (org_id, contact));"
	/*
	 * Mail waits here, written in the transaction of its event, until
	 * the MTA takes it (sent) or refuses its recipient for good (failed).
	 */
	"CREATE TABLE mail_outbox ("
	" id bigserial PRIMARY KEY,"
	" org_id bigint REFERENCES orgs(id),"
	" rcpt text NOT NULL,"
	" kind text NOT NULL,"
	" subject text NOT NULL,"
	" body text NOT NULL,"
	" state text NOT NULL DEFAULT 'queued'"
	"  CHECK (state IN ('queued', 'sent', 'failed')),"
	" attempts integer NOT NULL DEFAULT 0,"
	" created timestamptz NOT NULL DEFAULT now(),"
	" next_attempt timestamptz NOT NULL DEFAULT now(),"
	" sent timestamptz,"
	" encrypted_to text,"
	" last_error text);"
	"CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt)"
	" WHERE state = 'queued';"},
    /* 4 is left free (the HA branch might have had one). */
    {5, "client_notify",
	/*
	 * The server caches clients (src/server/authcache.c) and LISTENs on
	 * kt_clients: every change to a client names it; a change to orgs,
	 * a TRUNCATE or any DDL (a restore re-creating the tables) says "*",
	 * drop everything.  Re-appliable: functions are replaced, the event
	 * triggers made only when missing, and only by a superuser (the
	 * role ktadmin db makes is one; without them a restore into a live
	 * database needs a server restart, as without any cache).
	 */
	"CREATE OR REPLACE FUNCTION kt_client_notify() RETURNS trigger"
	" LANGUAGE plpgsql AS $$ BEGIN"
	" IF TG_OP IN ('UPDATE', 'DELETE') THEN"
	"  PERFORM pg_notify('kt_clients', OLD.fingerprint); END IF;"
	" IF TG_OP IN ('INSERT', 'UPDATE') THEN"
	"  PERFORM pg_notify('kt_clients', NEW.fingerprint); END IF;"
	" RETURN NULL; END $$;"
	"CREATE OR REPLACE FUNCTION kt_client_notify_all() RETURNS trigger"
	" LANGUAGE plpgsql AS $$ BEGIN"
	" PERFORM pg_notify('kt_clients', '*'); RETURN NULL; END $$;"
	"DROP TRIGGER IF EXISTS clients_notify ON clients;"
	"CREATE TRIGGER clients_notify AFTER INSERT OR UPDATE OR DELETE"
	" ON clients FOR EACH ROW EXECUTE FUNCTION kt_client_notify();"
	"DROP TRIGGER IF EXISTS clients_notify_truncate ON clients;"
	"CREATE TRIGGER clients_notify_truncate AFTER TRUNCATE ON clients"
	" FOR EACH STATEMENT EXECUTE FUNCTION kt_client_notify_all();"
	"DROP TRIGGER IF EXISTS orgs_notify ON orgs;"
	"CREATE TRIGGER orgs_notify AFTER UPDATE OR DELETE OR TRUNCATE ON orgs"
	" FOR EACH STATEMENT EXECUTE FUNCTION kt_client_notify_all();"
	"CREATE OR REPLACE FUNCTION kt_ddl_notify() RETURNS event_trigger"
	" LANGUAGE plpgsql AS $$ BEGIN"
	" PERFORM pg_notify('kt_clients', '*'); END $$;"
	"DO $$ BEGIN"
	" IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
	" AND NOT EXISTS (SELECT 1 FROM pg_event_trigger"
	"  WHERE evtname = 'kt_ddl_notify') THEN"
	"  CREATE EVENT TRIGGER kt_ddl_notify ON ddl_command_end"
	"   EXECUTE FUNCTION kt_ddl_notify();"
	"  CREATE EVENT TRIGGER kt_drop_notify ON sql_drop"
	"   EXECUTE FUNCTION kt_ddl_notify();"
	" END IF; END $$;"},
    {6, "deposit_notify",
	/*
	 * The server caches deposits (src/server/depcache.c) and LISTENs on
	 * kt_deposits: a row deleted or updated is named by its uuid (both
	 * when an UPDATE changes it), a TRUNCATE says "*".  An INSERT
	 * statement says "+" (read the table in) unless it is the server's
	 * own (DB_SERVER_ORIGIN); its rows come in on their first read.
	 * DDL (5's event triggers) now says "*" on both channels: a change
	 * to orgs, which says "*" on kt_clients, leaves the deposits be.
	 */
	"CREATE OR REPLACE FUNCTION kt_ddl_notify() RETURNS event_trigger"
	" LANGUAGE plpgsql AS $$ BEGIN"
	" PERFORM pg_notify('kt_clients', '*');"
	" PERFORM pg_notify('kt_deposits', '*'); END $$;"
	"CREATE OR REPLACE FUNCTION kt_deposit_notify() RETURNS trigger"
	" LANGUAGE plpgsql AS $$ BEGIN"
	" PERFORM pg_notify('kt_deposits', OLD.uuid::text);"
	" IF TG_OP = 'UPDATE' AND NEW.uuid <> OLD.uuid THEN"
	"  PERFORM pg_notify('kt_deposits', NEW.uuid::text); END IF;"
	" RETURN NULL; END $$;"
	"CREATE OR REPLACE FUNCTION kt_deposit_notify_all() RETURNS trigger"
	" LANGUAGE plpgsql AS $$ BEGIN"
	" PERFORM pg_notify('kt_deposits', '*'); RETURN NULL; END $$;"
	"CREATE OR REPLACE FUNCTION kt_deposit_added() RETURNS trigger"
	" LANGUAGE plpgsql AS $$ BEGIN"
	" IF current_setting('keytrustee.origin', true) IS DISTINCT FROM"
	"  'server' THEN PERFORM pg_notify('kt_deposits', '+'); END IF;"
	" RETURN NULL; END $$;"
	"DROP TRIGGER IF EXISTS deposits_notify ON deposits;"
	"CREATE TRIGGER deposits_notify AFTER UPDATE OR DELETE ON deposits"
	" FOR EACH ROW EXECUTE FUNCTION kt_deposit_notify();"
	"DROP TRIGGER IF EXISTS deposits_notify_truncate ON deposits;"
	"CREATE TRIGGER deposits_notify_truncate AFTER TRUNCATE ON deposits"
	" FOR EACH STATEMENT EXECUTE FUNCTION kt_deposit_notify_all();"
	"DROP TRIGGER IF EXISTS deposits_added ON deposits;"
	"CREATE TRIGGER deposits_added AFTER INSERT ON deposits"
	" FOR EACH STATEMENT EXECUTE FUNCTION kt_deposit_added();"},
    {7, "deposit_storage",
	/*
	 * A sealed deposit is AES-GCM ciphertext: incompressible, so
	 * PostgreSQL's attempt to compress every row (pglz) is wasted;
	 * EXTERNAL stores a large one out of line as it is.
	 */
	"ALTER TABLE deposits ALTER COLUMN content SET STORAGE EXTERNAL;"
	"ALTER TABLE deposits SET (toast_tuple_target = 8160);"},
    {8, "legacy_protocol",
	/*
	 * The clients' legacy protocol (docs/legacy.md).  A client that
	 * registers by it is a row of clients like any other: its org comes
	 * with request_activation (none until then), it is unverified until
	 * it answers the register challenge (whose SHA-512 is kept), it
	 * speaks protocol, and with token sync token is the next token it
	 * must send (token_reset: accept whatever it sends next).
	 */
	"ALTER TABLE clients ALTER COLUMN org_id DROP NOT NULL;"
	"ALTER TABLE clients DROP CONSTRAINT IF EXISTS clients_state_check;"
	"ALTER TABLE clients ADD CONSTRAINT clients_state_check CHECK (state IN"
	" ('active', 'pending', 'disabled', 'unverified', 'verified'));"
	"ALTER TABLE clients ADD COLUMN IF NOT EXISTS protocol text NOT NULL DEFAULT 'v1'"
	" CHECK (protocol IN ('v1', 'json-encrypt', 'json-sign'));"
	"ALTER TABLE clients ADD COLUMN IF NOT EXISTS qualified text;"
	"ALTER TABLE clients ADD COLUMN IF NOT EXISTS challenge_sha512 text;"
	"ALTER TABLE clients ADD COLUMN IF NOT EXISTS token text"
	" CHECK (token IS NULL OR token ~ '^([0-9a-f]{64})?$');"
	"ALTER TABLE clients ADD COLUMN IF NOT EXISTS token_reset boolean NOT NULL"
	" DEFAULT false;"
	/*
	 * A legacy deposit is a row of deposits (sealed the same way) with
	 * its policy; /v1 never reads one.  handle is name.
	 */
	"ALTER TABLE deposits ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'v1'"
	" CHECK (kind IN ('v1', 'legacy'));"
	"ALTER TABLE deposits ADD COLUMN IF NOT EXISTS readers text[];"
	"ALTER TABLE deposits ADD COLUMN IF NOT EXISTS trustees text[];"
	"ALTER TABLE deposits ADD COLUMN IF NOT EXISTS votes integer CHECK (votes >= 0);"
	"ALTER TABLE deposits ADD COLUMN IF NOT EXISTS retrievals integer"
	" CHECK (retrievals >= 0);"
	"ALTER TABLE deposits ADD COLUMN IF NOT EXISTS released integer NOT NULL DEFAULT 0;"
	"ALTER TABLE deposits ADD COLUMN IF NOT EXISTS expires timestamptz;"
	"ALTER TABLE deposits ADD COLUMN IF NOT EXISTS not_before timestamptz;"
	"ALTER TABLE deposits ADD COLUMN IF NOT EXISTS archive integer NOT NULL DEFAULT 0;"
	"ALTER TABLE deposits ADD COLUMN IF NOT EXISTS url text UNIQUE"
	" CHECK (url ~ '^[A-Za-z0-9]{43}$');"
	"ALTER TABLE deposits ADD COLUMN IF NOT EXISTS recoverable boolean NOT NULL"
	" DEFAULT false;"
	"ALTER TABLE deposits ADD COLUMN IF NOT EXISTS recoverable_sig text;"
	"ALTER TABLE deposits ADD COLUMN IF NOT EXISTS deposit_group text;"
	"ALTER TABLE deposits ADD COLUMN IF NOT EXISTS disabled boolean NOT NULL"
	" DEFAULT false;"
	/*
	 * A client's request to release a legacy deposit, and the votes.
	 * No foreign key to deposits or clients: a purge deletes a deposit's
	 * requests itself.  Re-appliable (IF NOT EXISTS throughout), as a
	 * database taken back to an older version and migrated again has
	 * these tables already.
	 */
	"CREATE TABLE IF NOT EXISTS legacy_requests ("
	" uuid uuid PRIMARY KEY,"
	" deposit uuid NOT NULL,"
	" requester text NOT NULL,"
	" justification text,"
	" created timestamptz NOT NULL DEFAULT now(),"
	" expires timestamptz NOT NULL,"
	" released boolean NOT NULL DEFAULT false);"
	"CREATE INDEX IF NOT EXISTS legacy_requests_deposit ON legacy_requests (deposit);"
	"CREATE TABLE IF NOT EXISTS legacy_votes ("
	" request uuid NOT NULL REFERENCES legacy_requests(uuid)"
	"  ON DELETE CASCADE,"
	" trustee text NOT NULL,"
	" approve boolean NOT NULL,"
	" at timestamptz NOT NULL DEFAULT now(),"
	" PRIMARY KEY (request, trustee));"
	/*
	 * Keys posted to /pks/add, waiting for a register to claim them
	 * (dropped after a day otherwise).
	 */
	"CREATE TABLE IF NOT EXISTS hkp_keys ("
	" fingerprint text PRIMARY KEY"
	"  CHECK (fingerprint ~ '^[0-9A-F]{40}$'),"
	" pubkey text NOT NULL,"
	" remote_addr text,"
	" added timestamptz NOT NULL DEFAULT now());"
	/*
	 * The request signatures seen lately: a replay of one is refused,
	 * across worker threads and restarts.
	 */
	"CREATE TABLE IF NOT EXISTS seen_signatures ("
	" digest bytea PRIMARY KEY,"
	" expires timestamptz NOT NULL);"
	"CREATE INDEX IF NOT EXISTS seen_signatures_expires ON seen_signatures (expires);"},
    {9, "seen_answers",
	/*
	 * A /v1 write keeps its answer with its request's signature, in its
	 * own transaction: a replay of the request is answered the same and
	 * writes nothing (docs/api.md, "Replayed requests").  The legacy
	 * protocol's rows have none (its replays are refused).
	 */
	"ALTER TABLE seen_signatures ADD COLUMN IF NOT EXISTS status integer;"
	"ALTER TABLE seen_signatures ADD COLUMN IF NOT EXISTS location text;"
	"ALTER TABLE seen_signatures ADD COLUMN IF NOT EXISTS body text;"},
    {10, "audit_count",
	/*
	 * Failed authentication is audited by the minute: one row per
	 * source address, action and reason, count saying how many requests
	 * it stands for (src/server/authfail.c).  Every other row is one
	 * event.  Adding a column with a constant default rewrites no row
	 * (the append-only trigger is not involved).
	 */
	"ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS count integer"
	" NOT NULL DEFAULT 1 CHECK (count >= 1);"},
    {11, "server_role", DB_SERVER_ROLE_SQL DB_SERVER_GRANTS_SQL},
    {12, "audit_chain",
	/*
	 * The audit chain (docs/audit.md).  xact: the writing transaction's
	 * id (constant in a transaction; bigint, not xid8, because
	 * PostgreSQL 15 has no BRIN operator class for xid8).  The rows
	 * there are take the id of this migration's transaction: the first
	 * segment seals them all, ordered by id.  A constant default
	 * rewrites no row.
	 */
	"ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS xact bigint NOT NULL"
	" DEFAULT pg_current_xact_id()::text::bigint;"
	"CREATE INDEX IF NOT EXISTS audit_log_xact ON audit_log"
	" USING brin (xact);"
	"CREATE OR REPLACE FUNCTION kt_append_only() RETURNS trigger"
	" LANGUAGE plpgsql AS $$ BEGIN"
	" RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP"
	" USING ERRCODE = 'insufficient_privilege';"
	" END $$;"
	/*
	 * A segment seals exactly the rows with xact_lo <= xact < xact_hi,
	 * in the order (xact, id): ids lists them, digests keeps the first
	 * AUDITCHAIN_DIG_LEN bytes of each row's digest, hash chains prev,
	 * mac is the key process's (src/common/auditchain.h).
	 */
	"CREATE TABLE IF NOT EXISTS audit_chain ("
	" seq bigint PRIMARY KEY CHECK (seq >= 1),"
	" xact_lo bigint NOT NULL,"
	" xact_hi bigint NOT NULL CHECK (xact_hi > xact_lo),"
	" nrows integer NOT NULL CHECK (nrows >= 1),"
	" first_at timestamptz NOT NULL,"
	" last_at timestamptz NOT NULL,"
	" ids bigint[] NOT NULL,"
	" digests bytea NOT NULL,"
	" prev bytea NOT NULL,"
	" hash bytea NOT NULL,"
	" mac bytea NOT NULL,"
	" made_at timestamptz NOT NULL DEFAULT now());"
	/* Where the chain starts after a prune: the last pruned segment. */
	"CREATE TABLE IF NOT EXISTS audit_anchor ("
	" seq bigint PRIMARY KEY,"
	" xact_hi bigint NOT NULL,"
	" nrows integer NOT NULL,"
	" hash bytea NOT NULL,"
	" mac bytea NOT NULL,"
	" pruned_rows bigint NOT NULL,"
	" pruned_at timestamptz NOT NULL DEFAULT now());"
	/* The segments written to export files: only those may be pruned. */
	"CREATE TABLE IF NOT EXISTS audit_exports ("
	" id bigserial PRIMARY KEY,"
	" seq_lo bigint NOT NULL,"
	" seq_hi bigint NOT NULL CHECK (seq_hi >= seq_lo),"
	" sha256 text NOT NULL,"
	" path text NOT NULL,"
	" made_at timestamptz NOT NULL DEFAULT now());"
	"DROP TRIGGER IF EXISTS audit_chain_append_only ON audit_chain;"
	"CREATE TRIGGER audit_chain_append_only"
	" BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_chain"
	" FOR EACH STATEMENT EXECUTE FUNCTION kt_append_only();"
	"DROP TRIGGER IF EXISTS audit_anchor_append_only ON audit_anchor;"
	"CREATE TRIGGER audit_anchor_append_only"
	" BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_anchor"
	" FOR EACH STATEMENT EXECUTE FUNCTION kt_append_only();"
	"DROP TRIGGER IF EXISTS audit_exports_append_only ON audit_exports;"
	"CREATE TRIGGER audit_exports_append_only"
	" BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_exports"
	" FOR EACH STATEMENT EXECUTE FUNCTION kt_append_only();"},
    /*
     * ktadmin audit's questions (src/ktadmin/cmd-audit.c) on tens of
     * millions of rows, at next to no cost to the inserts of the reads'
     * rows (tens of thousands a second): BRIN indexes only, a summary per
     * range of pages, updated only when a row lands in an already
     * summarized range (autovacuum summarizes each range as it fills).
     * at: a time window.  object: a bloom filter per 32 pages, so that
     * "who touched this deposit" reads only the ranges that hold it.  A
     * btree on (object, id) would answer in a millisecond instead of a
     * few hundred, but its random insertion points cut a 10M-row table's
     * inserts from ~60k to ~20k rows/s here (docs/audit-query.md);
     * (actor, id) cost as much, and --client walks the primary key
     * newest first instead.  Org, action and result are filtered within
     * those.  Plain CREATE INDEX in the migration's transaction (inserts
     * wait; 40 s for ten million rows on a busy 2-core VM), before the
     * server serves.  Numbered apart from the chain's migration: renumber
     * freely, it needs only "audit_count".
     */
    {13, "audit_query",
	"CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log USING brin (at)"
	" WITH (autosummarize = on);"
	"CREATE INDEX IF NOT EXISTS audit_log_object ON audit_log USING brin"
	" (object text_bloom_ops (n_distinct_per_range = 2000,"
	" false_positive_rate = 0.01))"
	" WITH (pages_per_range = 32, autosummarize = on);"},
};

#define DB_NMIGRATIONS (sizeof(db_migrations) / sizeof(db_migrations[0]))

/* Copy a libpq message, without its final newline. */
static void
db_seterr(char *err, size_t errlen, const char *prefix, const char *msg)
{
	size_t n;

	if (err == NULL || errlen == 0)
		return;
	snprintf(err, errlen, "%s%s", prefix, msg != NULL ? msg : "");
	n = strlen(err);
	while (n > 0 && err[n - 1] == '\n')
		err[--n] = '\0';
}

PGconn *
db_connect(const struct kt_conf *c, char *err, size_t errlen)
{
	return db_connect_to(c, NULL, err, errlen);
}

PGconn *
db_connect_to(
    const struct kt_conf *c, const char *dbname, char *err, size_t errlen)
{
	if (c == NULL || c->db_connect == NULL || *c->db_connect == '\0') {
		snprintf(err, errlen,
		    "DB_CONNECT is not set in %s; run "
		    "'ktadmin db --bootstrap' first",
		    c != NULL && c->path != NULL ? c->path : KT_CONF_FILE);
		return NULL;
	}
	return db_connect_conninfo(c->db_connect, dbname, err, errlen);
}

PGconn *
db_connect_conninfo(
    const char *conninfo, const char *dbname, char *err, size_t errlen)
{
	/* Later keywords win: the conninfo may name its own application. */
	const char *const keys[] = {"application_name", "connect_timeout",
	    "dbname", dbname != NULL ? "dbname" : NULL, NULL};
	const char *vals[] = {"keytrustee", "10", conninfo, dbname, NULL};
	PGconn *db;

	db = PQconnectdbParams(keys, vals, 1);
	if (db == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (PQstatus(db) != CONNECTION_OK) {
		db_seterr(err, errlen, "", PQerrorMessage(db));
		PQfinish(db);
		return NULL;
	}
	return db;
}

/* Run a statement without parameters that returns no rows. */
static int
db_exec(PGconn *db, const char *sql, const char *what, char *err, size_t errlen)
{
	PGresult *res;
	char prefix[128];
	int ret = 0;

	res = PQexec(db, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(prefix, sizeof(prefix), "%s: ", what);
		db_seterr(err, errlen, prefix,
		    res != NULL ? PQresultErrorMessage(res)
				: PQerrorMessage(db));
		ret = -1;
	}
	PQclear(res);
	return ret;
}

static void
db_rollback(PGconn *db)
{
	PGresult *res;

	if (PQtransactionStatus(db) == PQTRANS_IDLE)
		return;
	res = PQexec(db, "ROLLBACK");
	PQclear(res);
}

static int
db_begin_locked(PGconn *db, const char *what, char *err, size_t errlen)
{
	if (db_exec(db, "BEGIN", what, err, errlen) == -1)
		return -1;
	if (db_exec(db, "SELECT pg_advisory_xact_lock(" DB_MIGRATE_LOCK ")",
		what, err, errlen) == -1) {
		db_rollback(db);
		return -1;
	}
	return 0;
}

int
db_is_standby(PGconn *db)
{
	PGresult *res = PQexec(db, "SELECT pg_is_in_recovery()");
	int r = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		r = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return r;
}

int
db_write_ok(PGconn *db, char *err, size_t errlen)
{
	PGresult *res = PQexec(db,
	    "SELECT pg_is_in_recovery(), " HA_SYNC_OK ", "
	    "current_setting('synchronous_standby_names')");
	int ret = -1;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		db_seterr(err, errlen, "", PQerrorMessage(db));
	else if (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
		snprintf(err, errlen,
		    "this is the passive server's database (a read-only "
		    "replica): make changes on the active server");
	else if (strcmp(PQgetvalue(res, 0, 1), "t") != 0)
		snprintf(err, errlen,
		    "no synchronous standby (%s) is streaming: writes need "
		    "both servers, and this one would wait for the passive",
		    PQgetvalue(res, 0, 2));
	else
		ret = 0;
	PQclear(res);
	return ret;
}

int
db_schema_version(PGconn *db)
{
	PGresult *res = NULL;
	int ret = -1;

	res = PQexec(db, "SELECT to_regclass('schema_migrations') IS NULL");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		goto out;
	if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
		ret = 0;
		goto out;
	}
	PQclear(res);
	res = PQexec(db,
	    "SELECT coalesce(max(version), 0) "
	    "FROM schema_migrations");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		goto out;
	ret = atoi(PQgetvalue(res, 0, 0));
out:
	PQclear(res);
	return ret;
}

/* Apply one migration unless present; 1 when applied, 0 when not, -1. */
static int
db_apply(PGconn *db, const struct db_migration *m, char *err, size_t errlen)
{
	const char *params[2];
	char version[16], what[96];
	PGresult *res = NULL;
	int ret = -1;

	snprintf(what, sizeof(what), "schema migration %d (%s)", m->version,
	    m->name);
	snprintf(version, sizeof(version), "%d", m->version);
	params[0] = version;
	params[1] = m->name;
	if (db_begin_locked(db, what, err, errlen) == -1)
		return -1;
	res = PQexecParams(db,
	    "SELECT 1 FROM schema_migrations "
	    "WHERE version = $1::int",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_seterr(err, errlen,
		    "schema_migrations: ", PQresultErrorMessage(res));
		goto out;
	}
	if (PQntuples(res) == 1) {
		ret = 0;
		goto out;
	}
	PQclear(res);
	res = NULL;
	if (db_exec(db, m->sql, what, err, errlen) == -1)
		goto out;
	res = PQexecParams(db,
	    "INSERT INTO schema_migrations (version, name) "
	    "VALUES ($1::int, $2)",
	    2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		db_seterr(err, errlen,
		    "schema_migrations: ", PQresultErrorMessage(res));
		goto out;
	}
	if (db_exec(db, "COMMIT", what, err, errlen) == -1)
		goto out;
	ret = 1;
out:
	PQclear(res);
	db_rollback(db);
	return ret;
}

int
db_migrate(PGconn *db, char *err, size_t errlen)
{
	size_t i;
	int have, r, applied = 0;

	if (db_begin_locked(db, "schema_migrations", err, errlen) == -1)
		return -1;
	/* No "already exists" notice on every start. */
	if (db_exec(db, "SET LOCAL client_min_messages = warning",
		"schema_migrations", err, errlen) == -1 ||
	    db_exec(db,
		"CREATE TABLE IF NOT EXISTS schema_migrations ("
		" version int PRIMARY KEY,"
		" name text NOT NULL,"
		" applied_at timestamptz NOT NULL DEFAULT now())",
		"schema_migrations", err, errlen) == -1 ||
	    db_exec(db, "COMMIT", "schema_migrations", err, errlen) == -1) {
		db_rollback(db);
		return -1;
	}
	if ((have = db_schema_version(db)) == -1) {
		db_seterr(err, errlen, "schema version: ", PQerrorMessage(db));
		return -1;
	}
	if (have > DB_SCHEMA_VERSION) {
		snprintf(err, errlen,
		    "the database has schema version %d, "
		    "newer than this program knows (%d)",
		    have, DB_SCHEMA_VERSION);
		return -1;
	}
	for (i = 0; i < DB_NMIGRATIONS; i++) {
		if ((r = db_apply(db, &db_migrations[i], err, errlen)) == -1)
			return -1;
		applied += r;
	}
	return applied > 0 ? db_server_role(db, 1, err, errlen) : 0;
}

int
db_server_role(PGconn *db, int tables, char *err, size_t errlen)
{
	const char *what = "the server's role " DB_SERVER_ROLE;

	if (db_begin_locked(db, what, err, errlen) == -1)
		return -1;
	if (db_exec(db, DB_SERVER_ROLE_SQL, what, err, errlen) == -1 ||
	    (tables &&
		db_exec(db, DB_SERVER_GRANTS_SQL, what, err, errlen) == -1) ||
	    db_exec(db, "COMMIT", what, err, errlen) == -1) {
		db_rollback(db);
		return -1;
	}
	return 0;
}
