/*
 * keyproc_ops.c - the private-key operations of the key process, and the
 * loading of the keys it holds (see keyproc.h).  The benchmark calls the
 * same functions in-process to compare.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "keyproc_ops.h"
#include "keyproc_wire.h"
#include "pgp.h"
#include "log.h"
#include "pgpkey.h"
#include "spawn.h"
#include "util.h"

#define TLS_PASSWORD_MAX 1024
#define KP_RSA_MIN_PAD 11 /* PKCS#1 v1.5: 00 01 FF..FF (8 at least) 00 */

/*
 * One operation on k: sign (or decrypt) in into out (*outlen: its room,
 * then the length), the RSA padding set when not 0, the signature's digest
 * when md is not NULL.  0, or -1.
 */
static int
kp_do(EVP_PKEY *k, int decrypt, int padding, const EVP_MD *md,
    const unsigned char *in, size_t len, unsigned char *out, size_t *outlen)
{
	EVP_PKEY_CTX *pc;
	int ok;

	if ((pc = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL)) == NULL)
		return -1;
	ok = (decrypt ? EVP_PKEY_decrypt_init(pc) : EVP_PKEY_sign_init(pc)) >
	    0 && (padding == 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(pc, padding) > 0) &&
	    (md == NULL || EVP_PKEY_CTX_set_signature_md(pc, md) > 0) &&
	    (decrypt ? EVP_PKEY_decrypt(pc, out, outlen, in, len) :
	    EVP_PKEY_sign(pc, out, outlen, in, len)) > 0;
	EVP_PKEY_CTX_free(pc);
	return ok ? 0 : -1;
}

int
kp_op_ec_sign(EVP_PKEY *k, const unsigned char *dgst, size_t dlen,
    unsigned char *sig, size_t *siglen)
{
	if (EVP_PKEY_get_base_id(k) != EVP_PKEY_EC || dlen < 16 || dlen > 64)
		return -1;
	return kp_do(k, 0, 0, NULL, dgst, dlen, sig, siglen);
}

