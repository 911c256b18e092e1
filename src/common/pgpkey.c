/* pgpkey.c - OpenPGP packets the server reads itself (see pgpkey.h). */
#include "pgpkey.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/param_build.h>
#include <stdio.h>
#include <string.h>

const EVP_MD *
pgpkey_md(int hashalgo)
{
	switch (hashalgo) {
	case PGPKEY_HASH_SHA256:
		return EVP_sha256();
	case PGPKEY_HASH_SHA384:
		return EVP_sha384();
	case PGPKEY_HASH_SHA512:
		return EVP_sha512();
	case PGPKEY_HASH_SHA224:
		return EVP_sha224();
	default:
		return NULL;
	}
}

int
pgpkey_length(const unsigned char *buf, size_t len, size_t *lenlen,
    size_t *bodylen, int *more)
{
	if (len < 1)
		return -1;
	*more = PGPKEY_LEN_DEFINITE;
	if (buf[0] < 192) {
		*lenlen = 1;
		*bodylen = buf[0];
	} else if (buf[0] < 224) {
		if (len < 2)
			return -1;
		*lenlen = 2;
		*bodylen = ((size_t)(buf[0] - 192) << 8) + buf[1] + 192;
	} else if (buf[0] == 255) {
		if (len < 5)
			return -1;
		*lenlen = 5;
		*bodylen = (size_t)buf[1] << 24 | (size_t)buf[2] << 16 |
		    (size_t)buf[3] << 8 | buf[4];
	} else {
		*lenlen = 1;
		*bodylen = (size_t)1 << (buf[0] & 0x1f);
		*more = PGPKEY_LEN_PARTIAL;
	}
	return 0;
}

int
pgpkey_packet_start(const unsigned char *buf, size_t len, int *tag,
    size_t *hdrlen, size_t *bodylen, int *more)
{
	size_t h, b;

	if (len < 2 || (buf[0] & 0x80) == 0)
		return -1;
	*more = PGPKEY_LEN_DEFINITE;
	if (buf[0] & 0x40) {
		/* New format: one, two or five octet lengths, or partial. */
		*tag = buf[0] & 0x3f;
		if (pgpkey_length(buf + 1, len - 1, &h, &b, more) == -1)
			return -1;
		h++;
	} else {
		*tag = (buf[0] >> 2) & 0x0f;
		switch (buf[0] & 3) {
		case 0:
			h = 2;
			b = buf[1];
			break;
		case 1:
			if (len < 3)
				return -1;
			h = 3;
			b = (size_t)buf[1] << 8 | buf[2];
			break;
		case 2:
			if (len < 5)
				return -1;
			h = 5;
			b = (size_t)buf[1] << 24 | (size_t)buf[2] << 16 |
			    (size_t)buf[3] << 8 | buf[4];
			break;
		default:
			h = 1;
			b = len - 1;
			*more = PGPKEY_LEN_OPEN;
			break;
		}
	}
	if (b > len - h)
		return -1;
	*hdrlen = h;
	*bodylen = b;
	return 0;
}

int
pgpkey_packet(const unsigned char *buf, size_t len, int *tag,
    size_t *hdrlen, size_t *bodylen)
{
	int more;

	if (pgpkey_packet_start(buf, len, tag, hdrlen, bodylen, &more) == -1 ||
	    more != PGPKEY_LEN_DEFINITE)
		return -1;
	return 0;
}

size_t
pgpkey_header(int tag, size_t bodylen, unsigned char hdr[6])
{
	hdr[0] = (unsigned char)(0xc0 | tag);
	if (bodylen < 192) {
		hdr[1] = (unsigned char)bodylen;
		return 2;
	}
	if (bodylen < 8384) {
		hdr[1] = (unsigned char)(((bodylen - 192) >> 8) + 192);
		hdr[2] = (unsigned char)(bodylen - 192);
		return 3;
	}
	hdr[1] = 255;
	hdr[2] = (unsigned char)(bodylen >> 24);
	hdr[3] = (unsigned char)(bodylen >> 16);
	hdr[4] = (unsigned char)(bodylen >> 8);
	hdr[5] = (unsigned char)bodylen;
	return 6;
}

uint32_t
pgpkey_crc24(const unsigned char *data, size_t len)
{
	uint32_t crc = 0xb704ceu;
	int i;

	while (len-- > 0) {
		crc ^= (uint32_t)*data++ << 16;
		for (i = 0; i < 8; i++) {
			crc <<= 1;
			if (crc & 0x1000000u)
				crc ^= 0x1864cfbu;
		}
	}
	return crc & 0xffffffu;
}

