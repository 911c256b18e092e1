/* pgp.h - the OpenPGP operations keytrustee needs, through GPGME. */
#ifndef KT_PGP_H
#define KT_PGP_H

#include <gpgme.h>
#include <stddef.h>

#define PGP_FPR_LEN 40

/* A key as the guide prints it: "4096R/<40 upper-case hex>". */
#define PGP_QFPR_MAX 64

/*
 * A fingerprint as given: 40 hex digits (either case), alone or after
 * "<bits><letter>/" as the guide prints a key; its 40 hex digits
 * upper-case into out.  0, or -1 for anything else.
 */
int pgp_fpr_parse(const char *in, char out[PGP_FPR_LEN + 1]);

int pgp_init(void);
/*
 * A GPGME context on the GnuPG home homedir, loopback pinentry (never a
 * prompt), ASCII armor when armor is 1.
 */
gpgme_ctx_t pgp_ctx_new(const char *homedir, int armor, char *err,
    size_t errlen);
/*
 * The first secret key in homedir.  Returns 0 and fills fpr (upper-case
 * hex) and qfpr ("4096R/...") when found, 1 when there is none, -1 on error.
 */
int pgp_secret_key(const char *homedir, char fpr[PGP_FPR_LEN + 1],
    char qfpr[PGP_QFPR_MAX], char *err, size_t errlen);
/*
 * Make an RSA key pair: a sign+certify primary (that also encrypts when
 * primary_encrypts: the legacy clients encrypt to the server's primary)
 * and an encryption subkey.
 */
int pgp_genkey(const char *homedir, const char *uid, unsigned bits,
    int primary_encrypts, char *err, size_t errlen);
/*
 * The armored public key of fpr, with its self-signatures only (GnuPG's
 * export-minimal: the legacy clients refuse a server key that carries a
 * third-party certification).
 */
int pgp_export_pubkey(const char *homedir, const char *fpr, char **armored,
    size_t *len, char *err, size_t errlen);
/*
 * Import one armored public key into homedir.  Fills fpr (upper-case hex)
 * with the key's fingerprint.  Refuses (-1) data holding no key, several
 * keys, or secret key material (which is deleted again), and a key that
 * cannot encrypt.
 */
int pgp_import_pubkey(const char *homedir, const char *armored, size_t len,
    char fpr[PGP_FPR_LEN + 1], char *err, size_t errlen);
/* Encrypt data to the key fpr in homedir (trusted as is): armored message. */
int pgp_encrypt(const char *homedir, const char *fpr, const void *data,
    size_t len, char **armored, size_t *outlen, char *err, size_t errlen);
/*
 * Clear-sign text with the secret key fpr of homedir (through gpg-agent):
 * the armored "BEGIN PGP SIGNED MESSAGE" text, malloc'd.
 */
int pgp_clearsign(const char *homedir, const char *fpr, const void *text,
    size_t len, char **signed_text, size_t *outlen, char *err, size_t errlen);
/*
 * Decrypt a message with a secret key in homedir (through gpg-agent).  The
 * plaintext is malloc'd; clear it (freezero) when done.
 */
int pgp_decrypt(const char *homedir, const void *msg, size_t len,
    unsigned char **out, size_t *outlen, char *err, size_t errlen);
/*
 * The binary transferable secret key fpr of homedir (gpg
 * --export-secret-keys, loopback pinentry: a key without a passphrase is
 * exported unprotected), malloc'd: clear it (freezero) when done.  encfpr
 * gets the fingerprint of its first usable encryption subkey.
 */
int pgp_export_secret(const char *homedir, const char *fpr,
    char encfpr[PGP_FPR_LEN + 1], unsigned char **out, size_t *outlen,
    char *err, size_t errlen);
/* Stop what GnuPG started for homedir (gpgconf --kill all). */
void pgp_kill_agent(const char *homedir);

#endif
