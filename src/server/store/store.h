/*
 * store.h - the server's database: every statement keytrustee-server sends
 * to its PostgreSQL is in src/server/store/, behind this interface.
 *
 * A struct store is one connection, used by one thread at a time: each
 * worker has its own, as have the audit queue's committers, the HA monitor
 * and the deposit cache's filler.  It connects lazily, is made again when
 * it broke, and prepares the hot statements once per session.  Nothing
 * here answers a request, knows a cache, or decides a policy: it runs the
 * statement asked for and says what happened (enum store_result).
 *
 * Audit rows: struct audit_row is the one shape of a row of the
 * append-only audit_log (who, what, when, from where; never secret
 * material), and store/audit.c the one place that writes its INSERT; the
 * writes that commit with their audit row (a new deposit, a deletion, a
 * registration, a contact's key) take theirs as an argument.
 */
#ifndef KT_STORE_H
#define KT_STORE_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "crypto.h"
#include "pgp.h"

struct deposit;

enum store_result {
	STORE_OK = 0,
	STORE_NOT_FOUND = 1,  /* no such row (or not the caller's) */
	STORE_CONFLICT = 2,   /* lost a race with a concurrent writer */
	STORE_FORBIDDEN = 3,  /* the row is there, not the caller's to change */
	STORE_FAIL = -1,      /* the database is down or refused it */
	STORE_NO_SYNC = -2,   /* a write found no synchronous standby */
	STORE_READONLY = -3,  /* the database is a read-only standby */
	STORE_INTEGRITY = -4, /* a stored row is not well formed */
};

/* One row of audit_log; NULL or "" remote is stored as NULL. */
struct audit_row {
	const char *actor;  /* a client's fingerprint, a contact, or NULL */
	const char *org;
	const char *action; /* "register", "deposit_read", "auth", ... */
	const char *object; /* a deposit's uuid, a fingerprint, or NULL */
	const char *remote; /* the peer's address */
	const char *result; /* "ok", or why not */
	const char *at;	    /* when, as ISO text; NULL: now */
	int count;	    /* the events it stands for (authfail.c); 0: one */
};
#define AUDIT_ROW(...) (&(const struct audit_row){__VA_ARGS__})

/* ---- connections (store/conn.c) ---------------------------------------- */

/* A connection for conf's database, named in the log as name. */
struct store *store_new(const struct kt_conf *conf, const char *name);
void store_free(struct store *st);
/* The applied schema version (one retry on a broken connection); -1. */
int store_schema_version(struct store *st);

/* ---- audit rows (store/audit.c) ----------------------------------------- */

/*
 * One row, committed on its own with synchronous_commit local: reads are
 * audited and must go on while the passive is down.  STORE_READONLY when
 * the database is a standby now (the caller journals the row instead).
 */
enum store_result store_audit(struct store *st, const struct audit_row *r);
/* Rows written elsewhere first (a passive's journal), in one transaction. */
enum store_result store_audit_import(struct store *st,
    const struct audit_row *rows, int n);

/*
 * The audit rows of reads ("deposit_read", "ok"), as one statement sent
 * without waiting: the connection is non-blocking, its socket watched by
 * the caller's loop.  open: its socket (*fresh: a new connection, made now
 * because there was none or it broke), -1 unreachable.  send: 0 sent, 1
 * the rest waits for the socket to be writable (then flush, likewise), -1
 * failed; durable: the commit returns once flushed to disk, else once
 * written (synchronous_commit off: store_wal_flush makes it durable).
 * poll, when the socket is readable: 1 committed, 0 failed, 2 not all in
 * yet, -1 the connection broke.  close: waits for a batch out, then closes
 * the connection.
 */
int store_batch_open(struct store *st, int *fresh);
int store_batch_send(
    struct store *st, const struct audit_row *rows, int n, int durable);
int store_batch_flush(struct store *st);
int store_batch_poll(struct store *st);
void store_batch_close(struct store *st);
/*
 * Flush the database's write-ahead log to disk up to now, on the
 * primary, without waiting for a standby: every transaction committed
 * before (on any connection, synchronous_commit off included) is durable
 * when it returns STORE_OK.  STORE_READONLY on a standby.
 */
