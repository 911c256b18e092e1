/*
 * auth.h - request signatures (KT1-HMAC-SHA256): who sent a request.
 * A verdict, never an answer: the handler answers a refusal.
 */
#ifndef KT_AUTH_H
#define KT_AUTH_H

#include "crypto.h"
#include "http.h"
#include "pgp.h"
#include "server.h"
#include "verdict.h"

/*
 * How far a signed request may be off this server's clock, either way:
 * /v1's timestamp (the ±300 s of DESIGN.md, which clients are written to)
 * and the legacy protocol's signature (legacy.c), whose clients date each
 * signature a second after the last one (RSA signatures of one request in
 * one second are one signature), running ahead when they send fast.  A
 * signature is remembered longer than it is valid (STORE_SEEN_KEEP): a
 * replay is known as long as it could pass.
 */
#define AUTH_SKEW 300

/* A client whose request signature verified. */
struct auth_client {
	char fpr[PGP_FPR_LEN + 1];
	char org[72];
	/*
	 * A write's digest: a replay of it has the same (store/seen.c);
	 * zero for GET and HEAD, which are not remembered.
	 */
	unsigned char seen[CRYPTO_HASH_LEN];
};

/*
 * Verify the Authorization header of req over its body: 0 with the client
 * in out, or -1 with v refusing it (401, 403, 429 for an address that
 * failed too often; 500, 503 when the server cannot tell).  Every refusal
 * of the client is audited ("auth"), those that name no client by the
 * minute (authfail.h).
 */
int auth_request(struct worker *w, struct http_req *req,
    struct auth_client *out, struct verdict *v);

/* Open a client's sealed signing secret (AAD = fingerprint). */
int auth_secret_open(const unsigned char datakey[CRYPTO_KEY_LEN],
    const char *fpr, const unsigned char *nonce, size_t noncelen,
    const unsigned char *ct, size_t ctlen, unsigned char secret[CRYPTO_KEY_LEN]);

#endif
