/*
 * tls.c - the server's TLS context from keytrustee.conf: certificate
 * chain, private key (loaded by the key process, optionally protected by a
 * password that a script prints; here only its public half with the
 * private operations forwarded), CA chain, minimum version and cipher
 * list.  Every refusal names the key of keytrustee.conf that is wrong.
 * The cipher policy (what is never offered, the ECDHE+AEAD default, SHA-1
 * for TLS 1.0/1.1 alone) is in docs/operating.md, "TLS policy".
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "keyproc_tlskey.h"
#include "log.h"
#include "tls.h"
#include "util.h"

/*
 * Never offered, whatever SSL_CIPHERS says: no encryption, no
 * authentication, export grade, broken ciphers (RC4, DES, 3DES) and MACs
 * (MD5), SEED and IDEA.  Appended to every list: OpenSSL's "!" removes a
 * suite for good, whatever came before it.
 */
#define TLS_NEVER "!aNULL:!eNULL:!EXPORT:!LOW:!RC4:!DES:!3DES:!MD5:!SEED:!IDEA"
#define TLS_NEVER_WHAT "NULL encryption, anonymous, export, LOW, RC4, DES, " \
	"3DES, MD5, SEED, IDEA"
/*
 * Never negotiable either, so left out without a word: pre-shared-key and
 * SRP suites (the server has no such secrets; OpenSSL's DEFAULT holds
 * them) and, with an RSA key, RSA key exchange (see keyproc_tlskey.c).
 */
#define TLS_UNUSABLE "!PSK:!SRP"
/* TLS 1.2 by default: ECDHE and an AEAD cipher, no CBC (LUCKY13). */
#define TLS_DEFAULT_12 "ECDHE-ECDSA-AES128-GCM-SHA256:" \
	"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:" \
	"ECDHE-RSA-CHACHA20-POLY1305"
/* TLS 1.0 and 1.1 have no AEAD suite: ECDHE with AES-CBC, for them alone. */
#define TLS_DEFAULT_OLD "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:" \
	"ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA"

typedef int (*tls_seccb_fn)(const SSL *, const SSL_CTX *, int, int, int,
    void *, void *);

/* What the security callback adds to OpenSSL's, per context. */
struct tls_policy {
	int cbc_old_only; /* TLS 1.2 takes AEAD suites only (default list) */
};
static const struct tls_policy tls_policy_operator = { 0 };
static const struct tls_policy tls_policy_default = { 1 };

static pthread_once_t tls_seccb_once = PTHREAD_ONCE_INIT;
static tls_seccb_fn tls_seccb_openssl;

static void
tls_seccb_init(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx != NULL)
		tls_seccb_openssl = SSL_CTX_get_security_callback(ctx);
	SSL_CTX_free(ctx);
}

/*
 * OpenSSL's own security callback at the context's level, with two
 * changes.  TLS 1.0 and 1.1 can sign the handshake only with SHA-1 (or
 * MD5+SHA-1 with RSA), which OpenSSL 3 rates below level 1: allowed for a
 * connection that negotiated them, and for nothing else (OpenSSL's answer
 * to TLS 1.0 is level 0 for the whole context, which also lets NULL and
 * anonymous suites and SHA-1 signatures into TLS 1.2).  And with the
 * default list, its CBC suites serve TLS 1.0/1.1 only.
 */
static int
tls_seccb(const SSL *s, const SSL_CTX *ctx, int op, int bits, int nid,
    void *other, void *ex)
{
	const struct tls_policy *pol = ex;
	int v = s != NULL ? SSL_version(s) : 0;

	if (v == TLS1_VERSION || v == TLS1_1_VERSION) {
		if ((op & SSL_SECOP_OTHER_TYPE) == SSL_SECOP_OTHER_SIGALG &&
		    (nid == NID_sha1 || nid == NID_md5_sha1))
			return 1;
	} else if (v == TLS1_2_VERSION && pol != NULL && pol->cbc_old_only &&
	    (op & SSL_SECOP_OTHER_TYPE) == SSL_SECOP_OTHER_CIPHER &&
	    !SSL_CIPHER_is_aead(other))
		return 0;
	return tls_seccb_openssl(s, ctx, op, bits, nid, other, ex);
}

/* Append the names of the suites of a that b lacks to buf. */
static void
tls_list_dropped(STACK_OF(SSL_CIPHER) *a, STACK_OF(SSL_CIPHER) *b, char *buf,
    size_t len)
{
	size_t n = strlen(buf);
	int i, j, found;

	for (i = 0; i < sk_SSL_CIPHER_num(a); i++) {
		const SSL_CIPHER *c = sk_SSL_CIPHER_value(a, i);

		for (found = 0, j = 0; !found && j < sk_SSL_CIPHER_num(b); j++)
			found = sk_SSL_CIPHER_value(b, j) == c;
		if (found || n + 1 >= len)
			continue;
		n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? " " : "",
		    SSL_CIPHER_get_name(c));
		if (n >= len)
			n = len - 1;
	}
}

