/*
 * crypto.h - the symmetric primitives keytrustee needs, over OpenSSL 3's
 * EVP: AES-256-GCM sealing, HMAC-SHA256, SHA-256, strict base64, hex,
 * constant-time comparison and random identifiers.
 */
#ifndef KT_CRYPTO_H
#define KT_CRYPTO_H

#include <stddef.h>

#define CRYPTO_KEY_LEN 32    /* AES-256 */
#define CRYPTO_NONCE_LEN 12  /* GCM's 96-bit IV */
#define CRYPTO_TAG_LEN 16
#define CRYPTO_MAC_LEN 32    /* HMAC-SHA256 */
#define CRYPTO_HASH_LEN 32   /* SHA-256 */
#define CRYPTO_UUID_LEN 36   /* "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" */

/* The reason of OpenSSL's last error, for a message ("unknown error"). */
const char *crypto_ssl_reason(void);

/* Fetch the algorithms once (optional: every function does it lazily). */
int crypto_init(void);

/* RAND_bytes; -1 when the generator fails. */
int crypto_random(void *buf, size_t len);

/*
 * AES-256-GCM.  seal: a fresh random nonce into nonce, ciphertext || tag
 * (ptlen + CRYPTO_TAG_LEN bytes) into out.  open: inlen includes the tag;
 * out gets inlen - CRYPTO_TAG_LEN bytes.  open returns -1 when the tag does
 * not verify (nothing of out may then be used; it is cleared).
 */
int crypto_seal(const unsigned char key[CRYPTO_KEY_LEN], const void *aad,
    size_t aadlen, const void *pt, size_t ptlen,
    unsigned char nonce[CRYPTO_NONCE_LEN], unsigned char *out);
int crypto_open(const unsigned char key[CRYPTO_KEY_LEN], const void *aad,
    size_t aadlen, const unsigned char nonce[CRYPTO_NONCE_LEN],
    const unsigned char *in, size_t inlen, unsigned char *out);

int crypto_hmac_sha256(const void *key, size_t keylen, const void *data,
    size_t len, unsigned char out[CRYPTO_MAC_LEN]);
int crypto_sha256(const void *data, size_t len,
    unsigned char out[CRYPTO_HASH_LEN]);
/* Lower-case hex of SHA-256(data). */
int crypto_sha256_hex(const void *data, size_t len,
    char out[2 * CRYPTO_HASH_LEN + 1]);

/*
 * The KT1-HMAC-SHA256 request MAC of DESIGN.md section 3, the one
 * definition the server checks and the client signs with:
 * HMAC-SHA256(secret, METHOD "\n" TARGET "\n" TS "\n" hex(SHA-256(body))).
 */
int crypto_kt1_mac(const void *secret, size_t secretlen, const char *method,
    const char *target, const char *ts, const void *body, size_t bodylen,
    unsigned char out[CRYPTO_MAC_LEN]);

/* 1 when equal, in time independent of the contents. */
int crypto_memeq(const void *a, const void *b, size_t len);

/* Standard base64 with padding, no newlines; malloc'd, NUL-terminated. */
char *crypto_b64_encode(const void *in, size_t len);
/* The same into out (room for (len + 2) / 3 * 4, no NUL); its length. */
size_t crypto_b64_encode_into(const void *in, size_t len, char *out);
/*
 * Strict decoding: only the standard alphabet, length a multiple of 4,
 * '=' only as final padding, unused bits zero.  Returns 0 with a malloc'd
 * buffer (NUL-terminated for convenience) or -1.  maxout bounds the result.
 */
int crypto_b64_decode(const char *in, size_t inlen, size_t maxout,
    unsigned char **out, size_t *outlen);

/* Exactly 2*len hex digits (either case) into len bytes; -1 otherwise. */
int crypto_hex_decode(const char *in, size_t inlen, unsigned char *out,
    size_t len);

/* A random (version 4) UUID, lower case. */
int crypto_uuid4(char out[CRYPTO_UUID_LEN + 1]);
/*
 * n random letters and digits (unbiased) and a NUL into out: the
 * organization uuids and the contact link tokens.
 */
int crypto_alnum(char *out, size_t n);
/* 1 when s is a canonical lower-case UUID text (36 chars, 8-4-4-4-12). */
int crypto_uuid_ok(const char *s);

#endif
