/*
 * pgpkey.h - OpenPGP (RFC 4880) packets as the server needs them outside
 * GnuPG: reading its own unprotected secret keys into OpenSSL (the key
 * process), v4 fingerprints, MPIs and the hash algorithm numbers.
 */
#ifndef KT_PGPKEY_H
#define KT_PGPKEY_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#define PGPKEY_FPR_LEN 20   /* a v4 fingerprint, in bytes */
#define PGPKEY_KEYID_LEN 8

/* RFC 4880 9.1 and 9.4. */
#define PGPKEY_PK_RSA 1
#define PGPKEY_HASH_SHA256 8
#define PGPKEY_HASH_SHA384 9
#define PGPKEY_HASH_SHA512 10
#define PGPKEY_HASH_SHA224 11

/* The OpenSSL digest of an OpenPGP hash algorithm number, or NULL. */
const EVP_MD *pgpkey_md(int hashalgo);

/*
 * Read the packet header at buf: 0 with the tag, the header length and the
 * body length; -1 when it is not a well-formed header of a body that fits
 * in len (partial lengths are refused: keys never use them).
 */
int pgpkey_packet(const unsigned char *buf, size_t len, int *tag,
    size_t *hdrlen, size_t *bodylen);

/* A new-format packet header for tag and bodylen into hdr (6 bytes room). */
size_t pgpkey_header(int tag, size_t bodylen, unsigned char hdr[6]);

/*
 * The two secret keys of the server's transferable secret key (the binary
 * output of gpg --export-secret-keys): the primary, which signs, and the
 * subkey whose fingerprint is enc_fpr (40 hex digits), which decrypts.
 * Both must be RSA and unprotected (ktadmin init makes them without a
 * passphrase), their checksums right.  fpr gets the primary's fingerprint.
 * 0, or -1 with the reason in err (never a key's value).
 */
int pgpkey_read_secret(const unsigned char *buf, size_t len,
    const char *enc_fpr, EVP_PKEY **sign, EVP_PKEY **decrypt,
    unsigned char fpr[PGPKEY_FPR_LEN], char *err, size_t errlen);

/* The CRC-24 of ASCII armor (RFC 4880 6.1). */
uint32_t pgpkey_crc24(const unsigned char *data, size_t len);

/* 40 hex digits (either case) into a fingerprint: 0, or -1. */
int pgpkey_fpr_from_hex(const char *hex, unsigned char fpr[PGPKEY_FPR_LEN]);

#endif
