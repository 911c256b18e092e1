/* server.h - keytrustee-server: shared state of the HTTPS daemon. */
#ifndef KT_SERVER_H
#define KT_SERVER_H

#include <event2/http.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <limits.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "conf.h"
#include "crypto.h"
#include "db.h"
#include "httpmsg.h"
#include "mail.h"
#include "pgp.h"

struct throttle;
struct auditq;
struct authcache;
struct auditq_item;
struct http_req;
struct http_conn;
struct http_handoff;
struct evconnlistener;
struct depcache;
struct depcache_entry;

/* What the HA monitor last saw of this server's database (ha.c). */
struct ha_state {
	int known;          /* a check has succeeded */
	int db_up;          /* the last check succeeded */
	int passive;        /* the database is a standby */
	int sync_required;  /* active: synchronous_standby_names is set */
	int sync_streaming; /* active: a synchronous standby streams */
	int standbys;       /* active: streaming standbys */
	int receiving;      /* passive: the WAL receiver streams */
	long long lag_bytes;
	double lag_seconds;
	char active_host[256]; /* passive: the host of primary_conninfo */
	long long checked_ms;  /* CLOCK_MONOTONIC of the last check */
};

/* One event loop thread; everything in it is used by that thread only. */
struct worker {
	struct server *srv;
	int id;
	pthread_t thread;
	struct event_base *base;
	struct evconnlistener *listener;
	struct http_conn *conns;       /* open connections (http.c) */
	atomic_int nconns;             /* ... how many, and handed to it */
	pthread_mutex_t hand_mtx;      /* guards hand_head */
	struct http_handoff *hand_head; /* accepted by another worker */
	struct event *hand_ev;
	const struct timeval *timeout; /* their idle timeout */
	char date[40];                 /* "Date: ...\r\n" of date_at */
	long long date_at;
	struct event *stop_ev;
	PGconn *db;            /* this worker's connection, opened lazily */
	PGconn *prepared_on;   /* the connection the statements are on */
	unsigned prepared;     /* bit (1 << stmt_id): prepared there */
	/* Answers whose audit rows committed (auditq.c), to send here. */
	pthread_mutex_t done_mtx;
	struct auditq_item *done_head, **done_tail;
	struct event *done_ev;
};

struct server {
	struct kt_conf *conf;
	char qfpr[PGP_QFPR_MAX];   /* "4096R/<fingerprint>" */
	char *pubkey;              /* armored public key */
	size_t pubkeylen;
	pthread_mutex_t ctx_mtx;
	SSL_CTX *ctx;              /* current TLS context; swapped on SIGHUP */
	int nworkers;
	struct worker *workers;
	int lfd;                   /* the listening socket, shared */
	atomic_int draining;
	pthread_mutex_t ha_mtx;    /* guards ha */
	struct ha_state ha;        /* refreshed by the HA monitor thread */
	pthread_t ha_thread;
	atomic_int ha_stop;
	pthread_mutex_t journal_mtx;
	int journal_fd;            /* the passive's audit journal, or -1 */
	unsigned char datakey[CRYPTO_KEY_LEN];  /* seals deposits, secrets */
	pthread_mutex_t pgp_mtx;   /* one GPGME operation at a time */
	struct throttle *throttle; /* failed registrations per address */
	struct auditq *auditq;     /* group commit of read audit rows */
	struct authcache *authcache; /* clients, kept exact by NOTIFY */
	struct depcache *depcache; /* sealed deposits, kept exact the same way */
	size_t depcache_limit;     /* --deposit-cache-mb, in bytes; 0: none */
	int max_conns;             /* --max-connections; 0: no limit */
	atomic_int nconns;         /* TLS connections open now */
	struct mail_sender mail;   /* the outbox sender (mailer.c) */
	pthread_t mail_thread;
	int mail_pipe[2];          /* written to stop the sender */
	int mail_running;
};

/* A client whose request signature verified. */
struct auth_client {
	char fpr[PGP_FPR_LEN + 1];
	char org[72];
};

/* stmt.c - statements prepared once per worker connection. */
enum stmt_id {
	STMT_AUTH_CLIENT,
	STMT_DEPOSIT_READ,
	STMT_COUNT
};
/* PQexecPrepared on db (the worker's), preparing id there first if needed. */
PGresult *stmt_exec(struct worker *w, PGconn *db, enum stmt_id id,
    const char *const *values, const int *lengths, const int *formats,
    int binary);

/* auditq.c - group commit of the audit rows of deposit reads. */
struct auditq *auditq_start(struct server *srv);
void auditq_stop(struct auditq *q);
/*
 * Queue the "deposit_read ok" row; body (malloc'd, taken over) is sent with
 * 200 by w's loop once the row has committed, or a 503 instead.  -1 when
 * there is no queue (the caller audits and answers itself).
 */
int auditq_read(struct worker *w, struct http_req *req,
    const char *actor, const char *org, const char *object,
    const char *remote, char *body, size_t len);
