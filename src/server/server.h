/*
 * server.h - keytrustee-server's shared state: the server, started once by
 * main.c, and its worker threads, each an event loop with its own
 * connections and its own database connection.  Every module has its own
 * header; this one holds only what all of them share.
 */
#ifndef KT_SERVER_H
#define KT_SERVER_H

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/time.h>

#include "conf.h"
#include "crypto.h"
#include "mail.h"
#include "pgp.h"

struct auditq;
struct connlimit;
struct authcache;
struct authfail;
struct depcache;
struct evconnlistener;
struct event;
struct event_base;
struct ha;
struct http_conn;
struct http_handoff;
struct http_req;
struct pgpmsg_pubkey;
struct store;
struct store_listener;
struct throttle;
struct worker;

/* What the HTTP layer calls with every parsed request (route_dispatch). */
typedef void server_handle_fn(struct worker *w, struct http_req *req);
/*
 * Are refusals of a request of method to path?query (query NULL: none)
 * answered as the legacy clients read them, a form "reason=<text>",
 * rather than JSON?  (route.c's table says, route_refuses_as_form.)
 */
typedef int server_form_fn(int method, const char *path, const char *query);

/* One event loop thread; everything in it is used by that thread only. */
struct worker {
	struct server *srv;
	int id;
	pthread_t thread;
	struct event_base *base;
	struct store *store;	       /* its database connection */
	struct clientkey_ring *keys;   /* the legacy clients' keys it checked */
	/* Its connections (http.c), and how they reach it (worker.c). */
	struct evconnlistener *listener;
	struct evconnlistener *hkp_listener; /* plain HTTP, or NULL */
	struct http_conn *conns;       /* open connections */
	atomic_int nconns;	       /* ... how many, and handed to it */
	/*
	 * Those with no request in progress, longest-idle first (http.c);
	 * when the first went idle (CLOCK_MONOTONIC ms, LLONG_MAX: none),
	 * for other threads; how many of them to close (connlimit.c).
	 */
	struct http_conn *idle_head, *idle_tail;
	atomic_llong idle_since;
	atomic_int evict_pending;
	struct event *evict_ev;        /* wakes it to close them */
	pthread_mutex_t hand_mtx;      /* guards hand_head */
	struct http_handoff *hand_head; /* accepted by another worker */
	struct event *hand_ev;
	struct event *stop_ev;
	const struct timeval *timeout; /* their idle timeout */
	char date[40];		       /* "Date: ...\r\n" of date_at */
	long long date_at;
};

struct server {
	struct kt_conf *conf;
	char qfpr[PGP_QFPR_MAX];   /* "4096R/<fingerprint>" */
	char *pubkey;              /* armored public key */
	size_t pubkeylen;
	struct pgpmsg_pubkey *self_key; /* the same, read (pgpmsg.h) */
	unsigned char datakey[CRYPTO_KEY_LEN];  /* seals deposits, secrets */
	/* The HTTPS front. */
	pthread_mutex_t ctx_mtx;
	SSL_CTX *ctx;              /* current TLS context; swapped on SIGHUP */
	int lfd;                   /* the listening socket, shared */
	int hkp_lfd;               /* the plain-HTTP HKP one, or -1 */
	int nworkers;
	struct worker *workers;
	int nlegacy;			 /* --legacy-threads */
	struct legacy_pool *legacy_pool; /* they serve legacy actions */
	server_handle_fn *handle;  /* every request goes there */
	server_handle_fn *handle_plain; /* ... those of the HKP listener */
	server_form_fn *refuses_as_form; /* how refusals are written */
	atomic_int draining;
	int max_conns;             /* --max-connections; 0: no limit */
	atomic_int nconns;         /* connections open now */
	struct connlimit *conns;   /* ... per address (connlimit.c) */
	/* What the handlers share. */
	struct ha *ha;             /* role, replication, the write gate */
	pthread_mutex_t pgp_mtx;   /* one GPGME operation at a time */
	struct throttle *throttle; /* failed registrations per address */
	struct throttle *hkp_throttle; /* keys posted to /pks/add */
	struct authfail *authfail; /* failed authentication: limit, audit */
	struct auditq *auditq;     /* group commit of audit rows, deposits */
	struct authcache *authcache; /* clients, kept exact by NOTIFY */
	struct depcache *depcache; /* sealed deposits, kept exact the same way */
	size_t depcache_limit;     /* --deposit-cache-mb, in bytes; 0: none */
	struct store_listener *listener; /* the NOTIFY that keeps them exact */
	/* The outbox sender (mailer.c). */
	struct mail_sender mail;
	pthread_t mail_thread;
	int mail_pipe[2];          /* written to stop the sender */
	int mail_running;
	struct chainer *chainer;   /* the audit chain's sealer (chainer.c) */
};

#endif