enum store_result store_wal_flush(struct store *st);

/* ---- the audit chain (store/chain.c) ------------------------------------ */

struct auditchain_seg;

/* Where the chain ends now, and how far it may be sealed. */
struct store_chain_head {
	int64_t seq;     /* the last segment's (or anchor's); 0: none */
	int64_t xact_hi; /* the rows below are sealed */
	unsigned char hash[CRYPTO_HASH_LEN]; /* its hash; zeros: none */
	int64_t horizon; /* every transaction below it has ended */
};
/*
 * Take the chain's advisory lock and begin the chainer's transaction
 * (REPEATABLE READ): STORE_OK with *h, STORE_CONFLICT when a prune holds
 * the lock (try later), else a failure (nothing is left open).
 */
enum store_result store_chain_begin(struct store *st,
    struct store_chain_head *h);
/* Open the cursor over the rows lo <= xact < hi, in chain order. */
enum store_result store_chain_open(struct store *st, int64_t lo, int64_t hi);
/*
 * Its next rows (AUDITCHAIN_ROW_COLUMNS; none at the end), NULL (logged)
 * on failure.
 */
PGresult *store_chain_fetch(struct store *st);
/*
 * Append a segment: ids the text of its bigint[] ("{1,2}"), digests its
 * rows' truncated digests.  STORE_READONLY on a standby.
 */
enum store_result store_chain_insert(struct store *st,
    const struct auditchain_seg *s, const char *ids,
    const unsigned char *digests, size_t diglen,
    const unsigned char hash[CRYPTO_HASH_LEN],
    const unsigned char mac[CRYPTO_MAC_LEN]);
/* Commit (or roll back) and release the lock. */
enum store_result store_chain_end(struct store *st, int commit);

/* ---- request signatures seen (store/seen.c) ----------------------------- */

/*
 * Seconds a request signature is remembered: longer than any signed
 * request is valid (auth.h's window, both ways), so that a replay is
 * known for as long as it could be accepted.
 */
#define STORE_SEEN_KEEP 900

/*
 * A write's answer, kept with the write in its transaction under its
 * request's digest (CRYPTO_HASH_LEN bytes): a replay of the request finds
 * it (store_seen_answer) and writes nothing.
 */
struct store_answer {
	const unsigned char *seen;
	int status;
	const char *location; /* NULL: none */
	const char *body;
};
/*
 * Remember a request's digest, with no answer (the legacy protocol
 * refuses its replays): STORE_OK the first time, STORE_CONFLICT when it
 * was seen in the last STORE_SEEN_KEEP seconds (a replay),
 * STORE_READONLY on a standby.
 */
enum store_result store_seen(struct store *st, const unsigned char *digest,
    size_t len);
/*
 * The answer kept with the write of request digest: STORE_OK with
 * *status, *location (NULL: none) and *body (malloc'd), STORE_NOT_FOUND
 * (not seen, or seen with no answer kept), STORE_FAIL.
 */
enum store_result store_seen_answer(struct store *st,
    const unsigned char *digest, size_t len, int *status, char **location,
    char **body);

/* ---- deposits (store/deposits.c, store/batch.c) ------------------------- */

/* A new deposit as it is stored: sealed under the data key. */
struct deposit_row {
	const char *uuid, *owner, *org, *name, *desc; /* desc may be NULL */
	const unsigned char *nonce; /* CRYPTO_NONCE_LEN */
	unsigned char *ct;	    /* malloc'd (auditq_create takes it over) */
	size_t ctlen;
	struct store_answer ans; /* the request's answer, kept with it */
};

/* Deposit uuid of owner: STORE_OK with *out, NOT_FOUND, FAIL, INTEGRITY. */
enum store_result store_deposit_read(struct store *st, const char *uuid,
    const char *owner, struct deposit **out);
/* owner's deposits (named name, unless NULL) as the API lists them. */
enum store_result store_deposit_list(struct store *st, const char *owner,
    const char *name, json_t **out);
/*
 * New deposits with their deposit_create rows and their requests'
 * answers, in one transaction gated by the synchronous standby
 * (STORE_NO_SYNC when there is none, or its wait timed out).  remote: the
 * audit rows' addresses.  With STORE_OK, seen[i] is 1 when row i's request
 * was seen before (in this batch too): it inserted nothing, and its
 * answer is the first one's (store_seen_answer).
 */
