/*
 * keyproc_tlskey.c - the serving process's TLS key: the public key, with
 * an RSA_METHOD or EC_KEY_METHOD whose private operations go to the key
 * process (ECDSA: sign a digest; RSA: private encrypt with the padding
 * libssl asks for, which covers PKCS#1 v1.5 and PSS, since libssl pads PSS
 * itself and asks for RSA_NO_PADDING).
 *
 * OpenSSL 3 deprecates these method APIs in favour of providers, but still
 * runs a "foreign" key (one with a non-default method) through its legacy
 * code path, which is all a forwarding key needs; a provider doing the same
 * would be a keymgmt and a signature implementation with their dispatch
 * tables.  This is the only file that uses them, hence
 * OPENSSL_SUPPRESS_DEPRECATED here and nowhere else.
 *
 * TLS 1.2 RSA key exchange (kRSA) decrypts with
 * RSA_PKCS1_WITH_TLS_PADDING, which OpenSSL 3 implements only in its
 * provider, not on the legacy path: a proxy RSA key cannot do it, so tls.c
 * excludes kRSA for RSA keys (the priv_dec below refuses, explicitly).
 */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "keyproc.h"
#include "keyproc_tlskey.h"

#define KP_ECDSA_SIG_MAX 160 /* DER ECDSA-Sig-Value of P-521: 139 */

static pthread_once_t kp_tls_once = PTHREAD_ONCE_INIT;
/* The generations of the TLS key (0: none), under kp_gen_mtx. */
static pthread_mutex_t kp_gen_mtx = PTHREAD_MUTEX_INITIALIZER;
static uint32_t kp_gen;       /* the last one handed out */
static uint32_t kp_committed; /* the one the served context uses */
static RSA_METHOD *kp_rsa_meth;
static EC_KEY_METHOD *kp_ec_meth;
static int kp_rsa_idx = -1, kp_ec_idx = -1;

static int
kp_rsa_priv_enc(int flen, const unsigned char *from, unsigned char *to,
    RSA *rsa, int padding)
{
	unsigned char req[1 + KP_MAX_PAYLOAD];
	uint32_t gen = (uint32_t)(uintptr_t)RSA_get_ex_data(rsa, kp_rsa_idx);
	size_t n = 0, size = (size_t)RSA_size(rsa);

	if (flen < 0 || (size_t)flen >= sizeof(req) || padding < 0 ||
	    padding > 255)
		return -1;
	req[0] = (unsigned char)padding;
	memcpy(req + 1, from, (size_t)flen);
	if (keyproc_call(KP_OP_TLS_RSA_SIGN, gen, req, (size_t)flen + 1, to,
	    size, &n) != KP_OK || n != size)
		return -1;
	return (int)n;
}

/* RSA key exchange: not through the key process (see above). */
static int
kp_rsa_priv_dec(int flen, const unsigned char *from, unsigned char *to,
    RSA *rsa, int padding)
{
	(void)flen;
	(void)from;
	(void)to;
	(void)rsa;
	(void)padding;
	return -1;
}

static int
kp_ec_sign(int type, const unsigned char *dgst, int dlen, unsigned char *sig,
    unsigned int *siglen, const BIGNUM *kinv, const BIGNUM *r, EC_KEY *ec)
{
	uint32_t gen = (uint32_t)(uintptr_t)EC_KEY_get_ex_data(ec, kp_ec_idx);
	size_t n = 0;
	int max = ECDSA_size(ec);

	(void)type;
	/* Precomputed k^-1 and r would have to come from the key holder. */
	if (kinv != NULL || r != NULL || dlen <= 0 || max <= 0)
		return 0;
	if (keyproc_call(KP_OP_TLS_EC_SIGN, gen, dgst, (size_t)dlen, sig,
	    (size_t)max, &n) != KP_OK)
		return 0;
	*siglen = (unsigned int)n;
	return 1;
}

static ECDSA_SIG *
kp_ec_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv,
    const BIGNUM *r, EC_KEY *ec)
{
	unsigned char der[KP_ECDSA_SIG_MAX];
	const unsigned char *p = der;
	unsigned int n = 0;

	if (ECDSA_size(ec) > (int)sizeof(der) ||
	    !kp_ec_sign(0, dgst, dlen, der, &n, kinv, r, ec))
		return NULL;
	return d2i_ECDSA_SIG(NULL, &p, (long)n);
}

static void
kp_tls_methods(void)
{
	int (*sign)(int, const unsigned char *, int, unsigned char *,
	    unsigned int *, const BIGNUM *, const BIGNUM *, EC_KEY *) = NULL;
	int (*setup)(EC_KEY *, BN_CTX *, BIGNUM **, BIGNUM **) = NULL;
	ECDSA_SIG *(*sign_sig)(const unsigned char *, int, const BIGNUM *,
	    const BIGNUM *, EC_KEY *) = NULL;

	kp_rsa_idx = RSA_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	kp_ec_idx = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if ((kp_rsa_meth = RSA_meth_dup(RSA_PKCS1_OpenSSL())) != NULL &&
	    (!RSA_meth_set1_name(kp_rsa_meth, "keytrustee key process") ||
	    !RSA_meth_set_priv_enc(kp_rsa_meth, kp_rsa_priv_enc) ||
	    !RSA_meth_set_priv_dec(kp_rsa_meth, kp_rsa_priv_dec))) {
		RSA_meth_free(kp_rsa_meth);
		kp_rsa_meth = NULL;
	}
	if ((kp_ec_meth = EC_KEY_METHOD_new(EC_KEY_OpenSSL())) != NULL) {
		EC_KEY_METHOD_get_sign(kp_ec_meth, &sign, &setup, &sign_sig);
		EC_KEY_METHOD_set_sign(kp_ec_meth, kp_ec_sign, setup,
		    kp_ec_sign_sig);
	}
}

