/* pgp.c - the OpenPGP operations keytrustee needs, through GPGME. */
#include "pgp.h"

#include <ctype.h>
#include <gpgme.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spawn.h"
#include "util.h"

int
pgp_init(void)
{
	if (gpgme_check_version("1.13.0") == NULL)
		return -1;
	gpgme_set_locale(NULL, LC_CTYPE, setlocale(LC_CTYPE, NULL));
	return gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP) ==
	    GPG_ERR_NO_ERROR ? 0 : -1;
}

gpgme_ctx_t
pgp_ctx_new(const char *homedir, int armor, char *err, size_t errlen)
{
	gpgme_ctx_t ctx = NULL;
	gpgme_error_t e;

	if ((e = gpgme_new(&ctx)) != 0 ||
	    (e = gpgme_ctx_set_engine_info(ctx, GPGME_PROTOCOL_OpenPGP, NULL,
	    homedir)) != 0) {
		snprintf(err, errlen, "GnuPG home %s: %s", homedir,
		    gpgme_strerror(e));
		gpgme_release(ctx);
		return NULL;
	}
	gpgme_set_armor(ctx, armor);
	gpgme_set_pinentry_mode(ctx, GPGME_PINENTRY_MODE_LOOPBACK);
	return ctx;
}

static char
pgp_algo_letter(gpgme_pubkey_algo_t algo)
{
	switch (algo) {
	case GPGME_PK_RSA:
	case GPGME_PK_RSA_E:
	case GPGME_PK_RSA_S:
		return 'R';
	case GPGME_PK_DSA:
		return 'D';
	case GPGME_PK_ELG:
	case GPGME_PK_ELG_E:
		return 'g';
	default:
		return 'E';
	}
}

int
pgp_secret_key(const char *homedir, char fpr[PGP_FPR_LEN + 1],
    char qfpr[PGP_QFPR_MAX], char *err, size_t errlen)
{
	gpgme_ctx_t ctx;
	gpgme_key_t key = NULL;
	gpgme_error_t e;
	size_t i;
	int ret = -1;

	if ((ctx = pgp_ctx_new(homedir, 1, err, errlen)) == NULL)
		return -1;
	if ((e = gpgme_op_keylist_start(ctx, NULL, 1)) != 0) {
		snprintf(err, errlen, "listing keys in %s: %s", homedir,
		    gpgme_strerror(e));
		goto out;
	}
	e = gpgme_op_keylist_next(ctx, &key);
	gpgme_op_keylist_end(ctx);
	if (gpg_err_code(e) == GPG_ERR_EOF) {
		ret = 1;
		goto out;
	}
	if (e != 0) {
		snprintf(err, errlen, "listing keys in %s: %s", homedir,
		    gpgme_strerror(e));
		goto out;
	}
	if (key->subkeys == NULL || key->subkeys->fpr == NULL ||
	    strlen(key->subkeys->fpr) != PGP_FPR_LEN) {
		snprintf(err, errlen, "%s: the secret key has no v4 "
		    "fingerprint", homedir);
		goto out;
	}
	for (i = 0; i < PGP_FPR_LEN; i++)
		fpr[i] = (char)toupper((unsigned char)key->subkeys->fpr[i]);
	fpr[PGP_FPR_LEN] = '\0';
	snprintf(qfpr, PGP_QFPR_MAX, "%u%c/%s", key->subkeys->length,
	    pgp_algo_letter(key->subkeys->pubkey_algo), fpr);
	ret = 0;
out:
	gpgme_key_unref(key);
	gpgme_release(ctx);
	return ret;
}

