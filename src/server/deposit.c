/* deposit.c - a stored deposit in memory (see deposit.h). */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deposit.h"

#define DEPOSIT_OVERHEAD 64 /* per deposit: malloc's header, a bucket link */

/* A JSON string (or null) as jansson writes it; NULL when out of memory. */
static char *
json_text(const char *s)
{
	json_t *v = s != NULL ? json_string(s) : json_null();
	char *out;

	if (v == NULL)
		return NULL;
	out = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	json_decref(v);
	return out;
}

struct deposit *
deposit_new(const char *uuid, const char *owner, const char *name,
    const char *desc, const unsigned char *nonce, size_t noncelen,
    const unsigned char *ct, size_t ctlen, const char *created)
{
	struct deposit *d = NULL;
	char *jname = NULL, *jdesc = NULL, *p;
	size_t headlen, taillen;

	if (strlen(uuid) != CRYPTO_UUID_LEN || strlen(owner) != PGP_FPR_LEN ||
	    noncelen != CRYPTO_NONCE_LEN || ctlen < CRYPTO_TAG_LEN ||
	    (jname = json_text(name)) == NULL ||
	    (jdesc = json_text(desc)) == NULL)
		goto out;
	/* The members in the order the API has always written them. */
	headlen = strlen("{\"uuid\":\"\",\"name\":,\"description\":,"
			 "\"content\":\"") +
	    CRYPTO_UUID_LEN + strlen(jname) + strlen(jdesc);
	taillen = strlen("\",\"created\":\"\"}") + strlen(created);
	if ((d = calloc(1, sizeof(*d) + ctlen + headlen + taillen + 2)) == NULL)
		goto out;
	atomic_init(&d->refs, 1);
	memcpy(d->uuid, uuid, CRYPTO_UUID_LEN + 1);
	memcpy(d->owner, owner, PGP_FPR_LEN + 1);
	memcpy(d->nonce, nonce, CRYPTO_NONCE_LEN);
	d->ct = (unsigned char *)(d + 1);
	memcpy(d->ct, ct, ctlen);
	d->ctlen = ctlen;
	p = (char *)d->ct + ctlen;
	d->head = p;
	d->headlen = (size_t)snprintf(p, headlen + 1,
	    "{\"uuid\":\"%s\",\"name\":%s,\"description\":%s,\"content\":\"",
	    uuid, jname, jdesc);
	d->tail = p + headlen + 1;
	d->taillen = (size_t)snprintf(
	    d->tail, taillen + 1, "\",\"created\":\"%s\"}", created);
	d->size = sizeof(*d) + ctlen + headlen + taillen + 2 + DEPOSIT_OVERHEAD;
out:
	free(jname);
	free(jdesc);
	return d;
}

void
deposit_ref(struct deposit *d)
{
	atomic_fetch_add(&d->refs, 1);
}

void
deposit_unref(struct deposit *d)
{
	if (d == NULL || atomic_fetch_sub(&d->refs, 1) != 1)
		return;
	OPENSSL_cleanse(d->ct, d->ctlen);
	free(d);
}

#define DEPOSIT_AAD_LEN (CRYPTO_UUID_LEN + PGP_FPR_LEN)

static void
deposit_aad(char aad[DEPOSIT_AAD_LEN], const char *uuid, const char *owner)
{
	memcpy(aad, uuid, CRYPTO_UUID_LEN);
	memcpy(aad + CRYPTO_UUID_LEN, owner, PGP_FPR_LEN);
}

int
deposit_seal(const unsigned char datakey[CRYPTO_KEY_LEN], const char *uuid,
    const char *owner, const unsigned char *plain, size_t len,
    unsigned char nonce[CRYPTO_NONCE_LEN], unsigned char *ct)
{
	char aad[DEPOSIT_AAD_LEN];

	deposit_aad(aad, uuid, owner);
	return crypto_seal(datakey, aad, sizeof(aad), plain, len, nonce, ct);
}

int
deposit_open(const unsigned char datakey[CRYPTO_KEY_LEN],
    const struct deposit *d, unsigned char *plain)
{
	char aad[DEPOSIT_AAD_LEN];

	deposit_aad(aad, d->uuid, d->owner);
	return crypto_open(datakey, aad, sizeof(aad), d->nonce, d->ct,
	    d->ctlen, plain);
}

char *
deposit_answer(const struct deposit *d, const unsigned char *plain,
    size_t plainlen, size_t *len)
{
	size_t b64len = (plainlen + 2) / 3 * 4;
	char *out;

	if (plainlen > SIZE_MAX / 2 ||
	    (out = malloc(d->headlen + b64len + d->taillen + 1)) == NULL)
		return NULL;
	memcpy(out, d->head, d->headlen);
	crypto_b64_encode_into(plain, plainlen, out + d->headlen);
	memcpy(out + d->headlen + b64len, d->tail, d->taillen + 1);
	*len = d->headlen + b64len + d->taillen;
	return out;
}