int
pgpkey_fpr_from_hex(const char *hex, unsigned char fpr[PGPKEY_FPR_LEN])
{
	size_t i;
	int hi, lo;

	if (strlen(hex) != 2 * PGPKEY_FPR_LEN)
		return -1;
	for (i = 0; i < PGPKEY_FPR_LEN; i++) {
		hi = OPENSSL_hexchar2int((unsigned char)hex[2 * i]);
		lo = OPENSSL_hexchar2int((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		fpr[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

int
pgpkey_mpi_read(const unsigned char **p, const unsigned char *end,
    const unsigned char **val, size_t *n)
{
	size_t bits;

	if (end - *p < 2)
		return -1;
	bits = (size_t)(*p)[0] << 8 | (*p)[1];
	*n = (bits + 7) / 8;
	if (*n == 0 || *n > PGPKEY_MPI_MAX || (size_t)(end - *p - 2) < *n)
		return -1;
	*val = *p + 2;
	*p += 2 + *n;
	return 0;
}

size_t
pgpkey_mpi_write(const unsigned char *v, size_t n, unsigned char *out)
{
	size_t skip = 0, bits, bit;

	while (skip < n - 1 && v[skip] == 0)
		skip++;
	bits = (n - skip) * 8;
	for (bit = 0x80; bit > 0 && (v[skip] & bit) == 0; bit >>= 1)
		bits--;
	out[0] = (unsigned char)(bits >> 8);
	out[1] = (unsigned char)bits;
	memcpy(out + 2, v + skip, n - skip);
	return 2 + n - skip;
}

/* One MPI at *p (advanced past it) as a BIGNUM; NULL when malformed. */
static BIGNUM *
pgpkey_mpi(const unsigned char **p, const unsigned char *end, int secret)
{
	const unsigned char *val;
	size_t n;
	BIGNUM *bn;

	if (pgpkey_mpi_read(p, end, &val, &n) == -1)
		return NULL;
	bn = secret ? BN_secure_new() : BN_new();
	if (bn == NULL || BN_bin2bn(val, (int)n, bn) == NULL) {
		BN_clear_free(bn);
		return NULL;
	}
	if (secret)
		BN_set_flags(bn, BN_FLG_CONSTTIME);
	return bn;
}

int
pgpkey_fpr(const unsigned char *pub, size_t publen,
    unsigned char fpr[PGPKEY_FPR_LEN])
{
	unsigned char hdr[3];
	EVP_MD_CTX *md;
	int ok;

	if (publen > 0xffff)
		return -1;
	hdr[0] = 0x99;
	hdr[1] = (unsigned char)(publen >> 8);
	hdr[2] = (unsigned char)publen;
	ok = (md = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestInit_ex(md, EVP_sha1(), NULL) &&
	    EVP_DigestUpdate(md, hdr, 3) && EVP_DigestUpdate(md, pub, publen) &&
	    EVP_DigestFinal_ex(md, fpr, NULL);
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/* The parts of one RSA (sub)key packet; d, p, q only in a secret one. */
struct pgpkey_rsa {
	unsigned char fpr[PGPKEY_FPR_LEN];
	int algo;
	uint32_t created;
	BIGNUM *n, *e, *d, *p, *q;
};

static void
pgpkey_rsa_clear(struct pgpkey_rsa *k)
{
	BN_free(k->n);
	BN_free(k->e);
	BN_clear_free(k->d);
	BN_clear_free(k->p);
	BN_clear_free(k->q);
	memset(k, 0, sizeof(*k));
}

/*
 * The public part of a v4 RSA key packet body (what, "public key" or
 * "secret key", names it in errors) into k: its length, or 0 with err.
 */
static size_t
pgpkey_parse_public(const unsigned char *body, size_t len,
    struct pgpkey_rsa *k, const char *what, char *err, size_t errlen)
{
	const unsigned char *p = body + 6, *end = body + len;

	memset(k, 0, sizeof(*k));
	if (len < 6 || body[0] != 4) {
		snprintf(err, errlen, "the %s is not a version 4 key", what);
		return 0;
	}
	k->algo = body[5];
	k->created = (uint32_t)body[1] << 24 | (uint32_t)body[2] << 16 |
	    (uint32_t)body[3] << 8 | body[4];
	if (k->algo != PGPKEY_PK_RSA && k->algo != PGPKEY_PK_RSA_E &&
	    k->algo != PGPKEY_PK_RSA_S) {
		snprintf(err, errlen, "the %s is not RSA (OpenPGP "
		    "algorithm %d)", what, k->algo);
		return 0;
	}
	if ((k->n = pgpkey_mpi(&p, end, 0)) == NULL ||
	    (k->e = pgpkey_mpi(&p, end, 0)) == NULL) {
		snprintf(err, errlen, "the %s packet is malformed", what);
		pgpkey_rsa_clear(k);
		return 0;
	}
	if (pgpkey_fpr(body, (size_t)(p - body), k->fpr) == -1) {
		snprintf(err, errlen, "SHA-1 is not available");
		pgpkey_rsa_clear(k);
		return 0;
	}
	return (size_t)(p - body);
}

/* A v4 RSA secret key packet body: 0, or -1 with err. */
static int
pgpkey_parse_rsa(const unsigned char *body, size_t len,
    struct pgpkey_rsa *k, char *err, size_t errlen)
{
	const unsigned char *p, *end = body + len, *sec;
	unsigned sum = 0, want;
	BIGNUM *u = NULL;
	size_t publen;
	int ret = -1;

	if ((publen = pgpkey_parse_public(body, len, k, "secret key", err,
	    errlen)) == 0)
		return -1;
	p = body + publen;
	if (p == end)
		goto bad;
	if (*p++ != 0) {
		snprintf(err, errlen, "the secret key is protected by a "
		    "passphrase (or is a stub); the server's key must not be");
		goto out;
	}
	sec = p;
	if ((k->d = pgpkey_mpi(&p, end, 1)) == NULL ||
	    (k->p = pgpkey_mpi(&p, end, 1)) == NULL ||
	    (k->q = pgpkey_mpi(&p, end, 1)) == NULL ||
	    (u = pgpkey_mpi(&p, end, 1)) == NULL || end - p != 2)
		goto bad;
	for (; sec < p; sec++)
		sum += *sec;
	want = (unsigned)p[0] << 8 | p[1];
	if ((sum & 0xffff) != want) {
		snprintf(err, errlen, "the secret key's checksum is wrong");
		goto out;
	}
	ret = 0;
	goto out;
bad:
	snprintf(err, errlen, "the secret key packet is malformed");
out:
	BN_clear_free(u);
	if (ret == -1)
		pgpkey_rsa_clear(k);
	return ret;
}

/* Wipe the values an OSSL_PARAM_BLD array copied, then free it. */
static void
pgpkey_params_free(OSSL_PARAM *params)
{
	OSSL_PARAM *q;

	if (params == NULL)
		return;
	for (q = params; q->key != NULL; q++)
		if (q->data != NULL)
			OPENSSL_cleanse(q->data, q->data_size);
	OSSL_PARAM_free(params);
}

/*
 * The EVP_PKEY of k: a key pair with the CRT values OpenSSL wants, or the
 * public key alone when k has no d.  NULL on error.
 */
static EVP_PKEY *
pgpkey_rsa_pkey(const struct pgpkey_rsa *k, char *err, size_t errlen)
{
	BN_CTX *bc = NULL;
	BIGNUM *pm1, *qm1, *dp, *dq, *qinv, *nn;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pc = NULL;
	EVP_PKEY *pkey = NULL;

	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, k->n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, k->e))
		goto fail;
	if (k->d != NULL) {
		if ((bc = BN_CTX_secure_new()) == NULL)
			goto fail;
		BN_CTX_start(bc);
		pm1 = BN_CTX_get(bc);
		qm1 = BN_CTX_get(bc);
		dp = BN_CTX_get(bc);
		dq = BN_CTX_get(bc);
		qinv = BN_CTX_get(bc);
		if ((nn = BN_CTX_get(bc)) == NULL)
			goto fail;
		BN_set_flags(qinv, BN_FLG_CONSTTIME);
		/* A damaged export is caught here, not by a bad signature. */
		if (!BN_mul(nn, k->p, k->q, bc) || BN_cmp(nn, k->n) != 0) {
			snprintf(err, errlen, "the secret key's factors do "
			    "not match its modulus");
			goto out;
		}
		if (!BN_sub(pm1, k->p, BN_value_one()) ||
		    !BN_sub(qm1, k->q, BN_value_one()) ||
		    !BN_mod(dp, k->d, pm1, bc) || !BN_mod(dq, k->d, qm1, bc) ||
		    BN_mod_inverse(qinv, k->q, k->p, bc) == NULL)
			goto fail;
		if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, k->d) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1,
		    k->p) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2,
		    k->q) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1,
		    dp) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2,
		    dq) ||
		    !OSSL_PARAM_BLD_push_BN(bld,
		    OSSL_PKEY_PARAM_RSA_COEFFICIENT1, qinv))
			goto fail;
	}
	if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (pc = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(pc) <= 0 ||
	    EVP_PKEY_fromdata(pc, &pkey, k->d != NULL ? EVP_PKEY_KEYPAIR :
	    EVP_PKEY_PUBLIC_KEY, params) <= 0)
		goto fail;
	goto out;
