/* cert.c - the self-signed certificate ktadmin init makes. */
#include "cert.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define CERT_DAYS 3650

static int
add_ext(X509 *crt, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, crt, crt, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
		return -1;
	ok = X509_add_ext(crt, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

static int
bio_to_file(BIO *bio, const char *path, mode_t mode)
{
	char *data;
	long len = BIO_get_mem_data(bio, &data);

	return file_write_atomic(path, data, (size_t)len, mode);
}

int
cert_make_selfsigned(const char *certpath, const char *keypath,
    const char *hostname, enum cert_keytype type, char *err, size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	X509 *crt = NULL;
	X509_NAME *name;
	BIO *kbio = NULL, *cbio = NULL;
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	char san[600], email[300];
	struct in6_addr a6;
	struct in_addr a4;
	int ret = -1;

	if (type == CERT_KEY_RSA)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (pkey == NULL) {
		snprintf(err, errlen, "generating the TLS key failed");
		goto out;
	}
	if ((crt = X509_new()) == NULL || !X509_set_version(crt, 2))
		goto ssl_err;
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto ssl_err;
	serial[0] &= 0x7f;
	if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(crt)) == NULL)
		goto ssl_err;
	if (X509_gmtime_adj(X509_getm_notBefore(crt), -60) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(crt),
	    (long)CERT_DAYS * 86400) == NULL)
		goto ssl_err;
	if (!X509_set_pubkey(crt, pkey))
		goto ssl_err;
	name = X509_get_subject_name(crt);
	snprintf(email, sizeof(email), "keytrustee@%s", hostname);
	if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	    (const unsigned char *)"keytrustee", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)hostname, -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "emailAddress", MBSTRING_ASC,
	    (const unsigned char *)email, -1, -1, 0) ||
	    !X509_set_issuer_name(crt, name))
		goto ssl_err;
	if (inet_pton(AF_INET, hostname, &a4) == 1 ||
	    inet_pton(AF_INET6, hostname, &a6) == 1)
		snprintf(san, sizeof(san), "IP:%s", hostname);
	else if (strcmp(hostname, "localhost") == 0)
		snprintf(san, sizeof(san),
		    "DNS:localhost,IP:127.0.0.1,IP:::1");
	else
		snprintf(san, sizeof(san), "DNS:%s", hostname);
	if (add_ext(crt, NID_basic_constraints, "critical,CA:FALSE") ||
	    add_ext(crt, NID_key_usage, type == CERT_KEY_RSA ?
	    "critical,digitalSignature,keyEncipherment" :
	    "critical,digitalSignature") ||
	    add_ext(crt, NID_ext_key_usage, "serverAuth") ||
	    add_ext(crt, NID_subject_key_identifier, "hash") ||
	    add_ext(crt, NID_subject_alt_name, san))
		goto ssl_err;
	if (!X509_sign(crt, pkey, EVP_sha256()))
		goto ssl_err;
	if ((kbio = BIO_new(BIO_s_mem())) == NULL ||
	    (cbio = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_PrivateKey(kbio, pkey, NULL, NULL, 0, NULL, NULL) ||
	    !PEM_write_bio_X509(cbio, crt))
		goto ssl_err;
	if (bio_to_file(kbio, keypath, 0600) == -1) {
		snprintf(err, errlen, "%s: %s", keypath, strerror(errno));
		goto out;
	}
	if (bio_to_file(cbio, certpath, 0600) == -1) {
		snprintf(err, errlen, "%s: %s", certpath, strerror(errno));
		goto out;
	}
	ret = 0;
	goto out;
ssl_err:
	snprintf(err, errlen, "making the self-signed certificate: %s",
	    ERR_reason_error_string(ERR_get_error()));
out:
	if (kbio != NULL) {
		char *data;
		long len = BIO_get_mem_data(kbio, &data);
		OPENSSL_cleanse(data, (size_t)len);
	}
	BIO_free(kbio);
	BIO_free(cbio);
	BN_free(bn);
	X509_free(crt);
	EVP_PKEY_free(pkey);
	return ret;
}
