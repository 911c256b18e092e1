/*
 * tls.h - the server's TLS context from keytrustee.conf, and the current
 * one, swapped on SIGHUP.
 */
#ifndef KT_TLS_H
#define KT_TLS_H

#include <openssl/ssl.h>

#include "conf.h"
#include "server.h"

SSL_CTX *tls_ctx_build(const struct kt_conf *c, char *err, size_t errlen);
/* A new reference to the current context (SSL_CTX_free when done). */
SSL_CTX *server_ctx_get(struct server *srv);
void server_ctx_set(struct server *srv, SSL_CTX *ctx);

#endif
