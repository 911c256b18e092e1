/*
 * pgpmsg.h - the OpenPGP messages of the clients' legacy (zTrustee)
 * protocol, read and written in this process without gpg and without the
 * server's private keys: every RSA private operation is a callback (the
 * server's asks its key process).
 *
 * Requests (reference/ztrustee-protocol.md section 3) arrive as a PKESK to
 * the server's key and a tag 9 Symmetrically Encrypted Data packet (no
 * integrity protection) or a tag 18 SEIPD with MDC; pgpmsg_decrypt returns
 * the packets inside as they are (ZLIB, one-pass signature, literal,
 * signature), for librnp to verify.  Answers (section 4) are a one-pass
 * signed literal packet (pgpmsg_sign), encrypted to the client
 * (pgpmsg_encrypt: a v3 PKESK and an AES-256 SEIPD with MDC), or a
 * detached signature (pgpmsg_detached) for json-sign.
 *
 * The module is in three files: pgpmsg_armor.c (armor, its own header for
 * pgpsig.c), pgpmsg_pubkey.c (public keys) and pgpmsg.c (messages).
 * Everything returns 0 (or a pointer) or -1 (NULL) with the reason in err,
 * which never holds key material.  Decrypted or signed plaintext is the
 * caller's to clear: OPENSSL_clear_free(p, len).
 */
#ifndef KT_PGPMSG_H
#define KT_PGPMSG_H

#include <stddef.h>
#include <time.h>

#include "pgpkey.h"
#include "pgpmsg_armor.h"
#include "pgpsig.h"

/* RFC 4880 5.2.3.21: key flags. */
#define PGPMSG_FLAG_CERTIFY 0x01
#define PGPMSG_FLAG_SIGN 0x02
#define PGPMSG_FLAG_ENCRYPT_COMMS 0x04
#define PGPMSG_FLAG_ENCRYPT_STORAGE 0x08
#define PGPMSG_FLAG_ENCRYPT (PGPMSG_FLAG_ENCRYPT_COMMS | \
	PGPMSG_FLAG_ENCRYPT_STORAGE)

/* The most subkeys a public key may have here. */
#define PGPMSG_SUBKEYS_MAX 32

/* One key of a transferable public key: its primary or a subkey. */
struct pgpmsg_key {
	struct pgpkey_public pub; /* fingerprint, key ID, RSA n and e */
	int flags;      /* key flags of its newest self-signature, -1: none */
	time_t expires; /* from the same signature; 0: never */
	int revoked;    /* a revocation signature was seen (not verified) */
};

struct pgpmsg_pubkey {
	struct pgpmsg_key primary;
	struct pgpmsg_key *subkeys;
	size_t nsubkeys;
	/*
	 * The key to encrypt to: the newest subkey whose binding signature
	 * flags it for encryption, neither revoked nor expired, else the
	 * primary; NULL when that cannot encrypt (sign-only, revoked,
	 * expired).
	 */
	const struct pgpmsg_key *encrypt;
};

/*
 * Read a transferable public key (binary; pgpmsg_dearmor first for the
 * armored form): v4 RSA keys only, one primary and its subkeys, user IDs
 * and signatures read for the key flags they carry but not verified
 * (librnp checks client keys at registration).  0 with *key, or -1.
 */
int pgpmsg_pubkey_parse(const unsigned char *bin, size_t len,
    struct pgpmsg_pubkey **key, char *err, size_t errlen);
void pgpmsg_pubkey_free(struct pgpmsg_pubkey *key);

/* Room the decryption callback has for its answer (the key process's). */
#define PGPMSG_DECRYPT_ROOM 4096

/*
 * The RSA PKCS#1 v1.5 decryption of a v3 PKESK's value ct (the MPI's
 * octets as sent, ctlen at most the modulus' size) by the key whose key ID
 * is keyid: the decrypted block (algorithm octet, session key, 2-octet
 * checksum) into out, *outlen its room (PGPMSG_DECRYPT_ROOM) on entry and
 * its length on return.  0, or -1 with err (a key ID that is not the
 * server's included).
 */
typedef int pgpmsg_decrypt_fn(void *arg,
    const unsigned char keyid[PGPKEY_KEYID_LEN], const unsigned char *ct,
    size_t ctlen, unsigned char *out, size_t *outlen, char *err,
    size_t errlen);

/*
 * Decrypt the binary message msg: its first PKESK (v3, RSA) whose key ID
 * decrypt accepts gives the session key (AES-128, -192 or -256, checksum
 * checked); then a tag 9 packet (OpenPGP CFB with the resync) or a tag 18
 * SEIPD v1 (CFB, the MDC checked), definite, partial or (old format)
 * indeterminate lengths, the quick-check octets checked.  *plain
 * (malloc'd, *plainlen octets) is the packet stream inside, as it is;
 * *integrity is 1 when an MDC protected it, 0 for tag 9 (whose plaintext
 * only a signature inside can vouch for).
 */
int pgpmsg_decrypt(const unsigned char *msg, size_t len,
    pgpmsg_decrypt_fn *decrypt, void *arg, unsigned char **plain,
    size_t *plainlen, int *integrity, char *err, size_t errlen);

/* pgpmsg_sign's flags. */
#define PGPMSG_ZLIB 0x01 /* one ZLIB compressed packet around it all */

/*
 * The signed message of data: a one-pass signature packet (binary,
 * SHA-512, RSA, the key ID of fpr), a literal packet (mode 'b', no file
 * name, date created) and the v4 signature (pgpsig_packet: hashed
 * creation time and issuer fingerprint, unhashed issuer key ID), the
 * digest signed by sign; with PGPMSG_ZLIB, compressed.  *packets is
 * malloc'd (*plen octets): the plaintext of pgpmsg_encrypt.
 */
int pgpmsg_sign(const unsigned char *data, size_t len,
    const unsigned char fpr[PGPKEY_FPR_LEN], time_t created, int flags,
    pgpsig_sign_fn *sign, void *arg, unsigned char **packets, size_t *plen,
    char *err, size_t errlen);

/*
 * Encrypt packets to key->encrypt: a v3 PKESK (RSA PKCS#1 v1.5, through
 * OpenSSL) and a SEIPD v1 packet (AES-256 CFB, MDC), a fresh session key
 * each time.  *msg is malloc'd (*msglen octets), binary.
 */
int pgpmsg_encrypt(const unsigned char *packets, size_t len,
    const struct pgpmsg_pubkey *key, unsigned char **msg, size_t *msglen,
    char *err, size_t errlen);

/*
 * A detached v4 signature of type binary (0x00), SHA-512, over data (the
 * json-sign protocol's payload_sig, once armored as a SIGNATURE): one
 * signature packet, malloc'd into *sig (*siglen octets).
 */
int pgpmsg_detached(const unsigned char *data, size_t len,
    const unsigned char fpr[PGPKEY_FPR_LEN], time_t created,
    pgpsig_sign_fn *sign, void *arg, unsigned char **sig, size_t *siglen,
    char *err, size_t errlen);

#endif