int
pgp_genkey(const char *homedir, const char *uid, unsigned bits,
    int primary_encrypts, char *err, size_t errlen)
{
	gpgme_ctx_t ctx;
	gpgme_genkey_result_t res;
	gpgme_key_t key = NULL;
	gpgme_error_t e;
	char algo[32];
	int ret = -1;

	if ((ctx = pgp_ctx_new(homedir, 1, err, errlen)) == NULL)
		return -1;
	snprintf(algo, sizeof(algo), "rsa%u", bits);
	e = gpgme_op_createkey(ctx, uid, algo, 0, 0, NULL,
	    GPGME_CREATE_SIGN | GPGME_CREATE_CERT |
		(primary_encrypts ? GPGME_CREATE_ENCR : 0) |
		GPGME_CREATE_NOPASSWD | GPGME_CREATE_NOEXPIRE);
	if (e != 0) {
		snprintf(err, errlen, "creating the OpenPGP key: %s",
		    gpgme_strerror(e));
		goto out;
	}
	res = gpgme_op_genkey_result(ctx);
	if (res == NULL || res->fpr == NULL ||
	    (e = gpgme_get_key(ctx, res->fpr, &key, 1)) != 0) {
		snprintf(err, errlen, "reading back the new OpenPGP key: %s",
		    gpgme_strerror(e));
		goto out;
	}
	e = gpgme_op_createsubkey(ctx, key, algo, 0, 0, GPGME_CREATE_ENCR |
	    GPGME_CREATE_NOPASSWD | GPGME_CREATE_NOEXPIRE);
	if (e != 0) {
		snprintf(err, errlen, "creating the encryption subkey: %s",
		    gpgme_strerror(e));
		goto out;
	}
	ret = 0;
out:
	gpgme_key_unref(key);
	gpgme_release(ctx);
	return ret;
}

/*
 * Copy a GPGME data buffer out into malloc'd memory (NUL-terminated),
 * clearing and releasing it (*data is NULL after, whatever happens); -1
 * with err when out of memory.
 */