enum store_result store_deposit_insert(struct store *st,
    const struct deposit_row *rows, const char *const *remote, int n,
    int *seen);
/*
 * Delete owner's deposit uuid with its audit row (result "ok"/"not_found")
 * and, when it deleted it, the request's answer ans; STORE_CONFLICT when
 * the request was seen before (nothing deleted: its answer is kept).
 */
enum store_result store_deposit_delete(struct store *st, const char *uuid,
    const struct audit_row *a, const struct store_answer *ans);
/*
 * Up to limit deposits after uuid after ("" from the first), in uuid
 * order, each handed to fn (which takes its own reference, and returns -1
 * to stop); the number of rows read, or -1.  last: the last uuid read.
 */
typedef int store_deposit_fn(void *arg, struct deposit *d);
int store_deposit_scan(struct store *st, const char *after, int limit,
    store_deposit_fn *fn, void *arg, char last[CRYPTO_UUID_LEN + 1]);

/* ---- organizations and clients (store/clients.c) ------------------------ */

/* What a signed request needs of its client. */
struct client_auth {
	char fpr[PGP_FPR_LEN + 1];
	char state[12]; /* "active", "pending", "disabled" */
	char org[72];
	unsigned char nonce[CRYPTO_NONCE_LEN]; /* the secret, still sealed */
	unsigned char ct[CRYPTO_KEY_LEN + CRYPTO_TAG_LEN];
};
/* STORE_OK with *out, NOT_FOUND, FAIL, INTEGRITY (a sealed secret's size). */
enum store_result store_client_auth(struct store *st, const char *fpr,
    struct client_auth *out);

/* An organization as registration needs it. */
struct org_row {
	char id[24];
	char *auth_secret; /* malloc'd; "" when approval is automatic */
};
enum store_result store_org_get(struct store *st, const char *name,
    struct org_row *out);
void store_org_clear(struct org_row *o);

/* A registered client, its sealed secret as in client_auth. */
struct client_row {
	char org_id[24];
	struct client_auth a;
};
enum store_result store_client_get(struct store *st, const char *fpr,
    struct client_row *out);

/* A new client and the notice mail to its organization's contacts. */
struct client_new {
	const char *fpr, *org_id, *org, *hostname, *pubkey, *state, *remote;
	const unsigned char *nonce, *ct; /* its sealed secret */
	const char *subject, *body;      /* the notice */
};
/*
 * Insert it with its audit row ("register", "created_<state>") and the
 * notice for each contact, in one transaction gated by the synchronous
 * standby; STORE_CONFLICT when the fingerprint is registered meanwhile.
 */
enum store_result store_client_insert(struct store *st,
    const struct client_new *c);

/* ---- contacts' registration links (store/contacts.c) -------------------- */

struct contact_token {
	char hash[2 * CRYPTO_HASH_LEN + 1]; /* hex SHA-256 of the token */
	char org[72];
	char contact[320];
	char expires[32]; /* UTC, "YYYY-MM-DD HH:MM:SS" */
	int used, expired;
};
/* The link of t->hash: STORE_OK (t filled), NOT_FOUND, FAIL. */
enum store_result store_contact_token(struct store *st,
    struct contact_token *t);
/*
 * Take the link (once, unexpired) and keep the contact's key, with its
 * audit row (result "ok"); STORE_NOT_FOUND when the link went meanwhile.
 */
enum store_result store_contact_key(struct store *st,
    const struct contact_token *t, const char *fpr, const char *pubkey,
    const char *remote);

/* ---- HKP (store/hkp.c) -------------------------------------------------- */

/*
 * The armored public key of fingerprint fpr (a registered client's, or one
 * posted to /pks/add in the last day): STORE_OK with *armored (malloc'd),
 * STORE_NOT_FOUND, STORE_FAIL.
 */
enum store_result store_hkp_key(struct store *st, const char *fpr,
    char **armored);
/*
 * Keep a key posted to /pks/add (again: the newest wins) with its audit
 * row, and drop those no register claimed in a day; gated by the
 * synchronous standby (STORE_NO_SYNC).
 */
