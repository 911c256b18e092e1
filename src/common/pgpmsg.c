/* pgpmsg.c - OpenPGP messages: decrypt, sign, encrypt (see pgpmsg.h). */
#include "pgpmsg.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "crypto.h"

/* RFC 4880 9.2, 9.3. */
#define SYM_AES128 7
#define SYM_AES192 8
#define SYM_AES256 9
#define ZIP_ZLIB 2

#define BS 16             /* the AES block */
#define MDC_LEN 22        /* 0xd3 0x14 and a SHA-1 */
#define PKESK_MAX 16      /* the most recipients looked at */
#define SESSION_BLOCK_MAX (1 + 32 + 2)
/* Room around signed data: one-pass, literal header, signature packet. */
#define SIGNED_OVERHEAD (2 + 13 + 6 + 6 + PGPSIG_PACKET_MAX)

/* The AES of an OpenPGP symmetric algorithm number and its key length. */
static const EVP_CIPHER *
msg_cipher(int algo, size_t *keylen)
{
	switch (algo) {
	case SYM_AES128:
		*keylen = 16;
		return EVP_aes_128_cfb128();
	case SYM_AES192:
		*keylen = 24;
		return EVP_aes_192_cfb128();
	case SYM_AES256:
		*keylen = 32;
		return EVP_aes_256_cfb128();
	default:
		return NULL;
	}
}

