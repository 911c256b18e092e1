/*
 * pgpmsg_rsa.h - the key process's RSA work for pgpmsg, done in the
 * process of a test (tests/unit/test_pgpmsg.c) or of the interoperability
 * tests' driver (tests/unit/pgpmsg_tool.c) with OpenSSL keys it holds
 * itself: the decryption callback (pgpmsg_decrypt_fn) picks the key by key
 * ID, the signer (pgpsig_sign_fn) signs with one key.  Definitions, not
 * only declarations: include it in one file of a program.
 */
#ifndef KT_TESTS_PGPMSG_RSA_H
#define KT_TESTS_PGPMSG_RSA_H

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <string.h>

#include "pgpkey.h"
#include "pgpmsg.h"
#include "pgpsig.h"

#define RSA_KEYS_MAX 2

/* The keys a decryption callback knows, by key ID. */
struct rsa_keys {
	EVP_PKEY *key[RSA_KEYS_MAX];
	unsigned char keyid[RSA_KEYS_MAX][PGPKEY_KEYID_LEN];
	int n;
	int calls;                            /* callbacks made */
	unsigned char used[PGPKEY_KEYID_LEN]; /* the last key ID that worked */
};

/* PKCS#1 v1.5 decryption, or signature with md's DigestInfo: 0, or -1. */
static inline int
rsa_op(EVP_PKEY *k, const EVP_MD *md, const unsigned char *in, size_t len,
    unsigned char *out, size_t *outlen)
{
	EVP_PKEY_CTX *pc;
	int ok;

	if ((pc = EVP_PKEY_CTX_new(k, NULL)) == NULL)
		return -1;
	ok = (md == NULL ? EVP_PKEY_decrypt_init(pc) :
	    EVP_PKEY_sign_init(pc)) > 0 &&
	    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) > 0 &&
	    (md == NULL || EVP_PKEY_CTX_set_signature_md(pc, md) > 0) &&
	    (md == NULL ? EVP_PKEY_decrypt(pc, out, outlen, in, len) :
	    EVP_PKEY_sign(pc, out, outlen, in, len)) > 0;
	EVP_PKEY_CTX_free(pc);
	return ok ? 0 : -1;
}

/* pgpmsg_decrypt_fn over arg, a struct rsa_keys. */
static inline int
rsa_decrypt(void *arg, const unsigned char keyid[PGPKEY_KEYID_LEN],
    const unsigned char *ct, size_t ctlen, unsigned char *out,
    size_t *outlen, char *err, size_t errlen)
{
	struct rsa_keys *keys = arg;
	int i;

	keys->calls++;
	if (*outlen != PGPMSG_DECRYPT_ROOM) {
		snprintf(err, errlen, "the answer's room is not "
		    "PGPMSG_DECRYPT_ROOM");
		return -1;
	}
	for (i = 0; i < keys->n; i++)
		if (memcmp(keyid, keys->keyid[i], PGPKEY_KEYID_LEN) == 0)
			break;
	if (i == keys->n) {
		snprintf(err, errlen, "not a key of this server");
		return -1;
	}
	if (rsa_op(keys->key[i], NULL, ct, ctlen, out, outlen) == -1) {
		snprintf(err, errlen, "RSA decryption failed");
		return -1;
	}
	memcpy(keys->used, keyid, PGPKEY_KEYID_LEN);
	return 0;
}

/* pgpsig_sign_fn over arg, an EVP_PKEY. */
static inline int
rsa_sign(void *arg, int hashalgo, const unsigned char *digest, size_t dlen,
    unsigned char *sig, size_t *siglen, char *err, size_t errlen)
{
	*siglen = PGPSIG_SIG_MAX;
	if (pgpkey_md(hashalgo) == NULL ||
	    rsa_op(arg, pgpkey_md(hashalgo), digest, dlen, sig, siglen) == -1) {
		snprintf(err, errlen, "RSA signing failed");
		return -1;
	}
	return 0;
}

#endif
