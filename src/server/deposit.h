/*
 * deposit.h - a stored deposit as the server holds it in memory: still
 * sealed (the AES-GCM nonce and ciphertext, opened on every read), with
 * its owner and the other members of its GET answer rendered once.
 * Deposits never change once written; they are deleted.  Reference
 * counted: the deposit cache and each read in flight hold one.
 */
#ifndef KT_DEPOSIT_H
#define KT_DEPOSIT_H

#include <stdatomic.h>
#include <stddef.h>

#include "crypto.h"
#include "pgp.h"

struct deposit {
	struct deposit *next; /* the deposit cache's bucket chain */
	atomic_int refs;
	size_t size; /* the memory it takes, counted against a cache limit */
	char uuid[CRYPTO_UUID_LEN + 1];
	char owner[PGP_FPR_LEN + 1];
	unsigned char nonce[CRYPTO_NONCE_LEN];
	size_t ctlen, headlen, taillen;
	unsigned char *ct;
	char *head, *tail;
	/* ct, head and tail follow in the same allocation */
};

/*
 * A row as the deposits table holds it (one reference); NULL when it is
 * not well formed (a nonce or ciphertext of the wrong size) or out of
 * memory.
 */
struct deposit *deposit_new(const char *uuid, const char *owner,
    const char *name, const char *desc, const unsigned char *nonce,
    size_t noncelen, const unsigned char *ct, size_t ctlen,
    const char *created);
void deposit_ref(struct deposit *d);
void deposit_unref(struct deposit *d);
/*
 * A deposit's content sealed at rest (AES-256-GCM under the data key, the
 * AAD its uuid and owner): ct gets len + CRYPTO_TAG_LEN octets.  0, -1.
 */
int deposit_seal(const unsigned char datakey[CRYPTO_KEY_LEN],
    const char *uuid, const char *owner, const unsigned char *plain,
    size_t len, unsigned char nonce[CRYPTO_NONCE_LEN], unsigned char *ct);
/* Open d's content into plain (d->ctlen - CRYPTO_TAG_LEN octets): 0, -1. */
int deposit_open(const unsigned char datakey[CRYPTO_KEY_LEN],
    const struct deposit *d, unsigned char *plain);
/* The GET answer with plain as its content (malloc'd), or NULL. */
char *deposit_answer(const struct deposit *d, const unsigned char *plain,
    size_t plainlen, size_t *len);

#endif