/* CFB over n octets of in into out, from iv (NULL: zeros).  0, or -1. */
static int
msg_cfb(const EVP_CIPHER *c, const unsigned char *key,
    const unsigned char *iv, int enc, const unsigned char *in, size_t n,
    unsigned char *out)
{
	static const unsigned char zero[BS];
	EVP_CIPHER_CTX *ctx;
	int ok, l1 = 0, l2 = 0;

	if (n > INT32_MAX || (ctx = EVP_CIPHER_CTX_new()) == NULL)
		return -1;
	ok = EVP_CipherInit_ex(ctx, c, NULL, key, iv != NULL ? iv : zero,
	    enc) && EVP_CipherUpdate(ctx, out, &l1, in, (int)n) &&
	    EVP_CipherFinal_ex(ctx, out + l1, &l2) && (size_t)(l1 + l2) == n;
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* The two-octet sum of the session key (RFC 4880 5.1). */
static unsigned
msg_checksum(const unsigned char *key, size_t n)
{
	unsigned sum = 0;

	while (n-- > 0)
		sum += *key++;
	return sum & 0xffff;
}

/* The MDC packet of what md has hashed so far, hashing its header too. */
static int
msg_mdc(EVP_MD_CTX *md, unsigned char mdc[MDC_LEN])
{
	mdc[0] = 0xd3;
	mdc[1] = 0x14;
	return EVP_DigestUpdate(md, mdc, 2) &&
	    EVP_DigestFinal_ex(md, mdc + 2, NULL) ? 0 : -1;
}

/*
 * The body of the streamed packet at p (its header h octets, its first
 * part b octets as pgpkey_packet_start said, more its kind), its parts
 * joined, malloc'd into *body; *used gets the octets the packet took.
 */
static int
msg_join(const unsigned char *p, size_t len, size_t h, size_t b, int more,
    unsigned char **body, size_t *blen, size_t *used, char *err,
    size_t errlen)
{
	size_t off = h, n = 0, ll;

	if ((*body = malloc(len)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (;;) {
		memcpy(*body + n, p + off, b);
		n += b;
		off += b;
		if (more != PGPKEY_LEN_PARTIAL)
			break;
		if (pgpkey_length(p + off, len - off, &ll, &b, &more) == -1 ||
		    b > len - off - ll) {
			snprintf(err, errlen, "the encrypted data's partial "
			    "lengths run past the end of the message");
			free(*body);
			*body = NULL;
			return -1;
		}
		off += ll;
	}
	*blen = n;
	*used = off;
	return 0;
}

/*
 * The session key of the first PKESK decrypt accepts (pk: the offsets of
 * the PKESK bodies and their lengths) into key, its algorithm into *algo.
 */
static int
msg_session_key(const unsigned char *msg, const size_t pk[][2], size_t npk,
    pgpmsg_decrypt_fn *decrypt, void *arg, unsigned char key[32],
    size_t *keylen, int *algo, char *err, size_t errlen)
{
	unsigned char block[PGPMSG_DECRYPT_ROOM];
	const unsigned char *body, *p, *val;
	size_t i, n, blen = 0, tried = 0;
	char why[256] = "";
	int ret = -1, found = 0;

	for (i = 0; i < npk && !found; i++) {
		body = msg + pk[i][0];
		p = body + 10;
		/* version 3, key ID, RSA, one MPI */
		if (pk[i][1] < 10 || body[0] != 3 ||
		    (body[9] != PGPKEY_PK_RSA && body[9] != PGPKEY_PK_RSA_E) ||
		    pgpkey_mpi_read(&p, body + pk[i][1], &val, &n) == -1 ||
		    p != body + pk[i][1])
			continue;
		tried++;
		blen = sizeof(block);
		found = decrypt(arg, body + 1, val, n, block, &blen, why,
		    sizeof(why)) == 0;
	}
	if (!found) {
		if (tried == 0)
			snprintf(err, errlen, "the message is not encrypted to "
			    "an RSA key (no v3 RSA PKESK)");
		else
			snprintf(err, errlen, "no PKESK of the message could "
			    "be decrypted: %s", why);
		goto out;
	}
	if (blen < 3 || blen > sizeof(block) ||
	    msg_cipher(block[0], keylen) == NULL) {
		snprintf(err, errlen, "the session key's algorithm (%d) is "
		    "not AES-128, -192 or -256", blen > 0 ? block[0] : -1);
		goto out;
	}
	if (blen != 1 + *keylen + 2) {
		snprintf(err, errlen, "the session key block has the wrong "
		    "length");
		goto out;
	}
	if (msg_checksum(block + 1, *keylen) !=
	    ((unsigned)block[1 + *keylen] << 8 | block[2 + *keylen])) {
		snprintf(err, errlen, "the session key's checksum is wrong");
		goto out;
	}
	*algo = block[0];
	memcpy(key, block + 1, *keylen);
	ret = 0;
out:
	OPENSSL_cleanse(block, sizeof(block));
	return ret;
}

/*
 * Decrypt the body of a tag 9 or 18 packet with key into out (room blen):
 * the data inside, its length in *n.  0, or -1 with err.
 */
static int
msg_decrypt_data(int tag, const unsigned char *body, size_t blen,
    const EVP_CIPHER *c, const unsigned char *key, unsigned char *out,
    size_t *n, char *err, size_t errlen)
{
	unsigned char mdc[MDC_LEN];
	EVP_MD_CTX *md = NULL;
	int ret = -1;

	if (tag == PGPKEY_TAG_SEIPD) {
		if (blen < 1 || body[0] != 1) {
			snprintf(err, errlen, "the SEIPD packet's version (%d) "
			    "is not 1", blen < 1 ? -1 : body[0]);
			return -1;
		}
		body++;
		blen--;
	}
	if (blen < BS + 2 + (tag == PGPKEY_TAG_SEIPD ? MDC_LEN : 0) + 1) {
		snprintf(err, errlen, "the encrypted data is too short");
		return -1;
	}
	if (tag == PGPKEY_TAG_SEIPD) {
		/* Plain CFB throughout: prefix, data, MDC packet. */
		if (msg_cfb(c, key, NULL, 0, body, blen, out) == -1)
			goto fail;
	} else {
		/* The prefix, then the resync on its last BS octets. */
		if (msg_cfb(c, key, NULL, 0, body, BS + 2, out) == -1 ||
		    msg_cfb(c, key, body + 2, 0, body + BS + 2, blen - BS - 2,
		    out + BS + 2) == -1)
			goto fail;
	}
	if (out[BS - 2] != out[BS] || out[BS - 1] != out[BS + 1]) {
		snprintf(err, errlen, "the session key does not decrypt the "
		    "data (quick check failed)");
		goto out;
	}
	*n = blen - BS - 2;
	if (tag == PGPKEY_TAG_SEIPD) {
		*n -= MDC_LEN;
		if ((md = EVP_MD_CTX_new()) == NULL ||
		    !EVP_DigestInit_ex(md, EVP_sha1(), NULL) ||
		    !EVP_DigestUpdate(md, out, blen - MDC_LEN) ||
		    msg_mdc(md, mdc) == -1)
			goto fail;
		if (!crypto_memeq(mdc, out + blen - MDC_LEN, MDC_LEN)) {
			snprintf(err, errlen, "the modification detection "
			    "code does not match: the message was altered");
			goto out;
		}
	}
	memmove(out, out + BS + 2, *n);
	OPENSSL_cleanse(out + *n, blen - *n);
	ret = 0;
	goto out;
fail:
	snprintf(err, errlen, "AES-CFB or SHA-1 failed");
out:
	EVP_MD_CTX_free(md);
	return ret;
}

int
pgpmsg_decrypt(const unsigned char *msg, size_t len,
    pgpmsg_decrypt_fn *decrypt, void *arg, unsigned char **plain,
    size_t *plainlen, int *integrity, char *err, size_t errlen)
{
	unsigned char key[32], *body = NULL, *out = NULL;
	size_t pk[PKESK_MAX][2], npk = 0, off = 0, h, b, blen = 0, used, n;
	size_t keylen = 0;
	const EVP_CIPHER *c;
	int tag = 0, more, algo = 0, ret = -1;

	*plain = NULL;
	*plainlen = 0;
	*integrity = 0;
	if (len > PGPMSG_MAX) {
		snprintf(err, errlen, "the message is too large (%zu bytes, "
		    "at most %zu)", len, (size_t)PGPMSG_MAX);
		return -1;
	}
	while (body == NULL) {
		if (off == len) {
			snprintf(err, errlen, "the message has no encrypted "
			    "data packet");
			return -1;
		}
		if (pgpkey_packet_start(msg + off, len - off, &tag, &h, &b,
		    &more) == -1) {
			snprintf(err, errlen, "the message's packet at offset "
			    "%zu is malformed or truncated", off);
			return -1;
		}
		if (tag == PGPKEY_TAG_SED || tag == PGPKEY_TAG_SEIPD) {
			if (msg_join(msg + off, len - off, h, b, more, &body,
			    &blen, &used, err, errlen) == -1)
				return -1;
			if (off + used != len) {
				snprintf(err, errlen, "data follows the "
				    "message's encrypted packet");
				goto out;
			}
			break;
		}
		if (more != PGPKEY_LEN_DEFINITE || (tag != PGPKEY_TAG_PKESK &&
		    tag != PGPKEY_TAG_SKESK && tag != PGPKEY_TAG_MARKER)) {
			snprintf(err, errlen, "unexpected packet (tag %d) in "
			    "an encrypted message", tag);
			return -1;
		}
		if (tag == PGPKEY_TAG_PKESK && npk < PKESK_MAX) {
			pk[npk][0] = off + h;
			pk[npk++][1] = b;
		}
		off += h + b;
	}
	if (msg_session_key(msg, pk, npk, decrypt, arg, key, &keylen, &algo,
	    err, errlen) == -1)
		goto out;
	c = msg_cipher(algo, &keylen);
	if ((out = malloc(blen)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (msg_decrypt_data(tag, body, blen, c, key, out, &n, err,
	    errlen) == -1)
		goto out;
	*plain = out;
	*plainlen = n;
	*integrity = tag == PGPKEY_TAG_SEIPD;
	out = NULL;
	ret = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_clear_free(out, blen);
	free(body);
	return ret;
}

/* The signature packet over data into pkt (PGPSIG_PACKET_MAX): its length. */
static size_t
msg_signature(const unsigned char *data, size_t len,
    const unsigned char fpr[PGPKEY_FPR_LEN], time_t created,
    pgpsig_sign_fn *sign, void *arg, unsigned char *pkt, char *err,
    size_t errlen)
{
	EVP_MD_CTX *md;
	size_t n = 0;

	if (len > PGPMSG_MAX) {
		snprintf(err, errlen, "the data to sign is too large (%zu "
		    "bytes, at most %zu)", len, (size_t)PGPMSG_MAX);
		return 0;
	}
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    !EVP_DigestInit_ex(md, pgpkey_md(PGPKEY_HASH_SHA512), NULL) ||
	    !EVP_DigestUpdate(md, data, len))
		snprintf(err, errlen, "SHA-512 failed");
	else
		n = pgpsig_packet(md, PGPSIG_TYPE_BINARY, PGPKEY_HASH_SHA512,
		    fpr, created, sign, arg, pkt, err, errlen);
	EVP_MD_CTX_free(md);
	return n;
}

int
pgpmsg_detached(const unsigned char *data, size_t len,
    const unsigned char fpr[PGPKEY_FPR_LEN], time_t created,
    pgpsig_sign_fn *sign, void *arg, unsigned char **sig, size_t *siglen,
    char *err, size_t errlen)
{
	unsigned char pkt[PGPSIG_PACKET_MAX];
	size_t n;

	*sig = NULL;
	if ((n = msg_signature(data, len, fpr, created, sign, arg, pkt, err,
	    errlen)) == 0)
		return -1;
	if ((*sig = malloc(n)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(*sig, pkt, n);
	*siglen = n;
	return 0;
}

/* Compress in (n) as one ZLIB compressed packet into a new *out. */
static int
msg_zlib(const unsigned char *in, size_t n, unsigned char **out,
    size_t *outlen, char *err, size_t errlen)
{
	uLongf zlen = compressBound((uLong)n);
	unsigned char hdr[6], *buf;
	size_t h;

	if ((buf = malloc(6 + 1 + zlen)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (compress2(buf + 6 + 1, &zlen, in, (uLong)n,
	    Z_DEFAULT_COMPRESSION) != Z_OK) {
		snprintf(err, errlen, "ZLIB compression failed");
		OPENSSL_clear_free(buf, 6 + 1 + compressBound((uLong)n));
		return -1;
	}
	buf[6] = ZIP_ZLIB;
	/* The header right before the body: no second copy. */
	h = pgpkey_header(PGPKEY_TAG_COMPRESSED, 1 + zlen, hdr);
	memcpy(buf + 6 - h, hdr, h);
	memmove(buf, buf + 6 - h, h + 1 + zlen);
	OPENSSL_cleanse(buf + h + 1 + zlen, 6 - h);
	*out = buf;
	*outlen = h + 1 + zlen;
	return 0;
}

int
pgpmsg_sign(const unsigned char *data, size_t len,
    const unsigned char fpr[PGPKEY_FPR_LEN], time_t created, int flags,
    pgpsig_sign_fn *sign, void *arg, unsigned char **packets, size_t *plen,
    char *err, size_t errlen)
{
	unsigned char sig[PGPSIG_PACKET_MAX], *buf = NULL;
	unsigned long t = (unsigned long)created;
	size_t o = 0, n, cap;
	int ret = -1;

	*packets = NULL;
	*plen = 0;
	if ((n = msg_signature(data, len, fpr, created, sign, arg, sig, err,
	    errlen)) == 0)
		return -1;
	cap = len + SIGNED_OVERHEAD;
	if ((buf = malloc(cap)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* One-pass signature: v3, binary, SHA-512, RSA, key ID, last. */
	o += pgpkey_header(PGPKEY_TAG_ONEPASS, 13, buf + o);
	buf[o++] = 3;
	buf[o++] = PGPSIG_TYPE_BINARY;
	buf[o++] = PGPKEY_HASH_SHA512;
	buf[o++] = PGPKEY_PK_RSA;
	memcpy(buf + o, fpr + PGPKEY_FPR_LEN - PGPKEY_KEYID_LEN,
	    PGPKEY_KEYID_LEN);
	o += PGPKEY_KEYID_LEN;
	buf[o++] = 1;
	/* Literal data: binary, no file name, the date. */
	o += pgpkey_header(PGPKEY_TAG_LITERAL, 6 + len, buf + o);
	buf[o++] = 'b';
	buf[o++] = 0;
	buf[o++] = (unsigned char)(t >> 24);
	buf[o++] = (unsigned char)(t >> 16);
	buf[o++] = (unsigned char)(t >> 8);
	buf[o++] = (unsigned char)t;
	memcpy(buf + o, data, len);
	o += len;
	memcpy(buf + o, sig, n);
	o += n;
	if (flags & PGPMSG_ZLIB) {
		if (msg_zlib(buf, o, packets, plen, err, errlen) == -1)
			goto out;
	} else {
		*packets = buf;
		*plen = o;
		buf = NULL;
	}
	ret = 0;
out:
	OPENSSL_clear_free(buf, cap);
	return ret;
}

/*
 * The v3 PKESK of the session block to k into out (room PGPKEY_MPI_MAX +
 * 20): its length, or 0 with err.
 */
static size_t
msg_pkesk(const struct pgpmsg_key *k, const unsigned char *block,
    size_t blen, unsigned char *out, char *err, size_t errlen)
{
	unsigned char ct[PGPKEY_MPI_MAX];
	size_t ctlen = sizeof(ct), b = 0, h;
	unsigned char body[PGPKEY_MPI_MAX + 12];
	EVP_PKEY_CTX *pc;
	int ok;

	ok = EVP_PKEY_get_size(k->pub.pkey) <= (int)sizeof(ct) &&
	    (pc = EVP_PKEY_CTX_new_from_pkey(NULL, k->pub.pkey, NULL)) !=
	    NULL;
	if (ok) {
		ok = EVP_PKEY_encrypt_init(pc) > 0 &&
		    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) > 0 &&
		    EVP_PKEY_encrypt(pc, ct, &ctlen, block, blen) > 0;
		EVP_PKEY_CTX_free(pc);
	}
	if (!ok) {
		snprintf(err, errlen, "RSA encryption to the client's key "
		    "failed: %s", crypto_ssl_reason());
		return 0;
	}
	body[b++] = 3;
	memcpy(body + b, k->pub.keyid, PGPKEY_KEYID_LEN);
	b += PGPKEY_KEYID_LEN;
	body[b++] = (unsigned char)k->pub.algo;
	b += pgpkey_mpi_write(ct, ctlen, body + b);
	h = pgpkey_header(PGPKEY_TAG_PKESK, b, out);
	memcpy(out + h, body, b);
	return h + b;
}

int
pgpmsg_encrypt(const unsigned char *packets, size_t len,
    const struct pgpmsg_pubkey *key, unsigned char **msg, size_t *msglen,
    char *err, size_t errlen)
{
	unsigned char sk[32], block[SESSION_BLOCK_MAX], *pt = NULL, *buf;
	size_t ptlen = BS + 2 + len + MDC_LEN, o, n;
	unsigned sum;
	EVP_MD_CTX *md = NULL;
	int ret = -1;

	*msg = NULL;
	*msglen = 0;
	if (key->encrypt == NULL) {
		snprintf(err, errlen, "the public key has no key to encrypt "
		    "to (sign-only, revoked or expired)");
		return -1;
	}
	if (len == 0 || len > PGPMSG_MAX) {
		snprintf(err, errlen, "the data to encrypt is %s (%zu bytes)",
		    len == 0 ? "empty" : "too large", len);
		return -1;
	}
	if ((pt = malloc(ptlen)) == NULL ||
	    (buf = malloc(PGPKEY_MPI_MAX + 20 + 6 + 1 + ptlen)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	*msg = buf;
	if (crypto_random(sk, sizeof(sk)) == -1 ||
	    crypto_random(pt, BS) == -1) {
		snprintf(err, errlen, "the random generator failed");
		goto out;
	}
	sum = msg_checksum(sk, sizeof(sk));
	block[0] = SYM_AES256;
	memcpy(block + 1, sk, sizeof(sk));
	block[1 + sizeof(sk)] = (unsigned char)(sum >> 8);
	block[2 + sizeof(sk)] = (unsigned char)sum;
	if ((o = msg_pkesk(key->encrypt, block, sizeof(block), buf, err,
	    errlen)) == 0)
		goto out;
	/* Prefix (its last two octets repeated), data, MDC. */
	pt[BS] = pt[BS - 2];
	pt[BS + 1] = pt[BS - 1];
	memcpy(pt + BS + 2, packets, len);
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    !EVP_DigestInit_ex(md, EVP_sha1(), NULL) ||
	    !EVP_DigestUpdate(md, pt, ptlen - MDC_LEN) ||
	    msg_mdc(md, pt + ptlen - MDC_LEN) == -1) {
		snprintf(err, errlen, "SHA-1 failed");
		goto out;
	}
	o += pgpkey_header(PGPKEY_TAG_SEIPD, 1 + ptlen, buf + o);
	buf[o++] = 1;
	if (msg_cfb(msg_cipher(SYM_AES256, &n), sk, NULL, 1, pt, ptlen,
	    buf + o) == -1) {
		snprintf(err, errlen, "AES-256-CFB failed");
		goto out;
	}
	*msglen = o + ptlen;
	ret = 0;
out:
	if (ret == -1) {
		free(*msg);
		*msg = NULL;
	}
	EVP_MD_CTX_free(md);
	OPENSSL_cleanse(sk, sizeof(sk));
	OPENSSL_cleanse(block, sizeof(block));
	OPENSSL_clear_free(pt, ptlen);
	return ret;
}