/*
 * The cipher list for TLS 1.2 and below: SSL_CIPHERS or the default, less
 * what is never offered (a warning names what the operator asked for of
 * it), and OpenSSL's security level kept whatever @SECLEVEL says.
 */
static int
tls_set_ciphers(SSL_CTX *ctx, const struct kt_conf *c, int rsa, char *err,
    size_t errlen)
{
	const char *op = c->ssl_ciphers != NULL && c->ssl_ciphers[0] != '\0' ?
	    c->ssl_ciphers : NULL;
	const char *base = op != NULL ? op :
	    c->tls_min_version < TLS1_2_VERSION ?
	    TLS_DEFAULT_12 ":" TLS_DEFAULT_OLD : TLS_DEFAULT_12;
	STACK_OF(SSL_CIPHER) *asked = NULL;
	int level = SSL_CTX_get_security_level(ctx);
	char list[4096], dropped[1024] = "";

	if (strlen(base) + sizeof(":" TLS_UNUSABLE ":!kRSA:" TLS_NEVER) >
	    sizeof(list)) {
		snprintf(err, errlen, "%s: SSL_CIPHERS: longer than %zu "
		    "characters", c->path, sizeof(list) - sizeof(":"
		    TLS_UNUSABLE ":!kRSA:" TLS_NEVER));
		return -1;
	}
	if (op != NULL && !SSL_CTX_set_cipher_list(ctx, op)) {
		snprintf(err, errlen, "%s: SSL_CIPHERS: \"%.200s\" matches no "
		    "cipher OpenSSL knows (%s)", c->path, op,
		    crypto_ssl_reason());
		return -1;
	}
	snprintf(list, sizeof(list), "%s:%s%s", base, TLS_UNUSABLE,
	    rsa ? ":!kRSA" : "");
	if (!SSL_CTX_set_cipher_list(ctx, list)) {
		snprintf(err, errlen, "%s: SSL_CIPHERS: \"%.200s\" leaves no "
		    "cipher but%s pre-shared-key and SRP suites, which the "
		    "server cannot serve%s; allow ECDHE ciphers", c->path, base,
		    rsa ? " RSA key exchange (kRSA) and" : "",
		    rsa ? " (its RSA key is held by its key process)" : "");
		return -1;
	}
	if ((asked = sk_SSL_CIPHER_dup(SSL_CTX_get_ciphers(ctx))) == NULL) {
		snprintf(err, errlen, "SSL_CIPHERS: out of memory");
		return -1;
	}
	snprintf(list, sizeof(list), "%s:%s%s:%s", base, TLS_UNUSABLE,
	    rsa ? ":!kRSA" : "", TLS_NEVER);
	if (!SSL_CTX_set_cipher_list(ctx, list)) {
		snprintf(err, errlen, "%s: SSL_CIPHERS: \"%.200s\" asks only "
		    "for suites that are never offered (" TLS_NEVER_WHAT ")%s",
		    c->path, base, strstr(base, "DEFAULT") != NULL &&
		    strncmp(base, "DEFAULT", 7) != 0 ? "; DEFAULT counts only "
		    "when it comes first" : "");
		sk_SSL_CIPHER_free(asked);
		return -1;
	}
	tls_list_dropped(asked, SSL_CTX_get_ciphers(ctx), dropped,
	    sizeof(dropped));
	sk_SSL_CIPHER_free(asked);
	if (dropped[0] != '\0')
		log_warnx("%s: SSL_CIPHERS: asks for suites that are never "
		    "offered (" TLS_NEVER_WHAT "); left out: %s", c->path,
		    dropped);
	if (SSL_CTX_get_security_level(ctx) < level) {
		log_warnx("%s: SSL_CIPHERS: @SECLEVEL=%d ignored: the server "
		    "keeps OpenSSL's security level %d (TLS_MIN_VERSION tlsv1 "
		    "and tlsv1.1 work at it)", c->path,
		    SSL_CTX_get_security_level(ctx), level);
		SSL_CTX_set_security_level(ctx, level);
	}
	SSL_CTX_set0_security_ex_data(ctx, (void *)(op != NULL ?
	    &tls_policy_operator : &tls_policy_default));
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
	if (pthread_once(&tls_seccb_once, tls_seccb_init) != 0 ||
	    tls_seccb_openssl == NULL) {
		snprintf(err, errlen, "OpenSSL's security callback: %s",
		    crypto_ssl_reason());
		goto fail;
	}
	SSL_CTX_set_security_callback(ctx, tls_seccb);
	if (!SSL_CTX_set_min_proto_version(ctx, c->tls_min_version)) {
		snprintf(err, errlen, "%s: TLS_MIN_VERSION: %s is not "
		    "supported by this OpenSSL", c->path,
		    c->tls_min_version_name);
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
	if (tls_set_ciphers(ctx, c, rsa, err, errlen) == -1)
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
