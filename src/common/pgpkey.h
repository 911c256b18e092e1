/*
 * pgpkey.h - OpenPGP (RFC 4880) packets as the server needs them outside
 * GnuPG: reading its own unprotected secret keys into OpenSSL (the key
 * process) and public keys (pgpmsg.c), packet headers, v4 fingerprints,
 * MPIs and the hash algorithm numbers.
 */
#ifndef KT_PGPKEY_H
#define KT_PGPKEY_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#define PGPKEY_FPR_LEN 20   /* a v4 fingerprint, in bytes */
#define PGPKEY_KEYID_LEN 8

/* RSA n of up to 16384 bits: the largest GnuPG makes. */
#define PGPKEY_MPI_MAX 2048

/* Packet tags (RFC 4880 4.3). */
#define PGPKEY_TAG_PKESK 1
#define PGPKEY_TAG_SIG 2
#define PGPKEY_TAG_SKESK 3
#define PGPKEY_TAG_ONEPASS 4
#define PGPKEY_TAG_SECKEY 5
#define PGPKEY_TAG_PUBKEY 6
#define PGPKEY_TAG_SECSUBKEY 7
#define PGPKEY_TAG_COMPRESSED 8
#define PGPKEY_TAG_SED 9
#define PGPKEY_TAG_MARKER 10
#define PGPKEY_TAG_LITERAL 11
#define PGPKEY_TAG_TRUST 12
#define PGPKEY_TAG_UID 13
#define PGPKEY_TAG_PUBSUBKEY 14
#define PGPKEY_TAG_UATTR 17
#define PGPKEY_TAG_SEIPD 18

/* RFC 4880 9.1 and 9.4. */
#define PGPKEY_PK_RSA 1
#define PGPKEY_PK_RSA_E 2 /* encrypt-only (deprecated, still read) */
#define PGPKEY_PK_RSA_S 3 /* sign-only (deprecated, still read) */
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

/* How a packet's body is delimited (RFC 4880 4.2). */
#define PGPKEY_LEN_DEFINITE 0 /* *bodylen is the whole body */
#define PGPKEY_LEN_PARTIAL 1  /* a first part; pgpkey_length reads on */
#define PGPKEY_LEN_OPEN 2     /* old format: the body runs to the end */

/*
 * pgpkey_packet for a packet that may be streamed (encrypted, compressed
 * and literal data): a partial body length (new format) or an
 * indeterminate one (old format) is accepted too, *more saying which.
 * With PGPKEY_LEN_OPEN, *bodylen is what is left of buf.
 */
int pgpkey_packet_start(const unsigned char *buf, size_t len, int *tag,
    size_t *hdrlen, size_t *bodylen, int *more);

/*
 * The new-format body length at buf (RFC 4880 4.2.2): 0 with the octets it
 * takes, the length and *more (PGPKEY_LEN_DEFINITE, or PGPKEY_LEN_PARTIAL
 * when another part follows); -1 when buf is too short for it.
 */
int pgpkey_length(const unsigned char *buf, size_t len, size_t *lenlen,
    size_t *bodylen, int *more);

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

/*
 * One MPI at *p, advanced past it: its n octets of value at *val, as
 * written (n > 0, at most PGPKEY_MPI_MAX); -1 when malformed.
 */
int pgpkey_mpi_read(const unsigned char **p, const unsigned char *end,
    const unsigned char **val, size_t *n);

/*
 * The big-endian number v (n > 0 octets) as an MPI into out (room n + 2):
 * leading zero octets dropped, the exact bit count.  Its length.
 */
size_t pgpkey_mpi_write(const unsigned char *v, size_t n, unsigned char *out);

/* The v4 fingerprint of the public key packet body pub (publen octets). */
int pgpkey_fpr(const unsigned char *pub, size_t publen,
    unsigned char fpr[PGPKEY_FPR_LEN]);

/* A public key (or subkey) packet, as pgpkey_read_public reads it. */
struct pgpkey_public {
	unsigned char fpr[PGPKEY_FPR_LEN];
	unsigned char keyid[PGPKEY_KEYID_LEN]; /* the fingerprint's tail */
	int algo;                              /* 1, 2 or 3: RSA */
	uint32_t created;
	EVP_PKEY *pkey;                        /* n and e */
};

/*
 * A v4 RSA public key packet's body into pub (pub->pkey to be freed with
 * EVP_PKEY_free).  0, or -1 with err: not version 4, not RSA (the
 * algorithm named), malformed.
 */
int pgpkey_read_public(const unsigned char *body, size_t len,
    struct pgpkey_public *pub, char *err, size_t errlen);

/* The CRC-24 of ASCII armor (RFC 4880 6.1). */
uint32_t pgpkey_crc24(const unsigned char *data, size_t len);

/* 40 hex digits (either case) into a fingerprint: 0, or -1. */
int pgpkey_fpr_from_hex(const char *hex, unsigned char fpr[PGPKEY_FPR_LEN]);

#endif
