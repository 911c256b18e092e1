/*
 * auditchain.c - the audit chain's encodings, hashes and MAC (see
 * auditchain.h; docs/audit.md says what they prove).
 */
#include "auditchain.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <stdlib.h>
#include <string.h>

#define AC_NULL_LEN 0xffffffffU

struct auditchain_hash {
	EVP_MD_CTX *md;
};

static size_t
ac_put_u64(unsigned char *out, size_t off, size_t cap, uint64_t v)
{
	int i;

	if (off + 8 <= cap)
		for (i = 0; i < 8; i++)
			out[off + (size_t)i] = (unsigned char)(v >> (56 - 8 * i));
	return off + 8;
}

static size_t
ac_put_text(unsigned char *out, size_t off, size_t cap, const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;
	uint32_t len = s != NULL ? (uint32_t)n : AC_NULL_LEN;
	int i;

	if (off + 4 <= cap)
		for (i = 0; i < 4; i++)
			out[off + (size_t)i] = (unsigned char)(len >> (24 - 8 * i));
	off += 4;
	if (n > 0 && off + n <= cap)
		memcpy(out + off, s, n);
	return off + n;
}

size_t
auditchain_encode(const struct auditchain_row *r, unsigned char *out,
    size_t cap)
{
	size_t off = 4;

	if (cap >= 4)
		memcpy(out, "KTA1", 4);
	off = ac_put_u64(out, off, cap, (uint64_t)r->id);
	off = ac_put_u64(out, off, cap, (uint64_t)r->xact);
	off = ac_put_u64(out, off, cap, (uint64_t)r->at_us);
	off = ac_put_text(out, off, cap, r->actor);
	off = ac_put_text(out, off, cap, r->org);
	off = ac_put_text(out, off, cap, r->action);
	off = ac_put_text(out, off, cap, r->object);
	off = ac_put_text(out, off, cap, r->remote_addr);
	off = ac_put_text(out, off, cap, r->result);
	off = ac_put_u64(out, off, cap, (uint64_t)r->count);
	return off;
}

int
auditchain_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = (int64_t)v;
	return 0;
}

static const char *
ac_text(const PGresult *res, int i, int col)
{
	return PQgetisnull(res, i, col) ? NULL : PQgetvalue(res, i, col);
}

int
auditchain_row_get(const PGresult *res, int i, int col,
    struct auditchain_row *r)
{
	if (auditchain_int(ac_text(res, i, col), &r->id) == -1 ||
	    auditchain_int(ac_text(res, i, col + 1), &r->xact) == -1 ||
	    auditchain_int(ac_text(res, i, col + 2), &r->at_us) == -1 ||
	    auditchain_int(ac_text(res, i, col + 9), &r->count) == -1)
		return -1;
	r->actor = ac_text(res, i, col + 3);
	r->org = ac_text(res, i, col + 4);
	r->action = ac_text(res, i, col + 5);
	r->object = ac_text(res, i, col + 6);
	r->remote_addr = ac_text(res, i, col + 7);
	r->result = ac_text(res, i, col + 8);
	return 0;
}

int
auditchain_row_digest(const struct auditchain_row *r,
    unsigned char out[CRYPTO_HASH_LEN])
{
	unsigned char buf[1024], *p = buf;
	size_t n = auditchain_encode(r, buf, sizeof(buf));
	int ret;

	if (n > sizeof(buf)) {
		if ((p = malloc(n)) == NULL)
			return -1;
		auditchain_encode(r, p, n);
	}
	ret = crypto_sha256(p, n, out);
	if (p != buf)
		free(p);
	return ret;
}