enum store_result store_hkp_add(struct store *st, const char *fpr,
    const char *armored, const char *remote);

/* ---- the legacy protocol (store/legacy.c, store/policy.c) ---------------- */

/* A client as the legacy protocol sees it. */
struct legacy_client {
	char fpr[PGP_FPR_LEN + 1];
	char qualified[PGP_QFPR_MAX]; /* "2048R/<FPR>" */
	char state[12];		      /* unverified, verified, active, ... */
	char org[72];		      /* "" until its activation */
	char org_id[24];
	char protocol[16]; /* v1, json-encrypt, json-sign */
	int token_sync;
	char token[65]; /* the token it must send next ("" at first) */
	int token_reset;
	char challenge[2 * 64 + 1]; /* hex SHA-512 until verified, or "" */
	char *pubkey;		    /* armored, malloc'd */
};
/*
 * The client of fingerprint fpr, or (fpr NULL) of the 16 hex digit key
 * ID keyid: STORE_OK with *out (store_legacy_client_clear it),
 * STORE_NOT_FOUND (also when two clients share the key ID), STORE_FAIL.
 */
enum store_result store_legacy_client(struct store *st, const char *fpr,
    const char *keyid, struct legacy_client *out);
void store_legacy_client_clear(struct legacy_client *c);

struct legacy_register {
	const char *fpr, *qualified, *hostname, *pubkey, *protocol;
	const char *token; /* "" with token sync, NULL without */
	const char *challenge_sha512, *org, *remote;
	const unsigned char *nonce, *ct; /* a sealed KT1 secret, unused */
};
/*
 * A client registers (unverified), or registers again (keeping its state
 * and org), taking its key out of hkp_keys; with its audit row.
 */
enum store_result store_legacy_register(struct store *st,
    const struct legacy_register *r);
/* The challenge answered: verified; STORE_NOT_FOUND when none was open. */
enum store_result store_legacy_verified(struct store *st, const char *fpr,
    const char *remote);

struct legacy_activation {
	const char *fpr, *org, *org_id, *state, *remote;
	const char *subject, *body; /* the notice to the org's contacts */
};
/* A verified (or already activated) client joins org in state. */
enum store_result store_legacy_activate(struct store *st,
    const struct legacy_activation *a);
/*
 * Advance fpr's token from `from` to `to` (or from whatever it is after a
 * reset): STORE_OK, or STORE_NOT_FOUND when `from` is not its token.
 */
enum store_result store_legacy_token(struct store *st, const char *fpr,
    const char *from, const char *to);

/* A legacy deposit to keep, with its policy. */
struct legacy_put {
	const char *uuid, *owner, *org, *handle, *desc; /* desc may be NULL */
	const unsigned char *nonce;			 /* sealed, as /v1 */
	const unsigned char *ct;
	size_t ctlen;
	const char *readers;  /* comma-joined fingerprints, "" none */
	const char *trustees; /* likewise */
	int votes;	      /* -1: every trustee */
	int retrievals;	      /* -1: unlimited */
	long ttl;	      /* seconds; -1: for ever */
	long ttb;	      /* seconds before it may be released */
	int archive, recoverable;
	const char *url, *recoverable_sig, *group; /* NULL: none */
	const char *remote;
};
/* STORE_NOT_FOUND: a reader or trustee is no client of this server. */
enum store_result store_legacy_put(struct store *st,
    const struct legacy_put *p);

/* A legacy deposit as a request and a release need it. */
struct legacy_deposit {
	char uuid[CRYPTO_UUID_LEN + 1];
	char owner[PGP_FPR_LEN + 1];
	char owner_qualified[PGP_QFPR_MAX];
	int may_read; /* the reader asked about is its owner or a reader */
	int votes, trustees, retrievals /* -1 unlimited */, released;
	int archive, recoverable, disabled;
	int expired; /* past its ttl */
	int early;   /* before its ttb */
	char not_before[32];
	char *recoverable_sig, *url; /* malloc'd or NULL */
	struct deposit *sealed;	     /* its content, still sealed */
};
/*
 * The deposit of uuid, else of url, else the newest of handle that reader
 * may read: STORE_OK with *out (store_legacy_deposit_clear it),
 * STORE_NOT_FOUND, STORE_FAIL, STORE_INTEGRITY.  uuid: canonical.
 */
