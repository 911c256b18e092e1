/* kt-crypto.c - the client's own OpenPGP key (GPGME). */
#include <gpgme.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt-int.h"
#include "pgp.h"
#include "util.h"

int
kt_pgp_ensure_key(struct kt_client *c, const char *hostname)
{
	char fpr[PGP_FPR_LEN + 1], qfpr[PGP_QFPR_MAX], *uid = NULL;
	int r;

	r = pgp_secret_key(c->confdir, fpr, qfpr, c->err, sizeof(c->err));
	if (r == 0)
		return KT_OK;
	if (r < 0)
		return KT_ERR;
	if (asprintf(&uid, "keytrustee (client) <keytrustee@%s>", hostname) ==
	    -1) {
		kt_seterr(c, "out of memory");
		return KT_ERR;
	}
	r = pgp_genkey(c->confdir, uid, KT_CLIENT_KEY_BITS, 0, c->err,
	    sizeof(c->err));
	free(uid);
	return r == 0 ? KT_OK : KT_ERR;
}

static gpgme_ctx_t
ctx_new(struct kt_client *c)
{
	gpgme_ctx_t ctx;
	char err[512];

	if ((ctx = pgp_ctx_new(c->confdir, 0, err, sizeof(err))) == NULL)
		kt_seterr(c, "%s", err);
	return ctx;
}

/* Move a gpgme_data_t's bytes into a malloc'd, NUL-terminated buffer. */
static int
data_take(struct kt_client *c, gpgme_data_t d, unsigned char **out,
    size_t *outlen)
{
	size_t n = 0;
	char *buf = gpgme_data_release_and_get_mem(d, &n);

	if ((*out = malloc(n + 1)) == NULL) {
		if (buf != NULL)
			explicit_bzero(buf, n);
		gpgme_free(buf);
		kt_seterr(c, "out of memory");
		return KT_ERR;
	}
	if (n > 0)
		memcpy(*out, buf, n);
	(*out)[n] = '\0';
	*outlen = n;
	if (buf != NULL)
		explicit_bzero(buf, n);
	gpgme_free(buf);
	return KT_OK;
}

int
kt_pgp_encrypt(struct kt_client *c, const void *in, size_t inlen,
    unsigned char **out, size_t *outlen)
{
	gpgme_ctx_t ctx;
	gpgme_key_t keys[2] = { NULL, NULL };
	gpgme_data_t plain = NULL, cipher = NULL;
	gpgme_error_t e;
	int ret = KT_ERR;

	*out = NULL;
	if ((ctx = ctx_new(c)) == NULL)
		return KT_ERR;
	if ((e = gpgme_get_key(ctx, c->fpr, &keys[0], 0)) != 0) {
		kt_seterr(c, "our OpenPGP key %s is not in %s: %s", c->fpr,
		    c->confdir, gpgme_strerror(e));
		goto out;
	}
	if ((e = gpgme_data_new_from_mem(&plain, in, inlen, 0)) != 0 ||
	    (e = gpgme_data_new(&cipher)) != 0) {
		kt_seterr(c, "GPGME: %s", gpgme_strerror(e));
		goto out;
	}
	if ((e = gpgme_op_encrypt(ctx, keys, GPGME_ENCRYPT_ALWAYS_TRUST,
	    plain, cipher)) != 0) {
		kt_seterr(c, "encrypting to our OpenPGP key: %s",
		    gpgme_strerror(e));
		goto out;
	}
	ret = data_take(c, cipher, out, outlen);
	cipher = NULL;
out:
	gpgme_data_release(plain);
	gpgme_data_release(cipher);
	gpgme_key_unref(keys[0]);
	gpgme_release(ctx);
	return ret;
}

int
kt_pgp_decrypt(struct kt_client *c, const void *in, size_t inlen,
    unsigned char **out, size_t *outlen)
{
	gpgme_ctx_t ctx;
	gpgme_data_t plain = NULL, cipher = NULL;
	gpgme_error_t e;
	int ret = KT_ERR;

	*out = NULL;
	if ((ctx = ctx_new(c)) == NULL)
		return KT_ERR;
	if ((e = gpgme_data_new_from_mem(&cipher, in, inlen, 0)) != 0 ||
	    (e = gpgme_data_new(&plain)) != 0) {
		kt_seterr(c, "GPGME: %s", gpgme_strerror(e));
		goto out;
	}
	if ((e = gpgme_op_decrypt(ctx, cipher, plain)) != 0) {
		kt_seterr(c, "decrypting with our OpenPGP key in %s: %s",
		    c->confdir, gpgme_strerror(e));
		goto out;
	}
	ret = data_take(c, plain, out, outlen);
	plain = NULL;
out:
	gpgme_data_release(plain);
	gpgme_data_release(cipher);
	gpgme_release(ctx);
	return ret;
}
