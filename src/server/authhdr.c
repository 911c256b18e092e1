/*
 * authhdr.c - the Authorization header of a signed request, strictly:
 *
 *   KT1-HMAC-SHA256 fp=<40 hex>,ts=<unix seconds>,sig=<64 hex>
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "authhdr.h"
#include "util.h"

#define AUTHHDR_SCHEME "KT1-HMAC-SHA256 "

int
authhdr_parse(const char *v, struct authhdr *h)
{
	size_t i, n;

	if (strncmp(v, AUTHHDR_SCHEME, strlen(AUTHHDR_SCHEME)) != 0)
		return -1;
	v += strlen(AUTHHDR_SCHEME);
	if (strncmp(v, "fp=", 3) != 0 || !hex_valid(v + 3, PGP_FPR_LEN) ||
	    v[3 + PGP_FPR_LEN] != ',')
		return -1;
	for (i = 0; i < PGP_FPR_LEN; i++)
		h->fpr[i] = (char)toupper((unsigned char)v[3 + i]);
	h->fpr[PGP_FPR_LEN] = '\0';
	v += 3 + PGP_FPR_LEN + 1;
	while (*v == ' ')
		v++;
	if (strncmp(v, "ts=", 3) != 0)
		return -1;
	v += 3;
	for (n = 0; isdigit((unsigned char)v[n]); n++)
		;
	if (n == 0 || n > 12 || v[n] != ',')
		return -1;
	memcpy(h->ts, v, n);
	h->ts[n] = '\0';
	h->tsval = strtoll(h->ts, NULL, 10);
	v += n + 1;
	while (*v == ' ')
		v++;
	if (strncmp(v, "sig=", 4) != 0 ||
	    crypto_hex_decode(v + 4, strnlen(v + 4, 2 * CRYPTO_MAC_LEN + 1),
	    h->sig, CRYPTO_MAC_LEN) == -1)
		return -1;
	return 0;
}