enum store_result store_legacy_deposit(struct store *st, const char *uuid,
    const char *handle, const char *url, const char *reader,
    struct legacy_deposit *out);
void store_legacy_deposit_clear(struct legacy_deposit *d);
/* A request of requester to release deposit dep_uuid, timeout seconds. */
enum store_result store_legacy_request_new(struct store *st,
    const char *req_uuid, const char *dep_uuid, const char *requester,
    const char *justification, long timeout, const char *org,
    const char *remote);
struct legacy_request {
	char deposit[CRYPTO_UUID_LEN + 1];
	int expired;
	int approvals, denials;
};
/* requester's request req_uuid: STORE_OK, STORE_NOT_FOUND, STORE_FAIL. */
enum store_result store_legacy_request(struct store *st,
    const char *req_uuid, const char *requester, struct legacy_request *out);
/*
 * Release the deposit for the request: one of its retrievals, while its
 * policy still allows it (STORE_NOT_FOUND otherwise), disabling it after
 * when disable; with its audit row.
 */
enum store_result store_legacy_release(struct store *st,
    const char *req_uuid, const char *dep_uuid, int disable,
    const char *requester, const char *org, const char *remote);
/*
 * A trustee's vote: STORE_FORBIDDEN when the client is no trustee of the
 * request's deposit, STORE_NOT_FOUND when there is no such live request
 * or the trustee voted already.
 */
enum store_result store_legacy_vote(struct store *st, const char *req_uuid,
    const char *trustee, int approve, const char *org, const char *remote);
/*
 * op ("enable", "disable", "purge") on the owner's deposits uuids
 * (comma-joined canonical uuids): all of them, or none: STORE_NOT_FOUND
 * when one is no deposit, STORE_FORBIDDEN when one is not the owner's.
 */
enum store_result store_legacy_manage(struct store *st, const char *owner,
    const char *uuids, const char *op, const char *org, const char *remote);
/*
 * The deposits reader may read matching text (in handle or description;
 * NULL: all), created in [after, before) (ISO; NULL: open), of group:
 * the legacy "matches" array.
 */
enum store_result store_legacy_search(struct store *st, const char *reader,
    const char *text, const char *after, const char *before,
    const char *group, json_t **out);
/* The requests waiting for trustee's vote: the legacy "requests" array. */
enum store_result store_legacy_pending(struct store *st, const char *trustee,
    json_t **out);

/* ---- replication (store/repl.c) ----------------------------------------- */

/* What the database says of replication. */
struct repl_status {
	int passive;        /* the database is a standby */
	int sync_required;  /* active: synchronous_standby_names is set */
	int sync_streaming; /* active: a synchronous standby streams */
	int standbys;       /* active: streaming standbys */
	int receiving;      /* passive: the WAL receiver streams */
	long long lag_bytes;
	double lag_seconds;
	char active_host[256]; /* passive: the host of primary_conninfo */
};
/* One check: STORE_OK with *out filled, else STORE_FAIL (out untouched). */
enum store_result store_repl_status(struct store *st, struct repl_status *out);

/* ---- notifications (store/listen.c) ------------------------------------- */

/*
 * A thread LISTENing on channels: fn gets each notification's payload;
 * live(arg, 1) once listening (after each reconnection), live(arg, 0) when
 * the connection broke (what changed meanwhile is unknown) and at stop.
 * A standby gets no notifications of its primary's changes: there the
 * listener does not listen, and live stays 0.
 */
struct store_channel {
	const char *name;
	void (*fn)(void *arg, const char *payload);
	void (*live)(void *arg, int on);
	void *arg;
};
struct store_listener;
struct store_listener *store_listen_start(const struct kt_conf *conf,
    const struct store_channel *ch, int n);
void store_listen_stop(struct store_listener *l);
/*
 * A connection of its own LISTENing on channel (the mail sender's, which
 * hands it to mail_deliver); NULL, logged, when unreachable.
 */
PGconn *store_listen_conn(const struct kt_conf *conf, const char *channel);

#endif