fail:
	snprintf(err, errlen, "OpenSSL cannot take the RSA key");
out:
	pgpkey_params_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(pc);
	if (bc != NULL) {
		BN_CTX_end(bc);
		BN_CTX_free(bc);
	}
	return pkey;
}

int
pgpkey_read_public(const unsigned char *body, size_t len,
    struct pgpkey_public *pub, char *err, size_t errlen)
{
	struct pgpkey_rsa k;

	memset(pub, 0, sizeof(*pub));
	if (pgpkey_parse_public(body, len, &k, "public key", err, errlen) == 0)
		return -1;
	pub->pkey = pgpkey_rsa_pkey(&k, err, errlen);
	memcpy(pub->fpr, k.fpr, PGPKEY_FPR_LEN);
	memcpy(pub->keyid, k.fpr + PGPKEY_FPR_LEN - PGPKEY_KEYID_LEN,
	    PGPKEY_KEYID_LEN);
	pub->algo = k.algo;
	pub->created = k.created;
	pgpkey_rsa_clear(&k);
	return pub->pkey != NULL ? 0 : -1;
}

int
pgpkey_read_secret(const unsigned char *buf, size_t len,
    const char *enc_fpr, EVP_PKEY **sign, EVP_PKEY **decrypt,
    unsigned char fpr[PGPKEY_FPR_LEN], char *err, size_t errlen)
{
	unsigned char want[PGPKEY_FPR_LEN];
	struct pgpkey_rsa k;
	size_t off = 0, h, b;
	int tag, first = 1;
	EVP_PKEY **dst;

	*sign = *decrypt = NULL;
	if (pgpkey_fpr_from_hex(enc_fpr, want) == -1) {
		snprintf(err, errlen, "bad encryption subkey fingerprint");
		return -1;
	}
	while (off < len) {
		if (pgpkey_packet(buf + off, len - off, &tag, &h, &b) == -1) {
			snprintf(err, errlen, "the exported secret key is not "
			    "well-formed OpenPGP");
			goto fail;
		}
		if (first && tag != PGPKEY_TAG_SECKEY) {
			snprintf(err, errlen, "the export holds no secret key");
			goto fail;
		}
		/* One transferable key: a second primary ends it. */
		if (!first && tag == PGPKEY_TAG_SECKEY)
			break;
		first = 0;
		if (tag == PGPKEY_TAG_SECKEY || tag == PGPKEY_TAG_SECSUBKEY) {
			if (pgpkey_parse_rsa(buf + off + h, b, &k, err,
			    errlen) == -1)
				goto fail;
			dst = NULL;
			if (tag == PGPKEY_TAG_SECKEY) {
				dst = sign;
				memcpy(fpr, k.fpr, PGPKEY_FPR_LEN);
			} else if (*decrypt == NULL &&
			    memcmp(k.fpr, want, PGPKEY_FPR_LEN) == 0) {
				dst = decrypt;
			}
			if (dst != NULL &&
			    (*dst = pgpkey_rsa_pkey(&k, err, errlen)) == NULL) {
				pgpkey_rsa_clear(&k);
				goto fail;
			}
			pgpkey_rsa_clear(&k);
		}
		off += h + b;
	}
	if (*sign == NULL) {
		snprintf(err, errlen, "the export holds no secret key");
		goto fail;
	}
	if (*decrypt == NULL) {
		snprintf(err, errlen, "the export lacks the secret encryption "
		    "subkey %s", enc_fpr);
		goto fail;
	}
	return 0;
fail:
	EVP_PKEY_free(*sign);
	EVP_PKEY_free(*decrypt);
	*sign = *decrypt = NULL;
	return -1;
}
