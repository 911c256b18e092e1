/*
 * legacy.h - the clients' legacy protocol (zTrustee / KTS; docs/legacy.md):
 * POST /?a=ACTION and POST /?d=URL.  legacy.c reads a request (the form,
 * the payload decrypted and its signature verified, the client, its token)
 * and writes the answer in the client's protocol; each action is a struct
 * legacy_part (legacy_clients.c, legacy_deposits.c) that route.c's table
 * hands to legacy_action as its argument.
 */
#ifndef KT_LEGACY_H
#define KT_LEGACY_H

#include <jansson.h>
#include <limits.h>

struct evkeyvalq;

#include "handler.h"
#include "http.h"
#include "legacy_pool.h"
#include "store/store.h"
#include "verdict.h"

/*
 * A request's answer, made in a legacy thread (legacy_pool.c) and sent by
 * the worker whose connection it came on: a refusal (is_verdict, v), or
 * status, ctype and body (malloc'd) with Retry-After when retry_after.
 */
struct legacy_out {
	int is_verdict;
	struct verdict v;
	int status;
	const char *ctype;
	char *body;
	size_t len;
	int retry_after;
};

/*
 * A request handed to a legacy thread: what it needs of the HTTP request,
 * copied (the worker goes on serving its other connections), and its
 * answer.  legacy_pool.c queues it and hands it back.
 */
struct legacy_job {
	struct pool_job job;  /* first: job.w's connection gets the answer */
	struct http_req *req; /* touched only in job.w's thread */
	const struct legacy_part *part;
	char *url, *ctype, *peer;
	unsigned char *body; /* NUL-terminated */
	size_t len;
	struct legacy_out out;
};

/* A request as its action sees it. */
struct legacy_req {
	struct worker *w; /* its thread's context: store, keys, server */
	struct legacy_out *out;
	const char *ctype;
	const unsigned char *body; /* NUL-terminated */
	size_t len;
	const struct legacy_part *part;
	const char *url; /* POST /?d=URL: the url */
	struct evkeyvalq *form;	 /* the request's form fields */
	json_t *data;		 /* the signed JSON (NULL for register) */
	struct legacy_client c;	 /* the client who signed it */
	const char *peer;
};

/* What a part needs of its request. */
#define LEGACY_CLEAR 0x01    /* its fields in the clear (register) */
#define LEGACY_ENCRYPT 0x02  /* always json-encrypt, whatever the client's */
#define LEGACY_ANY_STATE 0x04 /* an unverified client may ask (verify) */
#define LEGACY_VERIFIED 0x08 /* a verified client may ask (activation) */
#define LEGACY_WRITE 0x10    /* it writes: the HA gate */

struct legacy_part {
	const char *name;
	unsigned flags;
	/*
	 * Do it: 0 with the answer's data (*ans, a JSON object; its HTTP
	 * status in *status, 200 unless set), or -1 with v refusing.
	 */
	int (*run)(struct legacy_req *r, json_t **ans, int *status,
	    struct verdict *v);
};

handler_fn legacy_action; /* POST /?a=ACTION: m->arg is its part */
handler_fn legacy_url;	  /* POST /?d=URL */

/* The parts (route.c's table names them). */
extern const struct legacy_part legacy_register, legacy_verify,
    legacy_activation, legacy_put, legacy_request, legacy_get, legacy_search,
    legacy_pending, legacy_authorize, legacy_deny, legacy_enable,
    legacy_disable, legacy_purge, legacy_entropy, legacy_unknown;

/* ---- for the parts ------------------------------------------------------ */

/*
 * A member of the request's data: a string (or NULL when absent or null
 * and optional), an integer (dflt when absent or null, unless
 * LEGACY_REQUIRED), a boolean (also "true"/"false", "1"/"0"): 0, or -1
 * with v refusing (400, naming it).
 */
#define LEGACY_REQUIRED LLONG_MIN
int legacy_str(struct legacy_req *r, const char *key, int optional,
    const char **out, struct verdict *v);
int legacy_int(struct legacy_req *r, const char *key, long long min,
    long long max, long long dflt, long long *out, struct verdict *v);
int legacy_bool(struct legacy_req *r, const char *key, int dflt, int *out,
    struct verdict *v);
/*
 * data signed by the server and encrypted to the armored public key
 * pubkey: an armored OpenPGP message (malloc'd), or NULL with err.
 */
char *legacy_message(struct legacy_req *r, const char *pubkey,
    const char *data, size_t len, char *err, size_t errlen);
/*
 * A store result that is not STORE_OK as the client sees it: -1 with v
 * refusing (404 "no such <what>", 503 no standby, 500 integrity or the
 * database down).
 */
int legacy_store_refusal(enum store_result s, struct verdict *v,
    const char *what);
/* Audit the request's action on object, its outcome or refusal why. */
void legacy_audit(struct legacy_req *r, const char *object, const char *why);

#endif
