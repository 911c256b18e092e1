/* kt-int.h - libkeytrustee internals shared between its files. */
#ifndef KT_INT_H
#define KT_INT_H

#include <stddef.h>

#include "keytrustee.h"

#define KT_CLIENT_CONF "keytrustee.conf"
#define KT_CLIENT_KEY_BITS 3072
#define KT_SECRET_LEN 32
#define KT_ERRLEN 1024

struct kt_client {
	char *confdir;
	char *confpath;
	/* keytrustee.conf */
	char *local_fingerprint;  /* "3072R/<40 hex>" */
	char fpr[41];             /* the 40 hex alone */
	char *server;
	char *passive_server;
	char *org;
	char *secret_hex;         /* 64 hex; cleared on free */
	char *state;
	int ssl_insecure;
	char *cacert;
	int timeout;              /* TIMEOUT (seconds); 0: KT_READ_TIMEOUT */
	int registered;
	/* last error */
	char err[KT_ERRLEN];
	char *err_code;
	int http_status;
};

struct kt_resp {
	long status;        /* 0 when no answer */
	int net_failed;     /* connection/TLS failure: curl's message in err */
	char *body;         /* NUL-terminated */
	size_t len;
};

/* kt-error.c */
void kt_seterr(struct kt_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void kt_clearerr(struct kt_client *c);

/* kt-client.c */
int kt_conf_save(struct kt_client *c);
/* Refuse a file open to group/others: KT_EPERM with the modes. */
int kt_file_mode_ok(struct kt_client *c, const char *path);

/* kt-http.c */
#define KT_READ_TIMEOUT 10   /* seconds: TIMEOUT's default */
#define KT_TIMEOUT_MAX 3600
#define KT_HTTP_SIGN 0x1     /* sign with the client's secret */
#define KT_HTTP_READ 0x2     /* a read: give up on a stalled server after
				TIMEOUT, the next one may answer */
int kt_http_init(void);
/*
 * One request to base + target, as flags say.  Returns 0 when an answer
 * came back (any status) or on network failure (r->net_failed set); -1 on
 * a local error (message in c).
 */
int kt_http(struct kt_client *c, const char *base, const char *method,
    const char *target, const char *body, size_t bodylen, int flags,
    struct kt_resp *r);
/*
 * Did this request fail in a way another server (or a later try) may not:
 * no answer at all (refused, reset, EOF mid-answer, TLS failure, timeout)
 * or a 5xx?  The one place a read decides to go on.
 */
int kt_resp_failover(const struct kt_resp *r);
void kt_resp_free(struct kt_resp *r);
/* Map an error answer to a KT_E* code and a message (uses the JSON body). */
int kt_http_error(struct kt_client *c, const char *what, struct kt_resp *r);
int kt_sign(const char *secret_hex, const char *method, const char *target,
    const char *ts, const void *body, size_t bodylen, char sig[65]);

/* kt-crypto.c */
int kt_pgp_ensure_key(struct kt_client *c, const char *hostname);
int kt_pgp_encrypt(struct kt_client *c, const void *in, size_t inlen,
    unsigned char **out, size_t *outlen);
int kt_pgp_decrypt(struct kt_client *c, const void *in, size_t inlen,
    unsigned char **out, size_t *outlen);

/* kt-cache.c */
int kt_cache_put(struct kt_client *c, const char *uuid, const char *name,
    const char *description, const char *content_b64);
/* 0 found (*content_b64 malloc'd), 1 not cached, <0 error. */
int kt_cache_get(struct kt_client *c, const char *uuid, char **content_b64);
/* Newest-written entry named name: 0 found (*uuid, *content malloc'd), 1 no. */
int kt_cache_find_name(struct kt_client *c, const char *name, char **uuid,
    char **content_b64);
void kt_cache_remove(struct kt_client *c, const char *uuid);
int kt_uuid_ok(const char *uuid);

#endif
