/*
 * keytrustee.h - libkeytrustee: a Key Trustee client library.
 *
 * A client owns a config dir (default $HOME/.keytrustee, mode 0700) that is
 * also its GnuPG home.  It holds:
 *   keytrustee.conf   JSON, 0600: LOCAL_FINGERPRINT, SERVER, PASSIVE_SERVER,
 *                     ORG, SECRET (the request-signing secret, hex), STATE,
 *                     SSL_INSECURE, CACERT.  The file is the credential.
 *   cache/<uuid>      JSON, 0600: {uuid, name, description, content} where
 *                     content is the base64 of the OpenPGP ciphertext.
 *   the client's OpenPGP key (RSA 3072: generated on first register; 3072
 *   rather than 4096 because generation and decryption are several times
 *   faster and 3072 bits is still ~128-bit security).
 *
 * Deposits are encrypted to the client's own OpenPGP key before they leave
 * the process; the server only ever sees ciphertext.
 *
 * Every function returning int returns KT_OK (0) on success or a negative
 * KT_E* code; the message (and, for server errors, the server's error code
 * and HTTP status) is then available from kt_client_error() and friends until
 * the next call on the same client.  A client is not thread-safe; use one per
 * thread.
 */
#ifndef KEYTRUSTEE_H
#define KEYTRUSTEE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum kt_status {
	KT_OK = 0,
	KT_ERR = -1,         /* anything else (local I/O, OpenPGP, memory) */
	KT_ENOTREG = -2,     /* no keytrustee.conf: run register first */
	KT_EPENDING = -3,    /* the server holds this client as pending */
	KT_ENOTFOUND = -4,   /* no such deposit */
	KT_ESERVER = -5,     /* the server answered with an error (see code) */
	KT_ENET = -6,        /* no server could be reached (or all gave 5xx) */
	KT_EPERM = -7,       /* a conf or cache file is open to group/others */
	KT_EINVAL = -8,      /* bad argument */
	KT_EDISABLED = -9,   /* the server has disabled this client */
	KT_EUNAUTH = -10,    /* the server rejected our signature (401) */
};

/*
 * What libkeytrustee exports: it is built with -fvisibility=hidden, and the
 * functions declared here with KT_EXPORT are its whole public interface.
 */
#if defined(__GNUC__) && __GNUC__ >= 4
#define KT_EXPORT __attribute__((visibility("default")))
#else
#define KT_EXPORT
#endif

struct kt_client;

/* What kt_list returns, one per deposit. */
struct kt_deposit_info {
	char *uuid;
	char *name;
	char *description;   /* "" when none */
	char *created;       /* as the server wrote it */
};

struct kt_register_opts {
	const char *server;          /* https://host:port, required */
	const char *passive_server;  /* optional, read fail-over */
	const char *org;             /* required */
	const char *auth;            /* org auth secret; NULL = not given */
	const char *hostname;        /* NULL = gethostname() */
	const char *cacert;          /* CA file to verify the server; NULL */
	int ssl_insecure;            /* 1 = do not verify TLS (testing only) */
};

/* Flags for kt_get/kt_get_by_name. */
#define KT_GET_NO_CACHE 0x1  /* never fall back to (or fill) the cache */

/* Where kt_get found the content. */
enum kt_source { KT_SRC_ACTIVE, KT_SRC_PASSIVE, KT_SRC_CACHE };

/* The default config dir, $HOME/.keytrustee, into buf; KT_EINVAL when HOME
 * is unset or too long. */
KT_EXPORT int kt_default_confdir(char *buf, size_t len);

/*
 * Open a client over confdir (NULL = $HOME/.keytrustee).  Reads
 * keytrustee.conf when present; a missing file is not an error here (the
 * client is simply unregistered), a file open to group/others is (KT_EPERM).
 * On error *out still receives a client (for kt_client_error) unless memory
 * ran out; free it with kt_client_free.
 */
KT_EXPORT int kt_client_open(const char *confdir, struct kt_client **out);
KT_EXPORT void kt_client_free(struct kt_client *c);

/* The last error: message, server error code (or NULL), HTTP status (or 0). */
KT_EXPORT const char *kt_client_error(const struct kt_client *c);
KT_EXPORT const char *kt_client_error_code(const struct kt_client *c);
KT_EXPORT int kt_client_http_status(const struct kt_client *c);

/* Accessors (NULL when not registered); the fingerprint is "3072R/<hex>",
 * the state "active" or "pending". */
KT_EXPORT const char *kt_client_confdir(const struct kt_client *c);
KT_EXPORT const char *kt_client_fingerprint(const struct kt_client *c);
KT_EXPORT const char *kt_client_server(const struct kt_client *c);
KT_EXPORT const char *kt_client_state(const struct kt_client *c);
KT_EXPORT int kt_client_registered(const struct kt_client *c);

/*
 * Register with a server: make the OpenPGP key if there is none, send the
 * public key, decrypt the signing secret the server returns, and write
 * keytrustee.conf.  The new state (active or pending) is then available
 * from kt_client_state().  A pending client is registered, but the server
 * refuses its requests (KT_EPENDING) until an org admin enables it.
 */
KT_EXPORT int kt_register(
    struct kt_client *c, const struct kt_register_opts *o);

/* Encrypt data to our key, store it; *uuid (malloc'd) names the deposit. */
KT_EXPORT int kt_put(struct kt_client *c, const char *name,
    const char *description, const void *data, size_t len, char **uuid);

/*
 * Fetch and decrypt a deposit into *data (malloc'd, *len bytes, NUL added
 * after the end).  Reads go to SERVER, then to PASSIVE_SERVER when it gives
 * no answer (refused, reset, cut short, nothing within the conf's TIMEOUT)
 * or a 5xx, in up to three rounds a short pause apart, then to the cache
 * unless KT_GET_NO_CACHE.  *src (may be NULL) says which answered.  A 404
 * from the server drops the cache entry.
 */
KT_EXPORT int kt_get(struct kt_client *c, const char *uuid, int flags,
    unsigned char **data, size_t *len, enum kt_source *src);
/* The same by name: the newest deposit with that name. */
KT_EXPORT int kt_get_by_name(struct kt_client *c, const char *name, int flags,
    unsigned char **data, size_t *len, enum kt_source *src);

/* List our deposits (all when name is NULL). */
KT_EXPORT int kt_list(struct kt_client *c, const char *name,
    struct kt_deposit_info **items, size_t *n);
KT_EXPORT void kt_deposit_info_free(struct kt_deposit_info *items, size_t n);

/* Delete a deposit on the server and its cache entry. */
KT_EXPORT int kt_delete(struct kt_client *c, const char *uuid);

/* Stop the gpg-agent GnuPG started for this client's home (for tests). */
KT_EXPORT void kt_client_kill_agent(struct kt_client *c);

#ifdef __cplusplus
}
#endif

#endif