/* MGF1 (RFC 8017 B.2.1) of seed, XORed into buf. */
static int
kp_mgf1_xor(unsigned char *buf, size_t len, const unsigned char *seed,
    size_t slen, const EVP_MD *md)
{
	unsigned char cnt[4], mask[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	unsigned int mlen = 0;
	size_t off = 0, i;
	uint32_t c = 0;
	int ok = mc != NULL;

	while (ok && off < len) {
		cnt[0] = (unsigned char)(c >> 24);
		cnt[1] = (unsigned char)(c >> 16);
		cnt[2] = (unsigned char)(c >> 8);
		cnt[3] = (unsigned char)c;
		c++;
		ok = EVP_DigestInit_ex(mc, md, NULL) &&
		    EVP_DigestUpdate(mc, seed, slen) &&
		    EVP_DigestUpdate(mc, cnt, 4) &&
		    EVP_DigestFinal_ex(mc, mask, &mlen);
		for (i = 0; ok && i < mlen && off < len; i++)
			buf[off++] ^= mask[i];
	}
	EVP_MD_CTX_free(mc);
	OPENSSL_cleanse(mask, sizeof(mask));
	return ok ? 0 : -1;
}

/*
 * 1 when em (the size of the modulus of bits) is an EMSA-PSS encoding with
 * SHA-256, -384 or -512 and a salt as long as the hash, as TLS makes them:
 * only such blocks get a raw RSA operation, which therefore cannot decrypt.
 */
static int
kp_pss_shaped(const unsigned char *em, size_t len, int bits)
{
	static const char *const mds[] = { "SHA256", "SHA384", "SHA512" };
	unsigned char db[KP_MAX_PAYLOAD];
	size_t emlen = (size_t)(bits - 1 + 7) / 8, hlen, dblen, i;
	int emtop = 8 * (int)emlen - (bits - 1), m, ok;
	const EVP_MD *md;

	if (emlen < len) {
		if (em[0] != 0)
			return 0;
		em++;
	}
	if (emlen > sizeof(db) || em[emlen - 1] != 0xbc)
		return 0;
	for (m = 0; m < 3; m++) {
		if ((md = EVP_get_digestbyname(mds[m])) == NULL)
			continue;
		hlen = (size_t)EVP_MD_get_size(md);
		if (emlen < 2 * hlen + 2)
			continue;
		dblen = emlen - hlen - 1;
		memcpy(db, em, dblen);
		if (kp_mgf1_xor(db, dblen, em + dblen, hlen, md) == -1)
			continue;
		db[0] &= (unsigned char)(0xff >> emtop);
		ok = 1;
		for (i = 0; i < dblen - hlen - 1; i++)
			ok &= db[i] == 0;
		ok &= db[dblen - hlen - 1] == 1;
		OPENSSL_cleanse(db, dblen);
		if (ok)
			return 1;
	}
	return 0;
}

int
kp_op_rsa_sign(EVP_PKEY *k, int padding, const unsigned char *in,
    size_t len, unsigned char *out, size_t *outlen)
{
	size_t size = (size_t)EVP_PKEY_get_size(k);

	if (EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA || *outlen < size)
		return -1;
	if (padding == RSA_PKCS1_PADDING) {
		if (len > size - KP_RSA_MIN_PAD)
			return -1;
	} else if (padding != RSA_NO_PADDING || len != size ||
	    !kp_pss_shaped(in, len, EVP_PKEY_get_bits(k))) {
		return -1;
	}
	return kp_do(k, 0, padding, NULL, in, len, out, outlen);
}

int
kp_op_pgp_sign(EVP_PKEY *k, int hashalgo, const unsigned char *dgst,
    size_t dlen, unsigned char *sig, size_t *siglen)
{
	const EVP_MD *md = pgpkey_md(hashalgo);

	if (md == NULL || dlen != (size_t)EVP_MD_get_size(md))
		return -1;
	return kp_do(k, 0, RSA_PKCS1_PADDING, md, dgst, dlen, sig, siglen);
}

int
kp_op_pgp_decrypt(EVP_PKEY *k, const unsigned char *ct, size_t len,
    unsigned char *out, size_t *outlen)
{
	if (len == 0 || len > (size_t)EVP_PKEY_get_size(k))
		return -1;
	return kp_do(k, 1, RSA_PKCS1_PADDING, NULL, ct, len, out, outlen);
}

int
kp_load_pgp(const char *confdir, const char *fpr, EVP_PKEY **sign,
    EVP_PKEY **decrypt, char *err, size_t errlen)
{
	unsigned char *sec = NULL, got[PGPKEY_FPR_LEN], want[PGPKEY_FPR_LEN];
	char encfpr[PGP_FPR_LEN + 1], perr[512];
	size_t seclen = 0;
	int ret = -1;

	*sign = *decrypt = NULL;
	if (pgp_export_secret(confdir, fpr, encfpr, &sec, &seclen, err,
	    errlen) == -1)
		return -1;
	if (pgpkey_read_secret(sec, seclen, encfpr, sign, decrypt, got, perr,
	    sizeof(perr)) == -1) {
		snprintf(err, errlen, "%s: OpenPGP key %s: %s", confdir, fpr,
		    perr);
		goto out;
	}
	if (pgpkey_fpr_from_hex(fpr, want) == -1 ||
	    memcmp(got, want, sizeof(got)) != 0) {
		snprintf(err, errlen, "%s: the exported secret key is not %s",
		    confdir, fpr);
		EVP_PKEY_free(*sign);
		EVP_PKEY_free(*decrypt);
		*sign = *decrypt = NULL;
		goto out;
	}
	ret = 0;
out:
	if (sec != NULL)
		freezero(sec, seclen);
	return ret;
}

/* Run SSL_PRIVATE_KEY_PASSWORD_SCRIPT as an argv; its stdout is the password. */
static int
tls_password(const struct kt_conf *c, char *pass, size_t passlen, char *err,
    size_t errlen)
{
	struct spawn_opts o = { .capture = 1 };
	struct spawn_result r;
	char **argv = NULL;
	size_t n;
	int ret = -1;

	if (argv_split(c->ssl_private_key_password_script, &argv) == -1) {
		snprintf(err, errlen, "%s: SSL_PRIVATE_KEY_PASSWORD_SCRIPT: "
		    "cannot parse the command line (empty or unbalanced "
		    "quotes)", c->path);
		return -1;
	}
	if (spawn_run(argv, &o, &r) == -1) {
		snprintf(err, errlen, "%s: SSL_PRIVATE_KEY_PASSWORD_SCRIPT: "
		    "cannot run %s: %s", c->path, argv[0], strerror(errno));
		goto out;
	}
	if (r.status != 0) {
		snprintf(err, errlen, "%s: SSL_PRIVATE_KEY_PASSWORD_SCRIPT: "
		    "%s exited with status %d%s%.200s", c->path, argv[0],
		    r.status, r.err && *r.err ? ": " : "", r.err ? r.err : "");
		spawn_result_free(&r);
		goto out;
	}
	n = r.outlen;
	/* A script that prints a line ends it with a newline: drop it. */
	if (n > 0 && r.out[n - 1] == '\n')
		n--;
	if (n > 0 && r.out[n - 1] == '\r')
		n--;
	if (n == 0 || n >= passlen) {
		snprintf(err, errlen, "%s: SSL_PRIVATE_KEY_PASSWORD_SCRIPT: "
		    "%s printed %s", c->path, argv[0],
		    n == 0 ? "no password" : "a password that is too long");
		OPENSSL_cleanse(r.out, r.outlen);
		spawn_result_free(&r);
		goto out;
	}
	memcpy(pass, r.out, n);
	pass[n] = '\0';
	OPENSSL_cleanse(r.out, r.outlen);
	spawn_result_free(&r);
	ret = 0;
out:
	argv_free(argv);
	return ret;
}

EVP_PKEY *
kp_load_tls(const struct kt_conf *c, char *err, size_t errlen)
{
	char pass[TLS_PASSWORD_MAX] = "", perr[512];
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	int id;

	ERR_clear_error();
	if (key_file_perm_ok(c->ssl_private_key, perr, sizeof(perr)) == -1) {
		snprintf(err, errlen, "%s: SSL_PRIVATE_KEY: %s", c->path, perr);
		return NULL;
	}
	if (c->ssl_private_key_password_script != NULL &&
	    c->ssl_private_key_password_script[0] != '\0' &&
	    tls_password(c, pass, sizeof(pass), err, errlen) == -1)
		return NULL;
	if ((bio = BIO_new_file(c->ssl_private_key, "r")) == NULL) {
		snprintf(err, errlen, "%s: SSL_PRIVATE_KEY: %s: %s", c->path,
		    c->ssl_private_key, strerror(errno));
		goto out;
	}
	/* An empty password makes an encrypted key fail instead of prompting. */
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, pass);
	if (pkey == NULL) {
		snprintf(err, errlen, "%s: SSL_PRIVATE_KEY: cannot load %s: %s%s",
		    c->path, c->ssl_private_key, crypto_ssl_reason(),
		    pass[0] ? " (wrong password from "
		    "SSL_PRIVATE_KEY_PASSWORD_SCRIPT?)" :
		    " (if the key is password protected, set "
		    "SSL_PRIVATE_KEY_PASSWORD_SCRIPT)");
		goto out;
	}
	/* The serving process's proxy key exists for these two only. */
	id = EVP_PKEY_get_base_id(pkey);
	if (id != EVP_PKEY_RSA && id != EVP_PKEY_EC) {
		snprintf(err, errlen, "%s: SSL_PRIVATE_KEY: %s is a %s key; "
		    "the server takes RSA or ECDSA keys", c->path,
		    c->ssl_private_key, OBJ_nid2sn(id));
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
out:
	OPENSSL_cleanse(pass, sizeof(pass));
	BIO_free(bio);
	ERR_clear_error();
	return pkey;
}
