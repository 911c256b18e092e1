/*
 * datakey.h - the server's data key: 32 random bytes that seal deposits and
 * client secrets at rest (AES-256-GCM), kept in CONFDIR/datakey.gpg
 * encrypted to the server's own OpenPGP key.
 */
#ifndef KT_DATAKEY_H
#define KT_DATAKEY_H

#include <stddef.h>

#include "crypto.h"

#define DATAKEY_FILE "datakey.gpg"

/*
 * Make CONFDIR/datakey.gpg (mode 0600) encrypted to the OpenPGP key fpr of
 * the GnuPG home confdir.  Returns 0 when made, 1 when one exists already
 * (it is kept), -1 with the reason in err.
 */
int datakey_create(const char *confdir, const char *fpr, char *err,
    size_t errlen);

/*
 * Decrypt CONFDIR/datakey.gpg with the server's secret key (gpg-agent).
 * Returns 0, 1 when the file is missing, -1 with the reason in err.
 */
int datakey_load(const char *confdir, unsigned char key[CRYPTO_KEY_LEN],
    char *err, size_t errlen);

#endif