/*
 * Queue a new deposit (ct, malloc'd, taken over; name and desc copied) with
 * its deposit_create row, inserted with others through ha_exec under
 * HA_SYNC_OK; body is sent with 201 once both committed, else the 503 the
 * single insert would give.  -1 when there is no queue (nothing taken).
 */
int auditq_create(struct worker *w, struct http_req *req,
    const char *uuid, const char *owner, const char *org, const char *name,
    const char *desc, const unsigned char nonce[CRYPTO_NONCE_LEN],
    unsigned char *ct, size_t ctlen, const char *remote, char *body,
    size_t len);
void auditq_done_cb(int fd, short what, void *arg);
void auditq_done_drop(struct worker *w);

/* authcache.c - the clients' auth data, invalidated by LISTEN/NOTIFY. */
struct authcache_entry {
	char fpr[PGP_FPR_LEN + 1];
	char state[12];
	char org[72];
	unsigned char nonce[CRYPTO_NONCE_LEN];  /* the secret, still sealed */
	unsigned char ct[CRYPTO_KEY_LEN + CRYPTO_TAG_LEN];
};
struct authcache *authcache_start(struct server *srv);
void authcache_stop(struct authcache *ac);
/* 0 with the entry while the cache is live and holds fpr; else -1. */
int authcache_get(struct authcache *ac, const char *fpr,
    struct authcache_entry *out);
/* Read before the database lookup; put keeps e only if unchanged since. */
unsigned long authcache_gen(struct authcache *ac);
void authcache_put(struct authcache *ac, const struct authcache_entry *e,
    unsigned long gen);

/* depcache.c - the sealed deposits, invalidated by LISTEN/NOTIFY. */
struct depcache *depcache_start(struct server *srv, size_t limit);
void depcache_stop(struct depcache *dc);
/* The cached deposit uuid (a reference: depcache_unref), or NULL. */
struct depcache_entry *depcache_get(struct depcache *dc, const char *uuid);
void depcache_unref(struct depcache_entry *e);
/* Read before the database; put keeps e only if nothing was dropped since. */
unsigned long depcache_gen(struct depcache *dc);
void depcache_put(struct depcache *dc, struct depcache_entry *e,
    unsigned long gen);
/* A row as the deposits table holds it; NULL when it is not well formed. */
struct depcache_entry *depcache_entry_new(const char *uuid,
    const char *owner, const char *name, const char *desc,
    const unsigned char *nonce, size_t noncelen, const unsigned char *ct,
    size_t ctlen, const char *created);
const char *depcache_entry_owner(const struct depcache_entry *e);
const unsigned char *depcache_entry_ct(const struct depcache_entry *e,
    size_t *len, const unsigned char **nonce);
/* The GET answer with plain as its content (malloc'd), or NULL. */
char *depcache_answer(const struct depcache_entry *e,
    const unsigned char *plain, size_t plainlen, size_t *len);
/* Invalidations (the listener, the API's DELETE). */
void depcache_drop(struct depcache *dc, const char *uuid);
void depcache_flush(struct depcache *dc);
/* The listener: on (emptied, then filled from the table) or off. */
void depcache_set_live(struct depcache *dc, int live);
/* Read the table into the cache again (rows came from elsewhere). */
void depcache_fill(struct depcache *dc);
void depcache_stats(struct depcache *dc, size_t *n, size_t *bytes,
    size_t *limit, int *live, int *filling);

/* connlimit.c - at most max_conns connections. */
/*
 * Count the new connection's ssl: 1 admitted (uncounted when OpenSSL frees
 * it), 0 over the limit (its handshake will be refused), -1 on error.
 */
int conn_admit(struct server *srv, SSL *ssl);
/* SSL_CTX client hello callback: refuses what conn_admit did not admit. */
int conn_hello_cb(SSL *ssl, int *al, void *arg);

/* tls.c */
SSL_CTX *tls_ctx_build(const struct kt_conf *c, char *err, size_t errlen);
/* A new reference to the current context (SSL_CTX_free when done). */
SSL_CTX *server_ctx_get(struct server *srv);
void server_ctx_set(struct server *srv, SSL_CTX *ctx);

/* http.c */
int http_workers_start(struct server *srv, char *err, size_t errlen);
void http_workers_stop(struct server *srv);
void http_reply(struct http_req *req, int status, const char *ctype,
    const char *body, size_t len);
void http_reply_json(struct http_req *req, int status, json_t *obj);
/* Errors name what is wrong; they never echo the request. */
void http_reply_error(struct http_req *req, int status,
    const char *code, const char *msg);
/* The peer's address, for the audit log ("" when unknown). */
const char *http_peer(struct http_req *req);
/* An answer header (not Connection: the HTTP layer writes that one). */
void http_add_header(struct http_req *req, const char *name,
    const char *value);