/* The proxy key of the public key der of generation gen; NULL with err. */
static EVP_PKEY *
kp_tlskey_proxy(const unsigned char *der, size_t len, uint32_t gen,
    char *err, size_t errlen)
{
	const unsigned char *p = der;
	EVP_PKEY *pub, *proxy = NULL;
	RSA *rsa = NULL;
	EC_KEY *ec = NULL;

	pthread_once(&kp_tls_once, kp_tls_methods);
	if ((pub = d2i_PUBKEY(NULL, &p, (long)len)) == NULL) {
		snprintf(err, errlen, "the key process sent a public key "
		    "OpenSSL cannot read");
		return NULL;
	}
	if ((proxy = EVP_PKEY_new()) == NULL)
		goto fail;
	switch (EVP_PKEY_get_base_id(pub)) {
	case EVP_PKEY_RSA:
		if (kp_rsa_meth == NULL || kp_rsa_idx < 0 ||
		    (rsa = EVP_PKEY_get1_RSA(pub)) == NULL ||
		    !RSA_set_method(rsa, kp_rsa_meth) ||
		    !RSA_set_ex_data(rsa, kp_rsa_idx, (void *)(uintptr_t)gen) ||
		    !EVP_PKEY_assign_RSA(proxy, rsa))
			goto fail;
		rsa = NULL;
		break;
	case EVP_PKEY_EC:
		if (kp_ec_meth == NULL || kp_ec_idx < 0 ||
		    (ec = EVP_PKEY_get1_EC_KEY(pub)) == NULL ||
		    !EC_KEY_set_method(ec, kp_ec_meth) ||
		    !EC_KEY_set_ex_data(ec, kp_ec_idx, (void *)(uintptr_t)gen) ||
		    !EVP_PKEY_assign_EC_KEY(proxy, ec))
			goto fail;
		ec = NULL;
		break;
	default:
		goto fail;
	}
	EVP_PKEY_free(pub);
	return proxy;
fail:
	snprintf(err, errlen, "cannot make the TLS key that forwards to the "
	    "key process");
	RSA_free(rsa);
	EC_KEY_free(ec);
	EVP_PKEY_free(proxy);
	EVP_PKEY_free(pub);
	ERR_clear_error();
	return NULL;
}

uint32_t
kp_tlskey_gen(const EVP_PKEY *pkey)
{
	const RSA *rsa;
	const EC_KEY *ec;

	if (pkey == NULL)
		return 0;
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
		rsa = EVP_PKEY_get0_RSA(pkey);
		if (rsa != NULL && kp_rsa_meth != NULL &&
		    RSA_get_method(rsa) == kp_rsa_meth)
			return (uint32_t)(uintptr_t)RSA_get_ex_data(rsa,
			    kp_rsa_idx);
		break;
	case EVP_PKEY_EC:
		ec = EVP_PKEY_get0_EC_KEY(pkey);
		if (ec != NULL && kp_ec_meth != NULL &&
		    EC_KEY_get_method(ec) == kp_ec_meth)
			return (uint32_t)(uintptr_t)EC_KEY_get_ex_data(ec,
			    kp_ec_idx);
		break;
	}
	return 0;
}

EVP_PKEY *
keyproc_tls_key(const struct kt_conf *c, int *rsa, char *err, size_t errlen)
{
	unsigned char ans[KP_MAX_PAYLOAD];
	const unsigned char *der;
	uint32_t gen, keep;
	EVP_PKEY *pkey = NULL;
	size_t n = 0;

	(void)c; /* the key process reads keytrustee.conf itself */
	*rsa = 0;
	pthread_mutex_lock(&kp_gen_mtx);
	if (keyproc_start_tls(&gen, &der, &n)) {
		if (gen == 0) {
			snprintf(err, errlen, "%.*s", (int)n, (const char *)der);
			goto out;
		}
		kp_gen = gen;
	} else {
		if (++kp_gen == 0)
			kp_gen = 1;
		gen = kp_gen;
		keep = kp_committed;
		if (keyproc_call(KP_OP_TLS_RELOAD, gen, &keep, sizeof(keep), ans,
			sizeof(ans) - 1, &n) != KP_OK) {
			keyproc_reason(ans, n, err, errlen);
			goto out;
		}
		der = ans;
	}
	if ((pkey = kp_tlskey_proxy(der, n, gen, err, errlen)) != NULL)
		*rsa = EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA;
out:
	pthread_mutex_unlock(&kp_gen_mtx);
	return pkey;
}

void
keyproc_tls_commit(EVP_PKEY *pkey)
{
	uint32_t gen = kp_tlskey_gen(pkey);

	if (gen == 0)
		return;
	pthread_mutex_lock(&kp_gen_mtx);
	kp_committed = gen;
	pthread_mutex_unlock(&kp_gen_mtx);
}
