/* connlimit.h - at most --max-connections TLS connections at once. */
#ifndef KT_CONNLIMIT_H
#define KT_CONNLIMIT_H

#include <openssl/ssl.h>

#include "server.h"

/*
 * Count the new connection's ssl: 1 admitted (uncounted when OpenSSL frees
 * it), 0 over the limit (its handshake will be refused), -1 on error.
 */
int conn_admit(struct server *srv, SSL *ssl);
/* A plain HTTP connection (HKP): 1 admitted, 0 over the limit. */
int conn_admit_plain(struct server *srv);
/* ... and when it closes. */
void conn_release_plain(struct server *srv);
/* SSL_CTX client hello callback: refuses what conn_admit did not admit. */
int conn_hello_cb(SSL *ssl, int *al, void *arg);

#endif
