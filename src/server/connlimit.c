/*
 * connlimit.c - at most --max-connections TLS connections at once.  Each
 * connection's SSL carries, as ex_data, the server it is counted against;
 * the count drops when OpenSSL frees the SSL (the connection is gone).  A
 * connection over the limit is marked instead, and its handshake is
 * refused at the ClientHello with a handshake_failure alert, so the
 * client fails at once instead of waiting, and the server holds nothing
 * for it but the moment it takes to say no.
 */
#include <openssl/ssl.h>
#include <pthread.h>
#include <time.h>

#include "connlimit.h"
#include "log.h"

static pthread_once_t conn_once = PTHREAD_ONCE_INIT;
static int conn_idx = -1;
static char conn_rejected; /* its address marks a refused connection */
static atomic_llong conn_last_warn;

static void
conn_free(
    void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (ptr != NULL && ptr != &conn_rejected)
		atomic_fetch_sub(&((struct server *)ptr)->nconns, 1);
}

static void
conn_init(void)
{
	conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_free);
}

int
conn_admit(struct server *srv, SSL *ssl)
{
	long long now = (long long)time(NULL);
	int n;

	pthread_once(&conn_once, conn_init);
	if (conn_idx < 0)
		return -1;
	n = atomic_fetch_add(&srv->nconns, 1) + 1;
	if (srv->max_conns > 0 && n > srv->max_conns) {
		atomic_fetch_sub(&srv->nconns, 1);
		SSL_set_ex_data(ssl, conn_idx, &conn_rejected);
		/* Once a second at most: a flood must not flood the log. */
		if (atomic_exchange(&conn_last_warn, now) != now)
			log_warnx("connection refused: %d connections open, "
				  "the limit (--max-connections)",
			    srv->max_conns);
		return 0;
	}
	if (SSL_set_ex_data(ssl, conn_idx, srv) != 1) {
		atomic_fetch_sub(&srv->nconns, 1);
		return -1;
	}
	return 1;
}

int
conn_hello_cb(SSL *ssl, int *al, void *arg)
{
	(void)arg;
	if (conn_idx >= 0 && SSL_get_ex_data(ssl, conn_idx) == &conn_rejected) {
		*al = SSL_AD_HANDSHAKE_FAILURE;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

int
conn_admit_plain(struct server *srv)
{
	int n = atomic_fetch_add(&srv->nconns, 1) + 1;

	if (srv->max_conns > 0 && n > srv->max_conns) {
		atomic_fetch_sub(&srv->nconns, 1);
		return 0;
	}
	return 1;
}

void
conn_release_plain(struct server *srv)
{
	atomic_fetch_sub(&srv->nconns, 1);
}
