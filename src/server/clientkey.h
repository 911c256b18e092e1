/* clientkey.h - a client's OpenPGP public key, in-process (librnp). */
#ifndef KT_CLIENTKEY_H
#define KT_CLIENTKEY_H

#include <stddef.h>
#include <time.h>

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

/*
 * A worker's librnp context of the client keys it verified requests
 * with, each imported and checked once (one thread's: no lock).
 */
struct clientkey_ring;
struct clientkey_ring *clientkey_ring_new(void);
void clientkey_ring_free(struct clientkey_ring *ring);

/*
 * Who signed a request, with librnp: msg is a signed message (one-pass
 * signed literal data, compressed or not: what pgpmsg_decrypt finds in a
 * json-encrypt payload), or, sig given, the data of sig's detached
 * signature (json-sign).  The signer's key is what lookup gives for its
 * key ID (16 upper-case hex digits): a malloc'd armored key, or NULL; the
 * signature must be its primary's.  0 with exactly one good signature:
 * its signer's primary fingerprint, its creation time and (msg only) the
 * signed data in *data (malloc'd, NUL-terminated, *datalen octets); else
 * -1 with err.  A signature made up to ahead seconds ahead of this clock
 * verifies (librnp refuses any made in its future): the caller judges its
 * time.
 *
 * With ring (else a context of its own each call), a key the ring holds
 * is used when lookup gives the very armored key it was imported from
 * and it is still valid; else the ring starts again and the key is
 * looked up and checked anew.  Either way lookup is called for the
 * signer's key ID, and the answer is what a context of its own gives.
 */
typedef char *clientkey_lookup_fn(void *arg, const char *keyid);
int clientkey_verify(struct clientkey_ring *ring, const unsigned char *msg,
    size_t len, const unsigned char *sig, size_t siglen,
    clientkey_lookup_fn *lookup, void *arg, unsigned char **data,
    size_t *datalen, char signer[PGP_FPR_LEN + 1], time_t *created,
    time_t ahead, char *err, size_t errlen);

#endif
