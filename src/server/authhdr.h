/* authhdr.h - the Authorization header of a signed request (authhdr.c). */
#ifndef KT_AUTHHDR_H
#define KT_AUTHHDR_H

#include "crypto.h"
#include "pgp.h"

/* The parts of an Authorization header value. */
struct authhdr {
	char fpr[PGP_FPR_LEN + 1]; /* upper-cased */
	char ts[20];
	long long tsval;
	unsigned char sig[CRYPTO_MAC_LEN];
};

/*
 * Strict parse of a header value "KT1-HMAC-SHA256 fp=..,ts=..,sig=..";
 * -1 when malformed.
 */
int authhdr_parse(const char *v, struct authhdr *h);

#endif