static int
pgp_data_take(gpgme_data_t *data, unsigned char **out, size_t *outlen,
    char *err, size_t errlen)
{
	char *buf;
	size_t n = 0;

	*out = NULL;
	buf = gpgme_data_release_and_get_mem(*data, &n);
	*data = NULL;
	if ((buf != NULL || n == 0) && (*out = malloc(n + 1)) != NULL) {
		if (n > 0)
			memcpy(*out, buf, n);
		(*out)[n] = '\0';
		*outlen = n;
	}
	if (buf != NULL) {
		explicit_bzero(buf, n);
		gpgme_free(buf);
	}
	if (*out == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int
pgp_export_pubkey(const char *homedir, const char *fpr, char **armored,
    size_t *len, char *err, size_t errlen)
{
	gpgme_ctx_t ctx;
	gpgme_data_t data = NULL;
	gpgme_error_t e;
	unsigned char *buf;
	size_t n;
	int ret = -1;

	*armored = NULL;
	if ((ctx = pgp_ctx_new(homedir, 1, err, errlen)) == NULL)
		return -1;
	if ((e = gpgme_data_new(&data)) != 0 ||
	    (e = gpgme_op_export(ctx, fpr, GPGME_EXPORT_MODE_MINIMAL,
		 data)) != 0) {
		snprintf(err, errlen, "exporting key %s: %s", fpr,
		    gpgme_strerror(e));
		goto out;
	}
	if (pgp_data_take(&data, &buf, &n, err, errlen) == -1)
		goto out;
	if (n == 0) {
		free(buf);
		snprintf(err, errlen, "exporting key %s: no such key", fpr);
		goto out;
	}
	*armored = (char *)buf;
	if (len != NULL)
		*len = n;
	ret = 0;
out:
	gpgme_data_release(data);
	gpgme_release(ctx);
	return ret;
}

/* The first usable encryption (sub)key from sk on, or NULL. */
static gpgme_subkey_t
pgp_enc_subkey(gpgme_subkey_t sk)
{
	for (; sk != NULL; sk = sk->next)
		if (sk->can_encrypt && !sk->revoked && !sk->expired &&
		    !sk->disabled && !sk->invalid)
			return sk;
	return NULL;
}

int
pgp_export_secret(const char *homedir, const char *fpr,
    char encfpr[PGP_FPR_LEN + 1], unsigned char **out, size_t *outlen,
    char *err, size_t errlen)
{
	gpgme_ctx_t ctx;
	gpgme_data_t data = NULL;
	gpgme_key_t key = NULL;
	gpgme_subkey_t sk;
	gpgme_error_t e;
	size_t i;
	int ret = -1;

	*out = NULL;
	if ((ctx = pgp_ctx_new(homedir, 0, err, errlen)) == NULL)
		return -1;
	if ((e = gpgme_get_key(ctx, fpr, &key, 1)) != 0) {
		snprintf(err, errlen, "secret key %s: %s", fpr,
		    gpgme_strerror(e));
		goto out;
	}
	sk = key->subkeys != NULL ? pgp_enc_subkey(key->subkeys->next) : NULL;
	if (sk == NULL || !sk->secret || sk->fpr == NULL ||
	    strlen(sk->fpr) != PGP_FPR_LEN) {
		snprintf(err, errlen, "secret key %s has no usable secret "
		    "encryption subkey", fpr);
		goto out;
	}
	for (i = 0; i < PGP_FPR_LEN; i++)
		encfpr[i] = (char)toupper((unsigned char)sk->fpr[i]);
	encfpr[PGP_FPR_LEN] = '\0';
	if ((e = gpgme_data_new(&data)) != 0 ||
	    (e = gpgme_op_export(ctx, fpr, GPGME_EXPORT_MODE_SECRET,
	    data)) != 0) {
		snprintf(err, errlen, "exporting secret key %s: %s", fpr,
		    gpgme_strerror(e));
		goto out;
	}
	if (pgp_data_take(&data, out, outlen, err, errlen) == -1)
		goto out;
	if (*outlen == 0) {
		free(*out);
		*out = NULL;
		snprintf(err, errlen, "exporting secret key %s: gpg gave "
		    "nothing", fpr);
		goto out;
	}
	ret = 0;
out:
	gpgme_key_unref(key);
	gpgme_data_release(data);
	gpgme_release(ctx);
	return ret;
}

void
pgp_kill_agent(const char *homedir)
{
	char *argv[] = { "gpgconf", "--homedir", (char *)homedir, "--kill",
		"all", NULL };
	struct spawn_opts o = { .capture = 1 };
	struct spawn_result r;

	if (spawn_run(argv, &o, &r) == 0)
		spawn_result_free(&r);
}

static int
pgp_can_encrypt(gpgme_key_t key)
{
	if (key->revoked || key->expired || key->disabled || key->invalid)
		return 0;
	return pgp_enc_subkey(key->subkeys) != NULL;
}

int
pgp_import_pubkey(const char *homedir, const char *armored, size_t len,
    char fpr[PGP_FPR_LEN + 1], char *err, size_t errlen)
{
	gpgme_ctx_t ctx;
	gpgme_data_t data = NULL;
	gpgme_import_result_t res;
	gpgme_key_t key = NULL;
	gpgme_error_t e;
	size_t i;
	int ret = -1;

	if (memmem(armored, len, "PRIVATE KEY BLOCK", 17) != NULL) {
		snprintf(err, errlen, "secret key material given; send the "
		    "public key only");
		return -1;
	}
	if ((ctx = pgp_ctx_new(homedir, 1, err, errlen)) == NULL)
		return -1;
	if ((e = gpgme_data_new_from_mem(&data, armored, len, 0)) != 0 ||
	    (e = gpgme_op_import(ctx, data)) != 0) {
		snprintf(err, errlen, "importing the key: %s",
		    gpgme_strerror(e));
		goto out;
	}
	res = gpgme_op_import_result(ctx);
	if (res != NULL && res->secret_read > 0) {
		/*
		 * A client hands over its public key only: drop what came.
		 * The result lives only until the next operation: copy first.
		 */
		gpgme_import_status_t st;
		char drop[8][PGP_FPR_LEN + 1];
		size_t ndrop = 0, k;

		for (st = res->imports; st != NULL && ndrop < 8; st = st->next)
			if (st->fpr != NULL && strlen(st->fpr) == PGP_FPR_LEN)
				memcpy(drop[ndrop++], st->fpr, PGP_FPR_LEN + 1);
		for (k = 0; k < ndrop; k++) {
			if (gpgme_get_key(ctx, drop[k], &key, 1) == 0)
				gpgme_op_delete_ext(ctx, key,
				    GPGME_DELETE_ALLOW_SECRET |
				    GPGME_DELETE_FORCE);
			gpgme_key_unref(key);
			key = NULL;
		}
		snprintf(err, errlen, "secret key material given; send the "
		    "public key only");
		goto out;
	}
	if (res == NULL || res->considered == 0 || res->imports == NULL ||
	    res->imports->fpr == NULL) {
		snprintf(err, errlen, "no OpenPGP public key found");
		goto out;
	}
	if (res->considered != 1 || res->imports->next != NULL) {
		snprintf(err, errlen, "more than one OpenPGP key given");
		goto out;
	}
	if (res->imports->result != 0 ||
	    strlen(res->imports->fpr) != PGP_FPR_LEN) {
		snprintf(err, errlen, "the key was not accepted: %s",
		    gpgme_strerror(res->imports->result));
		goto out;
	}
	for (i = 0; i < PGP_FPR_LEN; i++)
		fpr[i] = (char)toupper((unsigned char)res->imports->fpr[i]);
	fpr[PGP_FPR_LEN] = '\0';
	if ((e = gpgme_get_key(ctx, fpr, &key, 0)) != 0) {
		snprintf(err, errlen, "reading back the key: %s",
		    gpgme_strerror(e));
		goto out;
	}
	if (!pgp_can_encrypt(key)) {
		snprintf(err, errlen, "the key has no usable encryption "
		    "subkey");
		goto out;
	}
	ret = 0;
out:
	gpgme_key_unref(key);
	gpgme_data_release(data);
	gpgme_release(ctx);
	return ret;
}

int
pgp_encrypt(const char *homedir, const char *fpr, const void *plain,
    size_t len, char **armored, size_t *outlen, char *err, size_t errlen)
{
	gpgme_ctx_t ctx;
	gpgme_data_t in = NULL, out = NULL;
	gpgme_key_t keys[2] = { NULL, NULL };
	gpgme_error_t e;
	unsigned char *buf = NULL;
	size_t n = 0;
	int ret = -1;

	*armored = NULL;
	if ((ctx = pgp_ctx_new(homedir, 1, err, errlen)) == NULL)
		return -1;
	if ((e = gpgme_get_key(ctx, fpr, &keys[0], 0)) != 0) {
		snprintf(err, errlen, "key %s: %s", fpr, gpgme_strerror(e));
		goto out;
	}
	if ((e = gpgme_data_new_from_mem(&in, plain, len, 0)) != 0 ||
	    (e = gpgme_data_new(&out)) != 0 ||
	    (e = gpgme_op_encrypt(ctx, keys, GPGME_ENCRYPT_ALWAYS_TRUST, in,
	    out)) != 0) {
		snprintf(err, errlen, "encrypting to %s: %s", fpr,
		    gpgme_strerror(e));
		goto out;
	}
	if (pgp_data_take(&out, &buf, &n, err, errlen) == -1)
		goto out;
	*armored = (char *)buf;
	if (outlen != NULL)
		*outlen = n;
	ret = 0;
out:
	gpgme_key_unref(keys[0]);
	gpgme_data_release(in);
	gpgme_data_release(out);
	gpgme_release(ctx);
	return ret;
}

int
pgp_clearsign(const char *homedir, const char *fpr, const void *text,
    size_t len, char **signed_text, size_t *outlen, char *err, size_t errlen)
{
	gpgme_ctx_t ctx;
	gpgme_data_t in = NULL, out = NULL;
	gpgme_key_t key = NULL;
	gpgme_error_t e;
	unsigned char *buf = NULL;
	size_t n = 0;
	int ret = -1;

	*signed_text = NULL;
	if ((ctx = pgp_ctx_new(homedir, 1, err, errlen)) == NULL)
		return -1;
	if ((e = gpgme_get_key(ctx, fpr, &key, 1)) != 0 ||
	    (e = gpgme_signers_add(ctx, key)) != 0) {
		snprintf(err, errlen, "signing key %s: %s", fpr,
		    gpgme_strerror(e));
		goto out;
	}
	if ((e = gpgme_data_new_from_mem(&in, text, len, 0)) != 0 ||
	    (e = gpgme_data_new(&out)) != 0 ||
	    (e = gpgme_op_sign(ctx, in, out, GPGME_SIG_MODE_CLEAR)) != 0) {
		snprintf(err, errlen, "signing with %s: %s", fpr,
		    gpgme_strerror(e));
		goto out;
	}
	if (pgp_data_take(&out, &buf, &n, err, errlen) == -1)
		goto out;
	*signed_text = (char *)buf;
	if (outlen != NULL)
		*outlen = n;
	ret = 0;
out:
	gpgme_key_unref(key);
	gpgme_data_release(in);
	gpgme_data_release(out);
	gpgme_release(ctx);
	return ret;
}

int
pgp_decrypt(const char *homedir, const void *msg, size_t len,
    unsigned char **plain, size_t *plainlen, char *err, size_t errlen)
{
	gpgme_ctx_t ctx;
	gpgme_data_t in = NULL, out = NULL;
	gpgme_error_t e;
	int ret = -1;

	*plain = NULL;
	if ((ctx = pgp_ctx_new(homedir, 1, err, errlen)) == NULL)
		return -1;
	if ((e = gpgme_data_new_from_mem(&in, msg, len, 0)) != 0 ||
	    (e = gpgme_data_new(&out)) != 0 ||
	    (e = gpgme_op_decrypt(ctx, in, out)) != 0) {
		snprintf(err, errlen, "decrypting: %s", gpgme_strerror(e));
		goto out;
	}
	if (pgp_data_take(&out, plain, plainlen, err, errlen) == -1)
		goto out;
	ret = 0;
out:
	gpgme_data_release(in);
	if (out != NULL) {
		/* Partial plaintext: clear it before GPGME frees it. */
		size_t n = 0;
		char *b = gpgme_data_release_and_get_mem(out, &n);
		if (b != NULL) {
			explicit_bzero(b, n);
			gpgme_free(b);
		}
	}
	gpgme_release(ctx);
	return ret;
}

int
pgp_fpr_parse(const char *in, char out[PGP_FPR_LEN + 1])
{
	const char *slash = in != NULL ? strchr(in, '/') : NULL;
	const char *hex = slash != NULL ? slash + 1 : in;
	size_t i;

	if (hex == NULL || strlen(hex) != PGP_FPR_LEN ||
	    !hex_valid(hex, PGP_FPR_LEN))
		return -1;
	if (slash != NULL) { /* "<bits><letter>/" */
		for (i = 0; in + i < slash - 1; i++)
			if (in[i] < '0' || in[i] > '9')
				return -1;
		if (i == 0 || !((slash[-1] >= 'A' && slash[-1] <= 'Z') ||
				  (slash[-1] >= 'a' && slash[-1] <= 'z')))
			return -1;
	}
	for (i = 0; i < PGP_FPR_LEN; i++)
		out[i] = (char)toupper((unsigned char)hex[i]);
	out[PGP_FPR_LEN] = '\0';
	return 0;
}
