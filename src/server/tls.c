/*
 * tls.c - the server's TLS context from keytrustee.conf: certificate
 * chain, private key (loaded by the key process, optionally protected by a
 * password that a script prints; here only its public half with the
 * private operations forwarded), CA chain, minimum version and cipher
 * list.  Every refusal names the key of keytrustee.conf that is wrong.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "keyproc_tlskey.h"
#include "log.h"
#include "tls.h"
#include "util.h"

/*
 * An RSA key in the key process cannot do TLS 1.2 RSA key exchange (see
 * keyproc_tlskey.c): serve the same list without it.
 */
static int
tls_exclude_krsa(SSL_CTX *ctx, const struct kt_conf *c, char *err,
    size_t errlen)
{
	const char *base = c->ssl_ciphers != NULL && c->ssl_ciphers[0] != '\0' ?
	    c->ssl_ciphers : OSSL_default_cipher_list();
	char list[4096];

	if ((size_t)snprintf(list, sizeof(list), "%s:!kRSA", base) >=
	    sizeof(list) || !SSL_CTX_set_cipher_list(ctx, list)) {
		snprintf(err, errlen, "%s: SSL_CIPHERS: \"%.200s\" leaves no "
		    "cipher without RSA key exchange (kRSA), which the server "
		    "cannot do with an RSA key held by its key process; allow "
		    "ECDHE ciphers", c->path, base);
		return -1;
	}
	return 0;
}

/* Send the certificates of the CA file as the chain, after the server's. */
static int
tls_add_chain(SSL_CTX *ctx, const struct kt_conf *c, const char *cafile,
    char *err, size_t errlen)
{
	X509 *x;
	BIO *bio;
	int n = 0;

	if ((bio = BIO_new_file(cafile, "r")) == NULL) {
		snprintf(err, errlen, "%s: SSL_CA: %s: %s", c->path, cafile,
		    strerror(errno));
		return -1;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (!SSL_CTX_add0_chain_cert(ctx, x)) {
			X509_free(x);
			BIO_free(bio);
			snprintf(err, errlen, "%s: SSL_CA: %s: %s", c->path,
			    cafile, crypto_ssl_reason());
			return -1;
		}
		n++;
	}
	ERR_clear_error();
	BIO_free(bio);
	if (n == 0) {
		snprintf(err, errlen, "%s: SSL_CA: %s holds no PEM certificate",
		    c->path, cafile);
		return -1;
	}
	return 0;
}

SSL_CTX *
tls_ctx_build(const struct kt_conf *c, char *err, size_t errlen)
{
	char defca[4096];
	const char *cafile = c->ssl_ca;
	SSL_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	int rsa = 0;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, errlen, "SSL_CTX_new: %s", crypto_ssl_reason());
		return NULL;
	}
	if (c->tls_min_version < TLS1_2_VERSION)
		/* OpenSSL 3 refuses TLS 1.0/1.1 above security level 0. */
		SSL_CTX_set_security_level(ctx, 0);
	if (!SSL_CTX_set_min_proto_version(ctx, c->tls_min_version)) {
		snprintf(err, errlen, "%s: TLS_MIN_VERSION: %s is not "
		    "supported by this OpenSSL", c->path,
		    c->tls_min_version_name);
		goto fail;
	}
	if (c->ssl_ciphers != NULL && c->ssl_ciphers[0] != '\0' &&
	    !SSL_CTX_set_cipher_list(ctx, c->ssl_ciphers)) {
		snprintf(err, errlen, "%s: SSL_CIPHERS: \"%.200s\" matches no "
		    "cipher OpenSSL knows (%s)", c->path, c->ssl_ciphers,
		    crypto_ssl_reason());
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"kts", 3);

	if (!file_exists(c->ssl_certificate)) {
		snprintf(err, errlen, "%s: SSL_CERTIFICATE: %s: %s", c->path,
		    c->ssl_certificate, strerror(errno));
		goto fail;
	}
	if (!SSL_CTX_use_certificate_chain_file(ctx, c->ssl_certificate)) {
		snprintf(err, errlen, "%s: SSL_CERTIFICATE: cannot load %s: %s",
		    c->path, c->ssl_certificate, crypto_ssl_reason());
		goto fail;
	}
	/* The private key stays in the key process: see keyproc.h. */
	if ((pkey = keyproc_tls_key(c, &rsa, err, errlen)) == NULL)
		goto fail;
	if (rsa && tls_exclude_krsa(ctx, c, err, errlen) == -1)
		goto fail;
	if (!SSL_CTX_use_PrivateKey(ctx, pkey) ||
	    !SSL_CTX_check_private_key(ctx)) {
		snprintf(err, errlen, "%s: SSL_PRIVATE_KEY: %s does not match "
		    "the certificate in SSL_CERTIFICATE (%s)", c->path,
		    c->ssl_private_key, c->ssl_certificate);
		goto fail;
	}
	/* The guide puts the CA at .ssl/ssl-cert-keytrustee-ca.pem. */
	if (cafile == NULL && path_join(defca, sizeof(defca), c->confdir,
	    ".ssl/ssl-cert-keytrustee-ca.pem") == 0 && file_exists(defca))
		cafile = defca;
	if (cafile != NULL && tls_add_chain(ctx, c, cafile, err, errlen))
		goto fail;
	EVP_PKEY_free(pkey);
	return ctx;
fail:
	EVP_PKEY_free(pkey);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return NULL;
}

SSL_CTX *
server_ctx_get(struct server *srv)
{
	SSL_CTX *ctx;

	pthread_mutex_lock(&srv->ctx_mtx);
	ctx = srv->ctx;
	SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&srv->ctx_mtx);
	return ctx;
}

void
server_ctx_set(struct server *srv, SSL_CTX *ctx)
{
	SSL_CTX *old;

	pthread_mutex_lock(&srv->ctx_mtx);
	old = srv->ctx;
	srv->ctx = ctx;
	keyproc_tls_commit(SSL_CTX_get0_privatekey(ctx));
	pthread_mutex_unlock(&srv->ctx_mtx);
	SSL_CTX_free(old);
}
