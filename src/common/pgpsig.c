/* pgpsig.c - OpenPGP signatures and cleartext signatures (see pgpsig.h). */
#include "pgpsig.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgpmsg_armor.h"

#define PGPSIG_TAG 2
#define PGPSIG_SUB_CREATED 2
#define PGPSIG_SUB_ISSUER 16
#define PGPSIG_SUB_ISSUER_FPR 33
/* version .. hashed subpackets: 6 + (1 + 1 + 1 + 20) + (1 + 1 + 4) */
#define PGPSIG_HASHED_LEN 35

/* Length of the line at p (up to '\n') without trailing blanks and CR. */
static size_t
pgpsig_line(const char *p, size_t left, size_t *next)
{
	const char *nl = memchr(p, '\n', left);
	size_t n = nl != NULL ? (size_t)(nl - p) : left;

	*next = nl != NULL ? n + 1 : n;
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' ||
	    p[n - 1] == '\r'))
		n--;
	return n;
}

/*
 * Write the dash-escaped text into out (room for 2 * len + 2) while hashing
 * its canonical form into md; returns the bytes written, 0 on a hash error
 * (the output is never empty: an empty text is one empty line).
 */
static size_t
pgpsig_text(const char *text, size_t len, char *out, EVP_MD_CTX *md)
{
	size_t off = 0, o = 0, n, next;
	int first = 1;

	do {
		n = pgpsig_line(text + off, len - off, &next);
		if (!first && !EVP_DigestUpdate(md, "\r\n", 2))
			return 0;
		if (!EVP_DigestUpdate(md, text + off, n))
			return 0;
		first = 0;
		if ((n > 0 && text[off] == '-') ||
		    (n >= 5 && memcmp(text + off, "From ", 5) == 0)) {
			out[o++] = '-';
			out[o++] = ' ';
		}
		memcpy(out + o, text + off, n);
		o += n;
		out[o++] = '\n';
		off += next;
	} while (off < len);
	return o;
}

size_t
pgpsig_packet(EVP_MD_CTX *md, int sigtype, int hashalgo,
    const unsigned char fpr[PGPKEY_FPR_LEN], time_t created,
    pgpsig_sign_fn *sign, void *arg, unsigned char *pkt, char *err,
    size_t errlen)
{
	unsigned char body[PGPSIG_PACKET_MAX], sig[PGPSIG_SIG_MAX];
	unsigned char trailer[6], digest[EVP_MAX_MD_SIZE];
	unsigned long t = (unsigned long)created;
	unsigned int dlen = 0;
	size_t b = 0, siglen = 0, h;

	/* Version, type, algorithms, then the hashed subpackets. */
	body[b++] = 4;
	body[b++] = (unsigned char)sigtype;
	body[b++] = PGPKEY_PK_RSA;
	body[b++] = (unsigned char)hashalgo;
	body[b++] = 0;
	body[b++] = PGPSIG_HASHED_LEN - 6;
	body[b++] = 1 + 1 + PGPKEY_FPR_LEN;
	body[b++] = PGPSIG_SUB_ISSUER_FPR;
	body[b++] = 4;
	memcpy(body + b, fpr, PGPKEY_FPR_LEN);
	b += PGPKEY_FPR_LEN;
	body[b++] = 1 + 4;
	body[b++] = PGPSIG_SUB_CREATED;
	body[b++] = (unsigned char)(t >> 24);
	body[b++] = (unsigned char)(t >> 16);
	body[b++] = (unsigned char)(t >> 8);
	body[b++] = (unsigned char)t;
	/* The v4 trailer: 0x04 0xff and the hashed length (RFC 4880 5.2.4). */
	trailer[0] = 4;
	trailer[1] = 0xff;
	trailer[2] = trailer[3] = trailer[4] = 0;
	trailer[5] = (unsigned char)b;

	if (!EVP_DigestUpdate(md, body, b) ||
	    !EVP_DigestUpdate(md, trailer, sizeof(trailer)) ||
	    !EVP_DigestFinal_ex(md, digest, &dlen)) {
		snprintf(err, errlen, "hashing the signed data failed");
		return 0;
	}
	if (sign(arg, hashalgo, digest, dlen, sig, &siglen, err, errlen) == -1)
		return 0;
	if (siglen == 0 || siglen > sizeof(sig)) {
		snprintf(err, errlen, "the signer returned %zu bytes", siglen);
		return 0;
	}
	/* The unhashed issuer key ID: the fingerprint's last 8 bytes. */
	body[b++] = 0;
	body[b++] = 1 + 1 + PGPKEY_KEYID_LEN;
	body[b++] = 1 + PGPKEY_KEYID_LEN;
	body[b++] = PGPSIG_SUB_ISSUER;
	memcpy(body + b, fpr + PGPKEY_FPR_LEN - PGPKEY_KEYID_LEN,
	    PGPKEY_KEYID_LEN);
	b += PGPKEY_KEYID_LEN;
	body[b++] = digest[0];
	body[b++] = digest[1];
	b += pgpkey_mpi_write(sig, siglen, body + b);

	h = pgpkey_header(PGPSIG_TAG, b, pkt);
	memcpy(pkt + h, body, b);
	return h + b;
}

int
pgpsig_clearsign(const char *text, size_t len,
    const unsigned char fpr[PGPKEY_FPR_LEN], time_t created,
    pgpsig_sign_fn *sign, void *arg, char **out, size_t *outlen, char *err,
    size_t errlen)
{
	static const char head[] =
	    "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n";
	unsigned char pkt[PGPSIG_PACKET_MAX];
	size_t h, o, cap, plen;
	EVP_MD_CTX *md = NULL;
	char *buf = NULL;
	int ret = -1;

	*out = NULL;
	if (len > (SIZE_MAX - 8192) / 2) {
		snprintf(err, errlen, "the text is too long to sign");
		return -1;
	}
	cap = sizeof(head) + 2 * len + 2 + pgpmsg_armor_size(
	    PGPMSG_ARMOR_SIGNATURE, NULL, sizeof(pkt));
	if ((buf = malloc(cap)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(buf, head, sizeof(head) - 1);
	o = sizeof(head) - 1;

	if ((md = EVP_MD_CTX_new()) == NULL ||
	    !EVP_DigestInit_ex(md, pgpkey_md(PGPKEY_HASH_SHA256), NULL) ||
	    (h = pgpsig_text(text, len, buf + o, md)) == 0) {
		snprintf(err, errlen, "SHA-256 failed");
		goto out;
	}
	o += h;
	if ((plen = pgpsig_packet(md, PGPSIG_TYPE_TEXT, PGPKEY_HASH_SHA256,
	    fpr, created, sign, arg, pkt, err, errlen)) == 0)
		goto out;
	o += pgpmsg_armor_into(PGPMSG_ARMOR_SIGNATURE, NULL, pkt, plen,
	    buf + o);
	buf[o] = '\0';
	*out = buf;
	buf = NULL;
	if (outlen != NULL)
		*outlen = o;
	ret = 0;
out:
	EVP_MD_CTX_free(md);
	free(buf);
	return ret;
}
