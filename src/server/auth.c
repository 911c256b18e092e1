/*
 * auth.c - request signatures.  A registered client signs every request:
 *
 *   Authorization: KT1-HMAC-SHA256 fp=<40 hex>,ts=<unix seconds>,sig=<64 hex>
 *   sig = HMAC-SHA256(secret, METHOD "\n" URI "\n" ts "\n" hex(SHA-256(body)))
 *
 * where URI is the path and query exactly as sent.  The client's state and
 * sealed secret come from the client cache (kept exact by NOTIFY) or the
 * database, so that disabling a client takes effect on its next request.
 * A refusal is a verdict for the handler to answer; it is audited here
 * (by the minute when it names no client, authfail.c).  An address whose
 * requests failed AUTH_FAILURES_PER_MINUTE times (keytrustee.conf) in a
 * minute is refused 429 until the minute ends (throttle.c).
 */
#include <ctype.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "auth.h"
#include "authhdr.h"
#include "authcache.h"
#include "authfail.h"
#include "log.h"
#include "util.h"

_Static_assert(2 * AUTH_SKEW < STORE_SEEN_KEEP,
    "a request's signature must be remembered as long as it is valid");

static const char *
auth_method(enum httpmsg_method cmd)
{
	switch (cmd) {
	case HTTPMSG_GET:
		return "GET";
	case HTTPMSG_POST:
		return "POST";
	case HTTPMSG_DELETE:
		return "DELETE";
	case HTTPMSG_PUT:
		return "PUT";
	case HTTPMSG_HEAD:
		return "HEAD";
	default:
		return NULL;
	}
}

int
auth_secret_open(const unsigned char datakey[CRYPTO_KEY_LEN],
    const char *fpr, const unsigned char *nonce, size_t noncelen,
    const unsigned char *ct, size_t ctlen, unsigned char secret[CRYPTO_KEY_LEN])
{
	if (noncelen != CRYPTO_NONCE_LEN ||
	    ctlen != CRYPTO_KEY_LEN + CRYPTO_TAG_LEN)
		return -1;
	return crypto_open(datakey, fpr, strlen(fpr), nonce, ct, ctlen, secret);
}

/* The digest of a verified request: who, when, its signature. */
static int
auth_seen_digest(const struct authhdr *h, unsigned char out[CRYPTO_HASH_LEN])
{
	unsigned char buf[4 + PGP_FPR_LEN + 1 + sizeof(h->ts) + 1 +
	    CRYPTO_MAC_LEN];
	int n;

	n = snprintf((char *)buf, sizeof(buf), "KT1\n%s\n%s\n", h->fpr, h->ts);
	if (n < 0 || (size_t)n + CRYPTO_MAC_LEN > sizeof(buf))
		return -1;
	memcpy(buf + n, h->sig, CRYPTO_MAC_LEN);
	return crypto_sha256(buf, (size_t)n + CRYPTO_MAC_LEN, out);
}

/*
 * A failed authentication, why, recorded (authfail.c: counted against its
 * address; a row of its own when it names a registered client, fpr, else
 * tallied by the minute); then refused with status, code and msg.
 */
static int
auth_fail(struct worker *w, struct http_req *req, struct verdict *v,
    int status, const char *code, const char *msg, const char *fpr,
    const char *org, const char *why)
{
	authfail_record(w, AUDIT_ROW(.actor = fpr, .org = org, .action = "auth",
			       .remote = http_peer(req), .result = why));
	return verdict_refuse(v, status, code, msg);
}

/*
 * The client's state, org and sealed secret: from the cache (authcache.c)
 * or the database.  0, or -1 with v refusing (401 unknown, 500, 503).
 */
static int
auth_lookup(struct worker *w, struct http_req *req, const char *fpr,
    struct client_auth *e, struct verdict *v)
{
	struct authcache *ac = w->srv->authcache;
	unsigned long gen;

