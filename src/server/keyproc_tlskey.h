/*
 * keyproc_tlskey.h - the serving process's TLS key, whose private
 * operations the key process performs (see keyproc_tlskey.c).
 */
#ifndef KT_KEYPROC_TLSKEY_H
#define KT_KEYPROC_TLSKEY_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

/*
 * The TLS key for an SSL_CTX built from c: the public key with its private
 * operations forwarded to the key process.  The first call takes the key
 * loaded at start-up (or its error); each later call asks the key process
 * to read keytrustee.conf and load SSL_PRIVATE_KEY again (SIGHUP).  NULL
 * with err in tls.c's words.  RSA keys cannot do TLS 1.2 RSA key exchange
 * through it (see keyproc_tlskey.c): *rsa tells the caller to exclude kRSA.
 */
EVP_PKEY *keyproc_tls_key(const struct kt_conf *c, int *rsa, char *err,
    size_t errlen);
/* The TLS key of the context now served: a reload keeps it loaded. */
void keyproc_tls_commit(EVP_PKEY *pkey);
/* The generation of a key keyproc_tls_key made; 0 when pkey is not one. */
uint32_t kp_tlskey_gen(const EVP_PKEY *pkey);

#endif
