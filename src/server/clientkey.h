/* clientkey.h - a client's OpenPGP public key, in-process (librnp). */
#ifndef KT_CLIENTKEY_H
#define KT_CLIENTKEY_H

#include <stddef.h>

#include "pgp.h"

struct clientkey;
/*
 * Check one armored public key: 0 with the key in *out and its fingerprint
 * (upper-case hex) in fpr; -1 with err for no key, several keys, secret key
 * material, no valid user ID, or no valid, unrevoked, unexpired encryption
 * (sub)key.  Nothing is written anywhere.
 */
int clientkey_load(const char *armored, size_t len, struct clientkey **out,
    char fpr[PGP_FPR_LEN + 1], char *err, size_t errlen);
/* Encrypt plain to k: an armored message (SEIPD with MDC, AES-256). */
int clientkey_encrypt(struct clientkey *k, const void *plain, size_t len,
    char **armored, size_t *outlen, char *err, size_t errlen);
void clientkey_free(struct clientkey *k);
/*
 * The key's fingerprint as the legacy protocol writes it: "<bits>R/<40
 * HEX>"; -1 when its primary is not RSA (all the protocol knows).
 */
int clientkey_qualified(struct clientkey *k, char out[PGP_QFPR_MAX]);

#endif