struct auditchain_hash *
auditchain_hash_new(const unsigned char prev[CRYPTO_HASH_LEN])
{
	struct auditchain_hash *h;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	if ((h->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(h->md, "KTS1", 4) != 1 ||
	    EVP_DigestUpdate(h->md, prev, CRYPTO_HASH_LEN) != 1) {
		auditchain_hash_free(h);
		return NULL;
	}
	return h;
}

int
auditchain_hash_row(struct auditchain_hash *h,
    const unsigned char digest[CRYPTO_HASH_LEN])
{
	return EVP_DigestUpdate(h->md, digest, CRYPTO_HASH_LEN) == 1 ? 0 : -1;
}

int
auditchain_hash_end(struct auditchain_hash *h,
    const struct auditchain_seg *s, unsigned char out[CRYPTO_HASH_LEN])
{
	unsigned char hdr[6 * 8];
	unsigned int n = 0;
	size_t off = 0;
	int ok;

	off = ac_put_u64(hdr, off, sizeof(hdr), (uint64_t)s->seq);
	off = ac_put_u64(hdr, off, sizeof(hdr), (uint64_t)s->xact_lo);
	off = ac_put_u64(hdr, off, sizeof(hdr), (uint64_t)s->xact_hi);
	off = ac_put_u64(hdr, off, sizeof(hdr), (uint64_t)s->nrows);
	off = ac_put_u64(hdr, off, sizeof(hdr), (uint64_t)s->first_at);
	off = ac_put_u64(hdr, off, sizeof(hdr), (uint64_t)s->last_at);
	ok = EVP_DigestUpdate(h->md, hdr, off) == 1 &&
	    EVP_DigestFinal_ex(h->md, out, &n) == 1 && n == CRYPTO_HASH_LEN;
	auditchain_hash_free(h);
	return ok ? 0 : -1;
}

void
auditchain_hash_free(struct auditchain_hash *h)
{
	if (h == NULL)
		return;
	EVP_MD_CTX_free(h->md);
	free(h);
}

void
auditchain_mac_msg(int64_t seq, int64_t xact_hi, int64_t nrows,
    const unsigned char hash[CRYPTO_HASH_LEN],
    unsigned char msg[AUDITCHAIN_MAC_MSG_LEN])
{
	size_t off = 0;

	off = ac_put_u64(msg, off, AUDITCHAIN_MAC_MSG_LEN, (uint64_t)seq);
	off = ac_put_u64(msg, off, AUDITCHAIN_MAC_MSG_LEN, (uint64_t)xact_hi);
	off = ac_put_u64(msg, off, AUDITCHAIN_MAC_MSG_LEN, (uint64_t)nrows);
	memcpy(msg + off, hash, CRYPTO_HASH_LEN);
}

int
auditchain_mac(const unsigned char key[CRYPTO_KEY_LEN],
    const unsigned char msg[AUDITCHAIN_MAC_MSG_LEN],
    unsigned char out[CRYPTO_MAC_LEN])
{
	unsigned char buf[4 + AUDITCHAIN_MAC_MSG_LEN];

	memcpy(buf, "KTM1", 4);
	memcpy(buf + 4, msg, AUDITCHAIN_MAC_MSG_LEN);
	return crypto_hmac_sha256(key, CRYPTO_KEY_LEN, buf, sizeof(buf), out);
}

int
auditchain_key(const unsigned char datakey[CRYPTO_KEY_LEN],
    unsigned char out[CRYPTO_KEY_LEN])
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kc = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM p[4];
	int ok;

	p[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	p[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	    (void *)datakey, CRYPTO_KEY_LEN);
	p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
	    (void *)AUDITCHAIN_KEY_LABEL, strlen(AUDITCHAIN_KEY_LABEL));
	p[3] = OSSL_PARAM_construct_end();
	ok = kc != NULL && EVP_KDF_derive(kc, out, CRYPTO_KEY_LEN, p) == 1;
	EVP_KDF_CTX_free(kc);
	EVP_KDF_free(kdf);
	if (!ok)
		OPENSSL_cleanse(out, CRYPTO_KEY_LEN);
	return ok ? 0 : -1;
}
