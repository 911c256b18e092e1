/*
 * keyproc_ops.h - the key process's operations on the real keys, and
 * their loading (the key process's; the benchmark's and tests' too).
 */
#ifndef KT_KEYPROC_OPS_H
#define KT_KEYPROC_OPS_H

#include <openssl/evp.h>
#include <stddef.h>

#include "conf.h"

int kp_op_ec_sign(EVP_PKEY *k, const unsigned char *dgst, size_t dlen,
    unsigned char *sig, size_t *siglen);
int kp_op_rsa_sign(EVP_PKEY *k, int padding, const unsigned char *in,
    size_t len, unsigned char *out, size_t *outlen);
int kp_op_pgp_sign(EVP_PKEY *k, int hashalgo, const unsigned char *dgst,
    size_t dlen, unsigned char *sig, size_t *siglen);
int kp_op_pgp_decrypt(EVP_PKEY *k, const unsigned char *ct, size_t len,
    unsigned char *out, size_t *outlen);
/* The server's OpenPGP secret keys from the GnuPG home confdir. */
int kp_load_pgp(const char *confdir, const char *fpr, EVP_PKEY **sign,
    EVP_PKEY **decrypt, char *err, size_t errlen);
/* The TLS private key named by c (tls.c's checks and error texts). */
EVP_PKEY *kp_load_tls(const struct kt_conf *c, char *err, size_t errlen);

#endif