	if (authcache_get(ac, fpr, e) == 0)
		return 0;
	gen = authcache_gen(ac);
	switch (store_client_auth(w->store, fpr, e)) {
	case STORE_OK:
		authcache_put(ac, e, gen);
		return 0;
	case STORE_NOT_FOUND: /* a fingerprint of no client: none named */
		return auth_fail(w, req, v, 401, "unauthorized",
		    "unknown client or bad signature", NULL, NULL,
		    "unknown_client");
	case STORE_INTEGRITY:
		log_warnx("client %s: its sealed secret fails the integrity "
			  "check",
		    fpr);
		return VERDICT_INTEGRITY(v);
	default:
		return VERDICT_DB_DOWN(v);
	}
}

int
auth_request(struct worker *w, struct http_req *req,
    struct auth_client *out, struct verdict *v)
{
	struct authhdr h;
	struct client_auth e;
	const unsigned char *body;
	const char *value = NULL, *method, *uri;
	unsigned char secret[CRYPTO_KEY_LEN], mac[CRYPTO_MAC_LEN];
	int n = 0, ret = -1;
	long long now;
	size_t bodylen;

	memset(&h, 0, sizeof(h));
	memset(&e, 0, sizeof(e));
	/* An address that failed too often this minute: 429, tallied. */
	if (authfail_check(w, "auth", http_peer(req), v) == -1)
		return -1;
	n = http_req_header_count(req, "Authorization");
	value = http_req_header(req, "Authorization");
	if (n == 0)
		return auth_fail(w, req, v, 401, "unauthorized",
		    "this request needs an Authorization header "
		    "(KT1-HMAC-SHA256)",
		    NULL, NULL, "no_header");
	if (n > 1 || authhdr_parse(value, &h) == -1)
		return auth_fail(w, req, v, 401, "unauthorized",
		    "malformed Authorization header", NULL, NULL, "malformed");
	now = (long long)time(NULL);
	/* Its fingerprint is not looked up yet: it names no client. */
	if (h.tsval < now - AUTH_SKEW || h.tsval > now + AUTH_SKEW)
		return auth_fail(w, req, v, 401, "unauthorized",
		    "request timestamp is more than 300 seconds off the "
		    "server's clock",
		    NULL, NULL, "stale");
	if (auth_lookup(w, req, h.fpr, &e, v) == -1)
		goto out;
	if (auth_secret_open(w->srv->datakey, h.fpr, e.nonce, sizeof(e.nonce),
		e.ct, sizeof(e.ct), secret) == -1) {
		log_warnx("client %s: its sealed secret fails the integrity "
			  "check",
		    h.fpr);
		VERDICT_INTEGRITY(v);
		goto out;
	}
	method = auth_method(http_req_method(req));
	uri = http_req_uri(req);
	body = http_req_body(req, &bodylen);
	if (method == NULL || uri == NULL ||
	    crypto_kt1_mac(secret, sizeof(secret), method, uri, h.ts, body,
		bodylen, mac) == -1) {
		VERDICT_INTERNAL(v);
		goto out;
	}
	if (CRYPTO_memcmp(mac, h.sig, CRYPTO_MAC_LEN) != 0) {
		auth_fail(w, req, v, 401, "unauthorized",
		    "unknown client or bad signature", h.fpr, e.org,
		    "bad_signature");
		goto out;
	}
	if (strcmp(e.state, "active") != 0) {
		int pending = strcmp(e.state, "pending") == 0;
		auth_fail(w, req, v, 403,
		    pending ? "client_pending" : "client_disabled",
		    pending ? "this client awaits approval "
			      "(keytrustee-orgtool enable-client)"
			    : "this client is disabled",
		    h.fpr, e.org, pending ? "client_pending" : "client_disabled");
		goto out;
	}
	/* Reads are not remembered (docs/api.md): no digest on their path. */
	memset(out->seen, 0, sizeof(out->seen));
	if (http_req_method(req) != HTTPMSG_GET &&
	    http_req_method(req) != HTTPMSG_HEAD &&
	    auth_seen_digest(&h, out->seen) == -1) {
		VERDICT_INTERNAL(v);
		goto out;
	}
	memcpy(out->fpr, h.fpr, sizeof(out->fpr));
	snprintf(out->org, sizeof(out->org), "%s", e.org);
	ret = 0;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(&e, sizeof(e));
	return ret;
}
