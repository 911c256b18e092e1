/* server.h - keytrustee-server: shared state of the HTTPS daemon. */
#ifndef KT_SERVER_H
#define KT_SERVER_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>

#include "conf.h"
#include "pgp.h"

struct worker;

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
	const char *role;          /* "active" until HA comes */
};

/* tls.c */
SSL_CTX *tls_ctx_build(const struct kt_conf *c, char *err, size_t errlen);
/* A new reference to the current context (SSL_CTX_free when done). */
SSL_CTX *server_ctx_get(struct server *srv);
void server_ctx_set(struct server *srv, SSL_CTX *ctx);

/* http.c */
int http_workers_start(struct server *srv, char *err, size_t errlen);
void http_workers_stop(struct server *srv);

#endif
