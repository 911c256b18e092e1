/*
 * pgpsig.h - OpenPGP cleartext signatures (RFC 4880 section 7) built in
 * this process around a signature made elsewhere: the text is
 * canonicalised and hashed here, and only the digest goes to the signer
 * (the server's key process), which returns the RSA signature.
 */
#ifndef KT_PGPSIG_H
#define KT_PGPSIG_H

#include <stddef.h>
#include <time.h>

#include "pgpkey.h"

/* Room a signer's answer needs: an RSA signature of up to 16384 bits. */
#define PGPSIG_SIG_MAX 2048

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
