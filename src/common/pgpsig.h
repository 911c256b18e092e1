/*
 * pgpsig.h - OpenPGP v4 signature packets and cleartext signatures (RFC
 * 4880 sections 5.2 and 7) built in this process around a signature made
 * elsewhere: the data is canonicalised and hashed here, and only the
 * digest goes to the signer (the server's key process), which returns the
 * RSA signature.  pgpmsg.c builds its signed messages on pgpsig_packet.
 */
#ifndef KT_PGPSIG_H
#define KT_PGPSIG_H

#include <openssl/evp.h>
#include <stddef.h>
#include <time.h>

#include "pgpkey.h"

/* Room a signer's answer needs: an RSA signature of up to 16384 bits. */
#define PGPSIG_SIG_MAX 2048

/* RFC 4880 5.2.1: the signature types written here. */
#define PGPSIG_TYPE_BINARY 0x00
#define PGPSIG_TYPE_TEXT 0x01
/*
 * A signature packet as pgpsig_packet writes it: the header (6), version ..
 * hashed subpackets (6 + 23 + 6), unhashed issuer (2 + 10), the left 16
 * bits of the digest (2) and the MPI (2 + the signature).
 */
#define PGPSIG_PACKET_MAX (6 + 35 + 12 + 2 + 2 + PGPSIG_SIG_MAX)

/*
 * Sign digest (of the OpenPGP hash algorithm hashalgo) with the RSA key
 * whose fingerprint was given, PKCS#1 v1.5 with the DigestInfo: the
 * signature (modulus-sized, at most PGPSIG_SIG_MAX bytes) into sig.
 * 0, or -1 with err.
 */
typedef int pgpsig_sign_fn(void *arg, int hashalgo,
    const unsigned char *digest, size_t dlen, unsigned char *sig,
    size_t *siglen, char *err, size_t errlen);

/*
 * The v4 signature packet (RFC 4880 5.2.3), header included, of type
 * sigtype over what md has hashed so far (a context of hashalgo's digest,
 * which this completes and finishes): hashed issuer-fingerprint and
 * creation-time subpackets, an unhashed issuer key ID, the digest signed
 * by sign.  pkt has room for PGPSIG_PACKET_MAX octets.  Its length, or 0
 * with err.
 */
size_t pgpsig_packet(EVP_MD_CTX *md, int sigtype, int hashalgo,
    const unsigned char fpr[PGPKEY_FPR_LEN], time_t created,
    pgpsig_sign_fn *sign, void *arg, unsigned char *pkt, char *err,
    size_t errlen);

/*
 * Clear-sign text as gpg --clearsign does: "Hash: SHA256", the text with
 * trailing blanks cut from each line and lines that start with '-' or
 * "From " dash-escaped, then the armored (CRC24) v4 signature packet of
 * type 0x01 (canonical text: lines joined by CRLF, the last line ending
 * not signed) with hashed issuer-fingerprint and creation-time subpackets
 * and an unhashed issuer key ID.  *out is malloc'd and NUL-terminated.
 * 0, or -1 with err.
 */
int pgpsig_clearsign(const char *text, size_t len,
    const unsigned char fpr[PGPKEY_FPR_LEN], time_t created,
    pgpsig_sign_fn *sign, void *arg, char **out, size_t *outlen, char *err,
    size_t errlen);

#endif