/* The request: method, a header field (NULL when absent), the body. */
enum httpmsg_method http_req_method(const struct http_req *req);
const char *http_req_header(const struct http_req *req, const char *name);
int http_req_header_count(const struct http_req *req, const char *name);
const unsigned char *http_req_body(const struct http_req *req, size_t *len);
/* The request target as sent (what a signature covers), its query. */
const char *http_req_uri(const struct http_req *req);
const char *http_req_query(const struct http_req *req);
/* The worker's database connection, (re)connected when needed; or NULL. */
PGconn *worker_db(struct worker *w);

/* api.c - the /v1 JSON API. */
void api_register(struct worker *w, struct http_req *req);
/* uuid: the path element after /v1/deposits/, or NULL for the collection. */
void api_deposits(struct worker *w, struct http_req *req,
    const char *uuid);

/* auth.c - request signatures (KT1-HMAC-SHA256). */
/*
 * Verify the Authorization header of req over body.  Returns 0 with the
 * client in out, or -1 after replying 401/403 (and auditing the failure).
 */
int auth_request(struct worker *w, struct http_req *req,
    const unsigned char *body, size_t bodylen, struct auth_client *out);
/* The parts of an Authorization header value. */
struct auth_header {
	char fpr[PGP_FPR_LEN + 1];  /* upper-cased */
	char ts[20];
	long long tsval;
	unsigned char sig[CRYPTO_MAC_LEN];
};
/*
 * Strict parse of a header value "KT1-HMAC-SHA256 fp=..,ts=..,sig=..";
 * -1 when malformed.  Exposed for tests/fuzz/fuzz_auth.c.
 */
int auth_parse(const char *v, struct auth_header *h);
/* Open a client's sealed signing secret (AAD = fingerprint). */
int auth_secret_open(const struct server *srv, const char *fpr,
    const unsigned char *nonce, size_t noncelen, const unsigned char *ct,
    size_t ctlen, unsigned char secret[CRYPTO_KEY_LEN]);

/* throttle.c - failed registration attempts per remote address. */
struct throttle *throttle_new(void);
void throttle_free(struct throttle *t);
/* 1 when addr has failed too often in this window (seconds left in retry). */
int throttle_blocked(struct throttle *t, const char *addr, int *retry);
void throttle_fail(struct throttle *t, const char *addr);

/* mailer.c - the outbox sender thread. */
int mailer_start(struct server *srv, char *err, size_t errlen);
void mailer_stop(struct server *srv);

/* clientkey.c - a client's OpenPGP public key, in-process (librnp). */
struct clientkey;
/*
 * Check one armored public key: 0 with the key in *out and its fingerprint
 * (upper-case hex) in fpr; -1 with err for no key, several keys, secret key
 * material, no valid user ID, or no valid, unrevoked, unexpired encryption
 * (sub)key.  Nothing is written anywhere.
 */
int clientkey_load(const char *armored, size_t len, struct clientkey **out,
    char fpr[PGP_FPR_LEN + 1], char *err, size_t errlen);
/* Encrypt plain to k: an armored message (SEIPD with MDC, AES-256). */
int clientkey_encrypt(struct clientkey *k, const void *plain, size_t len,
    char **armored, size_t *outlen, char *err, size_t errlen);
void clientkey_free(struct clientkey *k);

/* contact.c - GET/POST /?q=TOKEN: a contact registers its OpenPGP key. */
void contact_page(struct worker *w, struct http_req *req,
    const char *token);

/* ha.c - active/passive: role, replication state, the write gate. */
int ha_start(struct server *srv, char *err, size_t errlen);
void ha_stop(struct server *srv);
void ha_snapshot(struct server *srv, struct ha_state *out);
int ha_is_passive(struct server *srv);
/* 0 when this server may take a write now; else -1 after replying 503. */
int ha_write_gate(struct worker *w, struct http_req *req);
/* 503: a synchronous standby is required and none streams. */
void ha_refuse_no_sync(struct http_req *req);
/* The "replication" object of /health; *writes: may it take writes. */
json_t *ha_health(struct server *srv, int *writes);
/*
 * PQexecParams for a write, its commit's wait for a synchronous standby
 * bounded: past the bound the wait is cancelled, NULL is returned with
 * *timed_out set (the row may be committed locally; it was not confirmed).
 */
PGresult *ha_exec(struct worker *w, PGconn *db, const char *sql, int n,
    const char *const *params, const int *lens, const int *fmts, int rfmt,
    int *timed_out);
/* The same for the statement prepared on db as stmt. */
PGresult *ha_exec_prepared(struct worker *w, PGconn *db, const char *stmt,
    int n, const char *const *params, const int *lens, const int *fmts,
    int rfmt, int *timed_out);
/* The passive's audit: one JSON line per event in CONFDIR/audit-passive.log. */
int ha_journal(struct server *srv, const char *actor, const char *org,
    const char *action, const char *object, const char *remote,
    const char *result);

/* audit.c - the append-only audit_log. */
int audit(struct worker *w, const char *actor, const char *org,
    const char *action, const char *object, const char *remote,
    const char *result);
/* A database error fit for the log (never the row's values). */
const char *db_error(PGresult *res, PGconn *db);

#endif
