/* orgauth.c - an organization's authorization secret (see orgauth.h). */
#include <openssl/crypto.h>
#include <string.h>

#include "crypto.h"
#include "orgauth.h"

/* Is the given secret the org's?  Length-safe, constant time. */
static int
auth_equal(const char *given, const char *want)
{
	unsigned char a[CRYPTO_HASH_LEN], b[CRYPTO_HASH_LEN];
	int eq;

	if (crypto_sha256(given, strlen(given), a) == -1 ||
	    crypto_sha256(want, strlen(want), b) == -1)
		return 0;
	eq = CRYPTO_memcmp(a, b, sizeof(a)) == 0;
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return eq;
}

int
orgauth_state(struct throttle *t, const char *peer, const struct org_row *o,
    const char *given, const char **state, struct verdict *v)
{
	if (*o->auth_secret == '\0')
		*state = "active";
	else if (given == NULL || *given == '\0')
		*state = "pending";
	else if (auth_equal(given, o->auth_secret))
		*state = "active";
	else {
		throttle_fail(t, peer);
		return verdict_refuse(v, 403, "bad_auth",
		    "wrong authorization secret for this organization");
	}
	return 0;
}
