/* cert.h - the self-signed certificate ktadmin init makes. */
#ifndef KTADMIN_CERT_H
#define KTADMIN_CERT_H

#include <stddef.h>

enum cert_keytype { CERT_KEY_ECDSA, CERT_KEY_RSA };

/* Write a new key (0600) and a self-signed certificate for hostname. */
int cert_make_selfsigned(const char *certpath, const char *keypath,
    const char *hostname, enum cert_keytype type, char *err, size_t errlen);

#endif
